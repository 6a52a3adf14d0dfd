"""Waitlist matching: a freed place is offered to the first eligible entry in (position, id) order, or to nobody
(hypothesis against an oracle in plain Python over random rotas, bookings and entries of all three kinds); the
edges (closed groups, the local clock, inclusive time bounds, several places at once); and the enforced closed
group's refusal when booking."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clinic.models import AuditEvent, Role
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    Hold,
    HoldKind,
    HoldOutcome,
    SeriesScope,
    WaitlistEntry,
    WaitlistKind,
    WaitlistOffer,
    WaitlistState,
)
from scheduling.services.booking import (
    BookingError,
    BookingRequest,
    appointment_book,
    appointment_cancel,
    appointment_reschedule,
)
from scheduling.services.rota import AllocationRequest, allocation_create
from scheduling.services.waitlist import offers_for_slot
from tests.conftest import tasks_in_process
from tests.factories import (
    ClinicFactory,
    LocationFactory,
    MembershipFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    book,
    template_with_slots,
)

LONDON, NEW_YORK = "Europe/London", "America/New_York"
WEEK1 = dt.date(2027, 6, 7)  # a Monday; the groups' first occurrences fall in this week (in the past)
FUTURE = WEEK1 + dt.timedelta(days=14)  # the week of the occurrences whose places come free
NOW = dt.datetime(2027, 6, 16, 14, tzinfo=dt.UTC)  # Wednesday between: 15:00 London, 10:00 New York (not quiet)
EARLY = dt.datetime(2027, 6, 2, 14, tzinfo=dt.UTC)  # before any group has begun
STARTS = [dt.time(7), dt.time(8, 45), dt.time(12), dt.time(17, 30), dt.time(21), dt.time(23, 30)]
# (capacity, minutes) of the two group types.
TYPES = [(2, 60), (3, 30)]
POOL = 6  # patients who may wait


def allocate(clinic, *, types, practitioner, location, day, start, weeks, closed=False, enforced=False):
    """A group allocation of a template with slots of `types`, with sessions on `day` plus 7 * each of `weeks`
    (all on its weekday, every other week or once)."""
    template = template_with_slots(
        clinic, types, name=f"Group {day:%d}{start:%H%M}", closed_session=closed, closed_enforced=enforced
    )
    dates = [day + dt.timedelta(weeks=w) for w in weeks]
    if len(dates) == 1:
        request = AllocationRequest(template, practitioner, location, start, dates[0], dates[0], (), 1)
    else:
        every = (dates[1] - dates[0]).days // 7
        assert all((b - a).days == 7 * every for a, b in zip(dates, dates[1:], strict=False))
        request = AllocationRequest(
            template, practitioner, location, start, dates[0], dates[-1], (day.isoweekday(),), every
        )
    allocation = allocation_create(clinic=clinic, actor=None, request=request)
    sessions = list(allocation.sessions.order_by("date"))
    assert [s.date for s in sessions] == dates
    return allocation, sessions


# The property ----------------------------------------------------------------------------------------------


@dataclass
class SlotFacts:
    """What the oracle knows of a slot, from what the test asked for (not read back through the app's rules)."""

    slot: object
    allocation: int
    session_date: dt.date
    local_start: dt.datetime  # naive, on the location's wall clock
    local_end: dt.datetime
    practitioner: int | None
    slot_type: int
    future: bool


@dataclass
class Booking:
    patient: int  # a pool index, or negative for a patient who never waits
    facts: SlotFacts
    appointment: Appointment
    live: bool


@dataclass
class EntryFacts:
    entry: WaitlistEntry
    patient: int
    kind: str
    position: int
    state: str
    offered_here_before: bool
    slot: SlotFacts | None = None
    allocation: int | None = None
    scope: str = ""
    from_date: dt.date | None = None
    practitioner: int | None = None
    slot_type: int | None = None
    weekdays: list[int] = field(default_factory=list)
    time_from: dt.time | None = None
    time_until: dt.time | None = None


def answers(e: EntryFacts, target: SlotFacts) -> bool:
    """The matching rule, written out: this slot; this group series and type (any occurrence or from a date on or
    before the session's date); or a practitioner (or anyone) and type (or any) on the slot's local weekday and
    within the local times (both bounds inclusive, the end compared on the start's date)."""
    if e.kind == WaitlistKind.SLOT:
        return e.slot is target
    if e.kind == WaitlistKind.SERIES:
        return (
            e.allocation == target.allocation
            and e.slot_type == target.slot_type
            and (e.scope == SeriesScope.ANY or (e.from_date is not None and e.from_date <= target.session_date))
        )
    day = target.local_start.date()
    return (
        (e.practitioner is None or e.practitioner == target.practitioner)
        and (e.slot_type is None or e.slot_type == target.slot_type)
        and (not e.weekdays or target.local_start.isoweekday() in e.weekdays)
        and (e.time_from is None or dt.datetime.combine(day, e.time_from) <= target.local_start)
        and (e.time_until is None or target.local_end <= dt.datetime.combine(day, e.time_until))
    )


def expected_order(entries, bookings, target, archived, closed_began) -> list[EntryFacts]:
    booked_here = {b.patient for b in bookings if b.live and b.facts is target}
    members = {b.patient for b in bookings if b.live and b.facts.allocation == target.allocation}
    eligible = [
        e
        for e in entries
        if e.state == WaitlistState.WAITING
        and not archived[e.patient]
        and e.patient not in booked_here
        and not e.offered_here_before
        and answers(e, target)
        and (not closed_began or e.patient in members)
    ]
    return sorted(eligible, key=lambda e: (e.position, e.entry.pk))


def build_world(data, clinic):
    """Locations in London and New York, three practitioners, two group types, and one to three group allocations
    on distinct weekdays (so none clash), each with a future occurrence and perhaps a past one."""
    zones = {
        LONDON: LocationFactory(clinic=clinic, time_zone=LONDON),
        NEW_YORK: LocationFactory(clinic=clinic, time_zone=NEW_YORK),
    }
    practitioners = [PractitionerFactory(clinic=clinic, default_location=zones[LONDON]) for _ in range(3)]
    types = [
        SlotTypeFactory(clinic=clinic, name=f"Group {i}", capacity=capacity, default_length_minutes=minutes)
        for i, (capacity, minutes) in enumerate(TYPES)
    ]
    count = data.draw(st.integers(1, 3), label="allocations")
    offsets = data.draw(st.lists(st.integers(0, 6), min_size=count, max_size=count, unique=True), label="weekdays")
    slots: list[SlotFacts] = []
    allocations = []
    closed_began: dict[int, bool] = {}
    for index, offset in enumerate(offsets):
        zone = data.draw(st.sampled_from([LONDON, NEW_YORK]), label="zone")
        who = data.draw(st.sampled_from([0, 1, None]), label="practitioner")
        start = data.draw(st.sampled_from(STARTS), label="start")
        kinds = data.draw(st.lists(st.sampled_from([0, 1]), min_size=1, max_size=2), label="slot types")
        closed = data.draw(st.sampled_from(["open", "open", "warning", "enforced"]), label="closed")
        past = data.draw(st.booleans(), label="began")
        weeks = (0, 2) if past else (2,)
        allocation, sessions = allocate(
            clinic,
            types=[types[k] for k in kinds],
            practitioner=practitioners[who] if who is not None else None,
            location=zones[zone],
            day=WEEK1 + dt.timedelta(days=offset),
            start=start,
            weeks=weeks,
            closed=closed != "open",
            enforced=closed == "enforced",
        )
        allocations.append(allocation)
        closed_began[index] = closed == "enforced" and past
        for session in sessions:
            local = dt.datetime.combine(session.date, start)
            for kind, slot in zip(kinds, session.slots.order_by("starts_at"), strict=True):
                end = local + dt.timedelta(minutes=TYPES[kind][1])
                # The rota made the slot at this wall-clock time (June: no clock change near it).
                assert slot.starts_at == local.replace(tzinfo=ZoneInfo(zone))
                assert slot.ends_at == end.replace(tzinfo=ZoneInfo(zone))
                slots.append(SlotFacts(slot, index, session.date, local, end, who, kind, session.date >= FUTURE))
                local = end
    return practitioners, types, allocations, slots, closed_began


def draw_entry(data, target, slots, count, local_times) -> dict:
    """One waitlist entry's fields, leaning towards the target (so that many examples have someone eligible)."""
    kind = data.draw(st.sampled_from(list(WaitlistKind)), label="kind")
    spec: dict = {
        "kind": kind,
        "patient": data.draw(st.integers(0, POOL - 1), label="patient"),
        "position": data.draw(st.integers(1, 5), label="position"),
        "state": data.draw(st.sampled_from([WaitlistState.WAITING] * 6 + list(WaitlistState)), label="state"),
        "before": data.draw(st.sampled_from(["never"] * 5 + ["here", "elsewhere"]), label="offered before"),
    }
    if kind == WaitlistKind.SLOT:
        spec["slot"] = data.draw(st.sampled_from([target, target, *(s for s in slots if s.future)]), label="slot")
    elif kind == WaitlistKind.SERIES:
        spec["allocation"] = data.draw(st.sampled_from([target.allocation, *range(count)]), label="series")
        spec["slot_type"] = data.draw(st.sampled_from([target.slot_type, 0, 1]), label="series type")
        spec["scope"] = data.draw(st.sampled_from(list(SeriesScope)), label="scope")
        if spec["scope"] == SeriesScope.FROM_DATE:
            days = data.draw(st.sampled_from([-14, -1, 0, 1, 7]), label="from")
            spec["from_date"] = target.session_date + dt.timedelta(days=days)
    else:
        spec["practitioner"] = data.draw(st.sampled_from([None, target.practitioner, 0, 1, 2]), label="who")
        spec["slot_type"] = data.draw(st.sampled_from([None, target.slot_type, 0, 1]), label="type")
        if spec["practitioner"] is None and spec["slot_type"] is None:
            spec["slot_type"] = target.slot_type  # reception names a practitioner, a type, or both
        # The slot's local weekday, its UTC weekday and its session's (which differ near midnight).
        near = [target.local_start.isoweekday(), target.slot.starts_at.isoweekday(), target.session_date.isoweekday()]
        spec["weekdays"] = data.draw(
            st.one_of(
                st.just([]), st.lists(st.one_of(st.sampled_from(near), st.integers(1, 7)), unique=True, max_size=3)
            ),
            label="weekdays",
        )
        bound = st.one_of(st.none(), st.none(), st.sampled_from(local_times))
        low, high = data.draw(bound, label="from"), data.draw(bound, label="until")
        if low is not None and high is not None and high <= low:
            low, high = (high, low) if high < low else (low, None)
        spec["time_from"], spec["time_until"] = low, high
    return spec


def wall_times(target: SlotFacts) -> list[dt.time]:
    """Bounds at, and a minute either side of, the target's local start and end, and a few others."""
    times = {dt.time(0), dt.time(6), dt.time(12), dt.time(18), dt.time(23, 45)}
    for moment in (target.local_start, target.local_end):
        for minutes in (-1, 0, 1):
            times.add((moment + dt.timedelta(minutes=minutes)).time())
    return sorted(times)


def run_example(data):
    clinic = ClinicFactory()
    practitioners, types, allocations, slots, closed_began = build_world(data, clinic)
    target = data.draw(st.sampled_from([s for s in slots if s.future]), label="target")
    capacity = TYPES[target.slot_type][0]
    archived = data.draw(
        st.lists(st.sampled_from([False] * 5 + [True]), min_size=POOL, max_size=POOL), label="archived"
    )
    patients = {i: PatientFactory(clinic=clinic, is_archived=archived[i]) for i in range(POOL)}

    def patient(key):
        if key not in patients:
            patients[key] = PatientFactory(clinic=clinic)
        return patients[key]

    bookings: list[Booking] = []
    # The target is full: pool patients (some of whom wait too) and others, in any live status.
    occupants = data.draw(
        st.lists(st.integers(-capacity, POOL - 1), unique=True, min_size=capacity, max_size=capacity), label="full"
    )
    for key in occupants:
        status = data.draw(st.sampled_from(["booked", "booked", "arrived", "did_not_attend"]), label="status")
        bookings.append(Booking(key, target, book(target.slot, patient(key), status=status), True))
    # Earlier cancellations in the target leave nobody booked there.
    for key in data.draw(st.lists(st.integers(0, POOL - 1), unique=True, max_size=2), label="cancelled before"):
        if key not in occupants:
            bookings.append(Booking(key, target, book(target.slot, patient(key), status="cancelled"), False))
    # Places elsewhere, in the past occurrence or other groups: membership of a closed group.
    others = [s for s in slots if s is not target]
    group = [s for s in others if s.allocation == target.allocation]
    if others:
        for key, where in data.draw(
            st.lists(st.tuples(st.integers(0, POOL - 1), st.sampled_from(others + group * 2)), max_size=6),
            label="elsewhere",
        ):
            where.slot.refresh_from_db()
            taken = any(b.live and b.patient == key and b.facts is where for b in bookings)
            if where.slot.booked_count < where.slot.capacity and not taken:
                bookings.append(Booking(key, where, book(where.slot, patient(key)), True))

    entries: list[EntryFacts] = []
    spare = [s for s in slots if s.future and s is not target]
    for _ in range(data.draw(st.integers(0, 12) | st.integers(3, 12), label="how many waiting")):
        spec = draw_entry(data, target, slots, len(allocations), wall_times(target))
        kind = spec["kind"]
        row = WaitlistEntry.objects.create(
            clinic=clinic,
            patient=patients[spec["patient"]],
            kind=kind,
            slot=spec["slot"].slot if kind == WaitlistKind.SLOT else None,
            allocation=allocations[spec["allocation"]] if kind == WaitlistKind.SERIES else None,
            scope=spec.get("scope", ""),
            from_date=spec.get("from_date"),
            practitioner=practitioners[spec["practitioner"]] if spec.get("practitioner") is not None else None,
            slot_type=types[spec["slot_type"]] if spec.get("slot_type") is not None else None,
            weekdays=",".join(str(d) for d in sorted(spec.get("weekdays", []))),
            time_from=spec.get("time_from"),
            time_until=spec.get("time_until"),
            position=spec["position"],
            state=spec["state"],
        )
        before = spec["before"]
        if before == "here" or (before == "elsewhere" and spare):
            # An offer made before (of this slot, or another), let go or run out: its hold has ended.
            hold = Hold.objects.create(
                clinic=clinic,
                slot=(target if before == "here" else spare[0]).slot,
                kind=HoldKind.WAITLIST_OFFER,
                expires_at=NOW - dt.timedelta(hours=1),
                ended_at=NOW - dt.timedelta(hours=2),
                outcome=data.draw(st.sampled_from([HoldOutcome.DECLINED, HoldOutcome.EXPIRED]), label="outcome"),
            )
            WaitlistOffer.objects.create(clinic=clinic, entry=row, slot=hold.slot, hold=hold)
        entries.append(
            EntryFacts(
                entry=row,
                patient=spec["patient"],
                kind=kind,
                position=spec["position"],
                state=spec["state"],
                offered_here_before=before == "here",
                slot=spec.get("slot"),
                allocation=spec.get("allocation"),
                scope=spec.get("scope", ""),
                from_date=spec.get("from_date"),
                practitioner=spec.get("practitioner"),
                slot_type=spec.get("slot_type"),
                weekdays=spec.get("weekdays", []),
                time_from=spec.get("time_from"),
                time_until=spec.get("time_until"),
            )
        )

    # One or two of the booked places come free; the offer run follows (as the nudge after commit would).
    freed = data.draw(
        st.lists(st.integers(0, capacity - 1), unique=True, min_size=1, max_size=min(2, capacity)), label="freed"
    )
    with time_machine.travel(NOW, tick=False):
        for index in freed:
            occupant = bookings[index]
            appointment_cancel(clinic=clinic, actor=None, appointment=occupant.appointment, reason="Cannot come")
            occupant.live = False
        offers = offers_for_slot(clinic=clinic, slot_id=target.slot.pk, now=NOW)

    expected = expected_order(entries, bookings, target, archived, closed_began[target.allocation])
    event(f"eligible: {min(len(expected), 3)}{'+' if len(expected) >= 3 else ''}, places: {len(freed)}")
    event(f"closed group begun: {closed_began[target.allocation]}")
    # Each place to the next eligible entry in order, one place per patient (their later entries wait).
    want, patients = [], set()
    for candidate in expected:
        if len(want) == len(freed):
            break
        if candidate.patient not in patients:
            patients.add(candidate.patient)
            want.append(candidate.entry.pk)
    got = [o.entry_id for o in offers]
    if len({e.patient for e in expected[:2]}) == 1 and len(expected) >= 2:
        event("the first two eligible entries are one patient's")
    assert got == want, describe(entries, expected, target)
    live = WaitlistOffer.objects.for_clinic(clinic).filter(slot=target.slot, hold__ended_at__isnull=True)
    assert sorted(live.values_list("entry_id", flat=True)) == sorted(want)
    assert set(WaitlistEntry.objects.for_clinic(clinic).filter(pk__in=want).values_list("state", flat=True)) <= {
        WaitlistState.OFFERED
    }
    target.slot.refresh_from_db()
    assert (target.slot.booked_count, target.slot.held_count) == (capacity - len(freed) + len(want), len(want))


def describe(entries, expected, target) -> str:
    rows = "\n".join(
        f"  #{e.entry.pk} pos {e.position} {e.kind} {e.state} patient {e.patient} "
        f"slot={e.slot is target if e.slot else None} alloc={e.allocation} scope={e.scope} from={e.from_date} "
        f"who={e.practitioner} type={e.slot_type} days={e.weekdays} {e.time_from}-{e.time_until} "
        f"offered here before={e.offered_here_before}"
        for e in entries
    )
    return (
        f"target: alloc {target.allocation} {target.local_start:%a %Y-%m-%d %H:%M}-{target.local_end:%H:%M} local "
        f"(session {target.session_date}), who {target.practitioner}, type {target.slot_type}\n{rows}\n"
        f"expected: {[e.entry.pk for e in expected]}"
    )


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_a_freed_place_goes_to_the_first_eligible_entry_in_order_or_to_nobody(data):
    # Each example in its own clinic, rolled back after it (a failing one too), so examples never see each other.
    with transaction.atomic():
        run_example(data)
        transaction.set_rollback(True)


# The edges, end to end: a cancellation, the nudge after commit, the offer run in this process -----------------


@pytest.fixture
def sends_in_this_process():
    with tasks_in_process():
        yield


def group_of(
    clinic,
    *,
    weeks=(0, 2, 4),
    closed=False,
    enforced=False,
    zone=LONDON,
    day=WEEK1 + dt.timedelta(days=3),
    start=dt.time(10),
    capacity=3,
    minutes=60,
):
    """A group (one slot of `capacity`) on Thursdays in London at 10:00 by default; its slot in each week."""
    location = LocationFactory(clinic=clinic, time_zone=zone)
    therapist = PractitionerFactory(clinic=clinic, default_location=location)
    kind = SlotTypeFactory(clinic=clinic, capacity=capacity, default_length_minutes=minutes)
    allocation, sessions = allocate(
        clinic,
        types=[kind],
        practitioner=therapist,
        location=location,
        day=day,
        start=start,
        weeks=weeks,
        closed=closed,
        enforced=enforced,
    )
    slots = {w: s.slots.get() for w, s in zip(weeks, sessions, strict=True)}
    return {"allocation": allocation, "slots": slots, "type": kind, "practitioner": therapist}


def fill(clinic, slot):
    """Book the slot full with patients who never wait; their appointments, first first."""
    slot.refresh_from_db()
    made = [book(slot, PatientFactory(clinic=clinic)) for _ in range(slot.capacity - slot.booked_count)]
    slot.refresh_from_db()
    return made


def waiting(clinic, patient, position, **fields):
    return WaitlistEntry.objects.create(clinic=clinic, patient=patient, position=position, **fields)


def offered(clinic, slot) -> list[WaitlistEntry]:
    """The entries holding a live offer of the slot, in the order the offers were made."""
    offers = WaitlistOffer.objects.for_clinic(clinic).filter(slot=slot, hold__ended_at__isnull=True).order_by("id")
    return [o.entry for o in offers.select_related("entry")]


def cancel(clinic, appointment):
    appointment_cancel(clinic=clinic, actor=None, appointment=appointment, reason="Cannot come")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sends_in_this_process")
@pytest.mark.parametrize(
    ("closed", "enforced", "now", "first_two"),
    [
        pytest.param(True, True, NOW, ("past", "future"), id="enforced-and-begun-members-only"),
        pytest.param(True, True, EARLY, ("newcomer", "left"), id="enforced-not-yet-begun-anyone"),
        pytest.param(True, False, NOW, ("newcomer", "left"), id="warning-only-anyone"),
        pytest.param(False, False, NOW, ("newcomer", "left"), id="open-group-anyone"),
    ],
)
def test_a_closed_group_that_has_begun_offers_only_to_patients_already_in_it(
    clinic_a, closed, enforced, now, first_two
):
    group = group_of(clinic_a, closed=closed, enforced=enforced)
    slots = group["slots"]
    people = {
        name: PatientFactory(clinic=clinic_a, first_name=name.title())
        for name in ("newcomer", "left", "past", "future")
    }
    # "left" was in the group but cancelled; "past" has a place (did not attend) in the first occurrence only;
    # "future" has a place in a later occurrence only. Nobody waiting has a place in the slot that comes free.
    cancel(clinic_a, book(slots[0], people["left"]))
    book(slots[0], people["past"], status="did_not_attend")
    book(slots[4], people["future"])
    occupants = fill(clinic_a, slots[2])
    entries = {
        name: waiting(
            clinic_a,
            patient,
            position,
            kind=WaitlistKind.SERIES,
            allocation=group["allocation"],
            slot_type=group["type"],
            scope=SeriesScope.ANY,
        )
        for position, (name, patient) in enumerate(people.items(), start=1)
    }
    with time_machine.travel(now, tick=False):
        cancel(clinic_a, occupants[0])
        cancel(clinic_a, occupants[1])
    assert offered(clinic_a, slots[2]) == [entries[name] for name in first_two]
    for name, entry in entries.items():
        entry.refresh_from_db()
        assert entry.state == (WaitlistState.OFFERED if name in first_two else WaitlistState.WAITING)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sends_in_this_process")
def test_a_slot_late_in_the_evening_in_new_york_matches_by_its_local_weekday(clinic_a):
    # Thursday 23:00-23:30 in New York is Friday 03:00-03:30 UTC.
    group = group_of(
        clinic_a,
        zone=NEW_YORK,
        day=FUTURE + dt.timedelta(days=3),
        weeks=(0,),
        start=dt.time(23),
        minutes=30,
        capacity=2,
    )
    slot = group["slots"][0]
    assert (slot.starts_at.isoweekday(), slot.starts_at.hour) == (5, 3)
    occupants = fill(clinic_a, slot)
    friday = waiting(
        clinic_a,
        PatientFactory(clinic=clinic_a),
        1,
        kind=WaitlistKind.PREFERENCE,
        practitioner=group["practitioner"],
        weekdays="5",
    )
    evening = waiting(
        clinic_a,
        PatientFactory(clinic=clinic_a),
        2,
        kind=WaitlistKind.PREFERENCE,
        slot_type=group["type"],
        weekdays="4",
        time_from=dt.time(23),
        time_until=dt.time(23, 30),
    )
    early_utc = waiting(
        clinic_a,
        PatientFactory(clinic=clinic_a),
        3,
        kind=WaitlistKind.PREFERENCE,
        slot_type=group["type"],
        time_until=dt.time(4),
    )  # 03:30 by UTC, not by New York
    with time_machine.travel(NOW, tick=False):
        cancel(clinic_a, occupants[0])
        cancel(clinic_a, occupants[1])
    assert offered(clinic_a, slot) == [evening]
    for entry in (friday, early_utc):
        entry.refresh_from_db()
        assert entry.state == WaitlistState.WAITING


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sends_in_this_process")
def test_the_time_window_takes_in_a_slot_at_both_ends_and_each_place_goes_to_the_next_in_order(clinic_a):
    # Thursday 10:00-11:00 in London (09:00-10:00 UTC); three places come free one after another.
    group = group_of(clinic_a, weeks=(2,), capacity=3)
    slot = group["slots"][2]
    occupants = fill(clinic_a, slot)

    def prefers(position, time_from=None, time_until=None):
        return waiting(
            clinic_a,
            PatientFactory(clinic=clinic_a),
            position,
            kind=WaitlistKind.PREFERENCE,
            practitioner=group["practitioner"],
            weekdays="4",
            time_from=time_from,
            time_until=time_until,
        )

    starts_a_minute_late = prefers(1, time_from=dt.time(10, 1))
    ends_a_minute_early = prefers(1, time_until=dt.time(10, 59))
    from_the_start = prefers(2, time_from=dt.time(10))
    to_the_end = prefers(2, time_until=dt.time(11))
    exactly = prefers(3, time_from=dt.time(10), time_until=dt.time(11))
    by_utc = prefers(0, time_from=dt.time(9), time_until=dt.time(10))  # the UTC times of the slot
    later = prefers(4)
    for number, occupant in enumerate(occupants, start=1):
        with time_machine.travel(NOW + dt.timedelta(minutes=number), tick=False):
            cancel(clinic_a, occupant)
        assert offered(clinic_a, slot) == [from_the_start, to_the_end, exactly][:number]
    for entry in (starts_a_minute_late, ends_a_minute_early, by_utc, later):
        entry.refresh_from_db()
        assert entry.state == WaitlistState.WAITING


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sends_in_this_process")
def test_several_places_freed_at_once_go_to_the_first_eligible_entries_each_once(clinic_a):
    group = group_of(clinic_a, weeks=(2,), capacity=4)
    slot = group["slots"][2]
    occupants = fill(clinic_a, slot)
    booked_here = occupants[3].patient
    series = {
        "kind": WaitlistKind.SERIES,
        "allocation": group["allocation"],
        "slot_type": group["type"],
        "scope": SeriesScope.ANY,
    }
    first = waiting(clinic_a, PatientFactory(clinic=clinic_a), 1, **series)
    waiting(clinic_a, PatientFactory(clinic=clinic_a), 1, state=WaitlistState.REMOVED, **series)
    waiting(clinic_a, PatientFactory(clinic=clinic_a, is_archived=True), 2, **series)
    booked_too = waiting(clinic_a, booked_here, 2, **series)  # waits for the series, but has a place in this slot
    second = waiting(clinic_a, PatientFactory(clinic=clinic_a), 2, kind=WaitlistKind.SLOT, slot=slot)
    waiting(
        clinic_a,
        PatientFactory(clinic=clinic_a),
        3,
        **{**series, "scope": SeriesScope.FROM_DATE, "from_date": FUTURE + dt.timedelta(days=4)},
    )
    third = waiting(
        clinic_a,
        PatientFactory(clinic=clinic_a),
        3,
        **{**series, "scope": SeriesScope.FROM_DATE, "from_date": FUTURE + dt.timedelta(days=3)},
    )
    fourth = waiting(
        clinic_a, PatientFactory(clinic=clinic_a), 4, kind=WaitlistKind.PREFERENCE, slot_type=group["type"]
    )
    with time_machine.travel(NOW, tick=False), transaction.atomic():
        for occupant in occupants[:3]:  # one change frees three places: one run offers them all
            cancel(clinic_a, occupant)
    assert offered(clinic_a, slot) == [first, second, third]
    slot.refresh_from_db()
    assert (slot.booked_count, slot.held_count) == (4, 3)
    fourth.refresh_from_db()
    assert fourth.state == WaitlistState.WAITING
    with time_machine.travel(NOW + dt.timedelta(minutes=1), tick=False):
        # The patient booked here who also waits gives up their place: no longer booked in the slot, their own entry
        # (position 2, added before the second's) is now the first eligible, ahead of the fourth.
        cancel(clinic_a, occupants[3])
    assert offered(clinic_a, slot) == [first, second, third, booked_too]
    fourth.refresh_from_db()
    assert fourth.state == WaitlistState.WAITING


# The enforced closed group when booking ------------------------------------------------------------------


@pytest.fixture
def closed_group(clinic_a):
    """An enforced closed group on Thursdays (10, 24 Jun and 8 Jul 2027, London) with one member in its first
    occurrence; a member of staff with "Schedule Admin: Manage Appointments" and an admin without it."""
    group = group_of(clinic_a, closed=True, enforced=True, capacity=4)
    group["member"] = PatientFactory(clinic=clinic_a, first_name="Member")
    book(group["slots"][0], group["member"])
    group["manager"] = MembershipFactory(clinic=clinic_a, role=Role.RECEPTION, perm_manage_appointments=True)
    group["admin"] = MembershipFactory(clinic=clinic_a, role=Role.ADMIN, perm_manage_appointments=False)
    return group


def book_as(clinic, membership, slot, patient, reason=""):
    return appointment_book(
        clinic=clinic,
        actor=membership.user if membership else None,
        membership=membership,
        request=BookingRequest(slot=slot, patient=patient, closed_override=reason),
    )


def refusal(clinic, membership, slot, patient, reason="") -> str:
    with pytest.raises(BookingError) as refused:
        book_as(clinic, membership, slot, patient, reason)
    assert not Appointment.objects.filter(slot=slot, patient=patient).exists()
    return refused.value.messages[0]


def override_of(appointment):
    event = AuditEvent.objects.get(action="appointment.booked", object_id=str(appointment.public_id))
    return event.detail.get("closed_override")


@pytest.mark.django_db
def test_before_a_closed_group_begins_anyone_books(clinic_a, closed_group):
    slots = closed_group["slots"]
    with time_machine.travel(EARLY, tick=False):
        online = book_as(clinic_a, None, slots[2], PatientFactory(clinic=clinic_a))
        at_desk = book_as(clinic_a, closed_group["admin"], slots[0], PatientFactory(clinic=clinic_a))
    assert override_of(online) is None and override_of(at_desk) is None


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_once_it_has_begun_a_new_patient_needs_the_permission_and_a_reason(clinic_a, closed_group):
    slot = closed_group["slots"][2]
    newcomer = PatientFactory(clinic=clinic_a, first_name="New")
    began = "This group is closed: it began on Thu 10 Jun 2027, and new patients are not added after that."

    for membership in (closed_group["admin"], MembershipFactory(clinic=clinic_a, role=Role.RECEPTION)):
        message = refusal(clinic_a, membership, slot, newcomer, reason="Moved from another group")
        assert message.startswith(began)
        assert "Schedule Admin: Manage Appointments" in message
    message = refusal(clinic_a, None, slot, newcomer)  # online, or a system: no member to give a reason
    assert message.startswith("This group is closed")
    for reason in ("", "   "):
        message = refusal(clinic_a, closed_group["manager"], slot, newcomer, reason=reason)
        assert message.startswith(began) and message.endswith("To add this patient anyway, give a reason.")

    appointment = book_as(clinic_a, closed_group["manager"], slot, newcomer, reason="  Transferred from Tuesdays ")
    assert appointment.slot_id == slot.pk
    assert override_of(appointment) == "Transferred from Tuesdays"
    # Now in the group: another occurrence takes them without a reason, from anyone.
    assert override_of(book_as(clinic_a, None, closed_group["slots"][4], newcomer)) is None


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_patient_already_in_the_group_books_another_occurrence_without_a_reason(clinic_a, closed_group):
    member = closed_group["member"]  # a place in the first occurrence only
    by_admin = book_as(clinic_a, closed_group["admin"], closed_group["slots"][2], member)
    online = book_as(clinic_a, None, closed_group["slots"][4], member)
    assert override_of(by_admin) is None and override_of(online) is None


@pytest.mark.django_db
def test_a_group_member_moves_within_the_group_but_a_newcomer_cannot_move_in(clinic_a, closed_group):
    slots = closed_group["slots"]
    patient = PatientFactory(clinic=clinic_a)
    elsewhere = group_of(clinic_a, weeks=(2,), day=FUTURE + dt.timedelta(days=1))["slots"][2]
    with time_machine.travel(EARLY, tick=False):
        first = book_as(clinic_a, None, slots[2], patient)  # their only place in the group
        outsider = book_as(clinic_a, None, elsewhere, PatientFactory(clinic=clinic_a))
    with time_machine.travel(NOW, tick=False):
        moved = appointment_reschedule(
            clinic=clinic_a, actor=None, membership=closed_group["admin"], appointment=first, slot=slots[4]
        )
        assert moved.slot_id == slots[4].pk and moved.rescheduled_from_id == first.pk
        assert override_of(moved) is None
        with pytest.raises(BookingError) as refused:
            appointment_reschedule(
                clinic=clinic_a, actor=None, membership=closed_group["admin"], appointment=outsider, slot=slots[2]
            )
    assert refused.value.messages[0].startswith("This group is closed")
    outsider.refresh_from_db()
    assert outsider.status == AppointmentStatus.BOOKED and outsider.slot_id == elsewhere.pk  # all or nothing


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_warning_only_closed_group_books_anyone(clinic_a):
    group = group_of(clinic_a, closed=True, enforced=False)
    online = book_as(clinic_a, None, group["slots"][2], PatientFactory(clinic=clinic_a))
    at_desk = book_as(clinic_a, MembershipFactory(clinic=clinic_a), group["slots"][4], PatientFactory(clinic=clinic_a))
    assert override_of(online) is None and override_of(at_desk) is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sends_in_this_process")
def test_one_patient_is_never_offered_two_places_in_one_slot(clinic_a):
    """An offer goes to the first eligible *person*: a patient waiting twice for the same slot (here for the slot
    and by preference) can take only one place in it (a second booking is refused), so a second place offered to
    them is held for nothing while the next person waits."""
    group = group_of(clinic_a, weeks=(2,), capacity=3)
    slot = group["slots"][2]
    occupants = fill(clinic_a, slot)
    twice = PatientFactory(clinic=clinic_a, first_name="Twice")
    for_the_slot = waiting(clinic_a, twice, 1, kind=WaitlistKind.SLOT, slot=slot)
    by_preference = waiting(clinic_a, twice, 2, kind=WaitlistKind.PREFERENCE, slot_type=group["type"])
    next_person = waiting(
        clinic_a, PatientFactory(clinic=clinic_a, first_name="Next"), 3, kind=WaitlistKind.SLOT, slot=slot
    )
    with time_machine.travel(NOW, tick=False):
        cancel(clinic_a, occupants[0])
        cancel(clinic_a, occupants[1])
    offers = [(e.patient.first_name, e.kind) for e in offered(clinic_a, slot)]
    assert offers[0] == ("Twice", WaitlistKind.SLOT) and for_the_slot.offers.exists()
    assert offers == [("Twice", WaitlistKind.SLOT), ("Next", WaitlistKind.SLOT)], "a second place for the same patient"
    assert next_person.offers.exists()
    by_preference.refresh_from_db()
    assert by_preference.state == WaitlistState.WAITING
