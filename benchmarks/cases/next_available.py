"""Next available: 40 practitioners over six months, 60% of places booked.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``), chosen by the harness."""

from __future__ import annotations

import datetime as dt
import functools
import random
from dataclasses import dataclass

from django.db import connection

from benchmarks.cases.common import CALENDAR_TIME_ZONE, clinics_clear, register
from benchmarks.harness import Case, checked, sized
from clinic.models import Clinic, Location, Practitioner, PractitionerRole
from scheduling.models import Session, Slot
from scheduling.services.rota import AllocationRequest, allocation_create
from sessions_setup.models import SessionTemplate, SlotType, TemplateSlot

# --- Next available: 40 practitioners over six months, 60% of places booked --------------

NEXT_SLUG = "bench-next-available"


@dataclass(frozen=True)
class NextSizes:
    practitioners: int
    weeks: int  # from NEXT_FIRST_DAY: more than the 9 before "now"
    searched: int  # the practitioner searched for (index)


FULL = NextSizes(practitioners=40, weeks=26, searched=17)
TINY = NextSizes(practitioners=2, weeks=10, searched=1)
SIZE = sized(FULL, TINY)

NEXT_PRACTITIONERS = SIZE.practitioners
NEXT_FIRST_DAY = dt.date(2027, 3, 1)  # a Monday
NEXT_WEEKS = SIZE.weeks
NEXT_FOUND = 10  # slots next_available offers
NEXT_SLOTS_PER_SESSION = 24  # 10-minute slots; every 6th a "book on the day" one
NEXT_BOOKED_SHARE = 0.6


@dataclass(frozen=True)
class NextState:
    clinic: Clinic
    now: dt.datetime
    practitioner: Practitioner
    slot_type: SlotType
    on_the_day: SlotType


@functools.cache
def next_available_setup() -> NextState:

    clinics_clear([NEXT_SLUG])
    clinic = Clinic.objects.create(name="Benchmark next available", slug=NEXT_SLUG, time_zone=CALENDAR_TIME_ZONE)
    location = Location.objects.create(
        clinic=clinic, name="Main surgery", kind=Location.Kind.MAIN, time_zone=CALENDAR_TIME_ZONE
    )
    routine = SlotType.objects.create(clinic=clinic, name="Routine", default_length_minutes=10, order=1)
    on_the_day = SlotType.objects.create(
        clinic=clinic, name="Book on the day", default_length_minutes=10, release_rule="on_the_day", order=2
    )
    template = SessionTemplate.objects.create(clinic=clinic, name="GP morning")
    TemplateSlot.objects.bulk_create(
        TemplateSlot(
            clinic=clinic,
            template=template,
            position=n,
            slot_type=on_the_day if n % 6 == 5 else routine,
            length_minutes=10,
        )
        for n in range(NEXT_SLOTS_PER_SESSION)
    )
    last_day = NEXT_FIRST_DAY + dt.timedelta(weeks=NEXT_WEEKS, days=-1)
    practitioners = [
        Practitioner.objects.create(
            clinic=clinic, name=f"Dr Next {n:02}", role=PractitionerRole.GP, default_location=location
        )
        for n in range(NEXT_PRACTITIONERS)
    ]
    for practitioner in practitioners:
        allocation_create(
            clinic=clinic,
            actor=None,
            request=AllocationRequest(
                template, practitioner, location, dt.time(8, 30), NEXT_FIRST_DAY, last_day, (1, 2, 3, 4, 5), 1
            ),
        )
    # 60% of places taken, spread evenly but not in a pattern the planner could exploit.
    rng = random.Random(NEXT_SLUG)
    ids = list(Slot.objects.for_clinic(clinic).values_list("id", flat=True))
    taken = rng.sample(ids, int(len(ids) * NEXT_BOOKED_SHARE))
    for start in range(0, len(taken), 5_000):
        Slot.objects.filter(id__in=taken[start : start + 5_000]).update(booked_count=1)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Slot._meta.db_table}, {Session._meta.db_table}")
    total = len(ids)
    expected = NEXT_PRACTITIONERS * NEXT_WEEKS * 5 * NEXT_SLOTS_PER_SESSION
    if total != expected:
        raise RuntimeError(f"next_available: {total} slots, expected {expected}")
    # "Now" is the Monday of the third month at 07:00 London: sixteen weeks of future to search (one at tiny size).
    now = dt.datetime(2027, 5, 3, 6, tzinfo=dt.UTC)
    state = NextState(
        clinic=clinic, now=now, practitioner=practitioners[SIZE.searched], slot_type=routine, on_the_day=on_the_day
    )
    next_available_check(state)
    return state


def next_available_check(state: NextState) -> None:
    """Ten free future slots of the type for the practitioner; no book-on-the-day slot before its day."""
    from scheduling.selectors.booking import next_available

    now = state.now
    found = next_available(clinic=state.clinic, now=now, slot_type=state.slot_type, practitioner=state.practitioner)
    if len(found) != NEXT_FOUND or any(s.booked_count >= s.capacity or s.starts_at < now for s in found):
        raise RuntimeError("next_available: the search did not return ten free future slots")
    same_day = next_available(clinic=state.clinic, now=now, slot_type=state.on_the_day)
    if any(s.starts_at.date() != now.date() for s in same_day):
        raise RuntimeError("next_available: a book-on-the-day slot was offered before its day")
    checked()


def next_available_run(state: NextState) -> None:
    from scheduling.selectors.booking import next_available

    next_available(clinic=state.clinic, now=state.now, slot_type=state.slot_type, practitioner=state.practitioner)


def next_available_floor(state: NextState) -> None:
    list(Slot.objects.filter(pk=Slot.objects.for_clinic(state.clinic).values("pk")[:1]))


register(
    Case(
        name="next_available",
        setup=next_available_setup,
        run=next_available_run,
        floor=next_available_floor,
        runs=30,
        warmup=3,
        check=next_available_check,
    )
)
