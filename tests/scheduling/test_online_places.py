"""The places a patient may book online (issue 20's free-time rules, each with a case): places of an online slot
type in sessions on the rota, inside the practitioner's online availability less busy events, honouring the
release rule, the minimum notice and the horizon; group places left counted; a fixed number of queries."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from scheduling.models import Availability, AvailabilityOverride
from scheduling.selectors.booking import online_places
from tests.factories import (
    OtherEventFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    book,
)

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")
MONDAY = dt.date(2027, 3, 22)  # the UK clocks go forward on Sunday 28 March
NOW = dt.datetime(2027, 3, 15, 12, tzinfo=dt.UTC)  # a week before


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=LONDON).astimezone(dt.UTC)


def available(practitioner, weekly=None):
    every_day = {str(d): [["09:00", "12:00"]] for d in range(1, 8)}
    return Availability.objects.create(
        clinic=practitioner.clinic, practitioner=practitioner, time_zone="Europe/London", weekly=weekly or every_day
    )


@pytest.fixture
def online(clinic_a):
    return SlotTypeFactory(clinic=clinic_a, name="Online consult", online_bookable=True, default_length_minutes=30)


@pytest.fixture
def doctor(clinic_a):
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Web")
    available(practitioner)
    return practitioner


def morning(clinic, practitioner, slot_type, day=MONDAY, start=dt.time(9), count=6, **fields):
    """A session of `count` half-hour slots of the type from `start`, local time."""
    return allocate_session(
        clinic, practitioner=practitioner, day=day, start=start, slot_types=[slot_type] * count, **fields
    )


def offered(clinic, slot_type, **kwargs):
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("until", NOW + dt.timedelta(days=30))
    return [
        (place.starts_at, place.places_left) for place in online_places(clinic=clinic, slot_type=slot_type, **kwargs)
    ]


def test_slots_inside_the_availability_window_are_offered_and_those_outside_are_not(clinic_a, online, doctor):
    morning(clinic_a, doctor, online, start=dt.time(10), count=6)  # 10:00 to 13:00; the window ends at 12:00
    assert offered(clinic_a, online) == [
        (at(MONDAY, 10), 1),
        (at(MONDAY, 10, 30), 1),
        (at(MONDAY, 11), 1),
        (at(MONDAY, 11, 30), 1),
    ]


def test_only_online_bookable_types_are_offered(clinic_a, doctor):
    phone_only = SlotTypeFactory(clinic=clinic_a, online_bookable=False, default_length_minutes=30)
    morning(clinic_a, doctor, phone_only)
    assert offered(clinic_a, phone_only) == []


def test_a_date_override_replaces_the_weekly_window_and_an_empty_one_closes_the_day(clinic_a, online, doctor):
    tuesday = MONDAY + dt.timedelta(days=1)
    morning(clinic_a, doctor, online, day=MONDAY)
    morning(clinic_a, doctor, online, day=tuesday)
    AvailabilityOverride.objects.create(clinic=clinic_a, practitioner=doctor, date=MONDAY, hours=[])
    AvailabilityOverride.objects.create(clinic=clinic_a, practitioner=doctor, date=tuesday, hours=[["10:00", "11:00"]])
    assert offered(clinic_a, online) == [(at(tuesday, 10), 1), (at(tuesday, 10, 30), 1)]


def test_timed_and_all_day_busy_events_take_their_time_and_google_busy_counts_too(clinic_a, online, doctor):
    tuesday = MONDAY + dt.timedelta(days=1)
    wednesday = MONDAY + dt.timedelta(days=2)
    for day in (MONDAY, tuesday, wednesday):
        morning(clinic_a, doctor, online, day=day, count=2)  # 09:00 and 09:30
    OtherEventFactory(
        clinic=clinic_a, practitioner=doctor, starts_at=at(MONDAY, 9, 15), ends_at=at(MONDAY, 9, 45), busy=True
    )
    OtherEventFactory(
        clinic=clinic_a, practitioner=doctor, all_day=True, starts_at=None, ends_at=None,
        first_date=tuesday, last_date=tuesday, busy=True,
    )  # fmt: skip
    # An event pulled from Google: busy there, so busy here.
    OtherEventFactory(
        clinic=clinic_a, practitioner=doctor, starts_at=at(wednesday, 9), ends_at=at(wednesday, 9, 30), busy=True,
        google_calendar_id="primary", google_event_id="abc123",
    )  # fmt: skip
    # A free event takes nothing.
    OtherEventFactory(
        clinic=clinic_a, practitioner=doctor, starts_at=at(wednesday, 9, 30), ends_at=at(wednesday, 10), busy=False
    )
    assert offered(clinic_a, online) == [(at(wednesday, 9, 30), 1)]


def test_release_rules_hold_on_the_slots_own_day(clinic_a, doctor):
    on_the_day = SlotTypeFactory(
        clinic=clinic_a, online_bookable=True, default_length_minutes=30, release_rule="on_the_day"
    )
    two_days = SlotTypeFactory(
        clinic=clinic_a,
        online_bookable=True,
        default_length_minutes=30,
        release_rule="days_before",
        release_days_before=2,
    )
    for day in (MONDAY, MONDAY + dt.timedelta(days=2), MONDAY + dt.timedelta(days=3)):
        morning(clinic_a, doctor, on_the_day, day=day, count=1)
        morning(clinic_a, doctor, two_days, day=day, start=dt.time(10), count=1)
    now = at(MONDAY, 8)
    assert offered(clinic_a, on_the_day, now=now) == [(at(MONDAY, 9), 1)]
    assert offered(clinic_a, two_days, now=now) == [(at(MONDAY, 10), 1), (at(MONDAY + dt.timedelta(days=2), 10), 1)]


def test_minimum_notice_and_the_horizon_bound_the_times(clinic_a, online, doctor):
    for days in (0, 10, 20):
        morning(clinic_a, doctor, online, day=MONDAY + dt.timedelta(days=days), count=2)
    now = at(MONDAY, 8)
    offered_now = offered(
        clinic_a, online, now=now, notice=dt.timedelta(hours=1, minutes=30), horizon=dt.timedelta(days=14)
    )
    assert offered_now == [
        (at(MONDAY, 9, 30), 1),
        (at(MONDAY + dt.timedelta(days=10), 9), 1),
        (at(MONDAY + dt.timedelta(days=10), 9, 30), 1),
    ]


def test_group_places_left_are_counted_and_a_full_slot_is_gone(clinic_a, doctor):
    group = SlotTypeFactory(clinic=clinic_a, online_bookable=True, default_length_minutes=30, capacity=4)
    session = morning(clinic_a, doctor, group, count=2)
    first, second = session.slots.order_by("starts_at")
    for _ in range(3):
        book(first, PatientFactory(clinic=clinic_a))
    for _ in range(4):
        book(second, PatientFactory(clinic=clinic_a))
    assert offered(clinic_a, group) == [(at(MONDAY, 9), 1)]


def test_anyone_or_one_practitioner_and_a_location_and_travel_clinics_are_labelled(clinic_a, online, doctor):
    other = PractitionerFactory(clinic=clinic_a, name="Dr Two")
    available(other)
    no_availability = PractitionerFactory(clinic=clinic_a, name="Dr Phone")
    usual = morning(clinic_a, doctor, online, count=1)
    travel = morning(clinic_a, other, online, start=dt.time(10), count=1, travel_clinic=True)
    morning(clinic_a, no_availability, online, start=dt.time(11), count=1)
    assert offered(clinic_a, online) == [(at(MONDAY, 9), 1), (at(MONDAY, 10), 1)]
    assert offered(clinic_a, online, practitioners=[other]) == [(at(MONDAY, 10), 1)]
    assert offered(clinic_a, online, location=travel.location) == [(at(MONDAY, 10), 1)]
    places = online_places(clinic=clinic_a, slot_type=online, now=NOW, until=NOW + dt.timedelta(days=30))
    assert [(place.practitioner, place.location, place.travel_clinic) for place in places] == [
        ("Dr Web", usual.location.name, False),
        ("Dr Two", travel.location.name, True),
    ]
    assert places[1].slot == travel.slots.get().public_id


def test_on_the_day_the_clocks_change_the_window_keeps_its_local_hours(clinic_a, online, doctor):
    sunday = dt.date(2027, 3, 28)  # 01:00 GMT becomes 02:00 BST
    morning(clinic_a, doctor, online, day=sunday, start=dt.time(11), count=3)  # 11:00, 11:30, 12:00 BST
    assert offered(clinic_a, online) == [(at(sunday, 11), 1), (at(sunday, 11, 30), 1)]
    assert at(sunday, 11) == dt.datetime(2027, 3, 28, 10, tzinfo=dt.UTC)


def test_the_query_count_does_not_grow_with_practitioners_or_days(clinic_a, online, django_assert_num_queries):
    def build(practitioners: int, days: int) -> None:
        for _ in range(practitioners):
            practitioner = PractitionerFactory(clinic=clinic_a)
            available(practitioner)
            for day in range(days):
                morning(clinic_a, practitioner, online, day=MONDAY + dt.timedelta(days=day), count=2)

    build(1, 1)
    with django_assert_num_queries(4):
        assert len(online_places(clinic=clinic_a, slot_type=online, now=NOW, until=NOW + dt.timedelta(days=30))) == 2
    build(4, 5)
    with django_assert_num_queries(4):
        assert len(online_places(clinic=clinic_a, slot_type=online, now=NOW, until=NOW + dt.timedelta(days=30))) == 42
