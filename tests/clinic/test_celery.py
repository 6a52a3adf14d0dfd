"""A real task round-trip: the web process queues, a real Celery worker runs it via Redis."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from tests.celery_worker import celery_worker, produce, worker_database_url


@pytest.mark.redis
@pytest.mark.django_db
def test_a_task_round_trips_through_redis_and_a_worker(tmp_path):
    with celery_worker(worker_database_url(tmp_path / "worker.sqlite3")) as (queue, env, _):
        answer = produce(
            env,
            "from clinic.tasks import ping\n"
            f"result = ping.apply_async(args=['round-trip'], queue='{queue}')\n"
            "print(json.dumps(result.get(timeout=60)))\n",
        )
    assert json.loads(answer) == {"token": "round-trip", "database": connection.vendor}
