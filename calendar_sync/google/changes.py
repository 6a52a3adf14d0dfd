"""Recording what changed for Google: every change on a practitioner's calendar becomes pending items
(ItemKeys, or everything) of their active two-way syncs, and one push task per connection takes whatever is
pending (changes coalesce). Pulls are queued here too, one per burst of notifications."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from calendar_sync import tasks
from calendar_sync.keys import EVERYTHING, ItemKey
from calendar_sync.models import GoogleConnection, GooglePending, GoogleState, SyncType
from clinic.nudges import nudge


def _active_connections_all_clinics() -> QuerySet[GoogleConnection]:
    """Connections that sync now: connected, with a default calendar, two-way sync allowed and chosen."""
    # Across clinics: beat's periodic pull covers every clinic, and the calendar_changed signal names
    # practitioners by id only (each connection row names its clinic).
    return (
        GoogleConnection.objects.filter(state=GoogleState.CONNECTED)
        .exclude(default_calendar_id="")
        .filter(
            practitioner__feed_subscription__enabled=True,
            practitioner__feed_subscription__sync_type=SyncType.TWO_WAY,
        )
    )


def practitioners_synced(practitioner_ids: Iterable[int]) -> set[int]:
    return set(
        _active_connections_all_clinics()
        .filter(practitioner_id__in=list(practitioner_ids))
        .values_list("practitioner_id", flat=True)
    )


def changes_record(practitioner_ids: Iterable[int], keys: Collection[ItemKey] | None) -> None:
    """Called inside a calendar change's transaction: pending items for the practitioners' active two-way
    syncs, and a push nudged after commit for each (unless one is queued already: changes coalesce)."""
    connections = list(
        _active_connections_all_clinics()
        .filter(practitioner_id__in=list(practitioner_ids))
        .values_list("pk", "clinic_id")
    )
    if not connections:
        return
    wanted = [EVERYTHING] if keys is None else sorted({key.text for key in keys})
    with transaction.atomic(savepoint=False):
        for clinic_id in sorted({clinic_id for _, clinic_id in connections}):
            GooglePending.objects.for_clinic(clinic_id).bulk_create(
                [
                    GooglePending(clinic_id=clinic_id, connection_id=pk, key=key)
                    for pk, of_clinic in connections
                    if of_clinic == clinic_id
                    for key in wanted
                ]
            )
        for pk, clinic_id in connections:
            queue_push_on_commit(clinic_id, pk)


def queue_push_on_commit(clinic_id: int, connection_id: int) -> None:
    """Mark a push queued (in the caller's transaction) and nudge it after commit, unless one is queued and
    not yet started (it will see these changes). A nudge the broker refuses takes its mark back, so the next
    change nudges again; a mark left by a process that died in between is cleared by the sweep."""
    connections = GoogleConnection.objects.for_clinic(clinic_id).filter(pk=connection_id)
    if connections.filter(push_queued=False).update(push_queued=True):
        _nudge_push(clinic_id, connection_id)


def _nudge_push(clinic_id: int, connection_id: int) -> None:
    connections = GoogleConnection.objects.for_clinic(clinic_id).filter(pk=connection_id)
    nudge(tasks.google_push, connection_id, on_lost=partial(connections.update, push_queued=False))


def pull_flag(public_id: Any, calendar_pk: int | None) -> str:
    # Named by the connection's UUID: one cache (Redis) may serve several databases' workers.
    return f"google:pull-queued:{public_id}:{calendar_pk}"


def queue_pull(connection: GoogleConnection, calendar_pk: int | None, *, countdown: float = 0.0) -> None:
    """Nudge a pull after commit (a burst of notifications for one calendar makes one). A lost one is made
    good by beat's periodic pull of every connection, which gives each a `countdown` (a worker only) and does
    not take the burst's flag: a notification while it waits still pulls at once."""
    once_per = None if countdown else pull_flag(connection.public_id, calendar_pk)
    nudge(tasks.google_pull, connection.pk, calendar_pk, once_per=once_per, countdown=countdown)


GOLDEN = (5**0.5 - 1) / 2  # successive multiples of it mod 1 spread evenly (and never repeat)


def pull_countdown(connection_pk: int) -> float:
    """When, within beat's pull interval, a connection is pulled: its own moment, the same every interval, so
    the project's calls are spread evenly instead of all at the top of the interval (Google's "Manage quotas":
    randomize traffic patterns, https://developers.google.com/workspace/calendar/api/guides/quota)."""
    interval = settings.GOOGLE_PULL_MINUTES * 60.0
    return round(interval * ((connection_pk * GOLDEN) % 1.0), 3)


def connections_to_pull() -> Iterator[GoogleConnection]:
    yield from (
        _active_connections_all_clinics()
        .filter(Q(backoff_until__isnull=True) | Q(backoff_until__lte=timezone.now()))
        .only("pk", "public_id")
    )


def pushes_waiting() -> list[int]:
    """The sweep: connections whose pending changes no push has taken (a lost nudge, a back-off now over, a
    push that gave up for now) are marked queued and nudged; a "push queued" mark left on a connection with
    nothing pending (its nudge lost, its changes taken by another push) is cleared, so the next change
    nudges again. Returns the connections nudged."""
    # Across clinics: the sweep delivers whatever is waiting in every clinic (each row names its clinic).
    waiting = GooglePending.objects.values_list("connection_id", flat=True).distinct()
    with transaction.atomic():
        GoogleConnection.objects.filter(push_queued=True).exclude(pk__in=waiting).update(push_queued=False)
        nudged = list(
            _active_connections_all_clinics()
            .filter(pk__in=waiting)
            .filter(Q(backoff_until__isnull=True) | Q(backoff_until__lte=timezone.now()))
            .values_list("pk", "clinic_id")
        )
        GoogleConnection.objects.filter(pk__in=[pk for pk, _ in nudged]).update(push_queued=True)
        for pk, clinic_id in nudged:
            _nudge_push(clinic_id, pk)
    return [pk for pk, _ in nudged]
