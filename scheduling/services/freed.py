"""Places that came free: follow-up work recorded in the transaction that freed them (a cancellation, a move, a
hold ended, a change that raised capacity), for the waitlist's offer run after commit. Beside booking and waitlist
so both can record without importing each other."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.utils import timezone

from clinic.nudges import nudge
from scheduling.models import FreedPlace, WaitlistEntry


def places_freed(clinic_id: int, slot_ids: Iterable[int], *, now: dt.datetime | None = None) -> list[int]:
    """Record that places came free in these slots (in the caller's transaction) and nudge the offer run after
    commit; nothing when the clinic has nobody waiting. The run counts the free places under the slot's lock, so a
    place recorded twice is still offered once."""
    slots = sorted(set(slot_ids))
    if not slots or not WaitlistEntry.objects.for_clinic(clinic_id).open().exists():
        return []
    moment = now or timezone.now()
    rows = FreedPlace.objects.bulk_create([FreedPlace(clinic_id=clinic_id, slot_id=pk, due_at=moment) for pk in slots])
    ids = [row.pk for row in rows]
    from scheduling import tasks

    nudge(tasks.waitlist_offer, ids)
    return ids
