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
