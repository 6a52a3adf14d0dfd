"""Writes of the Sync Calendar page: allow (or stop) the sync, how clients are named, and the sync type.

The feed itself (subscription, changes, builds) is in the feed package; two-way sync in the google package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction

from calendar_sync.feed.build import feeds_changed
from calendar_sync.feed.subscriptions import subscription_get_or_create
from calendar_sync.google.connect import sync_type_set
from calendar_sync.models import FeedSubscription
from clinic.services import audit_record
from patients.display import IdentifierMode

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic, Practitioner


def subscription_save(
    *, clinic: Clinic, actor: User, subscription: FeedSubscription, enabled: bool, identifier_mode: str
) -> FeedSubscription:
    """Allow (or stop) the sync and choose how patients are named; a change queues a rebuild.

    Internal ID is chosen only where the clinic has internal IDs on; one chosen before they were turned off may
    stay (the feed shows initials meanwhile: patients.display.mode_in_use)."""
    if identifier_mode not in IdentifierMode.values:
        raise ValidationError("Choose how clients are named in the external calendar.")
    kept = identifier_mode == subscription.identifier_mode
    if identifier_mode == IdentifierMode.INTERNAL_ID and not kept and not clinic.internal_ids_enabled:
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


def sync_settings_save(
    *,
    clinic: Clinic,
    actor: User,
    practitioner: Practitioner,
    enabled: bool,
    identifier_mode: str,
    sync_type: str | None,
) -> FeedSubscription:
    """The Sync page's Save, all or nothing: allow (or stop) the sync, how clients are named and the sync
    type (None where Google sync is not offered: the type stays as it is)."""
    with transaction.atomic():
        subscription = subscription_get_or_create(clinic=clinic, practitioner=practitioner)
        subscription_save(
            clinic=clinic, actor=actor, subscription=subscription, enabled=enabled, identifier_mode=identifier_mode
        )
        if sync_type is not None:
            sync_type_set(clinic=clinic, actor=actor, subscription=subscription, sync_type=sync_type)
    return subscription
