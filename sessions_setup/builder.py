"""The session builder's arithmetic: slot patterns, durations and start times.

Pure functions on a list of BuilderSlots, so the rules are tested without a database and the
same code serves every builder request. The slot list lives in the builder form between
requests ("unsaved changes") and is written to TemplateSlots only on Save.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from clinic.numbers import whole_number
from sessions_setup.models import MAX_SESSION_MINUTES, MAX_SLOT_MINUTES, MAX_SLOTS_PER_TEMPLATE


class BuilderError(ValueError):
    """Input the builder cannot act on; the message is shown to the user."""


@dataclass(frozen=True)
class BuilderSlot:
    slot_type_id: int | None  # None: a blank, non-bookable catch-up slot
    length_minutes: int


Slots = tuple[BuilderSlot, ...]


def encode(slots: Iterable[BuilderSlot]) -> str:
    """A compact form for the builder's hidden field: "3:10,3:10,-:10"."""
    return ",".join(f"{'-' if s.slot_type_id is None else s.slot_type_id}:{s.length_minutes}" for s in slots)


def decode(raw: str) -> Slots:
    parts = [part for part in (raw or "").split(",") if part]
    if len(parts) > MAX_SLOTS_PER_TEMPLATE:
        raise BuilderError(f"A session holds at most {MAX_SLOTS_PER_TEMPLATE} slots.")
    slots = []
    for part in parts:
        type_part, _, length_part = part.partition(":")
        type_id = None if type_part == "-" else whole_number(type_part)
        length = whole_number(length_part)
        if (type_part != "-" and not type_id) or length is None or not 1 <= length <= MAX_SLOT_MINUTES:
            raise BuilderError("The slot list was not understood; reload the page.")
        slots.append(BuilderSlot(type_id, length))
    return tuple(slots)


def duration(slots: Sequence[BuilderSlot]) -> int:
    return sum(s.length_minutes for s in slots)


def pattern_of(slots: Sequence[BuilderSlot], selected: Iterable[int]) -> Slots:
    """The slots that repeat when the session is extended: the selection in order, else the last slot."""
    chosen = sorted({i for i in selected if 0 <= i < len(slots)})
    if chosen:
        return tuple(slots[i] for i in chosen)
    return (slots[-1],) if slots else ()


def _check_limits(slots: Slots) -> Slots:
    if len(slots) > MAX_SLOTS_PER_TEMPLATE:
        raise BuilderError(f"A session holds at most {MAX_SLOTS_PER_TEMPLATE} slots.")
    if duration(slots) > MAX_SESSION_MINUTES:
        raise BuilderError("A session lasts at most 24 hours.")
    return slots


def extend(slots: Sequence[BuilderSlot], pattern: Sequence[BuilderSlot], count: int) -> Slots:
    """Add `count` slots by repeating `pattern`; a negative count removes slots from the end (never the last one)."""
    if count >= 0:
        if not pattern:
            raise BuilderError("Choose a slot type for the first slot before extending the session.")
        if len(slots) + count > MAX_SLOTS_PER_TEMPLATE:  # refused before a slot is made: counts come from requests
            raise BuilderError(f"A session holds at most {MAX_SLOTS_PER_TEMPLATE} slots.")
        added = tuple(pattern[i % len(pattern)] for i in range(count))
        return _check_limits((*slots, *added))
    keep = max(1, len(slots) + count)
    return tuple(slots[:keep])


def fit_to_duration(slots: Sequence[BuilderSlot], pattern: Sequence[BuilderSlot], minutes: int) -> Slots:
    """Extend by the pattern, or shorten from the end, to the longest run of slots that fits in `minutes`.

    The session always keeps its first slot.
    """
    if not 1 <= minutes <= MAX_SESSION_MINUTES:
        raise BuilderError("Enter a duration between 1 and 1440 minutes.")
    result = list(slots)
    total = duration(result)
    if total <= minutes:
        if not pattern:
            raise BuilderError("Choose a slot type for the first slot before extending the session.")
        i = 0
        while total + pattern[i % len(pattern)].length_minutes <= minutes:
            result.append(pattern[i % len(pattern)])
            total += pattern[i % len(pattern)].length_minutes
            i += 1
        _check_limits(tuple(result))
    else:
        while len(result) > 1 and total > minutes:
            total -= result.pop().length_minutes
    return tuple(result)


def set_type(
    slots: Sequence[BuilderSlot], indexes: Iterable[int], slot_type_id: int | None, default_length: int | None
) -> Slots:
    """Give the slots at `indexes` a slot type (and its default length), or clear them (keeping their length)."""
    targets = {i for i in indexes if 0 <= i < len(slots)}
    if not targets:
        raise BuilderError("Select one or more slots first.")
    return tuple(
        BuilderSlot(slot_type_id, default_length or s.length_minutes) if i in targets else s
        for i, s in enumerate(slots)
    )


def start_times(nominal_start: dt.time, slots: Sequence[BuilderSlot]) -> list[dt.time]:
    """Each slot's start, counted from the template's nominal start (wall clock, wrapping at midnight)."""
    base = dt.datetime.combine(dt.date(2000, 1, 1), nominal_start)
    times = []
    offset = 0
    for s in slots:
        times.append((base + dt.timedelta(minutes=offset)).time())
        offset += s.length_minutes
    return times


def apply(
    action: str,
    slots: Slots,
    selected: Sequence[int],
    *,
    type_lengths: dict[int, int],
    extend_count: str = "",
    minutes: str = "",
    bulk_type: str = "",
) -> Slots:
    """Carry out one builder action on the slot list and return the new list.

    `type_lengths` maps the slot types that may be chosen now (the clinic's active ones) to
    their default lengths. Actions: extend (by `extend_count`), extend_pattern, remove_last,
    duration (to `minutes`), set:<index>:<type>, clear:<index>, set_selected (to `bulk_type`),
    clear_selected; anything else leaves the list as it is.
    """

    def number(raw: str, what: str) -> int:
        found = whole_number(raw, signed=True)
        if found is None:
            raise BuilderError(f"Enter a whole number for {what}.")
        return found

    def known_type(raw: str) -> int:
        type_id = number(raw, "the slot type")
        if type_id not in type_lengths:
            raise BuilderError("That slot type is not available; choose another.")
        return type_id

    name, _, rest = action.partition(":")
    pattern = pattern_of(slots, selected)
    if name == "extend":
        return extend(slots, pattern, number(extend_count, "the number of slots"))
    if name == "extend_pattern":
        return extend(slots, pattern, len(pattern))
    if name == "remove_last":
        return extend(slots, pattern, -1)
    if name == "duration":
        return fit_to_duration(slots, pattern, number(minutes, "the duration"))
    if name == "set":
        index, _, type_raw = rest.partition(":")
        type_id = known_type(type_raw)
        return set_type(slots, [number(index, "the slot")], type_id, type_lengths[type_id])
    if name == "clear":
        return set_type(slots, [number(rest, "the slot")], None, None)
    if name == "set_selected":
        type_id = known_type(bulk_type)
        return set_type(slots, selected, type_id, type_lengths[type_id])
    if name == "clear_selected":
        return set_type(slots, selected, None, None)
    return slots
