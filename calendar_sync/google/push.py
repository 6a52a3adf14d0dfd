"""Push: send what is pending for a connection to its default calendar.

Each of ours goes to Google under an event id chosen by us (see events.py), so a retried insert meets its
own event (409) and becomes a patch; nothing is ever inserted twice. What we sent is remembered (GoogleEvent) with
a fingerprint, so an unchanged event is not sent again, and with Google's ETag, so a patch never overwrites a newer
edit made in Google unread (If-Match, 412). An id Google refuses for good (the event deleted in its web UI, or
purged) is given up for a new one; a write Google refuses for good (a 4xx that is not a rate limit) is never
recorded as sent: it becomes a GoogleRefusal, shown on the Sync page, tried again when the practitioner presses
Sync now.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import transaction
from django.utils import timezone
from googleapiclient.errors import HttpError

from calendar_sync.feed.sources import feed_sources
from calendar_sync.google.client import (
    AccessRevoked,
    ClientRefused,
    GoogleTrouble,
    backoff,
    client_refused,
    client_refused_record,
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
from calendar_sync.google.events import event_body, next_event_id, patch_body, shown_fingerprint
from calendar_sync.google.pacing import PUSH
from calendar_sync.google.pull import other_event_from_google
from calendar_sync.keys import EVERYTHING, ItemKey, split
from calendar_sync.models import FeedSubscription, GoogleConnection, GoogleEvent, GooglePending, GoogleRefusal
from scheduling.models import Appointment, OtherEvent

log = logging.getLogger(__name__)


@dataclass
class Call:
    verb: str  # insert, patch, delete
    key: ItemKey
    event_id: str
    body: dict[str, Any] | None = None
    fingerprint: str = ""  # of the body sent
    etag: str = ""  # If-Match of a patch: Google's ETag as last written or read
    sent: str = ""  # the fingerprint last sent (a patch), to tell an edit in Google from ours
    met: tuple[str, ...] = ()  # what Google answered this call before ("insert 409", "patch 404")

    def again(self, verb: str, answer: str, **changes: Any) -> Call:
        return replace(self, verb=verb, met=(*self.met, answer), **changes)


@dataclass(frozen=True)
class Refusal:
    call: Call
    status: int
    reason: str


@dataclass
class PushReport:
    sent: int = 0
    deleted: int = 0
    unchanged: int = 0
    requests: int = 0


@dataclass
class Outcome:
    """What one push learnt from Google."""

    done: list[Call] = field(default_factory=list)
    etags: dict[ItemKey, str] = field(default_factory=dict)  # of the events written
    failed: dict[ItemKey, GoogleTrouble] = field(default_factory=dict)  # tried again later
    refused: dict[ItemKey, Refusal] = field(default_factory=dict)  # for good: shown, tried again on Sync now
    theirs: dict[ItemKey, dict[str, Any]] = field(default_factory=dict)  # edited in Google: Google's version stays


MAX_ROUNDS = 4  # an insert meeting its id, a patch meeting a newer edit, a new id: a call settles within these


def push(connection_id: int, *, attempt: int = 0, now: dt.datetime | None = None) -> PushReport:
    """Send what is pending for a connection to its default calendar. Idempotent: run it again after any
    crash and Google ends in the same state, with nothing duplicated and nothing deleted brought back."""
    loaded = connection_by_id(connection_id)
    if loaded is None:
        return PushReport()
    connection, subscription = loaded
    GoogleConnection.objects.for_clinic(connection.clinic_id).filter(pk=connection.pk).update(push_queued=False)
    if not sync_active(connection, subscription) or backing_off(connection) or client_refused():
        return PushReport()
    assert subscription is not None
    try:
        return _push(connection, subscription, attempt, now)
    except AccessRevoked:
        connection_mark_broken(connection)
        raise
    except ClientRefused as refused:
        client_refused_record(str(refused))
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
        outcome = Outcome()
        if calls:
            session = Session(connection, kind=PUSH)
            try:
                _send(session, connection, calls, outcome, attempt, report)
            finally:
                session.close()
        _record(connection, outcome, pending, everything=keys is None)
        GoogleConnection.objects.for_clinic(connection.clinic_id).filter(pk=connection.pk).update(
            pushed_at=timezone.now()
        )
        report.sent = sum(1 for c in outcome.done if c.verb != "delete")
        report.deleted = sum(1 for c in outcome.done if c.verb == "delete")
    if outcome.failed:
        trouble = max(outcome.failed.values(), key=lambda t: t.delay)
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
        ItemKey.parse(key): (event_id, fp, gone, etag)
        for key, event_id, fp, gone, etag in pushed.values_list(
            "key", "event_id", "fingerprint", "deleted_in_google", "etag"
        )
    }
    calls: list[Call] = []
    unchanged = 0
    for source in sources:
        body = event_body(source)
        fp = shown_fingerprint(body)
        old = known.pop(source.key, None)
        if old is None:
            calls.append(Call("insert", source.key, body["id"], body, fp))
            continue
        event_id, sent, gone, etag = old
        if gone:
            # Deleted in Google (and kept here, by the help page's rule): Google refuses its id for good.
            calls.append(_under_new_id(Call("insert", source.key, event_id, body, fp), "deleted in Google"))
        elif sent != fp:
            calls.append(Call("patch", source.key, event_id, body, fp, etag=etag, sent=sent))
        else:
            unchanged += 1
    # Mapped but not shown now: deleted or cancelled here, or its patient erased (removed from Google), or only
    # out of the window (an old appointment stays in Google as it was).
    still_here = _still_ours(connection, set(known))
    calls += [Call("delete", key, event_id) for key, (event_id, *_) in known.items() if key not in still_here]
    return calls, unchanged


def _still_ours(connection: GoogleConnection, keys: set[ItemKey]) -> set[ItemKey]:
    appointments, events = split(keys)
    found = {
        ItemKey.appointment(pk)
        for pk in Appointment.objects.for_clinic(connection.clinic_id)
        .filter(practitioner_id=connection.practitioner_id, pk__in=appointments)
        .live()
        .filter(patient__erased_at__isnull=True)  # an erased patient's events are deleted, even old ones
        .values_list("pk", flat=True)
    }
    found |= {
        ItemKey.event(pk)
        for pk in OtherEvent.objects.for_clinic(connection.clinic_id)
        .filter(practitioner_id=connection.practitioner_id, pk__in=events, google_event_id="")
        .values_list("pk", flat=True)
    }
    return found


def _under_new_id(call: Call, answer: str) -> Call:
    """The call as an insert under the next id of ours: Google refuses the current one for good (the event was
    deleted in its web UI, or purged from its bin: 403 to a write, 409 to an insert, 404 to a patch)."""
    new_id = next_event_id(call.event_id)
    log.info("google push: %s comes back under a new id (%s)", call.key.text, answer)
    return call.again("insert", answer, event_id=new_id, body={**(call.body or {}), "id": new_id}, etag="")


def _request(events: Any, calendar: str, call: Call) -> Any:
    if call.verb == "insert":
        return events.insert(calendarId=calendar, body=call.body)
    if call.verb == "patch":
        # A patch, not an update: reminders, colour and notes added in Google stay. If-Match: a newer edit in
        # Google answers 412, and is read before anything is overwritten.
        request = events.patch(calendarId=calendar, eventId=call.event_id, body=patch_body(call.body or {}))
        if call.etag:
            request.headers["If-Match"] = call.etag
        return request
    return events.delete(calendarId=calendar, eventId=call.event_id)


def _send(
    session: Session,
    connection: GoogleConnection,
    calls: list[Call],
    outcome: Outcome,
    attempt: int,
    report: PushReport,
) -> None:
    """Run the calls in batches until each is settled: done, refused for good, or failed for now. A stop part-way
    (paced under Google's quota, the push's slice over, a failure) keeps the answers received so far."""
    events = session.service.events()
    calendar = connection.default_calendar_id
    todo = calls
    stopped: GoogleTrouble | None = None
    for _round in range(MAX_ROUNDS):
        if not todo:
            break
        requests = [(call.key.text, _request(events, calendar, call)) for call in todo]
        answers: dict[str, tuple[Any, HttpError | None]] = {}
        try:
            session.batch(requests, attempt, into=answers)
        except GoogleTrouble as trouble:
            stopped = trouble
        report.requests = session.requests
        todo, stale = _answered(connection, todo, answers, outcome, attempt, stopped)
        if stale and stopped is None:
            todo += _read_again(session, connection, stale, outcome, attempt, report)
            report.requests = session.requests
        elif stale:
            todo += stale
        if stopped is not None:
            break
    for call in todo:
        if stopped is None:
            log.warning("google push: %s not settled (%s); tried again later", call.key.text, ", ".join(call.met))
        outcome.failed[call.key] = stopped or GoogleTrouble("not settled", delay=backoff(attempt))


def _answered(
    connection: GoogleConnection,
    todo: list[Call],
    answers: dict[str, tuple[Any, HttpError | None]],
    outcome: Outcome,
    attempt: int,
    stopped: GoogleTrouble | None = None,
) -> tuple[list[Call], list[Call]]:
    """Google's answers to one round: the calls to send again, and the patches that met a newer edit (412).
    A call without an answer failed for now (the stop's trouble, when the round was stopped)."""
    again: list[Call] = []
    stale: list[Call] = []
    for call in todo:
        if call.key.text not in answers:
            outcome.failed[call.key] = stopped or GoogleTrouble("no answer in the batch", delay=backoff(attempt))
            continue
        response, error = answers[call.key.text]
        if error is None:
            outcome.done.append(call)
            if call.verb != "delete" and isinstance(response, dict):
                outcome.etags[call.key] = str(response.get("etag", ""))
            continue
        status, reason = error.status_code, error_reason(error)
        answer = f"{call.verb} {status}"
        if call.verb == "insert" and status == 409:
            # Our id is taken: by our own insert answered before (a retry: patch it), or, when a patch already
            # found nothing there, by an event purged from Google's bin (a new id).
            again.append(_under_new_id(call, answer) if "patch 404" in call.met else call.again("patch", answer))
        elif call.verb == "patch" and status == 404:
            again.append(_under_new_id(call, answer) if "insert 409" in call.met else call.again("insert", answer))
        elif call.verb == "patch" and status == 403 and reason == "forbidden":
            again.append(_under_new_id(call, answer))  # deleted in Google's web UI: its id takes no more writes
        elif call.verb == "patch" and status == 412:
            stale.append(call)
        elif call.verb == "delete" and status in (404, 410):
            outcome.done.append(call)  # already gone
        elif retryable(status, reason):
            outcome.failed[call.key] = trouble_of(status, reason, attempt)
        else:
            outcome.refused[call.key] = Refusal(call, status, reason)
            log.warning(
                "google push refused: connection %s, %s of %s (%s %s); not retried until Sync now",
                connection.pk,
                call.verb,
                call.key.text,
                status,
                reason,
            )
    return again, stale


def _read_again(
    session: Session,
    connection: GoogleConnection,
    stale: list[Call],
    outcome: Outcome,
    attempt: int,
    report: PushReport,
) -> list[Call]:
    """Patches that met a newer edit in Google (412): read the event, then keep ours for a client event (its
    title and lock are ours) and theirs for an other event edited in Google; ours again when only what we do not
    show changed there (a reminder, a colour)."""
    events = session.service.events()
    calendar = connection.default_calendar_id
    answers: dict[str, tuple[Any, HttpError | None]] = {}
    try:
        session.batch([(c.key.text, events.get(calendarId=calendar, eventId=c.event_id)) for c in stale], into=answers)
    except GoogleTrouble as trouble:
        for call in stale:
            if call.key.text not in answers:
                outcome.failed[call.key] = trouble
        stale = [call for call in stale if call.key.text in answers]
    again: list[Call] = []
    for call in stale:
        response, error = answers.get(call.key.text, (None, None))
        if error is not None or not isinstance(response, dict) or response.get("status") == "cancelled":
            again.append(call.again("patch", "patch 412", etag=""))  # gone meanwhile: the next answer says how
        elif not call.key.is_appointment and shown_fingerprint(response) != call.sent:
            outcome.theirs[call.key] = response
        else:
            again.append(call.again("patch", "patch 412", etag=str(response.get("etag", ""))))
    return again


def _record(
    connection: GoogleConnection,
    outcome: Outcome,
    pending: list[tuple[int, str]],
    *,
    everything: bool,
) -> None:
    """One transaction: what Google now holds, Google's versions kept, the refusals, and the pending items
    consumed (failed ones stay; refused ones wait for Sync now)."""
    clinic_id = connection.clinic_id
    events = GoogleEvent.objects.for_clinic(clinic_id)
    waiting = GooglePending.objects.for_clinic(clinic_id)
    refusals = GoogleRefusal.objects.for_clinic(clinic_id).filter(connection=connection)
    with transaction.atomic():
        deleted = [c.key.text for c in outcome.done if c.verb == "delete"]
        if deleted:
            events.filter(connection=connection, key__in=deleted).delete()
        kept = [
            GoogleEvent(
                clinic_id=clinic_id,
                connection=connection,
                key=c.key.text,
                event_id=c.event_id,
                fingerprint=c.fingerprint,
                etag=outcome.etags.get(c.key, ""),
                deleted_in_google=False,
            )
            for c in outcome.done
            if c.verb != "delete"
        ]
        if kept:
            events.bulk_create(
                kept,
                update_conflicts=True,
                unique_fields=["connection", "key"],
                update_fields=["event_id", "fingerprint", "etag", "deleted_in_google"],
                batch_size=1000,
            )
        for key, item in outcome.theirs.items():
            other_event_from_google(connection, key, item)
        waiting.filter(pk__in=[pk for pk, _ in pending]).delete()
        if outcome.failed:
            waiting.bulk_create(
                [GooglePending(clinic_id=clinic_id, connection=connection, key=k.text) for k in outcome.failed]
            )
        settled = [c.key.text for c in outcome.done] + [k.text for k in outcome.theirs]
        if everything:  # every item was looked at: a refusal not met again is over
            refusals.exclude(verb="list").exclude(key__in=[k.text for k in outcome.refused]).delete()
        elif settled:
            refusals.filter(key__in=settled).delete()
        if outcome.refused:
            now = timezone.now()
            refusals.bulk_create(
                [
                    GoogleRefusal(
                        clinic_id=clinic_id,
                        connection=connection,
                        key=key.text,
                        verb=refusal.call.verb,
                        status=refusal.status,
                        reason=refusal.reason[:64],
                        at=now,
                    )
                    for key, refusal in outcome.refused.items()
                ],
                update_conflicts=True,
                unique_fields=["connection", "key"],
                update_fields=["verb", "status", "reason", "at"],
            )
