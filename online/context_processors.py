"""The header's "Online requests" count for reception and admins (cached per clinic until a request changes, so
a page costs no query for it most of the time)."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django.urls import reverse

from clinic.nudges import cache_quietly
from online.access import may_answer_requests
from online.services import REQUESTS_VERSION
from patients.models import may_see_blocked

CACHE_SECONDS = 300


def online_requests(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    if not may_answer_requests(membership):
        return {}
    clinic_id = membership.clinic_id  # type: ignore[union-attr]
    sees_blocked = may_see_blocked(membership)
    # The version first: a change committed after this read moves it, so what is stored now is never read again.
    version = cache_quietly(lambda: cache.get(REQUESTS_VERSION.format(clinic_id), 0), None)
    key = f"online-requests:{clinic_id}:{version}"
    cached = cache_quietly(lambda: cache.get(key) or {}, None) if version is not None else None
    if cached is None or sees_blocked not in cached:
        from online.models import OnlineSettings
        from online.selectors import pending_count

        enabled = OnlineSettings.objects.for_clinic(clinic_id).filter(enabled=True).exists()
        count = pending_count(clinic=membership.clinic, membership=membership)  # type: ignore[union-attr]
        if cached is not None:
            fresh = {**cached, sees_blocked: (enabled, count)}
            cache_quietly(lambda: cache.set(key, fresh, CACHE_SECONDS), None)
        answer = (enabled, count)
    else:
        answer = cached[sees_blocked]
    enabled, count = answer
    if not enabled and not count:
        return {}
    return {"online_requests_nav": {"url": reverse("online:requests"), "count": count}}
