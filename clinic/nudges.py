"""Nudges: telling a worker, after commit, that rows are waiting for it. Nothing waits on the broker.

The rule of the house: a write records its follow-up work as rows in its own transaction (a feed change, a
pending Google change, a message to send). The nudge only says "look now": it is queued in `on_commit`,
fire-and-forget (no result, no publish retry), with a short socket timeout, and any refusal of the broker
(or of the cache, the same Redis) is logged and swallowed. A lost nudge loses nothing: the beat sweep
(`calendar_sync.tasks.deliver_waiting`, every minute) delivers the rows whose nudge never came.

After one refusal, this process leaves the broker alone for NUDGE_PAUSE_SECONDS, so a burst of writes
while Redis is down costs one publish timeout, not one per nudge. The next nudge after the pause tries
again on a fresh connection: the same web process recovers by itself when Redis returns.

In the embedded default (no REDIS_URL) tasks run in this process at once, as before; their errors still
surface, since there is no broker to lose them to and no beat to sweep up after them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

if TYPE_CHECKING:
    from celery import Task
    from kombu.connection import ConnectionPool

log = logging.getLogger(__name__)

_lock = threading.Lock()
_paused_until = 0.0
_pool: ConnectionPool | None = None


def nudge(
    task: Task[Any, Any],
    *args: Any,
    once_per: str | None = None,
    once_seconds: int = 60,
    on_lost: Callable[[], object] | None = None,
    countdown: float = 0.0,
) -> None:
    """Queue task(*args) once the current transaction commits (at once outside one; never on rollback), to run
    after `countdown` seconds (in a worker; in-process it runs at once).

    once_per names a burst: while that cache key lives (once_seconds, or until the task deletes it), further
    nudges with the same name are dropped; the task that runs sees what they would have. on_lost runs when
    the nudge could not be queued (to undo a "queued" mark, so the next change nudges again).
    """
    transaction.on_commit(partial(_publish, task, args, once_per, once_seconds, on_lost, countdown))


def _broker_paused() -> bool:
    return time.monotonic() < _paused_until


def _publish(
    task: Task[Any, Any],
    args: tuple[Any, ...],
    once_per: str | None,
    once_seconds: int,
    on_lost: Callable[[], object] | None,
    countdown: float = 0.0,
) -> None:
    if task.app.conf.task_always_eager:
        if once_per is None or cache.add(once_per, 1, once_seconds):
            task.apply_async(args)
        return
    if _broker_paused():
        log.info("nudge %s skipped: the broker refused recently; the sweep delivers", task.name)
        _lost(task, on_lost)
        return
    try:
        if once_per is not None and not cache.add(once_per, 1, once_seconds):
            return
        with _connections().acquire(block=True, timeout=settings.NUDGE_PUBLISH_TIMEOUT) as connection:
            producer = task.app.amqp.Producer(connection, auto_declare=False)  # as apply_async(connection=) makes
            options: dict[str, Any] = {"countdown": countdown} if countdown else {}
            task.apply_async(args, producer=producer, ignore_result=True, retry=False, **options)
    except Exception as error:  # noqa: BLE001 - any refusal of the broker or cache; the rows wait for the sweep
        _pause()
        if once_per is not None:
            _forget_quietly(once_per)
        # The class only: a broker's message may carry its URL (and password).
        log.warning("nudge %s not queued (%s); the sweep delivers", task.name, type(error).__name__)
        _lost(task, on_lost)


def _lost(task: Task[Any, Any], on_lost: Callable[[], object] | None) -> None:
    if on_lost is None:
        return
    try:
        on_lost()
    except Exception as error:  # noqa: BLE001 - the write has committed; the sweep clears what this could not
        log.warning("nudge %s: undoing its mark failed (%s)", task.name, type(error).__name__)


def _connections() -> ConnectionPool:
    """The producer connections of this process: a short timeout on every socket, no reconnect loop."""
    global _pool
    with _lock:
        if _pool is None:
            from clinic.celery import app

            timeout = settings.NUDGE_PUBLISH_TIMEOUT
            connection = app.connection_for_write(
                connect_timeout=timeout,
                transport_options={
                    **app.conf.broker_transport_options,
                    "socket_timeout": timeout,
                    "socket_connect_timeout": timeout,
                    "max_retries": 0,  # kombu's default_channel would otherwise retry the connect (6 s)
                },
            )
            _pool = connection.Pool(limit=app.conf.broker_pool_limit or 10)
        return _pool


def _pause() -> None:
    global _paused_until
    with _lock:
        _paused_until = time.monotonic() + settings.NUDGE_PAUSE_SECONDS


T = TypeVar("T")


def cache_quietly(call: Callable[[], T], default: T) -> T:
    """A cache call no page waits on or fails with: while Redis has refused recently (in this process), the
    default at once; on a refusal, the default, and the same pause as the nudges' (one timeout per pause, not one
    per request). For what the cache only speeds up or counts: the header's request count, rate limits."""
    if _broker_paused():
        return default
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - any refusal of the cache (the broker's Redis)
        _pause()
        log.warning("cache call skipped (%s)", type(error).__name__)
        return default


def _forget_quietly(key: str) -> None:
    try:
        cache.delete(key)
    except Exception:  # noqa: BLE001 - the cache is the same Redis that just refused; the key expires anyway
        return
