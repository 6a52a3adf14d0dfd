"""The public offer page: only its signed link opens it, in its own clinic's address; garbage is a 4xx; an offer
that has ended says so kindly and books nothing; taking it twice books once."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import signing
from django.test import Client
from django.urls import reverse

from online.services import OFFER_SALT, offer_token
from scheduling.models import Appointment, AppointmentSource, WaitlistKind, WaitlistOffer
from scheduling.services.booking import BookingRequest, appointment_book, appointment_cancel
from scheduling.services.waitlist import EntryData, waitlist_add
from tests.clinic.test_bad_input import GARBAGE
from tests.conftest import tasks_in_process
from tests.factories import LocationFactory, PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session

pytestmark = pytest.mark.django_db(transaction=True)

NOW = dt.datetime(2027, 6, 7, 10, tzinfo=dt.UTC)


@pytest.fixture
def offer(clinic_a, admin_a):
    """Ada, first on the list, offered the place a cancellation freed in a full group of two."""
    with tasks_in_process(), time_machine.travel(NOW, tick=False):
        main = LocationFactory(clinic=clinic_a, time_zone="Europe/London")
        kind = SlotTypeFactory(clinic=clinic_a, name="Antenatal group", capacity=2, default_length_minutes=60)
        nurse = PractitionerFactory(clinic=clinic_a, default_location=main)
        slot = allocate_session(clinic_a, practitioner=nurse, day=dt.date(2027, 6, 9), slot_types=[kind]).slots.get()
        for _ in range(2):
            request = BookingRequest(slot=slot, patient=PatientFactory(clinic=clinic_a))
            appointment_book(clinic=clinic_a, actor=None, membership=None, request=request, tell=False)
        slot.refresh_from_db()
        ada = PatientFactory(clinic=clinic_a, first_name="Ada", email="ada@example.org")
        waitlist_add(
            clinic=clinic_a,
            actor=admin_a.user,
            membership=admin_a,
            data=EntryData(patient=ada, kind=WaitlistKind.SLOT, slot=slot),
        )
        appointment_cancel(clinic=clinic_a, actor=None, appointment=slot.appointments.first(), reason="Away")
    return WaitlistOffer.objects.select_related("clinic", "hold").get()


def page(clinic, token: str) -> str:
    return reverse("online:offer", args=[clinic.slug, token])


@time_machine.travel(NOW + dt.timedelta(minutes=5), tick=False)
def test_only_the_signed_link_in_its_own_clinic_opens_the_offer(client: Client, clinic_a, clinic_b, offer):
    assert client.get(page(clinic_a, offer_token(offer))).status_code == 200
    forged = signing.dumps(str(offer.public_id), salt="another.salt")
    assert client.get(page(clinic_a, forged)).status_code == 404
    assert client.get(page(clinic_a, "not-a-token")).status_code == 404
    assert client.get(page(clinic_b, offer_token(offer))).status_code == 404  # another clinic's address
    unknown = signing.dumps("00000000-0000-0000-0000-000000000000", salt=OFFER_SALT)
    assert client.get(page(clinic_a, unknown)).status_code == 404


@time_machine.travel(NOW + dt.timedelta(minutes=5), tick=False)
def test_garbage_is_a_4xx_and_books_nothing(client: Client, clinic_a, offer):
    client.raise_request_exception = True
    url = page(clinic_a, offer_token(offer))
    for payload in [*GARBAGE, {"action": "x" * 5000}, {"action": "decline", "confirm": "maybe", "leave": "\x00"}]:
        assert client.get(url, payload).status_code < 500, payload
        assert client.post(url, payload).status_code < 500, payload
    assert not Appointment.objects.filter(source=AppointmentSource.WAITLIST).exists()
    offer.hold.refresh_from_db()
    assert offer.hold.ended_at is None  # a decline is only ever made after its confirmation


def test_taking_twice_books_once_and_an_ended_offer_says_so(client: Client, clinic_a, offer):
    url = page(clinic_a, offer_token(offer))
    with tasks_in_process(), time_machine.travel(NOW + dt.timedelta(minutes=5), tick=False):
        assert client.post(url, {"action": "take"}).status_code == 302
        again = client.post(url, {"action": "take"})
        assert again.status_code == 409 and "already taken this place" in again.content.decode()
        assert Appointment.objects.filter(source=AppointmentSource.WAITLIST).count() == 1
        assert "it is booked for you" in client.get(url).content.decode()


def test_a_phone_sized_page_names_the_place_and_the_deadline(client: Client, clinic_a, offer):
    with time_machine.travel(NOW + dt.timedelta(minutes=5), tick=False):
        text = client.get(page(clinic_a, offer_token(offer)), {"tz": "Europe/London"}).content.decode()
    assert 'name="viewport"' in text
    assert "Antenatal group" in text and "Wednesday 9 June 2027" in text
    assert "13:00, Monday 7 June" in text  # kept for two hours, on the patient's clock
