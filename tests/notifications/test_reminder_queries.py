"""reminders_find asks the same number of queries whatever the number of reminders due: one query of the clinics'
offsets per channel, and one INSERT ... SELECT per channel and distinct offset (default settings: 48 h and 2 h)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from notifications.models import Channel, Kind, Message
from notifications.recording import reminders_find
from tests.factories import ClinicFactory, PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session, book

pytestmark = pytest.mark.django_db

FIND_QUERIES = 4  # per channel: its offsets, then one INSERT for the one offset every clinic has


def group_slot(clinic, day: dt.date, places: int):
    """A slot of ``places`` places, a week or more ahead (appointments booked now are booked before its reminders)."""
    practitioner = PractitionerFactory(clinic=clinic)
    slot_type = SlotTypeFactory(clinic=clinic, capacity=places)
    return allocate_session(clinic, practitioner=practitioner, day=day, slot_types=[slot_type]).slots.get()


def book_patients(slot, count: int) -> None:
    for _ in range(count):
        patient = PatientFactory(clinic=slot.clinic, email="someone@example.org", mobile_phone="07700 900123")
        book(slot, patient)


def test_reminders_find_asks_as_many_queries_for_two_reminders_as_for_thirty(django_assert_num_queries):
    day = timezone.now().date() + dt.timedelta(days=10)
    first = group_slot(ClinicFactory(), day, places=2)
    book_patients(first, 2)
    now = first.starts_at - dt.timedelta(hours=48)  # the email reminders' moment

    with django_assert_num_queries(FIND_QUERIES):
        assert reminders_find(now) == 2

    # Thirty more, in two more clinics (the first two are already recorded: found once only).
    for _ in range(2):
        more = group_slot(ClinicFactory(), day, places=15)
        book_patients(more, 15)
    with django_assert_num_queries(FIND_QUERIES):
        assert reminders_find(now) == 30

    assert Message.objects.filter(kind=Kind.REMINDER, channel=Channel.EMAIL).count() == 32
    assert not Message.objects.filter(channel=Channel.SMS).exists()
