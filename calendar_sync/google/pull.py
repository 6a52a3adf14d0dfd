"""Pull: bring Google's changes here.

Each pulled calendar is listed with its sync token (a 410 means a full listing, applied over the local rows
without deleting them first). Events that are not ours become external OtherEvents tied to the calendar
they came from; busy ones block online booking. Ours that changed in Google obey the help page: a client
event's title is ours (overwritten), a deleted client event is ignored when its notes are completed or it
is cancelled (and goes back to Google at its next push), other events follow Google.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from googleapiclient.errors import HttpError

from calendar_sync.feed.build import feeds_changed
from calendar_sync.feed.sources import WINDOW_BACK
from calendar_sync.google.changes import pull_flag, queue_push_on_commit
from calendar_sync.google.client import AccessRevoked, GoogleTrouble
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
from calendar_sync.models import GoogleCalendar, GoogleConnection, GoogleEvent, GooglePending
from scheduling.models import Appointment, AppointmentStatus, OtherEvent
from scheduling.services.booking import BookingError, appointment_cancel
from scheduling.services.calendar import other_event_delete

PAGE_SIZE = 2500  # events per page of events.list (Google's maximum)


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
    if not sync_active(connection, subscription) or backing_off(connection):
        return PullReport()
    now = now or timezone.now()
    calendars = (
        GoogleCalendar.objects.for_clinic(connection.clinic_id)
        .filter(connection=connection)
        .filter(Q(selected=True) | Q(calendar_id=connection.default_calendar_id))
    )
    if calendar_pk is not None:
        calendars = calendars.filter(pk=calendar_pk)
    report = PullReport()
    with held(f"google:pull:{connection.public_id}"):
        try:
            session = Session(connection, kind=PULL)
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
                back_off(connection, trouble)
            raise
        GoogleConnection.objects.for_clinic(connection.clinic_id).filter(pk=connection.pk).update(
            pulled_at=timezone.now()
        )
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
    GoogleCalendar.objects.for_clinic(connection.clinic_id).filter(pk=calendar.pk).update(sync_token=next_token)


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
    A full listing is applied over what is here, then what it no longer holds is removed."""
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
            report.created += len(external.bulk_create(creates, batch_size=1000))
        if updates:
            for event in updates:
                event.updated_at = now
            report.updated += external.bulk_update(updates, [*EXTERNAL_COLUMNS, "updated_at"], batch_size=1000)


def _apply_ours(connection: GoogleConnection, items: list[dict[str, Any]]) -> None:
    """Our events as Google now has them. Deleted: an appointment with completed notes or cancelled
    ignores it (it goes back at its next push), any other appointment is cancelled here, an other event
    is deleted here. Changed: a client event is sent again (its title is ours); an other event takes
    Google's title, times and busy/free."""
    pushed = GoogleEvent.objects.for_clinic(connection.clinic_id).filter(connection=connection)
    rows = {row.event_id: row for row in pushed.filter(event_id__in=[i["id"] for i in items])}
    repush: list[ItemKey] = []
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
        elif shown_fingerprint(item) != row.fingerprint:
            if key.is_appointment:
                repush.append(key)
            else:
                _other_event_from_google(connection, row, key, item)
    if repush:
        with transaction.atomic():
            pushed.filter(key__in=[k.text for k in repush]).update(fingerprint="")
            GooglePending.objects.for_clinic(connection.clinic_id).bulk_create(
                [GooglePending(clinic_id=connection.clinic_id, connection=connection, key=k.text) for k in repush]
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
                    clinic=clinic, actor=actor, appointment=appointment, reason="Deleted in Google Calendar"
                )
            except BookingError:
                return
        else:
            event = OtherEvent.objects.for_clinic(clinic).filter(pk=key.pk, google_event_id="").first()
            if event is not None and actor is not None:
                other_event_delete(clinic=clinic, actor=actor, event=event)


def _other_event_from_google(
    connection: GoogleConnection, row: GoogleEvent, key: ItemKey, item: dict[str, Any]
) -> None:
    fields = external_fields(item)
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
            GoogleEvent.objects.for_clinic(connection.clinic_id).filter(pk=row.pk).update(
                fingerprint=shown_fingerprint(item)
            )
            feeds_changed([connection.practitioner_id], [key])
