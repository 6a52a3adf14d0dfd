"""The tenant core: clinics, their sites and people, memberships and the audit trail."""

from __future__ import annotations

import datetime
import uuid
import zoneinfo
from functools import cache
from typing import Any, Self

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


@cache
def known_time_zones() -> frozenset[str]:
    """Every IANA zone name this machine knows (read from disk once: it takes milliseconds)."""
    return frozenset(zoneinfo.available_timezones())


@cache
def time_zone_names() -> list[str]:
    """Every IANA zone name this machine knows, sorted."""
    return sorted(known_time_zones())


def validate_time_zone(value: str) -> None:
    if value not in known_time_zones():
        raise ValidationError("“%(value)s” is not a known time zone (e.g. Europe/London).", params={"value": value})


class TimeZoneField(models.CharField):
    """An IANA zone name, validated against zoneinfo."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        super().__init__(*args, **kwargs)
        self.validators.append(validate_time_zone)


class Clinic(models.Model):
    """The tenant: a practice. Every tenant-owned row points here."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    time_zone = TimeZoneField(default="Europe/London")
    internal_ids_enabled = models.BooleanField(
        "Internal IDs enabled",
        default=False,
        help_text="Show each patient's internal ID across the app and allow it as a calendar identifier.",
    )
    bills_insurance = models.BooleanField(
        "Bills insurance",
        default=False,
        help_text="Keep patients' insurance plans and choose a plan (or SELF PAY) when booking. "
        "Off for a practice whose patients never pay through insurance.",
    )
    ods_code = models.CharField(
        "ODS code",
        max_length=10,
        blank=True,
        default="",
        db_default="",
        help_text="The practice's Organisation Data Service code (NHS), e.g. A12345: third parties booking "
        "through the FHIR API find the practice by it.",
    )
    # Sign-in and data rights (issue 24). A member of several clinics meets the strictest of them.
    requires_two_factor = models.BooleanField(
        "Require two-factor sign-in",
        default=False,
        db_default=False,
        help_text="Every member signs in with a code from an authenticator app as well as a password; "
        "members without one set it up at their next sign-in.",
    )
    idle_logoff_minutes = models.PositiveSmallIntegerField(
        "Sign out after idle (minutes)",
        default=30,
        db_default=30,
        validators=[MinValueValidator(5), MaxValueValidator(480)],
        help_text="A member who does nothing for this long is signed out; a warning comes a minute before.",
    )
    retention_years = models.PositiveSmallIntegerField(
        "Keep appointment records for (years)",
        default=8,
        db_default=8,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="A patient with an appointment in this period cannot be erased.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def today(self) -> datetime.date:
        """Today's date on the clinic's wall clock."""
        return timezone.now().astimezone(zoneinfo.ZoneInfo(self.time_zone)).date()


class TenantQuerySet(models.QuerySet):
    """The one scoping mechanism: every read of tenant data starts with for_clinic()."""

    def for_clinic(self, clinic: Clinic | int) -> Self:
        """Rows of one clinic (a Clinic, or its primary key where only the id is at hand)."""
        return self.filter(clinic=clinic)


class TenantModel(models.Model):
    """A row owned by one clinic, addressed in URLs by a UUID."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


class Location(TenantModel):
    class Kind(models.TextChoices):
        MAIN = "main", "Main surgery"
        BRANCH = "branch", "Branch surgery"

    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.BRANCH)
    address = models.TextField(blank=True)
    postcode = models.CharField(max_length=16, blank=True)
    time_zone = TimeZoneField()
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-kind", "name"]  # main first
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "name"],
                name="location_name_unique_in_clinic",
                violation_error_message="A location with this name already exists in this clinic.",
            ),
            models.UniqueConstraint(fields=["clinic"], condition=Q(kind="main"), name="location_one_main_per_clinic"),
        ]

    def __str__(self) -> str:
        return self.name


class Department(TenantModel):
    name = models.CharField(max_length=80)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "name"],
                name="department_name_unique_in_clinic",
                violation_error_message="A department with this name already exists in this clinic.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PractitionerRole(models.TextChoices):
    GP = "gp", "GP"
    NURSE = "nurse", "Nurse"
    HCA = "hca", "Healthcare assistant (HCA)"
    THERAPIST = "therapist", "Therapist"
    PHYSIO = "physio", "Physiotherapist"
    PHARMACIST = "pharmacist", "Pharmacist"
    OTHER = "other", "Other"


class Practitioner(TenantModel):
    """A clinician who owns a calendar; may or may not log in."""

    name = models.CharField(max_length=120)
    role = models.CharField("practitioner role", max_length=20, choices=PractitionerRole.choices)
    default_location = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="practitioners"
    )
    time_zone = TimeZoneField(blank=True, help_text="Leave blank to use the default location's time zone.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="practitioners"
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "user"], condition=Q(user__isnull=False), name="practitioner_one_per_user_in_clinic"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    RECEPTION = "reception", "Scheduler / reception"
    CLINICIAN = "clinician", "Clinician"


class NamedPermission(models.TextChoices):
    """Permissions an admin grants per member, independent of role."""

    MANAGE_APPOINTMENTS = "perm_manage_appointments", "Schedule Admin: Manage Appointments"
    ACCESS_BLOCKED_PATIENTS = "perm_access_blocked_patients", "Privacy: Access Blocked Patients"
    MANAGE_SESSIONS = "perm_manage_sessions", "Setup: Manage Sessions"
    PRIVACY_OFFICER = "perm_privacy_officer", "Privacy: Privacy Officer (reviews break-glass)"


class MembershipQuerySet(TenantQuerySet):
    def admins(self) -> Self:
        return self.filter(role=Role.ADMIN, is_active=True)


class Membership(TenantModel):
    """A user's role and named permissions in one clinic."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    perm_manage_appointments = models.BooleanField(NamedPermission.MANAGE_APPOINTMENTS.label, default=False)
    perm_access_blocked_patients = models.BooleanField(NamedPermission.ACCESS_BLOCKED_PATIENTS.label, default=False)
    perm_manage_sessions = models.BooleanField(NamedPermission.MANAGE_SESSIONS.label, default=False)
    perm_privacy_officer = models.BooleanField(NamedPermission.PRIVACY_OFFICER.label, default=False, db_default=False)
    # The member's own department: Book Appointment lists it by default (seed 003).
    department = models.ForeignKey(
        "clinic.Department", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()  # type: ignore[misc]  # a narrower manager of the same kind

    class Meta:
        ordering = ["user__last_name", "user__first_name", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "user"], name="membership_one_per_user_and_clinic"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.clinic_id} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def has_permission(self, permission: NamedPermission) -> bool:
        return bool(getattr(self, permission.value))

    @property
    def permission_labels(self) -> list[str]:
        return [p.label for p in NamedPermission if self.has_permission(p)]


class AuditEvent(models.Model):
    """Who did what to which object, when. Detail holds ids and flags, never patient PII."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["clinic", "object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}:{self.object_id}"

    @property
    def label(self) -> str:
        """The action in words where it has some (sign-in events), else its code."""
        return SIGN_IN_ACTIONS.get(self.action, self.action)

    @property
    def sign_in_detail(self) -> str:
        """A sign-in event's detail in words ("ip: 10.0.0.5 · method: recovery code"); empty for other events."""
        if self.action not in SIGN_IN_ACTIONS:
            return ""
        # Sorted: PostgreSQL's jsonb keeps its own key order.
        return " · ".join(f"{key}: {value}" for key, value in sorted(self.detail.items()) if key != "user_id")


SIGN_IN_ACTIONS = {
    "signin.succeeded": "Signed in",
    "signin.failed": "Sign-in failed",
    "signin.signed_out": "Signed out",
    "signin.second_factor": "Passed the second step",
    "signin.session_ended": "Ended another session",
    "two_factor.enrolled": "Set up two-factor",
    "two_factor.recovery_codes_renewed": "Made new recovery codes",
    "two_factor.reset": "Reset a member's two-factor",
}


class UserSession(AbstractBaseSession):
    """A signed-in browser: Django's session row, kept by clinic.user_sessions.SessionStore (SESSION_ENGINE).

    The key column holds the SHA-256 of the session key, never the key itself, so the table can list a user's
    sessions ("Your active sessions") and end any of them (delete the row) without holding anything a thief
    could present as a cookie. The other columns are copied from the session's data at each save.
    """

    session_key = models.CharField("session key (SHA-256)", max_length=64, primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    public_id = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    signed_in_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "expire_date"], name="usersession_user_idx")]
