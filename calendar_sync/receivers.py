"""Calendar sync observes scheduling (and patients' names): a change queues a feed rebuild after commit."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from calendar_sync.feed.build import feeds_changed
from calendar_sync.feed.sources import WINDOW_BACK
from calendar_sync.google.changes import changes_record, practitioners_synced
from calendar_sync.keys import ItemKey
from scheduling.models import Appointment


def on_calendar_changed(
    sender: Any, practitioner_ids: frozenset[int], keys: frozenset[str] | None = None, **kwargs: Any
) -> None:
    # scheduling sends the keys as text (it never imports calendar sync); from here on they are ItemKeys.
    items = None if keys is None else {ItemKey.parse(key) for key in keys}
    feeds_changed(practitioner_ids, items)
    changes_record(practitioner_ids, items)


def on_patient_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """A patient's name or internal ID shows in the feeds of the practitioners they see."""
    if created:
        return
    shown = list(
        Appointment.objects.for_clinic(instance.clinic_id)
        .filter(patient=instance, starts_at__gte=timezone.now() - WINDOW_BACK)
        .exclude(practitioner=None)
        .values_list("pk", "practitioner_id")
    )
    if shown:
        practitioners = {practitioner for _, practitioner in shown}
        keys = [ItemKey.appointment(pk) for pk, _ in shown]
        feeds_changed(practitioners, keys)
        changes_record(practitioners, keys)


def google_synced(sender: Any, practitioner_ids: list[int], **kwargs: Any) -> set[int]:
    """Which of these practitioners send their calendar to Google two ways now (one query)."""
    return practitioners_synced(practitioner_ids)
