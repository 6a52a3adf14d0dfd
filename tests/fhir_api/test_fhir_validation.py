"""Every kind of answer of the FHIR API is valid FHIR: parsed by fhir.resources' R4B models (the exact bytes sent, each
resource by its own class, extra or mistyped elements refused), plus the required-binding codes those models do not
check (statuses, issue types, bundle and search modes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from pydantic import ValidationError

from scheduling.models import Appointment
from tests.factories import PatientFactory
from tests.fhir_api.conftest import (
    NHS_NUMBER,
    Api,
    booking_body,
    make_consumer,
    token_for,
    week_range,
)

pytestmark = pytest.mark.django_db

SPINE_ERROR = "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1"
INCLUDES = {
    "_include": "Slot:schedule",
    "_include:recurse": ["Schedule:actor:Practitioner", "Schedule:actor:Location", "Location:managingOrganization"],
}

# Required bindings of the elements we send (FHIR R4 value sets), which the models take as any code.
ISSUE_TYPES = {
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown", "expired",
    "forbidden", "suppressed", "processing", "not-supported", "duplicate", "multiple-matches", "not-found",
    "deleted", "too-long", "code-invalid", "extension", "too-costly", "business-rule", "conflict", "transient",
    "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled", "informational",
}  # fmt: skip
APPOINTMENT_STATUS = {
    "proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow", "entered-in-error",
    "checked-in", "waitlist",
}  # fmt: skip
INTERACTIONS = {
    "read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type",
}  # fmt: skip


def _bindings(resource: dict[str, Any]) -> list[tuple[str, Any, set[str]]]:
    """(element, value, allowed codes) of each required-bound element the resource carries."""
    kind = resource["resourceType"]
    found: list[tuple[str, Any, set[str]]] = []
    if kind == "Bundle":
        found.append(("Bundle.type", resource["type"], {"searchset"}))
        for entry in resource.get("entry", []):
            found.append(("Bundle.entry.search.mode", entry["search"]["mode"], {"match", "include", "outcome"}))
            found += _bindings(entry["resource"])
    elif kind == "Slot":
        found.append(("Slot.status", resource["status"], {"busy", "free", "busy-unavailable", "busy-tentative"}))
    elif kind == "Appointment":
        found.append(("Appointment.status", resource["status"], APPOINTMENT_STATUS))
        for participant in resource["participant"]:
            found.append(("participant.status", participant["status"], {"accepted", "declined", "tentative"}))
    elif kind == "Location":
        found.append(("Location.status", resource.get("status"), {"active", "suspended", "inactive"}))
    elif kind == "Patient":
        found.append(("Patient.gender", resource.get("gender"), {"male", "female", "other", "unknown"}))
    elif kind == "OperationOutcome":
        for issue in resource["issue"]:
            found.append(("issue.severity", issue["severity"], {"fatal", "error", "warning", "information"}))
            found.append(("issue.code", issue["code"], ISSUE_TYPES))
    elif kind == "CapabilityStatement":
        found.append(("status", resource["status"], {"draft", "active", "retired", "unknown"}))
        found.append(("kind", resource["kind"], {"instance", "capability", "requirements"}))
        for rest in resource["rest"]:
            found.append(("rest.mode", rest["mode"], {"client", "server"}))
            for item in rest["resource"]:
                found += [("interaction.code", i["code"], INTERACTIONS) for i in item["interaction"]]
    return found


def _empties(value: Any, path: str = "") -> list[str]:
    """Where the JSON has an empty string, list or object, or a null (FHIR JSON never does; the models let an empty
    list through)."""
    if value in ("", [], {}, None):
        return [path or "(root)"]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _empties(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _empties(item, f"{path}[{i}]")]
    return []


def valid(raw: bytes | str | dict[str, Any], kind: str) -> Any:
    """The resource, parsed by the R4B model of its type (from the exact JSON when given bytes), with its
    required-bound codes checked and no empty elements. Raises ValidationError or AssertionError when it is not
    valid FHIR."""
    data = json.loads(raw) if isinstance(raw, bytes | str) else raw
    assert data["resourceType"] == kind
    assert not _empties(data), f"{kind} has empty elements: {_empties(data)}"
    model = get_fhir_model_class(kind)
    parsed = model.model_validate_json(raw) if isinstance(raw, bytes | str) else model.model_validate(data)
    assert type(parsed) is model
    for element, value, allowed in _bindings(data):
        assert value in allowed, f"{kind}: {element} {value!r} is not one of the codes allowed"
    return parsed


def valid_response(response, kind: str, status: int = 200) -> Any:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    return valid(response.content, kind)


def valid_outcome(response, status: int, spine_code: str) -> OperationOutcome:
    outcome = valid_response(response, "OperationOutcome", status)
    assert isinstance(outcome, OperationOutcome)
    issue = outcome.issue[0]
    assert issue.severity == "error" and issue.diagnostics
    assert issue.details is not None and issue.details.coding is not None
    assert [(c.system, c.code) for c in issue.details.coding] == [(SPINE_ERROR, spine_code)]
    return outcome


def valid_bundle(response) -> Bundle:
    """The searchset Bundle, and each entry's resource again by its own class."""
    bundle = valid_response(response, "Bundle")
    assert isinstance(bundle, Bundle) and bundle.type == "searchset"
    data = response.json()
    for entry, raw in zip(bundle.entry or [], data.get("entry", []), strict=True):
        kind = raw["resource"]["resourceType"]
        assert type(entry.resource).__name__ == kind  # the Bundle parsed it by its type, not as a bare Resource
        valid(raw["resource"], kind)
    return bundle


@pytest.fixture
def booked(api, practice, gp_session, patient) -> dict[str, Any]:
    found = api.get("/fhir/Slot", week_range(practice)).json()
    slot_id = found["entry"][0]["resource"]["id"]
    response = api.post("/fhir/Appointment", booking_body(slot_id, str(patient.public_id), comment="Call first"))
    assert response.status_code == 201, response.content
    return {"slot": slot_id, "response": response, "id": response.json()["id"], "etag": response["ETag"]}


def test_slot_search_bundle_with_includes_is_valid(api, practice, gp_session):
    bundle = valid_bundle(api.get("/fhir/Slot", {**week_range(practice), **INCLUDES}))
    kinds = [type(entry.resource).__name__ for entry in bundle.entry or []]
    assert kinds.count("Slot") == bundle.total == 4
    assert set(kinds) == {"Slot", "Schedule", "Practitioner", "PractitionerRole", "Location", "Organization"}
    assert all(entry.fullUrl and entry.fullUrl.endswith(f"/{entry.resource.id}") for entry in bundle.entry or [])


def test_empty_slot_search_bundle_is_valid(api, practice):
    bundle = valid_bundle(api.get("/fhir/Slot", {**week_range(practice), **INCLUDES}))
    assert bundle.total == 0 and not bundle.entry


def test_directory_reads_are_valid(api, practice, gp_session):
    data = api.get("/fhir/Slot", {**week_range(practice), **INCLUDES}).json()
    ids = {}
    for entry in data["entry"]:
        ids.setdefault(entry["resource"]["resourceType"], entry["resource"]["id"])
    assert set(ids) == {"Slot", "Schedule", "Practitioner", "PractitionerRole", "Location", "Organization"}
    for kind, public_id in ids.items():
        parsed = valid_response(api.get(f"/fhir/{kind}/{public_id}"), kind)
        assert parsed.id == public_id
    slot = valid_response(api.get(f"/fhir/Slot/{ids['Slot']}"), "Slot")
    assert slot.status == "free" and slot.start.utcoffset() is not None
    schedule = valid_response(api.get(f"/fhir/Schedule/{ids['Schedule']}"), "Schedule")
    assert {a.reference.split("/")[0] for a in schedule.actor} == {"Practitioner", "PractitionerRole", "Location"}


def test_busy_slot_read_is_valid(api, booked):
    slot = valid_response(api.get(f"/fhir/Slot/{booked['slot']}"), "Slot")
    assert slot.status == "busy"


def test_patient_read_and_searches_are_valid(api, practice, patient):
    read = valid_response(api.get(f"/fhir/Patient/{patient.public_id}"), "Patient")
    assert read.identifier[0].value == NHS_NUMBER and read.birthDate == patient.date_of_birth
    matched = valid_bundle(api.get("/fhir/Patient", {"identifier": f"https://fhir.nhs.uk/Id/nhs-number|{NHS_NUMBER}"}))
    assert matched.total == 1 and matched.entry[0].resource.id == str(patient.public_id)
    assert matched.entry[0].search.mode == "match"
    empty = valid_bundle(api.get("/fhir/Patient", {"identifier": "https://fhir.nhs.uk/Id/nhs-number|9999999999"}))
    assert empty.total == 0 and not empty.entry
    # A patient with only the practice's internal ID, a title and an unusual sex.
    other = PatientFactory(clinic=practice, title="Dr", internal_id="X-1", sex="other", national_id="")
    parsed = valid_response(api.get(f"/fhir/Patient/{other.public_id}"), "Patient")
    assert parsed.name[0].prefix == ["Dr"]


def test_booked_and_cancelled_appointments_are_valid(api, patient, booked):
    created = valid(booked["response"].content, "Appointment")
    assert created.status == "booked" and created.contained[0].__class__.__name__ == "Organization"
    read = api.get(f"/fhir/Appointment/{booked['id']}")
    appointment = valid_response(read, "Appointment")
    assert appointment.meta.versionId and read["ETag"] == f'W/"{appointment.meta.versionId}"'
    assert appointment.start.utcoffset() is not None and appointment.minutesDuration == 15

    listed = valid_bundle(api.get(f"/fhir/Patient/{patient.public_id}/Appointment", {"start": "ge2000-01-01"}))
    assert [e.resource.id for e in listed.entry or []] == [booked["id"]]

    cancelled = api.put(
        f"/fhir/Appointment/{booked['id']}",
        {**read.json(), "status": "cancelled", "cancelationReason": {"text": "Feeling better"}},
        HTTP_IF_MATCH=read["ETag"],
    )
    parsed = valid_response(cancelled, "Appointment")
    assert parsed.status == "cancelled" and parsed.cancelationReason.text == "Feeling better"
    assert Appointment.objects.get(public_id=booked["id"]).status == "cancelled"
    listed = valid_bundle(api.get(f"/fhir/Patient/{patient.public_id}/Appointment", {"start": "ge2000-01-01"}))
    assert [e.resource.status for e in listed.entry or []] == ["cancelled"]


def test_capability_statement_is_valid():
    response = Client().get("/fhir/metadata", HTTP_ACCEPT="application/fhir+json")
    statement = valid_response(response, "CapabilityStatement")
    assert isinstance(statement, CapabilityStatement)
    assert statement.fhirVersion == "4.0.1" and "application/fhir+json" in statement.format
    served = {item.type for item in statement.rest[0].resource}
    assert served == {
        "Slot",
        "Schedule",
        "Practitioner",
        "PractitionerRole",
        "Location",
        "Organization",
        "Patient",
        "Appointment",
    }


def test_outcome_401_no_or_bad_token(practice, gp_session):
    valid_outcome(Client().get("/fhir/Slot", week_range(practice)), 401, "NO_RELATIONSHIP")
    wrong = Client().get("/fhir/Slot", week_range(practice), HTTP_AUTHORIZATION="Bearer not-a-token")
    valid_outcome(wrong, 401, "NO_RELATIONSHIP")


def test_outcome_403_scope_missing(client, practice, admin_a, consult, booked):
    reader = make_consumer(practice, admin_a, types=[consult], name="Reader", scopes=("slot.read",))
    token = token_for(client, reader).json()["access_token"]
    valid_outcome(Api(Client(), token).get(f"/fhir/Appointment/{booked['id']}"), 403, "ACCESS_DENIED")


def test_outcome_403_another_consumers_booking(client, practice, admin_a, consult, booked):
    other = make_consumer(practice, admin_a, types=[consult], name="Other app")
    other_api = Api(Client(), token_for(client, other).json()["access_token"])
    read = other_api.get(f"/fhir/Appointment/{booked['id']}")
    valid_response(read, "Appointment")
    refused = other_api.put(
        f"/fhir/Appointment/{booked['id']}",
        {**read.json(), "status": "cancelled", "cancelationReason": {"text": "x"}},
        HTTP_IF_MATCH=read["ETag"],
    )
    valid_outcome(refused, 403, "ACCESS_DENIED")


@pytest.mark.parametrize("kind", ["Slot", "Schedule", "Practitioner", "Location", "Patient", "Appointment"])
def test_outcome_404_unknown_id(api, kind):
    valid_outcome(api.get(f"/fhir/{kind}/0b8f1a62-5d1c-4c5e-9d33-6a3c4c2f0000"), 404, "NO_RECORD_FOUND")


def test_outcome_404_unknown_resource_type(api):
    valid_outcome(api.get("/fhir/Encounter"), 404, "NOT_IMPLEMENTED")


def test_outcome_406_xml(api, practice):
    valid_outcome(api.get("/fhir/Slot", {**week_range(practice), "_format": "xml"}), 406, "BAD_REQUEST")
    valid_outcome(api.get("/fhir/metadata", HTTP_ACCEPT="application/fhir+xml"), 406, "BAD_REQUEST")


def test_outcome_412_stale_version(api, booked):
    read = api.get(f"/fhir/Appointment/{booked['id']}")
    stale = api.put(f"/fhir/Appointment/{booked['id']}", {**read.json(), "comment": "x"}, HTTP_IF_MATCH='W/"1"')
    valid_outcome(stale, 412, "CONFLICTING_VALUES")


def test_outcome_415_and_400(api, patient, booked):
    plain = api.client.post("/fhir/Appointment", "hello", content_type="text/plain", **api.headers)
    valid_outcome(plain, 415, "BAD_REQUEST")
    broken = api.client.post("/fhir/Appointment", "{not json", content_type="application/fhir+json", **api.headers)
    valid_outcome(broken, 400, "BAD_REQUEST")


def test_outcome_405(api, booked):
    valid_outcome(api.client.delete(f"/fhir/Appointment/{booked['id']}", **api.headers), 405, "NOT_IMPLEMENTED")


def test_outcome_422_bad_search_and_bad_resource(api, practice, patient):
    valid_outcome(api.get("/fhir/Slot", {"start": "ge2026-01-01", "status": "free"}), 422, "INVALID_PARAMETER")
    valid_outcome(api.post("/fhir/Appointment", {"resourceType": "Patient"}), 422, "INVALID_RESOURCE")


def test_outcome_428_no_if_match(api, booked):
    read = api.get(f"/fhir/Appointment/{booked['id']}")
    valid_outcome(api.put(f"/fhir/Appointment/{booked['id']}", read.json()), 428, "PRECONDITION_FAILED")


def test_outcome_409_slot_taken(api, practice, booked):
    someone_else = PatientFactory(clinic=practice, national_id_kind="nhs", national_id="9434765870")
    again = api.post("/fhir/Appointment", booking_body(booked["slot"], str(someone_else.public_id)))
    valid_outcome(again, 409, "DUPLICATE_REJECTED")
    assert Appointment.objects.filter(slot__public_id=booked["slot"]).count() == 1


# The check itself can fail: real answers, each broken once, are refused. -----------------------------------------


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.__setitem__(key, value)


@pytest.mark.parametrize(
    ("kind", "breakage", "error"),
    [
        ("Slot", _drop("schedule"), ValidationError),  # a required element missing
        ("Slot", _set("start", "2026-12-10T10:00:00"), ValidationError),  # an instant without its offset
        ("Slot", _set("status", "open"), AssertionError),  # a code outside its required binding
        ("Slot", _set("capacity", 1), ValidationError),  # an element FHIR does not define
        ("Schedule", _drop("actor"), ValidationError),  # a required list missing
        ("Schedule", _set("actor", []), AssertionError),  # an empty list (FHIR JSON has none)
        ("Location", _set("name", ""), AssertionError),  # an empty string
        ("Location", _set("name", ["High Street"]), ValidationError),  # a list where one string belongs
        ("Organization", _set("active", "maybe"), ValidationError),  # a mistyped primitive
    ],
)
def test_a_broken_resource_fails_validation(api, practice, gp_session, kind, breakage, error):
    data = api.get("/fhir/Slot", {**week_range(practice), **INCLUDES}).json()
    resource = next(e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == kind)
    valid(resource, kind)  # as sent: valid
    breakage(resource)
    with pytest.raises(error):
        valid(resource, kind)
    with pytest.raises(error):  # and inside its Bundle
        valid(data, "Bundle")


def test_a_broken_outcome_and_bundle_fail_validation(api, practice):
    outcome = Client().get("/fhir/Slot", week_range(practice)).json()
    valid(outcome, "OperationOutcome")
    outcome["issue"][0]["code"] = "NO_RELATIONSHIP"  # a spine code where an issue type belongs
    with pytest.raises(AssertionError):
        valid(outcome, "OperationOutcome")
    bundle = api.get("/fhir/Slot", week_range(practice)).json()
    valid(bundle, "Bundle")
    with pytest.raises(ValidationError):
        valid({**bundle, "total": "none"}, "Bundle")
    with pytest.raises(AssertionError):
        valid({**bundle, "type": "collection"}, "Bundle")
