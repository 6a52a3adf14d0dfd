"""The calendar page assembled from its reads: a fixed number of queries whatever is on it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.urls import reverse

from clinic.models import Clinic, Location, Membership, NamedPermission, Practitioner
from clinic.selectors import practitioners_list
from patients.display import staff_label
from scheduling import selectors
from scheduling.calendar import CalendarQuery, build_grid, month_weeks
from scheduling.hours import Interval, hours_intervals, local_day, weekly_from_json
from scheduling.models import OfficeHours
from scheduling.signals import practitioners_synced_to_google

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


def shown(*, clinic: Clinic, query: CalendarQuery) -> Shown:
    practitioners = list(practitioners_list(clinic=clinic).filter(is_active=True).order_by("name", "id"))
    locations = list(Location.objects.for_clinic(clinic).filter(is_active=True).order_by("name", "id"))
    by_public_id = {str(p.public_id): p for p in practitioners}
    chosen = [by_public_id[key] for key in query.practitioners if key in by_public_id]
    filtered = chosen or practitioners
    location_ids = [loc.pk for loc in locations if str(loc.public_id) in query.locations]
    if location_ids:
        filtered = [p for p in filtered if p.default_location_id is None or p.default_location_id in location_ids]
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
    default, own = selectors.office_hours_of(clinic=clinic, practitioner_ids=[k for k in keys if k is not None])
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
    who = shown(clinic=clinic, query=query)
    first, last = query.first_date, query.last_date
    scope = selectors.CalendarScope(
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
        session_rows = selectors.month_summaries(clinic=clinic, scope=scope)
        all_day = selectors.calendar_events(clinic=clinic, scope=scope).filter(all_day=True)
        context["weeks"] = month_weeks(
            query=query, zone=zone, today=today, session_rows=session_rows, all_day_events=all_day
        )
        return context

    session_rows, slot_rows, appointment_rows = selectors.calendar_grid_rows(clinic=clinic, scope=scope)
    may_see_blocked = membership.has_permission(NamedPermission.ACCESS_BLOCKED_PATIENTS)
    appointments: dict[int, list[tuple[str, str]]] = {}
    for slot_id, status, first_name, last_name, preferred, internal_id, blocked in appointment_rows:
        label = staff_label(
            first_name=first_name,
            last_name=last_name,
            preferred_name=preferred,
            internal_id=internal_id,
            is_blocked=blocked,
            may_see_blocked=may_see_blocked,
            internal_ids_enabled=clinic.internal_ids_enabled,
        )
        appointments.setdefault(slot_id, []).append((label, status))
    events = selectors.calendar_events(clinic=clinic, scope=scope)
    column_keys: list[tuple[int | None, str, str]] = [(p.pk, p.name, str(p.public_id)) for p in who.columns]
    if who.include_clinic_wide and any(row[1] is None for row in session_rows):
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
