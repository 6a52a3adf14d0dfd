"""Online booking observes scheduling (a request's hold ran out) and notifications (the link in each email),
and adds its section to the appointment page. Receivers only write rows, in the change's transaction."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from scheduling.models import HoldOutcome


def on_hold_ended(sender: Any, clinic_id: int, hold: int, outcome: str, **kwargs: Any) -> None:
    """A request's hold ran out, or a change to the rota took its place away (withdrawn): the request ends."""
    if outcome in (HoldOutcome.EXPIRED, HoldOutcome.WITHDRAWN):
        from online.services import request_ended

        request_ended(clinic_id=clinic_id, hold_id=hold, outcome=outcome)


def booking_link_for(sender: Any, clinic_id: int, **kwargs: Any) -> str | None:
    """The clinic's online booking page, when it books online (a patient asked to rebook goes there)."""
    from django.conf import settings
    from django.urls import reverse

    from online.models import OnlineSettings

    found = OnlineSettings.objects.for_clinic(clinic_id).filter(enabled=True).values_list("clinic__slug", flat=True)
    slug = found.first()
    if slug is None:
        return None
    return settings.SITE_URL.rstrip("/") + reverse("online:landing", args=[slug])


def manage_link_for(sender: Any, appointment: Any, **kwargs: Any) -> str | None:
    """The signed link to view, cancel or move the appointment, when its clinic books online."""
    from online.models import OnlineSettings
    from online.services import manage_url

    if not OnlineSettings.objects.for_clinic(appointment.clinic_id).filter(enabled=True).exists():
        return None
    return manage_url(appointment.clinic, appointment)


def offer_link_for(sender: Any, offer: Any, **kwargs: Any) -> str:
    """The signed page where the patient takes or lets go of an offered place (for every clinic)."""
    from online.services import offer_url

    return offer_url(offer)


def appointment_section(sender: Any, request: Any, appointment: Any, **kwargs: Any) -> SafeString | None:
    """On the appointment page: how it was booked online (the patient's reason, a request's answer) and what the
    patient changed themselves."""
    from online.selectors import online_story

    story = online_story(clinic=request.clinic, appointment=appointment)
    if story is None:
        return None
    return render_to_string("online/_appointment_section.html", {"story": story}, request=request)
