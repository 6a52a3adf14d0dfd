"""A patient's yes or no to a channel, with its history (reception, an unsubscribe, an SMS STOP, Twilio's own
refusal of an opted-out number)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from notifications.models import Channel, Consent, ContactPreference

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from patients.models import Patient


def consent_record(
    *,
    patient: Patient,
    channel: str,
    granted: bool,
    source: str,
    actor: User | None,
    now: dt.datetime,
) -> None:
    """Record a patient's yes or no to a channel: the preference, and a Consent row saying when and from where
    (none when nothing changed and the history already has the channel)."""
    preference, _ = ContactPreference.objects.for_clinic(patient.clinic_id).get_or_create(
        clinic_id=patient.clinic_id, patient=patient
    )
    field = "email_ok" if channel == Channel.EMAIL else "sms_ok"
    if (
        getattr(preference, field) == granted
        and Consent.objects.for_clinic(patient.clinic_id).filter(patient=patient, channel=channel).exists()
    ):
        return
    setattr(preference, field, granted)
    preference.save(update_fields=[field, "updated_at"])
    Consent.objects.create(
        clinic_id=patient.clinic_id,
        patient=patient,
        channel=channel,
        granted=granted,
        source=source,
        recorded_by=actor,
        at=now,
    )
