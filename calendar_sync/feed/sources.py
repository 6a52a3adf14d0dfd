"""Reads of the ICS feed: its window, a subscription by its token, and what a practitioner's feed shows
(appointments and other events, each with the fingerprint that says whether it changed)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Q

from calendar_sync.feed.ics import FeedItem, without_controls
from calendar_sync.keys import ItemKey, split
from calendar_sync.models import FeedDocument, FeedSubscription
from clinic.replica import replica_reads
from patients.display import RESTRICTED_LABEL, mode_in_use, patient_identifier
from scheduling.models import Appointment, OtherEvent
from scheduling.recurrence import compact_utc

if TYPE_CHECKING:
    from clinic.models import Clinic, Practitioner


# The feed covers 60 days back to 18 months ahead of the moment it is built.
WINDOW_BACK = dt.timedelta(days=60)
WINDOW_AHEAD = dt.timedelta(days=548)
UID_DOMAIN = "clinic-scheduler"


def feed_window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return now - WINDOW_BACK, now + WINDOW_AHEAD


def subscription_by_token_hash(token_hash: str) -> FeedSubscription | None:
    """The enabled subscription with this token hash (the feed's lookup)."""
    # Across clinics: a calendar app has no session; the secret token is its credential, and the
    # subscription names its clinic.
    return (
        FeedSubscription.objects.select_related("document", "practitioner", "clinic")
        .defer("document__body")
        .filter(token_hash=token_hash, enabled=True)
        .first()
    )


def feed_body(*, clinic: Clinic, document: FeedDocument) -> bytes:
    """The stored bytes of a feed (kept out of the lookup, which a 304 answers without them).

    The bytes of this very version (its ETag, read on the primary with the subscription): from the read replica
    when one is configured and has it, else from the primary, so the body never belongs to another ETag."""
    rows = FeedDocument.objects.for_clinic(clinic).filter(pk=document.pk).values_list("body", flat=True)
    with replica_reads():
        body = rows.filter(etag=document.etag).first()
    if body is None:  # the replica has not replayed this build yet (or a newer build replaced it meanwhile)
        body = rows.get()
    return bytes(body)


def shown_mode(subscription: FeedSubscription) -> str:
    """The identifier mode the subscription's feed and Google events use now (its clinic's setting applied)."""
    return mode_in_use(subscription.identifier_mode, internal_ids_enabled=subscription.clinic.internal_ids_enabled)


def subscription_of(*, clinic: Clinic, practitioner: Practitioner) -> FeedSubscription | None:
    return FeedSubscription.objects.for_clinic(clinic).filter(practitioner=practitioner).first()


@dataclass(frozen=True)
class FeedSource:
    """One event the feed shows, with the fingerprint of everything it shows."""

    key: ItemKey
    sort_key: str
    fingerprint: str
    item: FeedItem


def fingerprint(*parts: object) -> str:
    return hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=16).hexdigest()


def feed_sources(
    *,
    clinic: Clinic,
    practitioner: Practitioner,
    mode: str,
    now: dt.datetime,
    keys: Collection[ItemKey] | None = None,
) -> Iterator[FeedSource]:
    """The practitioner's live appointments and other events in the window (two queries); with `keys`,
    only those of them that still belong in the feed.

    A patient is named only as `mode` allows (Internal ID falls back to initials while the clinic has internal
    IDs off: patients.display.mode_in_use); a blocked patient only as "Restricted patient". Cancelled
    appointments and those of erased patients are left out, so calendar apps drop them.
    """
    mode = mode_in_use(mode, internal_ids_enabled=clinic.internal_ids_enabled)
    starts, ends = feed_window(now)
    appointments = (
        Appointment.objects.for_clinic(clinic)
        .live()
        .filter(practitioner=practitioner, starts_at__gte=starts, starts_at__lt=ends)
        # An erased patient's appointments are never shown again (nor sent to Google).
        .filter(patient__erased_at__isnull=True)
        .values_list(
            "pk",
            "public_id",
            "starts_at",
            "ends_at",
            "patient__first_name",
            "patient__last_name",
            "patient__preferred_name",
            "patient__internal_id",
            "patient__is_blocked",
            "slot_type__name",
            "slot__session__location__name",
        )
    )
    # Events pulled from Google are not ours to send anywhere.
    events = (
        OtherEvent.objects.for_clinic(clinic)
        .filter(practitioner=practitioner, google_event_id="")
        .filter(overlapping(starts, ends))
    )
    if keys is not None:
        appointment_pks, event_pks = split(keys)
        appointments = appointments.filter(pk__in=appointment_pks)
        events = events.filter(pk__in=event_pks)
    for pk, public_id, begins, finishes, first, last, preferred, internal_id, blocked, kind, place in appointments:
        who = (
            RESTRICTED_LABEL
            if blocked
            else patient_identifier(
                first_name=first, last_name=last, preferred_name=preferred, internal_id=internal_id, mode=mode
            )
        )
        # Text enters feeds and Google bodies here, once: without control characters (a vertical tab in a
        # title made strict calendar apps drop the whole feed). The fingerprint is of what is shown.
        summary = without_controls(f"{who} · {kind}" if kind else who)
        place = without_controls(place) if place else place  # (unchanged when clean: so is the fingerprint)
        yield FeedSource(
            key=ItemKey.appointment(pk),
            sort_key=compact_utc(begins),
            fingerprint=fingerprint(begins, finishes, summary, place),
            item=FeedItem(
                uid=f"appointment-{public_id}@{UID_DOMAIN}",
                summary=summary,
                starts_at=begins,
                ends_at=finishes,
                location=place or "",
            ),
        )
    events_shown = events.values_list(
        "pk", "public_id", "title", "all_day", "starts_at", "ends_at", "first_date", "last_date", "busy"
    )
    for pk, public_id, raw_title, all_day, begins, finishes, first_date, last_date, busy in events_shown:
        title = without_controls(raw_title)
        end_date = last_date + dt.timedelta(days=1) if all_day else None
        yield FeedSource(
            key=ItemKey.event(pk),
            sort_key=f"{first_date:%Y%m%d}T000000Z" if all_day else compact_utc(begins),
            fingerprint=fingerprint(title, all_day, begins, finishes, first_date, last_date, busy),
            item=FeedItem(
                uid=f"event-{public_id}@{UID_DOMAIN}",
                summary=title,
                starts_at=None if all_day else begins,
                ends_at=None if all_day else finishes,
                first_date=first_date if all_day else None,
                end_date=end_date,
                transparent=not busy,
            ),
        )


def overlapping(starts: dt.datetime, ends: dt.datetime) -> Q:
    """Timed events overlapping the interval, or all-day ones with a day in it."""
    return Q(all_day=False, starts_at__lt=ends, ends_at__gt=starts) | Q(
        all_day=True, first_date__lte=ends.date(), last_date__gte=starts.date()
    )
