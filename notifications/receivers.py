"""Notifications observe scheduling (patient_news) and new clinics; receivers only write rows, in the change's
transaction, and nudge the sender after commit."""

from __future__ import annotations

from typing import Any

from notifications.models import NotificationSettings


def on_patient_news(
    sender: Any,
    clinic_id: int,
    news: str,
    appointments: tuple[int, ...],
    previous: int | None = None,
    category: str = "",
    **kwargs: Any,
) -> None:
    from notifications.recording import news_record

    news_record(clinic_id=clinic_id, news=news, appointments=appointments, previous=previous, category=category)


def on_clinic_saved(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """Every clinic has its settings row (the reminder sweep joins it)."""
    if created and not raw:
        NotificationSettings.objects.for_clinic(instance).get_or_create(clinic=instance)


def on_waitlist_offered(sender: Any, clinic_id: int, offer: int, **kwargs: Any) -> None:
    """A freed place offered to someone waiting: the offer's messages, keyed by the offer (recorded once)."""
    from notifications.recording import offer_record
    from scheduling.models import WaitlistOffer

    found = WaitlistOffer.objects.for_clinic(clinic_id).select_related("entry__patient", "slot").get(pk=offer)
    offer_record(clinic_id=clinic_id, patient=found.entry.patient, slot=found.slot, ref=str(found.public_id))


def quiet_hours_for(sender: Any, clinic_id: int, zone: Any, now: Any, **kwargs: Any) -> Any:
    """When the clinic's quiet hours end on this zone's clock, if `now` is inside them (offers wait for it)."""
    from notifications.recording import clinic_settings
    from notifications.sending import quiet_end

    return quiet_end(clinic_settings(clinic_id), zone, now)
