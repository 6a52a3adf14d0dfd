"""Changing the book after it is built (issue 21), in Chromium, the way an admin does it.

A GP is off sick tomorrow: Setup → Rota → Take sessions out…, Preview names the patients, "Cancel 1 session" lands
on the Displaced patients worklist with a proposed new time each (another GP of the same role and location, as the
sick one has no other free place), the whole list is ticked with the header's checkbox and rebooked, all by
keyboard; each patient gets one "moved" email (a real SMTP server, aiosmtpd, in this process), and the calendar
shows the cancelled session and the new bookings in the other GP's column. A template edited in the builder and
applied to the rota, and one dated session edited from the slot popup, displace their appointments onto the same
worklist. Every page on the way (the previews above all) passes axe-core with no serious or critical violation,
never scrolls sideways at a laptop's or a tablet's width, and raises no JavaScript or CSP error.

Screenshots at both widths, for a person to look at: SHOTS_DIR=/work/screens.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, ViewportSize, expect

from clinic.models import Clinic, Location, Membership, Practitioner, PractitionerRole, Role
from notifications.models import Channel, Kind, Message, NotificationSettings, Status
from patients.models import Patient
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    CancelCategory,
    DisplacedState,
    DisplacedWhy,
    Displacement,
    OutReason,
    Session,
    SessionOut,
    Slot,
)
from scheduling.services.booking import BookingRequest, appointment_book
from sessions_setup.models import SlotType, TemplateSlot
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
    allocate_session,
)
from tests.smtp_server import SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)

LAPTOP = ViewportSize(width=1280, height=800)
TABLET = ViewportSize(width=800, height=1100)
SHOTS = os.environ.get("SHOTS_DIR", "")  # screenshots for a person to look at, when asked for
PEOPLE = [("Nadia", "Quist"), ("Oscar", "Berg"), ("Priya", "Singh")]


@pytest.fixture(autouse=True)
def sends_in_this_process() -> Iterator[None]:
    """Messages are sent in the live server's thread after each commit, even when REDIS_URL names a broker."""
    with tasks_in_process():
        yield


@dataclass
class Practice:
    """Two GPs at one surgery: Dr Abbott's morning tomorrow has three patients booked and one place free, Dr
    Brook's afternoon four places free."""

    clinic: Clinic
    admin: Membership
    surgery: Location
    routine: SlotType
    abbott: Practitioner
    brook: Practitioner
    day: dt.date  # tomorrow, on the clinic's clock
    sick: Session  # Dr Abbott's, 09:00 to 10:00: four 15-minute slots, the first three booked
    cover: Session  # Dr Brook's, 14:00 to 15:00: four 15-minute slots, free
    patients: list[Patient]
    booked: list[Appointment]


def slots_of(session: Session) -> list[Slot]:
    return list(Slot.objects.filter(session=session, retired=False).order_by("starts_at"))


@pytest.fixture
def practice(settings, live_server, smtp):  # -> Practice; untyped, as factory_boy types what it makes as the factory
    settings.SITE_URL = live_server.url  # the links in the emails lead to this server
    clinic = ClinicFactory(name="Riverbank Surgery", slug="riverbank", time_zone="Europe/London")
    NotificationSettings.objects.filter(clinic=clinic).update(sms_on=False)
    surgery = LocationFactory(clinic=clinic, name="Riverbank Surgery", time_zone="Europe/London")
    routine = SlotTypeFactory(clinic=clinic, name="Routine", default_length_minutes=15, colour="blue")
    gp = PractitionerRole.GP
    abbott = PractitionerFactory(clinic=clinic, name="Dr Ann Abbott", role=gp, default_location=surgery)
    brook = PractitionerFactory(clinic=clinic, name="Dr Ben Brook", role=gp, default_location=surgery)
    day = clinic.today() + dt.timedelta(days=1)
    sick = allocate_session(
        clinic, practitioner=abbott, day=day, start=dt.time(9), slot_types=[routine] * 4, name="Dr Abbott AM"
    )
    cover = allocate_session(
        clinic, practitioner=brook, day=day, start=dt.time(14), slot_types=[routine] * 4, name="Dr Brook PM"
    )
    patients = [
        PatientFactory(clinic=clinic, first_name=first, last_name=last, email=f"{first.lower()}@example.org")
        for first, last in PEOPLE
    ]
    booked = [
        appointment_book(
            clinic=clinic, actor=None, membership=None, request=BookingRequest(slot=slot, patient=who), tell=False
        )
        for slot, who in zip(slots_of(sick), patients, strict=False)
    ]
    admin = MembershipFactory(
        clinic=clinic, role=Role.ADMIN, user__first_name="Alice", user__last_name="Admin", **ALL_PERMISSIONS
    )
    return Practice(clinic, admin, surgery, routine, abbott, brook, day, sick, cover, patients, booked)


# --- What every page on the way is checked for --------------------------------------------------------------------


def look(page: Page, name: str, found: list[str], *, shot: bool = False, sideways_ok: bool = False) -> None:
    """axe-core and unnamed controls (added to `found`) at a laptop's width; then, at a laptop's and a tablet's
    width, nothing wider than the window (the calendar's grid may scroll, inside its own box), and screenshots of
    both when asked for."""
    check(page, name, found)
    for label, size in (("laptop", LAPTOP), ("tablet", TABLET)):
        page.set_viewport_size(size)
        if not sideways_ok:
            width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            if width[0] > width[1]:
                found.append(f"{name} at {label} width: {width[0]} px of content in a {width[1]} px window")
        if shot and SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{SHOTS}/{name}-{size['width']}.png", full_page=True)
    page.set_viewport_size(LAPTOP)


def said(page: Page) -> Locator:
    """The page's messages (Django's messages framework, in a role=status region)."""
    return page.locator("main > [role=status] .messages")


def worklist_rows(page: Page) -> Locator:
    return page.locator("form.worklist tbody tr")


def local(day: dt.date, hours: int, minutes: int = 0) -> str:
    """How the worklist writes a time on the session's clock: "Fri 4 Dec 14:00"."""
    return f"{day:%a} {day.day} {day:%b} {hours:02d}:{minutes:02d}"


def tab_until(page: Page, selector: str, limit: int = 80) -> list[str]:
    """Press Tab until the focus is on an element matching `selector`; what the focus passed on the way."""
    passed: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        here = page.evaluate(
            """(selector) => {
                const el = document.activeElement;
                if (!el || el === document.body) { return [false, "body"]; }
                return [el.matches(selector), el.id || el.getAttribute("name") || el.tagName.toLowerCase()];
            }""",
            selector,
        )
        if here[0]:
            return passed
        passed.append(here[1])
    raise AssertionError(f"Tab never reached {selector}; passed {passed}")


def emails_to(smtp: SmtpServer, address: str, *, settle: float = 0.5) -> list[str]:
    """The subjects of the emails the server accepted for an address, once at least one came and no more follows."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not smtp.to(address):
        time.sleep(0.05)
    time.sleep(settle)
    return [r.subject for r in smtp.to(address)]


def open_calendar_day(page: Page, base: str, day: dt.date) -> None:
    page.goto(f"{base}/calendar/?view=day&date={day.isoformat()}")
    expect(page.locator("body")).to_have_attribute("data-viewer-zone", BROWSER_ZONE)
    expect(page.locator("h1.cal-title")).to_have_text(f"{day:%A} {day.day} {day:%B %Y}")


def in_view(item: Locator) -> None:
    """Scroll the calendar's grid (and the page) so the item is in the middle, for the screenshots."""
    item.evaluate("(el) => el.scrollIntoView({block: 'center'})")


def column(page: Page, practitioner: Practitioner) -> Locator:
    """A practitioner's column of the grid (the timed part)."""
    return page.locator(f".cal-col[data-practitioner='{practitioner.public_id}']")


# --- 1. Off sick tomorrow: cancel the sessions, rebook everyone ---------------------------------------------------


def test_off_sick_tomorrow_the_patients_are_rebooked_to_the_proposals_by_keyboard(
    page, practice, smtp, live_server, js_errors, csp_violations
):
    p = practice
    base = live_server.url
    found: list[str] = []
    page.set_viewport_size(LAPTOP)
    sign_in(page, live_server, p.admin)

    # Setup → Rota → Take sessions out…
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Setup").click()
    page.get_by_role("navigation", name="Appointments setup").get_by_role("link", name="Rota").click()
    page.get_by_role("link", name="Take sessions out…").click()
    expect(page.get_by_role("heading", name="Take sessions out")).to_be_visible()
    look(page, "take-out", found)
    page.get_by_label("Practitioner").select_option(label="Dr Ann Abbott")
    page.get_by_label("From").fill(p.day.isoformat())
    page.get_by_label("Reason").select_option(label="Sickness")
    page.get_by_role("radio", name=re.compile(r"^Cancel the sessions")).check()
    page.get_by_role("button", name="Preview").click()

    preview = page.get_by_role("region", name="Preview")
    expect(preview).to_contain_text("1 session:")
    expect(preview).to_contain_text("Dr Abbott AM, Dr Ann Abbott at Riverbank Surgery, 09:00–10:00")
    expect(preview.get_by_role("heading", name="3 booked appointments to rebook or cancel")).to_be_visible()
    expect(preview.locator("tbody tr")).to_have_count(3)
    for first, last in PEOPLE:
        expect(preview.locator("tbody")).to_contain_text(f"{first} {last}")
    # The form keeps what was chosen, and nothing is written by a preview.
    expect(page.get_by_label("Practitioner")).to_have_value(str(p.abbott.public_id))
    expect(page.get_by_role("radio", name=re.compile(r"^Cancel the sessions"))).to_be_checked()
    assert Session.objects.get(pk=p.sick.pk).out_state == ""
    assert not Displacement.objects.exists()
    look(page, "take-out-preview", found, shot=True)

    page.get_by_role("button", name="Cancel 1 session").click()
    expect(page).to_have_url(re.compile(r"/displaced/$"))
    expect(said(page)).to_contain_text("Cancelled 1 session. 3 appointments lost their place")
    rows = worklist_rows(page)
    expect(rows).to_have_count(3)
    # In time order, each with the next free Routine place: Dr Abbott has none left, so Dr Brook's, one each.
    for index, ((first, last), minutes) in enumerate(zip(PEOPLE, (0, 15, 30), strict=True)):
        row = rows.nth(index)
        expect(row).to_contain_text(f"{first} {last}")
        expect(row).to_contain_text(f"{local(p.day, 9, minutes)} · Routine · Dr Ann Abbott")
        expect(row).to_contain_text("Session cancelled")
        expect(row).to_contain_text(f"{local(p.day, 14, minutes)} with Dr Ben Brook other clinician")
        expect(row).to_contain_text("To rebook")
    expect(page.locator("form.worklist")).to_contain_text("3 of 3 have a proposal.")
    sick = Session.objects.get(pk=p.sick.pk)
    assert (sick.out_state, sick.out_reason) == (SessionOut.CANCELLED, OutReason.SICKNESS)
    assert sorted(Displacement.objects.values_list("appointment_id", flat=True)) == sorted(a.pk for a in p.booked)
    look(page, "worklist", found, shot=True)

    # The calendar keeps the three at their old times, to rebook, under the cancelled session's header.
    open_calendar_day(page, base, p.day)
    abbott = column(page, p.abbott)
    expect(abbott.locator(".sess")).to_have_text("Dr Abbott AM · Cancelled (sickness)")
    displaced = abbott.locator("a.slot.displaced")
    expect(displaced).to_have_count(3)
    for first, last in PEOPLE:
        expect(displaced.filter(has_text=f"{first} {last} · to rebook")).to_have_count(1)
    expect(column(page, p.brook).locator("a.slot.booked")).to_have_count(0)
    # Nothing took their time, so they keep the slots' full width (as the session's free place, now not bookable).
    free = abbott.locator("a.slot.blank.out")
    expect(free).to_have_count(1)
    assert abs(displaced.first.bounding_box()["x"] - free.bounding_box()["x"]) < 2
    in_view(abbott.locator(".sess"))
    look(page, "calendar-cancelled-session", found, shot=True, sideways_ok=True)

    # Back to the worklist from the main menu; every row ticked and rebooked with the keyboard alone.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Displaced patients").click()
    expect(worklist_rows(page)).to_have_count(3)
    every = page.get_by_role("checkbox", name="Select every patient")
    picks = page.locator("input[name=rows]")
    tab_until(page, "#rows-all")
    expect(every).to_be_focused()
    page.keyboard.press("Space")
    expect(every).to_be_checked()
    for index in range(3):
        expect(picks.nth(index)).to_be_checked()
    # Space again unticks them all; one ticked by hand leaves the header mixed; Space ticks them all again.
    page.keyboard.press("Space")
    for index in range(3):
        expect(picks.nth(index)).not_to_be_checked()
    picks.nth(1).check()
    assert page.evaluate("document.getElementById('rows-all').indeterminate") is True
    every.focus()
    page.keyboard.press("Space")
    expect(picks).to_have_count(3)
    for index in range(3):
        expect(picks.nth(index)).to_be_checked()
    passed = tab_until(page, "button[value=rebook]")
    assert passed == [f"pick-{row.public_id}" for row in Displacement.objects.order_by("appointment__starts_at")]
    expect(page.get_by_role("button", name="Rebook to the proposals")).to_be_focused()
    page.keyboard.press("Enter")

    expect(said(page)).to_have_text("Rebooked 3 patients; each is told the new time.")
    expect(page.locator("form.worklist")).to_have_count(0)
    expect(page.get_by_text("Nobody is waiting to be rebooked.")).to_be_visible()
    done = page.get_by_role("region", name="Done in the last week")
    expect(done.locator("tbody tr")).to_have_count(3)
    expect(done).to_contain_text(f"Rebooked: {local(p.day, 14)} with Dr Ben Brook")
    look(page, "worklist-done", found)

    # What was stored: each displacement rebooked by the admin into Dr Brook's afternoon, in order; the old
    # appointments kept, cancelled as moved; every place counted.
    cover_slots = slots_of(p.cover)
    for old, slot in zip(p.booked, cover_slots, strict=False):
        row = Displacement.objects.get(appointment=old)
        assert row.state == DisplacedState.REBOOKED and row.why == DisplacedWhy.CANCELLED
        assert row.handled_by == p.admin.user
        new = row.new_appointment
        assert (new.slot_id, new.practitioner_id, new.status) == (slot.pk, p.brook.pk, AppointmentStatus.BOOKED)
        assert new.patient_id == old.patient_id and new.rescheduled_from_id == old.pk
        old.refresh_from_db()
        assert (old.status, old.cancel_category) == (AppointmentStatus.CANCELLED, CancelCategory.RESCHEDULED)
    assert [s.booked_count for s in slots_of(p.cover)] == [1, 1, 1, 0]
    assert Appointment.objects.filter(practitioner=p.brook, status=AppointmentStatus.BOOKED).count() == 3
    assert not Appointment.objects.filter(practitioner=p.abbott, status=AppointmentStatus.BOOKED).exists()

    # One "moved" email each, sent, and nothing else (never a cancellation plus a booking).
    for who in p.patients:
        assert emails_to(smtp, who.email) == [f"Your appointment has moved to {p.day:%a} {p.day.day} {p.day:%b}"]
    moved = Message.objects.filter(kind=Kind.MOVED, channel=Channel.EMAIL)
    assert moved.count() == 3
    assert set(moved.values_list("status", flat=True)) == {Status.SENT}
    assert sorted(moved.values_list("patient_id", flat=True)) == sorted(who.pk for who in p.patients)
    assert not Message.objects.exclude(kind=Kind.MOVED).exists()
    assert len(smtp.received) == 3

    # The calendar: the new bookings in Dr Brook's column, nothing left to rebook under the cancelled session.
    open_calendar_day(page, base, p.day)
    brook = column(page, p.brook)
    booked = brook.locator("a.slot.booked")
    expect(booked).to_have_count(3)
    for (first, last), minutes in zip(PEOPLE, (0, 15, 30), strict=True):
        expect(booked.filter(has_text=f"{first} {last}")).to_contain_text(f"14:{minutes:02d}")
    abbott = column(page, p.abbott)
    expect(abbott.locator(".sess")).to_have_text("Dr Abbott AM · Cancelled (sickness)")
    expect(abbott.locator("a.slot.displaced")).to_have_count(0)
    expect(abbott.locator("a.slot.booked")).to_have_count(0)
    in_view(booked.first)
    look(page, "calendar-after-rebook", found, shot=True, sideways_ok=True)

    assert found == [], "\n".join(found)
    assert js_errors == []
    assert csp_violations == []


def test_the_sessions_of_the_day_page_takes_one_clinician_out(page, practice, live_server, js_errors, csp_violations):
    """The "Off…" link beside a session brings its practitioner and date to the take-out page; suspending keeps the
    bookings (nobody on the worklist) and the session can be resumed."""
    p = practice
    found: list[str] = []
    sign_in(page, live_server, p.admin)
    open_calendar_day(page, live_server.url, p.day)
    page.locator("details.more > summary").click()
    page.get_by_role("link", name="Sessions of the day").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Sessions of {p.day:%A} {p.day.day} {p.day:%B %Y}")
    page.get_by_role("link", name=re.compile(r"^Off Dr Ann Abbott\b")).click()
    expect(page.get_by_label("Practitioner")).to_have_value(str(p.abbott.public_id))
    expect(page.get_by_label("From")).to_have_value(p.day.isoformat())
    page.get_by_role("radio", name=re.compile(r"^Suspend the sessions")).check()
    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_role("region", name="Preview")
    expect(preview.get_by_role("heading", name="3 booked appointments stay booked")).to_be_visible()
    look(page, "take-out-preview-suspend", found)
    page.get_by_role("button", name="Suspend 1 session").click()

    expect(said(page)).to_contain_text("Suspended 1 session. No booked appointment was affected.")
    row = page.get_by_role("row").filter(has_text="Dr Abbott AM")
    expect(row).to_contain_text("Suspended · Sickness")
    assert not Displacement.objects.exists()
    assert Appointment.objects.filter(practitioner=p.abbott, status=AppointmentStatus.BOOKED).count() == 3
    assert not Slot.objects.filter(session=p.sick, bookable=True).exists()
    look(page, "day-sessions-suspended", found)

    row.get_by_role("link", name=re.compile(r"^Resume Dr Abbott AM\b")).click()
    expect(page.get_by_role("heading", name="Put “Dr Abbott AM” back in the book?")).to_be_visible()
    look(page, "session-resume", found)
    page.get_by_role("button", name="Resume the session").click()
    expect(said(page)).to_contain_text("“Dr Abbott AM” is back in the book")
    assert Session.objects.get(pk=p.sick.pk).out_state == ""
    assert Slot.objects.filter(session=p.sick, bookable=True).count() == 4

    assert found == [], "\n".join(found)
    assert js_errors == []
    assert csp_violations == []


# --- 2. A template edited in the builder, applied to the rota -----------------------------------------------------


def test_a_template_edit_applied_to_the_rota_displaces_the_booking_it_removes(
    page, practice, smtp, live_server, js_errors, csp_violations
):
    p = practice
    found: list[str] = []
    template = p.sick.template
    sign_in(page, live_server, p.admin)

    # Setup → Sessions → the template: the second slot's type cleared in the builder, and saved.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Setup").click()
    page.get_by_role("navigation", name="Appointments setup").get_by_role("link", name="Sessions").click()
    page.get_by_role("link", name="Dr Abbott AM", exact=True).click()
    builder_rows = page.locator("#slot-list .slot-row:not(.ghost)")
    expect(builder_rows).to_have_count(4)
    builder_rows.nth(1).locator("summary").click()
    builder_rows.nth(1).get_by_role("menuitem", name="Clear slot type").click()
    expect(builder_rows.nth(1).locator(".slot-name")).to_have_text("Blank (catch-up)")
    page.locator("#builder").get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Session “Dr Abbott AM” saved.")).to_be_visible()
    stored = TemplateSlot.objects.filter(template=template).order_by("position").values_list("slot_type", flat=True)
    assert list(stored) == [p.routine.pk, None, p.routine.pk, p.routine.pk]
    # Saving alone leaves the rota be: Oscar keeps his place.
    assert Slot.objects.get(pk=p.booked[1].slot_id).bookable
    assert not Displacement.objects.exists()

    # Saving a session that is on the rota leads straight on to applying it to the sessions already allocated; the
    # builder's note links there too.
    expect(page.get_by_role("heading", name="Apply “Dr Abbott AM” to allocated sessions")).to_be_visible()
    page.get_by_role("link", name="Back to the session").click()
    page.get_by_role("link", name="apply this session to allocated sessions").click()
    expect(page.get_by_role("heading", name="Apply “Dr Abbott AM” to allocated sessions")).to_be_visible()
    look(page, "template-apply", found)
    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_role("region", name="Preview")
    expect(preview).to_contain_text("1 session changes.")
    expect(preview).to_contain_text("1 booked appointment would lose its place")
    displaced = preview.get_by_role("table")
    expect(displaced.locator("tbody tr")).to_have_count(1)
    expect(displaced.locator("tbody tr")).to_contain_text("Oscar Berg")
    expect(displaced.locator("tbody tr")).to_contain_text("Slot made blank")
    assert not Displacement.objects.exists()
    look(page, "template-apply-preview", found, shot=True)

    page.get_by_role("button", name="Apply to 1 session and displace 1").click()
    expect(page).to_have_url(re.compile(r"/displaced/$"))
    expect(said(page)).to_contain_text("“Dr Abbott AM” applied to 1 session(s) on the rota.")
    rows = worklist_rows(page)
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Oscar Berg")
    expect(rows).to_contain_text("Slot made blank")
    # Dr Abbott's own free place that morning comes first: no "other clinician" badge.
    expect(rows).to_contain_text(f"{local(p.day, 9, 45)} with Dr Ann Abbott")
    expect(rows.locator(".badge")).to_have_count(0)

    # Ticked by its name (the label), then rebooked.
    rows.get_by_text("Oscar Berg").click()
    expect(page.get_by_role("checkbox", name="Select Oscar Berg")).to_be_checked()
    expect(page.get_by_role("checkbox", name="Select every patient")).to_be_checked()  # the only row
    page.get_by_role("button", name="Rebook to the proposals").click()
    expect(said(page)).to_have_text("Rebooked 1 patient; each is told the new time.")

    row = Displacement.objects.get()
    assert (row.appointment_id, row.state, row.why) == (p.booked[1].pk, DisplacedState.REBOOKED, DisplacedWhy.CLEARED)
    assert row.new_appointment.slot_id == slots_of(p.sick)[3].pk
    assert emails_to(smtp, "oscar@example.org") == [f"Your appointment has moved to {p.day:%a} {p.day.day} {p.day:%b}"]
    assert smtp.to("nadia@example.org") == [] and smtp.to("priya@example.org") == []

    assert found == [], "\n".join(found)
    assert js_errors == []
    assert csp_violations == []


# --- 3. One dated session edited from the calendar's slot popup ---------------------------------------------------


def test_a_session_edited_from_the_slot_popup_displaces_and_the_worklist_cancels(
    page, practice, smtp, live_server, js_errors, csp_violations
):
    p = practice
    found: list[str] = []
    sign_in(page, live_server, p.admin)
    open_calendar_day(page, live_server.url, p.day)
    free = slots_of(p.sick)[3]
    settle_after(page, lambda: page.locator(f"#slot-{free.public_id}").click())
    expect(tip(page)).to_be_visible()
    tip(page).get_by_role("link", name="Edit this session…").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Edit “Dr Abbott AM”")
    look(page, "session-edit", found)
    page.get_by_label("09:00–09:15").select_option(label="Blank (not bookable)")
    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_role("region", name="Preview")
    expect(preview).to_contain_text("1 booked appointment would lose its place")
    expect(preview.get_by_role("table").locator("tbody tr")).to_contain_text("Nadia Quist")
    expect(page.get_by_label("09:00–09:15")).to_have_value("blank")  # the choice survives the preview
    look(page, "session-edit-preview", found, shot=True)
    page.get_by_role("button", name="Save changes and displace 1").click()

    expect(page).to_have_url(re.compile(r"/displaced/$"))
    rows = worklist_rows(page)
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Nadia Quist")

    # On the calendar Nadia keeps her time, beside the blank slot that took it.
    open_calendar_day(page, live_server.url, p.day)
    abbott = column(page, p.abbott)
    twin = abbott.locator("a.slot.displaced")
    expect(twin).to_have_text(re.compile(r"09:00\s+Nadia Quist · to rebook"))
    blank = abbott.locator("a.slot.blank").filter(has_text="09:00")
    expect(blank).to_have_count(1)
    assert twin.bounding_box()["x"] > blank.bounding_box()["x"] + 100
    expect(abbott.locator(".sess")).to_have_text("Dr Abbott AM")
    in_view(twin)
    look(page, "calendar-session-edited", found, shot=True, sideways_ok=True)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Displaced patients").click()

    # Left for a phone call first: still on the list, saying who and when.
    page.get_by_role("checkbox", name="Select Nadia Quist").check()
    page.get_by_role("button", name="Leave for a phone call").click()
    expect(said(page)).to_have_text("1 marked “to contact”.")
    expect(rows).to_contain_text("To contact")
    expect(rows).to_contain_text("by Alice Admin")

    # Then cancelled, with a reason kept inside: without one the form says so and nothing happens.
    page.get_by_role("checkbox", name="Select Nadia Quist").check()
    page.get_by_text("Cancel instead, and tell them…").click()
    page.get_by_role("button", name="Cancel the ticked appointments").click()
    expect(page.get_by_role("alert")).to_contain_text("Give a reason for the cancellation.")
    look(page, "worklist-refused", found)
    assert Displacement.objects.get().state == DisplacedState.TO_CONTACT
    page.get_by_role("checkbox", name="Select Nadia Quist").check()
    page.get_by_label("Reason").fill("Dr Abbott is on a course")
    page.get_by_role("button", name="Cancel the ticked appointments").click()
    expect(said(page)).to_have_text("Cancelled 1 appointment; each patient is asked to rebook.")
    row = Displacement.objects.get()
    assert row.state == DisplacedState.CANCELLED and row.why == DisplacedWhy.CLEARED
    old = Appointment.objects.get(pk=p.booked[0].pk)
    assert (old.status, old.cancel_category) == (AppointmentStatus.CANCELLED, CancelCategory.CLINICIAN)
    (subject,) = emails_to(smtp, "nadia@example.org")
    assert "please rebook" in subject
    assert "Dr Abbott is on a course" not in smtp.to("nadia@example.org")[0].message.as_string()

    assert found == [], "\n".join(found)
    assert js_errors == []
    assert csp_violations == []
