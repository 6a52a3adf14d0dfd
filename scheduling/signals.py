"""What scheduling tells its observers (calendar sync) once a change has committed.

Scheduling never imports calendar_sync: its services announce which practitioners' calendars changed,
and calendar_sync connects a receiver (see calendar_sync/apps.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.dispatch import Signal

# Sent after commit with practitioner_ids (a frozenset of the primary keys whose calendars changed) and
# keys: the changed items, "a<pk>" for an appointment and "e<pk>" for an other event, or None when the
# change may touch anything on those calendars.
calendar_changed = Signal()


def announce_calendar_change(
    practitioner_ids: Iterable[int | None], *, appointments: Iterable[int] = (), events: Iterable[int] = ()
) -> None:
    """Send calendar_changed once the current transaction commits (at once outside one); nothing on rollback."""
    ids = frozenset(pk for pk in practitioner_ids if pk is not None)
    keys = frozenset([*(f"a{pk}" for pk in appointments), *(f"e{pk}" for pk in events)]) or None
    if ids:
        transaction.on_commit(lambda: calendar_changed.send(sender=None, practitioner_ids=ids, keys=keys))


# Asked while drawing a calendar: which of these practitioners (practitioner_ids, a list of primary keys)
# send their client events to Google two ways? A receiver returns a set of those keys. Their booked
# appointments show a lock: the title in Google is set here.
google_synced_query = Signal()


def practitioners_synced_to_google(practitioner_ids: list[int]) -> set[int]:
    if not practitioner_ids:
        return set()
    synced: set[int] = set()
    for _receiver, answer in google_synced_query.send(sender=None, practitioner_ids=practitioner_ids):
        synced.update(int(pk) for pk in (answer or ()))
    return synced
