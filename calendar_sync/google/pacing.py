"""Pacing calls to Google under its per-minute quotas, across every worker.

Google counts Calendar API calls per user and per project over a sliding window (600 and 10,000 a minute; each
part of a batch is a call). Two ledgers mirror that: one per Google user (keyed by a hash of the connection's
email) and one per project (a hash of GOOGLE_CLIENT_ID), kept in the Django cache (Redis in production, so all
workers share them) and changed under a short lock taken with cache.add, as connection.held does.

A caller reserves n calls before sending them and settles the entry when the answer is in: the entry then
carries the moment the call completed, which is never earlier than the moment Google counted it, so the ledger
never undercounts what Google saw. An entry never settled (its process died) counts until STALE_SECONDS have
passed. Pushes may fill a window up to its limit less the pull headroom; pulls may fill all of it, so a pull
waits at most briefly while a large push runs. A wait longer than the bound (GOOGLE_PACE_WAIT_SECONDS in a
worker, GOOGLE_PACE_EAGER_WAIT_SECONDS in-process) is not slept: Paced is raised with the wait as its delay.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from celery import current_task
from django.conf import settings
from django.core.cache import cache

from calendar_sync.google.client import REQUEST_TIMEOUT, GoogleTrouble

log = logging.getLogger(__name__)

Kind = Literal["push", "pull"]
PUSH: Kind = "push"
PULL: Kind = "pull"

LOCK_SECONDS = 5  # a ledger's lock expires by itself if its holder dies
LOCK_POLL = 0.002
STALE_SECONDS = 2 * REQUEST_TIMEOUT  # a reservation never settled counts this long past its reservation
MIN_DELAY = 0.1  # the shortest countdown a paced task is re-queued with (no tight loop)


class Paced(GoogleTrouble):
    """Google's quota needs a wait longer than this task may sleep (or the push's slice is over): the calls not
    sent stay pending, and the task is re-queued after `delay` without counting a retry."""


@dataclass(frozen=True)
class Ledger:
    key: str
    limit: int  # calls per window
    headroom: int  # of them kept free for pulls

    def allowance(self, kind: Kind) -> int:
        return self.limit - (self.headroom if kind == PUSH else 0)


def _digest(text: str) -> str:
    return hashlib.sha256(text.strip().lower().encode()).hexdigest()[:24]


def ledgers(email: str) -> tuple[Ledger, Ledger]:
    """The user's and the project's ledgers (hashes: no address in the cache's keys). Both are named by the API
    too (Google's, always, in production), so each of the tests' fake Googles has quotas of its own."""
    user_limit, project_limit = settings.GOOGLE_RATE_LIMIT_USER, settings.GOOGLE_RATE_LIMIT_PROJECT
    headroom = settings.GOOGLE_PULL_HEADROOM
    api = settings.GOOGLE_API_ROOT
    return (
        Ledger(f"google:quota:user:{_digest(api + ' ' + email)}", user_limit, headroom),
        # The project keeps the same share of its limit free for pulls.
        Ledger(
            f"google:quota:project:{_digest(api + ' ' + settings.GOOGLE_CLIENT_ID)}",
            project_limit,
            headroom * project_limit // max(user_limit, 1),
        ),
    )


def chunk_size(email: str, kind: Kind, most: int) -> int:
    """The largest batch a caller of this kind may reserve at once (at most `most`)."""
    return max(1, min([most] + [ledger.allowance(kind) for ledger in ledgers(email)]))


def wait_bound() -> float:
    """How long this process may sleep for quota: briefly in-process (a request waits), longer in a worker."""
    # current_task is a proxy: false outside a task (the benchmark, a shell), else the running task.
    if current_task and current_task.request.is_eager:
        return float(settings.GOOGLE_PACE_EAGER_WAIT_SECONDS)
    return float(settings.GOOGLE_PACE_WAIT_SECONDS)


# An entry: [id, moment, calls, settled]. Unsettled, `moment` is when it was reserved.
Entry = list[Any]


def _live(entries: list[Entry], now: float, window: float) -> list[Entry]:
    return [e for e in entries if e[1] + (window if e[3] else window + STALE_SECONDS) > now]


def _wait_for(entries: list[Entry], n: int, allowance: int, now: float, window: float) -> float:
    """Seconds until n more calls fit in the window (0: they fit now). An unsettled entry is taken to complete
    now (an estimate: the caller looks again after sleeping)."""
    used = sum(e[2] for e in entries)
    if used + n <= allowance:
        return 0.0
    for expiry, size in sorted(((e[1] if e[3] else now) + window, e[2]) for e in entries):
        used -= size
        if used + n <= allowance:
            return max(0.0, expiry - now)
    return window


class _locked:  # noqa: N801 - a context manager, named for how it reads
    """The ledgers' locks, taken in a fixed order (no deadlock between two reservers)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(keys)
        self.token = secrets.token_hex(8)
        self.held: list[str] = []

    def __enter__(self) -> _locked:
        deadline = time.monotonic() + 2 * LOCK_SECONDS
        for key in self.keys:
            while not cache.add(key + ":lock", self.token, LOCK_SECONDS):
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise GoogleTrouble("the quota ledger is locked", delay=MIN_DELAY)
                time.sleep(LOCK_POLL)
            self.held.append(key)
        return self

    def __exit__(self, *exc: object) -> None:
        for key in reversed(self.held):
            if cache.get(key + ":lock") == self.token:
                cache.delete(key + ":lock")
        self.held.clear()


@dataclass
class Reservation:
    id: str
    keys: tuple[str, ...]


def _try_reserve(pair: tuple[Ledger, Ledger], n: int, kind: Kind) -> tuple[Reservation | None, float]:
    window = float(settings.GOOGLE_RATE_WINDOW_SECONDS)
    keys = [ledger.key for ledger in pair]
    with _locked(keys):
        now = time.time()
        stored = cache.get_many(keys)
        books = {ledger.key: _live(stored.get(ledger.key) or [], now, window) for ledger in pair}
        wait = max(_wait_for(books[ledger.key], n, ledger.allowance(kind), now, window) for ledger in pair)
        if wait > 0:
            return None, wait
        entry_id = secrets.token_hex(6)
        for entries in books.values():
            entries.append([entry_id, now, n, False])
        cache.set_many(books, timeout=int(window + STALE_SECONDS) + 1)
        return Reservation(entry_id, tuple(keys)), 0.0


def reserve(email: str, n: int, kind: Kind, *, deadline: float | None = None) -> Reservation:
    """Reserve n calls in the user's and the project's windows, sleeping while they do not fit (at most
    wait_bound() at a time); raise Paced when the wait is longer, or would pass `deadline` (time.monotonic())."""
    pair = ledgers(email)
    if n > min(ledger.allowance(kind) for ledger in pair):
        raise ValueError(f"{n} calls never fit a window of this kind ({kind}); send smaller batches")
    bound = wait_bound()
    while True:
        try:
            reservation, wait = _try_reserve(pair, n, kind)
        except GoogleTrouble:
            raise
        except Exception as error:  # noqa: BLE001 - the cache (Redis) refused: Google's own 403/429 are the backstop
            log.warning("google pacing skipped: the cache refused (%s)", type(error).__name__)
            return Reservation("", ())
        if reservation is not None:
            return reservation
        if wait > bound or (deadline is not None and time.monotonic() + wait > deadline):
            raise Paced(f"Google's quota allows these calls in {wait:.1f} s", delay=max(wait, MIN_DELAY))
        time.sleep(wait)


def settle(reservation: Reservation) -> None:
    """The calls are answered: count them from now (when they completed) on."""
    if not reservation.keys:
        return
    try:
        _settle(reservation)
    except GoogleTrouble:
        return  # the ledger stayed locked: the entry counts until it is stale (never less than Google saw)
    except Exception as error:  # noqa: BLE001 - the cache (Redis) refused; the entry counts until it is stale
        log.warning("google pacing: settling failed (%s)", type(error).__name__)


def _settle(reservation: Reservation) -> None:
    window = float(settings.GOOGLE_RATE_WINDOW_SECONDS)
    with _locked(list(reservation.keys)):
        now = time.time()
        stored = cache.get_many(list(reservation.keys))
        books = {}
        for key in reservation.keys:
            entries = _live(stored.get(key) or [], now, window)
            for entry in entries:
                if entry[0] == reservation.id:
                    entry[1], entry[3] = now, True
            books[key] = entries
        cache.set_many(books, timeout=int(window + STALE_SECONDS) + 1)
