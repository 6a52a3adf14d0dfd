"""Who may call the FHIR API: a bearer token of a live consumer, with the scope the interaction needs (and its
consumer still granted it), of the consumer's own clinic (another clinic's ids are 404), inside its rate limit;
secrets hashed and tokens kept only as checksums; blocked patients invisible; only the booking consumer amends or
cancels; and every call audited without a patient's name."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, Application

from clinic.models import AuditEvent
from fhir_api.models import FhirBooking
from fhir_api.services.consumers import Credentials, consumer_revoke, consumer_rotate, consumer_update
from scheduling.models import Appointment, Slot
from scheduling.services.booking import BookingRequest, appointment_book
from tests.factories import LocationFactory, PractitionerFactory, SlotTypeFactory
from tests.fhir_api.conftest import (
    NHS_NUMBER,
    REQUESTER,
    Api,
    booking_body,
    gp_connect_session,
    make_consumer,
    next_week_day,
    token_for,
    week_range,
)

pytestmark = pytest.mark.django_db

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def api_of(credentials: Credentials, scope: str | None = None) -> Api:
    response = token_for(Client(), credentials, scope)
    assert response.status_code == 200, response.content
    return Api(Client(), response.json()["access_token"])


def outcome(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body


def writes() -> tuple[int, int, list[tuple[int, int]]]:
    return (
        Appointment.objects.count(),
        FhirBooking.objects.count(),
        list(Slot.objects.order_by("pk").values_list("booked_count", "held_count")),
    )


def slot_ids_found(api: Api, clinic) -> list[str]:
    response = api.get("/fhir/Slot", week_range(clinic))
    assert response.status_code == 200, response.content
    return [e["resource"]["id"] for e in response.json().get("entry", []) if e["resource"]["resourceType"] == "Slot"]


def book(api: Api, slot: Slot, patient) -> dict[str, Any]:
    response = api.post("/fhir/Appointment", booking_body(str(slot.public_id), str(patient.public_id)))
    assert response.status_code == 201, response.content
    return response.json()


# Tokens and scopes ----------------------------------------------------------------------------------------------


def test_no_token_or_a_wrong_token_is_unauthorised(client, credentials, practice, gp_session, patient):
    slot = str(gp_session.slots.first().public_id)
    wrong = {"HTTP_AUTHORIZATION": "Bearer not-a-token-we-gave", "HTTP_ACCEPT": "application/fhir+json", **REQUESTER}
    basic = {"HTTP_AUTHORIZATION": "Basic " + "x" * 20, "HTTP_ACCEPT": "application/fhir+json", **REQUESTER}
    before = writes()
    for headers in ({"HTTP_ACCEPT": "application/fhir+json", **REQUESTER}, wrong, basic):
        outcome(client.get("/fhir/Slot", week_range(practice), **headers), 401)
        outcome(client.get(f"/fhir/Patient/{patient.public_id}", **headers), 401)
        posted = client.post(
            "/fhir/Appointment",
            booking_body(slot, str(patient.public_id)),
            content_type="application/fhir+json",
            **headers,
        )
        outcome(posted, 401)
    assert writes() == before
    assert not AuditEvent.objects.filter(action__startswith="fhir.").exclude(action__startswith="fhir.consumer.")


def test_a_slot_read_token_cannot_book_nor_read_appointments(api, credentials, gp_session, practice, patient):
    slots = list(gp_session.slots.order_by("starts_at"))
    booked = book(api, slots[0], patient)
    reader = api_of(credentials, scope="slot.read")
    assert len(slot_ids_found(reader, practice)) == 3

    before = writes()
    outcome(reader.post("/fhir/Appointment", booking_body(str(slots[1].public_id), str(patient.public_id))), 403)
    assert writes() == before
    outcome(reader.get(f"/fhir/Appointment/{booked['id']}"), 403)
    outcome(reader.get(f"/fhir/Patient/{patient.public_id}/Appointment", {"start": f"ge{practice.today()}"}), 403)
    outcome(reader.get("/fhir/Patient", {"identifier": f"{NHS}|{NHS_NUMBER}"}), 403)
    cancel = {**booked, "status": "cancelled", "cancelationReason": {"text": "No"}}
    outcome(
        reader.put(f"/fhir/Appointment/{booked['id']}", cancel, HTTP_IF_MATCH=f'W/"{booked["meta"]["versionId"]}"'), 403
    )
    assert Appointment.objects.get(public_id=booked["id"]).status == "booked"


def test_no_token_for_a_scope_the_consumer_lacks(client, practice, admin_a, consult):
    reader = make_consumer(practice, admin_a, types=[consult], scopes=("slot.read",))
    for scope in ("appointment.write", "appointment.read", "slot.read appointment.write"):
        refused = token_for(client, reader, scope)
        assert refused.status_code == 400, refused.content
        assert refused.json()["error"] == "invalid_scope"
    granted = token_for(client, reader)
    assert granted.status_code == 200 and granted.json()["scope"] == "slot.read"
    assert AccessToken.objects.count() == 1


def test_narrowing_a_consumers_scopes_applies_to_its_live_tokens(
    api, credentials, admin_a, practice, consult, gp_session, patient
):
    slots = list(gp_session.slots.order_by("starts_at"))
    booked = book(api, slots[0], patient)
    consumer = credentials.consumer
    consumer_update(
        clinic=practice,
        actor=admin_a.user,
        consumer=consumer,
        name=consumer.name,
        organisation_type=consumer.organisation_type,
        ods_code=consumer.ods_code,
        scopes=["slot.read"],
        slot_types=[consult],
        rate_limit=consumer.rate_limit,
    )
    assert len(slot_ids_found(api, practice)) == 3  # the token still searches
    before = writes()
    outcome(api.post("/fhir/Appointment", booking_body(str(slots[1].public_id), str(patient.public_id))), 403)
    assert writes() == before
    outcome(api.get(f"/fhir/Appointment/{booked['id']}"), 403)
    outcome(api.get("/fhir/Patient", {"identifier": f"{NHS}|{NHS_NUMBER}"}), 403)


def test_revoking_ends_its_tokens_and_refuses_new_ones(api, client, credentials, practice, admin_a, gp_session):
    assert slot_ids_found(api, practice)
    consumer_revoke(clinic=practice, actor=admin_a.user, consumer=credentials.consumer)
    outcome(api.get("/fhir/Slot", week_range(practice)), 401)
    refused = token_for(client, credentials)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert not AccessToken.objects.filter(application__consumer=credentials.consumer).exists()


def test_rotating_refuses_the_old_secret_and_its_tokens(api, client, credentials, practice, admin_a, gp_session):
    assert slot_ids_found(api, practice)
    fresh = consumer_rotate(clinic=practice, actor=admin_a.user, consumer=credentials.consumer)
    assert fresh.client_secret != credentials.client_secret and fresh.client_id == credentials.client_id
    refused = token_for(client, credentials)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    outcome(api.get("/fhir/Slot", week_range(practice)), 401)
    assert len(slot_ids_found(api_of(fresh), practice)) == 4


def test_secrets_are_hashed_and_tokens_kept_only_as_checksums(client, credentials):
    application = Application.objects.get(client_id=credentials.client_id)
    assert application.client_secret != credentials.client_secret
    assert credentials.client_secret not in application.client_secret
    issued = token_for(client, credentials).json()["access_token"]
    row = AccessToken.objects.get(application=application)
    assert row.token == ""
    assert row.token_checksum == hashlib.sha256(issued.encode()).hexdigest()
    assert issued not in json.dumps(list(AccessToken.objects.values()), default=str)


# Tenancy ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def clinic_b_api(clinic_b, outsider_b) -> Api:
    """A consumer of clinic B, with a free GP Connect session of its own next week."""
    kind = SlotTypeFactory(clinic=clinic_b, name="B consult", default_length_minutes=15)
    where = LocationFactory(clinic=clinic_b, time_zone=clinic_b.time_zone)
    gp_connect_session(
        clinic_b,
        PractitionerFactory(clinic=clinic_b, default_location=where),
        where,
        next_week_day(clinic_b),
        [kind] * 2,
    )
    return api_of(make_consumer(clinic_b, outsider_b, types=[kind], name="B's 111"))


def test_another_clinics_consumer_finds_none_of_this_clinics_ids(
    clinic_b_api, clinic_b, api, practice, gp, surgery, gp_session, patient
):
    slot = gp_session.slots.order_by("starts_at").first()
    booked = book(api, slot, patient)
    ours = set(slot_ids_found(clinic_b_api, clinic_b))
    assert len(ours) == 2 and not ours & {str(s.public_id) for s in gp_session.slots.all()}
    assert not set(slot_ids_found(clinic_b_api, practice)) & {str(s.public_id) for s in gp_session.slots.all()}

    for path in (
        f"/fhir/Slot/{slot.public_id}",
        f"/fhir/Schedule/{gp_session.public_id}",
        f"/fhir/Practitioner/{gp.public_id}",
        f"/fhir/PractitionerRole/{gp.public_id}-gp",
        f"/fhir/Location/{surgery.public_id}",
        f"/fhir/Organization/{practice.public_id}",
        f"/fhir/Patient/{patient.public_id}",
        f"/fhir/Patient/{patient.public_id}/Appointment?start=ge{practice.today()}",
        f"/fhir/Appointment/{booked['id']}",
    ):
        outcome(clinic_b_api.get(path), 404)
        assert api.get(path).status_code == 200, path  # the same id is found in its own clinic
    cancel = {**booked, "status": "cancelled", "cancelationReason": {"text": "Not theirs"}}
    tag = f'W/"{booked["meta"]["versionId"]}"'
    outcome(clinic_b_api.put(f"/fhir/Appointment/{booked['id']}", cancel, HTTP_IF_MATCH=tag), 404)
    assert Appointment.objects.get(public_id=booked["id"]).status == "booked"
    found = clinic_b_api.get("/fhir/Patient", {"identifier": f"{NHS}|{NHS_NUMBER}"}).json()
    assert found["total"] == 0
    other = gp_session.slots.order_by("starts_at")[1]
    before = writes()
    outcome(clinic_b_api.post("/fhir/Appointment", booking_body(str(other.public_id), str(patient.public_id))), 422)
    assert writes() == before


def test_blocked_patients_are_invisible(api, practice, gp_session, patient):
    by_nhs = {"identifier": f"{NHS}|{NHS_NUMBER}"}
    by_internal = {"identifier": f"urn:clinic-scheduler:internal-id:{practice.public_id}|{patient.internal_id}"}
    assert api.get("/fhir/Patient", by_nhs).json()["total"] == 1
    assert api.get("/fhir/Patient", by_internal).json()["total"] == 1
    patient.is_blocked = True
    patient.blocked_reason = "A member of staff"
    patient.save(update_fields=["is_blocked", "blocked_reason"])

    assert api.get("/fhir/Patient", by_nhs).json()["total"] == 0
    assert api.get("/fhir/Patient", by_internal).json()["total"] == 0
    outcome(api.get(f"/fhir/Patient/{patient.public_id}"), 404)
    outcome(api.get(f"/fhir/Patient/{patient.public_id}/Appointment", {"start": f"ge{practice.today()}"}), 404)
    before = writes()
    slot = str(gp_session.slots.first().public_id)
    outcome(api.post("/fhir/Appointment", booking_body(slot, str(patient.public_id))), 422)
    assert writes() == before


# Amending and cancelling -----------------------------------------------------------------------------------------


def _cancel(api: Api, appointment_id: str, **extra: Any):
    current = api.get(f"/fhir/Appointment/{appointment_id}")
    assert current.status_code == 200, current.content
    body = {**current.json(), "status": "cancelled", "cancelationReason": {"text": "Feeling better"}}
    return api.put(f"/fhir/Appointment/{appointment_id}", body, **{"HTTP_IF_MATCH": current["ETag"], **extra})


def test_only_the_booking_consumer_amends_or_cancels(api, practice, admin_a, consult, gp_session, patient):
    first, second = gp_session.slots.order_by("starts_at")[:2]
    by_reception = appointment_book(
        clinic=practice, actor=admin_a.user, membership=admin_a, request=BookingRequest(slot=first, patient=patient)
    )
    other = api_of(make_consumer(practice, admin_a, types=[consult], name="Other practice"))
    by_other = book(other, second, patient)

    for appointment_id in (str(by_reception.public_id), by_other["id"]):
        outcome(_cancel(api, appointment_id), 403)
        current = api.get(f"/fhir/Appointment/{appointment_id}")
        amended = api.put(
            f"/fhir/Appointment/{appointment_id}",
            {**current.json(), "comment": "Not ours to say"},
            HTTP_IF_MATCH=current["ETag"],
        )
        outcome(amended, 403)
        assert Appointment.objects.get(public_id=appointment_id).status == "booked"
    assert FhirBooking.objects.get(appointment__public_id=by_other["id"]).comment == ""
    # Its own consumer may.
    assert _cancel(other, by_other["id"]).status_code == 200


def test_put_needs_if_match_and_writes_need_the_requester(api, credentials, gp_session, patient):
    first, second = gp_session.slots.order_by("starts_at")[:2]
    booked = book(api, first, patient)
    cancel = {**booked, "status": "cancelled", "cancelationReason": {"text": "Feeling better"}}
    outcome(api.put(f"/fhir/Appointment/{booked['id']}", cancel), 428)
    assert Appointment.objects.get(public_id=booked["id"]).status == "booked"

    tag = f'W/"{booked["meta"]["versionId"]}"'
    for missing in REQUESTER:
        anonymous = api_of(credentials)
        del anonymous.headers[missing]
        before = writes()
        outcome(anonymous.post("/fhir/Appointment", booking_body(str(second.public_id), str(patient.public_id))), 400)
        outcome(anonymous.put(f"/fhir/Appointment/{booked['id']}", cancel, HTTP_IF_MATCH=tag), 400)
        assert writes() == before
        assert Appointment.objects.get(public_id=booked["id"]).status == "booked"
        blank = api.post(
            "/fhir/Appointment",
            booking_body(str(second.public_id), str(patient.public_id)),
            **{missing: "   "},
        )
        outcome(blank, 400)
        assert writes() == before


# Rate limits and the audit ---------------------------------------------------------------------------------------


def test_a_consumer_over_its_rate_limit_is_answered_429(practice, admin_a, consult, gp_session, credentials):
    limited = api_of(make_consumer(practice, admin_a, types=[consult], name="Chatty", rate_limit=3))
    for _ in range(3):
        assert limited.get("/fhir/Slot", week_range(practice)).status_code == 200
    refused = limited.get("/fhir/Slot", week_range(practice))
    outcome(refused, 429)
    assert refused["Retry-After"] == "60"
    assert limited.get(f"/fhir/Practitioner/{gp_session.practitioner.public_id}").status_code == 429
    # Another consumer of the clinic is counted on its own.
    assert api_of(credentials).get("/fhir/Slot", week_range(practice)).status_code == 200


def test_every_call_is_audited_with_the_consumer_status_and_requester_and_no_patient_name(
    api, credentials, practice, gp, gp_session, patient
):
    slot = gp_session.slots.order_by("starts_at").first()
    calls: list[tuple[str, int]] = []

    def call(interaction: str, response) -> Any:
        calls.append((interaction, response.status_code))
        return response

    call("slot.search", api.get("/fhir/Slot", week_range(practice)))
    call("patient.search", api.get("/fhir/Patient", {"identifier": f"{NHS}|{NHS_NUMBER}"}))
    call("patient.read", api.get(f"/fhir/Patient/{patient.public_id}"))
    booked = call(
        "appointment.create", api.post("/fhir/Appointment", booking_body(str(slot.public_id), str(patient.public_id)))
    )
    appointment_id = booked.json()["id"]
    read = call("appointment.read", api.get(f"/fhir/Appointment/{appointment_id}"))
    call(
        "appointment.update",
        api.put(
            f"/fhir/Appointment/{appointment_id}", {**read.json(), "comment": "Call first"}, HTTP_IF_MATCH=read["ETag"]
        ),
    )
    call(
        "patient.appointments",
        api.get(f"/fhir/Patient/{patient.public_id}/Appointment", {"start": f"ge{practice.today()}"}),
    )
    call("practitioner.read", api.get(f"/fhir/Practitioner/{gp.public_id}"))
    call("schedule.read", api.get("/fhir/Schedule/00000000-0000-0000-0000-000000000000"))
    call("appointment.create", api.post("/fhir/Appointment", booking_body(str(slot.public_id), str(patient.public_id))))
    assert [status for _, status in calls] == [200, 200, 200, 201, 200, 200, 200, 200, 404, 409]

    rows = list(
        AuditEvent.objects.filter(action__startswith="fhir.")
        .exclude(action__startswith="fhir.consumer.")
        .order_by("created_at", "id")
    )
    assert [(row.action, row.detail["status"]) for row in rows] == [(f"fhir.{i}", s) for i, s in calls]
    for row in rows:
        assert row.clinic_id == practice.pk and row.actor_id is None
        assert (row.object_type, row.object_id) == ("fhir_api.consumer", str(credentials.consumer.public_id))
        assert row.detail["consumer"] == "NHS 111"
        assert row.detail["requesting_practitioner"] == "Dr Triage (SDS 555)"
        assert row.detail["requesting_organisation"] == "NHS111"

    everything = json.dumps([row.detail for row in AuditEvent.objects.all()])
    for name in (patient.first_name, patient.last_name, NHS_NUMBER):
        assert name not in everything
