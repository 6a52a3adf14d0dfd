"""Slot types and session templates: the reusable parts of the appointment book."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from clinic.models import Location, PractitionerRole, TenantModel, TenantQuerySet
from sessions_setup import palette

MAX_SLOT_MINUTES = 8 * 60
MAX_SESSION_MINUTES = 24 * 60
MAX_SLOTS_PER_TEMPLATE = 288  # 24 hours of 5-minute slots


class SlotKind(models.TextChoices):
    FACE_TO_FACE = "face_to_face", "Face-to-face"
    TELEPHONE = "telephone", "Telephone"
    VIDEO = "video", "Video"
    HOME_VISIT = "home_visit", "Home visit"


class ReleaseRule(models.TextChoices):
    ANY_TIME = "any_time", "Bookable any time"
    ON_THE_DAY = "on_the_day", "Only on the day (book on the day)"
    DAYS_BEFORE = "days_before", "From N days before"


class ReportingCategory(models.TextChoices):
    """A standard list for appointment reporting (after the national GP appointment categories)."""

    GENERAL = "general", "General consultation routine"
    ACUTE = "acute", "General consultation acute"
    CLINICAL_TRIAGE = "clinical_triage", "Clinical triage"
    PLANNED_CLINIC = "planned_clinic", "Planned clinics"
    PLANNED_PROCEDURE = "planned_procedure", "Planned clinical procedure"
    UNPLANNED_CLINICAL = "unplanned_clinical", "Unplanned clinical activity"
    HOME_VISIT = "home_visit", "Home visit"
    CARE_HOME = "care_home", "Care home visit"
    STRUCTURED_REVIEW = "structured_review", "Structured medication review"
    GROUP = "group", "Group consultation and group education"
    SERVICE_ADMIN = "service_admin", "Service provider administrative"
    COVID_VACS = "covid_vacs", "COVID VACS"
    NON_CONTACT = "non_contact", "Non-contractual chargeable work"


class SlotType(TenantModel):
    """A kind of slot. The first active one in the list order is the clinic's default."""

    name = models.CharField(max_length=40)
    colour = models.CharField(max_length=16, choices=palette.CHOICES, default="blue")
    default_length_minutes = models.PositiveSmallIntegerField(
        "default length (minutes)",
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_SLOT_MINUTES)],
    )
    kind = models.CharField(max_length=16, choices=SlotKind.choices, default=SlotKind.FACE_TO_FACE)
    bookable = models.BooleanField(default=True)
    capacity = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(500)],
        help_text="1 for a single appointment; more than 1 makes this a group slot type.",
    )
    release_rule = models.CharField(max_length=16, choices=ReleaseRule.choices, default=ReleaseRule.ANY_TIME)
    release_days_before = models.PositiveSmallIntegerField(
        "release N days before",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
    )
    online_bookable = models.BooleanField(default=False)
    online_description = models.CharField(
        "description for patients",
        max_length=200,
        blank=True,
        help_text="Shown on the online booking page, e.g. “A 20-minute review of one long-term condition.”",
    )
    reporting_category = models.CharField(
        max_length=24, choices=ReportingCategory.choices, default=ReportingCategory.GENERAL
    )
    order = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["order", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "name"],
                name="slottype_name_unique_in_clinic",
                violation_error_message="A slot type with this name already exists.",
            ),
            models.CheckConstraint(condition=Q(capacity__gte=1), name="slottype_capacity_positive"),
            models.CheckConstraint(
                condition=Q(default_length_minutes__gte=1, default_length_minutes__lte=MAX_SLOT_MINUTES),
                name="slottype_length_in_range",
            ),
            models.CheckConstraint(
                condition=~Q(release_rule=ReleaseRule.DAYS_BEFORE) | Q(release_days_before__gte=1),
                name="slottype_release_days_given",
                violation_error_message="Give the number of days before the slot when it becomes bookable.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_group(self) -> bool:
        return self.capacity > 1


class SessionType(models.TextChoices):
    TIMED = "timed", "Timed"
    UNTIMED = "untimed", "Untimed (open list)"
    GROUP = "group", "Group"


class SessionTemplate(TenantModel):
    """The reusable "session" of the setup screens: a named, coloured run of slots."""

    name = models.CharField("session name", max_length=20, help_text="For example “Dr Smith AM”.")
    colour = models.CharField(max_length=16, choices=palette.CHOICES, default="black")
    session_type = models.CharField(max_length=16, choices=SessionType.choices, default=SessionType.TIMED)
    description = models.CharField(
        "detailed description",
        max_length=30,
        blank=True,
        help_text="Shown in full as a tooltip wherever the session appears.",
    )
    practitioner_role = models.CharField(max_length=20, choices=PractitionerRole.choices, blank=True)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    gp_connect_bookable = models.BooleanField("GP Connect bookable", default=False)
    open_session = models.BooleanField("open session (first come, first served)", default=False)
    travel_clinic = models.BooleanField(default=False)
    closed_session = models.BooleanField(
        "closed session",
        default=False,
        help_text="The practitioner prefers no new patients once the session (or its series) has begun. "
        "A warning, unless the clinic enforces it below.",
    )
    closed_enforced = models.BooleanField(
        "enforce the closed session",
        default=False,
        help_text="Once the first session of its rota allocation has started, new patients are refused; only a member "
        "with “Schedule Admin: Manage Appointments” can add one, with a reason. Patients already in the group keep "
        "their places.",
    )
    nominal_start = models.TimeField(default="08:00", help_text="Slot times in the builder count from here.")
    position = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(gp_connect_bookable=False) | (~Q(practitioner_role="") & Q(location__isnull=False)),
                name="sessiontemplate_gp_connect_needs_role_and_location",
                violation_error_message="A GP Connect bookable session needs a practitioner role and a location.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TemplateSlot(models.Model):
    """One slot of a template, in order. No slot type means a blank, non-bookable catch-up slot."""

    clinic = models.ForeignKey("clinic.Clinic", on_delete=models.CASCADE, related_name="+")
    template = models.ForeignKey(SessionTemplate, on_delete=models.CASCADE, related_name="slots")
    position = models.PositiveSmallIntegerField()
    slot_type = models.ForeignKey(SlotType, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    length_minutes = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_SLOT_MINUTES)]
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["template", "position"]
        constraints = [
            models.UniqueConstraint(fields=["template", "position"], name="templateslot_position_unique"),
            models.CheckConstraint(condition=Q(length_minutes__gte=1), name="templateslot_length_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.template_id}#{self.position}"
