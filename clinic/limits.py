"""Rate limits (the public booking site's, the FHIR API's per client): fixed windows counted in the cache (Redis in
production, shared by every web process; local memory in `make run`). Keys are hashed: no address, email, phone
or client id is stored in the cache."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

from clinic.nudges import cache_quietly


def _key(scope: str, value: str, window: int) -> str:
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:{scope}:{value.strip().casefold()}".encode()).hexdigest()[:32]
    return f"limit:{scope}:{window}:{digest}"


def over_limit(scope: str, value: str | None, *, limit: int, window_seconds: int) -> bool:
    """Count one more try of `value` (an address, an email, a phone) in `scope`; True when that is more than
    `limit` in the current window. Nothing to count (no value) is never limited, and neither is anything while
    the cache does not answer (the site stays up; the code's own tries are still counted in the database)."""
    if not value:
        return False
    key = _key(scope, value, window_seconds)
    count = cache_quietly(lambda: _count(key, window_seconds), 0)
    return count > limit


def _count(key: str, window_seconds: int) -> int:
    if cache.add(key, 1, timeout=window_seconds):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window_seconds)
        return 1
