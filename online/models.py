"""The public booking site's rows: a clinic's online-booking settings, each practitioner's, the email checks that
come before a booking, and the online bookings themselves (instant, or requests reception decides)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from clinic.models import Practitioner, TenantModel
from patients.models import Patient
from scheduling.models import Appointment, Hold, Slot
from sessions_setup.models import SlotType


class OnlineSettings(TenantModel):
    """One per clinic: is online booking on, and its rules."""

    enabled = models.BooleanField(
        "Online booking on", default=False, help_text="Patients can book at the public address below."
    )
    intro = models.TextField(
        "Introduction",
        max_length=1000,
        blank=True,
        help_text="Shown at the top of the booking page (plain text), e.g. what to bring or who may book.",
    )
    phone = models.CharField(
        "Phone for patients",
        max_length=30,
        blank=True,
        help_text="Offered when no time suits (“No online times in the next 60 days — call …”).",
    )
    notice_hours = models.PositiveSmallIntegerField(
        "Minimum notice (hours)",
        default=2,
        validators=[MaxValueValidator(24 * 14)],
        help_text="Times sooner than this are not offered.",
    )
    horizon_days = models.PositiveSmallIntegerField(
        "Book up to (days ahead)", default=60, validators=[MinValueValidator(1), MaxValueValidator(366)]
    )
    change_hours = models.PositiveSmallIntegerField(
        "Cancel or move online up to (hours before)",
        default=24,
        validators=[MaxValueValidator(24 * 14)],
        help_text="Closer to the time, patients are asked to call.",
    )
    hold_hours = models.PositiveSmallIntegerField(
        "A request holds its time for (hours)",
        default=24,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 7)],
        help_text="Requests reception has not answered by then are declined and the time is offered again.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "online settings"
        constraints = [models.UniqueConstraint(fields=["clinic"], name="onlinesettings_one_per_clinic")]

    def __str__(self) -> str:
        return f"online settings of {self.clinic_id}"


class BookingMode(models.TextChoices):
    INSTANT = "instant", "Booked at once"
    REQUEST = "request", "Requests reception accepts"


class PractitionerOnline(TenantModel):
    """A practitioner's online booking: whether they take it, and whether bookings are instant or requests. No
    row: they take instant bookings (inside their online availability, which they must set first)."""

    practitioner = models.OneToOneField(Practitioner, on_delete=models.CASCADE, related_name="online")
    accepts = models.BooleanField("Accepts online bookings", default=True)
    mode = models.CharField(max_length=10, choices=BookingMode.choices, default=BookingMode.INSTANT)

    def __str__(self) -> str:
        return f"online booking of {self.practitioner_id}"


class EmailCheck(TenantModel):
    """A one-time code sent to an email, and the booking it will make once the code is typed. Nobody is looked up
    before then. The URL names the check by a random token; the code is stored hashed."""

    token = models.CharField(max_length=64, unique=True)
    code_hash = models.CharField(max_length=64)
    email = models.EmailField()
    details = models.JSONField(default=dict)  # names, date of birth, mobile, reason, the slot and type chosen
    attempts = models.PositiveSmallIntegerField(default=0)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="emailcheck_expiry_idx")]

    def __str__(self) -> str:
        return f"email check {self.pk}"


class OnlineStatus(models.TextChoices):
    BOOKED = "booked", "Booked"
    PENDING = "pending", "Waiting for reception"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Not answered in time"
    WITHDRAWN = "withdrawn", "Withdrawn by the patient"


class OnlineBooking(TenantModel):
    """A booking made on the public site: instant (an appointment at once) or a request holding its place until
    reception accepts (an appointment) or declines it, or it expires."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, related_name="+")
    slot_type = models.ForeignKey(SlotType, on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=10, choices=BookingMode.choices)
    status = models.CharField(max_length=10, choices=OnlineStatus.choices)
    hold = models.OneToOneField(Hold, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    appointment = models.OneToOneField(
        Appointment, on_delete=models.SET_NULL, null=True, blank=True, related_name="online_booking"
    )
    reason = models.TextField(
        "reason for the appointment", max_length=500, blank=True, help_text="The patient's words; staff only."
    )
    # Why the patient was booked as a request although the practitioner books instantly (shown to reception).
    request_why = models.CharField(max_length=120, blank=True)
    decline_reason = models.CharField(max_length=12, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["clinic", "created_at"], condition=Q(status="pending"), name="online_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"online booking {self.public_id}"
