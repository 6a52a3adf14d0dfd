"""Two-way sync with Google Calendar: the connection, pushing ours to the default calendar, pulling Google's.

Push: every change on a practitioner's calendar is recorded as pending ("a<pk>", "e<pk>", or "" for
everything) and one push task per connection takes whatever is pending (changes coalesce). Each of ours
goes to Google under an event id chosen by us ("csa"/"cse" and the object's UUID: base32hex), so a retried
insert meets its own event (409) and becomes an update; nothing is ever inserted twice. What we sent is
remembered (GoogleEvent) with a fingerprint, so an unchanged event is not sent again.

Pull: each pulled calendar is listed with its sync token (a 410 means a full listing, applied over the
local rows without deleting them first). Events that are not ours become external OtherEvents tied to the
calendar they came from; busy ones block online booking. Ours that changed in Google obey the help page:
a client event's title is ours (overwritten), a deleted client event is ignored when its notes are
completed or it is cancelled (and goes back to Google at its next push), other events follow Google.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import re
import secrets
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import httplib2
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from google.auth.exceptions import RefreshError, TransportError
from googleapiclient.errors import HttpError

from calendar_sync import google_api
from calendar_sync.crypto import SecretUnreadable, seal, unseal
from calendar_sync.models import (
    FeedSubscription,
    GoogleCalendar,
    GoogleChannel,
    GoogleConnection,
    GoogleEvent,
    GooglePending,
    GoogleState,
    SyncType,
)
from calendar_sync.selectors import WINDOW_BACK, FeedSource, feed_sources, fingerprint
from clinic.services import audit_record
from scheduling.models import Appointment, AppointmentStatus, OtherEvent
from scheduling.services import BookingError, appointment_cancel, other_event_delete

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from google.oauth2.credentials import Credentials

    from clinic.models import Clinic, Practitioner

log = logging.getLogger(__name__)

BATCH_SIZE = 50  # calls per batch request
PAGE_SIZE = 2500  # events per page of events.list (Google's maximum)
OUR_EVENT_ID = re.compile(r"^cs[ae][0-9a-f]{32}$")
LOCK = "🔒 "  # client events carry a lock: their title is set here, not in Google
CLIENT_EVENT_NOTE = (
    "Booked in Clinic Scheduler. This is a client event: its title is set by the clinic, and a title "
    "changed here is replaced at the next sync."
)
REVOKED = "Google access was revoked or has expired. Connect with Google again to resume two-way sync."
CHANNEL_TTL = dt.timedelta(days=7)
CHANNEL_RENEW_BEFORE = dt.timedelta(days=1)
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
QUOTA_BACKOFF = dt.timedelta(hours=3)
LOCK_SECONDS = 600


# --- Trouble -----------------------------------------------------------------------------------------------


class GoogleTrouble(Exception):
    """Google could not be used just now; `delay` says how long to wait before trying again."""

    def __init__(self, message: str, *, delay: float, quota: bool = False) -> None:
        super().__init__(message)
        self.delay = delay
        self.quota = quota


class AccessRevoked(Exception):
    """The grant is gone (invalid_grant): the connection is broken until the practitioner connects again."""


def backoff(attempt: int, *, base: float = 2.0, cap: float = 900.0) -> float:
    """Exponential backoff with full jitter: up to base·2^attempt seconds, at most `cap`."""
    return random.uniform(base, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not a secret


def error_reason(error: HttpError) -> str:
    """The first `reason` Google gave for an error ("rateLimitExceeded", "quotaExceeded", ...)."""
    try:
        payload = json.loads(error.content.decode("utf-8"))
        errors = payload.get("error", {}).get("errors") or [{}]
        return str(errors[0].get("reason", ""))
    except (ValueError, AttributeError, TypeError):
        return ""


def retryable(status: int, reason: str) -> bool:
    return status == 429 or status >= 500 or (status == 403 and reason in RATE_LIMIT_REASONS | QUOTA_REASONS)


def trouble_of(status: int, reason: str, attempt: int) -> GoogleTrouble:
    if status == 403 and reason in QUOTA_REASONS:
        return GoogleTrouble(f"Google quota exceeded ({reason})", delay=QUOTA_BACKOFF.total_seconds(), quota=True)
    return GoogleTrouble(f"Google answered {status} {reason}".strip(), delay=backoff(attempt))


# --- Connection and credentials ---------------------------------------------------------------------------


def google_offered() -> bool:
    return google_api.google_enabled()


def connection_of(*, clinic: Clinic, practitioner: Practitioner) -> GoogleConnection | None:
    return GoogleConnection.objects.for_clinic(clinic).filter(practitioner=practitioner).first()


def _naive_utc(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else moment.astimezone(dt.UTC).replace(tzinfo=None)


def _credentials(connection: GoogleConnection) -> Credentials:
    try:
        access = unseal(connection.access_token) if connection.access_token else ""
        refresh = unseal(connection.refresh_token)
    except SecretUnreadable as error:
        raise AccessRevoked("the stored tokens cannot be read with the current keys") from error
    return google_api.credentials(
        access_token=access, refresh_token=refresh, expiry=_naive_utc(connection.access_expires_at)
    )


def _keep_tokens(connection: GoogleConnection, creds: Credentials) -> None:
    """Store a refreshed access token (sealed), so the next task does not refresh again."""
    if not creds.token:
        return
    expiry = creds.expiry.replace(tzinfo=dt.UTC) if creds.expiry else None
    if expiry == connection.access_expires_at and connection.access_token:
        return
    connection.access_token = seal(creds.token)
    connection.access_expires_at = expiry
    GoogleConnection.objects.filter(pk=connection.pk).update(
        access_token=connection.access_token, access_expires_at=expiry
    )


@dataclass
class Session:
    """A connection with its API client; translates transport and auth failures."""

    connection: GoogleConnection
    creds: Credentials | None = None  # the connection's own, unless given (a grant not stored yet)
    service: Any = field(init=False)

    def __post_init__(self) -> None:
        self.creds = self.creds or _credentials(self.connection)
        self.service = google_api.calendar_service(self.creds)

    def run(self, request: Any, attempt: int = 0) -> Any:
        try:
            return request.execute()
        except RefreshError as error:
            raise _refresh_trouble(error, attempt) from error
        except HttpError as error:
            if retryable(error.status_code, error_reason(error)):
                raise trouble_of(error.status_code, error_reason(error), attempt) from error
            raise
        except (OSError, httplib2.HttpLib2Error, TransportError) as error:
            raise GoogleTrouble(
                f"Google could not be reached ({type(error).__name__})", delay=backoff(attempt)
            ) from error

    def batch(self, calls: list[tuple[str, Any]], attempt: int = 0) -> dict[str, tuple[Any, HttpError | None]]:
        """Run calls in batch requests of BATCH_SIZE; each answer (or its error) by the call's name."""
        answers: dict[str, tuple[Any, HttpError | None]] = {}

        def keep(request_id: str, response: Any, error: HttpError | None) -> None:
            answers[request_id] = (response, error)

        for start in range(0, len(calls), BATCH_SIZE):
            batch = self.service.new_batch_http_request(callback=keep)
            for name, request in calls[start : start + BATCH_SIZE]:
                batch.add(request, request_id=name)
            self.run(batch, attempt)
        return answers

    def close(self) -> None:
        if self.creds is not None:
            _keep_tokens(self.connection, self.creds)


def _refresh_trouble(error: RefreshError, attempt: int) -> Exception:
    text = str(error)
    if "invalid_grant" in text or "unauthorized_client" in text or "invalid_client" in text:
        return AccessRevoked(text)
    return GoogleTrouble("The Google token endpoint failed", delay=backoff(attempt))


def connection_mark_broken(connection: GoogleConnection, problem: str = REVOKED) -> None:
    """Stop syncing (no retries) until the practitioner connects again; the Sync page says why."""
    GoogleConnection.objects.filter(pk=connection.pk).update(
        state=GoogleState.BROKEN, problem=problem[:200], push_queued=False
    )
    GoogleChannel.objects.filter(calendar__connection=connection).delete()
    log.warning("google connection %s broken: access revoked", connection.pk)


def sync_active(connection: GoogleConnection, subscription: FeedSubscription | None) -> bool:
    return (
        connection.state == GoogleState.CONNECTED
        and bool(connection.default_calendar_id)
        and subscription is not None
        and subscription.enabled
        and subscription.sync_type == SyncType.TWO_WAY
    )


def _load(connection_id: int) -> tuple[GoogleConnection, FeedSubscription | None] | None:
    connection = (
        GoogleConnection.objects.select_related("practitioner", "practitioner__user", "clinic")
        .filter(pk=connection_id)
        .first()
    )
    if connection is None:
        return None
    subscription = FeedSubscription.objects.filter(practitioner_id=connection.practitioner_id).first()
    return connection, subscription


class held:  # noqa: N801 - used as a context manager, named for how it reads
    """A lock across processes (the cache: Redis in production) so one connection has one pusher (or
    one puller) at a time. Raises GoogleTrouble when another holds it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.token = secrets.token_hex(8)

    def __enter__(self) -> held:
        if not cache.add(self.name, self.token, LOCK_SECONDS):
            raise GoogleTrouble(f"{self.name} is held", delay=5.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if cache.get(self.name) == self.token:
            cache.delete(self.name)


# --- The connect flow -------------------------------------------------------------------------------------


def connection_save(*, clinic: Clinic, actor: User, practitioner: Practitioner, creds: Credentials) -> GoogleConnection:
    """Keep the grant of a completed OAuth flow (sealed) and list the account's calendars."""
    if not creds.refresh_token:
        raise ValueError("Google gave no refresh token")
    listed = _calendar_list(Session(GoogleConnection(clinic=clinic, practitioner=practitioner), creds))
    email = next((c["id"] for c in listed if c.get("primary")), "") or (listed[0]["id"] if listed else "")
    with transaction.atomic():
        connection = (
            GoogleConnection.objects.for_clinic(clinic).select_for_update().filter(practitioner=practitioner).first()
        )
        if connection is not None and connection.email != email:
            # Another Google account: nothing of the old one's state carries over.
            _forget(connection)
            connection.delete()
            connection = None
        if connection is None:
            connection = GoogleConnection(clinic=clinic, practitioner=practitioner)
        connection.email = email
        connection.refresh_token = seal(creds.refresh_token)
        connection.access_token = seal(creds.token) if creds.token else ""
        connection.access_expires_at = creds.expiry.replace(tzinfo=dt.UTC) if creds.expiry else None
        connection.state = GoogleState.CONNECTED
        connection.problem = ""
        connection.backoff_until = None
        connection.save()
        _calendars_store(connection, listed)
        audit_record(clinic=clinic, actor=actor, action="google.connected", target=connection, detail={})
    if connection.default_calendar_id:
        resync_all(connection)
    return connection


def _calendar_list(session: Session) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page: str | None = None
    while True:
        answer = session.run(session.service.calendarList().list(pageToken=page, maxResults=250))
        items += answer.get("items", [])
        page = answer.get("nextPageToken")
        if not page:
            return items


def _calendars_store(connection: GoogleConnection, listed: list[dict[str, Any]]) -> None:
    known = {c.calendar_id: c for c in connection.calendars.all()}
    for item in listed:
        row = known.get(item["id"]) or GoogleCalendar(
            clinic_id=connection.clinic_id, connection=connection, calendar_id=item["id"]
        )
        row.summary = str(item.get("summaryOverride") or item.get("summary") or item["id"])[:255]
        row.primary = bool(item.get("primary"))
        row.writable = item.get("accessRole") in ("owner", "writer")
        row.save()


def calendars_refresh(connection: GoogleConnection) -> list[GoogleCalendar]:
    """The account's calendars as Google lists them now (new ones appear, toggles stay)."""
    session = Session(connection)
    try:
        listed = _calendar_list(session)
    finally:
        session.close()
    with transaction.atomic():
        _calendars_store(connection, listed)
    return list(connection.calendars.all())


def default_calendar_choose(
    *, clinic: Clinic, actor: User, connection: GoogleConnection, calendar_id: str | None
) -> GoogleConnection:
    """Where our events go: a new calendar made for the clinic (calendar_id None), or an existing one.

    Two-way sync starts at once: everything is pushed, and the default calendar is pulled.
    """
    session = Session(connection)
    try:
        created = calendar_id is None
        if calendar_id is None:
            made = session.run(
                session.service.calendars().insert(
                    body={
                        "summary": f"{clinic.name} · Clinic Scheduler",
                        "description": "Appointments and events from Clinic Scheduler (two-way sync).",
                        "timeZone": clinic.time_zone,
                    }
                )
            )
            calendar_id = str(made["id"])
        listed = _calendar_list(session)
    finally:
        session.close()
    if calendar_id not in {c["id"] for c in listed if c.get("accessRole") in ("owner", "writer")}:
        raise ValueError("Choose one of your Google calendars that you can change.")
    with transaction.atomic():
        _calendars_store(connection, listed)
        connection.default_calendar_id = calendar_id
        connection.default_calendar_created = created
        connection.save(update_fields=["default_calendar_id", "default_calendar_created", "updated_at"])
        # The default calendar is pulled as it is pushed; it is not also a secondary one.
        connection.calendars.filter(calendar_id=calendar_id).update(selected=False)
        subscription = _subscription(clinic, connection.practitioner)
        subscription.enabled = True
        subscription.sync_type = SyncType.TWO_WAY
        subscription.save(update_fields=["enabled", "sync_type", "updated_at"])
        audit_record(
            clinic=clinic,
            actor=actor,
            action="google.default_calendar",
            target=connection,
            detail={"created": created, "primary": calendar_id == connection.email},
        )
    resync_all(connection)
    return connection


def _subscription(clinic: Clinic, practitioner: Practitioner) -> FeedSubscription:
    from calendar_sync.services import subscription_get_or_create

    return subscription_get_or_create(clinic=clinic, practitioner=practitioner)


def secondary_set(*, clinic: Clinic, actor: User, calendar: GoogleCalendar, selected: bool) -> GoogleCalendar:
    """Pull a secondary calendar (or stop). Stopping keeps what was pulled from it, tied to its id."""
    connection = calendar.connection
    if calendar.calendar_id == connection.default_calendar_id:
        raise ValueError("The default calendar is always synced.")
    with transaction.atomic():
        calendar.selected = selected
        calendar.sync_token = ""
        calendar.save(update_fields=["selected", "sync_token"])
        audit_record(
            clinic=clinic, actor=actor, action="google.secondary", target=calendar, detail={"selected": selected}
        )
        if selected:
            transaction.on_commit(partial(queue_pull, connection, calendar.pk))
        else:
            _drop_channels(connection, GoogleChannel.objects.filter(calendar=calendar))
    return calendar


def resync_all(connection: GoogleConnection) -> None:
    """Send everything again and pull every calendar in full (after connecting, or toggling the sync type:
    the way a new identifier mode reaches Google)."""
    with transaction.atomic():
        GoogleEvent.objects.filter(connection=connection).update(fingerprint="")
        GoogleCalendar.objects.filter(connection=connection).update(sync_token="")
        GooglePending.objects.create(clinic_id=connection.clinic_id, connection=connection, key="")
        _queue_push_on_commit(connection.pk)
        transaction.on_commit(partial(queue_pull, connection, None))


def _forget(connection: GoogleConnection) -> None:
    """Remove what two-way sync brought here: the events pulled from Google, and the channels."""
    OtherEvent.objects.filter(practitioner_id=connection.practitioner_id).exclude(google_event_id="").delete()
    _drop_channels(connection, GoogleChannel.objects.filter(calendar__connection=connection))


def _drop_channels(connection: GoogleConnection, channels: QuerySet[GoogleChannel]) -> None:
    """Forget these channels now, and ask Google to stop them once this commits."""
    dropped = list(channels)
    GoogleChannel.objects.filter(pk__in=[c.pk for c in dropped]).delete()
    transaction.on_commit(partial(_stop_channels_quietly, connection.pk, dropped))


def sync_now(connection: GoogleConnection) -> None:
    """Sync now: push everything that differs, and pull every synced calendar."""
    with transaction.atomic():
        changes_record([connection.practitioner_id], None)
        transaction.on_commit(partial(queue_pull, connection, None))


def sync_type_set(*, clinic: Clinic, actor: User, subscription: FeedSubscription, sync_type: str) -> None:
    """One-way ↔ two-way. Leaving two-way removes the Google events from our calendar; coming back
    re-syncs everything (with the identifier mode now chosen)."""
    if sync_type not in SyncType.values:
        raise ValueError("Choose one-way or two-way sync.")
    connection = connection_of(clinic=clinic, practitioner=subscription.practitioner)
    with transaction.atomic():
        previous = subscription.sync_type
        subscription.sync_type = sync_type
        subscription.save(update_fields=["sync_type", "updated_at"])
        if previous == sync_type:
            return
        audit_record(
            clinic=clinic, actor=actor, action="sync.type", target=subscription, detail={"sync_type": sync_type}
        )
        if connection is None:
            return
        if sync_type == SyncType.ONE_WAY:
            _forget(connection)
            GoogleCalendar.objects.filter(connection=connection).update(sync_token="")
            GooglePending.objects.filter(connection=connection).delete()
        elif connection.default_calendar_id:
            resync_all(connection)


def disconnect(*, clinic: Clinic, actor: User, connection: GoogleConnection) -> None:
    """End two-way sync: revoke the grant at Google (when it still works), remove the Google events from
    our calendar, forget the tokens. Always possible, even when Google cannot be reached."""
    try:
        refresh = unseal(connection.refresh_token)
    except SecretUnreadable:
        refresh = ""
    with transaction.atomic():
        _forget(connection)
        FeedSubscription.objects.filter(practitioner_id=connection.practitioner_id).update(sync_type=SyncType.ONE_WAY)
        audit_record(clinic=clinic, actor=actor, action="google.disconnected", target=connection, detail={})
        connection.delete()
    if refresh:
        transaction.on_commit(partial(_revoke_quietly, refresh))


def _revoke_quietly(token: str) -> None:
    try:
        http = httplib2.Http(timeout=google_api.REQUEST_TIMEOUT)
        http.request(
            settings.GOOGLE_REVOKE_URI,
            "POST",
            body=f"token={token}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    except (OSError, httplib2.HttpLib2Error):
        log.info("google token revocation not delivered")


# --- Recording changes ------------------------------------------------------------------------------------


def _active_connections() -> QuerySet[GoogleConnection]:
    """Connections that sync now: connected, with a default calendar, two-way sync allowed and chosen."""
    return (
        GoogleConnection.objects.filter(state=GoogleState.CONNECTED)
        .exclude(default_calendar_id="")
        .filter(
            practitioner__feed_subscription__enabled=True,
            practitioner__feed_subscription__sync_type=SyncType.TWO_WAY,
        )
    )


def practitioners_synced(practitioner_ids: Iterable[int]) -> set[int]:
    return set(
        _active_connections()
        .filter(practitioner_id__in=list(practitioner_ids))
        .values_list("practitioner_id", flat=True)
    )


def changes_record(practitioner_ids: Iterable[int], keys: Iterable[str] | None) -> None:
    """Called after a calendar change commits: pending items for the practitioners' active two-way syncs,
    and a push queued for each (unless one is queued already: changes coalesce)."""
    connections = list(
        _active_connections().filter(practitioner_id__in=list(practitioner_ids)).values_list("pk", "clinic_id")
    )
    if not connections:
        return
    wanted = [""] if keys is None else sorted(set(keys))
    with transaction.atomic():
        GooglePending.objects.bulk_create(
            [
                GooglePending(clinic_id=clinic_id, connection_id=pk, key=key)
                for pk, clinic_id in connections
                for key in wanted
            ]
        )
        for pk, _ in connections:
            _queue_push_on_commit(pk)


def _queue_push_on_commit(connection_id: int) -> None:
    """Queue a push unless one is queued and not yet started (it will see these changes)."""
    if GoogleConnection.objects.filter(pk=connection_id, push_queued=False).update(push_queued=True):
        from calendar_sync.tasks import google_push

        transaction.on_commit(partial(google_push.delay, connection_id))


def _pull_flag(public_id: Any, calendar_pk: int | None) -> str:
    # Named by the connection's UUID: one cache (Redis) may serve several databases' workers.
    return f"google:pull-queued:{public_id}:{calendar_pk}"


def queue_pull(connection: GoogleConnection, calendar_pk: int | None) -> None:
    """Queue a pull (a burst of notifications for one calendar makes one)."""
    from calendar_sync.tasks import google_pull

    if cache.add(_pull_flag(connection.public_id, calendar_pk), 1, 60):
        google_pull.delay(connection.pk, calendar_pk)


# --- Push -------------------------------------------------------------------------------------------------


def our_event_id(source: FeedSource) -> str:
    """Google's id for one of ours: "csa"/"cse" and the object's UUID (base32hex: 0-9, a-v)."""
    kind, public = source.item.uid.split("@", 1)[0].split("-", 1)
    return ("csa" if kind == "appointment" else "cse") + uuid.UUID(public).hex


def _when(moment: dt.datetime | None, day: dt.date | None) -> dict[str, str]:
    if day is not None:
        return {"date": day.isoformat()}
    assert moment is not None
    return {"dateTime": moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def event_body(source: FeedSource) -> dict[str, Any]:
    """The Google event for one of ours; the patient named only as the identifier mode allows."""
    item = source.item
    client = source.key.startswith("a")
    body: dict[str, Any] = {
        "id": our_event_id(source),
        "status": "confirmed",
        "summary": (LOCK + item.summary) if client else item.summary,
        "start": _when(item.starts_at, item.first_date),
        "end": _when(item.ends_at, item.end_date),
        "transparency": "transparent" if item.transparent else "opaque",
        "extendedProperties": {"private": {"clinicScheduler": item.uid.split("@", 1)[0]}},
    }
    if item.location:
        body["location"] = item.location
    if client:
        body["description"] = CLIENT_EVENT_NOTE
    return body


def shown_fingerprint(event: dict[str, Any]) -> str:
    """What a person sees of an event (title, times, busy/free, place), however Google writes it."""
    return fingerprint(
        event.get("summary", ""),
        _moment(event.get("start", {})),
        _moment(event.get("end", {})),
        event.get("transparency", "opaque"),
        event.get("location", ""),
    )


def _moment(when: dict[str, Any]) -> str:
    if "date" in when:
        return str(when["date"])
    if "dateTime" in when:
        return _instant(when["dateTime"]).isoformat()
    return ""


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


@dataclass
class Call:
    verb: str  # insert, update, delete
    key: str
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
    loaded = _load(connection_id)
    if loaded is None:
        return PushReport()
    connection, subscription = loaded
    GoogleConnection.objects.filter(pk=connection.pk).update(push_queued=False)
    if not sync_active(connection, subscription) or _backing_off(connection):
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
        pending = list(GooglePending.objects.filter(connection=connection).values_list("pk", "key"))
        if not pending:
            return PushReport()
        keys = {key for _, key in pending}
        calls, unchanged = _plan(connection, subscription, keys, now or timezone.now())
        report = PushReport(unchanged=unchanged)
        failed: dict[str, GoogleTrouble] = {}
        done: list[Call] = []
        if calls:
            session = Session(connection)
            try:
                done = _send(session, connection, calls, failed, attempt, report)
            finally:
                session.close()
        _record(connection, done, pending, failed)
        GoogleConnection.objects.filter(pk=connection.pk).update(pushed_at=timezone.now())
        report.sent = sum(1 for c in done if c.verb != "delete")
        report.deleted = sum(1 for c in done if c.verb == "delete")
    if failed:
        trouble = max(failed.values(), key=lambda t: t.delay)
        if trouble.quota:
            _back_off(connection, trouble)
        raise trouble
    return report


def _plan(
    connection: GoogleConnection, subscription: FeedSubscription, keys: set[str], now: dt.datetime
) -> tuple[list[Call], int]:
    everything = "" in keys
    sources = feed_sources(
        clinic=connection.clinic,
        practitioner=connection.practitioner,
        mode=subscription.identifier_mode,
        now=now,
        keys=None if everything else keys,
    )
    pushed = GoogleEvent.objects.filter(connection=connection)
    if not everything:
        pushed = pushed.filter(key__in=keys)
    known = {
        key: (event_id, fp, gone)
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


def _still_ours(connection: GoogleConnection, keys: set[str]) -> set[str]:
    appointments = [int(k[1:]) for k in keys if k.startswith("a")]
    events = [int(k[1:]) for k in keys if k.startswith("e")]
    found = {
        f"a{pk}"
        for pk in Appointment.objects.filter(
            clinic_id=connection.clinic_id, practitioner_id=connection.practitioner_id, pk__in=appointments
        )
        .live()
        .values_list("pk", flat=True)
    }
    found |= {
        f"e{pk}"
        for pk in OtherEvent.objects.filter(
            clinic_id=connection.clinic_id,
            practitioner_id=connection.practitioner_id,
            pk__in=events,
            google_event_id="",
        ).values_list("pk", flat=True)
    }
    return found


def _send(
    session: Session,
    connection: GoogleConnection,
    calls: list[Call],
    failed: dict[str, GoogleTrouble],
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
                requests.append((call.key, events.insert(calendarId=calendar, body=call.body)))
            elif call.verb == "update":
                requests.append((call.key, events.update(calendarId=calendar, eventId=call.event_id, body=call.body)))
            else:
                requests.append((call.key, events.delete(calendarId=calendar, eventId=call.event_id)))
        report.requests += -(-len(requests) // BATCH_SIZE)
        try:
            answers = session.batch(requests, attempt)
        except GoogleTrouble as trouble:
            for call in todo:
                failed[call.key] = trouble
            return done
        again: list[Call] = []
        for call in todo:
            _response, error = answers.get(call.key, (None, None))
            if call.key not in answers:
                failed[call.key] = GoogleTrouble("no answer in the batch", delay=backoff(attempt))
                continue
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
    return done


def _record(
    connection: GoogleConnection,
    done: list[Call],
    pending: list[tuple[int, str]],
    failed: dict[str, GoogleTrouble],
) -> None:
    """One transaction: what Google now holds, and the pending items consumed (failed ones stay)."""
    with transaction.atomic():
        deleted = [c.key for c in done if c.verb == "delete"]
        if deleted:
            GoogleEvent.objects.filter(connection=connection, key__in=deleted).delete()
        kept = [
            GoogleEvent(
                clinic_id=connection.clinic_id,
                connection=connection,
                key=c.key,
                event_id=c.event_id,
                fingerprint=c.fingerprint,
                deleted_in_google=False,
            )
            for c in done
            if c.verb != "delete"
        ]
        if kept:
            GoogleEvent.objects.bulk_create(
                kept,
                update_conflicts=True,
                unique_fields=["connection", "key"],
                update_fields=["event_id", "fingerprint", "deleted_in_google"],
                batch_size=1000,
            )
        GooglePending.objects.filter(pk__in=[pk for pk, _ in pending]).delete()
        if failed:
            GooglePending.objects.bulk_create(
                [GooglePending(clinic_id=connection.clinic_id, connection=connection, key=k) for k in failed]
            )


def _backing_off(connection: GoogleConnection) -> bool:
    return connection.backoff_until is not None and connection.backoff_until > timezone.now()


def _back_off(connection: GoogleConnection, trouble: GoogleTrouble) -> None:
    until = timezone.now() + dt.timedelta(seconds=trouble.delay)
    GoogleConnection.objects.filter(pk=connection.pk).update(backoff_until=until)


# --- Pull -------------------------------------------------------------------------------------------------


@dataclass
class PullReport:
    listed: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    full: bool = False
    requests: int = 0


def pull(
    connection_id: int, calendar_pk: int | None = None, *, attempt: int = 0, now: dt.datetime | None = None
) -> PullReport:
    """Bring Google's changes here: the default calendar and every selected secondary one (or one)."""
    loaded = _load(connection_id)
    if loaded is None:
        return PullReport()
    connection, subscription = loaded
    cache.delete(_pull_flag(connection.public_id, calendar_pk))
    if not sync_active(connection, subscription) or _backing_off(connection):
        return PullReport()
    now = now or timezone.now()
    calendars = GoogleCalendar.objects.filter(connection=connection).filter(
        Q(selected=True) | Q(calendar_id=connection.default_calendar_id)
    )
    if calendar_pk is not None:
        calendars = calendars.filter(pk=calendar_pk)
    report = PullReport()
    with held(f"google:pull:{connection.public_id}"):
        try:
            session = Session(connection)
            try:
                for calendar in calendars:
                    _pull_calendar(session, connection, calendar, now, attempt, report)
            finally:
                session.close()
        except AccessRevoked:
            connection_mark_broken(connection)
            raise
        except GoogleTrouble as trouble:
            if trouble.quota:
                _back_off(connection, trouble)
            raise
        GoogleConnection.objects.filter(pk=connection.pk).update(pulled_at=timezone.now())
    return report


def _list(
    session: Session, calendar_id: str, sync_token: str, now: dt.datetime, attempt: int, report: PullReport
) -> tuple[list[dict[str, Any]], str]:
    query: dict[str, Any] = {"calendarId": calendar_id, "singleEvents": True, "maxResults": PAGE_SIZE}
    if sync_token:
        query["syncToken"] = sync_token
    else:
        query["timeMin"] = (now - WINDOW_BACK).strftime("%Y-%m-%dT%H:%M:%SZ")
    items: list[dict[str, Any]] = []
    page: str | None = None
    while True:
        report.requests += 1
        answer = session.run(session.service.events().list(pageToken=page, **query), attempt)
        items += answer.get("items", [])
        page = answer.get("nextPageToken")
        if not page:
            return items, str(answer.get("nextSyncToken", ""))


def _pull_calendar(
    session: Session,
    connection: GoogleConnection,
    calendar: GoogleCalendar,
    now: dt.datetime,
    attempt: int,
    report: PullReport,
) -> None:
    full = not calendar.sync_token
    try:
        items, next_token = _list(session, calendar.calendar_id, calendar.sync_token, now, attempt, report)
    except HttpError as error:
        if error.status_code == 410:  # the sync token expired: list everything again, over what is here
            full = True
            items, next_token = _list(session, calendar.calendar_id, "", now, attempt, report)
        elif error.status_code == 404:
            _calendar_gone(connection, calendar)
            return
        else:
            raise
    report.full = report.full or full
    report.listed += len(items)
    is_default = calendar.calendar_id == connection.default_calendar_id
    ours = [i for i in items if is_default and OUR_EVENT_ID.match(str(i.get("id", "")))]
    theirs = [i for i in items if not (is_default and OUR_EVENT_ID.match(str(i.get("id", ""))))]
    _apply_external(connection, calendar, theirs, full, now, report)
    if ours:
        _apply_ours(connection, ours)
    GoogleCalendar.objects.filter(pk=calendar.pk).update(sync_token=next_token)


def _calendar_gone(connection: GoogleConnection, calendar: GoogleCalendar) -> None:
    """Deleted in Google. A secondary calendar stops being pulled (its events stay, as on removal); the
    default one leaves the connection without a place for our events until another is chosen."""
    with transaction.atomic():
        GoogleCalendar.objects.filter(pk=calendar.pk).update(selected=False, sync_token="")
        if calendar.calendar_id == connection.default_calendar_id:
            GoogleConnection.objects.filter(pk=connection.pk).update(
                default_calendar_id="",
                problem="Your default Google calendar was deleted in Google. Choose a default calendar again.",
            )
            GoogleEvent.objects.filter(connection=connection).delete()


@dataclass(frozen=True)
class ExternalFields:
    title: str
    all_day: bool
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    first_date: dt.date | None
    last_date: dt.date | None
    busy: bool
    recurring: str


def external_fields(item: dict[str, Any]) -> ExternalFields | None:
    """An OtherEvent's fields for a Google event (None when its times cannot be read)."""
    start, end = item.get("start", {}), item.get("end", {})
    title = str(item.get("summary") or "(No title)")[:120]
    busy = item.get("transparency", "opaque") != "transparent"
    recurring = str(item.get("recurringEventId", ""))
    try:
        if "date" in start:
            first = dt.date.fromisoformat(start["date"])
            last = dt.date.fromisoformat(end.get("date", start["date"])) - dt.timedelta(days=1)
            return ExternalFields(title, True, None, None, first, max(first, last), busy, recurring)
        begins, finishes = _instant(start["dateTime"]), _instant(end["dateTime"])
    except (KeyError, ValueError, TypeError):
        return None
    if finishes <= begins:
        finishes = begins + dt.timedelta(minutes=1)
    return ExternalFields(title, False, begins, finishes, None, None, busy, recurring)


EXTERNAL_COLUMNS = (
    "title",
    "all_day",
    "starts_at",
    "ends_at",
    "first_date",
    "last_date",
    "busy",
    "google_recurring_id",
)


def _apply_external(
    connection: GoogleConnection,
    calendar: GoogleCalendar,
    items: list[dict[str, Any]],
    full: bool,
    now: dt.datetime,
    report: PullReport,
) -> None:
    """Google's events (not ours) as external OtherEvents of this calendar: one transaction, bulk writes.
    A full listing is applied over what is here, then what it no longer holds is removed."""
    here = OtherEvent.objects.filter(
        clinic_id=connection.clinic_id,
        practitioner_id=connection.practitioner_id,
        google_calendar_id=calendar.calendar_id,
    ).exclude(google_event_id="")
    # A full listing is compared with every row of the calendar; an incremental one (up to a page of changes)
    # only with the rows it names, not the calendar's thousands.
    listed_ids = {str(item.get("id", "")) for item in items} - {""}
    known = here if full or len(listed_ids) > PAGE_SIZE else here.filter(google_event_id__in=listed_ids)
    existing = {row[0]: row[1:] for row in known.values_list("google_event_id", "pk", *EXTERNAL_COLUMNS)}
    creates: list[OtherEvent] = []
    updates: list[OtherEvent] = []
    removed_ids: set[str] = set()
    removed_series: set[str] = set()
    seen: set[str] = set()
    for item in items:
        event_id = str(item.get("id", ""))
        if not event_id:
            continue
        if item.get("status") == "cancelled":
            removed_ids.add(event_id)
            if not item.get("recurringEventId"):
                removed_series.add(event_id)  # a deleted series comes as one item with the series' id
            continue
        fields = external_fields(item)
        if fields is None:
            continue
        seen.add(event_id)
        values = (
            fields.title,
            fields.all_day,
            fields.starts_at,
            fields.ends_at,
            fields.first_date,
            fields.last_date,
            fields.busy,
            fields.recurring,
        )
        old = existing.get(event_id)
        if old is None:
            creates.append(
                OtherEvent(
                    clinic_id=connection.clinic_id,
                    practitioner_id=connection.practitioner_id,
                    google_calendar_id=calendar.calendar_id,
                    google_event_id=event_id,
                    **dict(zip(EXTERNAL_COLUMNS, values, strict=True)),
                )
            )
            existing[event_id] = (None, *values)
        elif tuple(old[1:]) != values:
            event = OtherEvent(pk=old[0], **dict(zip(EXTERNAL_COLUMNS, values, strict=True)))
            updates.append(event)
    if full:
        window_start = now - WINDOW_BACK
        for event_id, row in existing.items():
            if event_id in seen or row[0] is None:
                continue
            all_day, ends_at, last_date = row[2], row[4], row[6]
            if (all_day and last_date >= window_start.date()) or (not all_day and ends_at >= window_start):
                removed_ids.add(event_id)
    with transaction.atomic():
        if removed_ids or removed_series:
            gone = here.filter(Q(google_event_id__in=removed_ids) | Q(google_recurring_id__in=removed_series))
            report.deleted += gone.delete()[0]
        if creates:
            report.created += len(OtherEvent.objects.bulk_create(creates, batch_size=1000))
        if updates:
            for event in updates:
                event.updated_at = now
            report.updated += OtherEvent.objects.bulk_update(
                updates, [*EXTERNAL_COLUMNS, "updated_at"], batch_size=1000
            )


def _apply_ours(connection: GoogleConnection, items: list[dict[str, Any]]) -> None:
    """Our events as Google now has them. Deleted: an appointment with completed notes or cancelled
    ignores it (it goes back at its next push), any other appointment is cancelled here, an other event
    is deleted here. Changed: a client event is sent again (its title is ours); an other event takes
    Google's title, times and busy/free."""
    rows = {
        row.event_id: row
        for row in GoogleEvent.objects.filter(connection=connection, event_id__in=[i["id"] for i in items])
    }
    repush: list[str] = []
    actor = connection.practitioner.user
    for item in items:
        row = rows.get(item["id"])
        if row is None:
            continue  # from an earlier connection, or already forgotten here
        if item.get("status") == "cancelled":
            if row.deleted_in_google:
                continue
            _deleted_in_google(connection, row, actor)
        elif shown_fingerprint(item) != row.fingerprint:
            if row.key.startswith("a"):
                repush.append(row.key)
            else:
                _other_event_from_google(connection, row, item)
    if repush:
        with transaction.atomic():
            GoogleEvent.objects.filter(connection=connection, key__in=repush).update(fingerprint="")
            GooglePending.objects.bulk_create(
                [GooglePending(clinic_id=connection.clinic_id, connection=connection, key=k) for k in repush]
            )
            _queue_push_on_commit(connection.pk)


def _deleted_in_google(connection: GoogleConnection, row: GoogleEvent, actor: Any) -> None:
    clinic = connection.clinic
    with transaction.atomic():
        GoogleEvent.objects.filter(pk=row.pk).update(deleted_in_google=True)
        if row.key.startswith("a"):
            appointment = Appointment.objects.for_clinic(clinic).filter(pk=int(row.key[1:])).first()
            if (
                appointment is None
                or appointment.status == AppointmentStatus.CANCELLED
                or appointment.notes_completed
                or actor is None
            ):
                return  # ignored: it goes back to Google at its next push
            try:
                appointment_cancel(
                    clinic=clinic, actor=actor, appointment=appointment, reason="Deleted in Google Calendar"
                )
            except BookingError:
                return
        else:
            event = OtherEvent.objects.for_clinic(clinic).filter(pk=int(row.key[1:]), google_event_id="").first()
            if event is not None and actor is not None:
                other_event_delete(clinic=clinic, actor=actor, event=event)


def _other_event_from_google(connection: GoogleConnection, row: GoogleEvent, item: dict[str, Any]) -> None:
    fields = external_fields(item)
    if fields is None:
        return
    from calendar_sync.services import feeds_changed

    with transaction.atomic():
        changed = (
            OtherEvent.objects.for_clinic(connection.clinic)
            .filter(pk=int(row.key[1:]), google_event_id="")
            .update(
                title=fields.title,
                all_day=fields.all_day,
                starts_at=fields.starts_at,
                ends_at=fields.ends_at,
                first_date=fields.first_date,
                last_date=fields.last_date,
                busy=fields.busy,
                updated_at=timezone.now(),
            )
        )
        if changed:
            # What Google shows is now what we would send: no push back.
            GoogleEvent.objects.filter(pk=row.pk).update(fingerprint=shown_fingerprint(item))
            transaction.on_commit(partial(feeds_changed, [connection.practitioner_id], [row.key]))


# --- Push notifications (events.watch) --------------------------------------------------------------------


def webhook_address() -> str:
    origin = settings.GOOGLE_WEBHOOK_ORIGIN.rstrip("/")
    return origin + reverse("calendar_sync:google-webhook") if origin else ""


def channel_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def channels_renew(now: dt.datetime | None = None) -> int:
    """Watch every synced calendar that has no channel, or one expiring within a day; stop the old one."""
    address = webhook_address()
    if not address:
        return 0
    now = now or timezone.now()
    made = 0
    synced = (
        GoogleCalendar.objects.select_related("connection")
        .filter(connection__state=GoogleState.CONNECTED)
        .exclude(connection__default_calendar_id="")
        .filter(
            connection__practitioner__feed_subscription__sync_type=SyncType.TWO_WAY,
            connection__practitioner__feed_subscription__enabled=True,
        )
    )
    for calendar in synced:
        connection = calendar.connection
        if not (calendar.selected or calendar.calendar_id == connection.default_calendar_id):
            continue
        current = list(GoogleChannel.objects.filter(calendar=calendar))
        if any(c.expires_at > now + CHANNEL_RENEW_BEFORE for c in current):
            continue
        try:
            session = Session(connection)
        except AccessRevoked:
            connection_mark_broken(connection)
            continue
        try:
            token = secrets.token_urlsafe(24)
            channel_id = str(uuid.uuid4())
            answer = session.run(
                session.service.events().watch(
                    calendarId=calendar.calendar_id,
                    body={
                        "id": channel_id,
                        "type": "web_hook",
                        "address": address,
                        "token": token,
                        "params": {"ttl": str(int(CHANNEL_TTL.total_seconds()))},
                    },
                )
            )
            expires = dt.datetime.fromtimestamp(int(answer.get("expiration", 0)) / 1000, tz=dt.UTC)
            with transaction.atomic():
                GoogleChannel.objects.create(
                    clinic_id=connection.clinic_id,
                    calendar=calendar,
                    channel_id=channel_id,
                    resource_id=str(answer.get("resourceId", "")),
                    token_hash=channel_token_hash(token),
                    expires_at=expires,
                )
                GoogleChannel.objects.filter(pk__in=[c.pk for c in current]).delete()
            made += 1
            _stop_channels(session, current)
        except AccessRevoked:
            connection_mark_broken(connection)
        except (GoogleTrouble, HttpError) as error:
            log.warning("google watch failed for calendar %s: %s", calendar.pk, type(error).__name__)
        finally:
            session.close()
    return made


def _stop_channels(session: Session, channels: list[GoogleChannel]) -> None:
    for channel in channels:
        try:
            session.run(
                session.service.channels().stop(body={"id": channel.channel_id, "resourceId": channel.resource_id})
            )
        except (GoogleTrouble, HttpError):
            log.info("google channel %s not stopped (it expires by itself)", channel.channel_id)


def _stop_channels_quietly(connection_id: int, channels: list[GoogleChannel]) -> None:
    if not channels:
        return
    connection = GoogleConnection.objects.filter(pk=connection_id).first()
    if connection is None or connection.state != GoogleState.CONNECTED:
        return
    try:
        session = Session(connection)
    except AccessRevoked:
        return
    _stop_channels(session, channels)


def channel_for_notification(channel_id: str, token: str) -> GoogleChannel | None:
    """The channel a notification names, when its token matches. Read across clinics: Google's request
    carries no session; the channel's secret token is its credential."""
    channel = GoogleChannel.objects.select_related("calendar__connection").filter(channel_id=channel_id[:64]).first()
    if channel is None or not secrets.compare_digest(channel.token_hash, channel_token_hash(token)):
        return None
    return channel


def connections_to_pull() -> Iterator[GoogleConnection]:
    yield from (
        _active_connections()
        .filter(Q(backoff_until__isnull=True) | Q(backoff_until__lte=timezone.now()))
        .only("pk", "public_id")
    )


def connections_with_pending() -> list[int]:
    return list(GooglePending.objects.values_list("connection_id", flat=True).distinct())
