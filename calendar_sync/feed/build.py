"""Writes of the ICS feed: recording which events changed, and building a feed.

A feed is built by Celery after each change (see receivers.py and tasks.py) and stored; the feed view
serves the stored bytes and builds only a stale or missing feed. A build reuses the stored VEVENT of
every event whose fingerprint is unchanged, so one change re-serialises one event.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet

from calendar_sync import tasks
from calendar_sync.feed import ics
from calendar_sync.feed.sources import feed_sources, shown_mode
from calendar_sync.keys import EVERYTHING, ItemKey
from calendar_sync.models import FeedChange, FeedDocument, FeedEvent, FeedSubscription
from clinic.db import DbValues, bulk_insert
from clinic.nudges import nudge


def _enabled_subscriptions_all_clinics(practitioner_ids: Iterable[int] | QuerySet[Any]) -> list[tuple[int, int]]:
    """(pk, clinic_id) of these practitioners' enabled subscriptions."""
    # Across clinics: the calendar_changed signal names practitioners by id only (each row names its clinic).
    return list(
        FeedSubscription.objects.filter(practitioner_id__in=practitioner_ids, enabled=True).values_list(
            "pk", "clinic_id"
        )
    )


def feed_changes_record(
    practitioner_ids: Iterable[int] | QuerySet[Any], keys: Iterable[ItemKey | str] | None = None
) -> list[int]:
    """Record a change on these practitioners' enabled feeds: the changed items (None: everything; a key
    may come as its stored text), then a count, so a build that sees the count also sees the items.
    Returns the subscriptions' ids."""
    subscriptions = _enabled_subscriptions_all_clinics(practitioner_ids)
    if not subscriptions:
        return []
    wanted = [EVERYTHING] if keys is None else sorted({str(key) for key in keys})
    values = DbValues()
    ids = values.random_uuids(len(subscriptions) * len(wanted))
    rows = [(clinic_id, ids.pop(), pk, key) for pk, clinic_id in subscriptions for key in wanted]
    with transaction.atomic(savepoint=False):
        bulk_insert(FeedChange._meta.db_table, ("clinic_id", "public_id", "subscription_id", "key"), rows)
        for clinic_id in sorted({clinic_id for _, clinic_id in subscriptions}):
            FeedSubscription.objects.for_clinic(clinic_id).filter(
                pk__in=[pk for pk, of_clinic in subscriptions if of_clinic == clinic_id]
            ).update(changes=F("changes") + 1)
    return [pk for pk, _ in subscriptions]


def feeds_changed(practitioner_ids: Iterable[int] | QuerySet[Any], keys: Iterable[ItemKey] | None = None) -> list[int]:
    """Record a change on these practitioners' enabled feeds (rows in the caller's transaction) and nudge
    their rebuild after commit (a lost nudge is delivered by the sweep). Returns the subscriptions' ids."""
    subscriptions = feed_changes_record(practitioner_ids, keys)
    for pk in subscriptions:
        nudge(tasks.build_feed, pk)
    return subscriptions


def subscriptions_waiting() -> list[int]:
    """Enabled subscriptions with recorded changes that no build has taken yet (the sweep rebuilds them)."""
    # Across clinics: the sweep delivers what every clinic's lost nudges left (each row names its clinic).
    return list(
        FeedChange.objects.filter(subscription__enabled=True).values_list("subscription_id", flat=True).distinct()
    )


def is_stale(subscription: FeedSubscription, document: FeedDocument | None, now: dt.datetime) -> bool:
    """A feed is rebuilt when missing, older than the last change or the mode in use (the clinic's internal IDs
    setting applied), or built on an earlier day (its window has moved)."""
    return (
        document is None
        or document.built_at is None
        or document.built_changes < subscription.changes
        or document.built_mode != shown_mode(subscription)
        or document.built_at.date() < now.date()
    )


def feed_bytes(stored: bytes) -> bytes:
    """The feed itself from its stored (gzip) form."""
    return gzip.decompress(stored)


def feed_build(*, subscription: FeedSubscription, now: dt.datetime, force: bool = False) -> FeedDocument:
    """Build (or bring up to date) the stored feed of a subscription: one transaction, builders queue.

    After a change of some items (and nothing else), only those are read again and re-serialised; the
    others' stored VEVENTs are reused as they are. A new mode, a new day, a change of everything or a
    forced build reads the whole window (still reusing every VEVENT whose fingerprint is unchanged).
    """
    clinic_id = subscription.clinic_id
    documents = FeedDocument.objects.for_clinic(clinic_id)
    feed_events = FeedEvent.objects.for_clinic(clinic_id)
    with transaction.atomic():
        if not documents.filter(subscription=subscription).exists():
            documents.create(clinic_id=clinic_id, subscription=subscription)
        document = documents.select_for_update().defer("body").get(subscription=subscription)
        subscriptions = FeedSubscription.objects.for_clinic(clinic_id)
        current = subscriptions.select_related("practitioner", "clinic").get(pk=subscription.pk)
        if not force and not is_stale(current, document, now):
            return document  # another builder got there first
        # The count first, then the items: a change counted here has its items recorded already.
        mode = shown_mode(current)
        changes = FeedChange.objects.for_clinic(clinic_id)
        pending = list(changes.filter(subscription=current).values_list("pk", "key"))
        texts = {key for _, key in pending}
        targeted = (
            not force
            and document.built_at is not None
            and document.built_mode == mode
            and document.built_at.date() >= now.date()
            and bool(texts)
            and EVERYTHING not in texts
        )
        stored_events = feed_events.filter(document=document)
        if targeted:
            stored_events = stored_events.filter(key__in=texts)
        stored = {
            key: (pk, fp, sequence)
            for pk, key, fp, sequence in stored_events.values_list("pk", "key", "fingerprint", "sequence")
        }
        sources = feed_sources(
            clinic=current.clinic,
            practitioner=current.practitioner,
            mode=mode,
            now=now,
            keys={ItemKey.parse(text) for text in texts} if targeted else None,
        )
        stamp = ics.utc_stamp(now)
        fresh: list[tuple[str, str, str, int, str]] = []  # key, sort key, fingerprint, sequence, text
        for source in sources:
            key = source.key.text
            old = stored.get(key)
            if old is not None and old[1] == source.fingerprint:
                del stored[key]  # unchanged: its stored VEVENT stays
                continue
            sequence = 0 if old is None else old[2] + 1
            fresh.append(
                (
                    key,
                    source.sort_key,
                    source.fingerprint,
                    sequence,
                    ics.vevent(source.item, sequence=sequence, stamp=stamp),
                )
            )
        # What is left in `stored` is gone from the feed (cancelled, moved out, deleted) or re-serialised.
        gone = [pk for pk, _, _ in stored.values()]
        if gone:
            feed_events.filter(pk__in=gone).delete()
        # What stays as stored (read before the new rows go in), then the new: the feed in start order.
        entries = list(feed_events.filter(document=document).values_list("sort_key", "key", "text"))
        entries += [(sort_key, key, text) for key, sort_key, _, _, text in fresh]
        entries.sort()
        if fresh:
            ids = DbValues().random_uuids(len(fresh))
            bulk_insert(
                FeedEvent._meta.db_table,
                ("clinic_id", "public_id", "document_id", "key", "sort_key", "fingerprint", "sequence", "text"),
                [(current.clinic_id, ids[i], document.pk, *row) for i, row in enumerate(fresh)],
            )
        body = ics.calendar(f"{current.practitioner.name} · {current.clinic.name}", (e[2] for e in entries))
        etag = 'W/"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
        fields: dict[str, Any] = {
            "built_at": now,
            "built_changes": current.changes,
            "built_mode": mode,
        }
        if etag != document.etag:
            fields |= {"body": gzip.compress(body, compresslevel=1, mtime=0), "etag": etag, "modified_at": now}
        documents.filter(pk=document.pk).update(**fields)
        changes.filter(pk__in=[pk for pk, _ in pending]).delete()
    document.refresh_from_db(fields=["etag", "built_at", "modified_at", "built_changes", "built_mode"])
    return document
