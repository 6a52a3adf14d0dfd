"""What a change to a dated session does to its slots and to the appointments in them, worked out from plain rows
(no database): the one rule behind editing one session and applying a template change to the rota.

Slots are matched by start time: a planned slot starting when a slot of the session starts is that slot, changed or
not; a slot no plan starts with is removed; a planned start no slot has is added. An appointment is displaced exactly
when its place no longer exists: its slot is removed, made blank, given another slot type or shortened, or has fewer
places than there are bookings before it (bookings keep their places in the order they were made). Live holds (an
online request, a waitlist offer) lose their place the same way, after the bookings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from scheduling.models import DisplacedWhy


@dataclass(frozen=True)
class PlannedSlot:
    """A slot the session is to have."""

    starts_at: dt.datetime
    ends_at: dt.datetime
    slot_type_id: int | None  # None: a blank slot
    bookable: bool  # by its slot type: a blank slot, or a type that is not bookable, is not
    capacity: int


@dataclass(frozen=True)
class CurrentSlot:
    """A slot the session has now (retired slots are left out: they are no longer part of its shape)."""

    id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    slot_type_id: int | None
    bookable: bool  # by its slot type, whatever a suspension does meanwhile
    capacity: int
    appointments: tuple[int, ...] = ()  # live appointments, in the order they were booked
    holds: tuple[int, ...] = ()  # live holds, oldest first

    def shaped_like(self, planned: PlannedSlot) -> bool:
        return (self.ends_at, self.slot_type_id, self.bookable, self.capacity) == (
            planned.ends_at,
            planned.slot_type_id,
            planned.bookable,
            planned.capacity,
        )


class Fate(StrEnum):
    SAME = "same"
    CHANGED = "changed"
    ADDED = "added"
    REMOVED = "removed"


@dataclass(frozen=True)
class SlotChange:
    fate: Fate
    before: CurrentSlot | None
    after: PlannedSlot | None
    displaced: tuple[tuple[int, str], ...] = ()  # (appointment id, DisplacedWhy)
    ended_holds: tuple[int, ...] = ()

    @property
    def starts_at(self) -> dt.datetime:
        moment = self.after.starts_at if self.after is not None else self.before.starts_at  # type: ignore[union-attr]
        return moment

    @property
    def kept_appointments(self) -> int:
        return len(self.before.appointments) - len(self.displaced) if self.before is not None else 0

    @property
    def kept_holds(self) -> int:
        return len(self.before.holds) - len(self.ended_holds) if self.before is not None else 0


@dataclass(frozen=True)
class SessionReplan:
    changes: list[SlotChange] = field(default_factory=list)  # every slot, in time order

    @property
    def changed(self) -> list[SlotChange]:
        return [change for change in self.changes if change.fate != Fate.SAME]

    @property
    def displaced(self) -> list[tuple[int, str]]:
        return [pair for change in self.changes for pair in change.displaced]

    @property
    def ended_holds(self) -> list[int]:
        return [hold for change in self.changes for hold in change.ended_holds]


def _why_moved(before: CurrentSlot, after: PlannedSlot) -> str | None:
    """Why every booking of a slot loses its place when the slot takes this shape (None: a capacity question)."""
    if not after.bookable:
        return DisplacedWhy.CLEARED
    if after.slot_type_id != before.slot_type_id:
        return DisplacedWhy.RETYPED
    if after.ends_at < before.ends_at:
        return DisplacedWhy.SHORTENED
    return None


def replan(current: Sequence[CurrentSlot], planned: Sequence[PlannedSlot]) -> SessionReplan:
    """Match the session's slots to the plan by start time and say what happens to each, and to whom."""
    by_start = {slot.starts_at: slot for slot in current}
    matched: set[int] = set()
    changes: list[SlotChange] = []
    for after in planned:
        before = by_start.get(after.starts_at)
        if before is None:
            changes.append(SlotChange(Fate.ADDED, None, after))
            continue
        matched.add(before.id)
        if before.shaped_like(after):
            changes.append(SlotChange(Fate.SAME, before, after))
            continue
        why = _why_moved(before, after)
        if why is not None:
            displaced = tuple((appointment, why) for appointment in before.appointments)
            ended = before.holds
        else:
            kept = before.appointments[: after.capacity]
            displaced = tuple((a, DisplacedWhy.CAPACITY) for a in before.appointments[len(kept) :])
            room = after.capacity - len(kept)
            ended = before.holds[room:]
        changes.append(SlotChange(Fate.CHANGED, before, after, displaced, tuple(ended)))
    for before in current:
        if before.id not in matched:
            displaced = tuple((appointment, DisplacedWhy.REMOVED) for appointment in before.appointments)
            changes.append(SlotChange(Fate.REMOVED, before, None, displaced, before.holds))
    changes.sort(key=lambda change: (change.starts_at, change.fate != Fate.REMOVED))
    return SessionReplan(changes)


def planned_run(starts_at: dt.datetime, slots: Sequence[tuple[int | None, int, bool, int]]) -> list[PlannedSlot]:
    """Slots one after another from `starts_at`: (slot type id, minutes, bookable, capacity) each, at exact minute
    offsets (the rota's rule: the session starts at its wall-clock time, the slots follow in elapsed minutes)."""
    planned = []
    moment = starts_at
    for type_id, minutes, bookable, capacity in slots:
        end = moment + dt.timedelta(minutes=minutes)
        planned.append(PlannedSlot(moment, end, type_id, bookable, capacity))
        moment = end
    return planned
