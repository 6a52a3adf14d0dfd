"""Who may see or change which online-booking object on the staff side.

Reception and admins answer online requests; a request of another clinic, or of a blocked patient for a member
without "Privacy: Access Blocked Patients", is a 404. The online settings are the admins'
(clinic.access.admin_required). The public site has no members: its pages are @public and name what they show
by signed or random keys.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import UUID

from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBase

from clinic.access import ClinicRequest, scoped_get_or_404
from clinic.models import Membership, Role
from online.models import OnlineBooking
from patients.models import visible_patients


def may_answer_requests(membership: Membership | None) -> bool:
    return membership is not None and membership.role in (Role.ADMIN, Role.RECEPTION)


def answers_requests(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    @wraps(view)
    def wrapper(request: ClinicRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not may_answer_requests(request.membership):
            raise PermissionDenied("Only reception and admins answer online requests.")
        return view(request, *args, **kwargs)

    return wrapper


def request_for_member(request: ClinicRequest, booking_id: UUID) -> OnlineBooking:
    return scoped_get_or_404(
        OnlineBooking.objects.for_clinic(request.clinic)
        .filter(visible_patients(request.membership, through="patient"))
        .select_related("patient", "slot", "slot_type", "hold"),
        request.clinic,
        public_id=booking_id,
    )
