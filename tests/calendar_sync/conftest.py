from __future__ import annotations

import pytest

from tests.conftest import tasks_in_process


@pytest.fixture(autouse=True)
def tasks_run_in_process():
    """Feed rebuilds run in this process, as in the embedded default, even when REDIS_URL names a broker
    (the worker test starts a real worker for that)."""
    with tasks_in_process():
        yield
