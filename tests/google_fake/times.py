"""Event times as the Calendar API reads and writes them, and the expansion of recurring events."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import rrule

from . import errors

UTC = dt.UTC


def zone(name: str | None) -> dt.tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise errors.invalid(f"Invalid time zone definition: {name}") from exc


def parse_rfc3339(value: str, *, parameter: str | None = None) -> dt.datetime:
    """An RFC 3339 timestamp with an offset, as timeMin/timeMax/updatedMin must be."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise errors.bad_request() from exc
    if parsed.tzinfo is None:
        raise errors.bad_request()
    return parsed


def format_rfc3339(moment: dt.datetime, tz: dt.tzinfo | None = None) -> str:
    local = moment.astimezone(tz or UTC).replace(microsecond=0)
    text = local.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def format_updated(moment: dt.datetime) -> str:
    """``updated``/``created`` use UTC with milliseconds: 2024-05-01T10:00:00.123Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class When:
    """An event's ``start``/``end``/``originalStartTime``: a date (all-day) or an instant plus an optional zone."""

    date: dt.date | None = None
    moment: dt.datetime | None = None
    time_zone: str | None = None

    @property
    def all_day(self) -> bool:
        return self.date is not None

    def instant(self, calendar_tz: str) -> dt.datetime:
        """The instant this time starts, dates read at midnight in the calendar's zone."""
        if self.moment is not None:
            return self.moment
        assert self.date is not None
        return dt.datetime.combine(self.date, dt.time(), tzinfo=zone(calendar_tz))

    def render(self, out_tz: str | None) -> dict[str, Any]:
        if self.date is not None:
            return {"date": self.date.isoformat()}
        assert self.moment is not None
        rendered: dict[str, Any] = {"dateTime": format_rfc3339(self.moment, zone(out_tz or self.time_zone))}
        if self.time_zone:
            rendered["timeZone"] = self.time_zone
        return rendered

    def stamp(self) -> str:
        """The suffix Google gives an instance's id: 20240105T090000Z, or 20240105 for all-day."""
        if self.date is not None:
            return self.date.strftime("%Y%m%d")
        assert self.moment is not None
        return self.moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_when(value: Any, field: str, *, recurring: bool = False) -> When:
    if not isinstance(value, dict):
        raise errors.required(f"Missing {field} time.")
    date_value, date_time, time_zone = value.get("date"), value.get("dateTime"), value.get("timeZone")
    if time_zone:
        zone(time_zone)
    if date_value and date_time:
        raise errors.bad_request(f"Invalid {field} time.")
    if date_value:
        try:
            return When(date=dt.date.fromisoformat(date_value))
        except (TypeError, ValueError) as exc:
            raise errors.bad_request(f"Invalid {field} time.") from exc
    if not date_time:
        raise errors.required(f"Missing {field} time.")
    try:
        moment = dt.datetime.fromisoformat(date_time)
    except (TypeError, ValueError) as exc:
        raise errors.bad_request(f"Invalid {field} time.") from exc
    if moment.tzinfo is None:
        if not time_zone:
            raise errors.required(f"Missing time zone definition for {field} time.")
        moment = moment.replace(tzinfo=zone(time_zone))
    elif recurring and not time_zone:
        # Google needs the zone to expand a recurrence across daylight-saving changes.
        raise errors.required(f"Missing time zone definition for {field} time.")
    return When(moment=moment.astimezone(UTC), time_zone=time_zone)


def parse_stamp(stamp: str) -> When | None:
    try:
        if "T" in stamp:
            moment = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            return When(moment=moment)
        return When(date=dt.datetime.strptime(stamp, "%Y%m%d").date())
    except ValueError:
        return None


_UNTIL = re.compile(r"UNTIL=(\d{8})(T\d{6})?(Z)?", re.IGNORECASE)


def _normalise_rule(line: str, all_day: bool) -> str:
    """dateutil wants UNTIL in UTC for zoned starts and floating for all-day ones; Google accepts either."""

    def fix(match: re.Match[str]) -> str:
        day, time_part = match.group(1), match.group(2)
        if all_day:
            return f"UNTIL={day}"
        return f"UNTIL={day}{time_part or 'T235959'}Z"

    return _UNTIL.sub(fix, line)


def recurrence_set(start: When, recurrence: list[str], calendar_tz: str) -> rrule.rruleset:
    """The occurrences of a recurring event, as datetimes (local wall time, zoned; naive for all-day)."""
    if not isinstance(recurrence, list) or not all(isinstance(line, str) for line in recurrence):
        raise errors.invalid("Invalid recurrence rule.")
    if start.date is not None:
        dtstart = dt.datetime.combine(start.date, dt.time())
    else:
        assert start.moment is not None
        dtstart = start.moment.astimezone(zone(start.time_zone or calendar_tz))
    lines = [_normalise_rule(line.strip(), start.all_day) for line in recurrence if line.strip()]
    try:
        parsed = rrule.rrulestr("\n".join(lines), dtstart=dtstart, forceset=True, unfold=True)
    except (ValueError, TypeError) as exc:
        raise errors.invalid("Invalid recurrence rule.") from exc
    assert isinstance(parsed, rrule.rruleset)
    return parsed


def occurrence_whens(
    start: When,
    recurrence: list[str],
    calendar_tz: str,
    window_start: dt.datetime | None,
    window_end: dt.datetime,
    limit: int,
) -> list[When]:
    """The original start of each occurrence that starts in [window_start, window_end]."""
    rules = recurrence_set(start, recurrence, calendar_tz)
    if start.date is not None:
        tz = zone(calendar_tz)

        def to_rule_time(moment: dt.datetime) -> dt.datetime:
            return moment.astimezone(tz).replace(tzinfo=None)
    else:

        def to_rule_time(moment: dt.datetime) -> dt.datetime:
            return moment

    lower = to_rule_time(window_start) if window_start is not None else None
    upper = to_rule_time(window_end)
    found: list[When] = []
    try:
        for occurrence in rules:
            if occurrence > upper or len(found) >= limit:
                break
            if lower is not None and occurrence < lower:
                continue
            if start.date is not None:
                found.append(When(date=occurrence.date()))
            else:
                found.append(When(moment=occurrence.astimezone(UTC), time_zone=start.time_zone))
    except TypeError as exc:  # naive EXDATE against a zoned start, and the like
        raise errors.invalid("Invalid recurrence rule.") from exc
    return found


def is_occurrence(start: When, recurrence: list[str], calendar_tz: str, original: When) -> bool:
    if start.all_day != original.all_day:
        return False
    rules = recurrence_set(start, recurrence, calendar_tz)
    if original.date is not None:
        probe = dt.datetime.combine(original.date, dt.time())
    else:
        assert original.moment is not None
        probe = original.moment
    try:
        return bool(rules.between(probe, probe, inc=True))
    except TypeError:
        return False


def shift(when: When, original_start: When, new_start: When) -> When:
    """``when`` moved by the distance between an occurrence and the series' first start."""
    if when.date is not None and original_start.date is not None and new_start.date is not None:
        return When(date=when.date + (new_start.date - original_start.date))
    assert when.moment is not None and original_start.moment is not None and new_start.moment is not None
    return When(moment=when.moment + (new_start.moment - original_start.moment), time_zone=when.time_zone)


# --- partial responses (the ``fields`` parameter) ---------------------------------------------------------

FieldTree = dict[str, "FieldTree | None"]


def parse_fields(expression: str) -> FieldTree:
    """``items(id,status),nextPageToken`` → ``{"items": {"id": None, "status": None}, "nextPageToken": None}``."""
    position = 0

    def parse_list() -> FieldTree:
        nonlocal position
        tree: FieldTree = {}
        while True:
            match = re.compile(r"\s*([A-Za-z0-9_*]+(?:/[A-Za-z0-9_*]+)*)\s*").match(expression, position)
            if not match:
                raise errors.invalid("Invalid field selection", location="fields")
            position = match.end()
            sub: FieldTree | None = None
            if position < len(expression) and expression[position] == "(":
                position += 1
                sub = parse_list()
                if position >= len(expression) or expression[position] != ")":
                    raise errors.invalid("Invalid field selection", location="fields")
                position += 1
            parts = match.group(1).split("/")
            node: FieldTree | None = sub
            for part in reversed(parts[1:]):
                node = {part: node}
            _merge(tree, parts[0], node)
            if position < len(expression) and expression[position] == ",":
                position += 1
                continue
            return tree

    tree = parse_list()
    if position != len(expression):
        raise errors.invalid("Invalid field selection", location="fields")
    return tree


def _merge(tree: FieldTree, key: str, node: FieldTree | None) -> None:
    if key not in tree:
        tree[key] = node
        return
    existing = tree[key]
    if existing is None or node is None:
        tree[key] = None
        return
    for sub_key, sub_node in node.items():
        _merge(existing, sub_key, sub_node)


def select_fields(value: Any, tree: FieldTree | None) -> Any:
    if tree is None:
        return value
    if isinstance(value, list):
        return [select_fields(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    selected: dict[str, Any] = {}
    for key, sub in tree.items():
        keys = list(value) if key == "*" else [key] if key in value else []
        for name in keys:
            selected[name] = select_fields(value[name], sub)
    return selected
