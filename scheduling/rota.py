"""The rota generator: which dates an allocation covers, and the sessions and slots it makes.

Wall-clock rule: a template starting at 08:00 starts at 08:00 in the location's zone on every
date, DST or not. The start is resolved per date with zoneinfo and converted to UTC at once;
slots then follow at exact minute offsets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sessions_setup.models import SessionTemplate, TemplateSlot

UTC = dt.UTC
MAX_ALLOCATION_DAYS = 2 * 366


class RotaError(ValueError):
    """An allocation that cannot be made; the message is shown to the user."""


def allocation_dates(
    *, first_date: dt.date, last_date: dt.date, weekdays: Iterable[int], every_weeks: int
) -> list[dt.date]:
    """Dates from first to last (inclusive) on the ISO weekdays given, in every Nth week.

    Weeks are counted from the Monday of the first date's week. With no weekdays, only the
    first date (a one-off allocation).
    """
    if last_date < first_date:
        raise RotaError("The last date is before the first date.")
    if (last_date - first_date).days > MAX_ALLOCATION_DAYS:
        raise RotaError("Allocate at most two years at a time.")
    if every_weeks < 1:
        raise RotaError("Repeat every 1 week or more.")
    days = set(weekdays)
    if not days:
        return [first_date]
    week_zero = first_date - dt.timedelta(days=first_date.weekday())
    result = []
    day = first_date
    while day <= last_date:
        if day.isoweekday() in days and ((day - week_zero).days // 7) % every_weeks == 0:
            result.append(day)
        day += dt.timedelta(days=1)
    return result


@dataclass(frozen=True)
class PlannedSession:
    date: dt.date
    starts_at: dt.datetime  # UTC
    ends_at: dt.datetime  # UTC


def local_start(date: dt.date, start_time: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of `start_time` on `date` on the wall clock of `zone`."""
    return dt.datetime.combine(date, start_time, tzinfo=zone).astimezone(UTC)


def plan_sessions(
    *, dates: Sequence[dt.date], start_time: dt.time, time_zone: str, duration_minutes: int
) -> list[PlannedSession]:
    zone = ZoneInfo(time_zone)
    length = dt.timedelta(minutes=duration_minutes)
    planned = []
    for date in dates:
        start = local_start(date, start_time, zone)
        planned.append(PlannedSession(date, start, start + length))
    return planned


def template_slots(template: SessionTemplate) -> list[TemplateSlot]:
    """The template's slots in order, with their slot types (uses a prefetch when there is one)."""
    if "slots" in getattr(template, "_prefetched_objects_cache", {}):
        return sorted(template.slots.all(), key=lambda s: s.position)
    return list(template.slots.select_related("slot_type").order_by("position"))
