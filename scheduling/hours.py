"""Wall-clock hours (office hours, availability windows) and the interval arithmetic on them.

Weekly hours are stored as {"1": [["09:00", "12:30"], ["13:30", "17:00"]], ...}: ISO weekday to
ranges on the wall clock of a named zone. They become UTC intervals one local date at a time, so
a 09:00 start stays 09:00 local on both sides of a DST change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

UTC = dt.UTC
Interval = tuple[dt.datetime, dt.datetime]
TimeRange = tuple[dt.time, dt.time]
WEEKDAYS = range(1, 8)


class HoursError(ValueError):
    """Hours that cannot be saved; the message is shown to the user."""


def parse_time(value: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise HoursError(f"“{value}” is not a time (use HH:MM).") from exc


def clean_ranges(ranges: Iterable[Sequence[str]]) -> list[TimeRange]:
    """Parsed, sorted ranges; refuses an end not after its start and overlapping ranges."""
    parsed = []
    for pair in ranges:
        if len(pair) != 2:
            raise HoursError("Each range needs a start and an end.")
        start, end = parse_time(pair[0]), parse_time(pair[1])
        if end <= start:
            raise HoursError(f"{start:%H:%M}–{end:%H:%M}: the end must be after the start.")
        parsed.append((start, end))
    parsed.sort()
    for (_, end), (start, _) in zip(parsed, parsed[1:], strict=False):
        if start < end:
            raise HoursError(f"Ranges overlap around {start:%H:%M}; join them into one.")
    return parsed


def ranges_to_json(ranges: Iterable[TimeRange]) -> list[list[str]]:
    return [[f"{start:%H:%M}", f"{end:%H:%M}"] for start, end in ranges]


def weekly_from_json(weekly: Mapping[str, Sequence[Sequence[str]]]) -> dict[int, list[TimeRange]]:
    """Stored weekly hours as {weekday: [(start, end), ...]} (weekdays without hours are absent)."""
    result = {}
    for key, ranges in (weekly or {}).items():
        day = int(key)
        if day not in WEEKDAYS:
            raise HoursError(f"{key} is not an ISO weekday.")
        cleaned = clean_ranges(ranges)
        if cleaned:
            result[day] = cleaned
    return result


def weekly_to_json(weekly: Mapping[int, Iterable[TimeRange]]) -> dict[str, list[list[str]]]:
    return {str(day): ranges_to_json(ranges) for day, ranges in sorted(weekly.items()) if ranges}


def local_interval(date: dt.date, start: dt.time, end: dt.time, zone: ZoneInfo) -> Interval:
    """The UTC interval of [start, end) on `date` on the wall clock of `zone`."""
    return (
        dt.datetime.combine(date, start, tzinfo=zone).astimezone(UTC),
        dt.datetime.combine(date, end, tzinfo=zone).astimezone(UTC),
    )


def in_gap(date: dt.date, time: dt.time, zone: ZoneInfo) -> dt.datetime | None:
    """When `time` does not exist on `date` (the clocks jump over it), the wall time it would silently
    become (01:30 on the spring-forward night in London becomes 02:30 BST); None when it exists."""
    naive = dt.datetime.combine(date, time)
    shifted = naive.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)
    return shifted if shifted.replace(tzinfo=None) != naive else None


def repeats(date: dt.date, time: dt.time, zone: ZoneInfo) -> bool:
    """Whether the wall clock shows `time` twice on `date` (the night the clocks go back)."""
    naive = dt.datetime.combine(date, time)
    return naive.replace(tzinfo=zone, fold=0).utcoffset() != naive.replace(tzinfo=zone, fold=1).utcoffset() and (
        in_gap(date, time, zone) is None
    )


def gap_refusal(date: dt.date, time: dt.time, zone: ZoneInfo) -> str | None:
    """The message refusing a time the clocks jump over on that date, or None when it exists."""
    shifted = in_gap(date, time, zone)
    if shifted is None:
        return None
    return (
        f"There is no {time:%H:%M} on {date:%a %-d %b %Y} in {zone.key}: the clocks go forward that night "
        f"({time:%H:%M} would be {shifted:%H:%M %Z}). Choose a time outside the jump."
    )


def clock_change_note(date: dt.date, time: dt.time, zone: ZoneInfo, *, minutes: int = 0) -> str:
    """What a planned start at `time` on `date` meets on the wall clock of `zone`, in words ("" for nothing):
    a time the clocks jump over, a time they show twice, or a change during the next `minutes`."""
    day = f"{date:%a %-d %b %Y}"
    shifted = in_gap(date, time, zone)
    if shifted is not None:
        return f"{day}: {time:%H:%M} does not exist (the clocks go forward), so it starts at {shifted:%H:%M %Z}."
    start = dt.datetime.combine(date, time, tzinfo=zone)
    if repeats(date, time, zone):
        return f"{day}: {time:%H:%M} happens twice (the clocks go back); it starts at the first, {start:%H:%M %Z}."
    end = (start.astimezone(UTC) + dt.timedelta(minutes=minutes)).astimezone(zone)
    if end.utcoffset() != start.utcoffset():
        return f"{day}: the clocks change during it; it runs {minutes} minutes and ends at {end:%H:%M %Z}."
    return ""


def local_day(date: dt.date, zone: ZoneInfo) -> Interval:
    """The UTC interval of a whole local date (23 or 25 hours long on DST days)."""
    return (
        dt.datetime.combine(date, dt.time(), tzinfo=zone).astimezone(UTC),
        dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(UTC),
    )


def dates_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def hours_intervals(
    *,
    weekly: Mapping[int, Sequence[TimeRange]],
    zone: ZoneInfo,
    first_date: dt.date,
    last_date: dt.date,
    overrides: Mapping[dt.date, Sequence[TimeRange]] | None = None,
) -> list[Interval]:
    """UTC intervals of weekly hours over local dates first..last; an override replaces its date's hours."""
    overrides = overrides or {}
    intervals: list[Interval] = []
    for date in dates_between(first_date, last_date):
        ranges = overrides[date] if date in overrides else weekly.get(date.isoweekday(), ())
        intervals.extend(local_interval(date, start, end, zone) for start, end in ranges)
    return merge(intervals)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping, non-touching intervals covering the same time."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract(intervals: Iterable[Interval], taken: Iterable[Interval]) -> list[Interval]:
    """The parts of `intervals` not covered by `taken`."""
    remaining = merge(intervals)
    for cut_start, cut_end in merge(taken):
        result = []
        for start, end in remaining:
            if cut_end <= start or cut_start >= end:
                result.append((start, end))
                continue
            if start < cut_start:
                result.append((start, cut_start))
            if cut_end < end:
                result.append((cut_end, end))
        remaining = result
    return remaining


def clip(intervals: Iterable[Interval], window: Interval) -> list[Interval]:
    """The intervals cut to `window`."""
    low, high = window
    return [(max(start, low), min(end, high)) for start, end in intervals if end > low and start < high]
