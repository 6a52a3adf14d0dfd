"""Online booking: the free times of one online slot type over four weeks, for "anyone" of 10 practitioners.

60% of places booked, weekly availability with date overrides, busy events pulled from Google (timed and all-day)
and a release rule on the type. Sizes: FULL (the figures of results.json) and TINY (``--size tiny``)."""

from __future__ import annotations

import datetime as dt
import functools
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.db import connection
from django.test.utils import CaptureQueriesContext

from benchmarks.cases.common import CALENDAR_TIME_ZONE, clinics_clear, register
from benchmarks.harness import Case, checked, sized
from clinic.models import Clinic, Location, Practitioner, PractitionerRole
from scheduling.models import Availability, AvailabilityOverride, OtherEvent, Session, Slot
from scheduling.services.rota import AllocationRequest, allocation_create
from sessions_setup.models import SessionTemplate, SlotType, TemplateSlot

if TYPE_CHECKING:
    from scheduling.selectors.booking import OnlinePlace

ONLINE_SLUG = "bench-online-times"


@dataclass(frozen=True)
class OnlineSizes:
    practitioners: int
    weeks: int  # of sessions on the rota, from ONLINE_FIRST_DAY (the search covers four of them)


FULL = OnlineSizes(practitioners=10, weeks=6)
TINY = OnlineSizes(practitioners=2, weeks=5)
SIZE = sized(FULL, TINY)

ONLINE_FIRST_DAY = dt.date(2027, 9, 6)  # a Monday
NOW = dt.datetime(2027, 9, 6, 6, tzinfo=dt.UTC)  # 07:00 in London on that Monday
SLOTS_PER_SESSION = 16  # 15-minute slots from 08:30; every other one online
BOOKED_SHARE = 0.6
RELEASE_DAYS = 21  # the online type opens 21 days ahead: the last week of the four is not yet released
ZONE = ZoneInfo(CALENDAR_TIME_ZONE)


@dataclass(frozen=True)
class OnlineState:
    clinic: Clinic
    slot_type: SlotType
    practitioners: list[Practitioner]


@functools.cache
def online_times_setup() -> OnlineState:
    clinics_clear([ONLINE_SLUG])
    zone = CALENDAR_TIME_ZONE
    clinic = Clinic.objects.create(name="Benchmark online times", slug=ONLINE_SLUG, time_zone=zone)
    location = Location.objects.create(clinic=clinic, name="Main surgery", kind=Location.Kind.MAIN, time_zone=zone)
    online = SlotType.objects.create(
        clinic=clinic,
        name="Online consult",
        default_length_minutes=15,
        online_bookable=True,
        release_rule="days_before",
        release_days_before=RELEASE_DAYS,
        order=1,
    )
    routine = SlotType.objects.create(clinic=clinic, name="Routine", default_length_minutes=15, order=2)
    template = SessionTemplate.objects.create(clinic=clinic, name="GP morning")
    TemplateSlot.objects.bulk_create(
        TemplateSlot(
            clinic=clinic, template=template, position=n, slot_type=online if n % 2 == 0 else routine, length_minutes=15
        )
        for n in range(SLOTS_PER_SESSION)
    )
    last_day = ONLINE_FIRST_DAY + dt.timedelta(weeks=SIZE.weeks, days=-1)
    practitioners = [
        Practitioner.objects.create(
            clinic=clinic, name=f"Dr Online {n:02}", role=PractitionerRole.GP, default_location=location
        )
        for n in range(SIZE.practitioners)
    ]
    rng = random.Random(ONLINE_SLUG)
    weekdays = ("1", "2", "3", "4", "5")
    for index, practitioner in enumerate(practitioners):
        allocation_create(
            clinic=clinic,
            actor=None,
            request=AllocationRequest(
                template, practitioner, location, dt.time(8, 30), ONLINE_FIRST_DAY, last_day, (1, 2, 3, 4, 5), 1
            ),
        )
        # Online mornings 08:30-11:30 (the last half hour of each session is not offered online).
        Availability.objects.create(
            clinic=clinic, practitioner=practitioner, time_zone=zone, weekly={d: [["08:30", "11:30"]] for d in weekdays}
        )
        # Two date overrides each: a day off, and a short day.
        days = [ONLINE_FIRST_DAY + dt.timedelta(days=d) for d in range(SIZE.weeks * 7) if d % 7 < 5]
        off, short = rng.sample(days, 2)
        AvailabilityOverride.objects.create(clinic=clinic, practitioner=practitioner, date=off, hours=[])
        AvailabilityOverride.objects.create(
            clinic=clinic, practitioner=practitioner, date=short, hours=[["09:00", "10:00"]]
        )
        # Busy events pulled from Google: three timed ones a week and an all-day one in the second week.
        events = []
        for week in range(SIZE.weeks):
            for n in range(3):
                day = ONLINE_FIRST_DAY + dt.timedelta(weeks=week, days=rng.randrange(5))
                # In UTC: on BST, 09:00 to 12:30 in London.
                starts_at = dt.datetime.combine(
                    day, dt.time(8 + rng.randrange(4), 30 * rng.randrange(2)), tzinfo=dt.UTC
                )
                events.append(
                    OtherEvent(
                        clinic=clinic,
                        practitioner=practitioner,
                        title="Busy",
                        starts_at=starts_at,
                        ends_at=starts_at + dt.timedelta(minutes=45),
                        busy=True,
                        google_calendar_id="primary",
                        google_event_id=f"bench{index}w{week}n{n}",
                    )
                )
        day = ONLINE_FIRST_DAY + dt.timedelta(weeks=1, days=index % 5)
        events.append(
            OtherEvent(
                clinic=clinic,
                practitioner=practitioner,
                title="Conference",
                all_day=True,
                first_date=day,
                last_date=day,
                busy=True,
                google_calendar_id="primary",
                google_event_id=f"bench{index}allday",
            )
        )
        OtherEvent.objects.bulk_create(events)
    # 60% of places taken, spread evenly but not in a pattern the planner could exploit.
    ids = list(Slot.objects.for_clinic(clinic).values_list("id", flat=True))
    taken = rng.sample(ids, int(len(ids) * BOOKED_SHARE))
    for chunk in range(0, len(taken), 5_000):
        Slot.objects.filter(id__in=taken[chunk : chunk + 5_000]).update(booked_count=1)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Slot._meta.db_table}, {Session._meta.db_table}, {OtherEvent._meta.db_table}")
    expected = SIZE.practitioners * SIZE.weeks * 5 * SLOTS_PER_SESSION
    if len(ids) != expected:
        raise RuntimeError(f"online_times: {len(ids)} slots, expected {expected}")
    state = OnlineState(clinic=clinic, slot_type=online, practitioners=practitioners)
    online_times_check(state)
    return state


def _search(state: OnlineState, practitioners: list[Practitioner] | None = None, weeks: int = 4) -> list[OnlinePlace]:
    from scheduling.selectors.booking import online_places

    return online_places(
        clinic=state.clinic,
        slot_type=state.slot_type,
        now=NOW,
        until=NOW + dt.timedelta(weeks=weeks),
        practitioners=practitioners,
    )


def online_times_check(state: OnlineState) -> None:
    """Free places only, of the online type, released, inside availability and outside busy events; the same
    query count for one practitioner over a week as for everyone over four."""
    from scheduling.hours import local_day

    found = _search(state)
    if not found:
        raise RuntimeError("online_times: no free time found")
    released_until = local_day(NOW.astimezone(ZONE).date() + dt.timedelta(days=RELEASE_DAYS), ZONE)[1]
    events = OtherEvent.objects.for_clinic(state.clinic)
    busy = list(events.filter(all_day=False).values_list("practitioner_id", "starts_at", "ends_at"))
    away = set(events.filter(all_day=True).values_list("practitioner_id", "first_date"))
    away |= set(
        AvailabilityOverride.objects.for_clinic(state.clinic).filter(hours=[]).values_list("practitioner_id", "date")
    )
    slots = {
        slot.public_id: slot
        for slot in Slot.objects.for_clinic(state.clinic).filter(public_id__in=[p.slot for p in found])
    }
    for place in found:
        slot = slots[place.slot]
        if slot.slot_type_id != state.slot_type.pk or slot.booked_count >= slot.capacity or place.places_left != 1:
            raise RuntimeError("online_times: a place that is not a free online place was offered")
        if slot.starts_at >= released_until:
            raise RuntimeError("online_times: a place was offered before its release")
        local = slot.starts_at.astimezone(ZONE)
        if (place.practitioner_id, local.date()) in away:
            raise RuntimeError("online_times: a place on a day off or an all-day busy day was offered")
        if not (dt.time(8, 30) <= local.time() and (local + dt.timedelta(minutes=15)).time() <= dt.time(11, 30)):
            raise RuntimeError("online_times: a place outside the online availability was offered")
        practitioner = place.practitioner_id
        if any(p == practitioner and s < slot.ends_at and slot.starts_at < e for p, s, e in busy):
            raise RuntimeError("online_times: a place during a busy event was offered")
    checked()
    with CaptureQueriesContext(connection) as everyone:
        _search(state)
    with CaptureQueriesContext(connection) as one:
        _search(state, practitioners=state.practitioners[:1], weeks=1)
    if len(everyone) != len(one):
        raise RuntimeError(f"online_times: {len(everyone)} queries for everyone, {len(one)} for one practitioner")
    checked()


def online_times_run(state: OnlineState) -> None:
    _search(state)


def online_times_floor(state: OnlineState) -> None:
    list(Slot.objects.filter(pk=Slot.objects.for_clinic(state.clinic).values("pk")[:1]))


register(
    Case(
        name="online_times",
        setup=online_times_setup,
        run=online_times_run,
        floor=online_times_floor,
        runs=30,
        warmup=3,
        check=online_times_check,
    )
)
