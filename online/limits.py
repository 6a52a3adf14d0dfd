"""Rate limits of the public site: fixed windows counted in the cache (Redis in production, shared by every
web process; local memory in `make run`). Keys are hashed: no address, email or phone is stored in the cache."""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)


def _key(scope: str, value: str, window: int) -> str:
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:{scope}:{value.strip().casefold()}".encode()).hexdigest()[:32]
    return f"online-limit:{scope}:{window}:{digest}"


def over_limit(scope: str, value: str | None, *, limit: int, window_seconds: int) -> bool:
    """Count one more try of `value` (an address, an email, a phone) in `scope`; True when that is more than
    `limit` in the current window. Nothing to count (no value) is never limited."""
    if not value:
        return False
    key = _key(scope, value, window_seconds)
    try:
        if cache.add(key, 1, timeout=window_seconds):
            return limit < 1
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window_seconds)
            count = 1
    except Exception:  # noqa: BLE001 - a cache (Redis) that does not answer: the site stays up, unlimited
        log.warning("online rate limit not counted: the cache did not answer")
        return False
    return count > limit
