"""Demo calendar sync for `manage.py seed_demo`: the clinician's own feed, allowed (seeded once)."""

from __future__ import annotations

from calendar_sync.feed.subscriptions import default_mode, subscription_get_or_create
from calendar_sync.models import FeedSubscription
from calendar_sync.services import subscription_save
from clinic.models import Clinic, Membership, Practitioner, Role


def seed_clinic(clinic: Clinic) -> None:
    clinician = Membership.objects.for_clinic(clinic).filter(role=Role.CLINICIAN).select_related("user").first()
    if clinician is None:
        return
    practitioner = Practitioner.objects.for_clinic(clinic).filter(user=clinician.user).first()
    if practitioner is None or FeedSubscription.objects.for_clinic(clinic).filter(practitioner=practitioner).exists():
        return
    subscription = subscription_get_or_create(clinic=clinic, practitioner=practitioner)
    subscription_save(
        clinic=clinic,
        actor=clinician.user,
        subscription=subscription,
        enabled=True,
        identifier_mode=default_mode(clinic),
    )
