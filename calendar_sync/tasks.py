"""Celery tasks of calendar sync (thin: the work is in services and the google package).

Every task is idempotent: run twice, or again after a crash, it leaves the same state. Google's
transient refusals (429, 403 rate limits, 5xx, no connection) retry with exponential backoff; a quota
refusal backs the connection off for hours; a revoked grant marks it broken and stops retrying.

The services nudge these tasks after commit (clinic/nudges.py; importing this module); so each task
imports the service it runs in its body, and this module imports nothing of calendar sync but its models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.utils import timezone

from calendar_sync.models import FeedSubscription

MAX_RETRIES = 8
EAGER_WAIT_LIMIT = 60.0  # in-process (eager) tasks retry at once; a longer wait is left to the next trigger


def _enabled_subscription(subscription_id: int) -> FeedSubscription | None:
    # Across clinics: the task receives only the subscription's id; the row names its clinic, and the
    # build reads everything else through for_clinic(subscription.clinic_id).
    return FeedSubscription.objects.filter(pk=subscription_id, enabled=True).first()


@shared_task(acks_late=True)
def build_feed(subscription_id: int) -> str:
    """Bring a subscription's stored feed up to date. Idempotent: a fresh feed is left as it is."""
    from calendar_sync.feed.build import feed_build

    subscription = _enabled_subscription(subscription_id)
    if subscription is None:
        return "gone"
    document = feed_build(subscription=subscription, now=timezone.now())
    return document.etag


def _run(task: Any, work: Callable[..., object], *args: Any) -> str:
    from calendar_sync.google.client import AccessRevoked, ClientRefused, GoogleTrouble
    from calendar_sync.google.pacing import Paced

    attempt = task.request.retries
    while True:
        try:
            return repr(work(*args, attempt=attempt))
        except AccessRevoked:
            return "broken"
        except ClientRefused:
            return "client refused"  # the deployment's settings are wrong: nothing is tried until they change
        except Paced as paced:
            # Google's quota, not a failure: what was not sent stays pending. A worker queues the task again
            # after the wait, as a new task (no retry counted against MAX_RETRIES); in-process, the next
            # trigger (a change, Sync now, the sweep) continues it.
            if not task.request.is_eager:
                _again_after(task, args, paced.delay)
            return "paced"
        except GoogleTrouble as trouble:
            if trouble.quota:
                return "backing off"  # the pending items stay; beat picks them up when the wait is over
            if attempt >= MAX_RETRIES:
                return "gave up for now"
            if not task.request.is_eager:
                raise task.retry(countdown=trouble.delay, max_retries=MAX_RETRIES) from trouble
            if trouble.delay > EAGER_WAIT_LIMIT:
                return "backing off"
            attempt += 1  # in-process (the embedded default): try again at once


def _again_after(task: Any, args: tuple[Any, ...], delay: float) -> None:
    """Queue the task again after `delay`, unless another paced run of it is already queued: the cache names the
    one queued run (its task id), so the sweep's nudges while it waits do not start a second chain."""
    from uuid import uuid4

    from django.core.cache import cache

    key = f"google:paced:{task.name}:{':'.join(map(str, args))}"
    queued = cache.get(key)
    if queued is not None and queued != task.request.id:
        return  # that run continues the work
    task_id = str(uuid4())
    # Kept a little past the countdown: a queued run that was lost (or late) is succeeded soon after.
    cache.set(key, task_id, timeout=int(delay) + 10)
    # On the queue it came from, as task.retry does.
    queue = (task.request.delivery_info or {}).get("routing_key")
    task.apply_async(args=args, countdown=delay, task_id=task_id, **({"queue": queue} if queue else {}))


@shared_task(bind=True, acks_late=True)
def google_push(self: Any, connection_id: int) -> str:
    """Send a connection's pending changes to Google (all that are pending when it starts)."""
    from calendar_sync.google.push import push

    return _run(self, push, connection_id)


@shared_task(bind=True, acks_late=True)
def google_pull(self: Any, connection_id: int, calendar_pk: int | None = None) -> str:
    """Bring Google's changes here (one calendar, or all the connection pulls)."""
    from calendar_sync.google.pull import pull

    return _run(self, pull, connection_id, calendar_pk)


@shared_task(acks_late=True)
def google_pull_all() -> list[float]:
    """Beat: pull every active connection (Google's changes whose notification was lost, or that had none),
    spread over the interval (Google: "randomize traffic patterns"); returns the countdowns given."""
    from calendar_sync.google.changes import connections_to_pull, pull_countdown, queue_pull

    countdowns = []
    for connection in connections_to_pull():
        countdown = pull_countdown(connection.pk)
        queue_pull(connection, None, countdown=countdown)
        countdowns.append(countdown)
    return countdowns


@shared_task(acks_late=True)
def deliver_waiting() -> dict[str, int]:
    """Beat, every minute: the follow-up rows whose nudge was lost (the broker was down, a web process died
    between commit and publish) are delivered: every feed with unbuilt changes is rebuilt and every
    connection with pending changes pushed. Idempotent: a row already taken is simply not found."""
    from calendar_sync.feed.build import subscriptions_waiting
    from calendar_sync.google.changes import pushes_waiting
    from clinic.nudges import nudge

    feeds = subscriptions_waiting()
    for pk in feeds:
        nudge(build_feed, pk)
    return {"feeds": len(feeds), "pushes": len(pushes_waiting())}


@shared_task(acks_late=True)
def google_renew_channels() -> int:
    """Beat: watch calendars without a channel, renew channels that expire within a day."""
    from calendar_sync.google.channels import channels_renew

    return channels_renew()
