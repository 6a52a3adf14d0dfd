"""privacy's own rows (break-glass grants and reviews, exports, erasures)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from clinic.models import TenantModel, TenantQuerySet

# How long a break-glass grant lets its member in to its patient.
BREAK_GLASS_MINUTES = 30


class BreakGlassCategory(models.TextChoices):
    CLINICAL_EMERGENCY = "clinical_emergency", "Clinical emergency"
    SAFEGUARDING = "safeguarding", "Safeguarding"
    OTHER = "other", "Other"


class ReviewOutcome(models.TextChoices):
    APPROPRIATE = "appropriate", "Appropriate"
    INAPPROPRIATE = "inappropriate", "Inappropriate — escalate"


class BreakGlass(TenantModel):
    """One use of break-glass: a member without "Privacy: Access Blocked Patients" let in to one blocked patient,
    with a reason, until expires_at; and its review by a privacy officer (open until reviewed_at is set)."""

    membership = models.ForeignKey("clinic.Membership", on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="+")
    category = models.CharField(max_length=24, choices=BreakGlassCategory.choices)
    reason = models.TextField()
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(max_length=16, choices=ReviewOutcome.choices, blank=True)
    review_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            # The grant check (this member, this patient, not yet expired) and the review list (open first).
            models.Index(fields=["clinic", "membership", "patient", "expires_at"], name="breakglass_grant_idx"),
            models.Index(fields=["clinic", "reviewed_at", "started_at"], name="breakglass_review_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("started_at")), name="breakglass_expires"),
            models.CheckConstraint(
                condition=Q(reviewed_at__isnull=True, outcome="") | Q(reviewed_at__isnull=False) & ~Q(outcome=""),
                name="breakglass_review_has_outcome",
            ),
        ]

    def __str__(self) -> str:
        return f"break-glass {self.public_id}"

    @property
    def is_open(self) -> bool:
        return self.reviewed_at is None


class AlertStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class BreakGlassAlert(TenantModel):
    """One email to one privacy officer about one use, recorded in the transaction that broke glass and sent after
    commit (a nudge, or beat's sweep). Sent at most once: a send claims the row (waiting → sending) first, and a row
    left in "sending" by a crash is never sent again by itself."""

    use = models.ForeignKey(BreakGlass, on_delete=models.CASCADE, related_name="alerts")
    officer = models.ForeignKey("clinic.Membership", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=AlertStatus.choices, default=AlertStatus.WAITING)
    attempts = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    detail = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["use", "officer"], name="breakglass_alert_once")]
        indexes = [models.Index(fields=["status", "due_at"], name="breakglass_alert_due_idx")]

    def __str__(self) -> str:
        return f"alert {self.public_id} ({self.status})"


class ExportState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Ready to download"
    FAILED = "failed", "Failed"


class ClinicExport(models.Model):
    """One export of a whole clinic's data (a zip of CSV and JSON per model, with a manifest), made by a worker.

    The request writes this row (queued) and nudges the task after commit; beat's sweep runs rows whose nudge was
    lost. The zip is downloadable once, by a signed link, until `expires_at`; then its file is deleted."""

    clinic = models.ForeignKey("clinic.Clinic", on_delete=models.CASCADE, related_name="+")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    state = models.CharField(max_length=10, choices=ExportState.choices, default=ExportState.QUEUED)
    models_total = models.PositiveIntegerField(default=0)
    models_done = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveBigIntegerField(default=0)
    # The zip's path relative to PRIVACY_EXPORT_DIR ("" before it is written and after it is deleted).
    file_name = models.CharField(max_length=200, blank=True)
    file_size = models.PositiveBigIntegerField(default=0)
    # The random half of the download link (the link is this, signed); never shown in logs or the audit.
    link_nonce = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)  # the worker's last sign of life
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    downloaded_at = models.DateTimeField(null=True, blank=True)
    downloaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "created_at"], name="privacy_export_state_idx")]

    def __str__(self) -> str:
        return f"clinic export {self.public_id} ({self.state})"

    @property
    def in_progress(self) -> bool:
        return self.state in (ExportState.QUEUED, ExportState.RUNNING)
