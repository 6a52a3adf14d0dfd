"""Reads of the tenant core, scoped to a clinic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Count, Q, QuerySet

from clinic.models import AuditEvent, Department, Location, Membership, Practitioner

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic


def memberships_of_user(*, user: User) -> QuerySet[Membership]:
    """The clinics a user can switch between."""
    return Membership.objects.filter(user=user, is_active=True).select_related("clinic").order_by("clinic__name")


def locations_list(*, clinic: Clinic) -> QuerySet[Location]:
    return Location.objects.for_clinic(clinic).annotate(
        practitioner_count=Count("practitioners", filter=Q(practitioners__is_active=True))
    )


def departments_list(*, clinic: Clinic) -> QuerySet[Department]:
    return Department.objects.for_clinic(clinic)


def practitioners_list(*, clinic: Clinic) -> QuerySet[Practitioner]:
    return Practitioner.objects.for_clinic(clinic).select_related("default_location", "user")


def members_list(*, clinic: Clinic) -> QuerySet[Membership]:
    return Membership.objects.for_clinic(clinic).select_related("user")


def audit_events_list(*, clinic: Clinic) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.for_clinic(clinic).select_related("actor")


def clinic_overview(*, clinic: Clinic) -> dict[str, int]:
    """Counts for the home page, in one query per table."""
    return {
        "locations": Location.objects.for_clinic(clinic).filter(is_active=True).count(),
        "departments": Department.objects.for_clinic(clinic).filter(is_active=True).count(),
        "practitioners": Practitioner.objects.for_clinic(clinic).filter(is_active=True).count(),
        "members": Membership.objects.for_clinic(clinic).filter(is_active=True).count(),
    }
