"""Appointments and drafts opened on a page of their own (from a patient's appointments, a bookmark), not in
the calendar's popup: every action works there too, in Chromium, and ends on the calendar with a message.

Before, the page had no #tip-body, so Reschedule, Cancel…, Arrived, Did not attend, "The slot" and a draft's
"Show slots" did nothing (htmx:targetError).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from scheduling.models import Appointment, AppointmentStatus, DraftOccurrence
from scheduling.recurrence import Frequency, RecurrenceRule
from scheduling.services.booking import BookingRequest
from scheduling.services.series import PlannedOccurrence, SeriesRequest, series_book
from tests.e2e.calendar_browser import sign_in
from tests.factories import (
    LocationFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    book,
)

pytestmark = pytest.mark.django_db(transaction=True)

LONDON = ZoneInfo("Europe/London")


def htmx_target_errors(page: Page) -> list[str]:
    found: list[str] = []
    page.on("console", lambda msg: found.append(msg.text) if "targetError" in msg.text else None)
    return found


@pytest.fixture
def week(reception_a):
    """A practitioner's 10:00 sessions on two days next week (one slot each), at one location."""
    clinic = reception_a.clinic
    therapist = PractitionerFactory(clinic=clinic, name="Dr Page")
    kind = SlotTypeFactory(clinic=clinic, name="Talking therapy", default_length_minutes=50)
    location = LocationFactory(clinic=clinic, name="Riverside", time_zone="Europe/London")
    monday = dt.date.today() + dt.timedelta(days=7 - dt.date.today().weekday())
    slots = [
        allocate_session(
            clinic, practitioner=therapist, location=location, day=day, start=dt.time(10), slot_types=[kind]
        ).slots.get()
        for day in (monday, monday + dt.timedelta(days=1))
    ]
    return therapist, kind, location, slots


def test_every_appointment_action_works_on_its_own_page(page, live_server, reception_a, week, js_errors):
    _, _, _, (first, second) = week
    patient = PatientFactory(clinic=reception_a.clinic, first_name="Nadia", last_name="Quist")
    appointment = book(first, patient)
    errors = htmx_target_errors(page)
    sign_in(page, live_server, reception_a)
    page.goto(live_server.url + reverse("scheduling:appointment", args=[appointment.public_id]))
    body = page.get_by_role("main")

    body.get_by_role("button", name="Arrived", exact=True).click()
    expect(body.locator(".status")).to_have_text("Arrived")
    assert Appointment.objects.get(pk=appointment.pk).status == AppointmentStatus.ARRIVED
    body.get_by_role("button", name="Booked", exact=True).click()
    expect(body.locator(".status")).to_have_text("Booked")

    body.get_by_role("link", name="The slot", exact=True).click()
    expect(body.get_by_text("Talking therapy").first).to_be_visible()
    page.go_back()

    page.goto(live_server.url + reverse("scheduling:appointment", args=[appointment.public_id]))
    body.get_by_role("link", name="Reschedule", exact=True).click()
    expect(body.get_by_role("heading", name="Edit Appointment · Nadia Quist")).to_be_visible()
    body.get_by_role("button", name=f"{second.starts_at.astimezone(LONDON):%a %-d %b}, 10:00", exact=False).click()
    when = f"{second.starts_at.astimezone(LONDON):%a %-d %b %Y}, 10:00"
    expect(page.get_by_text(f"Moved Nadia Quist to {when}.")).to_be_visible()
    assert "/calendar/" in page.url and "view=day" in page.url and page.url.endswith(f"#slot-{second.public_id}")
    expect(page.locator(f"#slot-{second.public_id}")).to_be_in_viewport()  # the calendar shows where it went
    moved = Appointment.objects.get(slot=second, status=AppointmentStatus.BOOKED)

    page.goto(live_server.url + reverse("scheduling:appointment", args=[moved.public_id]))
    body.get_by_role("link", name="Cancel…", exact=True).click()
    body.get_by_label("Reason for cancelling").fill("Patient unwell")
    body.get_by_role("button", name="Cancel appointment", exact=True).click()
    expect(page.get_by_text(f"Cancelled Nadia Quist on {when}; the place is free again.")).to_be_visible()
    assert Appointment.objects.get(pk=moved.pk).status == AppointmentStatus.CANCELLED
    assert errors == [] and js_errors == []


def test_a_draft_is_placed_from_the_patients_appointments_page(page, live_server, reception_a, week, js_errors):
    therapist, kind, location, (first, second) = week
    clinic = reception_a.clinic
    patient = PatientFactory(clinic=clinic, first_name="Rosa", last_name="Vale")
    local = first.starts_at.astimezone(LONDON)
    rule = RecurrenceRule(Frequency.WEEKLY, start=local.date(), time=local.time().replace(tzinfo=None), count=2)
    series_book(
        clinic=clinic,
        actor=reception_a.user,
        membership=reception_a,
        request=SeriesRequest(
            booking=BookingRequest(slot=first, patient=patient, slot_type=kind, self_pay=True),
            practitioner=therapist,
            rule=rule,
            time_zone="Europe/London",
            plan=[
                PlannedOccurrence(first.starts_at, first),
                PlannedOccurrence(first.starts_at + dt.timedelta(days=7), None),  # no session: a draft
            ],
        ),
    )
    draft = DraftOccurrence.objects.get()
    errors = htmx_target_errors(page)
    sign_in(page, live_server, reception_a)
    page.goto(live_server.url + reverse("scheduling:patient-appointments", args=[patient.public_id]))
    page.get_by_role("link", name="Place…").click()
    body = page.get_by_role("main")
    body.get_by_label("New date").fill(f"{second.starts_at.astimezone(LONDON):%Y-%m-%d}")
    body.get_by_role("button", name="Show slots", exact=True).click()
    body.get_by_role("button", name="Use this slot", exact=True).click()
    body.get_by_role("button", name="Confirm edits", exact=True).click()
    when = f"{second.starts_at.astimezone(LONDON):%a %-d %b %Y}, 10:00"
    expect(page.get_by_text(f"Placed Rosa Vale's draft: booked on {when}.")).to_be_visible()
    draft.refresh_from_db()
    assert draft.appointment is not None and draft.appointment.slot == second
    assert errors == [] and js_errors == []
