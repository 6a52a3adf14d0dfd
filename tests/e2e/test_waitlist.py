"""Waiting lists, offers, closed groups and the roster (issue 22), in Chromium, the way reception and patients use them.

A weekly DBT skills group (two places, both taken by Nadia and Oscar) met twice already and meets again tomorrow.
Reception adds Priya to the waiting list from the full slot's popup; Nadia's place is cancelled from the calendar,
so Priya is offered it by email (a real SMTP server, aiosmtpd, in this process) and takes it from her phone; another
time she lets it go and leaves the list, and Ravi (waiting for any occurrence) is offered it next. An enforced closed
group refuses a new patient to reception, takes one from an admin with a reason, and takes a member without one. The
roster marks attendance in place (htmx) and downloads as CSV. Every page passes axe-core with no serious or critical
violation and never scrolls sideways on a laptop.

Screenshots for a person to look at: SHOTS_DIR=/tmp/wl-shots.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from clinic.models import AuditEvent, Clinic, Membership, Role
from notifications.models import NotificationSettings
from patients.models import Patient
from scheduling.models import (
    Appointment,
    AppointmentSource,
    AppointmentStatus,
    HoldOutcome,
    SeriesScope,
    Session,
    Slot,
    WaitlistEntry,
    WaitlistKind,
    WaitlistOffer,
    WaitlistState,
)
from scheduling.services.booking import BookingRequest, appointment_book, appointment_cancel
from scheduling.services.rota import AllocationRequest, allocation_create
from scheduling.services.waitlist import EntryData, waitlist_add
from sessions_setup.models import SlotType
from tests.conftest import ALL_PERMISSIONS, tasks_in_process
from tests.e2e.calendar_browser import BROWSER_ZONE, mark_page, settle_after, sign_in, still_marked, tip
from tests.e2e.test_accessibility import check
from tests.factories import (
    ClinicFactory,
    LocationFactory,
    MembershipFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    book,
    template_with_slots,
)
from tests.smtp_server import SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)

LAPTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
SHOTS = os.environ.get("SHOTS_DIR", "")  # screenshots for a person to look at, when asked for
OFFER_SUBJECT = "place has come free"
LONDON = ZoneInfo("Europe/London")


@pytest.fixture(autouse=True)
def sends_in_this_process() -> Iterator[None]:
    """Messages are sent in the live server's thread after each commit, even when REDIS_URL names a broker."""
    with tasks_in_process():
        yield


@dataclass
class Group:
    """DBT skills with Sam Reid, Thursdays... or whichever weekday tomorrow is: five weekly occurrences at 10:00
    London, two past, tomorrow's and two later; Nadia and Oscar hold both places in each."""

    clinic: Clinic
    reception: Membership  # without "Schedule Admin: Manage Appointments"
    admin: Membership  # with every permission
    dbt: SlotType
    slots: list[Slot]  # one per occurrence, in date order
    past: Slot  # last week's
    slot: Slot  # tomorrow's, full
    nadia: Patient
    oscar: Patient
    priya: Patient
    ravi: Patient


def weekly(
    clinic, template, practitioner, location, first: dt.date, weeks: int, start: dt.time = dt.time(10)
) -> list[Session]:
    request = AllocationRequest(
        template,
        practitioner,
        location,
        start,
        first,
        first + dt.timedelta(weeks=weeks - 1),
        (first.isoweekday(),),
        1,
    )
    allocation = allocation_create(clinic=clinic, actor=None, request=request)
    return list(allocation.sessions.order_by("starts_at"))


def person(clinic, first: str, last: str) -> Patient:
    return PatientFactory.create(clinic=clinic, first_name=first, last_name=last, email=f"{first.lower()}@example.org")


@pytest.fixture
def group(settings, live_server, smtp):  # -> Group; untyped, as factory_boy types what it makes as the factory
    settings.SITE_URL = live_server.url  # the links in the emails lead to this server
    clinic = ClinicFactory(name="Riverbank Surgery", slug="riverbank", time_zone="Europe/London")
    # No quiet hours (offers wait for them to end), and no texts: the tests run at any time of day.
    NotificationSettings.objects.filter(clinic=clinic).update(
        sms_on=False, quiet_from=dt.time(0), quiet_until=dt.time(0)
    )
    surgery = LocationFactory(clinic=clinic, name="Riverbank Surgery", time_zone="Europe/London")
    dbt = SlotTypeFactory(clinic=clinic, name="DBT skills", capacity=2, default_length_minutes=60, colour="purple")
    therapist = PractitionerFactory(clinic=clinic, name="Sam Reid", role="therapist", default_location=surgery)
    template = template_with_slots(clinic, [dbt], name="DBT group")
    tomorrow = clinic.today() + dt.timedelta(days=1)
    sessions = weekly(clinic, template, therapist, surgery, tomorrow - dt.timedelta(weeks=2), 5)
    slots = [s.slots.get() for s in sessions]
    nadia, oscar = person(clinic, "Nadia", "Quist"), person(clinic, "Oscar", "Berg")
    for slot in slots:
        for patient in (nadia, oscar):
            if slot.starts_at < sessions[2].starts_at:  # the past: the rows alone, as they were booked then
                book(slot, patient)
            else:
                request = BookingRequest(slot=slot, patient=patient)
                appointment_book(clinic=clinic, actor=None, membership=None, request=request, tell=False)
    reception = MembershipFactory(
        clinic=clinic, role=Role.RECEPTION, user__first_name="Rita", user__last_name="Reception"
    )
    admin = MembershipFactory(
        clinic=clinic, role=Role.ADMIN, user__first_name="Alice", user__last_name="Admin", **ALL_PERMISSIONS
    )
    for slot in slots:
        slot.refresh_from_db()
    return Group(
        clinic=clinic,
        reception=reception,
        admin=admin,
        dbt=dbt,
        slots=slots,
        past=slots[1],
        slot=slots[2],
        nadia=nadia,
        oscar=oscar,
        priya=person(clinic, "Priya", "Singh"),
        ravi=person(clinic, "Ravi", "Shah"),
    )


def wait_for(g: Group, patient: Patient, **data) -> WaitlistEntry:
    return waitlist_add(
        clinic=g.clinic, actor=g.admin.user, membership=g.admin, data=EntryData(patient=patient, **data)
    )


def line_of_two(g: Group) -> tuple[WaitlistEntry, WaitlistEntry]:
    """Priya waits for tomorrow's place, then Ravi for any occurrence of the group."""
    priya = wait_for(g, g.priya, kind=WaitlistKind.SLOT, slot=g.slot, note="Can come at short notice")
    ravi = wait_for(
        g,
        g.ravi,
        kind=WaitlistKind.SERIES,
        allocation=g.slot.session.allocation,
        slot_type=g.dbt,
        scope=SeriesScope.ANY,
    )
    return priya, ravi


# --- What every page on the way is checked for --------------------------------------------------------------------


def look(page: Page, name: str, found: list[str], *, shot: bool = False) -> None:
    """axe-core and unnamed controls (added to `found`), nothing wider than the window, and a screenshot when asked
    for (SHOTS_DIR)."""
    check(page, name, found)
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if width[0] > width[1]:
        found.append(f"{name}: {width[0]} px of content in a {width[1]} px window")
    if shot and SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def said(page: Page):
    """The page's messages (Django's messages framework, in a role=status region)."""
    return page.locator("main > [role=status] .messages")


def plain_text(message) -> str:
    body = message.get_body(("plain",))
    return body.get_content() if body is not None else ""


def offer_link(smtp: SmtpServer, address: str, *, count: int = 1) -> str:
    """The link in the `count`-th offer email to an address, once it has come."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        offers = [r for r in smtp.to(address) if OFFER_SUBJECT in plain_text(r.message)]
        if len(offers) >= count:
            found = re.search(r"https?://\S+/offer/\S+/", plain_text(offers[count - 1].message))
            assert found is not None, "the offer email has no link"
            return found.group(0)
        time.sleep(0.05)
    raise AssertionError(f"no offer email to {address}: {[r.subject for r in smtp.to(address)]}")


def day_month(slot: Slot) -> str:
    """How the roster heads a date: "Thu 10 Jun"."""
    local = slot.starts_at.astimezone(LONDON)
    return f"{local:%a} {local.day} {local:%b}"


def open_slot_popup(page: Page, base: str, slot: Slot) -> None:
    """The calendar's day of the slot, and the slot's popup."""
    page.goto(f"{base}/calendar/?view=day&date={slot.session.date.isoformat()}")
    expect(page.locator("body")).to_have_attribute("data-viewer-zone", BROWSER_ZONE)
    settle_after(page, lambda: page.locator(f"#slot-{slot.public_id}").click())
    expect(tip(page)).to_be_visible()


def phone(browser: Browser, base: str):
    """A patient's phone: a new context, signed out, phone-sized."""
    return browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, timezone_id=BROWSER_ZONE, base_url=base)


# --- 1. Reception puts a patient on the waiting list of a full group ----------------------------------------------


def test_reception_adds_a_patient_from_the_full_slot_and_the_list_shows_them(
    page, group, live_server, js_errors, csp_violations
):
    g = group
    base = live_server.url
    found: list[str] = []
    page.set_viewport_size(LAPTOP)
    sign_in(page, live_server, g.reception)

    open_slot_popup(page, base, g.slot)
    expect(tip(page).locator(".waitlist-count")).to_have_text("Full · 0 waiting")
    expect(tip(page)).to_contain_text("This group is full.")
    tip(page).get_by_role("link", name="Add to waiting list…").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Add to the waiting list")
    expect(page.locator("main")).to_contain_text("DBT skills with Sam Reid")
    expect(page.locator("main")).to_contain_text("2/2 booked")
    look(page, "waitlist-add-search", found)
    box = page.get_by_label("Find the patient")
    expect(box).to_be_focused()  # autofocus: type straight away
    page.keyboard.type("singh")
    page.keyboard.press("Enter")
    pick = page.get_by_role("link", name=re.compile(r"^Singh, Priya"))
    expect(pick).to_have_count(1)
    look(page, "waitlist-add-results", found)
    pick.click()

    expect(page.get_by_text("Priya Singh", exact=True)).to_be_visible()
    kinds = page.get_by_role("radio")
    expect(page.get_by_role("radio", name="This slot only")).to_be_checked()
    expect(page.get_by_role("radio", name="Any occurrence of this group")).to_be_visible()
    assert kinds.count() == 4
    look(page, "waitlist-add-form", found, shot=True)
    page.get_by_label("Note").fill("Can come at short notice")
    page.get_by_role("button", name="Add to the waiting list").click()

    # The entry's page: what she waits for, and no place to offer (the group is full).
    expect(said(page)).to_have_text("Priya Singh is on the waiting list.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Priya Singh")
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text(f"DBT skills with Sam Reid, {g.slot.starts_at.astimezone(LONDON):%a %-d %b %Y} 10:00")
    expect(facts).to_contain_text("Waiting")
    expect(facts).to_contain_text("Can come at short notice")
    expect(page.get_by_text("No free place fits at the moment.")).to_be_visible()
    expect(page.get_by_text("No place has been offered yet.")).to_be_visible()
    look(page, "waitlist-entry-waiting", found)
    entry = WaitlistEntry.objects.get()
    assert (entry.patient_id, entry.kind, entry.slot_id, entry.state) == (
        g.priya.pk,
        WaitlistKind.SLOT,
        g.slot.pk,
        WaitlistState.WAITING,
    )
    assert (entry.note, entry.added_by_id, entry.position) == ("Can come at short notice", g.reception.user_id, 1)

    # Ravi, from the popup again, for any occurrence of the group: second in line.
    open_slot_popup(page, base, g.slot)
    expect(tip(page).locator(".waitlist-count")).to_have_text("Full · 1 waiting")
    tip(page).get_by_role("link", name="Add to waiting list…").click()
    page.get_by_label("Find the patient").fill("shah")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=re.compile(r"^Shah, Ravi")).click()
    page.get_by_role("radio", name="Any occurrence of this group").check()
    page.get_by_role("button", name="Add to the waiting list").click()
    expect(said(page)).to_have_text("Ravi Shah is on the waiting list.")

    # The list, in offer order; Ravi moved up with the keyboard, then back down.
    page.get_by_role("link", name="Back to the waiting list").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Waiting list")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("1 Priya Singh")
    expect(rows.nth(0)).to_contain_text("Can come at short notice")
    expect(rows.nth(0)).to_contain_text("by Rita Reception")
    expect(rows.nth(1)).to_contain_text("2 Ravi Shah")
    expect(rows.nth(1)).to_contain_text("Group “DBT group” with Sam Reid (DBT skills), any occurrence")
    expect(page.get_by_role("button", name="Move Priya Singh up")).to_be_disabled()
    expect(page.get_by_role("button", name="Move Ravi Shah down")).to_be_disabled()
    look(page, "waitlist-list", found, shot=True)
    page.get_by_role("button", name="Move Ravi Shah up").focus()
    page.keyboard.press("Enter")
    expect(rows.nth(0)).to_contain_text("1 Ravi Shah")
    expect(rows.nth(1)).to_contain_text("2 Priya Singh")
    assert list(WaitlistEntry.objects.order_by("position").values_list("patient_id", flat=True)) == [
        g.ravi.pk,
        g.priya.pk,
    ]
    page.get_by_role("button", name="Move Ravi Shah down").click()
    expect(rows.nth(0)).to_contain_text("1 Priya Singh")

    # The popup counts both (Ravi waits for any occurrence, tomorrow's included).
    open_slot_popup(page, base, g.slot)
    expect(tip(page).locator(".waitlist-count")).to_have_text("Full · 2 waiting")
    check(page, "slot popup with people waiting", found, within="#tip")

    assert found == [], "\n".join(found)
    assert js_errors == []
    assert csp_violations == []


# --- 2. A cancellation is offered to the first in line, who takes it from her phone --------------------------------


def test_a_cancelled_place_is_offered_to_the_first_in_line_who_takes_it_on_her_phone(
    page, browser, group, smtp, live_server, js_errors, csp_violations
):
    g = group
    base = live_server.url
    found: list[str] = []
    priya, ravi = line_of_two(g)
    page.set_viewport_size(LAPTOP)
    sign_in(page, live_server, g.reception)

    # Nadia rings to cancel: the slot's popup, her appointment, Cancel…
    open_slot_popup(page, base, g.slot)
    expect(tip(page).locator(".waitlist-count")).to_have_text("Full · 2 waiting")
    settle_after(page, lambda: tip(page).get_by_role("link", name="Nadia Quist").click())
    settle_after(page, lambda: tip(page).get_by_role("link", name="Cancel…").click())
    tip(page).get_by_label("Reason for cancelling").fill("Moving house that week")
    tip(page).get_by_role("button", name="Cancel appointment").click()
    expect(page.get_by_text(re.compile(r"Cancelled Nadia Quist on .*; the place is free again\."))).to_be_visible()
    cancelled = Appointment.objects.get(slot=g.slot, patient=g.nadia)
    assert cancelled.status == AppointmentStatus.CANCELLED

    # Priya, first in line, is offered the place at once: held for her, the entry waits for her answer.
    offer = WaitlistOffer.objects.select_related("hold").get()
    assert (offer.entry_id, offer.slot_id, offer.hold.ended_at, offer.offered_by_id) == (
        priya.pk,
        g.slot.pk,
        None,
        None,
    )
    g.slot.refresh_from_db()
    assert (g.slot.booked_count, g.slot.held_count) == (2, 1)
    page.goto(f"{base}/calendar/waitlist/")
    rows = page.locator("table tbody tr")
    expect(rows.nth(0)).to_contain_text("Priya Singh")
    expect(rows.nth(0)).to_contain_text("Offered until")
    expect(rows.nth(0)).to_contain_text("1 offer so far")
    expect(rows.nth(1)).to_contain_text("Waiting")
    rows.nth(0).get_by_role("link", name="Priya Singh").click()
    offers = page.get_by_role("region", name="Offers")
    expect(offers).to_contain_text("offered")
    expect(offers).to_contain_text("automatically: waiting for an answer until")
    expect(page.locator("dl.facts")).to_contain_text("Offered")
    look(page, "waitlist-entry-offered", found, shot=True)

    # The email's link, on her phone, signed out: she takes the place.
    link = offer_link(smtp, "priya@example.org")
    assert link.startswith(base + "/riverbank/offer/") or "/offer/" in link
    context = phone(browser, base)
    mobile = context.new_page()
    mobile_errors: list[str] = []
    mobile.on("pageerror", lambda error: mobile_errors.append(str(error)))
    mobile.goto(link)
    expect(mobile.get_by_role("heading", level=1)).to_have_text("A place has come free")
    expect(mobile.locator(".chosen")).to_contain_text("DBT skills (a group)")
    expect(mobile.locator(".chosen")).to_contain_text(f"{g.slot.starts_at.astimezone(LONDON):%A %-d %B %Y}, 10:00")
    expect(mobile.locator(".chosen")).to_contain_text("Sam Reid · Riverbank Surgery")
    look(mobile, "offer-phone", found, shot=True)
    take = mobile.get_by_role("button", name="Take this place")
    assert take.bounding_box()["height"] >= 40, "a finger-sized button"
    take.click()
    expect(mobile.get_by_role("heading", level=1)).to_have_text("Your appointment is booked")
    expect(mobile.get_by_role("status")).to_contain_text("it is booked for you")
    expect(mobile.get_by_role("button", name="Take this place")).to_have_count(0)
    look(mobile, "offer-phone-taken", found, shot=True)
    context.close()

    priya.refresh_from_db()
    assert priya.state == WaitlistState.BOOKED
    booked = priya.appointment
    assert (booked.slot_id, booked.patient_id, booked.source) == (g.slot.pk, g.priya.pk, AppointmentSource.WAITLIST)
    offer.hold.refresh_from_db()
    assert offer.hold.outcome == HoldOutcome.ACCEPTED
    g.slot.refresh_from_db()
    assert (g.slot.booked_count, g.slot.held_count) == (2, 0)
    ravi.refresh_from_db()
    assert ravi.state == WaitlistState.WAITING  # nothing more came free

    # Her entry says so; the roster shows her in tomorrow's column, and Nadia no longer in it.
    page.reload()
    expect(page.locator("dl.facts")).to_contain_text("Booked · the appointment")
    expect(page.get_by_role("region", name="Offers")).to_contain_text("accepted")
    open_slot_popup(page, base, g.slot)
    expect(tip(page).locator(".waitlist-count")).to_have_text("Full · 1 waiting")
    tip(page).get_by_role("link", name="Roster").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Roster: DBT group · DBT skills")
    heads = page.locator("table.roster thead th")
    expect(heads.nth(3)).to_have_attribute("aria-current", "true")
    expect(heads.nth(3)).to_contain_text(day_month(g.slot))
    priya_row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Priya Singh"))
    expect(priya_row.locator("td").nth(2)).to_contain_text("Booked")
    for other in (0, 1, 3, 4):
        expect(priya_row.locator("td").nth(other)).to_have_text("—")
    nadia_row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Nadia Quist"))
    expect(nadia_row.locator("td").nth(2)).to_have_text("—")
    expect(nadia_row.locator("td").nth(3)).to_contain_text("Booked")
    places = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Places"))
    expect(places.locator("td").nth(2)).to_have_text("2/2")
    look(page, "roster", found, shot=True)

    assert found == [], "\n".join(found)
    assert js_errors == [] and mobile_errors == []
    assert csp_violations == []


# --- 3. Let it go: the next in line is offered it; reception takes the next off the list ---------------------------


def test_letting_the_place_go_offers_it_to_the_next_and_reception_takes_them_off(
    page, browser, group, smtp, live_server, js_errors, csp_violations
):
    g = group
    base = live_server.url
    found: list[str] = []
    priya, ravi = line_of_two(g)
    nadia = Appointment.objects.get(slot=g.slot, patient=g.nadia)
    appointment_cancel(clinic=g.clinic, actor=g.admin.user, appointment=nadia, reason="Moving house")

    context = phone(browser, base)
    mobile = context.new_page()
    mobile.goto(offer_link(smtp, "priya@example.org"))
    mobile.get_by_role("button", name="Let it go").click()
    # Asked first: nothing is let go yet.
    expect(mobile.get_by_text("Let this place go?")).to_be_visible()
    assert WaitlistOffer.objects.get(entry=priya).hold.ended_at is None
    look(mobile, "offer-phone-let-go", found, shot=True)
    mobile.get_by_role("checkbox", name="Also take me off the waiting list").check()
    mobile.get_by_role("button", name="Yes, let it go").click()
    expect(mobile.get_by_role("status")).to_have_text(
        "Thank you for letting us know: the place will go to the next person waiting."
    )
    expect(mobile.get_by_role("button", name="Take this place")).to_have_count(0)
    look(mobile, "offer-phone-let-go-done", found)

    priya.refresh_from_db()
    assert priya.state == WaitlistState.REMOVED
    assert WaitlistOffer.objects.get(entry=priya).hold.outcome == HoldOutcome.DECLINED
    ravi_offer = WaitlistOffer.objects.select_related("hold").get(entry=ravi)
    assert (ravi_offer.slot_id, ravi_offer.hold.ended_at) == (g.slot.pk, None)
    ravi_link = offer_link(smtp, "ravi@example.org")

    # Reception (an admin here) sees Ravi offered, Priya gone; Ravi changed his mind on the phone: off the list.
    page.set_viewport_size(LAPTOP)
    sign_in(page, live_server, g.admin)
    page.goto(f"{base}/calendar/waitlist/")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("Ravi Shah")
    expect(rows.nth(0)).to_contain_text("Offered")
    page.get_by_label("Show").select_option(label="Taken off the list")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("Priya Singh")
    page.get_by_label("Show").select_option(label="Waiting or offered")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("link", name="Ravi Shah").click()
    expect(page.get_by_role("region", name="Offers")).to_contain_text("waiting for an answer")
    page.get_by_role("link", name="Take off the list…").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Take Ravi Shah off the waiting list?")
    expect(page.get_by_text("They have an offer out")).to_be_visible()
    look(page, "waitlist-remove", found, shot=True)
    page.get_by_role("link", name="No, keep them").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ravi Shah")
    page.get_by_role("link", name="Take off the list…").click()
    page.get_by_role("button", name="Yes, take them off").click()
    expect(said(page)).to_have_text("Ravi Shah is off the waiting list.")
    expect(page.get_by_text("Nobody is waiting.")).to_be_visible()
    look(page, "waitlist-empty", found)

    ravi.refresh_from_db()
    assert ravi.state == WaitlistState.REMOVED
    ravi_offer.hold.refresh_from_db()
    assert ravi_offer.hold.outcome == HoldOutcome.WITHDRAWN
    g.slot.refresh_from_db()
    assert (g.slot.booked_count, g.slot.held_count) == (1, 0)  # nobody left: the place is free for anyone

    # Ravi's link now says the place is not kept for him.
    mobile.goto(ravi_link)
    expect(mobile.get_by_text("This place is no longer being kept for you.")).to_be_visible()
    expect(mobile.get_by_role("button", name="Take this place")).to_have_count(0)
    context.close()

    # The admin's rules for offers.
    page.get_by_role("link", name="Rules for offers").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rules for waiting-list offers")
    look(page, "waitlist-rules", found, shot=True)
    page.get_by_role("button", name="Save").click()
    expect(said(page)).to_have_text("Saved the waiting list's rules.")

    assert found == [], "\n".join(found)
    assert js_errors == []
    assert csp_violations == []


# --- 4. An enforced closed group ----------------------------------------------------------------------------------


@pytest.fixture
def closed(group):
    """A closed, enforced group of four places (CBT group, Sam Reid): it began last week with Nadia, and meets
    tomorrow and the week after with places free."""
    g = group
    cbt = SlotTypeFactory(clinic=g.clinic, name="CBT group", capacity=4, default_length_minutes=60, colour="teal")
    template = template_with_slots(g.clinic, [cbt], name="CBT closed group", closed_session=True, closed_enforced=True)
    practitioner = g.slot.session.practitioner
    first = g.slot.session.date - dt.timedelta(weeks=1)
    sessions = weekly(g.clinic, template, practitioner, g.slot.session.location, first, 3, dt.time(14))
    assert all(s.closed_session and s.closed_enforced for s in sessions)
    book(sessions[0].slots.get(), g.nadia)
    return sessions


def choose_patient(page: Page, typed: str, listed: str) -> None:
    box = page.get_by_label("Find the patient")
    box.press_sequentially(typed, delay=30)
    pick = page.locator("#booking-results").get_by_role("link", name=listed)
    expect(pick).to_have_count(1)
    settle_after(page, pick.click)
    expect(page.get_by_role("region", name="Patient")).to_be_visible()


def test_an_enforced_closed_group_refuses_reception_takes_an_admins_reason_and_keeps_its_members(
    page, group, closed, live_server, js_errors, csp_violations
):
    g = group
    base = live_server.url
    found: list[str] = []
    future = closed[1].slots.get()
    began = f"{closed[0].date:%a} {closed[0].date.day} {closed[0].date:%b %Y}"
    page.set_viewport_size(LAPTOP)

    # Reception, without "Schedule Admin: Manage Appointments": refused, and nothing offered to try.
    sign_in(page, live_server, g.reception)
    page.goto(f"{base}/calendar/slots/{future.public_id}/")
    expect(page.locator(".slot-tip")).to_contain_text(f"Closed group. It began on {began}")
    page.get_by_role("link", name="Book Appointment").click()
    choose_patient(page, "singh", "Singh, Priya")
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text(f"This group is closed: it began on {began}")
    expect(refusal).to_contain_text("Only a member with “Schedule Admin: Manage Appointments” can add a new patient")
    expect(page.get_by_label("Reason to add a new patient to this closed group")).to_have_count(0)
    look(page, "book-closed-refused", found, shot=True)
    # Nothing to try: no form, no Review, no series; choosing another patient is the way on.
    expect(page.get_by_role("button", name="Review")).to_have_count(0)
    expect(page.get_by_role("button", name="Create Recurring Series")).to_have_count(0)
    expect(page.get_by_role("link", name="Choose another patient")).to_be_visible()
    assert not Appointment.objects.filter(slot=future, patient=g.priya).exists()

    # A member of the group is booked without a reason.
    page.goto(f"{base}/calendar/slots/{future.public_id}/book/")
    choose_patient(page, "quist", "Quist, Nadia")
    expect(page.get_by_role("alert")).to_have_count(0)
    page.get_by_role("button", name="Review").click()
    page.get_by_role("button", name="Book appointment").click()
    expect(page.get_by_text(re.compile(r"Booked Nadia Quist on "))).to_be_visible()
    assert Appointment.objects.get(slot=future, patient=g.nadia).status == AppointmentStatus.BOOKED

    # An admin: the reason field; none given is refused, one given books Priya.
    page.context.clear_cookies()
    sign_in(page, live_server, g.admin)
    page.goto(f"{base}/calendar/slots/{future.public_id}/book/")
    choose_patient(page, "singh", "Singh, Priya")
    expect(page.get_by_role("alert")).to_contain_text("Give a reason below to add them anyway")
    reason = page.get_by_label("Reason to add a new patient to this closed group")
    expect(reason).to_be_visible()
    look(page, "book-closed-reason", found, shot=True)
    page.get_by_role("button", name="Review").click()
    assert reason.evaluate("(el) => el.validity.valueMissing"), "the browser asks for the reason first"
    assert not Appointment.objects.filter(slot=future, patient=g.priya).exists()
    reason.fill("Transferred from the Tuesday group")
    page.get_by_role("button", name="Review").click()
    page.get_by_role("button", name="Book appointment").click()
    expect(page.get_by_text(re.compile(r"Booked Priya Singh on "))).to_be_visible()
    booked = Appointment.objects.get(slot=future, patient=g.priya)
    assert booked.status == AppointmentStatus.BOOKED
    audit = AuditEvent.objects.get(action="appointment.booked", actor=g.admin.user)
    assert audit.detail["closed_override"] == "Transferred from the Tuesday group"

    assert found == [], "\n".join(found)
    assert js_errors == []
    assert csp_violations == []


# --- 5. The roster: attendance in place, and the CSV ---------------------------------------------------------------


def test_the_roster_marks_attendance_in_place_and_downloads_as_csv(page, group, live_server, js_errors, csp_violations):
    g = group
    base = live_server.url
    found: list[str] = []
    page.set_viewport_size(LAPTOP)
    sign_in(page, live_server, g.reception)
    page.goto(f"{base}/calendar/roster/{g.slot.public_id}/")
    expect(page.locator("main")).to_contain_text("Sam Reid · Riverbank Surgery · 5 occurrences")
    last_week = g.past.starts_at.astimezone(LONDON)
    on = f"{last_week.day} {last_week:%b}"
    nadia = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Nadia Quist"))
    oscar = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Oscar Berg"))
    expect(nadia.locator("td").nth(1)).to_contain_text("Booked")

    mark_page(page)
    # Each step waits for htmx to settle the new grid (it wires up the new forms then, a moment after the swap):
    # a person never beats it, a test's next key press can, and would post the form without htmx.
    with page.expect_response(lambda r: "/attendance/" in r.url) as answer:
        settle_after(page, lambda: page.get_by_role("button", name=f"Nadia Quist arrived on {on}").click())
    assert answer.value.status == 200 and answer.value.request.headers.get("hx-request") == "true"
    expect(nadia.locator("td").nth(1)).to_contain_text("Arrived")
    expect(page.get_by_role("button", name=f"Nadia Quist arrived on {on}")).to_have_count(0)
    # Keyboard: DNA for Oscar.
    page.get_by_role("button", name=f"Oscar Berg did not attend on {on}").focus()
    settle_after(page, lambda: page.keyboard.press("Enter"))
    expect(oscar.locator("td").nth(1)).to_contain_text("Did not attend")
    # Undo a slip: Nadia's DNA the week before, then back to booked.
    earliest = g.slots[0].starts_at.astimezone(LONDON)
    first_on = f"{earliest.day} {earliest:%b}"
    settle_after(page, lambda: page.get_by_role("button", name=f"Nadia Quist did not attend on {first_on}").click())
    expect(nadia.locator("td").nth(0)).to_contain_text("Did not attend")
    page.get_by_role("button", name=f"Nadia Quist back to booked on {first_on}").click()
    expect(nadia.locator("td").nth(0)).to_contain_text("Booked")
    assert still_marked(page), "the grid was swapped in place, without a page load"
    look(page, "roster-marked", found, shot=True)

    page.reload()
    expect(nadia.locator("td").nth(1)).to_contain_text("Arrived")
    expect(oscar.locator("td").nth(1)).to_contain_text("Did not attend")
    expect(nadia.locator("td").nth(0)).to_contain_text("Booked")
    statuses = dict(Appointment.objects.filter(slot=g.past).values_list("patient__first_name", "status"))
    assert statuses == {"Nadia": AppointmentStatus.ARRIVED, "Oscar": AppointmentStatus.DID_NOT_ATTEND}
    assert Appointment.objects.get(slot=g.slots[0], patient=g.nadia).status == AppointmentStatus.BOOKED

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == f"roster-{g.slot.session.date}.csv"
    table = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    dates = [f"{s.starts_at.astimezone(LONDON):%Y-%m-%d} 10:00" for s in g.slots]
    assert table[0] == ["Patient", *dates]
    assert table[1] == ["Nadia Quist", "Booked", "Arrived", "Booked", "Booked", "Booked"]
    assert table[2] == ["Oscar Berg", "Booked", "Did not attend", "Booked", "Booked", "Booked"]
    assert table[3] == ["Places booked", "2/2", "2/2", "2/2", "2/2", "2/2"]
    assert len(table) == 4

    assert found == [], "\n".join(found)
    assert js_errors == []
    assert csp_violations == []
