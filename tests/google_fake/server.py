"""A protocol-faithful fake of Google Calendar API v3 and of Google's OAuth endpoints, served on 127.0.0.1.

Drive it with the real google-api-python-client (see ``client.calendar_service``) and google-auth. What it
models, and where it knowingly differs from Google, is listed in this package's ``__init__``.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import copy
import datetime as dt
import hashlib
import http.client
import itertools
import json
import queue
import re
import secrets
import socket
import struct
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import googleapiclient

from tests.local_http import LocalServer

from . import errors
from .batch import BatchFormatError, PartResponse, parse_batch, render_batch
from .errors import GoogleApiError, OAuthError
from .times import (
    UTC,
    When,
    format_updated,
    is_occurrence,
    occurrence_whens,
    parse_fields,
    parse_rfc3339,
    parse_stamp,
    parse_when,
    select_fields,
    shift,
    zone,
)

DISCOVERY_PATH = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"

DEFAULT_CLIENT_ID = "fake-client-id.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "fake-client-secret"

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
CALENDAR_SCOPE = SCOPE_PREFIX + "calendar"
EVENTS_SCOPE = SCOPE_PREFIX + "calendar.events"
APP_CREATED_SCOPE = SCOPE_PREFIX + "calendar.app.created"

EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
BASE32HEX = "0123456789abcdefghijklmnopqrstuv"
CHANNEL_ID = re.compile(r"^[A-Za-z0-9\-_+/=]{1,64}$")

DEFAULT_PAGE_SIZE = 250
MAX_PAGE_SIZE = 2500
CALENDAR_LIST_PAGE_SIZE = 100
CALENDAR_LIST_MAX_PAGE_SIZE = 250
DEFAULT_CHANNEL_TTL = 7 * 24 * 3600
MAX_CHANNEL_TTL = 30 * 24 * 3600
EXPANSION_HORIZON = dt.timedelta(days=730)
# With singleEvents=true a deleted or truncated series reaches an incremental sync as cancelled instances, and
# only for a while either side of the change: a report saw "only six months worth of events with the status
# 'cancelled'" after deleting a series (googleapis/google-api-ruby-client#860, 2020). Google documents no
# figure; the fake takes six months each way from the moment of the change.
TOMBSTONE_HORIZON = dt.timedelta(days=183)
MAX_INSTANCES = 2500
CODE_TTL = 600
# The Calendar API's per-minute quotas, per user and per project, over a sliding window ("Usage limits",
# https://developers.google.com/workspace/calendar/api/guides/quota: 600 requests per minute per user per
# project, 10,000 per minute per project).
RATE_LIMIT_USER = 600
RATE_LIMIT_PROJECT = 10_000
RATE_WINDOW_SECONDS = 60.0
OAUTH_PATHS = ("/token", "/o/oauth2/", "/revoke", "/oauth2/")

# Event fields the server sets; a client's values for them are ignored (iCalUID only counts on insert).
SERVER_FIELDS = {
    "kind",
    "etag",
    "id",
    "htmlLink",
    "created",
    "updated",
    "creator",
    "organizer",
    "recurringEventId",
    "originalStartTime",
    "hangoutLink",
    "iCalUID",
    "start",
    "end",
    "status",
    "sequence",
}
# Event types, https://developers.google.com/calendar/api/guides/event-types and
# https://developers.google.com/calendar/api/guides/calendar-status: focus time, out of office and working location
# "are only available on primary calendars"; a working location is public and transparent, all day for exactly
# one day or timed (guides/working-hours-and-location); a birthday is an all-day event of one day recurring
# yearly, private and transparent. Events from Gmail are made by Gmail, never inserted through the API, and their
# organizer is the mail's recipient (Workspace updates blog, 2024-05-30, "The Calendar API now distinguishes
# events created from Gmail").
EVENT_TYPES = {"default", "outOfOffice", "focusTime", "workingLocation", "birthday", "fromGmail"}
PRIMARY_ONLY_TYPES = {"outOfOffice", "focusTime", "workingLocation"}
RESPONSES = {"needsAction", "declined", "tentative", "accepted"}
ENUMS = {
    "transparency": {"opaque", "transparent"},
    "visibility": {"default", "public", "private", "confidential"},
    "status": {"confirmed", "tentative", "cancelled"},
}


# --- records the tests read ------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One HTTP request to the fake, or one call inside a batch (``batched=True``)."""

    method: str
    path: str
    query: dict[str, list[str]]
    batched: bool
    status: int | None = None
    operation: str | None = None  # the discovery method id, e.g. "calendar.events.insert"
    account: str | None = None
    batch_size: int | None = None  # on the HTTP request that carried a batch


@dataclass(frozen=True)
class RateRefusal:
    """A call refused for quota: ``limit`` is "user" (403) or "project" (429)."""

    limit: str
    account: str
    operation: str | None


@dataclass
class NotificationRecord:
    channel_id: str
    resource_id: str
    resource_state: str
    message_number: int
    address: str
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None


@dataclass
class _Fault:
    kind: str
    remaining: int
    path_contains: str | None
    status: int = 503
    reason: str | None = None
    message: str | None = None
    seconds: float = 0.0
    mode: str = "reset"
    after_apply: bool = False

    def matches(self, path: str) -> bool:
        if self.path_contains is not None:
            return self.path_contains in path
        return not path.startswith(OAUTH_PATHS)


# --- state -------------------------------------------------------------------------------------------------


@dataclass
class _Grant:
    email: str
    client_id: str
    scopes: list[str]
    refresh_token: str | None
    revoked: bool = False


@dataclass
class _AccessToken:
    token: str
    grant: _Grant
    scopes: list[str]
    expires_at: float
    revoked: bool = False


@dataclass
class _AuthCode:
    code: str
    email: str
    client_id: str
    scopes: list[str]
    redirect_uri: str | None
    offline: bool
    expires_at: float
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    force_refresh_token: bool = False


@dataclass
class _Event:
    id: str
    calendar_id: str
    fields: dict[str, Any]
    start: When
    end: When
    status: str
    created: dt.datetime
    updated: dt.datetime
    etag: str
    sequence: int
    seq: int
    ical_uid: str
    creator: str
    recurring_event_id: str | None = None
    original_start: When | None = None
    # Deleted by the user in Google Calendar's web UI (in its bin): the API refuses writes to it (403), and its id
    # stays taken (409 on insert). See FakeGoogle.user_delete_event.
    trashed: bool = False
    organizer: str | None = None  # an invitation's organizer; None: the calendar itself

    @property
    def recurrence(self) -> list[str] | None:
        value = self.fields.get("recurrence")
        return value if value and self.recurring_event_id is None else None


@dataclass
class _Calendar:
    id: str
    owner: str
    summary: str
    time_zone: str
    primary: bool
    description: str | None = None
    location: str | None = None
    etag: str = '"0"'
    seq: int = 0
    updated: dt.datetime = field(default_factory=lambda: dt.datetime.now(UTC))
    deleted: bool = False
    sync_generation: int = 0
    events: dict[str, _Event] = field(default_factory=dict)
    acl: dict[str, str] = field(default_factory=dict)  # other accounts → "reader" or "writer"
    purged: set[str] = field(default_factory=set)  # ids of events purged from the bin: still taken
    push_supported: bool = True
    created_by: str | None = None  # the OAuth client that made it through the API (calendar.app.created)
    # Cancelled instances of deleted or truncated series, sent to incremental syncs with singleEvents=true.
    tombstones: dict[str, _Event] = field(default_factory=dict)


@dataclass
class _Channel:
    id: str
    resource_id: str
    resource_key: str
    resource_uri: str
    address: str
    token: str | None
    expiration_ms: int
    owner: str
    params: dict[str, str]
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    stopped: bool = False


@dataclass
class _SyncState:
    calendar_id: str
    generation: int
    seq: int
    single_events: bool


@dataclass
class _PageState:
    calendar_id: str
    account: str
    items: list[dict[str, Any]]
    sync_token: str | None
    envelope: Callable[[], dict[str, Any]]


@dataclass
class _Resp:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: str | None = None  # "reset" or "close": answer nothing and drop the connection


def _json_resp(status: int, value: Any, headers: dict[str, str] | None = None) -> _Resp:
    merged = {"Content-Type": "application/json; charset=UTF-8", "Vary": "Origin, X-Origin, Referer"}
    merged.update(headers or {})
    return _Resp(status, json.dumps(value, indent=1).encode(), merged)


def _error_resp(error: GoogleApiError) -> _Resp:
    return _json_resp(error.code, error.body(), error.headers)


def _oauth_error_resp(error: OAuthError) -> _Resp:
    return _json_resp(error.code, error.body(), {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"})


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    value = _one(query, name)
    return value is not None and value.lower() == "true"


def _int(query: Mapping[str, list[str]], name: str, default: int, maximum: int) -> int:
    value = _one(query, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise errors.invalid(f"Invalid value '{value}'. Values must be integers.", location=name) from exc
    if number < 1:
        raise errors.invalid(f"Invalid value '{value}'. Values must be within the range: [1, {maximum}]", location=name)
    return min(number, maximum)


def _deep_merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Patch semantics: nested objects merge, arrays and scalars replace, null removes."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def _discovery_routes() -> list[tuple[str, re.Pattern[str], str, list[str], set[str]]]:
    document = json.loads(DISCOVERY_PATH.read_text())
    routes = []
    for resource in document["resources"].values():
        for method in resource["methods"].values():
            template = method["path"]
            placeholders = re.findall(r"{(\w+)}", template)
            pattern = re.escape(template)
            for name in placeholders:
                pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>[^/]+)")
            routes.append(
                (
                    method["httpMethod"],
                    re.compile("^" + pattern + "$"),
                    method["id"],
                    placeholders,
                    set(method["scopes"]),
                )
            )
    # Literal segments win over placeholders ("events/watch" is not the event "watch").
    routes.sort(key=lambda route: len(route[3]))
    return routes


class FakeGoogle:
    """Google Calendar v3 + OAuth on ``http://127.0.0.1:<port>``; use as a context manager or call start/stop."""

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        access_token_ttl: int = 3599,
        batch_limit: int = 50,
        redirect_uris: Iterable[str] = (),
        default_time_zone: str = "UTC",
        rate_limit_user: int = RATE_LIMIT_USER,
        rate_limit_project: int = RATE_LIMIT_PROJECT,
        rate_window: float = RATE_WINDOW_SECONDS,
    ) -> None:
        self.clients: dict[str, str] = {client_id: client_secret}
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token_ttl = access_token_ttl
        self.batch_limit = batch_limit
        self.redirect_uris = set(redirect_uris)
        self.default_time_zone = default_time_zone
        self.rate_limit_user = rate_limit_user
        self.rate_limit_project = rate_limit_project
        self.rate_window = rate_window

        self._lock = threading.RLock()
        self._last_seq = 0
        self._last_write_us = 0
        self._clock_offset = 0.0
        self._accounts: dict[str, str] = {}  # email → time zone
        self._calendars: dict[str, _Calendar] = {}
        self._grants: list[_Grant] = []
        self._refresh_tokens: dict[str, _Grant] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._codes: dict[str, _AuthCode] = {}
        self._sync_tokens: dict[str, _SyncState] = {}
        self._calendar_list_tokens: dict[str, tuple[str, int]] = {}
        self._pages: dict[str, _PageState] = {}
        self._channels: dict[str, _Channel] = {}
        self._resource_ids: dict[str, str] = {}
        self._faults: list[_Fault] = []
        self._rate_calls: dict[str, collections.deque[float]] = {}  # "user:<email>" / "project:<client id>"
        self._rate_refusals: list[RateRefusal] = []
        self._requests: list[RequestRecord] = []
        self._notifications: list[NotificationRecord] = []
        self._browser_user: str | None = None
        self._deny_consents = 0
        self._unticked: set[str] = set()
        self._caller_client = ""
        self.internal_errors: list[str] = []

        self._routes = _discovery_routes()
        self._handlers: dict[str, Callable[..., _Resp]] = {
            "calendar.calendarList.list": self._calendar_list_list,
            "calendar.calendarList.get": self._calendar_list_get,
            "calendar.calendarList.watch": self._calendar_list_watch,
            "calendar.calendars.insert": self._calendars_insert,
            "calendar.calendars.get": self._calendars_get,
            "calendar.calendars.patch": self._calendars_patch,
            "calendar.calendars.update": self._calendars_update,
            "calendar.calendars.delete": self._calendars_delete,
            "calendar.events.list": self._events_list,
            "calendar.events.get": self._events_get,
            "calendar.events.insert": self._events_insert,
            "calendar.events.patch": self._events_patch,
            "calendar.events.update": self._events_update,
            "calendar.events.delete": self._events_delete,
            "calendar.events.instances": self._events_instances,
            "calendar.events.watch": self._events_watch,
            "calendar.channels.stop": self._channels_stop,
        }

        self._server: LocalServer | None = None
        self._connections: set[socket.socket] = set()
        self._outbox: queue.Queue[tuple[_Channel, str, int] | None] = queue.Queue()
        self._outbox_pending = 0
        self._outbox_idle = threading.Condition(self._lock)
        self._sender: threading.Thread | None = None
        self.url = ""

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> FakeGoogle:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = LocalServer(Handler, name="fake-google")
        self.url = self._server.url
        self._sender = threading.Thread(target=self._send_notifications, name="fake-google-push", daemon=True)
        self._sender.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._sender is not None:
            self._outbox.put(None)
            self._sender.join(timeout=5)
            self._sender = None

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def token_uri(self) -> str:
        return self.url + "/token"

    @property
    def auth_uri(self) -> str:
        return self.url + "/o/oauth2/auth"

    @property
    def revoke_uri(self) -> str:
        return self.url + "/revoke"

    def client_config(self, redirect_uri: str | None = None) -> dict[str, Any]:
        """A ``{"web": ...}`` client config for ``google_auth_oauthlib.flow.Flow.from_client_config``."""
        web: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "auth_uri": self.auth_uri,
            "token_uri": self.token_uri,
        }
        if redirect_uri:
            web["redirect_uris"] = [redirect_uri]
        return {"web": web}

    # --- clock ----------------------------------------------------------------------------------------------

    def _now_ts(self) -> float:
        return time.time() + self._clock_offset

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._now_ts(), UTC)

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (token, code and channel expiry) forward, without sleeping."""
        with self._lock:
            self._clock_offset += seconds

    def _tick(self) -> dt.datetime:
        """A write time, strictly later than the previous one."""
        now_us = int(self._now_ts() * 1_000_000)
        self._last_write_us = max(now_us, self._last_write_us + 1)
        return dt.datetime.fromtimestamp(self._last_write_us / 1_000_000, UTC)

    def _etag(self) -> str:
        return f'"{self._last_write_us}"'

    # --- request log and faults -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def count_requests(
        self, *, path_contains: str | None = None, method: str | None = None, batched: bool | None = False
    ) -> int:
        """HTTP requests (``batched=False``, the default), batched calls (``True``) or both (``None``)."""
        return sum(
            1
            for record in self.requests
            if (batched is None or record.batched == batched)
            and (path_contains is None or path_contains in record.path)
            and (method is None or record.method == method)
        )

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        reason: str | None = None,
        *,
        path_contains: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching calls with Google's error body for ``status``/``reason``.

        A call is a plain HTTP request or one part of a batch; a batch's own HTTP request has the path
        /batch/calendar/v3, so ``fail_next(1)`` fails a whole batch and ``fail_next(1, path_contains="/events")``
        one call inside it. Without ``path_contains`` the OAuth endpoints are never matched.
        """
        with self._lock:
            self._faults.append(_Fault("fail", n, path_contains, status=status, reason=reason, message=message))

    def drop_next(
        self, n: int = 1, *, path_contains: str | None = None, mode: str = "reset", after_apply: bool = False
    ) -> None:
        """Drop the connection of the next ``n`` matching HTTP requests without answering.

        ``mode="reset"`` aborts with a TCP RST (the client raises ConnectionResetError); ``mode="close"`` closes
        cleanly, which httplib2 takes for a stale keep-alive connection and silently re-sends the request once.
        ``after_apply=True`` carries out the request first, as when a reply is lost on the way back.
        """
        if mode not in {"reset", "close"}:
            raise ValueError("mode is 'reset' or 'close'")
        with self._lock:
            self._faults.append(_Fault("drop", n, path_contains, mode=mode, after_apply=after_apply))

    def slow_next(self, n: int = 1, seconds: float = 1.0, *, path_contains: str | None = None) -> None:
        """Wait ``seconds`` before handling each of the next ``n`` matching HTTP requests (which still take
        effect if the client gave up meanwhile)."""
        with self._lock:
            self._faults.append(_Fault("slow", n, path_contains, seconds=seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # --- quotas ---------------------------------------------------------------------------------------------------

    @property
    def rate_refusals(self) -> list[RateRefusal]:
        """The calls refused for the per-minute quotas (403 per user, 429 per project), oldest first."""
        with self._lock:
            return list(self._rate_refusals)

    def rate_used(self, *, account: str | None = None, client_id: str | None = None) -> int:
        """Calls counted in the window ending now: one account's, or one project's (the fake's own client)."""
        key = f"user:{account}" if account is not None else f"project:{client_id or self.client_id}"
        with self._lock:
            calls = self._rate_calls.get(key)
            if calls is None:
                return 0
            self._slide(calls, self._now_ts())
            return len(calls)

    def _slide(self, calls: collections.deque[float], now: float) -> None:
        while calls and calls[0] <= now - self.rate_window:
            calls.popleft()

    def _count_call(self, grant: _Grant, operation: str | None) -> None:
        """Count an authenticated call against its user's and its project's sliding windows, or refuse it.

        Google: "Quotas are calculated per minute using a sliding window"; over either quota "you are rate limited
        and receive a 403 usageLimits status code or a 429 usageLimits status code" ("Usage limits",
        https://developers.google.com/workspace/calendar/api/guides/quota). The Calendar error guide gives the
        per-user case as 403 rateLimitExceeded ("the user has reached Google Calendar API's maximum request rate
        per calendar or per authenticated user") and 429 rateLimitExceeded for too many requests
        (https://developers.google.com/workspace/calendar/api/guides/errors). Each part of a batch is counted
        here, as a call of its own: "A set of n requests batched together counts toward your usage limit as n
        requests, not as one request" (https://developers.google.com/workspace/calendar/api/guides/batch).
        A refused call is not counted (Google does not say; this is the fake's choice, and the kinder one).
        """
        now = self._now_ts()
        user = self._rate_calls.setdefault(f"user:{grant.email}", collections.deque())
        project = self._rate_calls.setdefault(f"project:{grant.client_id}", collections.deque())
        self._slide(user, now)
        self._slide(project, now)
        if len(user) >= self.rate_limit_user:
            self._rate_refusals.append(RateRefusal("user", grant.email, operation))
            raise GoogleApiError(403, "rateLimitExceeded")
        if len(project) >= self.rate_limit_project:
            self._rate_refusals.append(RateRefusal("project", grant.email, operation))
            raise GoogleApiError(429, "rateLimitExceeded")
        user.append(now)
        project.append(now)

    def _take_fault(self, kind: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.remaining > 0 and fault.matches(path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- accounts and OAuth -----------------------------------------------------------------------------------

    def add_account(self, email: str, *, time_zone: str | None = None) -> None:
        """A Google account, with its primary calendar (whose id is the address)."""
        with self._lock:
            if email in self._accounts:
                return
            tz = time_zone or self.default_time_zone
            zone(tz)
            self._accounts[email] = tz
            calendar = _Calendar(id=email, owner=email, summary=email, time_zone=tz, primary=True)
            self._calendars[email] = calendar
            self._commit_calendar(calendar)

    def set_browser_user(self, email: str) -> None:
        """The account signed in to the "browser" that visits /o/oauth2/auth (``login_hint`` overrides it)."""
        self.add_account(email)
        with self._lock:
            self._browser_user = email

    def untick_next_consent(self, *scopes: str) -> None:
        """At the next consent the user unticks these scopes (Google's granular consent): they are not granted."""
        with self._lock:
            self._unticked = set(scopes)

    def deny_next_consent(self) -> None:
        """The next visit to /o/oauth2/auth redirects back with ``error=access_denied``."""
        with self._lock:
            self._deny_consents += 1

    def authorize(
        self,
        email: str,
        scopes: Iterable[str] = (CALENDAR_SCOPE,),
        *,
        redirect_uri: str | None = None,
        offline: bool = True,
        client_id: str | None = None,
    ) -> str:
        """An authorization code, as if ``email`` had consented to ``scopes``; exchange it at /token."""
        self.add_account(email)
        with self._lock:
            code = "4/0fake-" + secrets.token_urlsafe(24)
            self._codes[code] = _AuthCode(
                code=code,
                email=email,
                client_id=client_id or self.client_id,
                scopes=list(scopes),
                redirect_uri=redirect_uri,
                offline=offline,
                expires_at=self._now_ts() + CODE_TTL,
                force_refresh_token=True,
            )
            return code

    def issue_tokens(self, email: str, scopes: Iterable[str] = (CALENDAR_SCOPE,)) -> dict[str, Any]:
        """A token response for ``email`` without going over HTTP (tests that don't exercise OAuth)."""
        self.add_account(email)
        with self._lock:
            grant = self._new_grant(email, self.client_id, list(scopes), offline=True)
            return self._token_response(grant, list(scopes), include_refresh=True)

    def revoke(self, token: str) -> bool:
        """Revoke the grant behind a refresh or access token (as the user removing the app's access)."""
        with self._lock:
            grant = self._refresh_tokens.get(token)
            if grant is None and token in self._access_tokens:
                grant = self._access_tokens[token].grant
            if grant is None or grant.revoked:
                return False
            grant.revoked = True
            return True

    def revoke_all(self, email: str) -> None:
        with self._lock:
            for grant in self._grants:
                if grant.email == email:
                    grant.revoked = True

    def expire_access_tokens(self, email: str | None = None) -> None:
        """Expire issued access tokens now (the client still believes them valid, so it meets a 401)."""
        with self._lock:
            for token in self._access_tokens.values():
                if email is None or token.grant.email == email:
                    token.expires_at = min(token.expires_at, self._now_ts() - 1)

    def _new_grant(self, email: str, client_id: str, scopes: list[str], *, offline: bool) -> _Grant:
        refresh_token = "1//0fake-" + secrets.token_urlsafe(32) if offline else None
        grant = _Grant(email=email, client_id=client_id, scopes=scopes, refresh_token=refresh_token)
        self._grants.append(grant)
        if refresh_token:
            self._refresh_tokens[refresh_token] = grant
        return grant

    def _token_response(self, grant: _Grant, scopes: list[str], *, include_refresh: bool) -> dict[str, Any]:
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        self._access_tokens[token] = _AccessToken(
            token=token, grant=grant, scopes=scopes, expires_at=self._now_ts() + self.access_token_ttl
        )
        response: dict[str, Any] = {
            "access_token": token,
            "expires_in": self.access_token_ttl,
            "scope": " ".join(scopes),
            "token_type": "Bearer",
        }
        if include_refresh and grant.refresh_token:
            response["refresh_token"] = grant.refresh_token
        return response

    def _client_credentials(self, headers: Mapping[str, str], form: Mapping[str, list[str]]) -> str:
        client_id, client_secret = _one(form, "client_id"), _one(form, "client_secret")
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except ValueError as exc:
                raise OAuthError(401, "invalid_client", "Unauthorized") from exc
            basic_id, _, basic_secret = decoded.partition(":")
            client_id, client_secret = urllib.parse.unquote(basic_id), urllib.parse.unquote(basic_secret)
        if not client_id:
            raise OAuthError(400, "invalid_request", "Could not determine client ID from request.")
        if client_id not in self.clients:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        if client_secret != self.clients[client_id]:
            raise OAuthError(401, "invalid_client", "Unauthorized")
        return client_id

    def _token_endpoint(self, headers: Mapping[str, str], body: bytes) -> _Resp:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        try:
            with self._lock:
                client_id = self._client_credentials(headers, form)
                grant_type = _one(form, "grant_type")
                if grant_type == "authorization_code":
                    response = self._exchange_code(client_id, form)
                elif grant_type == "refresh_token":
                    response = self._refresh(client_id, form)
                elif not grant_type:
                    raise OAuthError(400, "unsupported_grant_type", "Invalid grant_type: ")
                else:
                    raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        except OAuthError as error:
            return _oauth_error_resp(error)
        return _json_resp(200, response, {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"})

    def _exchange_code(self, client_id: str, form: Mapping[str, list[str]]) -> dict[str, Any]:
        code_value = _one(form, "code")
        if not code_value:
            raise OAuthError(400, "invalid_request", "Missing required parameter: code")
        code = self._codes.get(code_value)
        if code is None or code.expires_at < self._now_ts():
            raise OAuthError(400, "invalid_grant", "Malformed auth code.")
        if code.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "Unauthorized")
        if code.redirect_uri is not None and _one(form, "redirect_uri") != code.redirect_uri:
            raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
        if code.code_challenge is not None:
            verifier = _one(form, "code_verifier")
            if not verifier:
                raise OAuthError(400, "invalid_grant", "Missing code verifier.")
            if code.code_challenge_method == "S256":
                digest = hashlib.sha256(verifier.encode()).digest()
                expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            else:
                expected = verifier
            if expected != code.code_challenge:
                raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
        # Codes are single use.
        del self._codes[code_value]
        existing = any(
            grant.email == code.email and grant.client_id == client_id and grant.refresh_token and not grant.revoked
            for grant in self._grants
        )
        # Google hands out a refresh token for offline access on first consent (or when consent is forced).
        issue_refresh = code.offline and (code.force_refresh_token or not existing)
        grant = self._new_grant(code.email, client_id, code.scopes, offline=issue_refresh)
        return self._token_response(grant, code.scopes, include_refresh=issue_refresh)

    def _refresh(self, client_id: str, form: Mapping[str, list[str]]) -> dict[str, Any]:
        refresh_token = _one(form, "refresh_token")
        if not refresh_token:
            raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token")
        grant = self._refresh_tokens.get(refresh_token)
        if grant is None or grant.revoked:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        if grant.client_id != client_id:
            raise OAuthError(401, "unauthorized_client", "Unauthorized")
        requested = (_one(form, "scope") or "").split()
        if requested and not set(requested) <= set(grant.scopes):
            raise OAuthError(400, "invalid_scope", "Bad Request")
        return self._token_response(grant, requested or grant.scopes, include_refresh=False)

    def _revoke_endpoint(self, query: Mapping[str, list[str]], body: bytes) -> _Resp:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        token = _one(query, "token") or _one(form, "token")
        if not token or not self.revoke(token):
            return _oauth_error_resp(OAuthError(400, "invalid_token", "Token expired or revoked"))
        return _json_resp(200, {})

    def _authorization_page(self, query: Mapping[str, list[str]]) -> _Resp:
        def page(status: int, text: str) -> _Resp:
            html = f"<!doctype html><title>Error {status}</title><p>{text}</p>"
            return _Resp(status, html.encode(), {"Content-Type": "text/html; charset=utf-8"})

        client_id = _one(query, "client_id")
        redirect_uri = _one(query, "redirect_uri")
        if client_id not in self.clients:
            return page(401, "Error 401: invalid_client. The OAuth client was not found.")
        if not redirect_uri or (self.redirect_uris and redirect_uri not in self.redirect_uris):
            return page(400, "Error 400: redirect_uri_mismatch")
        if _one(query, "response_type") != "code":
            return page(400, "Error 400: invalid_request (response_type must be code)")
        scopes = (_one(query, "scope") or "").split()
        if not scopes:
            return page(400, "Error 400: invalid_request. Missing required parameter: scope")
        state = _one(query, "state")
        params: dict[str, str] = {}
        if state is not None:
            params["state"] = state
        with self._lock:
            if self._deny_consents:
                self._deny_consents -= 1
                params["error"] = "access_denied"
                return self._redirect(redirect_uri, params)
            email = _one(query, "login_hint") or self._browser_user
            if email is None and len(self._accounts) == 1:
                email = next(iter(self._accounts))
            if email is None:
                return page(400, "No account is signed in: call fake.set_browser_user(email) or pass login_hint.")
            self.add_account(email)
            prompt = (_one(query, "prompt") or "").split()
            # Granular consent: the user may untick some of the scopes asked for
            # (https://developers.google.com/identity/protocols/oauth2/resources/granular-permissions).
            scopes = [scope for scope in scopes if scope not in self._unticked]
            self._unticked = set()
            if _one(query, "include_granted_scopes") == "true":
                # Incremental authorization: the new grant also carries every scope this account granted the
                # client before, so the token response may name more scopes than were asked for
                # (https://developers.google.com/identity/protocols/oauth2/web-server#incrementalAuth).
                for grant in self._grants:
                    if grant.email == email and grant.client_id == client_id and not grant.revoked:
                        scopes += [scope for scope in grant.scopes if scope not in scopes]
            code = "4/0fake-" + secrets.token_urlsafe(24)
            self._codes[code] = _AuthCode(
                code=code,
                email=email,
                client_id=client_id,
                scopes=scopes,
                redirect_uri=redirect_uri,
                offline=_one(query, "access_type") == "offline",
                expires_at=self._now_ts() + CODE_TTL,
                code_challenge=_one(query, "code_challenge"),
                code_challenge_method=_one(query, "code_challenge_method") or "plain",
                force_refresh_token="consent" in prompt,
            )
        params.update({"code": code, "scope": " ".join(scopes), "authuser": "0", "prompt": "consent"})
        return self._redirect(redirect_uri, params)

    @staticmethod
    def _redirect(redirect_uri: str, params: Mapping[str, str]) -> _Resp:
        separator = "&" if "?" in redirect_uri else "?"
        location = redirect_uri + separator + urllib.parse.urlencode(params)
        return _Resp(302, b"", {"Location": location, "Content-Type": "text/html; charset=UTF-8"})

    def _userinfo(self, headers: Mapping[str, str]) -> _Resp:
        with self._lock:
            try:
                token = self._access_token(headers)
            except GoogleApiError as error:
                return _error_resp(error)
            email = token.grant.email
            subject = str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16))
            return _json_resp(200, {"sub": subject, "email": email, "email_verified": True})

    def _access_token(self, headers: Mapping[str, str]) -> _AccessToken:
        authorization = headers.get("authorization", "")
        if not authorization.lower().startswith("bearer "):
            raise errors.login_required()
        token = self._access_tokens.get(authorization[7:].strip())
        if token is None or token.revoked or token.grant.revoked or token.expires_at <= self._now_ts():
            raise errors.invalid_credentials()
        return token

    # --- HTTP entry points --------------------------------------------------------------------------------------

    def _record(self, method: str, path: str, query: str, *, batched: bool) -> RequestRecord:
        record = RequestRecord(
            method=method, path=path, query=urllib.parse.parse_qs(query, keep_blank_values=True), batched=batched
        )
        with self._lock:
            self._requests.append(record)
        return record

    def _serve_http(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Resp:
        split = urllib.parse.urlsplit(target)
        path, query = split.path, split.query
        record = self._record(method, path, query, batched=False)
        slow = self._take_fault("slow", path)
        drop = self._take_fault("drop", path)
        if slow is not None:
            time.sleep(slow.seconds)
        if drop is not None and not drop.after_apply:
            return _Resp(0, drop=drop.mode)
        try:
            response = self._route_http(method, path, query, headers, body, record)
        except Exception:
            self.internal_errors.append(traceback.format_exc())
            response = _error_resp(GoogleApiError(500, "backendError", "Backend Error"))
        record.status = response.status
        if drop is not None:
            return _Resp(0, drop=drop.mode)
        return response

    def _route_http(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, record: RequestRecord
    ) -> _Resp:
        parsed_query = urllib.parse.parse_qs(query, keep_blank_values=True)
        if path == "/token" or path.startswith("/o/oauth2/") or path == "/revoke" or path.startswith("/oauth2/"):
            fault = self._take_fault("fail", path)
            if fault is not None:
                error = OAuthError(fault.status, fault.reason or "temporarily_unavailable", fault.message)
                return _oauth_error_resp(error)
            if path == "/token" and method == "POST":
                return self._token_endpoint(headers, body)
            if path in {"/o/oauth2/auth", "/o/oauth2/v2/auth"} and method == "GET":
                return self._authorization_page(parsed_query)
            if path == "/revoke" and method == "POST":
                return self._revoke_endpoint(parsed_query, body)
            if path in {"/oauth2/v3/userinfo", "/oauth2/v2/userinfo"} and method == "GET":
                return self._userinfo(headers)
            return _error_resp(errors.not_found())
        if path in {"/batch/calendar/v3", "/batch"} and method == "POST":
            return self._batch(headers, body, record)
        return self._api_call(method, path, parsed_query, headers, body, record)

    def _batch(self, headers: Mapping[str, str], body: bytes, record: RequestRecord) -> _Resp:
        fault = self._take_fault("fail", record.path)
        if fault is not None:
            return _error_resp(errors.injected(fault.status, fault.reason, fault.message))
        try:
            parts = parse_batch(headers.get("content-type", ""), body)
        except BatchFormatError as exc:
            return _error_resp(errors.bad_request(str(exc)))
        record.batch_size = len(parts)
        if not parts:
            return _error_resp(errors.bad_request("A batch request must contain at least one part."))
        if len(parts) > self.batch_limit:
            return _error_resp(errors.bad_request(f"Too many requests in batch; the limit is {self.batch_limit}."))
        answers: list[PartResponse] = []
        for part in parts:
            inner_headers = dict(part.headers)
            # Headers of the outer request, other than the Content- ones, apply to every part.
            for name, value in headers.items():
                if not name.startswith("content-") and name not in inner_headers:
                    inner_headers[name] = value
            inner_record = self._record(part.method, part.path, part.query, batched=True)
            try:
                if not part.path.startswith("/calendar/v3/"):
                    response = _error_resp(errors.bad_request("Batch parts must call the Calendar API."))
                else:
                    query = urllib.parse.parse_qs(part.query, keep_blank_values=True)
                    response = self._api_call(part.method, part.path, query, inner_headers, part.body, inner_record)
            except Exception:
                self.internal_errors.append(traceback.format_exc())
                response = _error_resp(GoogleApiError(500, "backendError", "Backend Error"))
            inner_record.status = response.status
            answers.append(PartResponse(part.content_id, response.status, response.headers, response.body))
        content_type, payload = render_batch(answers)
        return _Resp(200, payload, {"Content-Type": content_type})

    def _api_call(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
        record: RequestRecord,
    ) -> _Resp:
        try:
            fault = self._take_fault("fail", path)
            if fault is not None:
                raise errors.injected(fault.status, fault.reason, fault.message)
            if not path.startswith("/calendar/v3/"):
                raise errors.not_found()
            relative = path[len("/calendar/v3/") :]
            with self._lock:
                operation, params, scopes = self._route(method, relative)
                record.operation = operation
                token = self._access_token(headers)
                record.account = token.grant.email
                self._count_call(token.grant, operation)
                granted = scopes & set(token.scopes)
                if not granted:
                    raise errors.insufficient_scopes()
                if granted == {APP_CREATED_SCOPE} and "calendarId" in params:
                    # calendar.app.created reaches only the calendars this app made ("Make secondary Google
                    # calendars, and see, create, change, and delete events on them",
                    # https://developers.google.com/workspace/calendar/api/auth). The fake answers 403
                    # insufficientPermissions for any other calendar.
                    made = self._calendars.get(
                        token.grant.email if params["calendarId"] == "primary" else params["calendarId"]
                    )
                    if made is None or made.created_by != token.grant.client_id:
                        raise errors.insufficient_scopes()
                self._caller_client = token.grant.client_id
                payload: dict[str, Any] = {}
                if body.strip():
                    try:
                        parsed = json.loads(body)
                    except ValueError as exc:
                        raise GoogleApiError(400, "parseError", "Parse Error") from exc
                    if not isinstance(parsed, dict):
                        raise GoogleApiError(400, "parseError", "Parse Error")
                    payload = parsed
                response = self._handlers[operation](token.grant.email, params, query, payload, headers)
                fields = _one(query, "fields")
                if fields and 200 <= response.status < 300 and response.body:
                    selected = select_fields(json.loads(response.body), parse_fields(fields))
                    response = _json_resp(response.status, selected, dict(response.headers))
                return response
        except GoogleApiError as error:
            return _error_resp(error)

    def _route(self, method: str, relative: str) -> tuple[str, dict[str, str], set[str]]:
        known_path = False
        for http_method, pattern, operation, _names, scopes in self._routes:
            match = pattern.match(relative)
            if not match:
                continue
            known_path = True
            if http_method != method:
                continue
            if operation not in self._handlers:
                raise GoogleApiError(501, "notImplemented", f"{operation} is not implemented by the fake.")
            params = {name: urllib.parse.unquote(value) for name, value in match.groupdict().items()}
            return operation, params, scopes
        if known_path:
            raise GoogleApiError(405, "httpMethodNotAllowed", "Method Not Allowed")
        raise errors.not_found()

    # --- calendars ----------------------------------------------------------------------------------------------

    def _calendar(self, account: str, calendar_id: str) -> _Calendar:
        if calendar_id == "primary":
            calendar_id = account
        calendar = self._calendars.get(calendar_id)
        if calendar is None or calendar.deleted or self._role(calendar, account) is None:
            raise errors.not_found()
        return calendar

    @staticmethod
    def _role(calendar: _Calendar, account: str) -> str | None:
        return "owner" if calendar.owner == account else calendar.acl.get(account)

    def _writable(self, calendar: _Calendar, account: str) -> _Calendar:
        """Event writes need writer access: a reader meets 403 requiredAccessLevel, the error Google documents for
        "the user doesn't have write access to the calendar"
        (https://developers.google.com/workspace/calendar/api/guides/errors#403_forbidden_for_non-organizer and
        the requiredAccessLevel entry of the same page)."""
        if self._role(calendar, account) not in ("owner", "writer"):
            raise GoogleApiError(403, "requiredAccessLevel", "You need to have writer access to this calendar.")
        return calendar

    def _commit_calendar(self, calendar: _Calendar) -> None:
        calendar.updated = self._tick()
        calendar.etag = self._etag()
        calendar.seq = self._next_seq()
        self._notify(f"calendarList:{calendar.owner}")

    @staticmethod
    def _render_calendar(calendar: _Calendar) -> dict[str, Any]:
        rendered: dict[str, Any] = {"kind": "calendar#calendar", "etag": calendar.etag, "id": calendar.id}
        rendered["summary"] = calendar.summary
        if calendar.description:
            rendered["description"] = calendar.description
        if calendar.location:
            rendered["location"] = calendar.location
        rendered["timeZone"] = calendar.time_zone
        rendered["conferenceProperties"] = {"allowedConferenceSolutionTypes": ["hangoutsMeet"]}
        return rendered

    def _render_list_entry(self, calendar: _Calendar, account: str | None = None) -> dict[str, Any]:
        if calendar.deleted:
            return {"kind": "calendar#calendarListEntry", "etag": calendar.etag, "id": calendar.id, "deleted": True}
        entry: dict[str, Any] = {"kind": "calendar#calendarListEntry", "etag": calendar.etag, "id": calendar.id}
        entry["summary"] = calendar.summary
        if calendar.description:
            entry["description"] = calendar.description
        entry.update(
            {
                "timeZone": calendar.time_zone,
                "colorId": "14" if calendar.primary else "9",
                "backgroundColor": "#9fe1e7" if calendar.primary else "#5484ed",
                "foregroundColor": "#000000",
                "selected": True,
                "accessRole": self._role(calendar, account) if account else "owner",
                "defaultReminders": [{"method": "popup", "minutes": 10}] if calendar.primary else [],
                "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
            }
        )
        if calendar.primary and (account is None or calendar.owner == account):
            entry["primary"] = True
        return entry

    def _apply_calendar_body(self, calendar: _Calendar, body: Mapping[str, Any], *, replace: bool) -> None:
        if replace or "summary" in body:
            summary = body.get("summary")
            if not summary:
                raise errors.required("Missing title.")
            calendar.summary = summary
        if replace or "timeZone" in body:
            tz = body.get("timeZone") or calendar.time_zone
            zone(tz)
            calendar.time_zone = tz
        if replace or "description" in body:
            calendar.description = body.get("description")
        if replace or "location" in body:
            calendar.location = body.get("location")

    def _calendar_list_list(self, account: str, params: dict[str, str], query: dict[str, list[str]], body, headers):
        page_token = _one(query, "pageToken")
        if page_token:
            return self._next_page(account, f"calendarList:{account}", page_token, query)
        page_size = _int(query, "maxResults", CALENDAR_LIST_PAGE_SIZE, CALENDAR_LIST_MAX_PAGE_SIZE)
        own = [calendar for calendar in self._calendars.values() if self._role(calendar, account) is not None]
        own.sort(key=lambda calendar: (not calendar.primary,))
        sync_token = _one(query, "syncToken")
        if sync_token:
            state = self._calendar_list_tokens.get(sync_token)
            if state is None or state[0] != account:
                raise errors.full_sync_required()
            items = [self._render_list_entry(calendar, account) for calendar in own if calendar.seq > state[1]]
        else:
            show_deleted = _flag(query, "showDeleted")
            items = [
                self._render_list_entry(calendar, account) for calendar in own if show_deleted or not calendar.deleted
            ]
        new_token = "fake-cl-" + secrets.token_urlsafe(16)
        self._calendar_list_tokens[new_token] = (account, self._last_seq)

        def envelope() -> dict[str, Any]:
            return {"kind": "calendar#calendarList", "etag": f'"p{self._last_write_us}"'}

        return self._paginate(account, f"calendarList:{account}", items, page_size, new_token, envelope)

    def _calendar_list_get(self, account, params, query, body, headers):
        return _json_resp(200, self._render_list_entry(self._calendar(account, params["calendarId"]), account))

    def _calendars_insert(self, account, params, query, body, headers):
        if not body.get("summary"):
            raise errors.required("Missing title.")
        calendar = _Calendar(
            id="c_" + secrets.token_hex(32) + "@group.calendar.google.com",
            owner=account,
            summary=body["summary"],
            time_zone=self._accounts.get(account, self.default_time_zone),
            primary=False,
            created_by=self._caller_client,
        )
        self._apply_calendar_body(calendar, body, replace=False)
        self._calendars[calendar.id] = calendar
        self._commit_calendar(calendar)
        return _json_resp(200, self._render_calendar(calendar), {"ETag": calendar.etag})

    def _calendars_get(self, account, params, query, body, headers):
        calendar = self._calendar(account, params["calendarId"])
        return _json_resp(200, self._render_calendar(calendar), {"ETag": calendar.etag})

    def _calendars_patch(self, account, params, query, body, headers):
        calendar = self._calendar(account, params["calendarId"])
        self._apply_calendar_body(calendar, body, replace=False)
        self._commit_calendar(calendar)
        return _json_resp(200, self._render_calendar(calendar), {"ETag": calendar.etag})

    def _calendars_update(self, account, params, query, body, headers):
        calendar = self._calendar(account, params["calendarId"])
        self._apply_calendar_body(calendar, body, replace=True)
        self._commit_calendar(calendar)
        return _json_resp(200, self._render_calendar(calendar), {"ETag": calendar.etag})

    def _calendars_delete(self, account, params, query, body, headers):
        calendar = self._calendar(account, params["calendarId"])
        if calendar.primary:
            raise GoogleApiError(400, "cannotDeletePrimaryCalendar", "Cannot delete primary calendar.")
        self._delete_calendar(calendar)
        return _Resp(204)

    def _delete_calendar(self, calendar: _Calendar) -> None:
        calendar.deleted = True
        self._commit_calendar(calendar)
        self._notify(f"events:{calendar.id}", state="not_exists")
        for channel in self._channels.values():
            if channel.resource_key == f"events:{calendar.id}":
                channel.stopped = True

    # --- events: model --------------------------------------------------------------------------------------

    def _new_event_id(self, calendar: _Calendar) -> str:
        while True:
            candidate = "".join(secrets.choice(BASE32HEX) for _ in range(26))
            if candidate not in calendar.events:
                return candidate

    def _event_parts(
        self, body: Mapping[str, Any], *, exception: bool
    ) -> tuple[dict[str, Any], When, When, str, int | None]:
        """Validate an event body: the client fields to keep, start, end, status and a requested sequence."""
        for name, allowed in ENUMS.items():
            value = body.get(name)
            if value is not None and value not in allowed:
                raise errors.invalid(f"Invalid value for: {name}")
        recurrence = None if exception else body.get("recurrence")
        if recurrence is not None and (
            not isinstance(recurrence, list) or not all(isinstance(line, str) for line in recurrence)
        ):
            raise errors.invalid("Invalid recurrence rule.")
        properties = body.get("extendedProperties")
        if properties is not None:
            if not isinstance(properties, dict):
                raise errors.invalid("Invalid value for: extendedProperties")
            for scope in ("private", "shared"):
                values = properties.get(scope)
                if values is not None and (
                    not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
                ):
                    raise errors.invalid(f"Invalid value for: extendedProperties.{scope}")
        start = parse_when(body.get("start"), "start", recurring=bool(recurrence))
        end = parse_when(body.get("end"), "end", recurring=bool(recurrence))
        if start.all_day != end.all_day:
            raise errors.bad_request("Start and end times must either both be date or both be dateTime.")
        if start.all_day:
            assert start.date is not None and end.date is not None
            if end.date <= start.date:
                raise errors.time_range_empty()
        else:
            assert start.moment is not None and end.moment is not None
            if end.moment < start.moment:
                raise errors.time_range_empty()
        fields = {key: copy.deepcopy(value) for key, value in body.items() if key not in SERVER_FIELDS}
        if exception:
            fields.pop("recurrence", None)
        if recurrence:
            fields["recurrence"] = list(recurrence)
        status = body.get("status") or "confirmed"
        sequence = body.get("sequence")
        return fields, start, end, status, sequence if isinstance(sequence, int) else None

    def _commit_event(self, calendar: _Calendar, event: _Event) -> None:
        event.updated = self._tick()
        event.etag = self._etag()
        event.seq = self._next_seq()
        calendar.events[event.id] = event
        self._notify(f"events:{calendar.id}")

    @staticmethod
    def _validate_recurrence(calendar: _Calendar, start: When, recurrence: list[str] | None) -> None:
        if recurrence:
            horizon = start.instant(calendar.time_zone) + dt.timedelta(days=800)
            occurrence_whens(start, recurrence, calendar.time_zone, None, horizon, 2)

    @staticmethod
    def _event_type(
        calendar: _Calendar,
        body: Mapping[str, Any],
        *,
        previous: str | None,
        gmail: bool = False,
        exception: bool = False,
    ) -> str:
        """The event's type, checked against the documented rules of its kind (see EVENT_TYPES)."""
        kind = body.get("eventType")
        if previous is not None:
            if kind is not None and kind != previous:
                raise errors.bad_request("The event type of an existing event cannot be changed.")
            kind = previous
        kind = kind or "default"
        if kind not in EVENT_TYPES:
            raise errors.invalid("Invalid value for: eventType")
        if kind == "fromGmail" and previous is None and not gmail:
            raise errors.bad_request("Events from Gmail cannot be created through the API.")
        if kind in PRIMARY_ONLY_TYPES and not calendar.primary:
            raise errors.bad_request(f"A {kind} event can only be created on a primary calendar.")
        start, end = body.get("start") or {}, body.get("end") or {}
        if kind == "workingLocation":
            if body.get("transparency") != "transparent" or body.get("visibility") != "public":
                raise errors.bad_request("A working location must be transparent and public.")
            if not isinstance(body.get("workingLocationProperties"), dict):
                raise errors.required("Missing workingLocationProperties.")
        if kind == "birthday":
            if body.get("transparency") != "transparent" or body.get("visibility") != "private":
                raise errors.bad_request("A birthday must be transparent and private.")
            recurrence = body.get("recurrence") or []
            if not exception and not any("FREQ=YEARLY" in line for line in recurrence):
                raise errors.bad_request("A birthday must recur yearly.")
        if kind in {"workingLocation", "birthday"} and "date" in start:
            one_day = dt.date.fromisoformat(start["date"]) + dt.timedelta(days=1)
            if end.get("date") != one_day.isoformat():
                raise errors.bad_request(f"An all-day {kind} event spans exactly one day.")
        for attendee in body.get("attendees") or []:
            status = attendee.get("responseStatus") if isinstance(attendee, dict) else None
            if status is not None and status not in RESPONSES:
                raise errors.invalid("Invalid value for: attendees.responseStatus")
        return kind

    def _insert_event(
        self,
        calendar: _Calendar,
        body: Mapping[str, Any],
        creator: str,
        *,
        organizer: str | None = None,
        gmail: bool = False,
    ) -> _Event:
        event_id = body.get("id")
        if event_id is not None:
            if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
                raise errors.invalid("Invalid resource id value.")
            if event_id in calendar.events or event_id in calendar.purged:
                # Google keeps an id taken after its event is deleted, and after the bin is emptied too
                # (googleapis/google-api-python-client#846, googleapis/google-api-ruby-client#1811).
                raise errors.duplicate()
        else:
            event_id = self._new_event_id(calendar)
        kind = self._event_type(calendar, body, previous=None, gmail=gmail)
        fields, start, end, status, sequence = self._event_parts(body, exception=False)
        self._validate_recurrence(calendar, start, fields.get("recurrence"))
        fields["eventType"] = kind
        ical_uid = body.get("iCalUID") or f"{event_id}@google.com"
        now = self.now()
        event = _Event(
            id=event_id,
            calendar_id=calendar.id,
            fields=fields,
            start=start,
            end=end,
            status=status,
            created=now,
            updated=now,
            etag="",
            sequence=sequence or 0,
            seq=0,
            ical_uid=ical_uid,
            creator=creator,
            organizer=organizer,
        )
        self._commit_event(calendar, event)
        return event

    def _instance_of(self, master: _Event, original: When) -> _Event:
        if original.moment is not None:
            original = When(moment=original.moment, time_zone=master.start.time_zone)
        fields = copy.deepcopy(master.fields)
        fields.pop("recurrence", None)
        return _Event(
            id=f"{master.id}_{original.stamp()}",
            calendar_id=master.calendar_id,
            fields=fields,
            start=original,
            end=shift(master.end, master.start, original),
            status=master.status,
            created=master.created,
            updated=master.updated,
            etag=master.etag,
            sequence=master.sequence,
            seq=master.seq,
            ical_uid=master.ical_uid,
            creator=master.creator,
            recurring_event_id=master.id,
            original_start=original,
            organizer=master.organizer,
        )

    def _synthesize_instance(self, calendar: _Calendar, event_id: str) -> _Event | None:
        master_id, separator, stamp = event_id.rpartition("_")
        if not separator:
            return None
        master = calendar.events.get(master_id)
        if master is None or master.recurrence is None or master.status == "cancelled":
            return None
        original = parse_stamp(stamp)
        if original is None or original.all_day != master.start.all_day:
            return None
        if not is_occurrence(master.start, master.recurrence, calendar.time_zone, original):
            return None
        return self._instance_of(master, original)

    def _find_event(self, calendar: _Calendar, event_id: str) -> _Event:
        event = calendar.events.get(event_id) or self._synthesize_instance(calendar, event_id)
        if event is None:
            raise errors.not_found()
        return event

    def _instances(
        self, calendar: _Calendar, master: _Event, window_start: dt.datetime | None, window_end: dt.datetime | None
    ) -> list[_Event]:
        """The occurrences of ``master`` that have no exception, overlapping the window."""
        recurrence = master.recurrence
        assert recurrence is not None
        length = master.end.instant(calendar.time_zone) - master.start.instant(calendar.time_zone)
        lower = window_start - length if window_start is not None else None
        upper = window_end if window_end is not None else self._horizon(calendar, master)
        found = []
        for original in occurrence_whens(master.start, recurrence, calendar.time_zone, lower, upper, MAX_INSTANCES):
            instance = self._instance_of(master, original)
            if instance.id not in calendar.events:
                found.append(instance)
        return found

    def _horizon(self, calendar: _Calendar, master: _Event) -> dt.datetime:
        """How far an open-ended expansion goes: two years past now or past the series' start."""
        return max(self.now(), master.start.instant(calendar.time_zone)) + EXPANSION_HORIZON

    def _render_event(
        self, calendar: _Calendar, event: _Event, out_tz: str | None, *, tombstone: bool
    ) -> dict[str, Any]:
        if event.status == "cancelled" and tombstone:
            # Deleted events are only guaranteed their id (and cancelled exceptions their series and slot).
            stub: dict[str, Any] = {"kind": "calendar#event", "etag": event.etag, "id": event.id, "status": "cancelled"}
            if event.recurring_event_id and event.original_start is not None:
                stub["recurringEventId"] = event.recurring_event_id
                stub["originalStartTime"] = event.original_start.render(out_tz)
            return stub
        fields = copy.deepcopy(event.fields)
        eid = base64.urlsafe_b64encode(f"{event.id} {calendar.id}".encode()).decode().rstrip("=")
        rendered: dict[str, Any] = {
            "kind": "calendar#event",
            "etag": event.etag,
            "id": event.id,
            "status": event.status,
            "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
            "created": format_updated(event.created),
            "updated": format_updated(event.updated),
        }
        for name in ("summary", "description", "location", "colorId"):
            if name in fields:
                rendered[name] = fields.pop(name)
        rendered["creator"] = {"email": event.creator, "self": event.creator == calendar.owner}
        organizer: dict[str, Any] = {"email": calendar.id, "self": True}
        if event.organizer is not None:
            organizer = {"email": event.organizer}
        elif not calendar.primary:
            organizer["displayName"] = calendar.summary
        rendered["organizer"] = organizer
        if isinstance(fields.get("attendees"), list):
            # "self": whether the entry is the calendar this copy of the event is on; Google computes it.
            attendees = []
            for attendee in fields.pop("attendees"):
                entry = {k: v for k, v in attendee.items() if k != "self"} if isinstance(attendee, dict) else {}
                entry.setdefault("responseStatus", "needsAction")
                if str(entry.get("email", "")).lower() == calendar.id.lower():
                    entry["self"] = True
                attendees.append(entry)
            rendered["attendees"] = attendees
        rendered["start"] = event.start.render(out_tz)
        rendered["end"] = event.end.render(out_tz)
        if "recurrence" in fields:
            rendered["recurrence"] = fields.pop("recurrence")
        if event.recurring_event_id and event.original_start is not None:
            rendered["recurringEventId"] = event.recurring_event_id
            rendered["originalStartTime"] = event.original_start.render(out_tz)
        # Google leaves defaults out: opaque transparency, default visibility.
        transparency = fields.pop("transparency", None)
        if transparency == "transparent":
            rendered["transparency"] = transparency
        visibility = fields.pop("visibility", None)
        if visibility and visibility != "default":
            rendered["visibility"] = visibility
        rendered["iCalUID"] = event.ical_uid
        rendered["sequence"] = event.sequence
        rendered.update(fields)
        rendered.setdefault("reminders", {"useDefault": True})
        rendered.setdefault("eventType", "default")
        return rendered

    def _check_if_match(self, headers: Mapping[str, str], event: _Event) -> None:
        expected = headers.get("if-match")
        if expected is None or expected.strip() == "*":
            return
        candidates = {tag.strip() for tag in expected.split(",")}
        if event.etag not in candidates and event.etag.strip('"') not in candidates:
            raise errors.condition_not_met()

    def _store_exception(self, calendar: _Calendar, event: _Event) -> _Event:
        """Keep a synthesized instance as an exception of its series, so it can diverge from it."""
        if event.id not in calendar.events:
            calendar.events[event.id] = event
        return event

    def _apply_write(
        self, calendar: _Calendar, event: _Event, merged: Mapping[str, Any], *, previous_status: str
    ) -> None:
        exception = event.recurring_event_id is not None
        kind = self._event_type(
            calendar, merged, previous=event.fields.get("eventType", "default"), exception=exception
        )
        fields, start, end, status, sequence = self._event_parts(merged, exception=exception)
        self._validate_recurrence(calendar, start, fields.get("recurrence"))
        fields["eventType"] = kind
        before = self._tombstone_whens(calendar, event)
        moved = start != event.start or end != event.end or fields.get("recurrence") != event.fields.get("recurrence")
        event.fields, event.start, event.end, event.status = fields, start, end, status
        if sequence is not None and sequence >= event.sequence:
            event.sequence = sequence
        elif moved or status != previous_status:
            event.sequence += 1
        self._commit_event(calendar, event)
        if before:
            after = self._tombstone_whens(calendar, event)
            for stamp in after:
                calendar.tombstones.pop(f"{event.id}_{stamp}", None)
            self._bury(calendar, event, [when for stamp, when in before.items() if stamp not in after])
        if status == "cancelled" and previous_status != "cancelled":
            self._cancel_exceptions(calendar, event)

    def _tombstone_whens(self, calendar: _Calendar, master: _Event) -> dict[str, When]:
        """A live series' occurrences within TOMBSTONE_HORIZON of now, by their id's stamp."""
        if master.recurrence is None or master.status == "cancelled":
            return {}
        now = self.now()
        whens = occurrence_whens(
            master.start,
            master.recurrence,
            calendar.time_zone,
            now - TOMBSTONE_HORIZON,
            now + TOMBSTONE_HORIZON,
            MAX_INSTANCES,
        )
        return {when.stamp(): when for when in whens}

    def _bury(self, calendar: _Calendar, master: _Event, whens: Iterable[When]) -> None:
        """Occurrences a series no longer has (deleted, or cut off by an UNTIL) become instance tombstones."""
        for when in whens:
            instance = self._instance_of(master, when)
            if instance.id in calendar.events:
                continue  # an exception is cancelled, and sent, as an event of its own
            instance.status = "cancelled"
            instance.updated = self._tick()
            instance.etag = self._etag()
            instance.seq = self._next_seq()
            calendar.tombstones[instance.id] = instance

    def _cancel_exceptions(self, calendar: _Calendar, master: _Event) -> None:
        for other in list(calendar.events.values()):
            if other.recurring_event_id == master.id and other.status != "cancelled":
                other.status = "cancelled"
                self._commit_event(calendar, other)

    def _client_view(self, event: _Event) -> dict[str, Any]:
        view = copy.deepcopy(event.fields)
        view["start"] = event.start.render(None)
        view["end"] = event.end.render(None)
        view["status"] = event.status
        view["sequence"] = event.sequence
        return view

    def _patch_event(self, calendar: _Calendar, event: _Event, patch: Mapping[str, Any]) -> _Event:
        previous = event.status
        event = self._store_exception(calendar, event)
        view = self._client_view(event)
        view.pop("sequence")
        for whole in ("start", "end"):  # a time is replaced whole, so date/dateTime can switch
            if isinstance(patch.get(whole), dict):
                view[whole] = {}
        merged = _deep_merge(view, patch)
        self._apply_write(calendar, event, merged, previous_status=previous)
        return event

    def _replace_event(self, calendar: _Calendar, event: _Event, body: Mapping[str, Any]) -> _Event:
        previous = event.status
        event = self._store_exception(calendar, event)
        merged = dict(body)
        if event.recurring_event_id is not None:
            merged.pop("recurrence", None)
        self._apply_write(calendar, event, merged, previous_status=previous)
        return event

    def _delete_event(self, calendar: _Calendar, event: _Event) -> None:
        if event.status == "cancelled":
            raise errors.deleted()
        event = self._store_exception(calendar, event)
        buried = self._tombstone_whens(calendar, event)
        event.status = "cancelled"
        self._commit_event(calendar, event)
        if event.recurrence is not None:
            self._bury(calendar, event, buried.values())
            self._cancel_exceptions(calendar, event)

    # --- events: handlers -----------------------------------------------------------------------------------

    def _event_headers(self, event: _Event) -> dict[str, str]:
        return {"ETag": event.etag}

    def _events_get(self, account, params, query, body, headers):
        calendar = self._calendar(account, params["calendarId"])
        event = self._find_event(calendar, params["eventId"])
        if_none_match = headers.get("if-none-match")
        if if_none_match and event.etag in {tag.strip() for tag in if_none_match.split(",")}:
            return _Resp(304, b"", {"ETag": event.etag})
        rendered = self._render_event(calendar, event, _one(query, "timeZone"), tombstone=False)
        return _json_resp(200, rendered, self._event_headers(event))

    @staticmethod
    def _refuse_trashed(event: _Event) -> None:
        """An event the user deleted in the web UI cannot be written through the API: Google answers 403 to an
        update of it (and 409 to an insert of its id), as reported in googleapis/google-api-ruby-client#1811."""
        if event.trashed and event.status == "cancelled":
            raise GoogleApiError(403, "forbidden", "Forbidden")

    def _events_insert(self, account, params, query, body, headers):
        calendar = self._writable(self._calendar(account, params["calendarId"]), account)
        event = self._insert_event(calendar, body, creator=account)
        return _json_resp(200, self._render_event(calendar, event, None, tombstone=False), self._event_headers(event))

    def _events_patch(self, account, params, query, body, headers):
        calendar = self._writable(self._calendar(account, params["calendarId"]), account)
        event = self._find_event(calendar, params["eventId"])
        self._refuse_trashed(event)
        self._check_if_match(headers, event)
        event = self._patch_event(calendar, event, body)
        rendered = self._render_event(calendar, event, _one(query, "timeZone"), tombstone=False)
        return _json_resp(200, rendered, self._event_headers(event))

    def _events_update(self, account, params, query, body, headers):
        calendar = self._writable(self._calendar(account, params["calendarId"]), account)
        event = self._find_event(calendar, params["eventId"])
        self._refuse_trashed(event)
        self._check_if_match(headers, event)
        event = self._replace_event(calendar, event, body)
        rendered = self._render_event(calendar, event, _one(query, "timeZone"), tombstone=False)
        return _json_resp(200, rendered, self._event_headers(event))

    def _events_delete(self, account, params, query, body, headers):
        calendar = self._writable(self._calendar(account, params["calendarId"]), account)
        event = self._find_event(calendar, params["eventId"])
        self._check_if_match(headers, event)
        self._delete_event(calendar, event)
        return _Resp(204)

    def _events_instances(self, account, params, query, body, headers):
        calendar = self._calendar(account, params["calendarId"])
        master = self._find_event(calendar, params["eventId"])
        if master.recurrence is None:
            raise errors.bad_request("The event is not a recurring event.")
        page_token = _one(query, "pageToken")
        key = f"instances:{calendar.id}:{master.id}"
        if page_token:
            return self._next_page(account, key, page_token, query)
        time_min = parse_rfc3339(v) if (v := _one(query, "timeMin")) else None
        time_max = parse_rfc3339(v) if (v := _one(query, "timeMax")) else None
        show_deleted = _flag(query, "showDeleted")
        out_tz = _one(query, "timeZone")
        tz = out_tz or calendar.time_zone
        instances: list[_Event] = []
        if master.status != "cancelled":
            instances = self._instances(calendar, master, time_min, time_max)
        for other in calendar.events.values():
            wanted = other.recurring_event_id == master.id and (show_deleted or other.status != "cancelled")
            if wanted and self._overlaps(other, time_min, time_max, tz):
                instances.append(other)
        instances.sort(key=lambda e: e.original_start.instant(tz) if e.original_start else e.start.instant(tz))
        items = [self._render_event(calendar, event, out_tz, tombstone=True) for event in instances]
        page_size = _int(query, "maxResults", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        return self._paginate(account, key, items, page_size, None, lambda: self._events_envelope(calendar, out_tz))

    def _overlaps(self, event: _Event, time_min: dt.datetime | None, time_max: dt.datetime | None, tz: str) -> bool:
        if event.status == "cancelled" and event.original_start is not None:
            start = end = event.original_start.instant(tz)
        else:
            start, end = event.start.instant(tz), event.end.instant(tz)
        if time_min is not None and not (end > time_min or (start == end == time_min)):
            return False
        return not (time_max is not None and not start < time_max)

    def _master_overlaps(
        self, calendar: _Calendar, master: _Event, time_min: dt.datetime | None, time_max: dt.datetime | None, tz: str
    ) -> bool:
        if time_min is None and time_max is None:
            return True
        recurrence = master.recurrence
        assert recurrence is not None
        length = master.end.instant(tz) - master.start.instant(tz)
        lower = time_min - length if time_min is not None else None
        upper = time_max if time_max is not None else self._horizon(calendar, master)
        for original in occurrence_whens(master.start, recurrence, calendar.time_zone, lower, upper, 3):
            if self._overlaps(self._instance_of(master, original), time_min, time_max, tz):
                return True
        return False

    def _events_envelope(self, calendar: _Calendar, out_tz: str | None) -> dict[str, Any]:
        latest = max((event.updated for event in calendar.events.values()), default=calendar.updated)
        envelope: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"p{self._last_write_us}"',
            "summary": calendar.summary,
        }
        if calendar.description:
            envelope["description"] = calendar.description
        envelope.update(
            {
                "updated": format_updated(latest),
                "timeZone": out_tz or calendar.time_zone,
                "accessRole": "owner",
                "defaultReminders": [{"method": "popup", "minutes": 10}] if calendar.primary else [],
            }
        )
        return envelope

    def _events_list(self, account, params, query, body, headers):
        calendar = self._calendar(account, params["calendarId"])
        key = f"events:{calendar.id}"
        page_token = _one(query, "pageToken")
        if page_token:
            return self._next_page(account, key, page_token, query)
        page_size = _int(query, "maxResults", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        out_tz = _one(query, "timeZone")
        if out_tz:
            zone(out_tz)
        single = _flag(query, "singleEvents")
        sync_token = _one(query, "syncToken")
        if sync_token:
            conflicting = [
                name
                for name in (
                    "iCalUID",
                    "orderBy",
                    "privateExtendedProperty",
                    "q",
                    "sharedExtendedProperty",
                    "timeMin",
                    "timeMax",
                    "updatedMin",
                )
                if name in query
            ]
            if conflicting:
                raise errors.invalid(
                    f"The syncToken parameter cannot be combined with: {', '.join(conflicting)}.",
                    location=conflicting[0],
                )
            state = self._sync_tokens.get(sync_token)
            if state is None or state.calendar_id != calendar.id or state.generation != calendar.sync_generation:
                raise errors.full_sync_required()
            events = self._changed_events(calendar, state.seq, single)
        else:
            events = self._matching_events(calendar, query, single)
        items = [self._render_event(calendar, event, out_tz, tombstone=True) for event in events]
        new_sync = "fake-st-" + secrets.token_urlsafe(24)
        self._sync_tokens[new_sync] = _SyncState(calendar.id, calendar.sync_generation, self._last_seq, single)
        return self._paginate(account, key, items, page_size, new_sync, lambda: self._events_envelope(calendar, out_tz))

    def _next_seq(self) -> int:
        self._last_seq += 1
        return self._last_seq

    def _changed_events(self, calendar: _Calendar, since: int, single: bool) -> list[_Event]:
        changed = sorted((e for e in calendar.events.values() if e.seq > since), key=lambda e: e.seq)
        if not single:
            return changed
        # Series come as their instances: a changed one expanded, a deleted or cut one as the tombstones of the
        # instances it lost (within TOMBSTONE_HORIZON), never as one item with the series' id.
        changed += [e for e in calendar.tombstones.values() if e.seq > since]
        changed.sort(key=lambda e: e.seq)
        expanded: list[_Event] = []
        for event in changed:
            if event.recurrence is not None:
                if event.status != "cancelled":
                    expanded.extend(self._instances(calendar, event, None, None))
            else:
                expanded.append(event)
        return expanded

    def _matching_events(self, calendar: _Calendar, query: Mapping[str, list[str]], single: bool) -> list[_Event]:
        out_tz = _one(query, "timeZone")
        tz = out_tz or calendar.time_zone
        time_min = parse_rfc3339(v) if (v := _one(query, "timeMin")) else None
        time_max = parse_rfc3339(v) if (v := _one(query, "timeMax")) else None
        updated_min = parse_rfc3339(v) if (v := _one(query, "updatedMin")) else None
        show_deleted = _flag(query, "showDeleted")
        order_by = _one(query, "orderBy")
        if order_by not in {None, "startTime", "updated"}:
            raise errors.invalid("Invalid value for: orderBy", location="orderBy")
        if order_by == "startTime" and not single:
            raise errors.bad_request("The requested ordering is not available for the particular query.")
        private_filters = [value.partition("=") for value in query.get("privateExtendedProperty", [])]
        shared_filters = [value.partition("=") for value in query.get("sharedExtendedProperty", [])]
        ical_uid = _one(query, "iCalUID")
        terms = (_one(query, "q") or "").lower().split()
        event_types = set(query.get("eventTypes", []))

        candidates: list[_Event] = []
        for event in calendar.events.values():
            if event.recurrence is not None:
                if single:
                    if event.status != "cancelled":
                        candidates.extend(self._instances(calendar, event, time_min, time_max))
                    continue
                if event.status != "cancelled" and not self._master_overlaps(calendar, event, time_min, time_max, tz):
                    continue
            candidates.append(event)

        def keep(event: _Event) -> bool:
            if event.status == "cancelled":
                deleted_since = updated_min is not None and event.updated >= updated_min
                master = calendar.events.get(event.recurring_event_id or "")
                cancelled_slot = (
                    event.recurring_event_id is not None
                    and not single
                    and master is not None
                    and master.status != "cancelled"
                )
                if not (show_deleted or deleted_since or cancelled_slot):
                    return False
            if event.recurrence is None and not self._overlaps(event, time_min, time_max, tz):
                return False
            if updated_min is not None and event.updated < updated_min:
                return False
            private = event.fields.get("extendedProperties", {}).get("private", {})
            if any(private.get(name) != value for name, _, value in private_filters):
                return False
            shared = event.fields.get("extendedProperties", {}).get("shared", {})
            if any(shared.get(name) != value for name, _, value in shared_filters):
                return False
            if ical_uid is not None and event.ical_uid != ical_uid:
                return False
            if event_types and event.fields.get("eventType", "default") not in event_types:
                return False
            if terms:
                text = " ".join(str(event.fields.get(name, "")) for name in ("summary", "description", "location"))
                if not all(term in text.lower() for term in terms):
                    return False
            return True

        kept = [event for event in candidates if keep(event)]
        if order_by == "startTime":
            kept.sort(key=lambda event: (event.start.instant(tz), event.id))
        elif order_by == "updated":
            kept.sort(key=lambda event: event.updated)
        return kept

    # --- paging -----------------------------------------------------------------------------------------------

    def _paginate(
        self,
        account: str,
        key: str,
        items: list[dict[str, Any]],
        page_size: int,
        sync_token: str | None,
        envelope: Callable[[], dict[str, Any]],
    ) -> _Resp:
        page, rest = items[:page_size], items[page_size:]
        response = envelope()
        if rest:
            token = "fake-pt-" + secrets.token_urlsafe(24)
            self._pages[token] = _PageState(key, account, rest, sync_token, envelope)
            response["nextPageToken"] = token
        elif sync_token is not None:
            response["nextSyncToken"] = sync_token
        response["items"] = page
        return _json_resp(200, response)

    def _next_page(self, account: str, key: str, page_token: str, query: Mapping[str, list[str]]) -> _Resp:
        state = self._pages.get(page_token)
        if state is None or state.calendar_id != key or state.account != account:
            raise errors.invalid("Invalid page token value.", location="pageToken")
        default = CALENDAR_LIST_PAGE_SIZE if key.startswith("calendarList:") else DEFAULT_PAGE_SIZE
        maximum = CALENDAR_LIST_MAX_PAGE_SIZE if key.startswith("calendarList:") else MAX_PAGE_SIZE
        page_size = _int(query, "maxResults", default, maximum)
        return self._paginate(account, key, state.items, page_size, state.sync_token, state.envelope)

    # --- push notifications -----------------------------------------------------------------------------------

    def _watch(self, account: str, resource_key: str, resource_uri: str, body: Mapping[str, Any]) -> _Resp:
        channel_id = body.get("id")
        if not channel_id:
            raise errors.required("Required: id")
        if not isinstance(channel_id, str) or not CHANNEL_ID.match(channel_id):
            raise errors.invalid("Invalid channel id.")
        if body.get("type") not in {"web_hook", "webhook"}:
            raise errors.invalid("Invalid value for: type")
        address = body.get("address")
        if not address or not isinstance(address, str) or not address.startswith(("http://", "https://")):
            raise errors.invalid("Invalid value for: address")
        existing = self._channels.get(channel_id)
        if existing is not None and not existing.stopped and not self._expired(existing):
            raise errors.GoogleApiError(400, "channelIdNotUnique", "Channel id not unique")
        params = body.get("params") or {}
        now_ms = int(self._now_ts() * 1000)
        ttl = DEFAULT_CHANNEL_TTL
        if params.get("ttl") is not None:
            try:
                ttl = int(params["ttl"])
            except (TypeError, ValueError) as exc:
                raise errors.invalid("Invalid value for: params.ttl") from exc
        expiration_ms = now_ms + min(ttl, MAX_CHANNEL_TTL) * 1000
        if body.get("expiration") is not None:
            expiration_ms = min(int(body["expiration"]), now_ms + MAX_CHANNEL_TTL * 1000)
        resource_id = self._resource_ids.setdefault(resource_key, secrets.token_urlsafe(20).replace("-", "_"))
        channel = _Channel(
            id=channel_id,
            resource_id=resource_id,
            resource_key=resource_key,
            resource_uri=resource_uri,
            address=address,
            token=body.get("token"),
            expiration_ms=expiration_ms,
            owner=account,
            params={str(k): str(v) for k, v in params.items()},
        )
        self._channels[channel_id] = channel
        self._enqueue(channel, "sync")
        rendered: dict[str, Any] = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": channel.resource_uri,
        }
        if channel.token is not None:
            rendered["token"] = channel.token
        rendered["expiration"] = str(channel.expiration_ms)
        return _json_resp(200, rendered)

    def _events_watch(self, account, params, query, body, headers):
        calendar = self._calendar(account, params["calendarId"])
        if not calendar.push_supported:
            # Calendars Google generates rather than stores (a country's holidays, birthdays from Contacts) refuse
            # a watch with this 400 every time; sync clients fall back to polling them (reported and handled so in
            # toeverything/AFFiNE#14788, "skip watch for external cal").
            raise GoogleApiError(
                400, "pushNotSupportedForRequestedResource", "Push notifications are not supported by this resource."
            )
        quoted = urllib.parse.quote(calendar.id, safe="@")
        uri = f"{self.url}/calendar/v3/calendars/{quoted}/events?alt=json"
        return self._watch(account, f"events:{calendar.id}", uri, body)

    def _calendar_list_watch(self, account, params, query, body, headers):
        uri = f"{self.url}/calendar/v3/users/me/calendarList?alt=json"
        return self._watch(account, f"calendarList:{account}", uri, body)

    def _channels_stop(self, account, params, query, body, headers):
        channel = self._channels.get(body.get("id") or "")
        if channel is None or channel.stopped or channel.resource_id != body.get("resourceId"):
            raise GoogleApiError(404, "notFound", f"Channel '{body.get('id')}' not found for project 'fake'")
        channel.stopped = True
        return _Resp(204)

    def _expired(self, channel: _Channel) -> bool:
        return channel.expiration_ms <= self._now_ts() * 1000

    def _notify(self, resource_key: str, state: str = "exists") -> None:
        for channel in self._channels.values():
            if channel.resource_key == resource_key and not channel.stopped and not self._expired(channel):
                self._enqueue(channel, state)

    def _enqueue(self, channel: _Channel, state: str) -> None:
        number = next(channel.numbers)
        with self._lock:
            self._outbox_pending += 1
        self._outbox.put((channel, state, number))

    def wait_for_notifications(self, timeout: float = 5.0) -> bool:
        """Wait until every queued notification was delivered (or failed); False on timeout."""
        with self._outbox_idle:
            return self._outbox_idle.wait_for(lambda: self._outbox_pending == 0, timeout)

    @property
    def notifications(self) -> list[NotificationRecord]:
        with self._lock:
            return list(self._notifications)

    def channels(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "id": channel.id,
                    "resourceId": channel.resource_id,
                    "resource": channel.resource_key,
                    "address": channel.address,
                    "token": channel.token,
                    "expiration": channel.expiration_ms,
                    "active": not channel.stopped and not self._expired(channel),
                }
                for channel in self._channels.values()
            ]

    def _send_notifications(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            channel, state, number = item
            try:
                # A stopped channel sends nothing more, except the not_exists that ended it.
                if (state == "not_exists" or not channel.stopped) and not self._expired(channel):
                    self._deliver(channel, state, number)
            finally:
                with self._outbox_idle:
                    self._outbox_pending -= 1
                    self._outbox_idle.notify_all()

    def _deliver(self, channel: _Channel, state: str, number: int) -> None:
        expiration = dt.datetime.fromtimestamp(channel.expiration_ms / 1000, UTC)
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": format_datetime(expiration, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(number),
            "Content-Length": "0",
            "User-Agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        record = NotificationRecord(
            channel_id=channel.id,
            resource_id=channel.resource_id,
            resource_state=state,
            message_number=number,
            address=channel.address,
            headers=headers,
        )
        split = urllib.parse.urlsplit(channel.address)
        connection_class = http.client.HTTPSConnection if split.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(split.netloc, timeout=5)
        try:
            target = split.path or "/"
            if split.query:
                target += "?" + split.query
            connection.request("POST", target, body=b"", headers=headers)
            response = connection.getresponse()
            response.read()
            record.status = response.status
        except OSError as exc:
            record.error = repr(exc)
        finally:
            connection.close()
        with self._lock:
            self._notifications.append(record)

    # --- state as "a user in Google" sees and changes it ------------------------------------------------------

    def expire_sync_tokens(self, calendar_id: str) -> None:
        """Invalidate the calendar's sync tokens: the next incremental list answers 410 fullSyncRequired."""
        with self._lock:
            self._calendars[calendar_id].sync_generation += 1

    def calendar(self, calendar_id: str) -> dict[str, Any]:
        with self._lock:
            return self._render_calendar(self._calendars[calendar_id])

    def calendar_ids(self, email: str) -> list[str]:
        with self._lock:
            return [c.id for c in self._calendars.values() if c.owner == email and not c.deleted]

    def event(self, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        """The event as events.get shows it (deleted ones with status "cancelled"), or None."""
        with self._lock:
            calendar = self._calendars[calendar_id]
            event = calendar.events.get(event_id) or self._synthesize_instance(calendar, event_id)
            return None if event is None else self._render_event(calendar, event, None, tombstone=False)

    def events(self, calendar_id: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """The stored events (series, exceptions and single events), in full."""
        with self._lock:
            calendar = self._calendars[calendar_id]
            return [
                self._render_event(calendar, event, None, tombstone=False)
                for event in calendar.events.values()
                if include_deleted or event.status != "cancelled"
            ]

    def user_create_calendar(self, email: str, summary: str, *, time_zone: str | None = None) -> str:
        self.add_account(email)
        with self._lock:
            calendar = _Calendar(
                id="c_" + secrets.token_hex(32) + "@group.calendar.google.com",
                owner=email,
                summary=summary,
                time_zone=time_zone or self._accounts[email],
                primary=False,
            )
            zone(calendar.time_zone)
            self._calendars[calendar.id] = calendar
            self._commit_calendar(calendar)
            return calendar.id

    def user_delete_calendar(self, calendar_id: str) -> None:
        with self._lock:
            self._delete_calendar(self._calendars[calendar_id])

    def user_create_event(self, calendar_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create an event as the user would in Google (an ``id`` may be given; etag, sync and push as usual)."""
        with self._lock:
            calendar = self._calendars[calendar_id]
            event = self._insert_event(calendar, body, creator=calendar.owner)
            return self._render_event(calendar, event, None, tombstone=False)

    def user_update_event(self, calendar_id: str, event_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change an event (patch semantics; an instance id makes that occurrence an exception)."""
        with self._lock:
            calendar = self._calendars[calendar_id]
            event = self._patch_event(calendar, self._find_event(calendar, event_id), changes)
            return self._render_event(calendar, event, None, tombstone=False)

    def user_delete_event(self, calendar_id: str, event_id: str) -> None:
        """Delete an event in the web UI (a series with all its occurrences; an instance id cancels that
        occurrence). It goes to the bin: the API then refuses to update it (403) or insert its id (409)."""
        with self._lock:
            calendar = self._calendars[calendar_id]
            event = self._find_event(calendar, event_id)
            self._delete_event(calendar, event)
            calendar.events[event.id].trashed = True

    def user_purge_event(self, calendar_id: str, event_id: str) -> None:
        """Empty the bin of one deleted event: it is gone (404 to get and update) but its id stays taken (409)."""
        with self._lock:
            calendar = self._calendars[calendar_id]
            event = calendar.events.get(event_id)
            if event is None or event.status != "cancelled":
                raise ValueError("only a deleted event can be purged")
            del calendar.events[event_id]
            calendar.purged.add(event_id)

    def user_share_calendar(self, calendar_id: str, email: str, role: str | None) -> None:
        """The owner shares a calendar with another account as "reader" or "writer" (None: stops sharing)."""
        if role not in (None, "reader", "writer"):
            raise ValueError("role is reader, writer or None")
        self.add_account(email)
        with self._lock:
            calendar = self._calendars[calendar_id]
            if role is None:
                calendar.acl.pop(email, None)
            else:
                calendar.acl[email] = role
            self._commit_calendar(calendar)
            self._notify(f"calendarList:{email}")

    def user_subscribe_calendar(self, email: str, summary: str, *, push: bool = False) -> str:
        """A calendar the account only reads (a public holiday calendar, say), which may refuse events.watch."""
        self.add_account(email)
        with self._lock:
            owner = "holidays@group.v.calendar.google.com"
            calendar = _Calendar(
                id=f"en.uk#{secrets.token_hex(4)}#holiday@group.v.calendar.google.com",
                owner=owner,
                summary=summary,
                time_zone=self._accounts[email],
                primary=False,
                acl={email: "reader"},
                push_supported=push,
            )
            self._calendars[calendar.id] = calendar
            self._commit_calendar(calendar)
            self._notify(f"calendarList:{email}")
            return calendar.id

    def user_invited(
        self, calendar_id: str, body: Mapping[str, Any], *, organizer: str, response: str = "needsAction"
    ) -> dict[str, Any]:
        """An invitation from ``organizer`` on this calendar: its owner an attendee who answered ``response``."""
        with self._lock:
            calendar = self._calendars[calendar_id]
            attendees = [
                {"email": organizer, "organizer": True, "responseStatus": "accepted"},
                {"email": calendar.id, "responseStatus": response},
            ]
            event = self._insert_event(calendar, {**body, "attendees": attendees}, organizer, organizer=organizer)
            return self._render_event(calendar, event, None, tombstone=False)

    def user_respond(self, calendar_id: str, event_id: str, response: str) -> dict[str, Any]:
        """The calendar's owner answers an invitation (accepted, declined, tentative)."""
        with self._lock:
            calendar = self._calendars[calendar_id]
            event = self._find_event(calendar, event_id)
            attendees = [
                {**a, "responseStatus": response} if a.get("email", "").lower() == calendar.id.lower() else a
                for a in event.fields.get("attendees", [])
            ]
            return self.user_update_event(calendar_id, event_id, {"attendees": attendees})

    def user_gmail_event(self, calendar_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """An event Gmail made from a mail (a flight, a booking): eventType fromGmail, the recipient organizer."""
        with self._lock:
            calendar = self._calendars[calendar_id]
            event = self._insert_event(calendar, {**body, "eventType": "fromGmail"}, calendar.owner, gmail=True)
            return self._render_event(calendar, event, None, tombstone=False)

    def user_this_and_following(
        self, calendar_id: str, series_id: str, from_start: Mapping[str, Any], changes: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Google's "this and following events" edit: the series ends before ``from_start`` (an UNTIL in its
        RRULE) and, with ``changes``, a new series starts there. Returns the new series."""
        with self._lock:
            calendar = self._calendars[calendar_id]
            master = calendar.events[series_id]
            assert master.recurrence is not None
            cut = parse_when(dict(from_start), "start", recurring=True)
            if cut.all_day:
                assert cut.date is not None
                until = (cut.date - dt.timedelta(days=1)).strftime("%Y%m%d")
            else:
                until = (cut.instant(calendar.time_zone) - dt.timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")
            rules = [
                re.sub(r";(UNTIL|COUNT)=[^;]*", "", line) + f";UNTIL={until}" if line.startswith("RRULE:") else line
                for line in master.recurrence
            ]
            following = self._render_event(calendar, master, None, tombstone=False)
            self._patch_event(calendar, master, {"recurrence": rules})
        if changes is None:
            return None
        length = master.end.instant(calendar.time_zone) - master.start.instant(calendar.time_zone)
        start = dict(changes.get("start") or from_start)
        if "dateTime" in start:
            begins = parse_rfc3339(start["dateTime"])
            end = {**start, "dateTime": (begins + length).strftime("%Y-%m-%dT%H:%M:%SZ")}
        else:
            end = {"date": (dt.date.fromisoformat(start["date"]) + length).isoformat()}
        body = {k: v for k, v in following.items() if k not in SERVER_FIELDS and k != "attendees"}
        body.update({"start": start, "end": end, **changes})
        return self.user_create_event(calendar_id, body)

    def user_set_title(self, calendar_id: str, event_id: str, title: str) -> dict[str, Any]:
        return self.user_update_event(calendar_id, event_id, {"summary": title})

    def user_set_busy(self, calendar_id: str, event_id: str, busy: bool) -> dict[str, Any]:
        return self.user_update_event(calendar_id, event_id, {"transparency": "opaque" if busy else "transparent"})

    def user_move_event(
        self, calendar_id: str, event_id: str, start: Mapping[str, Any], end: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self.user_update_event(calendar_id, event_id, {"start": dict(start), "end": dict(end)})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"
    sys_version = ""
    timeout = 60
    fake: FakeGoogle

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle and delayed ACKs add 40 ms a reply.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.fake._lock:
            self.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.fake._serve_http(self.command, self.path, headers, body)
        if response.drop is not None:
            self.close_connection = True
            if response.drop == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(response.status, HTTPStatus(response.status).phrase)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve
