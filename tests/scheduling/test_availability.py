"""Online-booking availability: weekly windows, date overrides, and the free-time selector."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinic.models import AuditEvent, Role
from scheduling.hours import local_day
from scheduling.models import Appointment, Availability, AvailabilityOverride, OtherEvent
from scheduling.selectors.calendar import free_times
from tests.conftest import logged_in_client
from tests.factories import (
    ClinicFactory,
    MembershipFactory,
    OtherEventFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    book,
)

pytestmark = pytest.mark.django_db
UTC = dt.UTC
MONDAY = dt.date(2027, 3, 22)  # the UK clocks change on the Sunday of this week


def at(day, hour, minute=0, zone="Europe/London"):
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def whole_week(practitioner):
    start = at(MONDAY, 0)
    end = at(MONDAY + dt.timedelta(days=7), 0)
    return free_times(clinic=practitioner.clinic, practitioners=[practitioner], starts_at=start, ends_at=end)[
        practitioner.pk
    ]


def availability(practitioner, weekly, zone="Europe/London"):
    return Availability.objects.create(
        clinic=practitioner.clinic, practitioner=practitioner, time_zone=zone, weekly=weekly
    )


def test_weekly_windows_become_free_time_in_their_zone_across_dst(clinic_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    availability(practitioner, {"5": [["09:00", "12:00"]], "1": [["09:00", "10:00"]]})
    start, end = at(MONDAY, 0), at(MONDAY + dt.timedelta(days=14), 0)
    free = free_times(clinic=clinic_a, practitioners=[practitioner], starts_at=start, ends_at=end)[practitioner.pk]
    assert free == [
        (at(MONDAY, 9), at(MONDAY, 10)),
        (at(MONDAY + dt.timedelta(days=4), 9), at(MONDAY + dt.timedelta(days=4), 12)),  # 09:00 GMT
        (at(MONDAY + dt.timedelta(days=7), 9), at(MONDAY + dt.timedelta(days=7), 10)),  # 09:00 BST = 08:00 UTC
        (at(MONDAY + dt.timedelta(days=11), 9), at(MONDAY + dt.timedelta(days=11), 12)),
    ]
    assert free[2][0].hour == 8 and free[0][0].hour == 9


def test_appointments_and_busy_events_take_time_free_events_do_not(clinic_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    availability(practitioner, {"1": [["09:00", "17:00"]], "2": [["09:00", "17:00"]], "3": [["09:00", "17:00"]]})
    session = allocate_session(clinic_a, practitioner=practitioner, day=MONDAY, start=dt.time(10))
    book(session.slots.first(), PatientFactory(clinic=clinic_a))  # 10:00-10:10
    book(session.slots.last(), PatientFactory(clinic=clinic_a), status="cancelled")  # frees nothing, takes nothing
    OtherEventFactory(clinic=clinic_a, practitioner=practitioner, starts_at=at(MONDAY, 12), ends_at=at(MONDAY, 13))
    OtherEventFactory(
        clinic=clinic_a, practitioner=practitioner, busy=False, starts_at=at(MONDAY, 15), ends_at=at(MONDAY, 16)
    )
    OtherEventFactory(
        clinic=clinic_a,
        practitioner=practitioner,
        all_day=True,
        starts_at=None,
        ends_at=None,
        first_date=MONDAY + dt.timedelta(days=1),
        last_date=MONDAY + dt.timedelta(days=1),
    )
    OtherEventFactory(
        clinic=clinic_a,
        practitioner=practitioner,
        all_day=True,
        busy=False,
        starts_at=None,
        ends_at=None,
        first_date=MONDAY + dt.timedelta(days=2),
        last_date=MONDAY + dt.timedelta(days=2),
    )
    assert whole_week(practitioner) == [
        (at(MONDAY, 9), at(MONDAY, 10)),
        (at(MONDAY, 10, 10), at(MONDAY, 12)),
        (at(MONDAY, 13), at(MONDAY, 17)),  # the free event at 15:00 blocks nothing
        # Tuesday: the all-day busy event blocks the whole day.
        (at(MONDAY + dt.timedelta(days=2), 9), at(MONDAY + dt.timedelta(days=2), 17)),  # a free all-day event: no
    ]


def test_an_override_replaces_the_weeks_hours_and_no_hours_means_unavailable(clinic_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    availability(practitioner, {"1": [["09:00", "17:00"]], "2": [["09:00", "17:00"]]})
    AvailabilityOverride.objects.create(clinic=clinic_a, practitioner=practitioner, date=MONDAY, hours=[])
    AvailabilityOverride.objects.create(
        clinic=clinic_a, practitioner=practitioner, date=MONDAY + dt.timedelta(days=1), hours=[["14:00", "15:30"]]
    )
    AvailabilityOverride.objects.create(
        clinic=clinic_a, practitioner=practitioner, date=MONDAY + dt.timedelta(days=5), hours=[["10:00", "11:00"]]
    )
    tuesday, saturday = MONDAY + dt.timedelta(days=1), MONDAY + dt.timedelta(days=5)
    assert whole_week(practitioner) == [(at(tuesday, 14), at(tuesday, 15, 30)), (at(saturday, 10), at(saturday, 11))]


def test_without_availability_there_is_no_free_time_and_queries_do_not_grow(clinic_a, django_assert_num_queries):
    practitioners = PractitionerFactory.create_batch(2, clinic=clinic_a)
    start, end = at(MONDAY, 0), at(MONDAY + dt.timedelta(days=7), 0)
    with django_assert_num_queries(1):
        assert free_times(clinic=clinic_a, practitioners=practitioners, starts_at=start, ends_at=end) == {
            p.pk: [] for p in practitioners
        }
    for p in practitioners:
        availability(p, {"1": [["09:00", "17:00"]]})
    with django_assert_num_queries(4):
        free_times(clinic=clinic_a, practitioners=practitioners, starts_at=start, ends_at=end)
    more = PractitionerFactory.create_batch(6, clinic=clinic_a)
    for p in more:
        availability(p, {"1": [["09:00", "17:00"]]})
        OtherEventFactory(clinic=clinic_a, practitioner=p, starts_at=at(MONDAY, 9), ends_at=at(MONDAY, 10))
    with django_assert_num_queries(4):
        free_times(clinic=clinic_a, practitioners=practitioners + more, starts_at=start, ends_at=end)


def test_another_clinics_rows_never_count(clinic_a, clinic_b):
    practitioner = PractitionerFactory(clinic=clinic_a)
    availability(practitioner, {"1": [["09:00", "17:00"]]})
    # A row of clinic B pointing at A's practitioner cannot arise through the app; even so it is ignored.
    OtherEventFactory(clinic=clinic_b, practitioner=practitioner, starts_at=at(MONDAY, 9), ends_at=at(MONDAY, 17))
    assert whole_week(practitioner) == [(at(MONDAY, 9), at(MONDAY, 17))]


# The property: free time lies inside availability and outside everything busy ------------------------

times = st.integers(min_value=0, max_value=24 * 4 - 1).map(lambda q: dt.time(q // 4, q % 4 * 15))
ranges = st.lists(st.tuples(times, times).filter(lambda r: r[0] < r[1]), max_size=3)
offsets = st.integers(min_value=-1 * 24 * 4, max_value=8 * 24 * 4)  # quarter hours from Monday 00:00 UTC


def non_overlapping(pairs):
    kept = []
    for start, end in sorted(pairs):
        if not kept or start >= kept[-1][1]:
            kept.append((start, end))
    return [[f"{s:%H:%M}", f"{e:%H:%M}"] for s, e in kept]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    zone=st.sampled_from(["Europe/London", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"]),
    weekly=st.dictionaries(st.integers(1, 7), ranges, max_size=7),
    overrides=st.dictionaries(st.integers(0, 6), ranges, max_size=3),
    busy=st.lists(st.tuples(offsets, st.integers(1, 16), st.booleans()), max_size=6),
    all_day=st.lists(st.tuples(st.integers(0, 6), st.booleans()), max_size=2),
)
def test_free_time_never_overlaps_busy_time_and_never_lies_outside_availability(zone, weekly, overrides, busy, all_day):
    clinic = ClinicFactory()
    practitioner = PractitionerFactory(clinic=clinic)
    local = ZoneInfo(zone)
    availability(practitioner, {str(day): non_overlapping(pairs) for day, pairs in weekly.items()}, zone)
    override_hours = {MONDAY + dt.timedelta(days=d): non_overlapping(p) for d, p in overrides.items()}
    for date, hours in override_hours.items():
        AvailabilityOverride.objects.create(clinic=clinic, practitioner=practitioner, date=date, hours=hours)
    base = dt.datetime.combine(MONDAY, dt.time(), tzinfo=UTC)
    blocked = []
    # Appointments need slots; the session's own times do not matter (only appointments take time).
    session = allocate_session(
        clinic, practitioner=practitioner, day=MONDAY, slot_types=[SlotTypeFactory(clinic=clinic)] * 6
    )
    spare_slots = list(session.slots.all())
    for offset, length, is_event in busy:
        start = base + dt.timedelta(minutes=15 * offset)
        end = start + dt.timedelta(minutes=15 * length)
        if is_event:
            OtherEventFactory(clinic=clinic, practitioner=practitioner, starts_at=start, ends_at=end)
        else:
            appointment = book(spare_slots.pop(), PatientFactory(clinic=clinic))
            Appointment.objects.filter(pk=appointment.pk).update(starts_at=start, ends_at=end)
        blocked.append((start, end))
    for day, is_busy in all_day:
        date = MONDAY + dt.timedelta(days=day)
        OtherEventFactory(
            clinic=clinic,
            practitioner=practitioner,
            all_day=True,
            busy=is_busy,
            starts_at=None,
            ends_at=None,
            first_date=date,
            last_date=date,
        )
        if is_busy:
            blocked.append(local_day(date, local))
    OtherEventFactory(
        clinic=clinic, practitioner=practitioner, busy=False, starts_at=base, ends_at=base + dt.timedelta(days=7)
    )

    window = (base, base + dt.timedelta(days=7))
    free = free_times(clinic=clinic, practitioners=[practitioner], starts_at=window[0], ends_at=window[1])[
        practitioner.pk
    ]

    for start, end in free:
        assert window[0] <= start < end <= window[1]
        for b_start, b_end in blocked:
            assert end <= b_start or start >= b_end, "free time overlaps a busy event or an appointment"
        # Every rule here is in whole quarter hours, so sampling each quarter hour below is exhaustive.
        assert start.minute % 15 == 0 and end.minute % 15 == 0 and start.second == end.second == 0
    # Free exactly where the local date's hours (its override, else the weekday's) say available and
    # nothing busy is: so never outside availability, and nothing free is missed.
    for quarter in range(0, 7 * 24 * 4):
        moment = base + dt.timedelta(minutes=15 * quarter, seconds=1)
        local_moment = moment.astimezone(local)
        date = local_moment.date()
        hours = override_hours.get(date, non_overlapping(weekly.get(date.isoweekday(), [])))
        # Compared as instants: a wall time that falls in a spring-forward gap means the instant
        # zoneinfo gives it (the offset from before the change).
        available = any(
            dt.datetime.combine(date, dt.time.fromisoformat(a), tzinfo=local).astimezone(UTC)
            <= moment
            < dt.datetime.combine(date, dt.time.fromisoformat(b), tzinfo=local).astimezone(UTC)
            for a, b in hours
        )
        taken = any(b_start <= moment < b_end for b_start, b_end in blocked)
        assert (available and not taken) == any(s <= moment < e for s, e in free)


# The Manage Availability pages ---------------------------------------------------------------------


def test_managing_weekly_availability_and_date_overrides(clinic_a, reception_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Avail")
    url = reverse("scheduling:availability-edit", args=[practitioner.public_id])
    assert "Dr Avail" in reception_client_a.get(reverse("scheduling:availability")).content.decode()
    # An override before any weekly availability is refused with a reason.
    response = reception_client_a.post(url, {"part": "override", "action": "save", "dates": ["2027-03-23"]})
    assert response.status_code == 422 and "Set the weekly availability first." in response.content.decode()
    response = reception_client_a.post(
        url, {"part": "weekly", "time_zone": "Europe/London", "d2_start": ["09:00"], "d2_end": ["17:00"]}
    )
    assert response.status_code == 200 and "Saved automatically" in response.content.decode()
    # + Add: two dates, the hours removed with the trash button: unavailable on both.
    form = reception_client_a.get(url + "?add=1").content.decode()
    assert 'name="dates"' in form and 'name="h_start"' in form
    response = reception_client_a.post(
        url,
        {
            "part": "override",
            "action": "remove-h-0",
            "dates": ["2027-03-23", ""],
            "h_start": ["09:00"],
            "h_end": ["17:00"],
        },
    )
    assert "Unavailable</strong> all day on these dates" in response.content.decode()
    response = reception_client_a.post(
        url, {"part": "override", "action": "save", "dates": ["2027-03-23", "2027-03-30"]}
    )
    assert response.status_code == 302
    assert sorted(AvailabilityOverride.objects.values_list("date", "hours")) == [
        (dt.date(2027, 3, 23), []),
        (dt.date(2027, 3, 30), []),
    ]
    assert whole_week(practitioner) == []  # the only weekly day, Tuesday the 23rd, is overridden
    # Change one date's hours.
    reception_client_a.post(
        url, {"part": "override", "action": "save", "dates": ["2027-03-23"], "h_start": ["13:00"], "h_end": ["14:00"]}
    )
    assert AvailabilityOverride.objects.get(date=dt.date(2027, 3, 23)).hours == [["13:00", "14:00"]]
    assert whole_week(practitioner) == [(at(MONDAY + dt.timedelta(days=1), 13), at(MONDAY + dt.timedelta(days=1), 14))]
    # Bad input: no dates, a bad date, overlapping hours.
    for data, message in [
        ({"dates": [""]}, "Pick at least one date."),
        ({"dates": ["2027-02-30"]}, "is not a date"),
        ({"dates": ["2027-03-24"], "h_start": ["09:00", "10:00"], "h_end": ["11:00", "12:00"]}, "Ranges overlap"),
    ]:
        response = reception_client_a.post(url, {"part": "override", "action": "save", **data})
        assert response.status_code == 422 and message in response.content.decode()
    assert AvailabilityOverride.objects.count() == 2
    # Remove one, after confirmation.
    override = AvailabilityOverride.objects.get(date=dt.date(2027, 3, 30))
    delete = reverse("scheduling:availability-override-delete", args=[override.public_id])
    assert "The weekly hours will apply" in reception_client_a.get(delete).content.decode()
    assert reception_client_a.post(delete).status_code == 302
    assert AvailabilityOverride.objects.count() == 1
    assert AuditEvent.objects.filter(action__startswith="availability.").count() == 4


def test_a_clinician_manages_only_their_own_availability(clinic_a):
    membership = MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN)
    mine = PractitionerFactory(clinic=clinic_a, user=membership.user)
    theirs = PractitionerFactory(clinic=clinic_a)
    client = logged_in_client(membership)
    response = client.get(reverse("scheduling:availability"))
    assert response.status_code == 302 and str(mine.public_id) in response["Location"]
    assert client.get(reverse("scheduling:availability-edit", args=[theirs.public_id])).status_code == 403
    override = AvailabilityOverride.objects.create(clinic=clinic_a, practitioner=theirs, date=MONDAY)
    assert client.post(reverse("scheduling:availability-override-delete", args=[override.public_id])).status_code == 403
    assert AvailabilityOverride.objects.filter(pk=override.pk).exists()
    assert OtherEvent.objects.count() == 0
