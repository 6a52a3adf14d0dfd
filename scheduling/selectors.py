"""Reads of the rota, scoped to a clinic."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import Count, F, Q, QuerySet, Sum

from scheduling.hours import (
    Interval,
    TimeRange,
    clean_ranges,
    clip,
    dates_between,
    hours_intervals,
    local_day,
    subtract,
    weekly_from_json,
)
from scheduling.models import (
    Allocation,
    Appointment,
    Availability,
    AvailabilityOverride,
    CalendarPreference,
    DraftOccurrence,
    OfficeHours,
    OtherEvent,
    Session,
    Slot,
)
from sessions_setup.models import ReleaseRule, SlotType

if TYPE_CHECKING:
    from clinic.models import Clinic, Location, Membership, Practitioner


def sessions_clashing(
    *, clinic: Clinic, practitioner: Practitioner, starts_at: dt.datetime, ends_at: dt.datetime
) -> QuerySet[Session]:
    """The practitioner's sessions that overlap [starts_at, ends_at)."""
    return (
        Session.objects.for_clinic(clinic)
        .filter(practitioner=practitioner, starts_at__lt=ends_at, ends_at__gt=starts_at)
        .select_related("location")
        .order_by("starts_at")
    )


def allocations_list(*, clinic: Clinic, today: dt.date) -> QuerySet[Allocation]:
    return (
        Allocation.objects.for_clinic(clinic)
        .select_related("template", "practitioner", "location")
        .annotate(
            session_count=Count("sessions", distinct=True),
            future_count=Count("sessions", filter=Q(sessions__date__gte=today), distinct=True),
        )
    )


def sessions_of_day(*, clinic: Clinic, date: dt.date) -> QuerySet[Session]:
    """Every session on a local date, with free and booked slot counts, in one query."""
    bookable = Q(slots__bookable=True)
    return (
        Session.objects.for_clinic(clinic)
        .filter(date=date)
        .select_related("practitioner", "location")
        .annotate(
            slot_count=Count("slots", filter=bookable),
            capacity_total=Sum("slots__capacity", filter=bookable, default=0),
            booked_total=Sum("slots__booked_count", filter=bookable, default=0),
        )
        .annotate(free_total=F("capacity_total") - F("booked_total"))
        .order_by("starts_at", "practitioner__name", "id")
    )


def booked_future_slots(*, clinic: Clinic, allocation: Allocation, from_date: dt.date) -> QuerySet[Slot]:
    """Slots of the allocation's sessions from `from_date` on that hold bookings (or held them)."""
    return (
        Slot.objects.for_clinic(clinic)
        .filter(session__allocation=allocation, session__date__gte=from_date)
        # Cancelled appointments keep their slot too: the history must not be deleted with it.
        .filter(Q(booked_count__gt=0) | Q(appointments__isnull=False))
        .distinct()
        .select_related("session", "session__practitioner", "slot_type")
        .order_by("starts_at")
    )


# The calendar ---------------------------------------------------------------------------------
# Grid reads return plain tuples: a busy week is thousands of slots, and model instances would
# cost more than the rest of the page.


@dataclass(frozen=True)
class CalendarScope:
    """What one calendar page covers: whose sessions, where, and when (instants and local dates)."""

    practitioner_ids: Sequence[int]
    include_clinic_wide: bool  # sessions allocated to the clinic as a whole
    location_ids: Sequence[int]  # empty: every location
    starts_at: dt.datetime
    ends_at: dt.datetime
    first_date: dt.date
    last_date: dt.date


def calendar_sessions(*, clinic: Clinic, scope: CalendarScope) -> QuerySet[Session]:
    """Sessions overlapping the scope's instants, of its practitioners (and clinic-wide ones), maybe by location."""
    who = Q(practitioner_id__in=scope.practitioner_ids)
    if scope.include_clinic_wide:
        who |= Q(practitioner__isnull=True)
    sessions = Session.objects.for_clinic(clinic).filter(who, starts_at__lt=scope.ends_at, ends_at__gt=scope.starts_at)
    if scope.location_ids:
        sessions = sessions.filter(location_id__in=scope.location_ids)
    return sessions


def calendar_grid_rows(
    *, clinic: Clinic, scope: CalendarScope
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Sessions, slots and live appointments of the grid: three queries whatever the amount."""
    sessions = calendar_sessions(clinic=clinic, scope=scope)
    session_rows = list(
        sessions.order_by("starts_at", "id").values_list(
            "id",
            "practitioner_id",
            "starts_at",
            "ends_at",
            "name",
            "description",
            "colour",
            "closed_session",
            "location__name",
        )
    )
    slot_rows = list(
        Slot.objects.for_clinic(clinic)
        .filter(session__in=sessions)
        .order_by("starts_at", "position")
        .values_list(
            "id",
            "public_id",
            "session_id",
            "starts_at",
            "ends_at",
            "bookable",
            "capacity",
            "booked_count",
            "slot_type__name",
            "slot_type__colour",
        )
    )
    appointment_rows = list(
        Appointment.objects.for_clinic(clinic)
        .live()
        .filter(slot__session__in=sessions)
        .order_by("starts_at", "id")
        .values_list(
            "slot_id",
            "status",
            "patient__first_name",
            "patient__last_name",
            "patient__preferred_name",
            "patient__internal_id",
            "patient__is_blocked",
        )
    )
    return session_rows, slot_rows, appointment_rows


def calendar_events(*, clinic: Clinic, scope: CalendarScope) -> QuerySet[OtherEvent]:
    """Other events of the practitioners: timed ones overlapping the instants, all-day ones overlapping the dates."""
    return (
        OtherEvent.objects.for_clinic(clinic)
        .filter(practitioner_id__in=scope.practitioner_ids)
        .filter(
            Q(all_day=False, starts_at__lt=scope.ends_at, ends_at__gt=scope.starts_at)
            | Q(all_day=True, first_date__lte=scope.last_date, last_date__gte=scope.first_date)
        )
        .order_by("all_day", "starts_at", "first_date", "id")
    )


def month_summaries(*, clinic: Clinic, scope: CalendarScope) -> list[tuple[Any, ...]]:
    """Per session: its start, and bookable places and bookings (one query; the month view sums them by day)."""
    bookable = Q(slots__bookable=True)
    return list(
        calendar_sessions(clinic=clinic, scope=scope)
        .annotate(
            places=Sum("slots__capacity", filter=bookable, default=0),
            booked=Sum("slots__booked_count", filter=bookable, default=0),
        )
        .order_by()
        .values_list("starts_at", "places", "booked")
    )


def office_hours_of(
    *, clinic: Clinic, practitioner_ids: Sequence[int]
) -> tuple[OfficeHours | None, dict[int, OfficeHours]]:
    """The practice default and the practitioners' own office hours: one query."""
    rows = OfficeHours.objects.for_clinic(clinic).filter(
        Q(practitioner__isnull=True) | Q(practitioner_id__in=practitioner_ids)
    )
    default = None
    own = {}
    for row in rows:
        if row.practitioner_id is None:
            default = row
        else:
            own[row.practitioner_id] = row
    return default, own


def calendar_preference(*, clinic: Clinic, membership: Membership) -> CalendarPreference | None:
    return CalendarPreference.objects.for_clinic(clinic).filter(membership=membership).first()


def slot_details(*, clinic: Clinic, slot_public_id: Any) -> Slot | None:
    """The slot with its session, practitioner, location and type; None when there is none (or no valid id)."""
    try:
        UUID(str(slot_public_id))
    except ValueError:
        return None
    return (
        Slot.objects.for_clinic(clinic)
        .select_related("session", "session__practitioner", "session__location", "slot_type")
        .filter(public_id=slot_public_id)
        .first()
    )


def chosen_slots(
    *, clinic: Clinic, public_ids: Sequence[str], practitioner: Practitioner, slot_type: SlotType
) -> dict[str, Slot]:
    """Slots of a practitioner and type named in a form, by public id (ids that are not UUIDs name nothing)."""
    valid = []
    for value in public_ids:
        try:
            valid.append(UUID(value))
        except ValueError:
            continue
    found = Slot.objects.for_clinic(clinic).filter(
        public_id__in=valid, session__practitioner=practitioner, slot_type=slot_type
    )
    return {str(slot.public_id): slot for slot in found}


def slot_appointments(*, clinic: Clinic, slot: Slot) -> QuerySet[Appointment]:
    return (
        Appointment.objects.for_clinic(clinic)
        .live()
        .filter(slot=slot)
        .select_related("patient", "slot_type")
        .order_by("created_at", "id")
    )


# Free time for online booking -------------------------------------------------------------------


def free_times(
    *, clinic: Clinic, practitioners: Sequence[Practitioner], starts_at: dt.datetime, ends_at: dt.datetime
) -> dict[int, list[Interval]]:
    """Each practitioner's free bookable time in [starts_at, ends_at): availability windows (with date
    overrides), less live appointments and busy events; an all-day busy event blocks its whole day.

    Five queries whatever the number of practitioners. A practitioner without availability has no free time.
    """
    ids = [p.pk for p in practitioners]
    availabilities = {
        a.practitioner_id: a for a in Availability.objects.for_clinic(clinic).filter(practitioner_id__in=ids)
    }
    result: dict[int, list[Interval]] = {pk: [] for pk in ids}
    if not availabilities:
        return result
    # A day either side: a window in a far zone can reach into the range from a neighbouring local date.
    first = (starts_at - dt.timedelta(days=1)).date()
    last = (ends_at + dt.timedelta(days=1)).date()
    overrides: dict[int, dict[dt.date, list[TimeRange]]] = {}
    for override in AvailabilityOverride.objects.for_clinic(clinic).filter(
        practitioner_id__in=availabilities, date__range=(first, last)
    ):
        overrides.setdefault(override.practitioner_id, {})[override.date] = clean_ranges(override.hours)
    taken: dict[int, list[Interval]] = {}
    for pk, start, end in (
        Appointment.objects.for_clinic(clinic)
        .live()
        .filter(practitioner_id__in=availabilities, starts_at__lt=ends_at, ends_at__gt=starts_at)
        .values_list("practitioner_id", "starts_at", "ends_at")
    ):
        taken.setdefault(pk, []).append((start, end))
    busy_days: dict[int, list[tuple[dt.date, dt.date]]] = {}
    for event in OtherEvent.objects.for_clinic(clinic).filter(
        Q(all_day=False, starts_at__lt=ends_at, ends_at__gt=starts_at)
        | Q(all_day=True, first_date__lte=last, last_date__gte=first),
        practitioner_id__in=availabilities,
        busy=True,
    ):
        if event.all_day:
            busy_days.setdefault(event.practitioner_id, []).append((event.first_date, event.last_date))
        else:
            taken.setdefault(event.practitioner_id, []).append((event.starts_at, event.ends_at))
    for pk, availability in availabilities.items():
        zone = ZoneInfo(availability.time_zone)
        windows = hours_intervals(
            weekly=weekly_from_json(availability.weekly),
            zone=zone,
            first_date=first,
            last_date=last,
            overrides=overrides.get(pk),
        )
        blocked = list(taken.get(pk, []))
        for day_first, day_last in busy_days.get(pk, []):
            blocked += [local_day(day, zone) for day in dates_between(max(day_first, first), min(day_last, last))]
        result[pk] = clip(subtract(windows, blocked), (starts_at, ends_at))
    return result


# Next available, reports, a patient's appointments ----------------------------------------------------------

NEXT_AVAILABLE_LIMIT = 10


def next_available(
    *,
    clinic: Clinic,
    now: dt.datetime,
    slot_type: SlotType | None = None,
    practitioner: Practitioner | None = None,
    location: Location | None = None,
    after: dt.datetime | None = None,
    limit: int = NEXT_AVAILABLE_LIMIT,
) -> list[Slot]:
    """The next free places from `after` (default now), soonest first, honouring each slot type's release
    rule: book-on-the-day slots only on the day, "N days before" slots only from N days before.

    Two queries: the clinic's slot types (to turn release rules into time limits), then the slots.
    """
    zone = ZoneInfo(clinic.time_zone)
    end_of_today = local_day(now.astimezone(zone).date(), zone)[1]
    released = Q()
    for kind in (
        SlotType.objects.for_clinic(clinic).filter(bookable=True).only("pk", "release_rule", "release_days_before")
    ):
        if kind.release_rule == ReleaseRule.ON_THE_DAY:
            released |= Q(slot_type=kind.pk, starts_at__lt=end_of_today)
        elif kind.release_rule == ReleaseRule.DAYS_BEFORE:
            released |= Q(slot_type=kind.pk, starts_at__lt=end_of_today + dt.timedelta(days=kind.release_days_before))
        else:
            released |= Q(slot_type=kind.pk)
    if not released:
        return []
    slots = Slot.objects.for_clinic(clinic).filter(
        released, bookable=True, booked_count__lt=F("capacity"), starts_at__gte=max(after or now, now)
    )
    if slot_type is not None:
        slots = slots.filter(slot_type=slot_type)
    if practitioner is not None:
        slots = slots.filter(session__practitioner=practitioner)
    if location is not None:
        slots = slots.filter(session__location=location)
    return list(
        slots.select_related("slot_type", "session", "session__practitioner", "session__location").order_by(
            "starts_at", "id"
        )[:limit]
    )


def appointments_report(
    *, clinic: Clinic, first_date: dt.date, last_date: dt.date, category: str = ""
) -> list[dict[str, Any]]:
    """Appointments by the reporting category of their type and by status, over local dates (one query)."""
    zone = ZoneInfo(clinic.time_zone)
    rows = Appointment.objects.for_clinic(clinic).filter(
        starts_at__gte=local_day(first_date, zone)[0], starts_at__lt=local_day(last_date, zone)[1]
    )
    if category:
        rows = rows.filter(slot_type__reporting_category=category)
    return list(
        rows.values("slot_type__reporting_category", "status")
        .annotate(count=Count("id"))
        .order_by("slot_type__reporting_category", "status")
    )


def patient_appointments(*, clinic: Clinic, patient: Any) -> QuerySet[Appointment]:
    """A patient's appointments, newest first, with what a list shows (and the series each belongs to)."""
    return (
        Appointment.objects.for_clinic(clinic)
        .filter(patient=patient)
        .select_related("slot_type", "practitioner", "slot__session__location", "series")
        .order_by("-starts_at", "-id")
    )


def open_drafts(*, clinic: Clinic, patient: Any = None, series: Any = None) -> QuerySet[DraftOccurrence]:
    """Draft occurrences still waiting for a slot, of a patient's series or of one series, soonest first."""
    drafts = DraftOccurrence.objects.for_clinic(clinic).open()
    if patient is not None:
        drafts = drafts.filter(series__patient=patient)
    if series is not None:
        drafts = drafts.filter(series=series)
    return drafts.select_related("series", "series__slot_type", "series__practitioner").order_by("starts_at", "id")


def slots_on_date(
    *, clinic: Clinic, practitioner: Practitioner, slot_type: SlotType, day: dt.date, zone: ZoneInfo
) -> list[Slot]:
    """The practitioner's slots of a type with a free place on a local date (one query)."""
    starts, ends = local_day(day, zone)
    return list(
        Slot.objects.for_clinic(clinic)
        .filter(
            session__practitioner=practitioner,
            slot_type=slot_type,
            bookable=True,
            booked_count__lt=F("capacity"),
            starts_at__gte=starts,
            starts_at__lt=ends,
        )
        .select_related("slot_type", "session", "session__practitioner", "session__location")
        .order_by("starts_at", "id")
    )


# A series' preview ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OccurrenceMatch:
    """One occurrence of a series and the slot it would take: None when no session has one then."""

    starts_at: dt.datetime
    slot: Slot | None
    full: bool = False

    @property
    def bookable(self) -> bool:
        return self.slot is not None and not self.full


def series_preview(
    *, clinic: Clinic, practitioner: Practitioner, slot_type: SlotType, occurrences: Sequence[dt.datetime]
) -> list[OccurrenceMatch]:
    """Match each occurrence to a slot of the practitioner and type starting then (a free one first): one query."""
    candidates = (
        Slot.objects.for_clinic(clinic)
        .filter(session__practitioner=practitioner, slot_type=slot_type, bookable=True, starts_at__in=list(occurrences))
        .select_related("session", "session__location")
        .order_by("starts_at", "booked_count", "id")
    )
    best: dict[dt.datetime, Slot] = {}
    for slot in candidates:
        current = best.get(slot.starts_at)
        if current is None or (current.free == 0 and slot.free > 0):
            best[slot.starts_at] = slot
    return [
        OccurrenceMatch(starts_at=moment, slot=best.get(moment), full=moment in best and best[moment].free == 0)
        for moment in occurrences
    ]
