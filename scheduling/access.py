"""Who may see or change which scheduling object: the helpers every scheduling view starts with.

Objects are fetched with the clinic inside the query, so another clinic's object is a 404; a member
without "Privacy: Access Blocked Patients" gets a 404 for a blocked patient's appointment or draft too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clinic.models import Membership, Practitioner, Role
from clinic.selectors import practitioners_list

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from clinic.access import ClinicRequest


def manages_every_calendar(membership: Membership) -> bool:
    """Admins and schedulers manage everyone's calendar, hours and availability, and the practice default."""
    return membership.role in (Role.ADMIN, Role.RECEPTION)


def may_manage_calendar_of(membership: Membership, practitioner: Practitioner | None) -> bool:
    """Whether the member may change this practitioner's calendar (a clinician: only their own)."""
    if manages_every_calendar(membership):
        return True
    return practitioner is not None and practitioner.user_id == membership.user_id


def manageable_practitioners(request: ClinicRequest) -> QuerySet[Practitioner]:
    """The active practitioners whose calendar this member may change, by name."""
    practitioners = practitioners_list(clinic=request.clinic).filter(is_active=True).order_by("name")
    if manages_every_calendar(request.membership):
        return practitioners
    return practitioners.filter(user=request.user)
