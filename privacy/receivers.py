"""privacy's answers to the other apps' questions (connected in PrivacyConfig.ready): they only read."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from privacy.selectors.breakglass import live_grant


def blocked_access(*, membership: Any, patient: Any, **_: Any) -> str | None:
    """patients.signals.blocked_access_query: the id of this member's live break-glass grant for this patient."""
    if membership is None or patient is None:
        return None
    grant = live_grant(membership=membership, patient=patient, now=timezone.now())
    return str(grant.public_id) if grant is not None else None


def restricted_match(*, request: Any, patient: Any, next_url: str, **_: Any) -> dict[str, str]:
    """patients.signals.restricted_match: while a grant lets the member in, straight on to where they meant to go;
    otherwise the break-glass page (which then sends them there)."""
    if live_grant(membership=request.membership, patient=patient, now=timezone.now()) is not None:
        return {"url": next_url, "label": "Open (break-glass access granted)"}
    url = reverse("privacy:break-glass", args=[patient.public_id]) + "?" + urlencode({"next": next_url})
    return {"url": url, "label": "Break glass to open"}
