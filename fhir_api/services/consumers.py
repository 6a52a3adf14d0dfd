"""Writes of consumers: an admin lets a third-party system call the FHIR API (an OAuth2 client of its own, bound to
the clinic and to chosen scopes and slot types), changes what it may do, rotates its secret or revokes it. Each is
audited. The client secret is shown once, when created or rotated; only its hash is kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import AccessToken, Application, RefreshToken

from clinic.services import audit_record
from fhir_api.models import Consumer, Scope

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic
    from sessions_setup.models import SlotType


@dataclass(frozen=True)
class Credentials:
    consumer: Consumer
    client_id: str
    client_secret: str  # in clear, this once


def _checked_scopes(scopes: Sequence[str]) -> str:
    chosen = [scope for scope in Scope.values if scope in set(scopes)]
    if not chosen:
        raise ValueError("Choose at least one scope.")
    return " ".join(chosen)


def consumer_create(
    *,
    clinic: Clinic,
    actor: User,
    name: str,
    organisation_type: str,
    ods_code: str,
    scopes: Sequence[str],
    slot_types: Sequence[SlotType],
    rate_limit: int,
    client_secret: str = "",
) -> Credentials:
    """A new consumer and its OAuth2 client (confidential, client credentials). `client_secret` is for the demo
    data only; otherwise one is generated."""
    secret = client_secret or generate_client_secret()
    with transaction.atomic():
        application = Application(
            name=f"{clinic.slug}: {name}"[:255],
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            client_secret=secret,
            hash_client_secret=True,
        )
        application.save()
        consumer = Consumer.objects.create(
            clinic=clinic,
            name=name,
            organisation_type=organisation_type,
            ods_code=ods_code,
            application=application,
            scopes=_checked_scopes(scopes),
            rate_limit=rate_limit,
            created_by=actor,
        )
        consumer.slot_types.set([kind for kind in slot_types if kind.clinic_id == clinic.pk])
        audit_record(
            clinic=clinic,
            actor=actor,
            action="fhir.consumer.created",
            target=consumer,
            detail={"name": name, "scopes": consumer.scopes, "client_id": application.client_id},
        )
    return Credentials(consumer=consumer, client_id=application.client_id, client_secret=secret)


def consumer_update(
    *,
    clinic: Clinic,
    actor: User,
    consumer: Consumer,
    name: str,
    organisation_type: str,
    ods_code: str,
    scopes: Sequence[str],
    slot_types: Sequence[SlotType],
    rate_limit: int,
) -> Consumer:
    """Change what a consumer may do. Narrower scopes apply to its live tokens at once (a call needs the scope in
    both the token and the consumer)."""
    with transaction.atomic():
        locked = Consumer.objects.for_clinic(clinic).select_for_update().get(pk=consumer.pk)
        before = locked.scopes
        locked.name = name
        locked.organisation_type = organisation_type
        locked.ods_code = ods_code
        locked.scopes = _checked_scopes(scopes)
        locked.rate_limit = rate_limit
        locked.save()
        locked.slot_types.set([kind for kind in slot_types if kind.clinic_id == clinic.pk])
        audit_record(
            clinic=clinic,
            actor=actor,
            action="fhir.consumer.changed",
            target=locked,
            detail={"name": name, "scopes": locked.scopes, "scopes_before": before},
        )
    return locked


def _end_tokens(application: Application) -> None:
    RefreshToken.objects.filter(application=application).delete()
    AccessToken.objects.filter(application=application).delete()


def consumer_rotate(*, clinic: Clinic, actor: User, consumer: Consumer) -> Credentials:
    """A new client secret: the old one stops working now, and so do the tokens it was given."""
    secret = generate_client_secret()
    with transaction.atomic():
        locked = (
            Consumer.objects.for_clinic(clinic).select_for_update().select_related("application").get(pk=consumer.pk)
        )
        if locked.revoked_at is not None:
            raise ValueError("This consumer is revoked.")
        application = locked.application
        application.client_secret = secret
        application.save(update_fields=["client_secret", "updated"])
        _end_tokens(application)
        locked.secret_rotated_at = timezone.now()
        locked.save(update_fields=["secret_rotated_at"])
        audit_record(clinic=clinic, actor=actor, action="fhir.consumer.rotated", target=locked, detail={})
    return Credentials(consumer=locked, client_id=application.client_id, client_secret=secret)


def consumer_revoke(*, clinic: Clinic, actor: User, consumer: Consumer) -> Consumer:
    """End a consumer's access for good: its tokens stop working now and it gets no more. Its bookings stay."""
    with transaction.atomic():
        locked = (
            Consumer.objects.for_clinic(clinic).select_for_update().select_related("application").get(pk=consumer.pk)
        )
        if locked.revoked_at is not None:
            return locked
        _end_tokens(locked.application)
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit_record(clinic=clinic, actor=actor, action="fhir.consumer.revoked", target=locked, detail={})
    return locked
