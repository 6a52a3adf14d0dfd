"""The free-slot search's rules (GP Connect): start=ge… and end=le…, each once, at most 14 days apart, status=free;
JSON only; bodies of FHIR JSON. And its times: each slot on its session's clock with that day's offset (a DST day
too), a date alone meaning the practice's local midnight."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.test import Client

from scheduling.models import Slot
from tests.fhir_api.conftest import Api, booking_body, gp_connect_session, next_week_day, token_for, week_range

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def outcome_code(response) -> str:
    return str(response.json()["issue"][0]["details"]["coding"][0]["code"])


def assert_invalid_parameter(response) -> None:
    assert response.status_code == 422, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "invalid"
    assert outcome_code(response) == "INVALID_PARAMETER"


def slot_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [e["resource"]["id"] for e in response.json().get("entry", []) if e["resource"]["resourceType"] == "Slot"]


# start, end and status -----------------------------------------------------------------------------------------


@pytest.fixture
def day(practice) -> dt.date:
    return next_week_day(practice)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"end": "le{d1}", "status": "free"}, id="no start"),
        pytest.param({"start": "ge{d0}", "status": "free"}, id="no end"),
        pytest.param({"status": "free"}, id="neither"),
        pytest.param({"start": "{d0}", "end": "le{d1}", "status": "free"}, id="start without prefix"),
        pytest.param({"start": "gt{d0}", "end": "le{d1}", "status": "free"}, id="start with gt"),
        pytest.param({"start": "le{d0}", "end": "le{d1}", "status": "free"}, id="start with le"),
        pytest.param({"start": "ge{d0}", "end": "{d1}", "status": "free"}, id="end without prefix"),
        pytest.param({"start": "ge{d0}", "end": "lt{d1}", "status": "free"}, id="end with lt"),
        pytest.param({"start": "ge{d0}", "end": "ge{d1}", "status": "free"}, id="end with ge"),
        pytest.param({"start": "ge{d0}T10:00:00", "end": "le{d1}", "status": "free"}, id="time without offset"),
        pytest.param({"start": "genext-week", "end": "le{d1}", "status": "free"}, id="not a date"),
        pytest.param({"start": "ge{d0}", "end": "le2026-02-30", "status": "free"}, id="not a real date"),
        pytest.param({"start": "ge{d0}", "end": "le{d1}", "status": "busy"}, id="status busy"),
        pytest.param({"start": "ge{d0}", "end": "le{d1}", "status": ["free", "busy"]}, id="status twice"),
        pytest.param({"start": "ge{d0}", "end": "le{d1}"}, id="no status"),
        pytest.param({"start": ["ge{d0}", "ge{d1}"], "end": "le{d1}", "status": "free"}, id="start twice"),
        pytest.param({"start": "ge{d1}", "end": "le{d0}", "status": "free"}, id="end before start"),
        pytest.param({"start": "ge{d1}T10:00:00+00:00", "end": "le{d1}T10:00:00+00:00", "status": "free"}, id="empty"),
    ],
)
def test_bad_search_parameters_are_422_invalid_parameter(api, day, gp_session, params):
    def fill(value: Any) -> Any:
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value.format(d0=day - dt.timedelta(days=1), d1=day + dt.timedelta(days=1))

    assert_invalid_parameter(api.get("/fhir/Slot", {key: fill(value) for key, value in params.items()}))


def test_the_same_search_done_right_finds_the_slots(api, day, gp_session):
    found = slot_ids(api.get("/fhir/Slot", {"start": f"ge{day}", "end": f"le{day}", "status": "free"}))
    assert found == [str(s.public_id) for s in gp_session.slots.order_by("starts_at")]


def test_at_most_fourteen_days(api, day, gp_session):
    first = day - dt.timedelta(days=3)
    # A date as the end means the whole of that day: ge D … le D+13 is exactly 14 days.
    fourteen = api.get(
        "/fhir/Slot", {"start": f"ge{first}", "end": f"le{first + dt.timedelta(days=13)}", "status": "free"}
    )
    assert len(slot_ids(fourteen)) == 4
    assert_invalid_parameter(
        api.get("/fhir/Slot", {"start": f"ge{first}", "end": f"le{first + dt.timedelta(days=14)}", "status": "free"})
    )
    # With times: 14 days to the second is fine, a second more is not.
    start = dt.datetime.combine(first, dt.time(9), tzinfo=UTC)
    exact = {"start": f"ge{start.isoformat()}", "end": f"le{(start + dt.timedelta(days=14)).isoformat()}"}
    assert len(slot_ids(api.get("/fhir/Slot", {**exact, "status": "free"}))) == 4
    over = {**exact, "end": f"le{(start + dt.timedelta(days=14, seconds=1)).isoformat()}"}
    response = api.get("/fhir/Slot", {**over, "status": "free"})
    assert_invalid_parameter(response)
    assert "14 days" in response.json()["issue"][0]["diagnostics"]


def test_an_offset_in_the_parameters_is_honoured(api, day, gp_session):
    """10:00 London (winter) is 10:00Z: a window ending at 10:15+00:00 holds the first slot, one ending at
    10:15+01:00 (09:15Z) none; Z is the same as +00:00."""
    first = slot_ids(api.get("/fhir/Slot", {"start": f"ge{day}", "end": f"le{day}T10:15:00Z", "status": "free"}))
    assert len(first) == 1
    plus = slot_ids(api.get("/fhir/Slot", {"start": f"ge{day}", "end": f"le{day}T10:15:00+00:00", "status": "free"}))
    assert plus == first
    assert (
        slot_ids(api.get("/fhir/Slot", {"start": f"ge{day}", "end": f"le{day}T10:15:00+01:00", "status": "free"})) == []
    )


# JSON only ------------------------------------------------------------------------------------------------------


def test_xml_is_406_and_json_or_anything_is_fine(api, practice, gp_session):
    for extra in ({"_format": "xml"}, {"_format": "application/fhir+xml"}):
        response = api.get("/fhir/Slot", {**week_range(practice), **extra})
        assert response.status_code == 406, response.content
        assert response.json()["resourceType"] == "OperationOutcome"
    for accept in ("application/fhir+xml", "application/xml, text/html"):
        response = api.get("/fhir/Slot", week_range(practice), HTTP_ACCEPT=accept)
        assert response.status_code == 406, accept
        assert response["Content-Type"].startswith("application/fhir+json")  # the refusal itself is JSON
    # _format wins over Accept.
    assert len(slot_ids(api.get("/fhir/Slot", {**week_range(practice), "_format": "json"}))) == 4
    xml_accept = api.get("/fhir/Slot", {**week_range(practice), "_format": "json"}, HTTP_ACCEPT="application/fhir+xml")
    assert len(slot_ids(xml_accept)) == 4
    for accept in ("*/*", "application/json", "application/fhir+json; fhirVersion=4.0", "text/html, */*;q=0.1"):
        response = api.get("/fhir/Slot", week_range(practice), HTTP_ACCEPT=accept)
        assert len(slot_ids(response)) == 4, accept
        assert response["Content-Type"].startswith("application/fhir+json")
    no_accept = {k: v for k, v in api.headers.items() if k != "HTTP_ACCEPT"}
    assert len(slot_ids(api.client.get("/fhir/Slot", week_range(practice), **no_accept))) == 4


def test_a_body_must_be_fhir_json(api, practice, gp_session, patient):
    slot_id = slot_ids(api.get("/fhir/Slot", week_range(practice)))[0]
    body = booking_body(slot_id, str(patient.public_id))
    text = api.client.post("/fhir/Appointment", json.dumps(body), content_type="text/plain", **api.headers)
    assert text.status_code == 415 and text.json()["resourceType"] == "OperationOutcome"
    xml = api.client.post("/fhir/Appointment", "<Appointment/>", content_type="application/fhir+xml", **api.headers)
    assert xml.status_code == 415
    bad = api.client.post(
        "/fhir/Appointment", '{"resourceType": "Appointment",', content_type="application/fhir+json", **api.headers
    )
    assert bad.status_code == 400 and outcome_code(bad) == "BAD_REQUEST"
    assert not Slot.objects.get(public_id=slot_id).booked_count
    # The same body as FHIR JSON (or plain JSON) books.
    assert (
        api.client.post(
            "/fhir/Appointment", json.dumps(body), content_type="application/json", **api.headers
        ).status_code
        == 201
    )
    assert Slot.objects.get(public_id=slot_id).booked_count == 1


# Times on the session's clock ------------------------------------------------------------------------------------

SPRING_FORWARD = dt.date(2027, 3, 28)  # the last Sunday of March 2027: London goes from GMT to BST at 01:00


@pytest.fixture
def before_spring() -> Iterator[None]:
    """Now is a week before the clocks go forward (so the sessions below are in the future, whenever this runs)."""
    with time_machine.travel(dt.datetime(2027, 3, 20, 12, 0, tzinfo=UTC)):
        yield


@pytest.fixture
def api_now(before_spring, credentials) -> Api:
    """A token issued at the travelled-to now (one issued at the real now would have expired or not begun)."""
    response = token_for(Client(), credentials)
    assert response.status_code == 200, response.content
    return Api(Client(), response.json()["access_token"])


def test_slot_times_carry_the_offset_of_their_day(api_now, practice, gp, surgery, consult):
    winter = gp_connect_session(practice, gp, surgery, SPRING_FORWARD - dt.timedelta(days=1), [consult] * 2)
    summer = gp_connect_session(practice, gp, surgery, SPRING_FORWARD, [consult] * 2)
    response = api_now.get(
        "/fhir/Slot",
        {"start": f"ge{SPRING_FORWARD - dt.timedelta(days=1)}", "end": f"le{SPRING_FORWARD}", "status": "free"},
    )
    assert response.status_code == 200, response.content
    slots = [e["resource"] for e in response.json()["entry"]]
    assert [(s["start"], s["end"]) for s in slots] == [
        ("2027-03-27T10:00:00+00:00", "2027-03-27T10:15:00+00:00"),
        ("2027-03-27T10:15:00+00:00", "2027-03-27T10:30:00+00:00"),
        ("2027-03-28T10:00:00+01:00", "2027-03-28T10:15:00+01:00"),
        ("2027-03-28T10:15:00+01:00", "2027-03-28T10:30:00+01:00"),
    ]
    # The same instants as the rows: 10:00 BST is 09:00Z.
    rows = Slot.objects.filter(session__in=[winter, summer]).order_by("starts_at")
    assert [dt.datetime.fromisoformat(s["start"]) for s in slots] == [row.starts_at for row in rows]
    assert rows[2].starts_at == dt.datetime(2027, 3, 28, 9, 0, tzinfo=UTC)

    schedule = api_now.get(f"/fhir/Schedule/{summer.public_id}").json()
    assert schedule["planningHorizon"]["start"] == "2027-03-28T10:00:00+01:00"
    assert api_now.get(f"/fhir/Slot/{slots[2]['id']}").json()["start"] == "2027-03-28T10:00:00+01:00"
    assert api_now.get(f"/fhir/Slot/{slots[0]['id']}").json()["start"] == "2027-03-27T10:00:00+00:00"


def test_an_appointment_on_the_dst_day_keeps_its_local_time(api_now, practice, gp, surgery, consult, patient):
    gp_connect_session(practice, gp, surgery, SPRING_FORWARD, [consult])
    found = api_now.get("/fhir/Slot", {"start": f"ge{SPRING_FORWARD}", "end": f"le{SPRING_FORWARD}", "status": "free"})
    slot = found.json()["entry"][0]["resource"]
    booked = api_now.post("/fhir/Appointment", booking_body(slot["id"], str(patient.public_id), start=slot["start"]))
    assert booked.status_code == 201, booked.content
    assert (booked.json()["start"], booked.json()["end"]) == ("2027-03-28T10:00:00+01:00", "2027-03-28T10:15:00+01:00")
    # The same instant written in UTC is the slot's start too; the wall time with the wrong offset is not.
    other = api_now.post(
        "/fhir/Appointment", booking_body(slot["id"], str(patient.public_id), start="2027-03-28T10:00:00+00:00")
    )
    assert other.status_code == 422 and outcome_code(other) == "INVALID_RESOURCE"


def test_a_date_alone_is_the_practices_local_midnight(api_now, practice, gp, surgery, consult, patient):
    """On a BST day local midnight is 23:00Z the day before: a session at 00:00 local is in that day's search
    (a UTC midnight would miss it), and a session ending at 23:00 local the day before is not."""
    day = SPRING_FORWARD + dt.timedelta(days=2)  # in BST
    midnight = gp_connect_session(practice, gp, surgery, day, [consult], start=dt.time(0))
    late = gp_connect_session(practice, gp, surgery, day - dt.timedelta(days=1), [consult] * 2, start=dt.time(22, 30))
    first_slot = midnight.slots.get()
    assert first_slot.starts_at == dt.datetime(2027, 3, 29, 23, 0, tzinfo=UTC)

    by_date = slot_ids(api_now.get("/fhir/Slot", {"start": f"ge{day}", "end": f"le{day}", "status": "free"}))
    assert by_date == [str(first_slot.public_id)]
    # Written as the local midnight it is the same search; as UTC midnight, an hour later, it misses the slot.
    local = {"start": f"ge{day}T00:00:00+01:00", "end": f"le{day}", "status": "free"}
    assert slot_ids(api_now.get("/fhir/Slot", local)) == by_date
    assert slot_ids(api_now.get("/fhir/Slot", {**local, "start": f"ge{day}T00:00:00Z"})) == []
    # The day before, by date, ends at that local midnight: its late session, and not the 00:00 one.
    previous = day - dt.timedelta(days=1)
    day_before = slot_ids(
        api_now.get("/fhir/Slot", {"start": f"ge{previous}", "end": f"le{previous}", "status": "free"})
    )
    assert day_before == [str(s.public_id) for s in late.slots.order_by("starts_at")]
    # A patient's appointments from a date use the same local midnight.
    booked = api_now.post("/fhir/Appointment", booking_body(str(first_slot.public_id), str(patient.public_id)))
    assert booked.status_code == 201, booked.content
    assert booked.json()["start"] == f"{day}T00:00:00+01:00"
    listing = f"/fhir/Patient/{patient.public_id}/Appointment"
    listed = api_now.get(listing, {"start": f"ge{day}"}).json()
    assert [e["resource"]["id"] for e in listed.get("entry", [])] == [booked.json()["id"]]
    assert api_now.get(listing, {"start": f"ge{day}T00:00:00Z"}).json()["total"] == 0
    # …and a date as its end is the end of that local day.
    assert api_now.get(listing, {"start": f"ge{previous}", "end": f"le{previous}"}).json()["total"] == 0
    assert api_now.get(listing, {"start": f"ge{previous}", "end": f"le{day}"}).json()["total"] == 1
