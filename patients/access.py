"""Who may see or change which patient: the helpers every patient view starts with.

A patient of another clinic, or a blocked one for a member without "Privacy: Access Blocked Patients",
is a 404: the page never confirms that the record exists.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import UUID

from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBase

from clinic.access import ClinicRequest, scoped_get_or_404
from clinic.models import Role
from patients import selectors
from patients.models import Coverage, Patient


def can_edit_patients(request: ClinicRequest) -> bool:
    return request.membership.role in (Role.ADMIN, Role.RECEPTION)


def edits_patients(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Reception and admins register and edit patients; clinicians read."""

    @wraps(view)
    def wrapper(request: ClinicRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not can_edit_patients(request):
            raise PermissionDenied("Only reception and admins can change patient records.")
        return view(request, *args, **kwargs)

    return wrapper


def patient_for_member(request: ClinicRequest, public_id: UUID | str) -> Patient:
    """A patient of this clinic (archived too, with coverage) that this member may see, or 404."""
    return scoped_get_or_404(
        selectors.patient_detail(clinic=request.clinic, membership=request.membership),
        request.clinic,
        public_id=public_id,
    )


def active_patient_for_member(request: ClinicRequest, public_id: UUID | str) -> Patient:
    """A patient of this clinic, not archived, that this member may see, or 404 (nothing else loaded)."""
    return scoped_get_or_404(
        selectors.patients_visible(clinic=request.clinic, membership=request.membership),
        request.clinic,
        public_id=public_id,
    )


def coverage_for_member(request: ClinicRequest, patient: Patient, coverage_id: UUID) -> Coverage:
    """One of this patient's insurance plans, or 404."""
    return scoped_get_or_404(
        Coverage.objects.for_clinic(request.clinic).filter(patient=patient), request.clinic, public_id=coverage_id
    )
