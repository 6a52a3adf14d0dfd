"""A practitioner's feed subscription and its secret URL: created (not yet allowed) on first sight, and a
new secret on request. Below the feed and Google services, which both need a subscription to exist."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from calendar_sync.crypto import token_hash
from calendar_sync.models import FeedSubscription
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


def subscription_regenerate(*, clinic: Clinic, actor: User, subscription: FeedSubscription) -> FeedSubscription:
    """A new secret URL; the old one stops working at once."""
    with transaction.atomic():
        locked = FeedSubscription.objects.for_clinic(clinic).select_for_update().get(pk=subscription.pk)
        _new_secret(locked)
        locked.save(update_fields=["token_salt", "token_hash", "updated_at"])
        audit_record(clinic=clinic, actor=actor, action="feed.regenerated", target=locked, detail={})
    return locked
