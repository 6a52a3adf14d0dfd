"""privacy's part of `manage.py seed_demo` (idempotent), at Riverside:

- a use of break-glass waiting for review: the receptionist broke glass for the blocked demo patient an hour ago and
  opened the record once; it waits in the Break-glass review of the admin (a privacy officer). No alert is recorded:
  demo addresses are not mailed;
- a patient whose only appointments are older than the clinic's retention period, so a demo admin can try Export
  patient data and Erase record on them.
"""

from __future__ import annotations

import datetime as dt

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.utils import timezone

from clinic.models import AuditEvent, Clinic, Membership, Practitioner, Role
from patients.models import Patient
from patients.services import internal_ids_reserve
from privacy.models import BREAK_GLASS_MINUTES, BreakGlass, BreakGlassCategory
from scheduling.services.booking import BookingRequest, appointment_book, appointment_status_set
from scheduling.services.rota import AllocationRequest, allocation_create
from sessions_setup.models import SessionTemplate

DEMO_CLINIC = "riverside"
FIRST_NAME, LAST_NAME = "Edith", "Longago"


@transaction.atomic
def seed_clinic(clinic: Clinic) -> None:
    if clinic.slug != DEMO_CLINIC:
        return
    seed_break_glass(clinic)
    seed_patient_past_retention(clinic)


def seed_break_glass(clinic: Clinic) -> None:
    if BreakGlass.objects.for_clinic(clinic).exists():
        return
    patient = Patient.objects.for_clinic(clinic).filter(is_blocked=True, is_archived=False).order_by("pk").first()
    member = (
        Membership.objects.for_clinic(clinic)
        .filter(role=Role.RECEPTION, perm_access_blocked_patients=False, is_active=True)
        .select_related("user")
        .order_by("pk")
        .first()
    )
    if patient is None or member is None:
        return
    started = timezone.now() - dt.timedelta(hours=1)
    use = BreakGlass.objects.create(
        clinic=clinic,
        membership=member,
        patient=patient,
        category=BreakGlassCategory.CLINICAL_EMERGENCY,
        reason="Patient collapsed in the waiting room; the duty GP needed their allergies and current medication.",
        started_at=started,
        expires_at=started + dt.timedelta(minutes=BREAK_GLASS_MINUTES),
    )
    grant = str(use.public_id)
    target = {"object_type": "patients.patient", "object_id": str(patient.public_id)}
    for action, detail, minutes in (
        ("privacy.break_glass", {"break_glass": grant, "category": use.category, "minutes": BREAK_GLASS_MINUTES}, 0),
        ("patient.blocked_viewed", {"view": "record", "break_glass": grant}, 1),
    ):
        event = AuditEvent.objects.create(clinic=clinic, actor=member.user, action=action, detail=detail, **target)
        # auto_now_add: the time of the demo use is set after.
        AuditEvent.objects.for_clinic(clinic).filter(pk=event.pk).update(
            created_at=started + dt.timedelta(minutes=minutes)
        )


def seed_patient_past_retention(clinic: Clinic) -> None:
    if Patient.objects.for_clinic(clinic).filter(first_name=FIRST_NAME, last_name=LAST_NAME).exists():
        return  # seeded once (or erased since: the demo leaves what the user did)
    admin = Membership.objects.for_clinic(clinic).filter(role=Role.ADMIN).select_related("user").first()
    practitioner = Practitioner.objects.for_clinic(clinic).filter(is_active=True).order_by("name").first()
    template = SessionTemplate.objects.for_clinic(clinic).order_by("position", "id").first()
    if admin is None or practitioner is None or template is None or practitioner.default_location is None:
        return
    (internal_id,) = internal_ids_reserve(clinic=clinic, count=1)
    patient = Patient.objects.create(
        clinic=clinic,
        title="Mrs",
        first_name=FIRST_NAME,
        last_name=LAST_NAME,
        date_of_birth=dt.date(1931, 5, 17),
        sex=Patient.Sex.FEMALE,
        internal_id=internal_id,
        mobile_phone="07700 900318",
        email="edith.longago@example.com",
        address="3 Old Mill Lane\nRiverside",
        postcode="RV1 9ZZ",
        notes="Moved away; last seen years ago.",
    )
    # Two visits more than the clinic's retention period ago (8 years by default), so erasure is allowed.
    today = clinic.today()
    for years in (clinic.retention_years + 2, clinic.retention_years + 1):
        day = today - relativedelta(years=years)
        request = AllocationRequest(template, practitioner, practitioner.default_location, dt.time(9), day, day, (), 1)
        session = allocation_create(clinic=clinic, actor=admin.user, request=request).sessions.get()
        slot = session.slots.filter(bookable=True).order_by("starts_at").first()
        if slot is None:
            continue
        booked = appointment_book(
            clinic=clinic, actor=admin.user, membership=admin, request=BookingRequest(slot, patient), tell=False
        )
        for status in ("arrived", "in_consultation", "completed"):
            appointment_status_set(clinic=clinic, actor=admin.user, appointment=booked, status=status)
