"""Who may see or change which scheduling object: the helpers every scheduling view starts with.

Each turns a URL's id into the object or a 404. The clinic is inside the query, so another clinic's object
is a 404, never a 403 that confirms it exists; an appointment or draft of a blocked patient is a 404 for a
member without "Privacy: Access Blocked Patients". "Who manages whose calendar" lives here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from django.core.exceptions import PermissionDenied

from clinic.access import ClinicRequest, scoped_get_or_404
from clinic.models import Membership, NamedPermission, Practitioner, Role
from clinic.selectors import practitioners_list
from patients.access import let_in
from patients.models import visible_patients
from scheduling.models import (
    Allocation,
    Appointment,
    AvailabilityOverride,
    DraftOccurrence,
    OtherEvent,
    Session,
    Slot,
    WaitlistEntry,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet


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


def own_practitioner(request: ClinicRequest) -> Practitioner | None:
    """The clinician's own practitioner record (a clinician's calendar opens on it); None for other roles."""
    if request.membership.role != Role.CLINICIAN:
        return None
    return practitioners_list(clinic=request.clinic).filter(user=request.user, is_active=True).first()


def slot_for_member(request: ClinicRequest, slot_id: UUID | str | None) -> Slot:
    """The slot with its session, practitioner, location and type (an id from a form may be anything)."""
    return scoped_get_or_404(
        Slot.objects.for_clinic(request.clinic).select_related(
            "session", "session__practitioner", "session__location", "slot_type"
        ),
        request.clinic,
        public_id=slot_id,
    )


def appointment_for_member(request: ClinicRequest, appointment_id: UUID) -> Appointment:
    """An appointment of this clinic whose patient this member may see, with what its pages show. A blocked
    patient's is a 404 without the permission, unless a break-glass grant lets this member in to that patient (then
    `appointment.patient.break_glass` names the grant, for the audit)."""
    appointment = scoped_get_or_404(
        Appointment.objects.for_clinic(request.clinic).select_related(
            "patient",
            "slot",
            "slot__session",
            "slot__session__location",
            "practitioner",
            "slot_type",
            "department",
            "series",
        ),
        request.clinic,
        public_id=appointment_id,
    )
    let_in(request, appointment.patient)
    return appointment


def draft_for_member(request: ClinicRequest, draft_id: UUID) -> DraftOccurrence:
    """A draft occurrence of this clinic whose patient this member may see, with its series."""
    return scoped_get_or_404(
        DraftOccurrence.objects.for_clinic(request.clinic)
        .filter(visible_patients(request.membership, through="series__patient"))
        .select_related("series", "series__patient", "series__practitioner", "series__slot_type"),
        request.clinic,
        public_id=draft_id,
    )


def allocation_for_manager(request: ClinicRequest, allocation_id: UUID) -> Allocation:
    """An allocation of the rota, with its template, practitioner and location (the view checks the permission)."""
    return scoped_get_or_404(
        Allocation.objects.for_clinic(request.clinic).select_related("template", "practitioner", "location"),
        request.clinic,
        public_id=allocation_id,
    )


def event_for_manager(request: ClinicRequest, event_id: UUID) -> OtherEvent:
    """An other event this member may change: on their own calendar, or anyone's for admins and schedulers."""
    event = scoped_get_or_404(
        OtherEvent.objects.for_clinic(request.clinic).select_related("practitioner"), request.clinic, public_id=event_id
    )
    if not may_manage_calendar_of(request.membership, event.practitioner):
        raise PermissionDenied("Only the practitioner, an admin or a scheduler can change this event.")
    return event


def practitioner_for_manager(request: ClinicRequest, practitioner_id: UUID) -> Practitioner:
    """A practitioner whose hours and availability this member may set."""
    practitioner = scoped_get_or_404(Practitioner, request.clinic, public_id=practitioner_id)
    if not may_manage_calendar_of(request.membership, practitioner):
        raise PermissionDenied("You can set only your own hours.")
    return practitioner


def override_for_manager(request: ClinicRequest, override_id: UUID) -> AvailabilityOverride:
    """A date override of availability this member may change."""
    override = scoped_get_or_404(
        AvailabilityOverride.objects.for_clinic(request.clinic).select_related("practitioner"),
        request.clinic,
        public_id=override_id,
    )
    if not may_manage_calendar_of(request.membership, override.practitioner):
        raise PermissionDenied("You can change only your own availability.")
    return override


def session_for_manager(request: ClinicRequest, session_id: UUID) -> Session:
    """A dated session with its practitioner and location (the view checks "Setup: Manage Sessions")."""
    return scoped_get_or_404(
        Session.objects.for_clinic(request.clinic).select_related("practitioner", "location"),
        request.clinic,
        public_id=session_id,
    )


def may_handle_displaced(membership: Membership) -> bool:
    """Who works the displaced patients' worklist: reception and admins (they book), and whoever manages sessions."""
    return membership.role in (Role.ADMIN, Role.RECEPTION) or membership.has_permission(NamedPermission.MANAGE_SESSIONS)


def require_displaced_handler(request: ClinicRequest) -> None:
    if not may_handle_displaced(request.membership):
        raise PermissionDenied("Reception and admins deal with displaced patients.")


def may_use_waitlist(membership: Membership) -> bool:
    """Reception and admins keep the waitlist (clinicians read their calendars)."""
    return membership.role in (Role.ADMIN, Role.RECEPTION)


def waitlist_keeper(request: ClinicRequest) -> None:
    if not may_use_waitlist(request.membership):
        raise PermissionDenied("Only reception and admins keep the waiting list.")


def entry_for_member(request: ClinicRequest, entry_id: UUID) -> WaitlistEntry:
    """A waitlist entry of this clinic whose patient this member may see (else 404), with what its page shows."""
    waitlist_keeper(request)
    return scoped_get_or_404(
        WaitlistEntry.objects.for_clinic(request.clinic)
        .filter(visible_patients(request.membership, through="patient"))
        .select_related(
            "patient",
            "slot__session__practitioner",
            "slot__session__location",
            "slot__slot_type",
            "allocation__template",
            "allocation__practitioner",
            "practitioner",
            "slot_type",
            "added_by",
        ),
        request.clinic,
        public_id=entry_id,
    )
