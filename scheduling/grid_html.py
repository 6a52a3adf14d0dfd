"""The calendar grid's cells as HTML, written here in one place rather than by the template.

A busy week (the All tab) is thousands of slots; Django's template engine costs a node per tag and variable, and a
slot had dozens of them. Each column's body (its background, greyed hours, sessions, slots and timed events) is
joined here from the cells scheduling.grid.build_grid made, with every text escaped, and the template prints it.

The markup is the grid's own: a slot or timed event is a plain link in its column (calendar.js opens the popup for
any link of a `.cal-col`, so they carry no data attribute of their own); a slot's link keeps its id
(`slot-<public id>`, on the date it starts), which the popups' focus, the #slot-… addresses and the tests rely on.

Slots come as data, drawn by the browser (static/js/calendar.js, drawSlots). A week of 3,000 slots written as
links was 800 KB, each slot's id twice and its tooltip's words in full; as data it is about a third of that. A
column's slots are one `<script type="application/json" data-slots>` where their links go: a list of
[short id, row, rows, kind, start, label, end], the last two left out when they are the kind's label and the end
its rows imply. A kind, numbered once for the page in `<script type="application/json" id="cal-slot-kinds">`, is
what slots share: [class, icons, tooltip after the times, whether the link has the id, label]. The tooltip keeps
a NUL character where the slot's label goes. Every text is escaped here, as HTML, before it goes into the data: the
browser joins the pieces and escapes nothing. The short id is the public id's 16 bytes in URL-safe base64.
"""

from __future__ import annotations

import base64
import json
import re
from html import escape
from typing import cast
from uuid import UUID

from django.utils.safestring import SafeString, mark_safe

from scheduling.grid import ROW_MINUTES, Column, Grid, Group

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
            f"{column_body(column, grid, online_only=online_only)}</div></div>"
        )
    return mark_safe("\n".join(parts))  # noqa: S308 - every text is escaped; classes, dates and links are ours


def column_body(column: Column, grid: Grid, *, online_only: bool = False) -> str:
    """A column's cells: the full-height background, off hours, sessions, slots (as data: with online_only, only
    those booked or held online) and timed events."""
    parts = [f'<span class="fill r1 h{grid.time_range.rows}"></span>']
    parts += [f'<span class="off r{o.row} h{o.span}"></span>' for o in column.off]
    for s in column.sessions:
        icons = (CLOSED_ICON if s["closed"] else "") + (TRAVEL_ICON if s["travel"] else "")
        css, title, name = escape(str(s["cls"])), escape(str(s["title"])), escape(str(s["name"]))
        parts.append(f'<div class="{css}" title="{title}">{icons}{name}</div>')
    entries = [slot_entry(c, grid) for c in column.slots if c["online"] or not online_only]
    if entries:
        parts.append(f'<script type="application/json" data-slots>{json_text(entries)}</script>')
    for e in column.events:
        title, time = escape(str(e["title"])), e["time"]
        tip = f"{time} {title}" + ("" if e["busy"] else " (free)") + (" · from Google Calendar" if e["google"] else "")
        badge = GOOGLE_BADGE if e["google"] else ""
        css = escape(str(e["cls"]))
        parts.append(f'<a class="{css}" href="{e["href"]}" title="{tip}"><b>{time}</b> {badge}{title}</a>')
    return "".join(parts)  # every text above is escaped; classes and links are ours


LABEL_MARK = "\x00"  # where a kind's tooltip takes the slot's label


def slot_entry(cell: dict[str, object], grid: Grid) -> list[object]:
    """A slot as the browser draws it: [short id, row, rows, kind, start, label, end] (see the module's note);
    its kind is numbered in `grid` the first time it is seen."""
    start, end, row, span = str(cell["time"]), str(cell["end"]), int(str(cell["row"])), int(str(cell["span"]))
    label, title = escape(str(cell["label"])), str(cell["title"])
    when = f"{start}–{end} · "
    if not title.startswith(when):
        raise ValueError(f"a slot's tooltip must start with its times: {title!r}")
    tail = escape(title[len(when) :])
    icons = (CLOSED_ICON if cell["closed"] else "") + (GROUP_ICON if cell["group"] else "")
    icons += LOCK_ICON if cell["locked"] else ""
    if cell["source"]:
        source = escape(str(cell["source"]))
        icons += f'<span class="ico ico-online" role="img" aria-label="{source}" title="{source}"></span>'
    key = (escape(str(cell["cls"])), icons, tail.replace(label, LABEL_MARK, 1) if label else tail, bool(cell["first"]))
    kind = grid.slot_kinds.get(key)
    if kind is None:
        kind = grid.slot_kinds[key] = len(grid.slot_kinds)
        grid.slot_kind_labels.append(label)
    entry: list[object] = [short_id(cast(UUID, cell["public_id"])), row, span, kind, clock_value(start)]
    end_value = clock_value(end)
    implied_end = isinstance(entry[4], int) and end_value == entry[4] + span * ROW_MINUTES
    if not implied_end:
        entry += [label, end_value]
    elif label != grid.slot_kind_labels[kind]:
        entry.append(label)
    return entry


def short_id(public_id: UUID) -> str:
    """A public id in 22 characters: its 16 bytes in URL-safe base64, unpadded."""
    return base64.urlsafe_b64encode(public_id.bytes).rstrip(b"=").decode()


def clock_value(text: str) -> int | str:
    """A wall-clock time as minutes after midnight ("08:30" is 510), or as written when it names its zone
    ("01:30 BST", in the hour the clocks repeat)."""
    if len(text) == 5 and text[2] == ":" and text[:2].isdigit() and text[3:].isdigit():
        return int(text[:2]) * 60 + int(text[3:])
    return text


def slot_kinds_html(grid: Grid) -> SafeString:
    """The page's slot kinds and slot link (after every column is written): what the columns' data refers to."""
    kinds = [[*key[:3], int(key[3]), label] for key, label in zip(grid.slot_kinds, grid.slot_kind_labels, strict=True)]
    data = {"href": list(grid.slot_href), "rowMinutes": ROW_MINUTES, "kinds": kinds}
    return mark_safe(f'<script type="application/json" id="cal-slot-kinds">{json_text(data)}</script>')  # noqa: S308


def json_text(value: object) -> str:
    """JSON to stand inside a <script> element: compact, and no <, > or & (as Django's json_script)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


SLOT_DATA = re.compile(r'<script type="application/json" data-slots>(.*?)</script>', re.DOTALL)
SLOT_KINDS = re.compile(r'<script type="application/json" id="cal-slot-kinds">(.*?)</script>', re.DOTALL)


def drawn(page: str) -> str:
    """The page as the browser shows it once calendar.js has drawn its slots: each column's data replaced by the
    links it stands for, joined as drawSlots joins them. For the tests and the benchmarks' checks, which read the
    grid's markup; an end-to-end test holds the two to each other."""
    table = SLOT_KINDS.search(page)
    if table is None:
        return page
    info = json.loads(table.group(1))
    prefix, suffix = info["href"]
    kinds, row_minutes = info["kinds"], info["rowMinutes"]

    def links(found: re.Match[str]) -> str:
        html = []
        for slot in json.loads(found.group(1)):
            cls, icons, tail, first, kind_label = kinds[slot[3]]
            uuid = str(UUID(bytes=base64.urlsafe_b64decode(slot[0] + "==")))
            start = clock_text(slot[4])
            label = slot[5] if len(slot) > 5 else kind_label
            end = clock_text(slot[6]) if len(slot) > 6 else clock_text(slot[4] + slot[2] * row_minutes)
            key = f' id="slot-{uuid}"' if first else ""
            title = f"{start}–{end} · " + label.join(tail.split(LABEL_MARK))
            html.append(
                f'<a{key} class="{cls} r{slot[1]} h{slot[2]}" href="{prefix}{uuid}{suffix}" title="{title}">'
                f"<b>{start}</b> {icons}{label}</a>"
            )
        return "".join(html)

    return SLOT_DATA.sub(links, page)


def clock_text(value: int | str) -> str:
    """clock_value's time as the grid prints it."""
    return f"{value // 60:02d}:{value % 60:02d}" if isinstance(value, int) else value
