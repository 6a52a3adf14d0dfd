"""RFC 5545 text for the subscription feed, written directly: escaped TEXT values, lines folded at 75
octets, CRLF line ends, UTC times and DATE values for all-day events (with an exclusive end).

Only what a feed needs is here; the tests read the result back with icalendar, vobject and
recurring-ical-events, so a mistake in this file fails them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from scheduling.recurrence import compact_utc

CRLF = "\r\n"
PRODID = "-//Clinic Scheduler//Practitioner feed//EN"
REFRESH = "PT15M"  # how often a calendar app is asked to fetch the feed again
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", ";": "\\;", ",": "\\,", "\n": "\\n", "\r": ""})
# RFC 5545 3.3.11: TEXT holds no CONTROL character (%x00-08 / %x0A-1F / %x7F) but tab; line breaks are written
# escaped ("\n"). C1 controls (U+0080-U+009F) go too: strict parsers drop a whole feed for one, and Google
# has no use for them. Carriage return and newline stay here (escape_text writes them).
_CONTROLS = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, *range(0x80, 0xA0)])


def without_controls(value: str) -> str:
    """Text with its control characters removed (tab, newline and carriage return kept): every text that
    reaches a feed or Google passes here (feed.sources builds the items both send)."""
    return value.translate(_CONTROLS)


def escape_text(value: str) -> str:
    """A TEXT value: backslash, semicolon, comma and newline escaped (RFC 5545 3.3.11)."""
    return value.translate(_TEXT_ESCAPES)


def fold(line: str) -> str:
    """Fold a content line into pieces of at most 75 octets, continued with CRLF and a space (3.1)."""
    if len(line) <= 75 and (line.isascii() or len(line.encode("utf-8")) <= 75):
        return line
    pieces: list[str] = []
    current: list[str] = []
    size, limit = 0, 75
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            pieces.append("".join(current))
            current, size, limit = [], 0, 74  # a continuation line spends one octet on its space
        current.append(char)
        size += width
    pieces.append("".join(current))
    return (CRLF + " ").join(pieces)


utc_stamp = compact_utc


@dataclass(frozen=True)
class FeedItem:
    """One event of a feed: timed (UTC instants) or all-day (a first date and an exclusive end date)."""

    uid: str
    summary: str
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    first_date: dt.date | None = None
    end_date: dt.date | None = None  # the day after the last day
    location: str = ""
    transparent: bool = False


def vevent(item: FeedItem, *, sequence: int, stamp: dt.datetime | str) -> str:
    """The VEVENT of an item, CRLF-terminated lines (`stamp` may come formatted, once for a whole build)."""
    stamp = stamp if isinstance(stamp, str) else utc_stamp(stamp)
    lines = ["BEGIN:VEVENT", f"UID:{item.uid}", f"DTSTAMP:{stamp}", f"SEQUENCE:{sequence}"]
    if item.first_date is not None and item.end_date is not None:
        lines.append(f"DTSTART;VALUE=DATE:{item.first_date:%Y%m%d}")
        lines.append(f"DTEND;VALUE=DATE:{item.end_date:%Y%m%d}")
    else:
        assert item.starts_at is not None and item.ends_at is not None
        lines.append(f"DTSTART:{utc_stamp(item.starts_at)}")
        lines.append(f"DTEND:{utc_stamp(item.ends_at)}")
    lines.append(fold(f"SUMMARY:{escape_text(item.summary)}"))
    if item.location:
        lines.append(fold(f"LOCATION:{escape_text(item.location)}"))
    lines.append("TRANSP:TRANSPARENT" if item.transparent else "TRANSP:OPAQUE")
    lines.append("END:VEVENT")
    return CRLF.join(lines) + CRLF


def calendar(name: str, vevents: Iterable[str]) -> bytes:
    """The whole VCALENDAR around already serialised VEVENTs."""
    head = CRLF.join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            f"PRODID:{PRODID}",
            "CALSCALE:GREGORIAN",
            "METHOD:PUBLISH",
            fold(f"X-WR-CALNAME:{escape_text(without_controls(name))}"),
            f"REFRESH-INTERVAL;VALUE=DURATION:{REFRESH}",
            f"X-PUBLISHED-TTL:{REFRESH}",
        ]
    )
    return (head + CRLF + "".join(vevents) + "END:VCALENDAR" + CRLF).encode("utf-8")
