"""Online booking (issue 20) in Chromium, as a patient does it on a phone (375×667): the clinic's page, the type,
a day on the strip and a time, the details, the 6-digit code from the email (a real SMTP server, aiosmtpd, in this
process), "You are booked", the confirmation email with its invitation and manage link, and from that link a
cancellation with its confirmation step. A practitioner whose bookings are requests: reception sees the count in
the header, accepts one and declines another, and the patients are emailed. The same flow by keyboard alone, and
at a desktop's width. Every page passes axe-core (no serious or critical violation) and, on a phone, never scrolls
sideways.

Screenshots of each page, for a person to look at: SHOTS_DIR=/tmp/online-shots.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from clinic.models import Clinic, Membership, Practitioner, Role
from notifications.models import Kind, Message
from online.models import BookingMode, OnlineBooking, OnlineSettings, OnlineStatus, PractitionerOnline
from scheduling.models import Appointment, AppointmentStatus, Availability, Session
from sessions_setup.models import SlotType
from tests.conftest import tasks_in_process
from tests.e2e.calendar_browser import mark_page, sign_in, still_marked
from tests.e2e.test_accessibility import check
from tests.factories import (
    ClinicFactory,
    LocationFactory,
    MembershipFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
)
from tests.online.conftest import CODE, every_day, next_week_day
from tests.smtp_server import Received, SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)

LONDON = ZoneInfo("Europe/London")
PHONE = ViewportSize(width=375, height=667)
DESKTOP = ViewportSize(width=1280, height=800)
SHOTS = os.environ.get("SHOTS_DIR", "")  # screenshots for a person to look at, when asked for
ADA = {
    "First name": "Ada",
    "Last name": "Lovelace",
    "Date of birth": "1985-12-10",
    "Email": "ada@example.org",
    "Mobile phone": "07700 900123",
    "Reason for the appointment": "Knee pain after running",
}
BEN = {**ADA, "First name": "Ben", "Last name": "Byron", "Email": "ben@example.org", "Reason for the appointment": ""}


@dataclass
class Harbour:
    """A clinic taking bookings online: one online type, a GP with online availability and sessions on two days."""

    clinic: Clinic
    online: OnlineSettings
    consult: SlotType
    gp: Practitioner
    first: Session  # a week ahead, 10:00 to 11:00
    second: Session  # two days later, 14:00 to 15:00
    reception: Membership
    admin: Membership


@pytest.fixture(autouse=True)
def sends_in_this_process() -> Iterator[None]:
    """Messages are sent in the live server's thread after each commit, even when REDIS_URL names a broker."""
    with tasks_in_process():
        yield


@pytest.fixture(autouse=True)
def own_rate_limits(settings) -> None:
    """The site's rate limits count afresh in each test (the Redis cache is shared and never cleared)."""
    default = settings.CACHES["default"]
    settings.CACHES = {**settings.CACHES, "default": {**default, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


@pytest.fixture
def harbour(settings, live_server, smtp):  # -> Harbour; untyped, as factory_boy types what it makes as the factory
    settings.SITE_URL = live_server.url  # the links in the emails lead to this server
    clinic = ClinicFactory(name="Harbour Surgery", slug="harbour", time_zone="Europe/London")
    online = OnlineSettings.objects.create(
        clinic=clinic, enabled=True, phone="01632 960000", intro="Book a routine appointment with a GP here."
    )
    consult = SlotTypeFactory(
        clinic=clinic,
        name="Routine consult",
        online_bookable=True,
        default_length_minutes=15,
        online_description="A 15-minute appointment with a GP.",
    )
    surgery = LocationFactory(clinic=clinic, name="High Street Surgery", address="1 High Street, Bristol")
    gp = PractitionerFactory(clinic=clinic, name="Dr Ines Rivers", default_location=surgery)
    Availability.objects.create(clinic=clinic, practitioner=gp, time_zone="Europe/London", weekly=every_day())
    day = next_week_day(clinic)
    sessions = [
        allocate_session(
            clinic,
            practitioner=gp,
            location=surgery,
            day=day + dt.timedelta(days=days),
            start=start,
            slot_types=[consult] * 4,
        )
        for days, start in ((0, dt.time(10)), (2, dt.time(14)))
    ]
    return Harbour(
        clinic=clinic,
        online=online,
        consult=consult,
        gp=gp,
        first=sessions[0],
        second=sessions[1],
        reception=MembershipFactory(clinic=clinic, role=Role.RECEPTION, user__first_name="Rita"),
        admin=MembershipFactory(clinic=clinic, role=Role.ADMIN, user__first_name="Alice"),
    )


# --- What every page is checked for ----------------------------------------------------------------------------


# Boxes whose content spills out sideways (text over its neighbours), innermost only; form fields scroll their own
# text, and the honeypot and visually hidden text are meant to be out of sight.
SPILLING = """() => {
  const spills = (el) => {
    if (el.closest(".hp, .visually-hidden") || el.matches("input, select, textarea")) { return false; }
    const style = getComputedStyle(el);
    return style.display !== "inline" && style.overflowX === "visible" && el.scrollWidth > el.clientWidth + 1;
  };
  const found = Array.from(document.querySelectorAll("body *")).filter(spills);
  return found.filter((el) => !found.some((other) => other !== el && el.contains(other)))
    .map((el) => `${el.scrollWidth} px in ${el.clientWidth}: ${el.outerHTML.replace(/\\s+/g, " ").slice(0, 100)}`);
}"""
# Form fields and buttons (those shown) a thumb can hit: the app's own height for them, 2.5rem.
SMALL_CONTROLS = """() => Array.from(document.querySelectorAll(
    "main input:not([type=hidden]):not([type=checkbox]):not([type=radio]), main select, main textarea, main button"))
  .filter((el) => el.getClientRects().length && !el.closest(".hp") && el.getBoundingClientRect().height < 40)
  .map((el) => `${Math.round(el.getBoundingClientRect().height)} px high: ${el.outerHTML.slice(0, 100)}`)"""


def look(page: Page, name: str, found: list[str], *, wide: bool = False) -> None:
    """The page as it is now: axe-core and unnamed controls (added to `found`), nothing wider than the window or
    spilling out of its box, form fields of a usable height, and a screenshot when asked for."""
    check(page, name, found)
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{name}: {width[0]} px of content in a {width[1]} px window"
    found += [f"spills out of its box at {name}: {html}" for html in page.evaluate(SPILLING)]
    found += [f"too small at {name}: {html}" for html in page.evaluate(SMALL_CONTROLS)]
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{'desktop' if wide else 'phone'}-{name}.png", full_page=True)


def mail_to(smtp: SmtpServer, address: str, subject: str, *, count: int = 1) -> Received:
    """The `count`th email to the address whose subject holds these words, once the server has it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [r for r in smtp.to(address) if subject in r.subject]
        if len(found) >= count:
            return found[count - 1]
        time.sleep(0.05)
    raise AssertionError(f"no email {subject!r} to {address}: {[r.subject for r in smtp.to(address)]}")


def text_of(received: Received) -> str:
    body = received.message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def code_in(received: Received) -> str:
    found = CODE.search(text_of(received))
    assert found, text_of(received)
    return found.group(1)


def attachments(received: Received) -> dict[str, str]:
    return {part.get_filename() or "": part.get_content_type() for part in received.message.iter_attachments()}


def local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(LONDON)


def slot_time(session: Session, index: int) -> str:
    """The London wall-clock time of the session's `index`th slot, as the times page shows it ("14:15")."""
    slot = session.slots.order_by("starts_at")[index]
    return f"{local(slot.starts_at):%H:%M}"


def slot_when(session: Session, index: int) -> str:
    """The day and time of the session's `index`th slot as the pages name the chosen time."""
    return f"{session.date:%A %-d %B %Y}, {slot_time(session, index)}"


# --- The patient's steps ---------------------------------------------------------------------------------------


def choose_time(
    page: Page, world: Harbour, base: str, found: list[str], *, session: Session, index: int, free: int = 4
) -> None:
    """From the clinic's page: the type, the day on the strip (swapped in by htmx, no page load), the time."""
    page.goto(f"{base}/book/{world.clinic.slug}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Book an appointment")
    expect(page.get_by_text("Book a routine appointment with a GP here.")).to_be_visible()
    look(page, "1-landing", found)
    page.get_by_role("link", name=re.compile("Routine consult")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Routine consult")
    # The first day with free times is chosen, in the strip's week.
    expect(page.locator("#day-heading")).to_have_text(f"{world.first.date:%A %-d %B}")
    look(page, "2-times", found)
    if session.date != world.first.date:
        mark_page(page)
        strip = page.get_by_role("navigation", name="Days")
        strip.get_by_role("link", name=re.compile(f"{session.date:%-d %b}")).click()
        expect(page.locator("#day-heading")).to_have_text(f"{session.date:%A %-d %B}")
        expect(strip.locator("[aria-current=date]")).to_contain_text(f"{session.date:%-d %b}")
        assert still_marked(page), "the strip's day should come in by htmx, without a page load"
        assert f"day={session.date.isoformat()}" in page.url  # pushed: Back and a bookmark work
        look(page, "3-times-another-day", found)
    times = page.locator("ul.times")
    expect(times.get_by_role("link")).to_have_count(free)
    times.get_by_role("link", name=re.compile(slot_time(session, index))).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")
    expect(page.locator(".chosen-when")).to_contain_text(slot_when(session, index))


def fill_details(page: Page, person: dict[str, str]) -> None:
    for label, value in person.items():
        page.get_by_label(re.compile(f"^{label}")).fill(value)  # optional fields say so after the name


def book(page: Page, smtp: SmtpServer, person: dict[str, str]) -> None:
    """From the details page: the details, the code from the email, typed; the page after it."""
    fill_details(page, person)
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    code = code_in(mail_to(smtp, person["Email"], "Your code for booking at Harbour Surgery"))
    page.get_by_label("Code from the email").fill(code)
    page.get_by_role("button", name="Confirm and book").click()


# --- The tests -------------------------------------------------------------------------------------------------


def test_a_patient_books_on_a_phone_confirms_by_email_and_cancels_from_the_emails_link(
    page: Page, harbour: Harbour, smtp: SmtpServer, live_server, js_errors, csp_violations
):
    world, base = harbour, live_server.url
    found: list[str] = []
    page.set_viewport_size(PHONE)
    choose_time(page, world, base, found, session=world.second, index=1)
    look(page, "4-details", found)
    details = page.url

    # A slip first: the form says what is wrong, and nothing is sent.
    fill_details(page, {**ADA, "Email": "ada at example.org", "Mobile phone": "12"})
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_text("Enter a valid email address.")).to_be_visible()
    expect(page.get_by_text("Enter a mobile number, e.g. 07700 900123.")).to_be_visible()
    assert page.locator("input[name=website]").input_value() == ""  # the honeypot stays empty for a person
    look(page, "5-details-with-errors", found)
    assert smtp.received == []

    fill_details(page, ADA)
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    look(page, "6-check", found)
    assert not Appointment.objects.exists()  # nothing is booked before the code
    email = mail_to(smtp, "ada@example.org", "Your code for booking at Harbour Surgery")
    code = code_in(email)
    page.get_by_label("Code from the email").fill("000000" if code != "000000" else "111111")
    page.get_by_role("button", name="Confirm and book").click()
    expect(page.get_by_text("That code is not right. 4 tries left.")).to_be_visible()
    look(page, "7-check-wrong-code", found)
    page.get_by_label("Code from the email").fill(code)
    page.get_by_role("button", name="Confirm and book").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("You are booked")
    expect(page.get_by_role("status")).to_contain_text("A confirmation is on its way to your email")
    slot = world.second.slots.order_by("starts_at")[1]
    expect(page.locator(".chosen-when")).to_contain_text(slot_when(world.second, 1))
    expect(page.locator(".chosen-who")).to_contain_text("Dr Ines Rivers · High Street Surgery, 1 High Street, Bristol")
    look(page, "8-done-booked", found)
    appointment = Appointment.objects.get()
    assert (appointment.slot, appointment.status, appointment.patient.email) == (slot, "booked", "ada@example.org")
    # The time is taken now: its details page (a second tab, a bookmark) says so and offers the others.
    response = page.goto(details)
    assert response is not None and response.status == 410
    expect(page.get_by_role("heading", level=1)).to_have_text("That time is no longer free")
    look(page, "8b-gone", found)

    # The confirmation: an invitation for calendar apps, and the signed link to view, cancel or move it.
    confirmation = mail_to(smtp, "ada@example.org", f"Your appointment on {local(slot.starts_at):%a %-d %b}")
    assert attachments(confirmation) == {"appointment.ics": "text/calendar"}
    link = re.search(r"To view, cancel or move it: (\S+)", text_of(confirmation))
    assert link, text_of(confirmation)
    manage = link.group(1)
    assert manage.startswith(f"{base}/book/harbour/manage/"), manage

    page.goto(manage)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your appointment")
    expect(page.locator(".chosen-when")).to_contain_text(slot_when(world.second, 1))
    look(page, "9-manage", found)
    page.get_by_role("link", name="Move to another time").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Move your appointment")
    # Every other free time is offered, the appointment's own is not.
    expect(page.locator("button.time")).to_have_count(7)
    look(page, "10-move", found)
    page.get_by_role("link", name="Back to your appointment").click()

    page.get_by_role("button", name="Cancel appointment").click()
    expect(page.get_by_text("Cancel this appointment?")).to_be_visible()
    look(page, "11-manage-cancel-asked", found)
    assert Appointment.objects.get().status == AppointmentStatus.BOOKED  # asking is not cancelling
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.get_by_role("status")).to_have_text("Your appointment is cancelled. We have emailed you to confirm.")
    expect(page.locator(".badge")).to_have_text("Cancelled")
    expect(page.get_by_role("button", name="Cancel appointment")).to_have_count(0)
    look(page, "12-manage-cancelled", found)

    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    assert appointment.cancel_reason == "Cancelled by the patient online"
    cancelled = mail_to(smtp, "ada@example.org", f"Your appointment on {local(slot.starts_at):%a %-d %b} is cancelled")
    assert "has been cancelled" in text_of(cancelled)
    assert Message.objects.filter(kind=Kind.CANCELLED, channel="email", status="sent").count() == 1
    assert found == [], "\n".join(found)
    assert js_errors == [] and csp_violations == []


def test_at_a_desktops_width_the_times_sit_side_by_side(page: Page, harbour: Harbour, live_server, js_errors):
    world, base = harbour, live_server.url
    found: list[str] = []
    page.set_viewport_size(DESKTOP)
    page.goto(f"{base}/book/{world.clinic.slug}/")
    look(page, "1-landing", found, wide=True)
    page.get_by_role("link", name=re.compile("Routine consult")).click()
    expect(page.locator("ul.times").get_by_role("link")).to_have_count(4)
    look(page, "2-times", found, wide=True)
    # The finder's two selects in a row, the week's seven days in a row, the times two to a row.
    where, who = (page.get_by_label(name).bounding_box() for name in ("Where", "Who"))
    assert where and who and where["y"] == who["y"] and where["x"] < who["x"]
    days = [box for box in (d.bounding_box() for d in page.locator(".strip-day").all()) if box]
    assert len(days) == 7 and len({round(box["y"]) for box in days}) == 1
    first, second, third = (page.locator("a.time").nth(n).bounding_box() for n in range(3))
    assert first and second and third
    assert first["y"] == second["y"] < third["y"] and first["x"] < second["x"]
    page.locator("a.time").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")
    expect(page.get_by_role("button", name="Send me a code")).to_be_visible()
    look(page, "3-details", found, wide=True)
    box = page.locator("main").bounding_box()
    assert box and box["width"] <= 40 * 16 + 1  # a readable column, centred
    assert abs(box["x"] - (DESKTOP["width"] - box["x"] - box["width"])) <= 1
    assert found == [], "\n".join(found)
    assert js_errors == []


def test_the_times_and_the_details_work_with_the_keyboard_alone(
    page: Page, harbour: Harbour, smtp: SmtpServer, live_server, js_errors
):
    world, base = harbour, live_server.url
    page.set_viewport_size(PHONE)
    page.goto(f"{base}/book/{world.clinic.slug}/{world.consult.public_id}/")
    expect(page.locator("#day-heading")).to_have_text(f"{world.first.date:%A %-d %B}")

    def tab_to(selector: str, limit: int = 40, key: str = "Tab") -> None:
        for _ in range(limit):
            page.keyboard.press(key)
            if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reached {selector}")

    def focus_is_visible() -> bool:
        return page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement);"
            " return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0 || s.boxShadow !== 'none'; }"
        )

    # The next week and back, by Tab and Enter; the focus stays on the link pressed.
    tab_to("#strip-later")
    page.keyboard.press("Enter")
    next_week = world.first.date + dt.timedelta(days=7)
    expect(page.locator("#day-heading")).to_have_text(f"{next_week:%A %-d %B}")
    expect(page.locator("#strip-later")).to_be_focused()
    expect(page.get_by_text("No times on this day.")).to_be_visible()
    tab_to("#strip-earlier", key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#day-heading")).to_have_text(f"{world.first.date:%A %-d %B}")
    expect(page.locator("#strip-earlier")).to_be_focused()
    # Another day on the strip.
    tab_to(f".strip-day[href*='day={world.second.date.isoformat()}']")
    assert focus_is_visible()
    page.keyboard.press("Enter")
    expect(page.locator("#day-heading")).to_have_text(f"{world.second.date:%A %-d %B}")
    # The strip came in by htmx: the focus stays on the chosen day (not lost to the page's start).
    expect(page.locator(".strip-day[aria-current=date]")).to_be_focused()
    expect(page.locator(".strip-day[aria-current=date]")).to_contain_text(f"{world.second.date:%-d}")
    # A time of that day, by Tab and Enter.
    tab_to("a.time")
    assert focus_is_visible()
    expect(page.locator("a.time:focus")).to_contain_text(slot_time(world.second, 0))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")

    # The fields in order; the honeypot is never reached; Enter on the button sends the form.
    tab_to("input[name=first_name]")
    order = []
    for name, value in [
        ("first_name", "Ada"),
        ("last_name", "Lovelace"),
        ("date_of_birth", "12101985"),  # typed into the date field's month, day and year in turn (en-US)
        ("email", "ada@example.org"),
        ("mobile", "07700 900123"),
        ("reason", "Knee pain"),
    ]:
        order.append(page.evaluate("() => document.activeElement.name"))
        assert order[-1] == name, order
        assert focus_is_visible(), name
        page.keyboard.type(value)
        # On to the next field (a date field holds more than one stop: its month, day and year, and its picker).
        for _ in range(5):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.name") != name:
                break
    assert page.input_value("input[name=date_of_birth]") == "1985-12-10"
    expect(page.get_by_role("button", name="Send me a code")).to_be_focused()
    assert focus_is_visible()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")

    code = code_in(mail_to(smtp, "ada@example.org", "Your code for booking"))
    tab_to("input[name=code]")
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("You are booked")
    appointment = Appointment.objects.get()
    assert appointment.slot == world.second.slots.order_by("starts_at")[0]
    assert appointment.patient.date_of_birth == dt.date(1985, 12, 10)
    assert js_errors == []


def test_requests_wait_for_reception_who_accepts_one_and_declines_another(
    page: Page, new_context, harbour: Harbour, smtp: SmtpServer, live_server, js_errors, csp_violations
):
    world, base = harbour, live_server.url
    found: list[str] = []
    PractitionerOnline.objects.create(clinic=world.clinic, practitioner=world.gp, mode=BookingMode.REQUEST)
    page.set_viewport_size(PHONE)
    for person, index, free in ((ADA, 0, 4), (BEN, 1, 3)):  # Ada's time is held for her: not offered to Ben
        choose_time(page, world, base, [], session=world.first, index=index, free=free)
        book(page, smtp, person)
        expect(page.get_by_role("heading", level=1)).to_have_text("Request sent")
        expect(page.get_by_role("status")).to_contain_text("The clinic will look at your request")
        # Nothing to manage yet: no appointment, no link.
        expect(page.get_by_role("link", name="View, cancel or move this appointment")).to_have_count(0)
        mail_to(smtp, person["Email"], "We have your request for")
    look(page, "13-done-request-sent", found)
    assert not Appointment.objects.exists()
    assert OnlineBooking.objects.filter(status=OnlineStatus.PENDING).count() == 2

    # Reception, in a browser of their own.
    desk = new_context(viewport=DESKTOP).new_page()
    sign_in(desk, live_server, world.reception)
    header = desk.get_by_role("link", name=re.compile("^Online requests"))
    expect(header).to_have_accessible_name("Online requests 2 waiting")
    header.click()
    expect(desk.get_by_role("heading", level=1)).to_have_text("Online requests")
    expect(desk.get_by_role("link", name="Online requests 2 waiting")).to_have_attribute("aria-current", "page")
    rows = desk.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("LOVELACE, Ada")
    expect(rows.first).to_contain_text("Knee pain after running")
    expect(rows.first).to_contain_text("Registered online: check details")
    check(desk, "online requests", found)

    desk.get_by_role("button", name="Accept LOVELACE, Ada").click()
    expect(desk.get_by_text("Accepted: LOVELACE, Ada is booked and has been told.")).to_be_visible()
    expect(desk.get_by_role("link", name="Online requests 1 waiting")).to_be_visible()
    expect(rows).to_have_count(1)
    ada = OnlineBooking.objects.get(patient__first_name="Ada")
    assert ada.status == OnlineStatus.ACCEPTED and ada.appointment is not None
    assert ada.appointment.status == AppointmentStatus.BOOKED and ada.decided_by == world.reception.user
    confirmation = mail_to(smtp, "ada@example.org", "Your appointment on")
    assert attachments(confirmation) == {"appointment.ics": "text/calendar"}
    assert f"{base}/book/harbour/manage/" in text_of(confirmation)

    desk.get_by_role("link", name="Decline BYRON, Ben").click()
    expect(desk.get_by_role("heading", level=1)).to_have_text("Decline BYRON, Ben's request")
    check(desk, "decline a request", found)
    desk.get_by_label("Please call us so we can book the right appointment for you").check()
    desk.get_by_role("button", name="Decline the request").click()
    expect(desk.get_by_text("Declined: the time is free again and the patient has been told.")).to_be_visible()
    expect(desk.get_by_text("No online requests are waiting.")).to_be_visible()
    expect(desk.get_by_role("link", name="Online requests", exact=True)).to_be_visible()  # no count left
    expect(desk.locator("ul.plain")).to_contain_text("BYRON, Ben")
    check(desk, "online requests, answered", found)
    ben = OnlineBooking.objects.get(patient__first_name="Ben")
    assert (ben.status, ben.decline_reason, ben.appointment) == (OnlineStatus.DECLINED, "call", None)
    declined = mail_to(smtp, "ben@example.org", "could not be accepted")
    assert "please call us so we can book the right appointment for you" in text_of(declined)
    # Ben's time is offered again; Ada's is not.
    page.goto(f"{base}/book/{world.clinic.slug}/{world.consult.public_id}/")
    expect(page.locator("a.time")).to_have_count(3)
    expect(page.locator("a.time").first).to_contain_text(slot_time(world.first, 1))
    assert found == [], "\n".join(found)
    assert js_errors == [] and csp_violations == []


def test_too_many_tries_from_one_address_get_a_page_that_says_so(
    page: Page, harbour: Harbour, live_server, settings, js_errors
):
    settings.ONLINE_PAGE_LIMIT = 2
    found: list[str] = []
    page.set_viewport_size(PHONE)
    times = f"{live_server.url}/book/{harbour.clinic.slug}/{harbour.consult.public_id}/?tz=Europe/London"
    assert [page.goto(times).status for _ in range(3)] == [200, 200, 429]  # type: ignore[union-attr]
    expect(page.get_by_role("heading", level=1)).to_have_text("Please wait a little")
    expect(page.get_by_role("alert")).to_contain_text("or call us on 01632 960000")
    look(page, "14-too-many", found)
    assert found == [], "\n".join(found)
    assert js_errors == []


def test_the_admins_settings_page_passes_axe(page: Page, harbour: Harbour, live_server, js_errors):
    found: list[str] = []
    sign_in(page, live_server, harbour.admin)
    page.goto(f"{live_server.url}/online/settings/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Online booking")
    expect(page.get_by_role("link", name=f"{live_server.url}/book/harbour/")).to_be_visible()
    check(page, "online settings", found)
    page.get_by_label("Bookings for Dr Ines Rivers are").select_option(BookingMode.REQUEST)
    page.get_by_role("button", name="Save Dr Ines Rivers").click()
    expect(page.get_by_text("Saved online booking for Dr Ines Rivers.")).to_be_visible()
    check(page, "online settings, saved", found)
    assert PractitionerOnline.objects.get(practitioner=harbour.gp).mode == BookingMode.REQUEST
    assert found == [], "\n".join(found)
    assert js_errors == []
