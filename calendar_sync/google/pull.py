"""Pull: bring Google's changes here.

Each pulled calendar is listed with its sync token (a 410 means a full listing, applied over the local rows
without deleting them first). A full listing covers the product's window only (WINDOW_BACK to WINDOW_AHEAD
around now), and is made again once the window has moved WINDOW_STEP: an incremental listing never brings the
unchanged instances of a series that enter the window. Rows wholly outside the window are removed. A series
deleted or cut in Google comes as instance tombstones near the change only, so each series an incremental
listing cancelled instances of (or changed as a whole) is checked against events.instances over the window.

Events that are not ours become external OtherEvents tied to the calendar they came from; only real busy time
blocks online booking (see ``is_busy``). Ours that changed in Google obey the help page: a client event's title
is ours (overwritten), a deleted client event is ignored when its notes are completed or it is cancelled (and
goes back to Google at its next push), other events follow Google.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from googleapiclient.errors import HttpError

from calendar_sync.feed.build import feeds_changed
from calendar_sync.feed.sources import WINDOW_AHEAD, WINDOW_BACK
from calendar_sync.google.changes import pull_flag, queue_push_on_commit
from calendar_sync.google.client import (
    AccessRevoked,
    ClientRefused,
    GoogleTrouble,
    client_refused,
    client_refused_record,
    error_reason,
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
from calendar_sync.google.events import OUR_EVENT_ID, instant, shown_fingerprint
from calendar_sync.google.pacing import PULL
from calendar_sync.keys import ItemKey
from calendar_sync.models import GoogleCalendar, GoogleConnection, GoogleEvent, GooglePending, GoogleRefusal
from scheduling.models import Appointment, AppointmentStatus, CancelCategory, OtherEvent
from scheduling.services.booking import BookingError, appointment_cancel
from scheduling.services.calendar import other_event_delete

log = logging.getLogger(__name__)

PAGE_SIZE = 2500  # events per page of events.list (Google's maximum)
WINDOW_STEP = dt.timedelta(days=7)  # list in full again once the window's start has moved this far
# Event types that are busy time when opaque (https://developers.google.com/calendar/api/guides/event-types):
# out of office is; focus time only when the practitioner wants it; working location, birthday and fromGmail
# (an event Gmail made from a mail) never are.
BUSY_TYPES = frozenset({"default", "outOfOffice"})


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
    loaded = connection_by_id(connection_id)
    if loaded is None:
        return PullReport()
    connection, subscription = loaded
    cache.delete(pull_flag(connection.public_id, calendar_pk))
    if not sync_active(connection, subscription) or backing_off(connection) or client_refused():
        return PullReport()
    now = now or timezone.now()
    calendars = (
        GoogleCalendar.objects.for_clinic(connection.clinic_id)
        .filter(connection=connection)
        .filter(Q(selected=True) | Q(calendar_id=connection.default_calendar_id))
    )
    if calendar_pk is not None:
        calendars = calendars.filter(pk=calendar_pk)
    # A calendar Google refused to list waits for the practitioner (Sync now), instead of failing every pull.
    refused = set(
        GoogleRefusal.objects.for_clinic(connection.clinic_id)
        .filter(connection=connection, verb="list")
        .values_list("key", flat=True)
    )
    report = PullReport()
    with held(f"google:pull:{connection.public_id}"):
        try:
            session = Session(connection, kind=PULL)
            try:
                for calendar in calendars:
                    if calendar.refusal_key in refused:
                        continue
                    _pull_calendar(session, connection, calendar, now, attempt, report)
            finally:
                session.close()
        except AccessRevoked:
            connection_mark_broken(connection)
            raise
        except ClientRefused as refusal:
            client_refused_record(str(refusal))
            raise
        except GoogleTrouble as trouble:
            if trouble.quota:
                back_off(connection, trouble)
            raise
        GoogleConnection.objects.for_clinic(connection.clinic_id).filter(pk=connection.pk).update(
            pulled_at=timezone.now()
        )
    return report


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _list(
    session: Session, calendar_id: str, sync_token: str, now: dt.datetime, attempt: int, report: PullReport
) -> tuple[list[dict[str, Any]], str]:
    query: dict[str, Any] = {"calendarId": calendar_id, "singleEvents": True, "maxResults": PAGE_SIZE}
    if sync_token:
        query["syncToken"] = sync_token
    else:
        query["timeMin"], query["timeMax"] = _stamp(now - WINDOW_BACK), _stamp(now + WINDOW_AHEAD)
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
    window_start = now - WINDOW_BACK
    token = calendar.sync_token
    if token and (calendar.window_start is None or window_start - calendar.window_start >= WINDOW_STEP):
        token = ""  # the window moved: list it in full, over the rows here (as after a 410)
    full = not token
    try:
        items, next_token = _list(session, calendar.calendar_id, token, now, attempt, report)
    except HttpError as error:
        if error.status_code == 410:  # the sync token expired: list everything again, over what is here
            full = True
            items, next_token = _list(session, calendar.calendar_id, "", now, attempt, report)
        elif error.status_code == 404:
            _calendar_gone(connection, calendar)
            return
        elif 400 <= error.status_code < 500:  # not a rate limit (those are GoogleTrouble): refused for good
            _listing_refused(connection, calendar, error)
            return
        else:
            raise
    report.full = report.full or full
    report.listed += len(items)
    is_default = calendar.calendar_id == connection.default_calendar_id
    ours = [i for i in items if is_default and OUR_EVENT_ID.match(str(i.get("id", "")))]
    theirs = [i for i in items if not (is_default and OUR_EVENT_ID.match(str(i.get("id", ""))))]
    _apply_external(connection, calendar, theirs, full, now, report)
    if not full:
        _reconcile_series(session, connection, calendar, theirs, now, attempt, report)
    if ours:
        _apply_ours(connection, ours)
    marks: dict[str, Any] = {"sync_token": next_token}
    if full:
        marks["window_start"] = window_start
    GoogleCalendar.objects.for_clinic(connection.clinic_id).filter(pk=calendar.pk).update(**marks)


def _listing_refused(connection: GoogleConnection, calendar: GoogleCalendar, error: HttpError) -> None:
    reason = error_reason(error)
    log.warning(
        "google pull refused: connection %s, listing calendar %s (%s %s); not retried until Sync now",
        connection.pk,
        calendar.pk,
        error.status_code,
        reason,
    )
    GoogleRefusal.objects.for_clinic(connection.clinic_id).update_or_create(
        connection=connection,
        key=calendar.refusal_key,
        defaults={"clinic_id": connection.clinic_id, "verb": "list", "status": error.status_code, "reason": reason},
    )


def _calendar_gone(connection: GoogleConnection, calendar: GoogleCalendar) -> None:
    """Deleted in Google. A secondary calendar stops being pulled (its events stay, as on removal); the
    default one leaves the connection without a place for our events until another is chosen."""
    clinic_id = connection.clinic_id
    with transaction.atomic():
        GoogleCalendar.objects.for_clinic(clinic_id).filter(pk=calendar.pk).update(selected=False, sync_token="")
        if calendar.calendar_id == connection.default_calendar_id:
            GoogleConnection.objects.for_clinic(clinic_id).filter(pk=connection.pk).update(
                default_calendar_id="",
                problem="Your default Google calendar was deleted in Google. Choose a default calendar again.",
            )
            GoogleEvent.objects.for_clinic(clinic_id).filter(connection=connection).delete()


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


def is_busy(item: dict[str, Any], *, focus_time_busy: bool) -> bool:
    """Whether a Google event is busy time: opaque, not declined by the calendar's own attendee (the entry
    Google marks ``self``), and of a type that is busy (BUSY_TYPES; focus time when ``focus_time_busy``)."""
    if item.get("transparency", "opaque") == "transparent":
        return False
    attendees = item.get("attendees") or []
    if any(isinstance(a, dict) and a.get("self") and a.get("responseStatus") == "declined" for a in attendees):
        return False
    kind = item.get("eventType") or "default"
    return kind in BUSY_TYPES or (kind == "focusTime" and focus_time_busy)


def external_fields(item: dict[str, Any], *, focus_time_busy: bool) -> ExternalFields | None:
    """An OtherEvent's fields for a Google event (None when its times cannot be read). Events that are not
    busy time are kept as free events: shown on the calendar, never blocking booking."""
    start, end = item.get("start", {}), item.get("end", {})
    title = str(item.get("summary") or "(No title)")[:120]
    busy = is_busy(item, focus_time_busy=focus_time_busy)
    recurring = str(item.get("recurringEventId", ""))
    try:
        if "date" in start:
            first = dt.date.fromisoformat(start["date"])
            last = dt.date.fromisoformat(end.get("date", start["date"])) - dt.timedelta(days=1)
            return ExternalFields(title, True, None, None, first, max(first, last), busy, recurring)
        begins, finishes = instant(start["dateTime"]), instant(end["dateTime"])
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
    A full listing is applied over what is here, then what it no longer holds is removed. Nothing wholly
    outside the window is kept."""
    window_start, window_end = now - WINDOW_BACK, now + WINDOW_AHEAD
    external = OtherEvent.objects.for_clinic(connection.clinic_id)
    here = external.filter(practitioner_id=connection.practitioner_id, google_calendar_id=calendar.calendar_id).exclude(
        google_event_id=""
    )
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
        fields = external_fields(item, focus_time_busy=connection.focus_time_busy)
        if fields is None or _outside(fields, window_start, window_end):
            continue  # an incremental listing expands a changed series past the window: not kept
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
        report.deleted += here.filter(_outside_window(window_start, window_end)).delete()[0]
        if creates:
            report.created += len(external.bulk_create(creates, batch_size=1000))
        if updates:
            for event in updates:
                event.updated_at = now
            report.updated += external.bulk_update(updates, [*EXTERNAL_COLUMNS, "updated_at"], batch_size=1000)


def _outside(fields: ExternalFields, window_start: dt.datetime, window_end: dt.datetime) -> bool:
    if fields.all_day:
        assert fields.first_date is not None and fields.last_date is not None
        return fields.last_date < window_start.date() or fields.first_date > window_end.date()
    assert fields.starts_at is not None and fields.ends_at is not None
    return fields.ends_at <= window_start or fields.starts_at >= window_end


def _outside_window(window_start: dt.datetime, window_end: dt.datetime) -> Q:
    """Rows wholly outside the window (as ``_outside`` reads a Google event)."""
    return (
        Q(all_day=False, ends_at__lte=window_start)
        | Q(all_day=False, starts_at__gte=window_end)
        | Q(all_day=True, last_date__lt=window_start.date())
        | Q(all_day=True, first_date__gt=window_end.date())
    )


def _reconcile_series(
    session: Session,
    connection: GoogleConnection,
    calendar: GoogleCalendar,
    items: list[dict[str, Any]],
    now: dt.datetime,
    attempt: int,
    report: PullReport,
) -> None:
    """Google sends a deleted or cut ("this and following") series as tombstones of its instances, and only
    of those near the change: the rows of every series an incremental listing cancelled instances of, or
    brought more than one instance of (the series itself changed), are checked against events.instances over
    the window (one listing a series), and those Google no longer has are removed."""
    counts: Counter[str] = Counter()
    cancelled: set[str] = set()
    for item in items:
        series = str(item.get("recurringEventId") or "")
        if series:
            counts[series] += 1
            if item.get("status") == "cancelled":
                cancelled.add(series)
    suspects = cancelled | {series for series, n in counts.items() if n > 1}
    if not suspects:
        return
    here = (
        OtherEvent.objects.for_clinic(connection.clinic_id)
        .filter(practitioner_id=connection.practitioner_id, google_calendar_id=calendar.calendar_id)
        .exclude(google_event_id="")
    )
    stored = set(here.filter(google_recurring_id__in=suspects).values_list("google_recurring_id", flat=True))
    for series in sorted(stored):
        live = _instances(session, calendar.calendar_id, series, now, attempt, report)
        with transaction.atomic():
            report.deleted += here.filter(google_recurring_id=series).exclude(google_event_id__in=live).delete()[0]


def _instances(
    session: Session, calendar_id: str, series: str, now: dt.datetime, attempt: int, report: PullReport
) -> set[str]:
    """The ids of a series' live instances in the window (none when the series is gone)."""
    live: set[str] = set()
    page: str | None = None
    while True:
        report.requests += 1
        request = session.service.events().instances(
            calendarId=calendar_id,
            eventId=series,
            timeMin=_stamp(now - WINDOW_BACK),
            timeMax=_stamp(now + WINDOW_AHEAD),
            maxResults=PAGE_SIZE,
            pageToken=page,
        )
        try:
            answer = session.run(request, attempt)
        except HttpError as error:
            if error.status_code in (404, 410):  # the series itself was deleted (and purged)
                return set()
            raise
        live |= {str(i.get("id", "")) for i in answer.get("items", []) if i.get("status") != "cancelled"}
        page = answer.get("nextPageToken")
        if not page:
            return live


def _apply_ours(connection: GoogleConnection, items: list[dict[str, Any]]) -> None:
    """Our events as Google now has them. Deleted: an appointment with completed notes or cancelled
    ignores it (it goes back at its next push), any other appointment is cancelled here, an other event
    is deleted here. Changed: a client event is sent again (its title is ours); an other event takes
    Google's title, times and busy/free."""
    pushed = GoogleEvent.objects.for_clinic(connection.clinic_id).filter(connection=connection)
    rows = {row.event_id: row for row in pushed.filter(event_id__in=[i["id"] for i in items])}
    repush: list[GoogleEvent] = []
    actor = connection.practitioner.user
    for item in items:
        row = rows.get(item["id"])
        if row is None:
            continue  # from an earlier connection, or already forgotten here
        key = ItemKey.parse(row.key)
        if item.get("status") == "cancelled":
            if row.deleted_in_google:
                continue
            _deleted_in_google(connection, row, key, actor)
        elif key.is_appointment and (shown_fingerprint(item) != row.fingerprint or item.get("attendees")):
            # A client event is ours (its title, times, and no guests: they would see the client's title).
            row.fingerprint, row.etag = "", str(item.get("etag", ""))
            repush.append(row)
        elif shown_fingerprint(item) != row.fingerprint:
            other_event_from_google(connection, key, item)
    if repush:
        with transaction.atomic():
            pushed.bulk_update(repush, ["fingerprint", "etag"])
            GooglePending.objects.for_clinic(connection.clinic_id).bulk_create(
                [GooglePending(clinic_id=connection.clinic_id, connection=connection, key=r.key) for r in repush]
            )
            queue_push_on_commit(connection.clinic_id, connection.pk)


def _deleted_in_google(connection: GoogleConnection, row: GoogleEvent, key: ItemKey, actor: User | None) -> None:
    clinic = connection.clinic
    with transaction.atomic():
        GoogleEvent.objects.for_clinic(clinic).filter(pk=row.pk).update(deleted_in_google=True)
        if key.is_appointment:
            appointment = Appointment.objects.for_clinic(clinic).filter(pk=key.pk).first()
            if (
                appointment is None
                or appointment.status == AppointmentStatus.CANCELLED
                or appointment.notes_completed
                or actor is None
            ):
                return  # ignored: it goes back to Google at its next push
            try:
                appointment_cancel(
                    clinic=clinic,
                    actor=actor,
                    appointment=appointment,
                    reason="Deleted in Google Calendar",
                    category=CancelCategory.CLINICIAN,
                )
            except BookingError:
                return
        else:
            event = OtherEvent.objects.for_clinic(clinic).filter(pk=key.pk, google_event_id="").first()
            if event is not None and actor is not None:
                other_event_delete(clinic=clinic, actor=actor, event=event)


def other_event_from_google(connection: GoogleConnection, key: ItemKey, item: dict[str, Any]) -> None:
    """One of our other events as edited in Google: Google's title, times and busy/free are taken here."""
    fields = external_fields(item, focus_time_busy=connection.focus_time_busy)
    if fields is None:
        return
    with transaction.atomic():
        changed = (
            OtherEvent.objects.for_clinic(connection.clinic)
            .filter(pk=key.pk, google_event_id="")
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
            GoogleEvent.objects.for_clinic(connection.clinic_id).filter(connection=connection, key=key.text).update(
                fingerprint=shown_fingerprint(item), etag=str(item.get("etag", ""))
            )
            feeds_changed([connection.practitioner_id], [key])
