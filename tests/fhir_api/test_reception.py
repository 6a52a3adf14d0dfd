"""Reception sees what a consumer booked (item 6): the source "fhir" and the consumer's name on the calendar's
badge and title, in the slot's popup and on the appointment page, with the consumer's own section; and such an
appointment behaves like any other (reception can cancel it, and the consumer reads that)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from scheduling.grid_html import drawn
from scheduling.models import Appointment, AppointmentStatus
from scheduling.services.booking import appointment_cancel
from tests.fhir_api.conftest import booking_body, next_week_day

pytestmark = pytest.mark.django_db

NAMED = "Booked through the FHIR API by NHS 111"


@pytest.fixture
def booked(api, gp_session, patient) -> Appointment:
    slot = gp_session.slots.order_by("starts_at").first()
    response = api.post("/fhir/Appointment", booking_body(str(slot.public_id), str(patient.public_id)))
    assert response.status_code == 201, response.content
    return Appointment.objects.get(public_id=response.json()["id"])


def test_the_calendar_names_the_consumer(reception_client_a, practice, booked):
    day = next_week_day(practice)
    page = reception_client_a.get(reverse("scheduling:calendar"), {"view": "day", "date": day.isoformat()})
    html = page.content.decode()
    html = drawn(html)  # its slots as calendar.js draws them
    assert page.status_code == 200
    assert f'aria-label="{NAMED}"' in html  # the badge's name
    assert "booked through the FHIR API by NHS 111" in html  # the slot's title


def test_the_slot_popup_and_the_appointment_page_name_the_consumer(reception_client_a, booked):
    tip = reception_client_a.get(reverse("scheduling:slot", args=[booked.slot.public_id]))
    assert NAMED in tip.content.decode()
    page = reception_client_a.get(reverse("scheduling:appointment", args=[booked.public_id]))
    html = page.content.decode()
    assert NAMED in html
    assert "Booked through the FHIR API</h2>" in html
    assert "Sore throat, fever for 3 days" in html  # the description the consumer gave
    assert "NHS 111 North" in html  # the booking organisation it named
    assert "Dr Triage (SDS 555)" in html  # the requesting practitioner


def test_a_reception_booking_names_no_consumer(reception_client_a, gp_session, patient, practice):
    from tests.factories import book

    slot = gp_session.slots.order_by("starts_at").last()
    appointment = book(slot, patient)
    page = reception_client_a.get(reverse("scheduling:appointment", args=[appointment.public_id]))
    assert "FHIR" not in page.content.decode()


def test_reception_cancels_a_fhir_booking_and_the_consumer_reads_the_category_not_the_reason(
    api, practice, booked, reception_a
):
    appointment_cancel(
        clinic=practice,
        actor=reception_a.user,
        appointment=booked,
        reason="GP off sick; private detail",
        category="clinician",
    )
    read = api.get(f"/fhir/Appointment/{booked.public_id}").json()
    assert read["status"] == "cancelled"
    assert read["cancelationReason"]["text"] == "The clinician is unavailable"
    assert "private" not in str(read)
    booked.refresh_from_db()
    assert booked.status == AppointmentStatus.CANCELLED
