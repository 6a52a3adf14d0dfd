"""Demo online booking for `manage.py seed_demo` (seeded once per clinic): online booking on, one practitioner
whose bookings are requests, and a booking and a request by patients on file made through the real flow (a code
checked, the patient matched, then booked or held), so reception meets a badge in the calendar and a request in
the queue."""

from __future__ import annotations

import datetime as dt
import secrets
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from clinic.models import Clinic, Practitioner
from online import services
from online.models import BookingMode, EmailCheck, OnlineBooking, OnlineSettings, PractitionerOnline
from online.selectors import free_times, online_practitioners, online_types
from patients.models import Patient
from sessions_setup.models import SlotType

INTRO = {
    "riverside": "Book a routine GP appointment. For anything urgent, call us or NHS 111.",
    "lakeview": "Existing clients can book a telehealth session with their therapist.",
}
PHONE = {"riverside": "01632 960 100", "lakeview": "(212) 555-0142"}
REQUESTS_FROM = {"riverside": "Dr Omar Patel"}
REASONS = ["A rash that keeps coming back", "Blood pressure review"]


@transaction.atomic
def seed_clinic(clinic: Clinic) -> None:
    if clinic.slug not in INTRO or OnlineSettings.objects.for_clinic(clinic).exists():
        return
    online = OnlineSettings.objects.create(
        clinic=clinic, enabled=True, intro=INTRO[clinic.slug], phone=PHONE[clinic.slug]
    )
    if name := REQUESTS_FROM.get(clinic.slug):
        for practitioner in Practitioner.objects.for_clinic(clinic).filter(name=name):
            PractitionerOnline.objects.create(
                clinic=clinic, practitioner=practitioner, accepts=True, mode=BookingMode.REQUEST
            )
    kinds = online_types(clinic)
    if not kinds:
        return
    found = free_times(
        clinic=clinic,
        online=online,
        slot_type=kinds[0],
        practitioners=online_practitioners(clinic),
        location=None,
        zone=ZoneInfo(clinic.time_zone),
        now=timezone.now(),
    )
    places = [place for day in sorted(found.by_day) for place in found.by_day[day]]
    instant = next((p for p in places if p.practitioner != REQUESTS_FROM.get(clinic.slug)), None)
    requested = next((p for p in places if p.practitioner == REQUESTS_FROM.get(clinic.slug)), None)
    # Patients already on file book (and are matched by birth date, first name and email).
    people = Patient.objects.for_clinic(clinic).filter(is_blocked=False, is_archived=False).exclude(email="")[:2]
    for place, patient, reason in zip((instant, requested), people, REASONS, strict=False):
        if place is not None:
            _book(clinic, online, kinds[0], str(place.slot), patient, reason)


def _book(
    clinic: Clinic, online: OnlineSettings, slot_type: SlotType, slot: str, patient: Patient, reason: str
) -> OnlineBooking:
    """A booking through the real flow: the check the details form leaves, then its code typed."""
    first, last, born = patient.first_name, patient.last_name, patient.date_of_birth.isoformat()
    email, mobile = patient.email, patient.mobile_phone
    token, code = secrets.token_urlsafe(24), f"{secrets.randbelow(1_000_000):06d}"
    EmailCheck.objects.create(
        clinic=clinic,
        token=token,
        code_hash=services._code_hash(token, code),
        email=email,
        details={
            "first_name": first,
            "last_name": last,
            "date_of_birth": born,
            "email": email,
            "mobile": mobile,
            "reason": reason,
            "slot": slot,
            "slot_type": str(slot_type.public_id),
        },  # fmt: skip
        expires_at=timezone.now() + dt.timedelta(minutes=services.CODE_MINUTES),
    )
    return services.check_verify(clinic=clinic, online=online, token=token, code=code)
