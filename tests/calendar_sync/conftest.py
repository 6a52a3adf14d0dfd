from __future__ import annotations

import pytest

from clinic.celery import app


@pytest.fixture(autouse=True)
def tasks_run_in_process():
    """Feed rebuilds run in this process, as in the embedded default, even when REDIS_URL names a broker
    (the worker test starts a real worker for that)."""
    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous
