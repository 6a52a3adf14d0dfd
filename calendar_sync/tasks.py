"""Celery tasks of calendar sync (thin: the work is in services and google_sync).

Every task is idempotent: run twice, or again after a crash, it leaves the same state. Google's
transient refusals (429, 403 rate limits, 5xx, no connection) retry with exponential backoff; a quota
refusal backs the connection off for hours; a revoked grant marks it broken and stops retrying.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.utils import timezone

from calendar_sync import google_sync
from calendar_sync.models import FeedSubscription
from calendar_sync.services import feed_build

MAX_RETRIES = 8
EAGER_WAIT_LIMIT = 60.0  # in-process (eager) tasks retry at once; a longer wait is left to the next trigger


@shared_task(acks_late=True)
def build_feed(subscription_id: int) -> str:
    """Bring a subscription's stored feed up to date. Idempotent: a fresh feed is left as it is."""
    subscription = FeedSubscription.objects.filter(pk=subscription_id, enabled=True).first()
    if subscription is None:
        return "gone"
    document = feed_build(subscription=subscription, now=timezone.now())
    return document.etag


def _run(task: Any, work: Any, *args: Any) -> str:
    attempt = task.request.retries
    while True:
        try:
            return repr(work(*args, attempt=attempt))
        except google_sync.AccessRevoked:
            return "broken"
        except google_sync.GoogleTrouble as trouble:
            if trouble.quota:
                return "backing off"  # the pending items stay; beat picks them up when the wait is over
            if attempt >= MAX_RETRIES:
                return "gave up for now"
            if not task.request.is_eager:
                raise task.retry(countdown=trouble.delay, max_retries=MAX_RETRIES) from trouble
            if trouble.delay > EAGER_WAIT_LIMIT:
                return "backing off"
            attempt += 1  # in-process (the embedded default): try again at once


@shared_task(bind=True, acks_late=True)
def google_push(self: Any, connection_id: int) -> str:
    """Send a connection's pending changes to Google (all that are pending when it starts)."""
    return _run(self, google_sync.push, connection_id)


@shared_task(bind=True, acks_late=True)
def google_pull(self: Any, connection_id: int, calendar_pk: int | None = None) -> str:
    """Bring Google's changes here (one calendar, or all the connection pulls)."""
    return _run(self, google_sync.pull, connection_id, calendar_pk)


@shared_task(acks_late=True)
def google_pull_all() -> int:
    """Beat: pull every active connection, and push any whose pending changes are waiting (after a
    back-off, or a lost task)."""
    pulled = 0
    for connection in google_sync.connections_to_pull():
        google_sync.queue_pull(connection, None)
        pulled += 1
    for connection_id in google_sync.connections_with_pending():
        google_push.delay(connection_id)
    return pulled


@shared_task(acks_late=True)
def google_renew_channels() -> int:
    """Beat: watch calendars without a channel, renew channels that expire within a day."""
    return google_sync.channels_renew()
