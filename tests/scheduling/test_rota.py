"""Allocation: dates, wall-clock times across DST, clashes, removal, snapshots."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduling.models import Allocation, Session, Slot
from scheduling.services.rota import (
    AllocationClash,
    AllocationHasBookings,
    AllocationRequest,
    RotaError,
    allocation_create,
    allocation_dates,
    allocation_plan,
    allocation_remove_future,
)
from sessions_setup.models import TemplateSlot
from tests.factories import LocationFactory, PractitionerFactory, SlotTypeFactory, template_with_slots


def request_for(template, practitioner, location, first, last=None, weekdays=(), every=1, start=dt.time(8)):
    return AllocationRequest(template, practitioner, location, start, first, last or first, tuple(weekdays), every)


@pytest.fixture
def rota(clinic_a):
    normal = SlotTypeFactory(clinic=clinic_a, name="Normal", default_length_minutes=15)
    phone = SlotTypeFactory(clinic=clinic_a, name="Telephone", default_length_minutes=10, kind="telephone")
    group = SlotTypeFactory(clinic=clinic_a, name="Group", default_length_minutes=60, capacity=8)
    # 4 hours: 08:00-12:00 from 16 x 15 minutes
    template = template_with_slots(clinic_a, [normal] * 16, name="Dr Smith AM")
    london = LocationFactory(clinic=clinic_a, name="London", time_zone="Europe/London")
    new_york = LocationFactory(clinic=clinic_a, name="New York", time_zone="America/New_York")
    smith = PractitionerFactory(clinic=clinic_a, name="Dr Smith", default_location=london)
    return {
        "normal": normal, "phone": phone, "group": group, "template": template,
        "london": london, "new_york": new_york, "smith": smith,
    }  # fmt: skip


# --- dates -----------------------------------------------------------------------------


@given(
    first=st.dates(dt.date(2026, 1, 1), dt.date(2028, 12, 31)),
    span=st.integers(0, 200),
    weekdays=st.sets(st.integers(1, 7), min_size=1),
    every=st.integers(1, 4),
)
def test_allocation_dates_follow_weekdays_and_week_interval(first, span, weekdays, every):
    last = first + dt.timedelta(days=span)
    dates = allocation_dates(first_date=first, last_date=last, weekdays=weekdays, every_weeks=every)
    monday = first - dt.timedelta(days=first.weekday())
    expected = [
        first + dt.timedelta(days=i)
        for i in range(span + 1)
        if (first + dt.timedelta(days=i)).isoweekday() in weekdays
        and ((first + dt.timedelta(days=i) - monday).days // 7) % every == 0
    ]
    assert dates == expected


def test_one_date_when_no_weekdays_are_chosen():
    day = dt.date(2027, 3, 3)
    assert allocation_dates(first_date=day, last_date=day + dt.timedelta(days=30), weekdays=[], every_weeks=1) == [day]


@pytest.mark.parametrize(
    ("first", "last", "every", "message"),
    [
        (dt.date(2027, 3, 5), dt.date(2027, 3, 1), 1, "before the first"),
        (dt.date(2027, 1, 1), dt.date(2030, 1, 1), 1, "two years"),
        (dt.date(2027, 1, 1), dt.date(2027, 2, 1), 0, "every 1 week"),
    ],
)
def test_bad_ranges_are_refused_with_a_message(first, last, every, message):
    with pytest.raises(RotaError, match=message):
        allocation_dates(first_date=first, last_date=last, weekdays=[1], every_weeks=every)


# --- DST -------------------------------------------------------------------------------

DST_DAYS = [
    ("london", dt.date(2027, 3, 28)),  # Europe/London springs forward (Sunday)
    ("london", dt.date(2027, 10, 31)),  # and falls back
    ("new_york", dt.date(2027, 3, 14)),  # America/New_York springs forward
    ("new_york", dt.date(2027, 11, 7)),  # and falls back
]


@pytest.mark.django_db
@pytest.mark.parametrize(("where", "day"), DST_DAYS)
def test_an_0800_1200_session_stays_0800_1200_local_across_dst(rota, clinic_a, admin_a, where, day):
    location = rota[where]
    zone = ZoneInfo(location.time_zone)
    first, last = day - dt.timedelta(days=3), day + dt.timedelta(days=3)
    allocation_create(
        clinic=clinic_a,
        actor=admin_a.user,
        request=request_for(rota["template"], rota["smith"], location, first, last, weekdays=range(1, 8)),
    )
    sessions = list(Session.objects.for_clinic(clinic_a).order_by("date"))
    assert [s.date for s in sessions] == [first + dt.timedelta(days=i) for i in range(7)]
    offsets = set()
    for session in sessions:
        start, end = session.starts_at.astimezone(zone), session.ends_at.astimezone(zone)
        assert (start.date(), start.time(), end.time()) == (session.date, dt.time(8), dt.time(12))
        offsets.add(start.utcoffset())
        slots = list(session.slots.order_by("position"))
        assert len(slots) == 16
        assert slots[0].starts_at == session.starts_at and slots[-1].ends_at == session.ends_at
        assert all(a.ends_at == b.starts_at for a, b in zip(slots, slots[1:], strict=False))
    assert len(offsets) == 2, "the week spans the clock change"


@pytest.mark.django_db
def test_slots_carry_the_slot_types_capacity_and_blank_slots_are_not_bookable(rota, clinic_a, admin_a):
    template = template_with_slots(clinic_a, [rota["group"], None, rota["phone"]], name="Group PM")
    allocation_create(
        clinic=clinic_a,
        actor=admin_a.user,
        request=request_for(template, None, rota["london"], dt.date(2027, 5, 3)),
    )
    slots = list(Slot.objects.for_clinic(clinic_a).order_by("position"))
    assert [(s.capacity, s.bookable, s.booked_count) for s in slots] == [(8, True, 0), (1, False, 0), (1, True, 0)]
    assert [s.ends_at - s.starts_at for s in slots] == [dt.timedelta(minutes=m) for m in (60, 10, 10)]
    assert len({s.public_id for s in slots}) == 3


# --- clashes ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_overlapping_allocation_is_refused_naming_the_clash(rota, clinic_a, admin_a):
    monday = dt.date(2027, 5, 3)
    allocation_create(
        clinic=clinic_a,
        actor=admin_a.user,
        request=request_for(
            rota["template"], rota["smith"], rota["london"], monday, monday + dt.timedelta(days=13), [1, 3]
        ),
    )
    other = template_with_slots(clinic_a, [rota["normal"]] * 4, name="Late start")
    clash_request = request_for(
        other, rota["smith"], rota["london"], monday + dt.timedelta(days=9), start=dt.time(11, 30)
    )
    before = (Allocation.objects.count(), Session.objects.count(), Slot.objects.count())
    with pytest.raises(AllocationClash) as error:
        allocation_create(clinic=clinic_a, actor=admin_a.user, request=clash_request)
    assert "Wed 12 May 2027" in error.value.messages[0]
    assert "“Dr Smith AM” at London" in error.value.messages[0]
    assert (Allocation.objects.count(), Session.objects.count(), Slot.objects.count()) == before


@pytest.mark.django_db
def test_back_to_back_sessions_and_other_practitioners_do_not_clash(rota, clinic_a, admin_a):
    day = dt.date(2027, 5, 3)
    allocation_create(
        clinic=clinic_a, actor=admin_a.user, request=request_for(rota["template"], rota["smith"], rota["london"], day)
    )
    pm = template_with_slots(clinic_a, [rota["normal"]] * 4, name="Dr Smith PM")
    plan = allocation_plan(
        clinic=clinic_a, request=request_for(pm, rota["smith"], rota["london"], day, start=dt.time(12))
    )
    assert plan.clashes == []
    jones = PractitionerFactory(clinic=clinic_a, name="Dr Jones")
    plan = allocation_plan(clinic=clinic_a, request=request_for(rota["template"], jones, rota["london"], day))
    assert plan.clashes == []


# --- snapshots and removal -------------------------------------------------------------


@pytest.mark.django_db
def test_editing_the_template_later_never_changes_allocated_sessions(rota, clinic_a, admin_a):
    day = dt.date(2027, 5, 3)
    allocation_create(
        clinic=clinic_a, actor=admin_a.user, request=request_for(rota["template"], rota["smith"], rota["london"], day)
    )
    template = rota["template"]
    template.name, template.colour = "Renamed", "red"
    template.save()
    TemplateSlot.objects.filter(template=template).update(length_minutes=5)
    session = Session.objects.for_clinic(clinic_a).get()
    assert (session.name, session.colour) == ("Dr Smith AM", "black")
    assert session.slots.count() == 16
    assert session.ends_at - session.starts_at == dt.timedelta(hours=4)


@pytest.mark.django_db
def test_removing_future_sessions_that_hold_bookings_is_refused_with_the_list(rota, clinic_a, admin_a):
    monday = dt.date(2027, 5, 3)
    allocation = allocation_create(
        clinic=clinic_a,
        actor=admin_a.user,
        request=request_for(
            rota["template"], rota["smith"], rota["london"], monday, monday + dt.timedelta(days=6), [1, 2]
        ),
    )
    booked = (
        Slot.objects.for_clinic(clinic_a).filter(session__date=monday + dt.timedelta(days=1)).order_by("position")[2]
    )
    Slot.objects.filter(pk=booked.pk).update(booked_count=1)
    with pytest.raises(AllocationHasBookings) as error:
        allocation_remove_future(clinic=clinic_a, actor=admin_a.user, allocation=allocation, from_date=monday)
    assert [s.pk for s in error.value.slots] == [booked.pk]
    assert Session.objects.for_clinic(clinic_a).count() == 2
    # From the day after the booking, removal goes ahead; the allocation stays for its past.
    removed = allocation_remove_future(
        clinic=clinic_a, actor=admin_a.user, allocation=allocation, from_date=monday + dt.timedelta(days=2)
    )
    assert removed == 0
    Slot.objects.filter(pk=booked.pk).update(booked_count=0)
    assert allocation_remove_future(clinic=clinic_a, actor=admin_a.user, allocation=allocation, from_date=monday) == 2
    assert not Allocation.objects.filter(pk=allocation.pk).exists()
    assert not Slot.objects.for_clinic(clinic_a).exists()


@pytest.mark.django_db
def test_the_database_refuses_more_bookings_than_capacity(rota, clinic_a, admin_a):
    from django.db import IntegrityError, transaction

    allocation_create(
        clinic=clinic_a,
        actor=admin_a.user,
        request=request_for(rota["template"], None, rota["london"], dt.date(2027, 5, 3)),
    )
    slot = Slot.objects.for_clinic(clinic_a).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Slot.objects.filter(pk=slot.pk).update(booked_count=2)
