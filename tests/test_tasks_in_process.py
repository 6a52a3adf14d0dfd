"""`tasks_in_process` lets a test wait for a nudged task's result, whatever earlier tests left behind."""

from __future__ import annotations

import pytest
from celery._state import (  # type: ignore[attr-defined]  # not in celery-types
    _set_task_join_will_block,
    task_join_will_block,
)
from celery.result import denied_join_result

from clinic.tasks import ping
from tests.conftest import tasks_in_process


@pytest.mark.django_db
def test_a_result_can_be_awaited_after_two_threads_interleaved_their_eager_tasks():
    # What two threads applying eager tasks at once do to Celery's process-wide "a task is running" mark: each saves
    # the mark it found and puts it back when done, so the second to finish restores the first one's mark.
    first, second = denied_join_result(), denied_join_result()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert task_join_will_block()  # left set, with no task running
    try:
        with tasks_in_process():
            assert ping.delay("t-1").get() == ping("t-1")
    finally:
        _set_task_join_will_block(False)
