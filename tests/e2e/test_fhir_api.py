"""The FHIR API (issue 23) end to end, in Chromium and over real HTTP: an admin adds a consumer on Clinic → "FHIR API
consumers" and is shown its client ID and secret once; the consumer's system (`requests`, against the live server)
gets a token, searches free slots with their includes, finds the patient and books one; reception sees the booking
on the calendar with the consumer named (the source badge, the slot's title and popup, the appointment's page and
its "Booked through the FHIR API" section); the consumer cancels it (If-Match) and the slot is free again. An admin
makes a new secret (the old one stops working) and revokes the consumer (its token stops working). Every page on
the way passes axe-core with no serious or critical violation and never scrolls sideways on a laptop.

Screenshots for a person to look at: /tmp/fhir-e2e-*.png (SHOTS_DIR to put them elsewhere).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from oauth2_provider.models import Application
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect

from clinic.models import Clinic, Membership, Practitioner, Role
from fhir_api.models import Consumer, FhirBooking
from fhir_api.services.consumers import Credentials
from patients.models import Patient
from scheduling.models import Appointment, AppointmentSource, AppointmentStatus, Session, Slot
from sessions_setup.models import SlotType
from tests.conftest import ALL_PERMISSIONS, tasks_in_process
from tests.e2e.calendar_browser import BROWSER_ZONE, settle_after, sign_in, tip
from tests.e2e.test_accessibility import check
from tests.factories import (
    ClinicFactory,
    LocationFactory,
    MembershipFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
)
from tests.fhir_api.conftest import (
    NHS_NUMBER,
    REQUESTER,
    booking_body,
    gp_connect_session,
    make_consumer,
    next_week_day,
)

pytestmark = pytest.mark.django_db(transaction=True)

LAPTOP = ViewportSize(width=1280, height=800)
LONDON = ZoneInfo("Europe/London")
SHOTS = os.environ.get("SHOTS_DIR", "/tmp")
CONSUMER = "Northshire 111"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
INCLUDES = {
    "_include": "Slot:schedule",
    "_include:recurse": ["Schedule:actor:Practitioner", "Schedule:actor:Location", "Location:managingOrganization"],
}
# The requesting practitioner and organisation, as HTTP headers (the fixtures of the API tests name them as WSGI keys).
REQUESTING = {key.removeprefix("HTTP_").replace("_", "-").title(): value for key, value in REQUESTER.items()}
FHIR_JSON = "application/fhir+json"


@pytest.fixture(autouse=True)
def sends_in_this_process() -> Iterator[None]:
    """Booking confirmations are sent in the live server's thread, even when REDIS_URL names a broker."""
    with tasks_in_process():
        yield


@pytest.fixture(autouse=True)
def own_rate_limits(settings) -> None:
    """Each test counts its calls afresh (a Redis cache is shared by test runs and never cleared)."""
    default = settings.CACHES["default"]
    settings.CACHES = {**settings.CACHES, "default": {**default, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


@dataclass
class Practice:
    """A GP practice with an ODS code: Dr Grey's GP Connect bookable session next week (four free 15-minute GP
    consultations from 10:00 at the High Street Surgery), a physio type no consumer is given, Mary Seacole (with an
    NHS number), an admin and a receptionist."""

    clinic: Clinic
    consult: SlotType
    physio: SlotType
    gp: Practitioner
    session: Session
    slots: list[Slot]  # in time order
    mary: Patient
    admin: Membership
    reception: Membership

    @property
    def day(self) -> dt.date:
        return self.session.date


@pytest.fixture
def practice(live_server):  # -> Practice; untyped, as factory_boy types what it makes as the factory
    clinic = ClinicFactory(name="High Street Practice", slug="high-street", time_zone="Europe/London")
    clinic.ods_code = "A12345"
    clinic.save(update_fields=["ods_code"])
    surgery = LocationFactory(clinic=clinic, name="High Street Surgery", time_zone="Europe/London", postcode="AB1 2CD")
    consult = SlotTypeFactory(clinic=clinic, name="GP consultation", default_length_minutes=15, colour="blue")
    physio = SlotTypeFactory(clinic=clinic, name="Physio", default_length_minutes=30, colour="green")
    gp = PractitionerFactory(clinic=clinic, name="Dr Grey", default_location=surgery)
    session = gp_connect_session(clinic, gp, surgery, next_week_day(clinic), [consult] * 4)
    mary = PatientFactory(
        clinic=clinic, first_name="Mary", last_name="Seacole", national_id_kind="nhs", national_id=NHS_NUMBER
    )
    admin = MembershipFactory(
        clinic=clinic, role=Role.ADMIN, user__first_name="Alice", user__last_name="Admin", **ALL_PERMISSIONS
    )
    reception = MembershipFactory(
        clinic=clinic,
        role=Role.RECEPTION,
        perm_manage_appointments=True,
        user__first_name="Rita",
        user__last_name="Reception",
    )
    return Practice(
        clinic=clinic,
        consult=consult,
        physio=physio,
        gp=gp,
        session=session,
        slots=list(session.slots.order_by("starts_at")),
        mary=mary,
        admin=admin,
        reception=reception,
    )


# --- The consumer's system: a real HTTP client ---------------------------------------------------------------------


def token_response(base: str, client_id: str, secret: str) -> requests.Response:
    return requests.post(
        f"{base}/fhir/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=10
    )


def token_of(base: str, client_id: str, secret: str) -> str:
    answer = token_response(base, client_id, secret)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    return body["access_token"]


class FhirClient:
    """A consumer's system calling the API with its bearer token, naming who the calls are for."""

    def __init__(self, base: str, token: str):
        self.base = base
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {token}", "Accept": FHIR_JSON, **REQUESTING})

    def get(self, path: str, params: Any = None) -> requests.Response:
        return self.http.get(f"{self.base}/fhir/{path}", params=params, timeout=10)

    def send(self, method: str, path: str, body: dict[str, Any], **headers: str) -> requests.Response:
        return self.http.request(
            method,
            f"{self.base}/fhir/{path}",
            data=json.dumps(body),
            headers={"Content-Type": FHIR_JSON, **headers},
            timeout=10,
        )

    def search_free_slots(self, day: dt.date) -> requests.Response:
        window = {"start": f"ge{day.isoformat()}", "end": f"le{day.isoformat()}", "status": "free"}
        return self.get("Slot", {**window, **INCLUDES})


def resources_of(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle.get("entry", []) if entry["resource"]["resourceType"] == kind]


# --- What every page on the way is checked for --------------------------------------------------------------------


def look(page: Page, name: str, found: list[str], *, shot: bool = False) -> None:
    """axe-core and unnamed controls (added to `found`), nothing wider than the window, and a screenshot when asked."""
    check(page, name, found)
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if width[0] > width[1]:
        found.append(f"{name}: {width[0]} px of content in a {width[1]} px window")
    if shot:
        screenshot(page, name)


def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=f"{SHOTS}/fhir-e2e-{name}.png", full_page=full_page)


def said(page: Page) -> Locator:
    """The page's messages (Django's messages framework, in a role=status region)."""
    return page.locator("main > [role=status] .messages")


def fact(page: Page, term: str) -> Locator:
    """The value of a term of the page's facts (a <dl>)."""
    return page.locator("dl.facts dt", has_text=re.compile(f"^{re.escape(term)}$")).locator(
        "xpath=following-sibling::dd[1]"
    )


def open_day(page: Page, base: str, day: dt.date) -> None:
    page.goto(f"{base}/calendar/?view=day&date={day.isoformat()}")
    expect(page.locator("body")).to_have_attribute("data-viewer-zone", BROWSER_ZONE)
    expect(page.locator("#calendar")).to_be_visible()


def open_slot_popup(page: Page, slot: Slot) -> None:
    settle_after(page, lambda: page.locator(f"#slot-{slot.public_id}").click())
    expect(tip(page)).to_be_visible()


def reception_page(browser: Browser, live_server, membership: Membership) -> Page:
    """Reception's own browser (a context of its own, signed in), laptop-sized."""
    context = browser.new_context(viewport=LAPTOP, timezone_id=BROWSER_ZONE)
    page = context.new_page()
    sign_in(page, live_server, membership)
    return page


def type_into(page: Page, label: str, text: str) -> None:
    """Type into a field found by its label, as a person does: focus it, clear it, type."""
    field = page.get_by_label(label, exact=True)
    field.focus()
    field.fill("")
    page.keyboard.type(text)
    expect(field).to_have_value(text)


def tick(page: Page, label: str, *, on: bool = True) -> None:
    """A checkbox by its label, with the space bar."""
    box = page.get_by_role("checkbox", name=label)
    box.focus()
    if box.is_checked() != on:
        page.keyboard.press(" ")
    expect(box).to_be_checked(checked=on)


# --- 1. An admin adds a consumer; it books through the API; reception sees who booked; it cancels -----------------


def test_an_admin_adds_a_consumer_that_books_and_cancels_and_reception_sees_it_named(
    page, browser, practice, live_server, js_errors, csp_violations
):
    p = practice
    base = live_server.url
    found: list[str] = []
    page.set_viewport_size(LAPTOP)
    sign_in(page, live_server, p.admin)

    # Clinic → FHIR API consumers: none yet.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Clinic").click()
    page.get_by_role("navigation", name="Clinic admin").get_by_role("link", name="FHIR API consumers").click()
    expect(page).to_have_url(f"{base}/clinic/fhir/")
    expect(page.get_by_role("heading", level=2)).to_have_text("FHIR API consumers")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Clinic")).to_have_attribute(
        "aria-current", "page"
    )
    expect(
        page.get_by_role("navigation", name="Clinic admin").get_by_role("link", name="FHIR API consumers")
    ).to_have_attribute("aria-current", "page")
    expect(page.locator(".empty")).to_contain_text("No consumer may call the FHIR API yet.")
    expect(fact(page, "Token endpoint")).to_contain_text(f"{base}/fhir/oauth/token")
    expect(page.locator("table")).to_have_count(0)
    look(page, "consumers-empty", found)

    # The form, by its labels and the keyboard.
    page.get_by_role("link", name="Add consumer").click()
    expect(page.get_by_role("heading", level=2)).to_have_text("Add a FHIR API consumer")
    type_into(page, "Name", CONSUMER)
    page.get_by_label("Organisation type").focus()
    page.get_by_label("Organisation type").select_option(label="Urgent care (e.g. NHS 111)")
    type_into(page, "ODS code (optional)", "nhs111n")
    for scope in ("slot.read", "appointment.read", "appointment.write"):  # all three, as the form offers
        expect(page.get_by_role("checkbox", name=re.compile(rf"\({re.escape(scope)}\)"))).to_be_checked()
    tick(page, "GP consultation")
    tick(page, "Physio", on=False)
    type_into(page, "Calls per minute", "60")
    page.get_by_label("Calls per minute").press("Enter")  # Enter in a field submits the form

    # Its client ID and secret, this once.
    expect(page.get_by_role("heading", level=2)).to_have_text(f"{CONSUMER} may now call the FHIR API")
    expect(page.get_by_role("status")).to_contain_text("Copy the secret now: it is shown only this once.")
    client_id = fact(page, "Client ID").inner_text().strip()
    secret = fact(page, "Client secret").inner_text().strip()
    assert client_id and len(secret) >= 32, (client_id, secret)
    expect(fact(page, "Token endpoint")).to_contain_text(f"{base}/fhir/oauth/token")
    expect(fact(page, "FHIR base address")).to_contain_text(f"{base}/fhir")
    look(page, "credentials", found, shot=True)
    consumer = Consumer.objects.select_related("application").get()
    assert (consumer.name, consumer.organisation_type, consumer.ods_code, consumer.rate_limit) == (
        CONSUMER,
        "urgent-care",
        "NHS111N",
        60,
    )
    assert consumer.scope_list == ["slot.read", "appointment.read", "appointment.write"]
    assert list(consumer.slot_types.all()) == [p.consult]
    assert consumer.application.client_id == client_id
    assert consumer.application.client_secret != secret  # only its hash is kept

    # Done: the list, without the secret.
    page.get_by_role("link", name="Done").click()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(CONSUMER)
    expect(rows.first).to_contain_text("Urgent care (e.g. NHS 111) · ODS NHS111N")
    expect(rows.first).to_contain_text("GP consultation")
    expect(rows.first).not_to_contain_text("Physio")
    expect(rows.first).to_contain_text("Never")
    expect(rows.first).to_contain_text("Active")
    assert secret not in page.content()
    look(page, "consumers", found, shot=True)

    # The consumer's system: a token, the free slots of the day with their includes, the patient, a booking.
    api = FhirClient(base, token_of(base, client_id, secret))
    search = api.search_free_slots(p.day)
    assert search.status_code == 200, search.text
    assert search.headers["Content-Type"].startswith(FHIR_JSON)
    bundle = search.json()
    slots = resources_of(bundle, "Slot")
    assert [s["id"] for s in slots] == [str(s.public_id) for s in p.slots]
    assert all(s["status"] == "free" for s in slots)
    for kind in ("Schedule", "Practitioner", "PractitionerRole", "Location", "Organization"):
        assert resources_of(bundle, kind), f"no {kind} included"
    assert resources_of(bundle, "Practitioner")[0]["name"] == [{"text": "Dr Grey"}]
    assert resources_of(bundle, "Location")[0]["name"] == "High Street Surgery"
    chosen = p.slots[1]  # 10:15
    found_patient = api.get("Patient", {"identifier": f"{NHS_NUMBER_SYSTEM}|{NHS_NUMBER}"}).json()
    assert found_patient["total"] == 1
    patient_id = found_patient["entry"][0]["resource"]["id"]
    assert patient_id == str(p.mary.public_id)

    booked = api.send("POST", "Appointment", booking_body(str(chosen.public_id), patient_id))
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    assert appointment["status"] == "booked"
    assert booked.headers["ETag"].startswith('W/"')
    assert booked.headers["Location"].startswith(f"{base}/fhir/Appointment/{appointment['id']}/_history/")
    row = Appointment.objects.get(public_id=appointment["id"])
    assert (row.slot_id, row.patient_id, row.source, row.status) == (
        chosen.pk,
        p.mary.pk,
        AppointmentSource.FHIR,
        AppointmentStatus.BOOKED,
    )
    booking = FhirBooking.objects.get()
    assert (booking.consumer_id, booking.requesting_practitioner, booking.booking_organisation_ods) == (
        consumer.pk,
        REQUESTING["X-Requesting-Practitioner"],
        "NHS111N",
    )
    again = api.search_free_slots(p.day).json()
    assert [s["id"] for s in resources_of(again, "Slot")] == [str(s.public_id) for s in p.slots if s != chosen]

    # Reception's calendar, the day of the slot: the booking, its source badge naming the consumer.
    desk = reception_page(browser, live_server, p.reception)
    desk_errors: list[str] = []
    desk.on("pageerror", lambda error: desk_errors.append(str(error)))
    open_day(desk, base, p.day)
    named = f"Booked through the FHIR API by {CONSUMER}"
    item = desk.locator(f"#slot-{chosen.public_id}")
    expect(item).to_have_class(re.compile(r"\bbooked\b"))
    expect(item).to_contain_text("Seacole")
    expect(item.get_by_role("img", name=named)).to_be_visible()
    expect(item).to_have_attribute("title", re.compile(rf"· booked through the FHIR API by {re.escape(CONSUMER)}$"))
    for other in (p.slots[0], p.slots[2], p.slots[3]):  # the others are free, without a badge
        expect(desk.locator(f"#slot-{other.public_id}")).to_have_attribute("title", re.compile(r"· free$"))
        expect(desk.locator(f"#slot-{other.public_id} .ico-online")).to_have_count(0)
    look(desk, "calendar", found)
    item.scroll_into_view_if_needed()  # the grid scrolls inside the window: the morning of the booking, in view
    screenshot(desk, "calendar", full_page=False)

    # The slot's popup names the consumer beside the patient.
    open_slot_popup(desk, chosen)
    person = tip(desk).locator("ul.people li")
    expect(person).to_have_count(1)
    expect(person).to_contain_text("Seacole")
    expect(person).to_contain_text(f"· {named}")
    check(desk, "calendar day, slot popup of the FHIR booking", found, within="#tip")
    look(desk, "calendar-popup", found, shot=True)
    desk.keyboard.press("Escape")
    expect(tip(desk)).to_be_hidden()

    # The appointment's page: its source in words and the API's own section, with what the consumer said.
    desk.goto(f"{base}/calendar/appointments/{row.public_id}/")
    expect(fact(desk, "Source")).to_contain_text(named)
    section = desk.get_by_role("region", name="Booked through the FHIR API")
    expect(section).to_be_visible()
    expect(section).to_contain_text(CONSUMER)
    expect(section).to_contain_text("Urgent care (e.g. NHS 111)")
    expect(section).to_contain_text("Sore throat, fever for 3 days")
    expect(section).to_contain_text("NHS 111 North")
    expect(section).to_contain_text(REQUESTING["X-Requesting-Practitioner"])
    look(desk, "appointment", found, shot=True)

    # The consumer cancels, naming the version it read (If-Match).
    read = api.get(f"Appointment/{appointment['id']}")
    assert read.status_code == 200 and read.headers["ETag"] == booked.headers["ETag"]
    cancel = {**read.json(), "status": "cancelled", "cancelationReason": {"text": "Feeling better"}}
    no_version = api.send("PUT", f"Appointment/{appointment['id']}", cancel)
    assert no_version.status_code == 428, no_version.text
    cancelled = api.send("PUT", f"Appointment/{appointment['id']}", cancel, **{"If-Match": read.headers["ETag"]})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.headers["ETag"] != read.headers["ETag"]
    row.refresh_from_db()
    assert (row.status, row.cancel_reason) == (AppointmentStatus.CANCELLED, "Feeling better")

    # Reception reloads: the slot is free again, without the badge.
    desk.goto(f"{base}/calendar/?view=day&date={p.day.isoformat()}")
    expect(desk.locator("#calendar")).to_be_visible()
    expect(item).not_to_have_class(re.compile(r"\bbooked\b"))
    expect(item).to_have_attribute("title", re.compile(r"· GP consultation · free$"))
    expect(item.locator(".ico-online")).to_have_count(0)
    expect(item).not_to_contain_text("Seacole")
    assert str(chosen.public_id) in [s["id"] for s in resources_of(api.search_free_slots(p.day).json(), "Slot")]

    # Back on the admin's list: one booking, and a last call.
    page.reload()
    expect(rows.first.locator("td").nth(4)).to_have_text("1")
    expect(rows.first).not_to_contain_text("Never")

    desk.context.close()
    assert found == [], "\n".join(found)
    assert js_errors == [] and desk_errors == []
    assert csp_violations == []


# --- 2. A new secret, then revoked: from the page -----------------------------------------------------------------


def test_a_new_secret_ends_the_old_one_and_revoking_ends_the_token(
    page, practice, live_server, js_errors, csp_violations
):
    p = practice
    base = live_server.url
    found: list[str] = []
    first: Credentials = make_consumer(p.clinic, p.admin, types=[p.consult], name=CONSUMER)
    old_token = token_of(base, first.client_id, first.client_secret)
    assert FhirClient(base, old_token).search_free_slots(p.day).status_code == 200
    page.set_viewport_size(LAPTOP)
    sign_in(page, live_server, p.admin)
    page.goto(f"{base}/clinic/fhir/")
    row = page.locator("table tbody tr", has_text=CONSUMER)

    # "New secret…" asks first; Cancel changes nothing.
    row.get_by_role("link", name="New secret…").click()
    expect(page.get_by_role("heading", level=2)).to_have_text(f"Make a new secret for {CONSUMER}?")
    expect(page.locator("main")).to_contain_text("The current secret stops working at once")
    look(page, "confirm-rotate", found, shot=True)
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(f"{base}/clinic/fhir/")
    assert token_response(base, first.client_id, first.client_secret).status_code == 200

    row.get_by_role("link", name="New secret…").click()
    page.get_by_role("button", name="Make a new secret").click()
    expect(page.get_by_role("heading", level=2)).to_have_text(f"New secret for {CONSUMER}")
    expect(page.get_by_role("status")).to_contain_text("The old secret and the tokens it was given no longer work.")
    expect(fact(page, "Client ID")).to_have_text(first.client_id)
    secret = fact(page, "Client secret").inner_text().strip()
    assert len(secret) >= 32 and secret != first.client_secret
    look(page, "credentials-rotated", found, shot=True)

    # The old secret is refused at the token endpoint, and the token it was given no longer works; the new one does.
    refused = token_response(base, first.client_id, first.client_secret)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_client"
    stale = FhirClient(base, old_token).search_free_slots(p.day)
    assert stale.status_code == 401, stale.text
    assert stale.json()["resourceType"] == "OperationOutcome"
    token = token_of(base, first.client_id, secret)
    api = FhirClient(base, token)
    assert api.search_free_slots(p.day).status_code == 200

    # The edit page says when the secret last changed.
    page.get_by_role("link", name="Done").click()
    row.get_by_role("link", name=CONSUMER).click()
    expect(page.locator("main")).to_contain_text("secret last changed")
    look(page, "consumer-edit", found)

    # "Revoke…" asks first; then it shows as revoked, and its token gets 401.
    page.get_by_role("link", name="Revoke…").click()
    expect(page.get_by_role("heading", level=2)).to_have_text(f"Revoke {CONSUMER}?")
    expect(page.locator("main")).to_contain_text("The appointments it booked stay booked.")
    look(page, "confirm-revoke", found, shot=True)
    page.get_by_role("button", name="Revoke access").click()
    expect(page).to_have_url(f"{base}/clinic/fhir/")
    expect(said(page)).to_have_text(f"Revoked {CONSUMER}: its tokens no longer work.")
    expect(row).to_contain_text("Revoked")
    expect(row).not_to_contain_text("Active")
    expect(row.get_by_role("link", name="New secret…")).to_have_count(0)
    expect(row.get_by_role("link", name="Revoke…")).to_have_count(0)
    look(page, "consumers-revoked", found)
    assert Consumer.objects.get().revoked_at is not None

    gone = api.search_free_slots(p.day)
    assert gone.status_code == 401, gone.text
    assert gone.json()["resourceType"] == "OperationOutcome"
    assert token_response(base, first.client_id, secret).status_code == 401
    assert Application.objects.get(client_id=first.client_id).accesstoken_set.count() == 0

    # The revoked consumer's page: no Save, no New secret, no Revoke; the rotate address sends back to the list.
    row.get_by_role("link", name=CONSUMER).click()
    expect(page.get_by_role("status").first).to_contain_text("Revoked on")
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    expect(page.get_by_role("link", name="New secret…")).to_have_count(0)
    page.goto(f"{base}/clinic/fhir/{Consumer.objects.get().public_id}/rotate/")
    expect(page).to_have_url(f"{base}/clinic/fhir/")
    expect(said(page)).to_contain_text(f"{CONSUMER} is revoked")

    assert found == [], "\n".join(found)
    assert js_errors == []
    assert csp_violations == []


# --- 3. Every page of the consumers, and their states, pass axe-core ------------------------------------------------


def test_the_consumer_pages_pass_axe(page, practice, live_server, js_errors, csp_violations):
    p = practice
    base = live_server.url
    found: list[str] = []
    page.set_viewport_size(LAPTOP)
    sign_in(page, live_server, p.admin)

    page.goto(f"{base}/clinic/fhir/")
    expect(page.locator(".empty")).to_be_visible()
    look(page, "consumers, none yet", found)

    # The form as it opens, then submitted empty: every error said, next to its field.
    page.get_by_role("link", name="Add the first one").click()
    look(page, "add form", found)
    page.get_by_label("Name", exact=True).fill("")
    for scope in ("slot.read", "appointment.read", "appointment.write"):
        page.get_by_role("checkbox", name=re.compile(rf"\({re.escape(scope)}\)")).uncheck()
    page.get_by_label("Calls per minute").fill("")
    page.get_by_role("button", name="Add consumer and show its secret").click()
    errors = page.locator(".errorlist li")
    expect(errors).to_have_text(
        [
            "This field is required.",
            "Choose at least one scope.",
            "Choose at least one slot type.",
            "This field is required.",
        ]
    )
    expect(page.get_by_role("alert")).to_have_count(4)
    look(page, "add form with errors", found, shot=True)
    assert Consumer.objects.count() == 0

    # Added (the credentials page), listed, its page, and both confirmations.
    page.get_by_label("Name", exact=True).fill(CONSUMER)
    for scope in ("slot.read", "appointment.write"):
        page.get_by_role("checkbox", name=re.compile(rf"\({re.escape(scope)}\)")).check()
    page.get_by_role("checkbox", name="GP consultation").check()
    page.get_by_label("Calls per minute").fill("120")
    page.get_by_role("button", name="Add consumer and show its secret").click()
    expect(page.get_by_role("heading", level=2)).to_have_text(f"{CONSUMER} may now call the FHIR API")
    look(page, "credentials", found)
    consumer = Consumer.objects.get()
    assert consumer.scope_list == ["slot.read", "appointment.write"]
    page.get_by_role("link", name="Done").click()
    expect(page.locator("table tbody tr")).to_have_count(1)
    look(page, "consumers, one", found)
    page.goto(f"{base}/clinic/fhir/{consumer.public_id}/")
    look(page, "consumer's page", found)
    page.goto(f"{base}/clinic/fhir/{consumer.public_id}/rotate/")
    look(page, "confirm new secret", found)
    page.goto(f"{base}/clinic/fhir/{consumer.public_id}/revoke/")
    look(page, "confirm revoke", found)

    # An appointment it booked (over HTTP): its page, with the API's section.
    api = FhirClient(base, token_of(base, consumer.application.client_id, fact_secret(page, base, consumer)))
    booked = api.send("POST", "Appointment", booking_body(str(p.slots[0].public_id), str(p.mary.public_id)))
    assert booked.status_code == 201, booked.text
    page.goto(f"{base}/calendar/appointments/{booked.json()['id']}/")
    expect(page.get_by_role("region", name="Booked through the FHIR API")).to_contain_text(
        "Sore throat, fever for 3 days"
    )
    look(page, "appointment with the FHIR section", found)

    assert found == [], "\n".join(found)
    assert js_errors == []
    assert csp_violations == []


def fact_secret(page: Page, base: str, consumer: Consumer) -> str:
    """A fresh secret of the consumer, made on its page (the one shown when it was added is gone)."""
    page.goto(f"{base}/clinic/fhir/{consumer.public_id}/rotate/")
    page.get_by_role("button", name="Make a new secret").click()
    return fact(page, "Client secret").inner_text().strip()
