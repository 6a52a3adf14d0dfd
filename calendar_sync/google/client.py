"""The Google Calendar v3 client, and what Google's failures mean for us.

The client is built from the client library's bundled discovery document with its roots at
settings.GOOGLE_API_ROOT (Google's by default; the tests' fake otherwise), so that batch requests, which
googleapiclient addresses from the document's rootUrl, go to the same place. A failure is either
GoogleTrouble (try again after `delay`), AccessRevoked (the grant is gone: stop until connected again) or
ClientRefused (Google refuses this deployment's OAuth client: its settings are wrong, nobody must reconnect).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
from functools import cache as memoized
from pathlib import Path
from typing import Any

import google_auth_httplib2
import googleapiclient
import httplib2
from django.conf import settings
from django.core.cache import cache
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError

log = logging.getLogger(__name__)

# The narrowest scopes that do the job (https://developers.google.com/workspace/calendar/api/auth), asked for when
# needed (incremental authorization): connecting asks for the calendar we make for the clinic and the list of the
# account's calendars; choosing an existing calendar as the default one adds its events (to write them), syncing a
# secondary calendar adds reading events. Never "calendar" (see, edit, share and delete all calendars).
SCOPE_APP_CREATED = "https://www.googleapis.com/auth/calendar.app.created"
SCOPE_CALENDAR_LIST = "https://www.googleapis.com/auth/calendar.calendarlist.readonly"
SCOPE_EVENTS = "https://www.googleapis.com/auth/calendar.events"
SCOPE_EVENTS_READ = "https://www.googleapis.com/auth/calendar.events.readonly"
SCOPE_ALL = "https://www.googleapis.com/auth/calendar"  # what connections made before issue 18 were granted
CONNECT_SCOPES = (SCOPE_APP_CREATED, SCOPE_CALENDAR_LIST)
# What a person unticked at Google's granular consent screen, in the words of the Sync page.
SCOPE_WORDS = {
    SCOPE_APP_CREATED: "the calendar Clinic Scheduler makes for the clinic",
    SCOPE_CALENDAR_LIST: "the list of your calendars",
    SCOPE_EVENTS: "the events of your calendars",
    SCOPE_EVENTS_READ: "reading the events of your calendars",
}


def scope_covered(scope: str, granted: set[str]) -> bool:
    """Whether the granted scopes include `scope` (or one wider)."""
    return scope in granted or SCOPE_ALL in granted or (scope == SCOPE_EVENTS_READ and SCOPE_EVENTS in granted)


CLIENT_REFUSED_SECONDS = 600  # a refused OAuth client is tried again after this long (or once the settings change)
DISCOVERY = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"
BATCH_SIZE = 50  # calls per batch request
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
QUOTA_BACKOFF = dt.timedelta(hours=3)


@memoized
def _bundled_document() -> str:
    return DISCOVERY.read_text()


def discovery_document(root: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(_bundled_document())
    base = root.rstrip("/") + "/"
    document["rootUrl"] = base
    document["baseUrl"] = base + document["servicePath"]
    if "mtlsRootUrl" in document:
        document["mtlsRootUrl"] = base
    return document


def client_config(redirect_uri: str) -> dict[str, Any]:
    """The OAuth web client, for google_auth_oauthlib's Flow."""
    return {
        "web": {
            "client_id": settings.GOOGLE_CLIENT_ID,
            "client_secret": settings.GOOGLE_CLIENT_SECRET,
            "auth_uri": settings.GOOGLE_AUTH_URI,
            "token_uri": settings.GOOGLE_TOKEN_URI,
            "redirect_uris": [redirect_uri],
        }
    }


def credentials(*, access_token: str, refresh_token: str, expiry: Any = None) -> Credentials:
    return Credentials(
        token=access_token or None,
        refresh_token=refresh_token,
        token_uri=settings.GOOGLE_TOKEN_URI,
        client_id=settings.GOOGLE_CLIENT_ID,
        client_secret=settings.GOOGLE_CLIENT_SECRET,
        # No scopes of its own: a refresh that names scopes must name granted ones (invalid_scope otherwise), and
        # one that names none gets what the grant holds, whatever an earlier version of this app asked for.
        scopes=None,
        expiry=expiry,
    )


REQUEST_TIMEOUT = 30.0  # seconds for any one HTTP request to Google


def calendar_service(creds: Credentials) -> Any:
    """The v3 resource, each request bounded by REQUEST_TIMEOUT."""
    http = httplib2.Http(timeout=REQUEST_TIMEOUT)
    http.redirect_codes = http.redirect_codes - {308}  # as googleapiclient.http.build_http does
    authorized = google_auth_httplib2.AuthorizedHttp(creds, http=http)
    return build_from_document(discovery_document(settings.GOOGLE_API_ROOT), http=authorized)


def google_enabled() -> bool:
    return bool(settings.GOOGLE_CLIENT_ID and settings.GOOGLE_CLIENT_SECRET)


# --- Trouble -----------------------------------------------------------------------------------------------


class GoogleTrouble(Exception):
    """Google could not be used just now; `delay` says how long to wait before trying again."""

    def __init__(self, message: str, *, delay: float, quota: bool = False) -> None:
        super().__init__(message)
        self.delay = delay
        self.quota = quota


class AccessRevoked(Exception):
    """The grant is gone (invalid_grant): the connection is broken until the practitioner connects again."""


class ClientRefused(Exception):
    """Google refuses this deployment's OAuth client (invalid_client, unauthorized_client): the client id or secret
    in the settings is wrong. A configuration error for the administrators; every connection waits, unbroken."""


def _client_key() -> str:
    # Named by the client's settings: once they change (fixed), the mark no longer applies.
    client = f"{settings.GOOGLE_CLIENT_ID}\0{settings.GOOGLE_CLIENT_SECRET}".encode()
    return "google:client-refused:" + hashlib.sha256(client).hexdigest()[:32]


def client_refused() -> str:
    """Why Google refused the OAuth client as now configured ("" when it has not)."""
    return str(cache.get(_client_key(), "")) if google_enabled() else ""


def client_refused_record(reason: str) -> None:
    """Google refused the client: leave Google alone until the settings change (or for CLIENT_REFUSED_SECONDS)."""
    cache.set(_client_key(), reason or "invalid_client", CLIENT_REFUSED_SECONDS)
    log.error("google refuses the OAuth client (%s): check GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET", reason)


def backoff(attempt: int, *, base: float = 2.0, cap: float = 900.0) -> float:
    """Exponential backoff with full jitter: up to base·2^attempt seconds, at most `cap`."""
    return random.uniform(base, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not a secret


def error_reason(error: HttpError) -> str:
    """The first `reason` Google gave for an error ("rateLimitExceeded", "quotaExceeded", ...)."""
    try:
        payload = json.loads(error.content.decode("utf-8"))
        errors = payload.get("error", {}).get("errors") or [{}]
        return str(errors[0].get("reason", ""))
    except (ValueError, AttributeError, TypeError):
        return ""


def retryable(status: int, reason: str) -> bool:
    return status == 429 or status >= 500 or (status == 403 and reason in RATE_LIMIT_REASONS | QUOTA_REASONS)


def trouble_of(status: int, reason: str, attempt: int) -> GoogleTrouble:
    if status == 403 and reason in QUOTA_REASONS:
        return GoogleTrouble(f"Google quota exceeded ({reason})", delay=QUOTA_BACKOFF.total_seconds(), quota=True)
    return GoogleTrouble(f"Google answered {status} {reason}".strip(), delay=backoff(attempt))


def refresh_trouble(error: RefreshError, attempt: int) -> Exception:
    """A failed token refresh: a refused client, a revoked grant, or the token endpoint failing for now."""
    text = str(error)
    for reason in ("invalid_client", "unauthorized_client"):
        if reason in text:
            return ClientRefused(reason)
    if "invalid_grant" in text:
        return AccessRevoked("invalid_grant")
    return GoogleTrouble("The Google token endpoint failed", delay=backoff(attempt))
