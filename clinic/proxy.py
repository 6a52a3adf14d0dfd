"""The client's address behind the proxies in front of gunicorn (docker-compose expects one, terminating TLS)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from ipware.ip import get_client_ip


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the login lockout (django-axes, AXES_CLIENT_IP_CALLABLE) counts it.

    Each of the TRUSTED_PROXY_COUNT proxies in front of us appends the address it saw to X-Forwarded-For,
    and the last one connects to us (REMOTE_ADDR). So the client is the entry that many from the right;
    entries further left came from the client itself and are not believed. With no trusted proxy (0, the
    default) X-Forwarded-For is ignored, and so is one with fewer entries than there are proxies (a request
    that did not come through them): REMOTE_ADDR.
    """
    remote: str | None = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if count < 1:
        return remote
    # django-ipware counts the proxies listed in the header: all of ours but the last, which is REMOTE_ADDR.
    # Not strict: a chain longer than ours (the client's own entries on the left) is expected.
    found, _routable = get_client_ip(
        request, proxy_count=count - 1, request_header_order=["HTTP_X_FORWARDED_FOR"], strict=False
    )
    return found or remote
