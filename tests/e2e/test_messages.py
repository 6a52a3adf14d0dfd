"""Messages to patients in the browser: reception finds a booking's confirmation on the Messages page and opens
it, sends a failed text again from the appointment page; an admin edits the wording and the preview follows as
they type. Each page passes axe-core (no serious or critical violation) at a laptop's and a tablet's width."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from playwright.sync_api import Page, ViewportSize, expect

from clinic.models import Role
from notifications.models import Channel, Kind, Message, Status
from scheduling.services.booking import BookingRequest, appointment_book
from tests.conftest import ALL_PERMISSIONS, tasks_in_process
from tests.e2e.calendar_browser import sign_in
from tests.factories import ClinicFactory, MembershipFactory, PatientFactory, PractitionerFactory, allocate_session

pytestmark = pytest.mark.django_db(transaction=True)

AXE = Axe()
LAPTOP = ViewportSize(width=1280, height=800)
TABLET = ViewportSize(width=820, height=1180)
SHOTS = os.environ.get("SHOTS_DIR", "")  # screenshots for a person to look at, when asked for


def axe_problems(page: Page, where: str) -> list[str]:
    results = AXE.run(page)
    return [
        f"{v['id']} ({v['impact']}) at {where}: {' '.join(node['html'].split())[:100]}"
        for v in results.response["violations"]
        if v["impact"] in {"serious", "critical"}
        for node in v["nodes"]
    ]


def at_both_widths(page: Page, where: str, found: list[str], shot: str = "") -> None:
    for name, size in (("laptop", LAPTOP), ("tablet", TABLET)):
        page.set_viewport_size(size)
        found += axe_problems(page, f"{where} ({name})")
        # Nothing wider than the window: a tablet never scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), f"{where} ({name})"
        if SHOTS and shot:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{SHOTS}/{shot}-{name}.png", full_page=True)
    page.set_viewport_size(LAPTOP)


@pytest.fixture(autouse=True)
def sends_in_this_process() -> Iterator[None]:
    """Messages are sent in this process (and in the live server's thread), even when REDIS_URL names a broker."""
    with tasks_in_process():
        yield


@pytest.fixture
def world():
    clinic = ClinicFactory(name="Harbour Surgery", slug="harbour", time_zone="Europe/London")
    admin = MembershipFactory(clinic=clinic, role=Role.ADMIN, **ALL_PERMISSIONS)
    reception = MembershipFactory(clinic=clinic, role=Role.RECEPTION, perm_manage_appointments=True)
    practitioner = PractitionerFactory(clinic=clinic, name="Dr Rivers")
    day = timezone.now().date() + dt.timedelta(days=6)
    session = allocate_session(clinic, practitioner=practitioner, day=day, start=dt.time(10))
    nadia = PatientFactory(
        clinic=clinic, first_name="Nadia", last_name="Quist", email="nadia@example.org", mobile_phone="07700 900123"
    )
    # Booked through the booking service: the confirmation is recorded in its transaction and sent after commit.
    appointment = appointment_book(
        clinic=clinic,
        actor=reception.user,
        membership=reception,
        request=BookingRequest(slot=session.slots.order_by("starts_at").first(), patient=nadia),
    )
    return {"clinic": clinic, "admin": admin, "reception": reception, "appointment": appointment, "nadia": nadia}


def test_reception_finds_the_confirmation_and_sends_a_failed_text_again(page: Page, live_server, world, js_errors):
    appointment = world["appointment"]
    email = Message.objects.get(appointment=appointment, channel=Channel.EMAIL, kind=Kind.CONFIRMATION)
    assert email.status == Status.SENT
    text = Message.objects.get(appointment=appointment, channel=Channel.SMS)
    Message.objects.filter(pk=text.pk).update(status=Status.FAILED, detail="Twilio reports the text undelivered.")
    found: list[str] = []
    sign_in(page, live_server, world["reception"])

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Messages").click()
    expect(page.get_by_role("heading", name="Messages to patients")).to_be_visible()
    rows = page.locator("table.message-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.get_by_text("Times in Europe/London")).to_be_visible()
    at_both_widths(page, "Messages", found, shot="messages")

    # The status filter narrows the list in place (htmx) and keeps the address.
    page.get_by_label("Status").select_option("problems")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"status=problems"))
    expect(rows.first).to_contain_text("Twilio reports the text undelivered.")
    page.get_by_label("Status").select_option("")
    expect(rows).to_have_count(2)

    email_row = rows.filter(has_text="by Email")
    email_row.get_by_role("link", name=re.compile("^Open")).click()
    expect(page.get_by_role("heading", name="Booking confirmation by Email")).to_be_visible()
    expect(page.locator(".message-text")).to_contain_text("Dear Nadia")
    at_both_widths(page, "a message", found)

    page.get_by_role("link", name=re.compile(r"^\d|^[A-Z][a-z]{2} ")).first.click()  # the appointment's time
    expect(page.get_by_role("heading", name="Messages to the patient")).to_be_visible()
    at_both_widths(page, "the appointment", found)
    page.get_by_role("link", name=re.compile("Send again")).click()
    expect(page.get_by_role("heading", name="Send the booking confirmation again?")).to_be_visible()
    at_both_widths(page, "send again", found)
    page.get_by_role("button", name="Send again").click()
    expect(page.get_by_text("will be sent again now")).to_be_visible()
    expect(page.get_by_role("heading", name="Messages to the patient")).to_be_visible()
    text.refresh_from_db()
    assert text.status in (Status.WAITING, Status.SENT) and text.detail != "Twilio reports the text undelivered."

    page.goto(f"{live_server.url}/patients/{world['nadia'].public_id}/")
    section = page.locator("section.patient-messages")
    expect(section.get_by_text("nadia@example.org")).to_be_visible()
    section.get_by_label("By SMS").uncheck()
    section.get_by_role("button", name="Save choices").click()
    expect(page.get_by_text("Saved how")).to_be_visible()
    expect(page.locator("section.patient-messages table")).to_contain_text("Recorded by reception")
    at_both_widths(page, "the patient", found)
    assert found == [], "\n".join(found)
    assert js_errors == []


def test_an_admin_edits_the_wording_and_the_preview_follows(page: Page, live_server, world, js_errors):
    found: list[str] = []
    sign_in(page, live_server, world["admin"])
    page.goto(f"{live_server.url}/clinic/")
    page.get_by_role("navigation", name="Clinic admin").get_by_role("link", name="Messages to patients").click()
    expect(page.get_by_role("heading", name="Messages to patients")).to_be_visible()
    preview = page.locator("#preview")
    expect(preview.locator("[data-preview=email]")).to_contain_text("Dear Nadia")
    expect(page.get_by_text("In the time zone of the appointment's location")).to_be_visible()
    at_both_widths(page, "Messages to patients", found, shot="settings")

    words = page.locator("#id_wording_confirmation")
    words.fill("Hello {first_name}, we look forward to {when} with {practitioner}.")
    expect(preview.locator("[data-preview=email]")).to_contain_text("Hello Nadia, we look forward to")
    expect(preview.locator("[data-preview=sms]")).to_contain_text("with Dr Rivers.")

    page.get_by_label("Message", exact=True).select_option(Kind.REMINDER)
    expect(preview.locator("[data-preview=sms]")).to_contain_text("this is a reminder")

    words.fill("Hello {first_name}, see {doctor} soon.")
    expect(preview).to_contain_text("Fix the marked fields")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Unknown placeholder {doctor}")).to_be_visible()
    at_both_widths(page, "Messages to patients, refused", found)

    page.locator("#id_wording_confirmation").fill("Hello {first_name}, see you {when}.")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings for messages to patients saved.")).to_be_visible()
    assert found == [], "\n".join(found)
    assert js_errors == []
