"""The builder's arithmetic: pattern repetition, durations, start times (hypothesis)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessions_setup import builder
from sessions_setup.builder import BuilderError, BuilderSlot

# Lengths small enough that 60 slots stay inside the 24-hour limit (tested on its own below).
slot = st.builds(BuilderSlot, st.one_of(st.none(), st.integers(1, 9)), st.integers(1, 20))
slot_lists = st.lists(slot, min_size=1, max_size=20).map(tuple)


@given(slots=slot_lists, data=st.data(), count=st.integers(0, 40))
def test_extending_repeats_the_selected_pattern_in_order(slots, data, count):
    selected = data.draw(st.lists(st.integers(0, len(slots) - 1), unique=True))
    pattern = builder.pattern_of(slots, selected)
    result = builder.extend(slots, pattern, count)
    assert result[: len(slots)] == slots
    added = result[len(slots) :]
    assert len(added) == count
    expected_pattern = [slots[i] for i in sorted(selected)] or [slots[-1]]
    for k, s in enumerate(added):
        assert s == expected_pattern[k % len(expected_pattern)]
    assert builder.duration(result) == builder.duration(slots) + sum(s.length_minutes for s in added)


@given(slots=slot_lists, count=st.integers(1, 40))
def test_shrinking_drops_slots_from_the_end_but_keeps_the_first(slots, count):
    result = builder.extend(slots, builder.pattern_of(slots, []), -count)
    assert len(result) == max(1, len(slots) - count)
    assert result == slots[: len(result)]


@given(slots=slot_lists, data=st.data(), minutes=st.integers(1, 600))
def test_fitting_a_duration_gives_the_longest_pattern_run_that_fits(slots, data, minutes):
    selected = data.draw(st.lists(st.integers(0, len(slots) - 1), unique=True))
    pattern = builder.pattern_of(slots, selected)
    try:
        result = builder.fit_to_duration(slots, pattern, minutes)
    except BuilderError:
        # Only when the pattern would need more slots than a session may hold.
        assert minutes // min(s.length_minutes for s in pattern) > builder.MAX_SLOTS_PER_TEMPLATE - len(slots)
        return
    total = builder.duration(result)
    if builder.duration(slots) <= minutes:
        # Extended by the pattern, never past the target, and the next pattern slot would not fit.
        assert result[: len(slots)] == slots
        assert total <= minutes
        next_slot = pattern[(len(result) - len(slots)) % len(pattern)]
        assert total + next_slot.length_minutes > minutes
        assert result == builder.extend(slots, pattern, len(result) - len(slots))
    else:
        # Shortened from the end to the longest prefix that fits (the first slot always stays).
        assert result == slots[: len(result)]
        assert len(result) == 1 or total <= minutes
        assert builder.duration(slots[: len(result) + 1]) > minutes


def test_the_seed_pattern_two_normal_one_telephone_one_on_the_day():
    normal, phone, otd = BuilderSlot(1, 10), BuilderSlot(2, 10), BuilderSlot(3, 10)
    slots = (normal, normal, phone, otd)
    result = builder.fit_to_duration(slots, builder.pattern_of(slots, [0, 1, 2, 3]), 120)
    assert result == (normal, normal, phone, otd) * 3
    assert builder.duration(result) == 120


def test_start_times_count_from_the_nominal_start():
    slots = (BuilderSlot(1, 15), BuilderSlot(None, 10), BuilderSlot(2, 20))
    assert builder.start_times(dt.time(8, 30), slots) == [dt.time(8, 30), dt.time(8, 45), dt.time(8, 55)]


def test_changing_several_slots_at_once_and_clearing_keeps_lengths():
    slots = (BuilderSlot(1, 10), BuilderSlot(1, 10), BuilderSlot(1, 10))
    changed = builder.set_type(slots, [0, 2], 5, 15)
    assert changed == (BuilderSlot(5, 15), BuilderSlot(1, 10), BuilderSlot(5, 15))
    cleared = builder.set_type(changed, [1], None, None)
    assert cleared[1] == BuilderSlot(None, 10)
    with pytest.raises(BuilderError):
        builder.set_type(slots, [], 5, 15)


@given(slots=slot_lists)
def test_the_hidden_field_round_trips(slots):
    assert builder.decode(builder.encode(slots)) == slots


@pytest.mark.parametrize("raw", ["x:10", "3:0", "3:abc", "-1:10", "3:100000"])
def test_a_tampered_slot_list_is_refused_with_a_message(raw):
    with pytest.raises(BuilderError):
        builder.decode(raw)


def test_limits():
    with pytest.raises(BuilderError):
        builder.extend((BuilderSlot(1, 60),), (BuilderSlot(1, 60),), 24)
    with pytest.raises(BuilderError):
        builder.fit_to_duration((BuilderSlot(1, 10),), (BuilderSlot(1, 10),), 2000)
