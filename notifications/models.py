"""Messages to patients (email and SMS), the clinic's settings for them, and patients' choices.

A Message is one email or one SMS. Its key (the appointment, kind, channel, offset and version, or for a
message about no appointment a reference of its own) is unique in the database, so a message is recorded
once however many beats, retries or workers find it; it is then claimed, sent and marked (see sending.py).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q

from clinic.models import TenantModel
from patients.models import Patient
from scheduling.models import Appointment, Slot


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class Kind(models.TextChoices):
    CONFIRMATION = "confirmation", "Booking confirmation"
    SERIES = "series", "Series confirmation"
    REMINDER = "reminder", "Reminder"
    MOVED = "moved", "Appointment moved"
    CANCELLED = "cancelled", "Cancellation"
    REBOOK = "rebook", "Session cancelled: please rebook"
    OFFER = "offer", "Offer of a place"
    REQUESTED = "requested", "Online request received"
    DECLINED = "declined", "Online request declined"


class Status(models.TextChoices):
    WAITING = "waiting", "Waiting"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Delivery unknown"
    SKIPPED = "skipped", "Not sent"


class Message(TenantModel):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    # The appointment the message is about (the first, for a series or a cancellation of several).
    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    # Every appointment the message lists (a series' dates, a cancellation of several), in time order.
    appointment_ids = models.JSONField(default=list, blank=True)
    # An offer's place (a message about a slot rather than an appointment).
    slot = models.ForeignKey(Slot, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    ref = models.CharField(max_length=64, blank=True, help_text="The key of a message about no appointment.")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    offset_hours = models.PositiveSmallIntegerField(default=0, help_text="A reminder's hours before the start.")
    version = models.DateTimeField(null=True, blank=True, help_text="The appointment's start the message is about.")
    category = models.CharField(max_length=12, blank=True, help_text="A cancellation's category.")
    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    recipient = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    provider_id = models.CharField(max_length=200, blank=True, help_text="Twilio's SID or the email's Message-ID.")
    # Why it failed or was not sent: an error class or code and plain words, never the message or the address.
    detail = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "kind", "channel", "offset_hours", "version"],
                condition=Q(appointment__isnull=False),
                name="message_once_per_appointment",
            ),
            models.UniqueConstraint(
                fields=["clinic", "ref", "kind", "channel"],
                condition=Q(appointment__isnull=True),
                name="message_once_per_ref",
            ),
        ]
        indexes = [
            # The sweep's question: which messages are due now? (waiting ones only; the rest are history)
            models.Index(fields=["due_at"], condition=Q(status="waiting"), name="message_waiting_due_idx"),
            models.Index(fields=["claimed_at"], condition=Q(status="sending"), name="message_sending_idx"),
            models.Index(fields=["clinic", "created_at"], name="message_clinic_created_idx"),
            models.Index(fields=["clinic", "patient", "created_at"], name="message_clinic_patient_idx"),
            models.Index(fields=["provider_id"], condition=~Q(provider_id=""), name="message_provider_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.channel} ({self.status})"

    @property
    def retrying(self) -> bool:
        return self.status == Status.WAITING and self.attempts > 0


class NotificationSettings(TenantModel):
    """A clinic's choices for messages to patients (one row per clinic, made with the clinic)."""

    confirmations_on = models.BooleanField("Booking confirmations", default=True)
    reminders_on = models.BooleanField("Reminders", default=True)
    changes_on = models.BooleanField("Moves and cancellations", default=True)
    offers_on = models.BooleanField("Offers of a freed place", default=True)
    email_on = models.BooleanField("Send email", default=True)
    sms_on = models.BooleanField("Send SMS", default=True)
    email_reminder_hours = models.PositiveSmallIntegerField(
        "Email reminder, hours before", null=True, blank=True, default=48
    )
    sms_reminder_hours = models.PositiveSmallIntegerField(
        "SMS reminder, hours before", null=True, blank=True, default=2
    )
    quiet_from = models.TimeField("Quiet from", default=dt.time(21, 0))
    quiet_until = models.TimeField("Quiet until", default=dt.time(8, 0))
    sender_name = models.CharField(
        max_length=80, blank=True, help_text="Shown as the sender; the clinic's name if empty."
    )
    reply_to = models.EmailField("Reply-to address", blank=True)
    name_appointment_type = models.BooleanField(
        "Name the appointment type",
        default=False,
        help_text="Off by default: in some services the type of appointment is itself sensitive.",
    )
    # The opening words of each kind of message, by kind (an empty or missing kind uses our default words).
    wording = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["clinic"], name="notification_settings_one_per_clinic")]

    def __str__(self) -> str:
        return f"notification settings of clinic {self.clinic_id}"

    def reminder_hours(self, channel: str) -> int | None:
        return self.email_reminder_hours if channel == Channel.EMAIL else self.sms_reminder_hours


class ContactPreference(TenantModel):
    """How a patient wants to hear from the clinic. No row: by email and SMS where they have the details."""

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="contact_preference")
    email_ok = models.BooleanField("By email", default=True)
    sms_ok = models.BooleanField("By SMS", default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"contact preference of patient {self.patient_id}"


class ConsentSource(models.TextChoices):
    RECEPTION = "reception", "Recorded by reception"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe link in an email"
    SMS_STOP = "sms_stop", "STOP sent by SMS"
    SMS_START = "sms_start", "START sent by SMS"
    ONLINE = "online", "Online booking"


class Consent(TenantModel):
    """A patient's yes or no to a channel, when and from where (the history behind ContactPreference)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=5, choices=Channel.choices)
    granted = models.BooleanField()
    source = models.CharField(max_length=12, choices=ConsentSource.choices)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["clinic", "patient", "at"], name="consent_patient_idx")]

    def __str__(self) -> str:
        return f"{self.channel} {'yes' if self.granted else 'no'} ({self.source})"
