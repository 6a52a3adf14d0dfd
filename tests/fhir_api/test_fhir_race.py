"""Bookings through the FHIR API into one slot at the same moment, each request in its own thread and database
connection (Django's test client per thread): exactly the places there are, and every other caller told 409 with an
OperationOutcome."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.test import Client

from scheduling.models import Appointment, Slot
from tests.concurrent import all_at_once
from tests.factories import PatientFactory, SlotTypeFactory
from tests.fhir_api.conftest import Api, booking_body, gp_connect_session, make_consumer, next_week_day, token_for

# Like the other storms: one xdist worker runs them all, one after another (the suite runs with --dist loadgroup).
pytestmark = [pytest.mark.xdist_group("fifty-connection-storms"), pytest.mark.django_db(transaction=True)]

CALLERS = 8


def bearer(credentials) -> str:
    response = token_for(Client(), credentials)
    assert response.status_code == 200, response.content
    return str(response.json()["access_token"])


def booking(token: str, slot: Slot, patient) -> Callable[[], str]:
    """A job that POSTs the patient's Appointment into the slot: "201", or the status and the OperationOutcome's
    spine code."""

    def run() -> str:
        response = Api(Client(), token).post(
            "/fhir/Appointment", booking_body(str(slot.public_id), str(patient.public_id))
        )
        if response.status_code == 201:
            assert response.json()["resourceType"] == "Appointment"
            return "201"
        body = response.json()
        if body.get("resourceType") != "OperationOutcome":
            return f"{response.status_code} {body}"
        return f"{response.status_code} {body['issue'][0]['details']['coding'][0]['code']}"

    return run


def storm(token: str, slot: Slot, patients) -> list[str]:
    return all_at_once([booking(token, slot, patient) for patient in patients])


def test_eight_consumers_calls_for_one_single_slot_book_it_once(practice, admin_a, consult, gp_session):
    token = bearer(make_consumer(practice, admin_a, types=[consult]))
    slot = gp_session.slots.order_by("starts_at").first()
    patients = PatientFactory.create_batch(CALLERS, clinic=practice)

    outcomes = storm(token, slot, patients)

    assert outcomes.count("201") == 1, outcomes
    assert outcomes.count("409 DUPLICATE_REJECTED") == CALLERS - 1, outcomes
    slot.refresh_from_db()
    assert slot.booked_count == 1
    assert Appointment.objects.filter(slot=slot).live().count() == 1
    assert Appointment.objects.filter(slot=slot).count() == 1  # nothing half-written by the refused


def test_eight_calls_for_a_group_of_three_book_exactly_three(practice, admin_a, gp, surgery):
    group = SlotTypeFactory(clinic=practice, name="Group consultation", capacity=3, default_length_minutes=30)
    session = gp_connect_session(practice, gp, surgery, next_week_day(practice), [group], start=dt.time(14))
    token = bearer(make_consumer(practice, admin_a, types=[group], name="Group booker"))
    slot = session.slots.get()
    patients = PatientFactory.create_batch(CALLERS, clinic=practice)

    outcomes = storm(token, slot, patients)

    assert outcomes.count("201") == 3, outcomes
    assert outcomes.count("409 DUPLICATE_REJECTED") == CALLERS - 3, outcomes
    slot.refresh_from_db()
    assert slot.booked_count == 3
    assert Appointment.objects.filter(slot=slot).live().count() == 3
    assert Appointment.objects.filter(slot=slot).count() == 3
