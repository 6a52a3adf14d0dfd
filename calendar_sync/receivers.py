"""Calendar sync observes scheduling (and patients' names, and the clinic's internal IDs setting): a change
records a feed rebuild (and a Google push) in its transaction, nudged after commit."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from calendar_sync.feed.build import feeds_changed
from calendar_sync.feed.sources import WINDOW_BACK
from calendar_sync.google.changes import changes_record, practitioners_synced
from calendar_sync.keys import ItemKey
from calendar_sync.models import FeedSubscription
from patients.display import IdentifierMode
from scheduling.models import Appointment


def on_calendar_changed(
    sender: Any, practitioner_ids: frozenset[int], keys: frozenset[str] | None = None, **kwargs: Any
) -> None:
    # scheduling sends the keys as text (it never imports calendar sync); from here on they are ItemKeys.
    items = None if keys is None else {ItemKey.parse(key) for key in keys}
    # A two-way Google sync needs the practitioner's enabled feed: without any, there is no connection to look for
    # (most bookings: one query, not two).
    if feeds_changed(practitioner_ids, items):
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


def on_clinic_settings_changed(sender: Any, clinic: Any, fields: frozenset[str], **kwargs: Any) -> None:
    """Internal IDs turned off (or on again): feeds that name clients by internal ID fall back to initials (or
    come back), so they are rebuilt and their Google events sent again."""
    if "internal_ids_enabled" not in fields:
        return
    practitioners = list(
        FeedSubscription.objects.for_clinic(clinic)
        .filter(enabled=True, identifier_mode=IdentifierMode.INTERNAL_ID)
        .values_list("practitioner_id", flat=True)
    )
    if practitioners:
        feeds_changed(practitioners)
        changes_record(practitioners, None)


def google_synced(sender: Any, practitioner_ids: list[int], **kwargs: Any) -> set[int]:
    """Which of these practitioners send their calendar to Google two ways now (one query)."""
    return practitioners_synced(practitioner_ids)
