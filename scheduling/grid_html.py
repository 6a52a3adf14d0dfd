"""The calendar grid's cells as HTML, written here in one place rather than by the template.

A busy week (the All tab) is thousands of slots; Django's template engine costs a node per tag and variable, and a
slot had dozens of them. Each column's body (its background, greyed hours, sessions, slots and timed events) is
joined here from the cells scheduling.grid.build_grid made, with every text escaped, and the template prints it.

The markup is the grid's own: a slot or timed event is a plain link in its column (calendar.js opens the popup for
any link of a `.cal-col`, so they carry no data attribute of their own); a slot's link keeps its id
(`slot-<public id>`, on the date it starts), which the popups' focus, the #slot-… addresses and the tests rely on.
"""

from __future__ import annotations

from html import escape

from django.utils.safestring import SafeString, mark_safe

from scheduling.grid import Column, Grid, Group

CLOSED_ICON = '<span class="ico ico-closed" role="img" aria-label="Closed session"></span>'
TRAVEL_ICON = '<span class="ico ico-travel" role="img" aria-label="Travel clinic" title="Travel clinic"></span>'
GROUP_ICON = '<span class="ico ico-group" role="img" aria-label="Group"></span>'
LOCK_ICON = '<span class="ico ico-lock" role="img" aria-label="Synced to Google" title="Synced to Google"></span>'
GOOGLE_BADGE = '<span class="src-google" role="img" aria-label="From Google Calendar">G</span> '
ALL_DAY_GOOGLE_BADGE = (
    '<span class="src-google" role="img" aria-label="From Google Calendar" title="From Google Calendar">G</span> '
)


def columns_html(group: Group, grid: Grid, *, online_only: bool = False) -> SafeString:
    """A day's columns: each with its heading (unless every day has one column), its all-day events, and its
    timed cells (column_body)."""
    rows = grid.time_range.rows
    parts = []
    for column in group.columns:
        date, who = column.date.isoformat(), escape(column.public_id)
        head = ""
        if not grid.single_column_groups:
            label = escape(column.label)
            head = f'<h3 class="cal-col-head" title="{label}">{label}</h3>'
        chips = []
        for e in column.all_day:
            css = "allday-chip" + ("" if e["busy"] else " free") + (" google" if e["google"] else "")
            badge = ALL_DAY_GOOGLE_BADGE if e["google"] else ""
            chips.append(f'<a class="{css}" href="{e["href"]}" data-tip-link>{badge}{escape(str(e["title"]))}</a>')
        parts.append(
            f'<div class="cal-colwrap">{head}<div class="cal-allday" data-date="{date}" data-practitioner="{who}">'
            f'{"".join(chips)}</div><div class="{column.css}" data-date="{date}" data-practitioner="{who}">'
            f"{column_body(column, rows, online_only=online_only)}</div></div>"
        )
    return mark_safe("\n".join(parts))  # noqa: S308 - every text is escaped; classes, dates and links are ours


def column_body(column: Column, rows: int, *, online_only: bool = False) -> str:
    """A column's cells: the full-height background, off hours, sessions, slots (with online_only, only those
    booked or held online) and timed events."""
    parts = [f'<span class="fill r1 h{rows}"></span>']
    parts += [f'<span class="off r{o.row} h{o.span}"></span>' for o in column.off]
    for s in column.sessions:
        icons = (CLOSED_ICON if s["closed"] else "") + (TRAVEL_ICON if s["travel"] else "")
        css, title, name = escape(str(s["cls"])), escape(str(s["title"])), escape(str(s["name"]))
        parts.append(f'<div class="{css}" title="{title}">{icons}{name}</div>')
    for c in column.slots:
        if online_only and not c["online"]:
            continue
        icons = (CLOSED_ICON if c["closed"] else "") + (GROUP_ICON if c["group"] else "")
        icons += LOCK_ICON if c["locked"] else ""
        if c["source"]:
            source = escape(str(c["source"]))
            icons += f'<span class="ico ico-online" role="img" aria-label="{source}" title="{source}"></span>'
        key = f' id="{c["key"]}"' if c["key"] else ""
        parts.append(
            f'<a{key} class="{escape(str(c["cls"]))}" href="{c["href"]}" title="{escape(str(c["title"]))}">'
            f"<b>{c['time']}</b> {icons}{escape(str(c['label']))}</a>"
        )
    for e in column.events:
        title, time = escape(str(e["title"])), e["time"]
        tip = f"{time} {title}" + ("" if e["busy"] else " (free)") + (" · from Google Calendar" if e["google"] else "")
        badge = GOOGLE_BADGE if e["google"] else ""
        css = escape(str(e["cls"]))
        parts.append(f'<a class="{css}" href="{e["href"]}" title="{tip}"><b>{time}</b> {badge}{title}</a>')
    return "".join(parts)  # every text above is escaped; classes and links are ours
