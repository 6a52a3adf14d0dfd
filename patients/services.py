"""Writes of patients: numbering, create/update/archive, coverage, audited views, CSV import."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Model

from clinic.services import audit_record
from patients import selectors
from patients.display import staff_label
from patients.models import Coverage, InternalIdCounter, Patient, format_internal_id, may_see_blocked

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.forms import ModelForm

    from clinic.models import Clinic, Membership

# What a member who may not see blocked patients is told when a blocked patient holds the national ID they
# typed: it names nobody and does not say that anybody holds it (a mistyped number gets the same advice).
NATIONAL_ID_UNUSABLE = "This national ID cannot be used: check it, or ask a member who can see restricted records."


def internal_ids_reserve(*, clinic: Clinic, count: int) -> list[str]:
    """Reserve `count` new internal IDs for the clinic (call inside a transaction)."""
    counters = InternalIdCounter.objects.for_clinic(clinic)
    counter, _ = counters.select_for_update().get_or_create(clinic=clinic)
    counters.filter(pk=counter.pk).update(last_number=F("last_number") + count)
    return [format_internal_id(counter.last_number + i) for i in range(1, count + 1)]


def national_id_refusal(
    *, clinic: Clinic, actor: User | None, membership: Membership | None, holder: Patient, via: str, line: int = 0
) -> str:
    """Why a national identifier that `holder` has cannot be registered again, worded for this member.

    A member who may see the holder is told who it is. A member who may not (a blocked patient, without
    "Privacy: Access Blocked Patients") learns nothing about them (NATIONAL_ID_UNUSABLE), and the attempt is
    audited: the holder is the target; the identifier itself is never recorded.
    """
    if not holder.is_blocked or may_see_blocked(membership):
        label = staff_label(
            first_name=holder.first_name,
            last_name=holder.last_name,
            preferred_name=holder.preferred_name,
            internal_id=holder.internal_id,
            is_blocked=holder.is_blocked,
            may_see_blocked=True,
            internal_ids_enabled=clinic.internal_ids_enabled,
        )
        marks = [word for word, on in (("blocked", holder.is_blocked), ("archived", holder.is_archived)) if on]
        more = f" ({', '.join(marks)})" if marks else ""
        return f"Another patient of this clinic has this national identifier: {label}{more}."
    detail: dict[str, object] = {"via": via} | ({"line": line} if line else {})
    audit_record(clinic=clinic, actor=actor, action="patient.national_id_refused", target=holder, detail=detail)
    return NATIONAL_ID_UNUSABLE


def patient_save(*, clinic: Clinic, actor: User, membership: Membership, form: ModelForm) -> Patient:
    """Create or update a patient from a validated form; a new one gets the next internal ID.

    A national identifier another patient of the clinic has is refused (ValidationError on the field), worded
    for the member by national_id_refusal; the refusal's audit row is written before, and apart from, the save.
    """
    patient = form.instance
    created = patient._state.adding
    number = form.cleaned_data.get("national_id")
    if number:
        holders = selectors.national_id_holders(
            clinic=clinic, national_ids=[number], exclude_pk=None if created else patient.pk
        )
        if number in holders:
            refusal = national_id_refusal(
                clinic=clinic, actor=actor, membership=membership, holder=holders[number], via="form"
            )
            raise ValidationError({"national_id": refusal})
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
    """Every opening of a blocked patient's record or quickview is audited (as break-glass, with the grant's id,
    when a grant let the member in: see patients.access)."""
    if patient.is_blocked:
        detail: dict[str, object] = {"view": view}
        if patient.break_glass:
            detail["break_glass"] = patient.break_glass
        audit_record(clinic=clinic, actor=actor, action="patient.blocked_viewed", target=patient, detail=detail)


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


def patient_register_online(
    *, clinic: Clinic, first_name: str, last_name: str, date_of_birth: dt.date, email: str, mobile_phone: str
) -> Patient:
    """A new patient from an online booking that matched nobody, marked for reception to check (or merge)."""
    with transaction.atomic():
        patient = Patient(
            clinic=clinic,
            internal_id=internal_ids_reserve(clinic=clinic, count=1)[0],
            first_name=first_name.strip(),
            last_name=last_name.strip(),
            date_of_birth=date_of_birth,
            email=email.strip(),
            mobile_phone=mobile_phone.strip(),
            registered_online=True,
        )
        patient.save()
        audit_record(clinic=clinic, actor=None, action="patient.registered_online", target=patient)
    return patient


def _rows_pointing_at_patients() -> list[tuple[type[Model], Any]]:
    """Every model's foreign key (or one-to-one) to Patient, whatever app it is in (patients imports none)."""
    return [
        (model, field)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if getattr(field, "concrete", False)
        and field.is_relation
        and (field.many_to_one or field.one_to_one)
        and field.related_model is Patient
    ]


class MergeError(ValidationError):
    """Two records that cannot be merged; the message says why and nothing is changed."""


def patient_merge(*, clinic: Clinic, actor: User, keep: Patient, duplicate: Patient) -> Patient:
    """Merge a duplicate record into the patient it really is: everything that points at the duplicate (its
    appointments, series, messages, plans...) moves to `keep`, and the duplicate is archived, pointing nowhere.
    Audited. All or nothing: where both records have a row only one may have (both booked into one slot, two
    contact preferences), the merge is refused with the reason or the duplicate's row is dropped in favour of
    the kept one's (a one-to-one row such as a contact preference)."""
    if keep.pk == duplicate.pk or keep.clinic_id != clinic.pk or duplicate.clinic_id != clinic.pk:
        raise MergeError("Choose two different patients of this clinic.")
    if keep.is_archived:
        raise MergeError("The patient to keep is archived; restore it first.")
    moved: dict[str, int] = {}
    try:
        with transaction.atomic():
            for model, field in _rows_pointing_at_patients():
                rows = model._base_manager.filter(**{field.name: duplicate})
                if field.one_to_one and model._base_manager.filter(**{field.name: keep}).exists():
                    rows.delete()  # one only (a contact preference): the kept patient's stands
                    continue
                count = rows.update(**{field.name: keep})
                if count:
                    moved[model._meta.label_lower] = count
            duplicate.is_archived = True
            duplicate.registered_online = False
            duplicate.save(update_fields=["is_archived", "registered_online", "updated_at"])
            if keep.registered_online:
                keep.registered_online = False
                keep.save(update_fields=["registered_online", "updated_at"])
            audit_record(
                clinic=clinic,
                actor=actor,
                action="patient.merged",
                target=keep,
                detail={"duplicate": str(duplicate.public_id), "moved": moved},
            )
    except IntegrityError as error:
        raise MergeError(
            "Both records are booked into the same time (or hold another row only one may have): cancel the "
            "duplicate's booking first, then merge."
        ) from error
    return keep
