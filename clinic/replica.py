"""Read replicas (DATABASE_REPLICA_URL): which reads may go there, and pinning a user's reads to the primary.

Only reads made inside `replica_reads()` (or a view decorated `@reads_from_replica`) are routed to the `replica`
alias: the calendar grid, the appointments report and the ICS feed's stored bytes. Everything else, and in
particular everything that decides a write (booking, locks, building a feed in Celery) or grants access (sign-in,
sessions, memberships, break-glass grants), reads the primary: a replica a few moments behind must never let a
just-revoked member in, nor build a feed from a stale picture and mark the change done.

A browser that has just written (an unsafe method, or any write of a data model routed during the request) gets a
signed cookie that pins its reads to the primary for REPLICA_PIN_SECONDS, so a user always sees their own change
on the next calendar page even when the replica lags. With DATABASE_REPLICA_URL unset neither the router nor the
middleware is installed (settings), and `replica_reads()` changes nothing.

A replica that cannot be reached (down, restarting, refusing connections) is not fatal: the router checks the
replica's connection before it routes a read there (once a request, with Django's health check), and when that
fails the process reads the primary for REPLICA_RETRY_SECONDS before it tries the replica again. A replica that
fails in the middle of a request fails that request; the next one reads the primary.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, router
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseBase

REPLICA = "replica"
PIN_COOKIE = "replica_pin"
PIN_SALT = "clinic.replica.pin"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Apps and models whose rows decide who may see what, or are the request's own bookkeeping: never read from the
# replica, even inside replica_reads() (a template's lazy `user` or membership lookup), and their writes (a session's
# activity stamp, an audit row) do not pin a browser.
PRIMARY_APPS = frozenset({"auth", "contenttypes", "sessions", "axes", "otp_totp", "otp_static", "oauth2_provider"})
PRIMARY_MODELS = frozenset(
    {
        "clinic.clinic",
        "clinic.membership",
        "clinic.usersession",
        "clinic.auditevent",
        "privacy.breakglass",
        "fhir_api.consumer",
    }
)

logger = logging.getLogger(__name__)

_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)
_pinned: ContextVar[bool] = ContextVar("replica_pinned", default=False)
_wrote: ContextVar[bool] = ContextVar("replica_wrote", default=False)


def primary_only(model: type[Model]) -> bool:
    """Whether the model's rows are access or bookkeeping rows, always read on the primary."""
    meta = model._meta
    return meta.app_label in PRIMARY_APPS or meta.label_lower in PRIMARY_MODELS


@contextmanager
def replica_reads() -> Iterator[None]:
    """Reads of data models inside this block may go to the replica (when one is configured and this browser is
    not pinned)."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


@contextmanager
def primary_reads() -> Iterator[None]:
    """Inside a replica_reads() block, reads that decide access after all: back on the primary."""
    token = _replica_reads.set(False)
    try:
        yield
    finally:
        _replica_reads.reset(token)


def reading_replica(model: type[Model]) -> bool:
    """Whether a read of this model, here and now, goes to the replica."""
    return router.db_for_read(model) == REPLICA


View = Callable[..., HttpResponseBase]


def reads_from_replica(view: View) -> View:
    """A view whose data reads may go to the replica (the access checks around it already ran on the primary)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        with replica_reads():
            return view(request, *args, **kwargs)

    return wrapper


@contextmanager
def request_scope(*, pinned: bool) -> Iterator[None]:
    """One request's routing state: pinned to the primary or not, and nothing written yet."""
    pin_token, wrote_token = _pinned.set(pinned), _wrote.set(False)
    try:
        yield
    finally:
        _pinned.reset(pin_token)
        _wrote.reset(wrote_token)


def wrote() -> bool:
    """Whether a write of a data model was routed in this request (or block)."""
    return _wrote.get()


def replica_is_default() -> bool:
    """Whether there is no replica alias, or it names default's own database (a test mirror, or the same URL twice):
    then reading through default's connection is the same data, and sees the current transaction."""
    if REPLICA not in connections.settings:
        return True
    ours, theirs = connections[REPLICA].settings_dict, connections[DEFAULT_DB_ALIAS].settings_dict
    return all(ours.get(key) == theirs.get(key) for key in ("ENGINE", "HOST", "PORT", "NAME"))


class ReplicaHealth:
    """Whether this process may read the replica now: not while a failed connection is recent (the primary is read
    for REPLICA_RETRY_SECONDS instead). One per process; threads share it (a float, read and set whole)."""

    def __init__(self) -> None:
        self.down_until = 0.0

    def usable(self) -> bool:
        """Connect to the replica (or check the connection kept from an earlier request, once a request, as Django's
        CONN_HEALTH_CHECKS does); on failure, mark it down and say no."""
        if time.monotonic() < self.down_until:
            return False
        replica = connections[REPLICA]
        try:
            replica.close_if_health_check_failed()
            replica.ensure_connection()
        except DatabaseError as error:
            retry = float(settings.REPLICA_RETRY_SECONDS)
            self.down_until = time.monotonic() + retry
            # The error's class only: its text may carry the host and user of the connection.
            logger.warning("read replica unreachable (%s); reading the primary for %.0f s", type(error).__name__, retry)
            replica.close()  # nothing half-open is kept for the next request
            return False
        return True


replica_health = ReplicaHealth()


class ReplicaRouter:
    """Reads inside replica_reads() go to the replica unless pinned, written, in a transaction or access rows, or
    the replica cannot be reached."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        if (
            not _replica_reads.get()
            or _pinned.get()
            or _wrote.get()
            or primary_only(model)
            or connections[DEFAULT_DB_ALIAS].in_atomic_block  # a transaction reads what it is about to write
            or replica_is_default()
            or not replica_health.usable()
        ):
            return DEFAULT_DB_ALIAS
        return REPLICA

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        if not primary_only(model):
            _wrote.set(True)  # the rest of this request reads the primary, and the browser is pinned
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        return {obj1._state.db, obj2._state.db} <= {DEFAULT_DB_ALIAS, REPLICA, None}

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS


def pin_for() -> dt.timedelta:
    """How long a browser that wrote reads the primary."""
    return dt.timedelta(seconds=float(settings.REPLICA_PIN_SECONDS))


def is_pinned(request: HttpRequest) -> bool:
    """Whether this browser wrote within the last REPLICA_PIN_SECONDS (its signed cookie, timestamped)."""
    try:
        request.get_signed_cookie(PIN_COOKIE, salt=PIN_SALT, max_age=pin_for())
    except (KeyError, signing.BadSignature):  # absent, forged, or older than the pin (SignatureExpired)
        return False
    return True


class ReplicaPinMiddleware:
    """Pins a signed-in browser's reads to the primary for REPLICA_PIN_SECONDS after a request that wrote.

    A signed cookie rather than the session: reading it costs no query, setting it writes nothing (the session row
    would be saved on every write, and two htmx requests at once would overwrite each other's session), and it
    works the same whichever process serves the next request. It is per browser: the same user in another browser
    reads the replica at once (at most its lag behind)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with request_scope(pinned=is_pinned(request)):
            response = self.get_response(request)
            written = wrote()
        user = getattr(request, "user", None)
        if (written or request.method in UNSAFE_METHODS) and user is not None and user.is_authenticated:
            response.set_signed_cookie(
                PIN_COOKIE,
                "1",
                salt=PIN_SALT,
                max_age=pin_for(),
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response
