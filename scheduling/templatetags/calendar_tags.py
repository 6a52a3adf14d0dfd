"""Small filters for the calendar pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django import template
from django.forms import BoundField
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from scheduling.grid import Grid, Group
from scheduling.grid import clock as wall_clock
from scheduling.grid_html import columns_html, slot_kinds_html
from scheduling.hours import HoursError, ranges_to_json, weekly_from_json
from scheduling.models import WEEKDAY_NAMES, DisplacedState, DisplacedWhy

register = template.Library()


@register.filter
def weekly_summary(weekly: dict[str, list[list[str]]]) -> list[tuple[str, str]]:
    """[("Mon", "09:00–12:30, 13:30–17:00"), ...] for the days that have hours."""
    try:
        days = weekly_from_json(weekly)
    except (HoursError, ValueError):
        return []
    return [
        (WEEKDAY_NAMES[day - 1][:3], ", ".join(f"{a}–{b}" for a, b in ranges_to_json(ranges)))
        for day, ranges in sorted(days.items())
    ]


@register.filter
def ranges_summary(hours: list[list[str]]) -> str:
    return ", ".join(f"{a}–{b}" for a, b in hours) if hours else ""


@register.filter(expects_localtime=True)
def clock(value: dt.datetime | dt.time | None) -> str:
    """HH:MM on the page's clock (the viewer's zone, or the one a `timezone` filter chose), with the zone's
    abbreviation where the clocks show that time twice: "01:00 BST", then "01:00 GMT"."""
    if isinstance(value, dt.datetime):
        return wall_clock(value) if value.tzinfo is not None else f"{value:%H:%M}"
    if isinstance(value, dt.time):
        return f"{value:%H:%M}"
    return ""


@register.filter
def why_label(value: str) -> str:
    """Why an appointment was displaced, in words."""
    return DisplacedWhy(value).label if value in DisplacedWhy.values else value


@register.filter
def state_label(value: str) -> str:
    return DisplacedState(value).label if value in DisplacedState.values else value


@register.filter
def at(items: Sequence[object], index: int) -> object:
    """The item at a position (the roster's column of a cell)."""
    try:
        return items[int(index)]
    except (IndexError, TypeError, ValueError):
        return None


@register.simple_tag
def grid_columns(group: Group, grid: Grid, online_only: bool) -> SafeString:
    """A calendar day's columns (scheduling.grid_html): written in Python, a busy week has thousands of cells."""
    return columns_html(group, grid, online_only=online_only)


@register.simple_tag
def grid_slot_kinds(grid: Grid) -> SafeString:
    """What the columns' slot data refers to (scheduling.grid_html): after every column of the grid."""
    return slot_kinds_html(grid)


@register.simple_tag
def checkboxes(field: BoundField) -> SafeString:
    """A multiple-choice field's boxes, each in its label, as Django's own widget writes them (the calendar's
    filter lists every practitioner: its widget templates cost more than the rest of the menu)."""
    boxes = []
    for box in field.subwidgets:
        data = box.data
        checked = " checked" if data["selected"] else ""
        boxes.append(
            format_html(
                '<label class="check"><input type="{}" name="{}" value="{}" id="{}"{}> {}</label>',
                data["type"],
                data["name"],
                data["value"],
                data["attrs"]["id"],
                checked,
                data["label"],
            )
        )
    return mark_safe("".join(boxes))  # noqa: S308 - each part was made by format_html
