"""A Google connection at work: its API client with the stored grant (Session), the lock that gives it one
pusher and one puller at a time, and its state (syncing, backing off, broken)."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httplib2
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from google.auth.exceptions import RefreshError, TransportError
from googleapiclient.errors import HttpError

from calendar_sync.crypto import SecretUnreadable, seal, unseal
from calendar_sync.google.client import (
    BATCH_SIZE,
    AccessRevoked,
    GoogleTrouble,
    backoff,
    calendar_service,
    credentials,
    error_reason,
    refresh_trouble,
    retryable,
    trouble_of,
)
from calendar_sync.google.pacing import MIN_DELAY, PUSH, Kind, Paced, chunk_size, reserve, settle
from calendar_sync.models import FeedSubscription, GoogleChannel, GoogleConnection, GoogleState, SyncType

if TYPE_CHECKING:
    from google.oauth2.credentials import Credentials

log = logging.getLogger(__name__)

REVOKED = "Google access was revoked or has expired. Connect with Google again to resume two-way sync."
LOCK_SECONDS = 600


def _naive_utc(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else moment.astimezone(dt.UTC).replace(tzinfo=None)


def _credentials(connection: GoogleConnection) -> Credentials:
    try:
        access = unseal(connection.access_token) if connection.access_token else ""
        refresh = unseal(connection.refresh_token)
    except SecretUnreadable as error:
        raise AccessRevoked("the stored tokens cannot be read with the current keys") from error
    return credentials(access_token=access, refresh_token=refresh, expiry=_naive_utc(connection.access_expires_at))


def _keep_tokens(connection: GoogleConnection, creds: Credentials) -> None:
    """Store a refreshed access token (sealed), so the next task does not refresh again."""
    if not creds.token:
        return
    expiry = creds.expiry.replace(tzinfo=dt.UTC) if creds.expiry else None
    if expiry == connection.access_expires_at and connection.access_token:
        return
    connection.access_token = seal(creds.token)
    connection.access_expires_at = expiry
    GoogleConnection.objects.for_clinic(connection.clinic_id).filter(pk=connection.pk).update(
        access_token=connection.access_token, access_expires_at=expiry
    )


@dataclass
class Session:
    """A connection with its API client; translates transport and auth failures. A push or a pull paces its calls
    under Google's quotas (pacing.py): a push within the window less the pull headroom and within its time slice,
    a pull within the whole window. The few calls a person waits on in a request (connecting, choosing the
    calendar) are not paced: a request never waits on the cache or for quota."""

    connection: GoogleConnection
    creds: Credentials | None = None  # the connection's own, unless given (a grant not stored yet)
    kind: Kind | None = None
    service: Any = field(init=False)
    requests: int = field(init=False, default=0)  # HTTP requests sent
    deadline: float | None = field(init=False, default=None)  # time.monotonic() when a push's slice is over

    def __post_init__(self) -> None:
        self.creds = self.creds or _credentials(self.connection)
        self.service = calendar_service(self.creds)
        if self.kind == PUSH:
            self.deadline = time.monotonic() + settings.GOOGLE_PUSH_SLICE_SECONDS

    def run(self, request: Any, attempt: int = 0, *, calls: int = 1) -> Any:
        """Execute a request of `calls` API calls (a batch's parts), once the quota allows them."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Paced("this push's slice is over; the rest continues in a new task", delay=MIN_DELAY)
        reservation = (
            None if self.kind is None else reserve(self.connection.email, calls, self.kind, deadline=self.deadline)
        )
        try:
            self.requests += 1
            return self._execute(request, attempt)
        finally:
            if reservation is not None:
                settle(reservation)

    def _execute(self, request: Any, attempt: int) -> Any:
        try:
            return request.execute()
        except RefreshError as error:
            raise refresh_trouble(error, attempt) from error
        except HttpError as error:
            if retryable(error.status_code, error_reason(error)):
                raise trouble_of(error.status_code, error_reason(error), attempt) from error
            raise
        except (OSError, httplib2.HttpLib2Error, TransportError) as error:
            raise GoogleTrouble(
                f"Google could not be reached ({type(error).__name__})", delay=backoff(attempt)
            ) from error

    def batch(
        self,
        calls: list[tuple[str, Any]],
        attempt: int = 0,
        into: dict[str, tuple[Any, HttpError | None]] | None = None,
    ) -> dict[str, tuple[Any, HttpError | None]]:
        """Run calls in batch requests of BATCH_SIZE (fewer if the quota's window is smaller); each answer (or its
        error) by the call's name, in `into` when given, so the answers so far survive a GoogleTrouble."""
        answers: dict[str, tuple[Any, HttpError | None]] = {} if into is None else into

        def keep(request_id: str, response: Any, error: HttpError | None) -> None:
            answers[request_id] = (response, error)

        size = BATCH_SIZE if self.kind is None else chunk_size(self.connection.email, self.kind, BATCH_SIZE)
        for start in range(0, len(calls), size):
            batch = self.service.new_batch_http_request(callback=keep)
            chunk = calls[start : start + size]
            for name, request in chunk:
                batch.add(request, request_id=name)
            self.run(batch, attempt, calls=len(chunk))
        return answers

    def close(self) -> None:
        if self.creds is not None:
            _keep_tokens(self.connection, self.creds)


def connection_by_id(connection_id: int) -> tuple[GoogleConnection, FeedSubscription | None] | None:
    """A task's connection, with its practitioner's subscription."""
    # Across clinics: a task receives only the connection's id; the row names its clinic, and everything
    # after this lookup is read through for_clinic(connection.clinic_id).
    connection = (
        GoogleConnection.objects.select_related("practitioner", "practitioner__user", "clinic")
        .filter(pk=connection_id)
        .first()
    )
    if connection is None:
        return None
    subscription = (
        FeedSubscription.objects.for_clinic(connection.clinic_id)
        .filter(practitioner_id=connection.practitioner_id)
        .first()
    )
    return connection, subscription


def connection_mark_broken(connection: GoogleConnection, problem: str = REVOKED) -> None:
    """Stop syncing (no retries) until the practitioner connects again; the Sync page says why."""
    GoogleConnection.objects.for_clinic(connection.clinic_id).filter(pk=connection.pk).update(
        state=GoogleState.BROKEN, problem=problem[:200], push_queued=False
    )
    GoogleChannel.objects.for_clinic(connection.clinic_id).filter(calendar__connection=connection).delete()
    log.warning("google connection %s broken: access revoked", connection.pk)


def sync_active(connection: GoogleConnection, subscription: FeedSubscription | None) -> bool:
    return (
        connection.state == GoogleState.CONNECTED
        and bool(connection.default_calendar_id)
        and subscription is not None
        and subscription.enabled
        and subscription.sync_type == SyncType.TWO_WAY
    )


def backing_off(connection: GoogleConnection) -> bool:
    return connection.backoff_until is not None and connection.backoff_until > timezone.now()


def back_off(connection: GoogleConnection, trouble: GoogleTrouble) -> None:
    """Google's quota is spent: leave the connection alone for the trouble's delay (beat resumes it)."""
    until = timezone.now() + dt.timedelta(seconds=trouble.delay)
    GoogleConnection.objects.for_clinic(connection.clinic_id).filter(pk=connection.pk).update(backoff_until=until)


class held:  # noqa: N801 - used as a context manager, named for how it reads
    """A lock across processes (the cache: Redis in production) so one connection has one pusher (or
    one puller) at a time. Raises GoogleTrouble when another holds it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.token = secrets.token_hex(8)

    def __enter__(self) -> held:
        if not cache.add(self.name, self.token, LOCK_SECONDS):
            raise GoogleTrouble(f"{self.name} is held", delay=5.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if cache.get(self.name) == self.token:
            cache.delete(self.name)
