"""The real google-api-python-client pointed at a FakeGoogle.

googleapiclient builds request URLs from the discovery document's baseUrl and batch URLs from its rootUrl
(``Resource.new_batch_http_request``), so both are rewritten, in the client library's own bundled document.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any, Protocol

import google_auth_httplib2
import httplib2
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document

from .server import CALENDAR_SCOPE, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DISCOVERY_PATH


class _HasUrl(Protocol):
    url: str


def _base(fake_or_url: str | _HasUrl) -> str:
    url = fake_or_url if isinstance(fake_or_url, str) else fake_or_url.url
    return url.rstrip("/")


def discovery_document(fake_or_url: str | _HasUrl) -> dict[str, Any]:
    """The bundled calendar v3 discovery document, with every root pointed at the fake."""
    base = _base(fake_or_url)
    document: dict[str, Any] = json.loads(DISCOVERY_PATH.read_text())
    document["rootUrl"] = base + "/"
    document["baseUrl"] = base + "/" + document["servicePath"]
    if "mtlsRootUrl" in document:
        document["mtlsRootUrl"] = base + "/"
    return document


def calendar_service(
    fake_or_url: str | _HasUrl, credentials: Credentials | None = None, *, timeout: float | None = None
) -> Any:
    """A ``calendar`` v3 Resource talking to the fake. ``timeout`` (seconds) bounds each HTTP request;
    without ``credentials`` the requests go unauthenticated."""
    document = discovery_document(fake_or_url)
    if timeout is None and credentials is not None:
        return build_from_document(document, credentials=credentials)
    # Without credentials googleapiclient would go looking for application default credentials.
    http = httplib2.Http(timeout=timeout)
    http.redirect_codes = http.redirect_codes - {308}  # as googleapiclient.http.build_http does
    authorized = google_auth_httplib2.AuthorizedHttp(credentials, http=http) if credentials is not None else http
    return build_from_document(document, http=authorized)


def make_credentials(
    fake_or_url: str | _HasUrl,
    *,
    token: str | None,
    refresh_token: str | None,
    scopes: Iterable[str] = (CALENDAR_SCOPE,),
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    expires_in: float | None = None,
    expiry: dt.datetime | None = None,
) -> Credentials:
    """google-auth user credentials whose token_uri is the fake's /token (``expiry`` is naive UTC)."""
    if expiry is None and expires_in is not None:
        expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=expires_in)
    return Credentials(
        token=token,
        refresh_token=refresh_token,
        token_uri=_base(fake_or_url) + "/token",
        client_id=client_id,
        client_secret=client_secret,
        scopes=list(scopes),
        expiry=expiry,
    )


def credentials_for(fake: Any, email: str, scopes: Iterable[str] = (CALENDAR_SCOPE,)) -> Credentials:
    """Credentials for ``email`` as if the OAuth flow had completed (no HTTP; see ``FakeGoogle.issue_tokens``)."""
    tokens = fake.issue_tokens(email, scopes)
    return make_credentials(
        fake,
        token=tokens["access_token"],
        refresh_token=tokens.get("refresh_token"),
        scopes=tokens["scope"].split(),
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        expires_in=tokens["expires_in"],
    )
