"""Jobs run at the same moment, each in its own thread and database connection (for the race tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection

from scheduling.services.booking import BookingError


def all_at_once(jobs: list[Callable[[], str]]) -> list[str]:
    """Run every job at the same moment, each in its own thread and database connection."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(job):
        try:
            barrier.wait(timeout=30)
            result = job()
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
