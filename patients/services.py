"""Writes of patients: numbering, create/update/archive, coverage, audited views, CSV import."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F

from clinic.services import audit_record
from patients.models import Coverage, InternalIdCounter, Patient, format_internal_id

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.forms import ModelForm

    from clinic.models import Clinic


def internal_ids_reserve(*, clinic: Clinic, count: int) -> list[str]:
    """Reserve `count` new internal IDs for the clinic (call inside a transaction)."""
    counters = InternalIdCounter.objects.for_clinic(clinic)
    counter, _ = counters.select_for_update().get_or_create(clinic=clinic)
    counters.filter(pk=counter.pk).update(last_number=F("last_number") + count)
    return [format_internal_id(counter.last_number + i) for i in range(1, count + 1)]


def patient_save(*, clinic: Clinic, actor: User, form: ModelForm) -> Patient:
    """Create or update a patient from a validated form; a new one gets the next internal ID."""
    patient = form.instance
    created = patient._state.adding
    with transaction.atomic():
        if created:
            patient.clinic = clinic
            patient.internal_id = internal_ids_reserve(clinic=clinic, count=1)[0]
        form.save()
        audit_record(
            clinic=clinic,
            actor=actor,
            action=f"patient.{'created' if created else 'updated'}",
            target=patient,
            # Which fields changed, never their values: patient data stays out of the audit detail.
            detail={"fields": sorted(form.changed_data)},
        )
    return patient


def patient_archive(*, clinic: Clinic, actor: User, patient: Patient, archived: bool = True) -> Patient:
    """Archive (or restore) a patient. Patients are never hard-deleted."""
    with transaction.atomic():
        patient.is_archived = archived
        patient.save(update_fields=["is_archived", "updated_at"])
        audit_record(
            clinic=clinic, actor=actor, action="patient.archived" if archived else "patient.restored", target=patient
        )
    return patient


def patient_record_opened(*, clinic: Clinic, actor: User, patient: Patient, view: str) -> None:
    """Every opening of a blocked patient's record or quickview is audited."""
    if patient.is_blocked:
        audit_record(clinic=clinic, actor=actor, action="patient.blocked_viewed", target=patient, detail={"view": view})


def coverage_delete(*, clinic: Clinic, actor: User, coverage: Coverage) -> None:
    with transaction.atomic():
        audit_record(
            clinic=clinic,
            actor=actor,
            action="coverage.deleted",
            target=coverage,
            detail={"patient": str(coverage.patient.public_id)},
        )
        coverage.delete()


def patients_import(*, clinic: Clinic, actor: User, patients: Sequence[Patient]) -> int:
    """Create validated patients from an import in one transaction, numbering them in order."""
    with transaction.atomic():
        for patient, internal_id in zip(
            patients, internal_ids_reserve(clinic=clinic, count=len(patients)), strict=True
        ):
            patient.clinic = clinic
            patient.internal_id = internal_id
            patient.save()
        audit_record(clinic=clinic, actor=actor, action="patient.imported", detail={"count": len(patients)})
    return len(patients)
