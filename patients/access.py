"""Who may see or change which patient: the helpers every patient view starts with.

A patient of another clinic, or a blocked one for a member without "Privacy: Access Blocked Patients",
is a 404: the page never confirms that the record exists. The one way in to a blocked patient without the
permission is what an observer of patients.signals.blocked_access_query answers for (privacy's break-glass
grant: this member, this patient, for a short time); the patient then carries the grant's id (break_glass).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import UUID

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBase

from clinic.access import ClinicRequest, scoped_get_or_404
from clinic.models import Role
from patients import selectors
from patients.models import Coverage, Patient, may_see_blocked
from patients.signals import blocked_access_grant, restricted_match_action


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


def let_in(request: ClinicRequest, patient: Patient) -> Patient:
    """The patient, if this member may see them: a blocked one only with the permission or a grant (404 without)."""
    if patient.is_blocked and not may_see_blocked(request.membership):
        patient.break_glass = blocked_access_grant(membership=request.membership, patient=patient)
        if patient.break_glass is None:
            raise Http404("No such object.")
    return patient


def patient_for_member(request: ClinicRequest, public_id: UUID | str) -> Patient:
    """A patient of this clinic (archived too, with coverage) that this member may see, or 404."""
    patient = scoped_get_or_404(
        selectors.patient_detail(clinic=request.clinic, membership=request.membership, blocked_too=True),
        request.clinic,
        public_id=public_id,
    )
    return let_in(request, patient)


def patient_to_change(request: ClinicRequest, public_id: UUID | str) -> Patient:
    """A patient this member may change the record of: as patient_for_member, but break-glass opens and books a
    blocked patient, it never changes their record (403)."""
    patient = patient_for_member(request, public_id)
    if patient.break_glass:
        raise PermissionDenied("Break-glass lets you open and book this patient, not change their record.")
    return patient


def active_patient_for_member(request: ClinicRequest, public_id: UUID | str) -> Patient:
    """A patient of this clinic, not archived, that this member may see, or 404 (nothing else loaded)."""
    patient = scoped_get_or_404(
        selectors.patients_visible(clinic=request.clinic, membership=request.membership, blocked_too=True),
        request.clinic,
        public_id=public_id,
    )
    return let_in(request, patient)


def coverage_for_member(request: ClinicRequest, patient: Patient, coverage_id: UUID) -> Coverage:
    """One of this patient's insurance plans, or 404."""
    return scoped_get_or_404(
        Coverage.objects.for_clinic(request.clinic).filter(patient=patient), request.clinic, public_id=coverage_id
    )


def restricted_search_row(
    request: ClinicRequest, query: str, next_url: Callable[[Patient], str]
) -> dict[str, Any] | None:
    """A search's one row for a blocked patient it names exactly by an identifier, for a member who may not see
    them: what an observer offers (privacy: break glass to open it, then go to next_url), never who it is. None
    for anything else (see selectors.restricted_match)."""
    match = selectors.restricted_match(clinic=request.clinic, membership=request.membership, query=query)
    if match is None:
        return None
    return restricted_match_action(request=request, patient=match, next_url=next_url(match))
