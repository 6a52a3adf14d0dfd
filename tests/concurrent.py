"""Jobs run at the same moment, each in its own thread and database connection (for the race tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db import OperationalError, connection

from scheduling.services.booking import BookingError


def room_for(connections: int, timeout: float = 60.0) -> None:
    """On PostgreSQL, wait (up to `timeout`) until the server has room for this many more connections: the other
    test process, or a server the previous test stopped, may still hold some for a moment, and a storm that found
    "too many clients" would fail for a reason that is not the code's."""
    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        limit = int(cursor.fetchone()[0])
        reserved = 5  # superuser_reserved_connections is 3 by default; a little more for the test's own
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
            if cursor.fetchone()[0] + connections + reserved <= limit:
                return
            time.sleep(0.25)


def connected(job: Callable[[], str], attempts: int = 40) -> str:
    """Run a job; when PostgreSQL refuses its connection for want of room ("too many clients": the other test process
    opened a few meanwhile), nothing has happened yet, so wait a moment and try again. Any other error is the job's."""
    for _ in range(attempts - 1):
        try:
            return job()
        except OperationalError as error:
            if "too many clients" not in str(error):
                raise
            connection.close()
            time.sleep(0.25)
    return job()


def all_at_once(jobs: list[Callable[[], str]]) -> list[str]:
    """Run every job at the same moment, each in its own thread and database connection (once the database has
    room for them all)."""
    room_for(len(jobs))
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(job):
        try:
            barrier.wait(timeout=30)
            result = connected(job)
        except BookingError as error:
            result = error.messages[0]
        except Exception as error:  # a deadlock or any other database error is a failure of the test
            result = f"ERROR {type(error).__name__}: {error}"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def wait_until_a_connection_waits_for_a_lock(timeout: float = 30.0, count: int = 1, *, strict: bool = True) -> None:
    """Return once another connection of this database (or `count` others) is blocked on a lock (PostgreSQL's
    pg_stat_activity).

    For a test that holds a lock and must know that its rival now waits for it. SQLite's writers queue on the
    database's one write lock and leave nothing to observe, so there it returns at once. Not `strict`: after
    `timeout` it returns all the same.
    """
    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # the view is a snapshot per transaction otherwise
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= count:
                return
            if time.monotonic() > deadline:
                if not strict:
                    return  # the caller's rivals may have gone another way; it goes on regardless
                raise TimeoutError(f"fewer than {count} other connections came to wait for a lock")
            time.sleep(0.01)
