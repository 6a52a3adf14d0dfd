"""Writes of one-way sync: the subscription (allow, identifier mode, regenerate) and building its feed.

A feed is built by Celery after each change (see receivers.py and tasks.py) and stored; the feed view
serves the stored bytes and builds only a stale or missing feed. A build reuses the stored VEVENT of
every event whose fingerprint is unchanged, so one change re-serialises one event.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet

from calendar_sync import ics
from calendar_sync.models import FeedChange, FeedDocument, FeedEvent, FeedSubscription
from calendar_sync.selectors import feed_sources
from clinic.db import DbValues, bulk_insert
from clinic.services import audit_record
from patients.display import IdentifierMode

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic, Practitioner


def feed_token(subscription: FeedSubscription) -> str:
    """The secret of the subscription URL: an HMAC of the secret key and the salt (43 URL-safe characters)."""
    message = f"ics-feed:{subscription.public_id}:{subscription.token_salt}".encode()
    digest = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _new_secret(subscription: FeedSubscription) -> None:
    subscription.token_salt = secrets.token_hex(16)
    subscription.token_hash = token_hash(feed_token(subscription))


def default_mode(clinic: Clinic) -> str:
    """Never the full name: the internal ID where the clinic uses them, else initials."""
    return IdentifierMode.INTERNAL_ID if clinic.internal_ids_enabled else IdentifierMode.INITIALS


def subscription_get_or_create(*, clinic: Clinic, practitioner: Practitioner) -> FeedSubscription:
    """The practitioner's subscription, created (not yet allowed) on first sight."""
    found = FeedSubscription.objects.for_clinic(clinic).filter(practitioner=practitioner).first()
    if found is not None:
        return found
    subscription = FeedSubscription(clinic=clinic, practitioner=practitioner, identifier_mode=default_mode(clinic))
    _new_secret(subscription)
    subscription.save()
    return subscription


def subscription_save(
    *, clinic: Clinic, actor: User, subscription: FeedSubscription, enabled: bool, identifier_mode: str
) -> FeedSubscription:
    """Allow (or stop) the sync and choose how patients are named; a change queues a rebuild."""
    if identifier_mode not in IdentifierMode.values:
        raise ValidationError("Choose how clients are named in the external calendar.")
    if identifier_mode == IdentifierMode.INTERNAL_ID and not clinic.internal_ids_enabled:
        raise ValidationError("Internal IDs are not enabled for this clinic; an admin enables them in Clinic settings.")
    changed = (subscription.enabled, subscription.identifier_mode) != (enabled, identifier_mode)
    with transaction.atomic():
        subscription.enabled = enabled
        subscription.identifier_mode = identifier_mode
        subscription.save(update_fields=["enabled", "identifier_mode", "updated_at"])
        if changed:
            audit_record(
                clinic=clinic,
                actor=actor,
                action="feed.settings",
                target=subscription,
                detail={"enabled": enabled, "identifier_mode": identifier_mode},
            )
            feeds_changed([subscription.practitioner_id])
    return subscription


def subscription_regenerate(*, clinic: Clinic, actor: User, subscription: FeedSubscription) -> FeedSubscription:
    """A new secret URL; the old one stops working at once."""
    with transaction.atomic():
        locked = FeedSubscription.objects.for_clinic(clinic).select_for_update().get(pk=subscription.pk)
        _new_secret(locked)
        locked.save(update_fields=["token_salt", "token_hash", "updated_at"])
        audit_record(clinic=clinic, actor=actor, action="feed.regenerated", target=locked, detail={})
    return locked


def feed_changes_record(
    practitioner_ids: Iterable[int] | QuerySet[Any], keys: Iterable[str] | None = None
) -> list[int]:
    """Record a change on these practitioners' enabled feeds: the changed items (None: everything), then a
    count, so a build that sees the count also sees the items. Returns the subscriptions' ids."""
    subscriptions = list(
        FeedSubscription.objects.filter(practitioner_id__in=practitioner_ids, enabled=True).values_list(
            "pk", "clinic_id"
        )
    )
    if not subscriptions:
        return []
    wanted = [""] if keys is None else sorted(set(keys))
    values = DbValues()
    ids = values.random_uuids(len(subscriptions) * len(wanted))
    rows = [(clinic_id, ids.pop(), pk, key) for pk, clinic_id in subscriptions for key in wanted]
    with transaction.atomic():
        bulk_insert(FeedChange._meta.db_table, ("clinic_id", "public_id", "subscription_id", "key"), rows)
        FeedSubscription.objects.filter(pk__in=[pk for pk, _ in subscriptions]).update(changes=F("changes") + 1)
    return [pk for pk, _ in subscriptions]


def feeds_changed(practitioner_ids: Iterable[int] | QuerySet[Any], keys: Iterable[str] | None = None) -> None:
    """Record a change on these practitioners' enabled feeds and queue their rebuild after commit."""
    from calendar_sync.tasks import build_feed

    for pk in feed_changes_record(practitioner_ids, keys):
        transaction.on_commit(partial(build_feed.delay, pk))


def is_stale(subscription: FeedSubscription, document: FeedDocument | None, now: dt.datetime) -> bool:
    """A feed is rebuilt when missing, older than the last change or the mode, or built on an earlier day
    (its window has moved)."""
    return (
        document is None
        or document.built_at is None
        or document.built_changes < subscription.changes
        or document.built_mode != subscription.identifier_mode
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
    with transaction.atomic():
        if not FeedDocument.objects.filter(subscription=subscription).exists():
            FeedDocument.objects.create(clinic_id=subscription.clinic_id, subscription=subscription)
        document = FeedDocument.objects.select_for_update().defer("body").get(subscription=subscription)
        current = FeedSubscription.objects.select_related("practitioner", "clinic").get(pk=subscription.pk)
        if not force and not is_stale(current, document, now):
            return document  # another builder got there first
        # The count first, then the items: a change counted here has its items recorded already.
        pending = list(FeedChange.objects.filter(subscription=current).values_list("pk", "key"))
        keys = {key for _, key in pending}
        targeted = (
            not force
            and document.built_at is not None
            and document.built_mode == current.identifier_mode
            and document.built_at.date() >= now.date()
            and bool(keys)
            and "" not in keys
        )
        stored_events = FeedEvent.objects.filter(document=document)
        if targeted:
            stored_events = stored_events.filter(key__in=keys)
        stored = {
            key: (pk, fp, sequence)
            for pk, key, fp, sequence in stored_events.values_list("pk", "key", "fingerprint", "sequence")
        }
        sources = feed_sources(
            clinic=current.clinic,
            practitioner=current.practitioner,
            mode=current.identifier_mode,
            now=now,
            keys=keys if targeted else None,
        )
        stamp = ics.utc_stamp(now)
        fresh: list[tuple[str, str, str, int, str]] = []  # key, sort key, fingerprint, sequence, text
        for source in sources:
            old = stored.get(source.key)
            if old is not None and old[1] == source.fingerprint:
                del stored[source.key]  # unchanged: its stored VEVENT stays
                continue
            sequence = 0 if old is None else old[2] + 1
            fresh.append(
                (
                    source.key,
                    source.sort_key,
                    source.fingerprint,
                    sequence,
                    ics.vevent(source.item, sequence=sequence, stamp=stamp),
                )
            )
        # What is left in `stored` is gone from the feed (cancelled, moved out, deleted) or re-serialised.
        gone = [pk for pk, _, _ in stored.values()]
        if gone:
            FeedEvent.objects.filter(pk__in=gone).delete()
        # What stays as stored (read before the new rows go in), then the new: the feed in start order.
        entries = list(FeedEvent.objects.filter(document=document).values_list("sort_key", "key", "text"))
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
            "built_mode": current.identifier_mode,
        }
        if etag != document.etag:
            fields |= {"body": gzip.compress(body, compresslevel=1, mtime=0), "etag": etag, "modified_at": now}
        FeedDocument.objects.filter(pk=document.pk).update(**fields)
        FeedChange.objects.filter(pk__in=[pk for pk, _ in pending]).delete()
    document.refresh_from_db(fields=["etag", "built_at", "modified_at", "built_changes", "built_mode"])
    return document
