"""Reads of series: the preview's match of occurrences to slots, the slots a review names, and open drafts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.db.models import QuerySet

from scheduling.models import (
    DraftOccurrence,
    Slot,
)
from sessions_setup.models import SlotType

if TYPE_CHECKING:
    from clinic.models import Clinic, Practitioner


@dataclass(frozen=True)
class OccurrenceMatch:
    """One occurrence of a series and the slot it would take: None when no session has one then."""

    starts_at: dt.datetime
    slot: Slot | None
    full: bool = False

    @property
    def bookable(self) -> bool:
        return self.slot is not None and not self.full


def series_preview(
    *, clinic: Clinic, practitioner: Practitioner, slot_type: SlotType, occurrences: Sequence[dt.datetime]
) -> list[OccurrenceMatch]:
    """Match each occurrence to a slot of the practitioner and type starting then (a free one first): one query."""
    candidates = (
        Slot.objects.for_clinic(clinic)
        .filter(session__practitioner=practitioner, slot_type=slot_type, bookable=True, starts_at__in=list(occurrences))
        .select_related("session", "session__location")
        .order_by("starts_at", "booked_count", "id")
    )
    best: dict[dt.datetime, Slot] = {}
    for slot in candidates:
        current = best.get(slot.starts_at)
        if current is None or (current.free == 0 and slot.free > 0):
            best[slot.starts_at] = slot
    return [
        OccurrenceMatch(starts_at=moment, slot=best.get(moment), full=moment in best and best[moment].free == 0)
        for moment in occurrences
    ]


def chosen_slots(
    *, clinic: Clinic, public_ids: Sequence[str], practitioner: Practitioner, slot_type: SlotType
) -> dict[str, Slot]:
    """Slots of a practitioner and type named in a form, by public id (ids that are not UUIDs name nothing)."""
    valid = []
    for value in public_ids:
        try:
            valid.append(UUID(value))
        except ValueError:
            continue
    found = Slot.objects.for_clinic(clinic).filter(
        public_id__in=valid, session__practitioner=practitioner, slot_type=slot_type
    )
    return {str(slot.public_id): slot for slot in found}


def open_drafts(*, clinic: Clinic, patient: Any = None, series: Any = None) -> QuerySet[DraftOccurrence]:
    """Draft occurrences still waiting for a slot, of a patient's series or of one series, soonest first."""
    drafts = DraftOccurrence.objects.for_clinic(clinic).open()
    if patient is not None:
        drafts = drafts.filter(series__patient=patient)
    if series is not None:
        drafts = drafts.filter(series=series)
    return drafts.select_related("series", "series__slot_type", "series__practitioner").order_by("starts_at", "id")
