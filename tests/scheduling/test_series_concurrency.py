"""Series booked at the same moment as other series and single bookings, each in its own connection:
a series is all or nothing, no slot goes over capacity, and the lock order leaves no deadlock."""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction

from scheduling.models import Appointment, Series, Slot
from scheduling.recurrence import RecurrenceRule
from scheduling.services.booking import BookingRequest, appointment_book
from scheduling.services.series import PlannedOccurrence, SeriesBookingError, SeriesRequest, series_book
from tests.concurrent import all_at_once, wait_until_a_connection_waits_for_a_lock
from tests.factories import PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_rota, book

# These open a dozen connections at once; they share the storms' worker so PostgreSQL's limit holds.
pytestmark = [pytest.mark.xdist_group("fifty-connection-storms"), pytest.mark.django_db(transaction=True)]
LONDON = ZoneInfo("Europe/London")
FIRST_MONDAY = dt.date(2027, 6, 7)


def weekly_mondays(clinic, practitioner, slot_type, weeks):
    allocate_rota(clinic, practitioner, slot_type, FIRST_MONDAY, FIRST_MONDAY + dt.timedelta(weeks=weeks - 1), (1,))
    return list(Slot.objects.filter(session__practitioner=practitioner).order_by("starts_at"))


def series_request(patient, practitioner, slots):
    rule = RecurrenceRule(frequency="weekly", start=FIRST_MONDAY, time=dt.time(18), weekdays=(1,), count=len(slots))
    return SeriesRequest(
        booking=BookingRequest(slot=slots[0], patient=patient, self_pay=True),
        practitioner=practitioner,
        rule=rule,
        time_zone="Europe/London",
        plan=[PlannedOccurrence(starts_at=s.starts_at, slot=s) for s in slots],
    )


def test_ten_series_race_for_the_last_place_of_one_occurrence(clinic_a, reception_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    group = SlotTypeFactory(clinic=clinic_a, capacity=4)
    slots = weekly_mondays(clinic_a, practitioner, group, weeks=3)
    for other in PatientFactory.create_batch(3, clinic=clinic_a):
        book(slots[1], other)  # the second Monday has one place left
    patients = PatientFactory.create_batch(10, clinic=clinic_a)

    def job(patient):
        def run():
            series_book(
                clinic=clinic_a,
                actor=reception_a.user,
                membership=reception_a,
                request=series_request(patient, practitioner, slots),
            )
            return "booked"

        return run

    outcomes = all_at_once([job(p) for p in patients])
    assert outcomes.count("booked") == 1, outcomes
    assert (
        outcomes.count("Mon 14 Jun 2027, 18:00: This group is full (4 places). Nothing of the series was booked.") == 9
    )
    winner = Series.objects.get()
    assert winner.appointments.count() == 3
    # The losers left nothing behind: no series, no appointment, no place taken.
    assert Appointment.objects.filter(series__isnull=False).count() == 3
    counts = [Slot.objects.get(pk=s.pk).booked_count for s in slots]
    assert counts == [1, 4, 1]
    for slot in slots:
        assert (
            Appointment.objects.filter(slot=slot).exclude(status="cancelled").count()
            == Slot.objects.get(pk=slot.pk).booked_count
        )


def test_a_single_booking_holding_a_slot_of_the_series_never_deadlocks_with_it(clinic_a, reception_a):
    """A single booking locks its slot, then the practitioner. A series that locked the practitioner with its
    first single slot and then waited for that slot would deadlock; the series locks all its slots first."""
    practitioner = PractitionerFactory(clinic=clinic_a)
    routine = SlotTypeFactory(clinic=clinic_a, capacity=1, default_length_minutes=30)
    slots = weekly_mondays(clinic_a, practitioner, routine, weeks=3)
    regular, walk_in = PatientFactory.create_batch(2, clinic=clinic_a)
    holding = threading.Event()
    started = threading.Event()

    def series_job():
        holding.wait(timeout=30)
        started.set()
        series_book(
            clinic=clinic_a,
            actor=reception_a.user,
            membership=reception_a,
            request=series_request(regular, practitioner, slots),
        )
        return "series"

    def single_job():
        with transaction.atomic():
            # Hold the last slot's lock (as appointment_book's first step does) while the series starts...
            Slot.objects.select_for_update().get(pk=slots[-1].pk)
            holding.set()
            started.wait(timeout=30)
            wait_until_a_connection_waits_for_a_lock()  # the series, for this slot
            # ...then finish the booking, which next locks the practitioner.
            appointment_book(
                clinic=clinic_a,
                actor=reception_a.user,
                membership=reception_a,
                request=BookingRequest(slots[-1], walk_in),
            )
        return "single"

    outcomes = all_at_once([series_job, single_job])
    assert not [o for o in outcomes if o.startswith("ERROR")], outcomes
    assert "single" in outcomes
    assert "Mon 21 Jun 2027, 18:00: This slot is full. Nothing of the series was booked." in outcomes
    assert not Series.objects.exists()
    assert [Slot.objects.get(pk=s.pk).booked_count for s in slots] == [0, 0, 1]


def test_a_series_booking_error_names_its_occurrence(clinic_a, reception_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    group = SlotTypeFactory(clinic=clinic_a, capacity=1)
    slots = weekly_mondays(clinic_a, practitioner, group, weeks=2)
    book(slots[1], PatientFactory(clinic=clinic_a))
    with pytest.raises(SeriesBookingError) as caught:
        series_book(
            clinic=clinic_a,
            actor=reception_a.user,
            membership=reception_a,
            request=series_request(PatientFactory(clinic=clinic_a), practitioner, slots),
        )
    assert caught.value.starts_at == slots[1].starts_at
    assert not Series.objects.exists() and Slot.objects.get(pk=slots[0].pk).booked_count == 0
