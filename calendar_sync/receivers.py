"""Calendar sync observes scheduling (and patients' names): a change queues a feed rebuild after commit."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from calendar_sync import google_sync
from calendar_sync.selectors import WINDOW_BACK
from calendar_sync.services import feeds_changed
from scheduling.models import Appointment


def on_calendar_changed(
    sender: Any, practitioner_ids: frozenset[int], keys: frozenset[str] | None = None, **kwargs: Any
) -> None:
    feeds_changed(practitioner_ids, keys)
    google_sync.changes_record(practitioner_ids, keys)


def on_patient_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """A patient's name or internal ID shows in the feeds of the practitioners they see."""
    if created:
        return
    shown = list(
        Appointment.objects.filter(
            clinic_id=instance.clinic_id, patient=instance, starts_at__gte=timezone.now() - WINDOW_BACK
        )
        .exclude(practitioner=None)
        .values_list("pk", "practitioner_id")
    )
    if shown:
        practitioners = {practitioner for _, practitioner in shown}
        keys = [f"a{pk}" for pk, _ in shown]
        feeds_changed(practitioners, keys)
        google_sync.changes_record(practitioners, keys)


def google_synced(sender: Any, practitioner_ids: list[int], **kwargs: Any) -> set[int]:
    """Which of these practitioners send their calendar to Google two ways now (one query)."""
    return google_sync.practitioners_synced(practitioner_ids)
