"""The one rule behind session edits and template changes: a displaced appointment is exactly one whose place no
longer exists (hypothesis over random sessions, bookings and plans)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling.models import DisplacedWhy
from scheduling.replan import CurrentSlot, Fate, PlannedSlot, planned_run, replan

START = dt.datetime(2027, 3, 28, 8, tzinfo=dt.UTC)
TYPES = [None, 1, 2, 3]  # None: blank


@st.composite
def sessions(draw):
    """A session's current slots (contiguous, each with bookings and holds within its capacity) and a plan."""
    shape = draw(
        st.lists(
            st.tuples(st.sampled_from(TYPES), st.sampled_from([5, 10, 15]), st.integers(1, 4)), min_size=1, max_size=8
        )
    )
    current = []
    moment = START
    next_id = iter(range(1, 10_000))
    for index, (type_id, minutes, capacity) in enumerate(shape):
        end = moment + dt.timedelta(minutes=minutes)
        bookable = type_id is not None
        taken = draw(st.integers(0, capacity)) if bookable else 0
        held = draw(st.integers(0, taken))
        appointments = tuple(next(next_id) for _ in range(taken - held))
        holds = tuple(10_000 + next(next_id) for _ in range(held))
        current.append(
            CurrentSlot(index + 1, moment, end, type_id, bookable, capacity if bookable else 1, appointments, holds)
        )
        moment = end
    # The plan: a run of slots from the same start, often sharing starts with the current ones.
    planned_shape = draw(
        st.one_of(
            st.just(
                [
                    (s.slot_type_id, int((s.ends_at - s.starts_at).total_seconds() // 60), s.bookable, s.capacity)
                    for s in current
                ]
            ),
            st.lists(
                st.tuples(st.sampled_from(TYPES), st.sampled_from([5, 10, 15]), st.integers(1, 4)),
                min_size=1,
                max_size=8,
            ).map(lambda rows: [(t, m, t is not None, c if t is not None else 1) for t, m, c in rows]),
        )
    )
    mutate = draw(st.lists(st.tuples(st.integers(0, 7), st.sampled_from(TYPES), st.integers(1, 4)), max_size=3))
    planned_shape = list(planned_shape)
    for index, type_id, capacity in mutate:
        if index < len(planned_shape):
            _, minutes, _, _ = planned_shape[index]
            planned_shape[index] = (type_id, minutes, type_id is not None, capacity if type_id is not None else 1)
    return current, planned_run(START, planned_shape)


def place_survives(slot: CurrentSlot, rank: int, planned: list[PlannedSlot]) -> bool:
    """The oracle: a booking (the rank-th in its slot) keeps its place when a planned slot starts at the same time,
    lasts at least as long, is bookable, of the same type, with room for it."""
    for after in planned:
        if after.starts_at == slot.starts_at:
            return (
                after.bookable
                and after.slot_type_id == slot.slot_type_id
                and after.ends_at >= slot.ends_at
                and rank < after.capacity
            )
    return False


@settings(max_examples=300, deadline=None)
@given(sessions())
def test_a_displaced_appointment_is_exactly_one_whose_place_no_longer_exists(data):
    current, planned = data
    result = replan(current, planned)
    displaced = {appointment for appointment, _ in result.displaced}
    expected = {
        appointment
        for slot in current
        for rank, appointment in enumerate(slot.appointments)
        if not place_survives(slot, rank, planned)
    }
    assert displaced == expected
    # Every slot of both sides is accounted for, once.
    assert sorted(c.before.id for c in result.changes if c.before) == sorted(s.id for s in current)
    assert sorted(c.after.starts_at for c in result.changes if c.after) == sorted(p.starts_at for p in planned)
    # A kept slot never holds more than its places: bookings first, then holds.
    for change in result.changes:
        if change.fate in (Fate.SAME, Fate.CHANGED):
            assert change.kept_appointments + change.kept_holds <= change.after.capacity


def slot(pk, minute, minutes, type_id, capacity=1, appointments=(), holds=()):
    start = START + dt.timedelta(minutes=minute)
    return CurrentSlot(
        pk, start, start + dt.timedelta(minutes=minutes), type_id, type_id is not None, capacity, appointments, holds
    )


def test_each_kind_of_change_names_its_reason():
    current = [
        slot(1, 0, 10, 1, appointments=(101,)),  # retyped
        slot(2, 10, 10, 1, appointments=(102,)),  # made blank
        slot(3, 20, 10, 1, appointments=(103,)),  # shortened
        slot(4, 30, 10, 2, capacity=3, appointments=(104, 105, 106), holds=(901,)),  # 3 places → 2
        slot(5, 40, 10, 1, appointments=(107,)),  # removed
        slot(6, 50, 10, 1, appointments=(108,)),  # untouched
    ]
    planned = [
        PlannedSlot(START, START + dt.timedelta(minutes=10), 2, True, 1),
        PlannedSlot(START + dt.timedelta(minutes=10), START + dt.timedelta(minutes=20), None, False, 1),
        PlannedSlot(START + dt.timedelta(minutes=20), START + dt.timedelta(minutes=25), 1, True, 1),
        PlannedSlot(START + dt.timedelta(minutes=30), START + dt.timedelta(minutes=40), 2, True, 2),
        PlannedSlot(START + dt.timedelta(minutes=50), START + dt.timedelta(minutes=60), 1, True, 1),
        PlannedSlot(START + dt.timedelta(minutes=60), START + dt.timedelta(minutes=70), 1, True, 1),
    ]
    result = replan(current, planned)
    assert dict(result.displaced) == {
        101: DisplacedWhy.RETYPED,
        102: DisplacedWhy.CLEARED,
        103: DisplacedWhy.SHORTENED,
        106: DisplacedWhy.CAPACITY,  # the last booked loses its place; the first two keep theirs
        107: DisplacedWhy.REMOVED,
    }
    assert result.ended_holds == [901]
    fates = {(c.before.id if c.before else None): c.fate for c in result.changes}
    assert fates[6] == Fate.SAME and fates[5] == Fate.REMOVED and fates[None] == Fate.ADDED


def test_a_longer_slot_keeps_its_bookings():
    current = [slot(1, 0, 10, 1, appointments=(1,))]
    planned = [PlannedSlot(START, START + dt.timedelta(minutes=15), 1, True, 1)]
    result = replan(current, planned)
    assert result.displaced == [] and result.changes[0].fate == Fate.CHANGED
