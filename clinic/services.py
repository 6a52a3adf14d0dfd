"""Writes of the tenant core. Each is one transaction and leaves an audit event."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model

from clinic.models import AuditEvent, Clinic, Department, Membership, Role
from clinic.signals import clinic_settings_changed

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.forms import ModelForm


def audit_record(
    *,
    clinic: Clinic,
    actor: User | None,
    action: str,
    target: Model | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record that `actor` did `action` to `target`. Keep `detail` free of patient PII."""
    object_type = target._meta.label_lower if target is not None else ""
    object_id = str(getattr(target, "public_id", None) or getattr(target, "pk", "")) if target is not None else ""
    return AuditEvent.objects.create(
        clinic=clinic,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        detail=detail or {},
    )


def tenant_object_save(*, clinic: Clinic, actor: User, form: ModelForm) -> Model:
    """Save a validated form for a tenant object of `clinic` and audit the change."""
    instance = form.instance
    created = instance._state.adding
    with transaction.atomic():
        if created:
            instance.clinic = clinic
        obj = form.save()
        audit_record(
            clinic=clinic,
            actor=actor,
            action=f"{obj._meta.model_name}.{'created' if created else 'updated'}",
            target=obj,
            detail={"fields": sorted(form.changed_data)},
        )
    return obj


def clinic_settings_update(*, clinic: Clinic, actor: User, form: ModelForm) -> Clinic:
    """Save the clinic's settings; observers record their follow-up work (feeds that name clients by internal
    ID when those are turned off or on) in the same transaction."""
    with transaction.atomic():
        obj = form.save()
        audit_record(
            clinic=clinic,
            actor=actor,
            action="clinic.updated",
            target=obj,
            detail={"fields": sorted(form.changed_data)},
        )
        if form.changed_data:
            clinic_settings_changed.send(sender=Clinic, clinic=obj, fields=frozenset(form.changed_data))
    return obj


def _ensure_an_admin_remains(*, membership: Membership, new_role: str | None, active: bool) -> None:
    still_admin = active and (new_role or membership.role) == Role.ADMIN
    if membership.role == Role.ADMIN and not still_admin:
        others = Membership.objects.for_clinic(membership.clinic).admins().exclude(pk=membership.pk)
        if not others.exists():
            raise ValidationError("A clinic needs at least one admin: make someone else an admin first.")


def member_add(
    *,
    clinic: Clinic,
    actor: User,
    email: str,
    first_name: str,
    last_name: str,
    role: str,
    permissions: dict[str, bool],
) -> tuple[Membership, bool]:
    """Add a user (found by email, or created without a password) to the clinic.

    Returns the membership and whether the user account is new (and so needs a
    password-reset email to choose a password).
    """
    user_model = get_user_model()
    email = user_model.objects.normalize_email(email).lower()
    with transaction.atomic():
        user = user_model.objects.filter(email__iexact=email).first()
        new_user = user is None
        if user is None:
            user = user_model(username=email, email=email, first_name=first_name, last_name=last_name)
            # A random password nobody knows: the emailed set-password link replaces it.
            # (Django's reset form skips users whose password is unusable.)
            user.set_password(secrets.token_urlsafe(32))
            user.save()
        if Membership.objects.for_clinic(clinic).filter(user=user).exists():
            raise ValidationError(f"{email} is already a member of this clinic.")
        membership = Membership.objects.create(clinic=clinic, user=user, role=role, **permissions)
        audit_record(
            clinic=clinic,
            actor=actor,
            action="membership.created",
            target=membership,
            detail={"role": role, "permissions": sorted(k for k, v in permissions.items() if v)},
        )
    return membership, new_user


def member_update(
    *,
    clinic: Clinic,
    actor: User,
    membership: Membership,
    role: str,
    permissions: dict[str, bool],
    is_active: bool,
    department: Department | None = None,
) -> Membership:
    with transaction.atomic():
        # Lock the admins so two admins demoting each other at once cannot both succeed.
        list(Membership.objects.for_clinic(clinic).admins().select_for_update())
        _ensure_an_admin_remains(membership=membership, new_role=role, active=is_active)
        membership.role = role
        membership.is_active = is_active
        membership.department = department
        for field, value in permissions.items():
            setattr(membership, field, value)
        membership.save()
        audit_record(
            clinic=clinic,
            actor=actor,
            action="membership.updated",
            target=membership,
            detail={
                "role": role,
                "active": is_active,
                "department": str(department.public_id) if department else None,
                "permissions": sorted(k for k, v in permissions.items() if v),
            },
        )
    return membership


def member_remove(*, clinic: Clinic, actor: User, membership: Membership) -> None:
    with transaction.atomic():
        list(Membership.objects.for_clinic(clinic).admins().select_for_update())
        _ensure_an_admin_remains(membership=membership, new_role=None, active=False)
        audit_record(
            clinic=clinic,
            actor=actor,
            action="membership.removed",
            target=membership,
            detail={"user_id": membership.user_id, "role": membership.role},
        )
        membership.delete()
