"""The FHIR API's interactions end to end through Django's test client: search free slots with their includes, find
a patient, book, read, list, amend and cancel, with the errors GP Connect specifies."""

from __future__ import annotations

import pytest

from scheduling.models import Appointment
from tests.fhir_api.conftest import NHS_NUMBER, booking_body, week_range

pytestmark = pytest.mark.django_db


def test_search_book_read_amend_cancel(api, practice, gp_session, patient):
    response = api.get(
        "/fhir/Slot",
        {
            **week_range(practice),
            "_include": "Slot:schedule",
            "_include:recurse": [
                "Schedule:actor:Practitioner",
                "Schedule:actor:Location",
                "Location:managingOrganization",
            ],
        },
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    bundle = response.json()
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("Slot") == 4
    assert {"Schedule", "Practitioner", "PractitionerRole", "Location", "Organization"} <= set(kinds)
    slot_id = bundle["entry"][0]["resource"]["id"]

    found = api.get("/fhir/Patient", {"identifier": f"https://fhir.nhs.uk/Id/nhs-number|{NHS_NUMBER}"}).json()
    assert found["total"] == 1
    patient_id = found["entry"][0]["resource"]["id"]
    assert patient_id == str(patient.public_id)

    booked = api.post("/fhir/Appointment", booking_body(slot_id, patient_id))
    assert booked.status_code == 201, booked.content
    appointment = booked.json()
    assert appointment["status"] == "booked"
    row = Appointment.objects.get(public_id=appointment["id"])
    assert row.source == "fhir" and row.patient == patient

    read = api.get(f"/fhir/Appointment/{appointment['id']}")
    assert read.status_code == 200 and read["ETag"] == booked["ETag"]

    amended = api.put(
        f"/fhir/Appointment/{appointment['id']}",
        {**read.json(), "comment": "Prefers a female GP"},
        HTTP_IF_MATCH=read["ETag"],
    )
    assert amended.status_code == 200, amended.content
    assert amended.json()["comment"] == "Prefers a female GP"
    stale = api.put(
        f"/fhir/Appointment/{appointment['id']}",
        {**read.json(), "status": "cancelled", "cancelationReason": {"text": "Feeling better"}},
        HTTP_IF_MATCH=read["ETag"],
    )
    assert stale.status_code == 412
    cancelled = api.put(
        f"/fhir/Appointment/{appointment['id']}",
        {**amended.json(), "status": "cancelled", "cancelationReason": {"text": "Feeling better"}},
        HTTP_IF_MATCH=amended["ETag"],
    )
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelationReason"]["text"] == "Feeling better"
    row.refresh_from_db()
    assert row.status == "cancelled"
