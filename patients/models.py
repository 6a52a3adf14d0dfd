"""Patients and their insurance coverage."""

from __future__ import annotations

from typing import Self

from django.db import models
from django.db.models import Q

from clinic.models import Membership, NamedPermission, TenantModel, TenantQuerySet
from patients import identifiers


def may_see_blocked(membership: Membership | None) -> bool:
    """The blocked-patient rule: blocked patients exist only for members with "Privacy: Access Blocked Patients"."""
    return membership is not None and membership.has_permission(NamedPermission.ACCESS_BLOCKED_PATIENTS)


def visible_patients(membership: Membership | None, *, through: str = "") -> Q:
    """The blocked-patient rule as a filter: on patients, or on rows that point at one (``through="patient"``)."""
    if may_see_blocked(membership):
        return Q()
    return Q(**{f"{through}__is_blocked" if through else "is_blocked": False})


class PatientQuerySet(TenantQuerySet):
    def visible_to(self, membership: Membership | None) -> Self:
        """The patients this member may know exist (see may_see_blocked)."""
        return self.filter(visible_patients(membership))


class Patient(TenantModel):
    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Not known"

    class NationalIdKind(models.TextChoices):
        NHS = "nhs", "NHS number"
        SSN = "ssn", "SSN"

    title = models.CharField(max_length=20, blank=True)
    first_name = models.CharField(max_length=80)
    last_name = models.CharField(max_length=80)
    preferred_name = models.CharField(max_length=80, blank=True)
    date_of_birth = models.DateField()
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    internal_id = models.CharField("internal ID", max_length=20, editable=False)
    national_id_kind = models.CharField(max_length=4, choices=NationalIdKind.choices, blank=True)
    # NULL when there is none, so one plain unique index serves lookups on every backend.
    national_id = models.CharField("national identifier", max_length=12, null=True, blank=True)  # noqa: DJ001
    mobile_phone = models.CharField(max_length=20, blank=True)
    home_phone = models.CharField(max_length=20, blank=True)
    email = models.EmailField(blank=True)
    address = models.TextField(blank=True)
    postcode = models.CharField(max_length=16, blank=True)
    notes = models.TextField(blank=True)
    is_blocked = models.BooleanField("blocked (restricted)", default=False)
    blocked_reason = models.CharField(max_length=200, blank=True)
    is_archived = models.BooleanField(default=False)
    registered_online = models.BooleanField(
        "registered online: check details",
        default=False,
        help_text="Created by an online booking that matched no patient: check the details, or merge it into the "
        "patient it really is.",
    )
    # Erased (privacy's patient erasure): the identity is gone, the row stays so appointments still count in
    # reports; feeds and Google leave its appointments out.
    erased_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Search keys, kept by save(): indexed, so every kind of search is an index lookup.
    last_name_key = models.CharField(max_length=80, editable=False)
    first_name_key = models.CharField(max_length=80, editable=False)
    mobile_key = models.CharField(max_length=10, editable=False, blank=True)
    home_key = models.CharField(max_length=10, editable=False, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PatientQuerySet.as_manager()  # type: ignore[misc]

    # Not a column: set by patients.access when a blocked patient is let in to a member without the permission by a
    # break-glass grant (its id), so the audit of what they do marks it as break-glass.
    break_glass: str | None = None

    class Meta:
        ordering = ["last_name_key", "first_name_key", "id"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "internal_id"], name="patient_internal_id_unique"),
            models.UniqueConstraint(
                fields=["clinic", "national_id"],
                name="patient_national_id_unique",
                violation_error_message="Another patient of this clinic has this national identifier.",
            ),
            models.CheckConstraint(
                condition=Q(is_blocked=False) | ~Q(blocked_reason=""), name="patient_blocked_needs_reason"
            ),
        ]
        indexes = [
            models.Index(fields=["clinic", "last_name_key", "first_name_key"], name="patient_name_idx"),
            models.Index(fields=["clinic", "mobile_key"], name="patient_mobile_idx"),
            models.Index(fields=["clinic", "home_key"], name="patient_home_idx"),
            models.Index(fields=["clinic", "date_of_birth"], name="patient_dob_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.last_name.upper()}, {self.first_name}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.last_name_key = identifiers.name_key(self.last_name)
        self.first_name_key = identifiers.name_key(self.first_name)
        self.mobile_key = identifiers.phone_key(self.mobile_phone)
        self.home_key = identifiers.phone_key(self.home_phone)
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def masked_national_id(self) -> str:
        return identifiers.mask_national_id(self.national_id or "")

    @property
    def display_name(self) -> str:
        preferred = f" ({self.preferred_name})" if self.preferred_name else ""
        return f"{self.title + ' ' if self.title else ''}{self.first_name}{preferred} {self.last_name}"


class Coverage(TenantModel):
    """An insurance plan of a patient. SELF PAY is chosen at booking, never stored as a plan."""

    class Priority(models.TextChoices):
        PRIMARY = "primary", "Primary"
        SECONDARY = "secondary", "Secondary"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="coverages")
    payer = models.CharField(max_length=120)
    plan_name = models.CharField(max_length=120)
    member_id = models.CharField("member ID", max_length=60)
    group_number = models.CharField(max_length=60, blank=True)
    valid_from = models.DateField(null=True, blank=True)
    valid_to = models.DateField(null=True, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.PRIMARY)

    class Meta:
        ordering = ["priority", "payer"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True)
                | Q(valid_from__isnull=True)
                | Q(valid_to__gte=models.F("valid_from")),
                name="coverage_dates_in_order",
                violation_error_message="The plan ends before it starts.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.payer} {self.plan_name}"


class InternalIdCounter(models.Model):
    """The last internal patient number given out in a clinic (rows locked while numbering)."""

    clinic = models.OneToOneField("clinic.Clinic", on_delete=models.CASCADE, related_name="+")
    last_number = models.PositiveIntegerField(default=0)

    objects = TenantQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.clinic_id}: {self.last_number}"


def format_internal_id(number: int) -> str:
    return f"P{number:06d}"
