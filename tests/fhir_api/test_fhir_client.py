"""A real FHIR client library (fhirpy's SyncFHIRClient) drives the API over real HTTP (pytest-django's live server):
search free slots with GP Connect's includes, find the patient by NHS number, book, read, list the patient's
appointments and cancel, checking the database at each step."""

from __future__ import annotations

import datetime as dt
import gc
import threading
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from django.utils import timezone
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, ForbiddenError, MultipleResourcesFound, OperationOutcome
from fhirpy.base.searchset import Raw

from fhir_api.models import FhirBooking
from scheduling.models import Appointment
from tests.fhir_api.conftest import NHS_NUMBER, REQUESTER, make_consumer

pytestmark = pytest.mark.django_db(transaction=True)

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
# The X-Requesting-* headers, as HTTP header names (conftest's REQUESTER is in Django's WSGI form).
REQUESTER_HEADERS = {
    "X-Requesting-Practitioner": REQUESTER["HTTP_X_REQUESTING_PRACTITIONER"],
    "X-Requesting-Organization": REQUESTER["HTTP_X_REQUESTING_ORGANIZATION"],
}
TIMEOUT = 30


@pytest.fixture(autouse=True)
def requests_served() -> Iterator[None]:
    """The live server serves each HTTP connection in a thread that keeps its database connection until the client
    hangs up. A response fhirpy raised on (in a pytest.raises) stays referenced from the exception's traceback, a
    reference cycle, so its socket closes only when the garbage collector runs: run it, then wait for the server's
    threads, so that no database connection outlives the test (on PostgreSQL one would keep the test database from
    being dropped)."""
    yield
    gc.collect()
    for thread in threading.enumerate():
        if thread.name.endswith("(process_request_thread)"):
            thread.join(timeout=10)
            assert not thread.is_alive(), "a client connection to the live server was left open"


def bearer_token(base_url: str, credentials) -> str:
    """A token from the OAuth2 endpoint: client credentials over HTTP Basic, as any OAuth2 client sends them."""
    response = requests.post(
        f"{base_url}/fhir/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(credentials.client_id, credentials.client_secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    return str(body["access_token"])


def fhir_client(base_url: str, token: str, **headers: str) -> SyncFHIRClient:
    return SyncFHIRClient(
        f"{base_url}/fhir",
        authorization=f"Bearer {token}",
        extra_headers={**REQUESTER_HEADERS, **headers},
        requests_config={"timeout": TIMEOUT},
    )


def local_today(clinic) -> dt.date:
    return timezone.now().astimezone(ZoneInfo(clinic.time_zone)).date()


def by_type(bundle: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for entry in bundle["entry"]:
        found.setdefault(entry["resource"]["resourceType"], []).append(entry)
    return found


def test_fhirpy_searches_books_reads_lists_and_cancels(
    live_server, practice, gp, surgery, gp_session, patient, credentials
):
    token = bearer_token(live_server.url, credentials)
    client = fhir_client(live_server.url, token)
    today = local_today(practice)

    # Free slots of the coming week, with everything GP Connect includes. fhirpy's include() writes
    # `_include:recursive` (STU3 drafts) or `_include:iterate` (R4), not GP Connect's `_include:recurse`, so those
    # go in as raw parameters.
    slots = (
        client.resources("Slot")
        .search(start__ge=today, end__le=today + dt.timedelta(days=7), status="free")
        .include("Slot", "schedule")
        .search(
            Raw(
                **{
                    "_include:recurse": [
                        "Schedule:actor:Practitioner",
                        "Schedule:actor:Location",
                        "Location:managingOrganization",
                    ]
                }
            )
        )
    )
    bundle = slots.fetch_raw()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    found = by_type(bundle)
    assert bundle["total"] == 4 == len(found["Slot"])
    assert {e["search"]["mode"] for e in found["Slot"]} == {"match"}
    assert [e["resource"]["id"] for e in found["Slot"]] == [
        str(s.public_id) for s in gp_session.slots.order_by("starts_at")
    ]
    for kind in ("Schedule", "Practitioner", "PractitionerRole", "Location", "Organization"):
        assert len(found.get(kind, [])) == 1, kind
        assert found[kind][0]["search"]["mode"] == "include"
    assert found["Schedule"][0]["resource"]["id"] == str(gp_session.public_id)
    assert found["Practitioner"][0]["resource"]["id"] == str(gp.public_id)
    assert found["Location"][0]["resource"]["id"] == str(surgery.public_id)
    assert found["Organization"][0]["resource"]["id"] == str(practice.public_id)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"{live_server.url}/fhir/{resource['resourceType']}/{resource['id']}"
    # fetch() keeps the matches only, as fhirpy's resources: the slots reference the included schedule.
    slot_resources = slots.fetch()
    assert [s.resource_type for s in slot_resources] == ["Slot"] * 4
    first = slot_resources[0]
    assert first["schedule"].reference == f"Schedule/{gp_session.public_id}"
    schedule = first["schedule"].to_resource()  # a read over HTTP, through the reference
    assert schedule["id"] == str(gp_session.public_id) and schedule["resourceType"] == "Schedule"

    # The patient, by NHS number (get() insists on exactly one match).
    found_patient = client.resources("Patient").search(identifier=f"{NHS_SYSTEM}|{NHS_NUMBER}").get()
    assert found_patient.id == str(patient.public_id)
    assert {"system": NHS_SYSTEM, "value": NHS_NUMBER} in found_patient["identifier"]
    assert client.resources("Patient").search(identifier=f"{NHS_SYSTEM}|9999999999").fetch() == []

    # Book: save() of a resource without an id is a POST.
    assert not Appointment.objects.filter(patient=patient).exists()
    appointment = client.resource(
        "Appointment",
        status="booked",
        description="Sore throat, fever for 3 days",
        start=first["start"],
        end=first["end"],
        slot=[first.to_reference()],
        participant=[{"actor": found_patient.to_reference(), "status": "accepted"}],
    )
    appointment.save()
    assert appointment.id and appointment["status"] == "booked"
    row = Appointment.objects.get(patient=patient)
    assert str(row.public_id) == appointment.id
    assert (row.source, row.status) == ("fhir", "booked")
    assert str(row.slot.public_id) == first.id
    booking = FhirBooking.objects.get(appointment=row)
    assert booking.consumer.application.client_id == credentials.client_id
    assert booking.requesting_practitioner == REQUESTER_HEADERS["X-Requesting-Practitioner"]
    assert booking.booking_organisation == REQUESTER_HEADERS["X-Requesting-Organization"]

    # The booked slot is no longer offered.
    assert first.id not in [
        s.id
        for s in client.resources("Slot")
        .search(start__ge=today, end__le=today + dt.timedelta(days=7), status="free")
        .fetch()
    ]

    # Read it back through a reference.
    read = client.reference("Appointment", appointment.id).to_resource()
    assert read["status"] == "booked" and read["meta"]["versionId"] == appointment["meta"]["versionId"]
    assert read["slot"][0]["reference"] == f"Slot/{first.id}"
    assert read["start"] == first["start"]

    # The patient's appointments from today: an operation on the Patient resource (Patient/<id>/Appointment).
    listed = found_patient.execute("Appointment", method="get", params={"start": f"ge{today}"})
    assert listed["resourceType"] == "Bundle" and listed["total"] == 1
    assert [e["resource"]["id"] for e in listed["entry"]] == [appointment.id]
    later = found_patient.execute("Appointment", method="get", params={"start": f"ge{today + dt.timedelta(days=8)}"})
    assert later["total"] == 0

    # fhirpy's update() is a plain PUT: without If-Match the API refuses (428), and nothing changes.
    read["status"] = "cancelled"
    read["cancelationReason"] = {"text": "Feeling better"}
    with pytest.raises(OperationOutcome) as refused:
        read.save()
    assert refused.value.resource["issue"][0]["details"]["coding"][0]["code"] == "PRECONDITION_FAILED"
    row.refresh_from_db()
    assert row.status == "booked"

    # fhirpy does not expose response headers (the ETag) nor send If-Match itself. The ETag, read over plain HTTP,
    # is the weak form of meta.versionId; a client built with If-Match among its extra headers (a public option of
    # fhirpy) then updates through the library's own save().
    etag = requests.get(
        f"{live_server.url}/fhir/Appointment/{appointment.id}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
        timeout=TIMEOUT,
    ).headers["ETag"]
    assert etag == f'W/"{read["meta"]["versionId"]}"'

    # A stale version is 412 (which fhirpy reports as MultipleResourcesFound, its reading of 412).
    stale_client = fhir_client(live_server.url, token, **{"If-Match": 'W/"1"'})
    with pytest.raises(MultipleResourcesFound):
        stale_client.resource("Appointment", **read).save()
    row.refresh_from_db()
    assert row.status == "booked"

    cancelling = fhir_client(live_server.url, token, **{"If-Match": etag})
    cancelled = cancelling.resource("Appointment", **read)
    cancelled.save()  # has an id: a PUT
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"]["text"] == "Feeling better"
    assert cancelled["meta"]["versionId"] != read["meta"]["versionId"]
    row.refresh_from_db()
    assert (row.source, row.status, row.cancel_reason) == ("fhir", "cancelled", "Feeling better")
    assert FhirBooking.objects.get(appointment=row).cancelled_by_consumer

    # Cancelled appointments are still listed (GP Connect), and the slot is free again.
    listed = found_patient.execute("Appointment", method="get", params={"start": f"ge{today}"})
    assert [(e["resource"]["id"], e["resource"]["status"]) for e in listed["entry"]] == [(appointment.id, "cancelled")]
    assert first.id in [
        s.id
        for s in client.resources("Slot")
        .search(start__ge=today, end__le=today + dt.timedelta(days=7), status="free")
        .fetch()
    ]


def test_fhirpy_without_a_token_or_scope_is_refused(live_server, practice, admin_a, consult, gp_session, credentials):
    today = local_today(practice)
    search = {"start__ge": today, "end__le": today + dt.timedelta(days=7), "status": "free"}
    anonymous = SyncFHIRClient(f"{live_server.url}/fhir", requests_config={"timeout": TIMEOUT})
    with pytest.raises(AuthorizationError):
        anonymous.resources("Slot").search(**search).fetch()
    # The CapabilityStatement needs no token.
    metadata = anonymous.execute("metadata", method="get")
    assert metadata["resourceType"] == "CapabilityStatement" and metadata["fhirVersion"] == "4.0.1"

    reader = make_consumer(practice, admin_a, types=[consult], name="Reader", scopes=("appointment.read",))
    client = fhir_client(live_server.url, bearer_token(live_server.url, reader))
    with pytest.raises(ForbiddenError):
        client.resources("Slot").search(**search).fetch()
    slots = fhir_client(live_server.url, bearer_token(live_server.url, credentials)).resources("Slot").search(**search)
    assert len(slots.fetch()) == 4


def test_fhirpy_r4_include_iterate_brings_the_same_resources(
    live_server, practice, gp, surgery, gp_session, credentials
):
    """fhirpy's own include(..., iterate=True) writes R4's `_include:iterate`: it must bring what GP Connect's
    `_include:recurse` brings."""
    client = fhir_client(live_server.url, bearer_token(live_server.url, credentials))
    today = local_today(practice)
    base = client.resources("Slot").search(start__ge=today, end__le=today + dt.timedelta(days=7), status="free")
    iterate = (
        base.include("Slot", "schedule")
        .include("Schedule", "actor", "Practitioner", iterate=True)
        .include("Schedule", "actor", "Location", iterate=True)
        .include("Location", "managingOrganization", iterate=True)
    )
    assert "_include:iterate=Schedule:actor:Practitioner" in str(iterate)
    recurse = base.include("Slot", "schedule").search(
        Raw(**{"_include:recurse": ["Schedule:actor:Practitioner", "Schedule:actor:Location"]})
    )
    kinds = {
        name: sorted((e["resource"]["resourceType"], e["resource"]["id"]) for e in search.fetch_raw()["entry"])
        for name, search in (("iterate", iterate), ("recurse", recurse))
    }
    assert kinds["iterate"] == kinds["recurse"]
    assert {kind for kind, _ in kinds["iterate"]} == {
        "Slot",
        "Schedule",
        "Practitioner",
        "PractitionerRole",
        "Location",
        "Organization",
    }
    # Without includes, only the slots.
    assert {e["resource"]["resourceType"] for e in base.fetch_raw()["entry"]} == {"Slot"}
