"""Fixtures of the FHIR API tests: a practice with an ODS code, a GP Connect bookable session of free 15-minute
slots next week (and one not released for GP Connect), a patient with an NHS number, and a consumer with a token."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from fhir_api.services.consumers import Credentials, consumer_create
from tests.conftest import tasks_in_process
from tests.factories import LocationFactory, PatientFactory, PractitionerFactory, SlotTypeFactory, template_with_slots

SECRET = "test-secret-of-the-consumer-0123456789"
SCOPES = ("slot.read", "appointment.read", "appointment.write")
REQUESTER = {"HTTP_X_REQUESTING_PRACTITIONER": "Dr Triage (SDS 555)", "HTTP_X_REQUESTING_ORGANIZATION": "NHS111"}
NHS_NUMBER = "9434765919"


@pytest.fixture(autouse=True)
def sends_in_this_process() -> Iterator[None]:
    with tasks_in_process():
        yield


@pytest.fixture(autouse=True)
def own_rate_limits(settings) -> None:
    """Each test counts calls afresh (the Redis cache is shared by the test processes, so it is never cleared)."""
    default = settings.CACHES["default"]
    settings.CACHES = {**settings.CACHES, "default": {**default, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


def next_week_day(clinic) -> dt.date:
    return timezone.now().astimezone(ZoneInfo(clinic.time_zone)).date() + dt.timedelta(days=7)


@pytest.fixture
def practice(clinic_a):
    clinic_a.ods_code = "A12345"
    clinic_a.save(update_fields=["ods_code"])
    return clinic_a


@pytest.fixture
def consult(practice):
    return SlotTypeFactory(clinic=practice, name="GP consultation", default_length_minutes=15)


@pytest.fixture
def surgery(practice):
    return LocationFactory(clinic=practice, name="High Street Surgery", time_zone="Europe/London", postcode="AB1 2CD")


@pytest.fixture
def gp(practice, surgery):
    return PractitionerFactory(clinic=practice, name="Dr Grey", default_location=surgery)


@pytest.fixture
def gp_session(practice, gp, surgery, consult):
    """Four free 15-minute slots from 10:00 next week, released for GP Connect (role GP, at the surgery)."""
    return gp_connect_session(practice, gp, surgery, next_week_day(practice), [consult] * 4)


def gp_connect_session(clinic, practitioner, location, day, slot_types, *, start=dt.time(10), role="gp", **fields):
    """A dated session of a GP Connect bookable template (its role and location set), through the rota service."""
    from scheduling.services.rota import AllocationRequest, allocation_create

    template = template_with_slots(
        clinic,
        slot_types,
        name=fields.pop("name", f"GPC {uuid.uuid4().hex[:6]}"),
        gp_connect_bookable=True,
        practitioner_role=role,
        location=location,
        **fields,
    )
    request = AllocationRequest(template, practitioner, location, start, day, day, (), 1)
    return allocation_create(clinic=clinic, actor=None, request=request).sessions.get()


@pytest.fixture
def patient(practice):
    return PatientFactory(
        clinic=practice, first_name="Mary", last_name="Seacole", national_id_kind="nhs", national_id=NHS_NUMBER
    )


def make_consumer(clinic, admin, *, types, name="NHS 111", scopes=SCOPES, rate_limit=120) -> Credentials:
    return consumer_create(
        clinic=clinic,
        actor=admin.user,
        name=name,
        organisation_type="urgent-care",
        ods_code="NHS111",
        scopes=scopes,
        slot_types=types,
        rate_limit=rate_limit,
        client_secret=SECRET,
    )


@pytest.fixture
def credentials(practice, admin_a, consult) -> Credentials:
    return make_consumer(practice, admin_a, types=[consult])


def token_for(client: Client, credentials: Credentials, scope: str | None = None) -> Any:
    basic = base64.b64encode(f"{credentials.client_id}:{credentials.client_secret}".encode()).decode()
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    return client.post("/fhir/oauth/token", data, HTTP_AUTHORIZATION=f"Basic {basic}")


class Api:
    """A FHIR caller with a bearer token (Django's test client underneath)."""

    def __init__(self, client: Client, token: str):
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_ACCEPT": "application/fhir+json", **REQUESTER}

    def get(self, path: str, data: dict | None = None, **extra: Any):
        return self.client.get(path, data or {}, **{**self.headers, **extra})

    def post(self, path: str, body: dict, **extra: Any):
        return self.client.post(path, body, content_type="application/fhir+json", **{**self.headers, **extra})

    def put(self, path: str, body: dict, **extra: Any):
        return self.client.put(path, body, content_type="application/fhir+json", **{**self.headers, **extra})


@pytest.fixture
def api(client: Client, credentials) -> Api:
    response = token_for(client, credentials)
    assert response.status_code == 200, response.content
    return Api(Client(), response.json()["access_token"])


def week_range(clinic) -> dict[str, str]:
    day = next_week_day(clinic)
    return {"start": f"ge{day - dt.timedelta(days=1)}", "end": f"le{day + dt.timedelta(days=1)}", "status": "free"}


def booking_body(slot_id: str, patient_id: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "description": "Sore throat, fever for 3 days",
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
        "contained": [
            {
                "resourceType": "Organization",
                "id": "1",
                "name": "NHS 111 North",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "NHS111N"}],
            }
        ],
        "extension": [
            {
                "url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-BookingOrganisation-1",
                "valueReference": {"reference": "#1"},
            }
        ],
        **more,
    }
