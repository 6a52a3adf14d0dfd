"""Reads of the calendar: the grid's rows, other events, office hours, remembered filters, free time for online
booking, and the calendar page assembled from them in a fixed number of queries whatever is on it.

Grid reads return rows as NamedTuples: a busy week is thousands of slots, and model instances would cost
more than the rest of the page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet, Sum
from django.urls import reverse

from clinic.models import Location
from clinic.replica import primary_reads, reading_replica
from clinic.selectors import practitioners_list
from patients.display import staff_label
from patients.models import may_see_blocked
from scheduling.grid import (
    AppointmentRow,
    CalendarQuery,
    SessionRow,
    SessionSummaryRow,
    SlotRow,
    build_grid,
    month_weeks,
)
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
    Appointment,
    AppointmentSource,
    Availability,
    AvailabilityOverride,
    CalendarPreference,
    OfficeHours,
    OtherEvent,
    Session,
    Slot,
)
from scheduling.signals import practitioners_synced_to_google, source_names

if TYPE_CHECKING:
    from clinic.models import Clinic, Membership, Practitioner


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
) -> tuple[list[SessionRow], list[SlotRow], list[AppointmentRow]]:
    """Sessions, slots and live appointments of the grid: three queries whatever the amount."""
    sessions = calendar_sessions(clinic=clinic, scope=scope)
    session_rows = list(
        map(
            SessionRow._make,
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
                "travel_clinic",
                "out_state",
                "out_reason",
            ),
        )
    )
    slot_rows = list(
        map(
            SlotRow._make,
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
                "held_count",
                "retired",
            ),
        )
    )
    # An appointment starts when its slot does (booking copies the time; a slot keeps its start, and a twin made for
    # displaced patients copies it), so the slots' first and last starts bound the appointments' too: the query reads
    # the week's appointments by the clinic's start-time index instead of every appointment the clinic has.
    # (The slots come in order of their start.)
    first_start, last_start = (slot_rows[0].starts_at, slot_rows[-1].starts_at) if slot_rows else (scope.starts_at,) * 2
    appointment_rows = list(
        map(
            AppointmentRow._make,
            Appointment.objects.for_clinic(clinic)
            .live()
            .filter(slot__session__in=sessions, starts_at__range=(first_start, last_start))
            .order_by("starts_at", "id")
            .values_list(
                "slot_id",
                "status",
                "patient__first_name",
                "patient__last_name",
                "patient__preferred_name",
                "patient__internal_id",
                "patient__is_blocked",
                "source",
                "id",
            ),
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


def month_summaries(*, clinic: Clinic, scope: CalendarScope) -> list[SessionSummaryRow]:
    """Per session: its start, and bookable places and bookings (one query; the month view sums them by day)."""
    bookable = Q(slots__bookable=True)
    return list(
        map(
            SessionSummaryRow._make,
            calendar_sessions(clinic=clinic, scope=scope)
            .annotate(
                places=Sum("slots__capacity", filter=bookable, default=0),
                booked=Sum("slots__booked_count", filter=bookable, default=0),
            )
            .order_by()
            .values_list("starts_at", "places", "booked"),
        )
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


def free_times(
    *, clinic: Clinic, practitioners: Sequence[Practitioner], starts_at: dt.datetime, ends_at: dt.datetime
) -> dict[int, list[Interval]]:
    """Each practitioner's free bookable time in [starts_at, ends_at): availability windows (with date
    overrides), less live appointments and busy events; an all-day busy event blocks its whole day.

    Five queries whatever the number of practitioners. A practitioner without availability has no free time.
    """
    return open_for_online_booking(
        clinic=clinic,
        practitioner_ids=[p.pk for p in practitioners],
        starts_at=starts_at,
        ends_at=ends_at,
        less_appointments=True,
    )


def open_for_online_booking(
    *,
    clinic: Clinic,
    practitioner_ids: Sequence[int],
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    less_appointments: bool,
) -> dict[int, list[Interval]]:
    """Each practitioner's online-booking windows in [starts_at, ends_at) (weekly hours, replaced by a date's
    override), less busy events (an all-day one blocks its whole day, on the availability's clock) and, with
    less_appointments, live appointments. At most four queries, whatever the number of practitioners or days."""
    ids = list(practitioner_ids)
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
    if less_appointments:
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


PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


CLINIC_WIDE_LABEL = "Clinic-wide"


@dataclass
class Shown:
    """Who the calendar shows: every practitioner the filters let through, and the tab's choice."""

    practitioners: list[Practitioner]  # all active ones, for the filter
    locations: list[Location]
    filtered: list[Practitioner]
    columns: list[Practitioner]  # the tab's practitioner, or everyone filtered
    tab: Practitioner | None
    location_ids: list[int]
    include_clinic_wide: bool


def shown(*, clinic: Clinic, query: CalendarQuery, zone: ZoneInfo) -> Shown:
    """Who the calendar shows. A location filter keeps the practitioners with a session at one of those
    locations in the viewed dates (where a session runs, not where a practitioner is usually based)."""
    practitioners = list(practitioners_list(clinic=clinic).filter(is_active=True).order_by("name", "id"))
    locations = list(Location.objects.for_clinic(clinic).filter(is_active=True).order_by("name", "id"))
    by_public_id = {str(p.public_id): p for p in practitioners}
    chosen = [by_public_id[key] for key in query.practitioners if key in by_public_id]
    filtered = chosen or practitioners
    location_ids = [loc.pk for loc in locations if str(loc.public_id) in query.locations]
    if location_ids:
        running = set(
            calendar_sessions(
                clinic=clinic,
                scope=CalendarScope(
                    practitioner_ids=[p.pk for p in filtered],
                    include_clinic_wide=False,
                    location_ids=location_ids,
                    starts_at=local_day(query.first_date, zone)[0],
                    ends_at=local_day(query.last_date, zone)[1],
                    first_date=query.first_date,
                    last_date=query.last_date,
                ),
            ).values_list("practitioner_id", flat=True)
        )
        filtered = [p for p in filtered if p.pk in running]
    tab = by_public_id.get(query.tab) if query.view != "month" else None
    if tab is not None and tab not in filtered:
        tab = None
    return Shown(
        practitioners=practitioners,
        locations=locations,
        filtered=filtered,
        columns=[tab] if tab else filtered,
        tab=tab,
        location_ids=location_ids,
        include_clinic_wide=tab is None and not chosen,
    )


def office_hours_intervals(
    *, clinic: Clinic, keys: list[int | None], first: dt.date, last: dt.date
) -> dict[int | None, list[Interval] | None]:
    """Each column's office hours as UTC intervals: the practitioner's own, else the practice default."""
    default, own = office_hours_of(clinic=clinic, practitioner_ids=[k for k in keys if k is not None])
    cache: dict[int, list[Interval]] = {}

    def intervals(hours: OfficeHours | None) -> list[Interval] | None:
        if hours is None:
            return None
        if hours.pk not in cache:
            cache[hours.pk] = hours_intervals(
                weekly=weekly_from_json(hours.weekly),
                zone=ZoneInfo(hours.time_zone),
                first_date=first - dt.timedelta(days=1),
                last_date=last + dt.timedelta(days=1),
            )
        return cache[hours.pk]

    return {key: intervals(own.get(key, default) if key is not None else default) for key in keys}


def calendar_page(
    *, clinic: Clinic, membership: Membership, query: CalendarQuery, zone: ZoneInfo, today: dt.date
) -> dict[str, Any]:
    who = shown(clinic=clinic, query=query, zone=zone)
    first, last = query.first_date, query.last_date
    scope = CalendarScope(
        practitioner_ids=[p.pk for p in who.columns],
        include_clinic_wide=who.include_clinic_wide,
        location_ids=who.location_ids,
        starts_at=local_day(first, zone)[0],
        ends_at=local_day(last, zone)[1],
        first_date=first,
        last_date=last,
    )
    context: dict[str, Any] = {"query": query, "shown": who}
    if query.view == "month":
        summaries = month_summaries(clinic=clinic, scope=scope)
        all_day = calendar_events(clinic=clinic, scope=scope).filter(all_day=True).select_related("practitioner")
        context["weeks"] = month_weeks(
            query=query, zone=zone, today=today, session_rows=summaries, all_day_events=all_day
        )
        return context

    session_rows, slot_rows, appointment_rows = calendar_grid_rows(clinic=clinic, scope=scope)
    sees_blocked = may_see_blocked(membership)
    if not sees_blocked and appointment_rows and reading_replica(Appointment):
        # The rows came from a read replica, perhaps a moment behind; whether a patient is blocked is an access
        # rule, read on the primary (one query, only then), so a patient blocked a moment ago is never named.
        with primary_reads():
            blocked_now = set(
                Appointment.objects.for_clinic(clinic)
                .filter(pk__in=[row.id for row in appointment_rows], patient__is_blocked=True)
                .values_list("pk", flat=True)
            )
        appointment_rows = [row._replace(is_blocked=row.id in blocked_now) for row in appointment_rows]
    appointments: dict[int, list[tuple[str, str, str, str]]] = {}
    # Where each booking came from, in words: a source's observer may name more (the FHIR consumer).
    source_labels = dict(AppointmentSource.choices)
    named = source_names(clinic.pk, [row.id for row in appointment_rows if row.source != AppointmentSource.RECEPTION])
    for row in appointment_rows:
        label = staff_label(
            first_name=row.first_name,
            last_name=row.last_name,
            preferred_name=row.preferred_name,
            internal_id=row.internal_id,
            is_blocked=row.is_blocked,
            may_see_blocked=sees_blocked,
            internal_ids_enabled=clinic.internal_ids_enabled,
        )
        words = named.get(row.id) or source_labels[row.source]
        appointments.setdefault(row.slot_id, []).append((label, row.status, row.source, words))
    events = calendar_events(clinic=clinic, scope=scope)
    column_keys: list[tuple[int | None, str, str]] = [(p.pk, p.name, str(p.public_id)) for p in who.columns]
    if who.include_clinic_wide and any(row.practitioner_id is None for row in session_rows):
        column_keys.append((None, CLINIC_WIDE_LABEL, ""))
    dates = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    context["grid"] = build_grid(
        dates=dates,
        column_keys=column_keys,
        zone=zone,
        today=today,
        session_rows=session_rows,
        slot_rows=slot_rows,
        appointments_by_slot=appointments,
        events=events,
        office_hours=office_hours_intervals(clinic=clinic, keys=[k for k, _, _ in column_keys], first=first, last=last),
        slot_url=reverse("scheduling:slot", args=[PLACEHOLDER]),
        event_url=reverse("scheduling:event-edit", args=[PLACEHOLDER]),
        locked=practitioners_synced_to_google([p.pk for p in who.columns]),
    )
    return context


# Office hours and availability pages ----------------------------------------------------------------


def office_hours_own(*, clinic: Clinic, practitioner: Practitioner | None) -> OfficeHours | None:
    """A practitioner's own office hours, or the practice default's (practitioner None)."""
    return OfficeHours.objects.for_clinic(clinic).filter(practitioner=practitioner).first()


def hours_zone_default(*, clinic: Clinic, practitioner: Practitioner | None) -> str:
    """The zone new hours start in: the practitioner's own, else their usual location's, else the clinic's."""
    if practitioner is not None:
        if practitioner.time_zone:
            return practitioner.time_zone
        if practitioner.default_location is not None:
            return practitioner.default_location.time_zone
    return clinic.time_zone


def availability_of(*, clinic: Clinic, practitioner: Practitioner) -> Availability | None:
    return Availability.objects.for_clinic(clinic).filter(practitioner=practitioner).first()


def practitioners_with_availability(*, clinic: Clinic, practitioners: Sequence[Practitioner]) -> set[int]:
    """The primary keys of those practitioners who have weekly availability set up (one query)."""
    return set(
        Availability.objects.for_clinic(clinic)
        .filter(practitioner__in=practitioners)
        .values_list("practitioner_id", flat=True)
    )


def availability_override_on(
    *, clinic: Clinic, practitioner: Practitioner, dates: Sequence[dt.date]
) -> AvailabilityOverride | None:
    return AvailabilityOverride.objects.for_clinic(clinic).filter(practitioner=practitioner, date__in=dates).first()


def availability_overrides_from(
    *, clinic: Clinic, practitioner: Practitioner, first_date: dt.date
) -> QuerySet[AvailabilityOverride]:
    return AvailabilityOverride.objects.for_clinic(clinic).filter(practitioner=practitioner, date__gte=first_date)
