"""Who may see or change which notifications object: the helpers every notifications page starts with.

A message of another clinic, or about a blocked patient for a member without "Privacy: Access Blocked Patients",
is a 404: the page never confirms that it exists. Reception and admins read the Messages log and send a message
again; the clinic's settings for messages are the admins' (clinic.access.admin_required).
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
from notifications.models import Message
from patients.models import visible_patients


def may_handle_messages(membership: Membership) -> bool:
    """Reception and admins read the Messages log, send a message again and record a patient's choices."""
    return membership.role in (Role.ADMIN, Role.RECEPTION)


def handles_messages(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    @wraps(view)
    def wrapper(request: ClinicRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not may_handle_messages(request.membership):
            raise PermissionDenied("Only reception and admins handle messages to patients.")
        return view(request, *args, **kwargs)

    return wrapper


def message_for_member(request: ClinicRequest, message_id: UUID) -> Message:
    """A message of this clinic about a patient this member may see, with its patient and appointment."""
    return scoped_get_or_404(
        Message.objects.for_clinic(request.clinic)
        .filter(visible_patients(request.membership, through="patient"))
        .select_related("patient", "appointment"),
        request.clinic,
        public_id=message_id,
    )
