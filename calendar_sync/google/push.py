"""Push: send what is pending for a connection to its default calendar.

Each of ours goes to Google under an event id chosen by us (see events.py), so a retried insert meets its
own event (409) and becomes an update; nothing is ever inserted twice. What we sent is remembered
(GoogleEvent) with a fingerprint, so an unchanged event is not sent again.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from calendar_sync.feed.sources import feed_sources
from calendar_sync.google.client import (
    AccessRevoked,
    GoogleTrouble,
    backoff,
    error_reason,
    retryable,
    trouble_of,
)
from calendar_sync.google.connection import (
    Session,
    back_off,
    backing_off,
    connection_by_id,
    connection_mark_broken,
    held,
    sync_active,
)
from calendar_sync.google.events import event_body, shown_fingerprint
from calendar_sync.google.pacing import PUSH
from calendar_sync.keys import EVERYTHING, ItemKey, split
from calendar_sync.models import FeedSubscription, GoogleConnection, GoogleEvent, GooglePending
from scheduling.models import Appointment, OtherEvent

log = logging.getLogger(__name__)


@dataclass
class Call:
    verb: str  # insert, update, delete
    key: ItemKey
    event_id: str
    body: dict[str, Any] | None = None
    fingerprint: str = ""


@dataclass
class PushReport:
    sent: int = 0
    deleted: int = 0
    unchanged: int = 0
    requests: int = 0


def push(connection_id: int, *, attempt: int = 0, now: dt.datetime | None = None) -> PushReport:
    """Send what is pending for a connection to its default calendar. Idempotent: run it again after any
    crash and Google ends in the same state, with nothing duplicated and nothing deleted brought back."""
    loaded = connection_by_id(connection_id)
    if loaded is None:
        return PushReport()
    connection, subscription = loaded
    GoogleConnection.objects.for_clinic(connection.clinic_id).filter(pk=connection.pk).update(push_queued=False)
    if not sync_active(connection, subscription) or backing_off(connection):
        return PushReport()
    assert subscription is not None
    try:
        return _push(connection, subscription, attempt, now)
    except AccessRevoked:
        connection_mark_broken(connection)
        raise


def _push(
    connection: GoogleConnection, subscription: FeedSubscription, attempt: int, now: dt.datetime | None
) -> PushReport:
    with held(f"google:push:{connection.public_id}"):
        pending = list(
            GooglePending.objects.for_clinic(connection.clinic_id)
            .filter(connection=connection)
            .values_list("pk", "key")
        )
        if not pending:
            return PushReport()
        texts = {key for _, key in pending}
        keys = None if EVERYTHING in texts else {ItemKey.parse(text) for text in texts}
        calls, unchanged = _plan(connection, subscription, keys, now or timezone.now())
        report = PushReport(unchanged=unchanged)
        failed: dict[ItemKey, GoogleTrouble] = {}
        done: list[Call] = []
        if calls:
            session = Session(connection, kind=PUSH)
            try:
                done = _send(session, connection, calls, failed, attempt, report)
            finally:
                session.close()
        _record(connection, done, pending, failed)
        GoogleConnection.objects.for_clinic(connection.clinic_id).filter(pk=connection.pk).update(
            pushed_at=timezone.now()
        )
        report.sent = sum(1 for c in done if c.verb != "delete")
        report.deleted = sum(1 for c in done if c.verb == "delete")
    if failed:
        trouble = max(failed.values(), key=lambda t: t.delay)
        if trouble.quota:
            back_off(connection, trouble)
        raise trouble
    return report


def _plan(
    connection: GoogleConnection, subscription: FeedSubscription, keys: set[ItemKey] | None, now: dt.datetime
) -> tuple[list[Call], int]:
    """What to send for these keys (None: everything), and how many are unchanged since last sent."""
    sources = feed_sources(
        clinic=connection.clinic,
        practitioner=connection.practitioner,
        mode=subscription.identifier_mode,
        now=now,
        keys=keys,
    )
    pushed = GoogleEvent.objects.for_clinic(connection.clinic_id).filter(connection=connection)
    if keys is not None:
        pushed = pushed.filter(key__in=[key.text for key in keys])
    known = {
        ItemKey.parse(key): (event_id, fp, gone)
        for key, event_id, fp, gone in pushed.values_list("key", "event_id", "fingerprint", "deleted_in_google")
    }
    calls: list[Call] = []
    unchanged = 0
    for source in sources:
        body = event_body(source)
        fp = shown_fingerprint(body)
        old = known.pop(source.key, None)
        if old is not None and old[1] == fp and not old[2]:
            unchanged += 1
            continue
        calls.append(Call("insert" if old is None else "update", source.key, body["id"], body, fp))
    # Mapped but not shown now: deleted or cancelled here (removed from Google), or only out of the
    # window (an old appointment stays in Google as it was).
    still_here = _still_ours(connection, set(known))
    calls += [Call("delete", key, event_id) for key, (event_id, _, _) in known.items() if key not in still_here]
    return calls, unchanged


def _still_ours(connection: GoogleConnection, keys: set[ItemKey]) -> set[ItemKey]:
    appointments, events = split(keys)
    found = {
        ItemKey.appointment(pk)
        for pk in Appointment.objects.for_clinic(connection.clinic_id)
        .filter(practitioner_id=connection.practitioner_id, pk__in=appointments)
        .live()
        .values_list("pk", flat=True)
    }
    found |= {
        ItemKey.event(pk)
        for pk in OtherEvent.objects.for_clinic(connection.clinic_id)
        .filter(practitioner_id=connection.practitioner_id, pk__in=events, google_event_id="")
        .values_list("pk", flat=True)
    }
    return found


def _send(
    session: Session,
    connection: GoogleConnection,
    calls: list[Call],
    failed: dict[ItemKey, GoogleTrouble],
    attempt: int,
    report: PushReport,
) -> list[Call]:
    """Run the calls in batches; an insert that meets its id (a retry, or our event deleted in Google)
    becomes an update, an update of an event Google lost becomes an insert."""
    events = session.service.events()
    calendar = connection.default_calendar_id
    done: list[Call] = []
    todo = calls
    for _round in range(3):
        if not todo:
            break
        requests = []
        for call in todo:
            if call.verb == "insert":
                requests.append((call.key.text, events.insert(calendarId=calendar, body=call.body)))
            elif call.verb == "update":
                request = events.update(calendarId=calendar, eventId=call.event_id, body=call.body)
                requests.append((call.key.text, request))
            else:
                requests.append((call.key.text, events.delete(calendarId=calendar, eventId=call.event_id)))
        answers: dict[str, tuple[Any, Any]] = {}
        stopped: GoogleTrouble | None = None  # paced, or a failure: the calls answered so far still count
        try:
            session.batch(requests, attempt, into=answers)
        except GoogleTrouble as trouble:
            stopped = trouble
        report.requests = session.requests
        again: list[Call] = []
        for call in todo:
            if call.key.text not in answers:
                failed[call.key] = stopped or GoogleTrouble("no answer in the batch", delay=backoff(attempt))
                continue
            _response, error = answers[call.key.text]
            if error is None:
                done.append(call)
                continue
            status, reason = error.status_code, error_reason(error)
            if call.verb == "insert" and status == 409:
                again.append(Call("update", call.key, call.event_id, call.body, call.fingerprint))
            elif call.verb == "update" and status == 404:
                again.append(Call("insert", call.key, call.event_id, call.body, call.fingerprint))
            elif call.verb == "delete" and status in (404, 410):
                done.append(call)  # already gone
            elif retryable(status, reason):
                failed[call.key] = trouble_of(status, reason, attempt)
            else:
                log.error("google push: %s of an event refused (%s %s)", call.verb, status, reason)
                done.append(call)  # a permanent refusal is not retried forever
        todo = again
        if stopped is not None:
            for call in todo:
                failed[call.key] = stopped
            break
    return done


def _record(
    connection: GoogleConnection,
    done: list[Call],
    pending: list[tuple[int, str]],
    failed: dict[ItemKey, GoogleTrouble],
) -> None:
    """One transaction: what Google now holds, and the pending items consumed (failed ones stay)."""
    events = GoogleEvent.objects.for_clinic(connection.clinic_id)
    waiting = GooglePending.objects.for_clinic(connection.clinic_id)
    with transaction.atomic():
        deleted = [c.key.text for c in done if c.verb == "delete"]
        if deleted:
            events.filter(connection=connection, key__in=deleted).delete()
        kept = [
            GoogleEvent(
                clinic_id=connection.clinic_id,
                connection=connection,
                key=c.key.text,
                event_id=c.event_id,
                fingerprint=c.fingerprint,
                deleted_in_google=False,
            )
            for c in done
            if c.verb != "delete"
        ]
        if kept:
            events.bulk_create(
                kept,
                update_conflicts=True,
                unique_fields=["connection", "key"],
                update_fields=["event_id", "fingerprint", "deleted_in_google"],
                batch_size=1000,
            )
        waiting.filter(pk__in=[pk for pk, _ in pending]).delete()
        if failed:
            waiting.bulk_create(
                [GooglePending(clinic_id=connection.clinic_id, connection=connection, key=k.text) for k in failed]
            )
