"""privacy's own rows (break-glass grants and reviews, exports, erasures)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from clinic.models import TenantQuerySet


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
