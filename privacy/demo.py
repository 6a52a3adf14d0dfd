"""Demo break-glass for `manage.py seed_demo` (idempotent): at Riverside, the receptionist broke glass for the
blocked demo patient an hour ago and opened the record once; it waits in the Break-glass review of the admin (a
privacy officer). No alert is recorded: demo addresses are not mailed."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from clinic.models import AuditEvent, Clinic, Membership, Role
from patients.models import Patient
from privacy.models import BREAK_GLASS_MINUTES, BreakGlass, BreakGlassCategory

DEMO_CLINIC = "riverside"


@transaction.atomic
def seed_clinic(clinic: Clinic) -> None:
    if clinic.slug != DEMO_CLINIC or BreakGlass.objects.for_clinic(clinic).exists():
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
