"""The Google Calendar v3 client, built from the client library's bundled discovery document with its roots
at settings.GOOGLE_API_ROOT (Google's by default; the tests' fake otherwise), so that batch requests,
which googleapiclient addresses from the document's rootUrl, go to the same place."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import google_auth_httplib2
import googleapiclient
import httplib2
from django.conf import settings
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
DISCOVERY = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"


@cache
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
        scopes=[CALENDAR_SCOPE],
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
