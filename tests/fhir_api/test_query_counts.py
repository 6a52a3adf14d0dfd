"""Bounded queries: the slot search with every include, a patient's appointments and the admins' consumers page
cost the same number of queries whatever the number of rows (measured, then pinned)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from clinic.models import AuditEvent
from fhir_api.services.appointments import Booked, fhir_book
from fhir_api.services.consumers import Credentials
from scheduling.models import Slot
from scheduling.services.booking import BookingRequest, appointment_book
from tests.factories import LocationFactory, PractitionerFactory, SlotTypeFactory
from tests.fhir_api.conftest import Api, gp_connect_session, make_consumer, next_week_day, token_for

pytestmark = pytest.mark.django_db

# Measured (the same at both sizes), then pinned:
# the slot search: the token, its consumer, the consumer's slot types, the locations' zones (a release rule), the
# slots with their sessions, practitioners, locations and types, and the audit row;
SLOT_SEARCH_QUERIES = 7
# a patient's appointments: the token, its consumer, the patient, the appointments with all they show (their FHIR
# bookings and consumers too), and the audit row;
PATIENT_APPOINTMENTS_QUERIES = 5
# the consumers page: the session, the user, the membership, the consumers (with their clients and bookings
# counted), their slot types, and their last calls.
CONSUMERS_PAGE_QUERIES = 6


ALL_INCLUDES = {
    "_include": "Slot:schedule",
    "_include:recurse": ["Schedule:actor:Practitioner", "Schedule:actor:Location", "Location:managingOrganization"],
}


def api_of(credentials: Credentials) -> Api:
    response = token_for(Client(), credentials)
    assert response.status_code == 200, response.content
    return Api(Client(), response.json()["access_token"])


def week(clinic) -> dict[str, str]:
    day = next_week_day(clinic)
    return {"start": f"ge{day}", "end": f"le{day + dt.timedelta(days=6)}", "status": "free"}


@pytest.mark.parametrize(("practitioners", "slots_each"), [(1, 4), (5, 8)])
def test_the_slot_search_with_every_include_is_bounded(
    practitioners, slots_each, practice, admin_a, django_assert_num_queries
):
    consult = SlotTypeFactory(clinic=practice, name="Consult", default_length_minutes=15)
    same_day = SlotTypeFactory(
        clinic=practice, name="Same day", default_length_minutes=15, release_rule="days_before", release_days_before=30
    )
    first = next_week_day(practice)
    for n in range(practitioners):
        where = LocationFactory(clinic=practice, name=f"Branch {n}", time_zone="Europe/London")
        person = PractitionerFactory(clinic=practice, name=f"Dr {n}", default_location=where)
        for day in range(slots_each // 4):  # sessions of four slots on successive days
            kinds = [consult, same_day] * 2
            gp_connect_session(
                practice, person, where, first + dt.timedelta(days=day), kinds, role="gp" if n % 2 else "nurse"
            )
    api = api_of(make_consumer(practice, admin_a, types=[consult, same_day]))
    with django_assert_num_queries(SLOT_SEARCH_QUERIES):
        response = api.get("/fhir/Slot", {**week(practice), **ALL_INCLUDES})
    assert response.status_code == 200, response.content
    kinds = [entry["resource"]["resourceType"] for entry in response.json()["entry"]]
    assert kinds.count("Slot") == practitioners * slots_each
    assert kinds.count("Practitioner") == practitioners
    assert kinds.count("PractitionerRole") == practitioners
    assert kinds.count("Location") == practitioners
    assert kinds.count("Schedule") == practitioners * (slots_each // 4)
    assert kinds.count("Organization") == 1


@pytest.mark.parametrize("appointments", [1, 10])
def test_a_patients_appointments_are_bounded(
    appointments, practice, admin_a, gp, surgery, consult, patient, credentials, django_assert_num_queries
):
    session = gp_connect_session(practice, gp, surgery, next_week_day(practice), [consult] * appointments)
    for n, slot in enumerate(Slot.objects.filter(session=session).order_by("starts_at")):
        if n % 2:  # every other one booked by reception, the rest through the API
            appointment_book(
                clinic=practice,
                actor=admin_a.user,
                membership=admin_a,
                request=BookingRequest(slot=slot, patient=patient),
            )
        else:
            fhir_book(consumer=credentials.consumer, slot=slot, patient=patient, said=Booked(description="Cough"))
    api = api_of(credentials)
    with django_assert_num_queries(PATIENT_APPOINTMENTS_QUERIES):
        response = api.get(f"/fhir/Patient/{patient.public_id}/Appointment", {"start": f"ge{practice.today()}"})
    assert response.status_code == 200, response.content
    assert response.json()["total"] == appointments


@pytest.mark.parametrize("consumers", [1, 5])
def test_the_consumers_page_is_bounded(consumers, practice, admin_a, admin_client_a, django_assert_num_queries):
    kinds = [SlotTypeFactory(clinic=practice, name=f"Type {n}") for n in range(3)]
    for n in range(consumers):
        made = make_consumer(practice, admin_a, types=kinds[: 1 + n % 3], name=f"Consumer {n}")
        api_of(made).get("/fhir/Organization/x")  # a call: its last-call time shows
    assert AuditEvent.objects.filter(action="fhir.organization.read").count() == consumers
    admin_client_a.get("/clinic/fhir/")  # a first visit: whatever the process caches is read outside the count
    with django_assert_num_queries(CONSUMERS_PAGE_QUERIES):
        response = admin_client_a.get("/clinic/fhir/")
    assert response.status_code == 200
    body = response.content.decode()
    assert all(f"Consumer {n}" in body for n in range(consumers))
    assert body.count("Never") == 0
