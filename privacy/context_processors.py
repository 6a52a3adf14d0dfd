"""The header's "Break-glass review" entry for privacy officers, with the count of open reviews (cached per clinic
until a use or a review changes it, so a page costs no query for it most of the time)."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django.urls import reverse

from clinic.models import NamedPermission
from clinic.nudges import cache_quietly
from privacy.selectors.breakglass import open_reviews_count
from privacy.services.breakglass import REVIEWS_VERSION

CACHE_SECONDS = 300


def break_glass_reviews(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    if membership is None or not membership.has_permission(NamedPermission.PRIVACY_OFFICER):
        return {}
    clinic = request.clinic  # type: ignore[attr-defined]
    version = cache_quietly(lambda: cache.get(REVIEWS_VERSION.format(clinic.public_id), 0), None)
    key = f"breakglass-open:{clinic.public_id}:{version}"
    count = cache_quietly(lambda: cache.get(key), None) if version is not None else None
    if count is None:
        count = open_reviews_count(clinic_id=clinic.pk)
        if version is not None:
            cache_quietly(lambda: cache.set(key, count, CACHE_SECONDS), None)
    return {"break_glass_nav": {"url": reverse("privacy:reviews"), "count": count}}
