"""A real task round-trip: the web process queues, a real Celery worker runs it via Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.db import connection

from tests.conftest import in_ci, subprocess_env

BASE_DIR = Path(settings.BASE_DIR)
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"


def redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        message = f"Redis is not reachable at {REDIS_URL} ({error}); start it or set REDIS_URL."
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


def database_url_of_this_test(tmp_path: Path) -> str:
    """The worker uses the same kind of database as the suite: the test database itself on PostgreSQL."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
        return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{tmp_path / 'worker.sqlite3'}"


@pytest.mark.redis
@pytest.mark.django_db
def test_a_task_round_trips_through_redis_and_a_worker(tmp_path):
    redis_or_skip()
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = subprocess_env(drop=("DJANGO_ENV",), REDIS_URL=REDIS_URL, DATABASE_URL=database_url_of_this_test(tmp_path))
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "clinic",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-Q",
            queue,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The producer side, in another fresh process so it reads REDIS_URL like the web would.
        producer = (
            "import django, json; django.setup()\n"
            "from clinic.tasks import ping\n"
            f"result = ping.apply_async(args=['round-trip'], queue='{queue}')\n"
            "print(json.dumps(result.get(timeout=60)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", producer], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=90
        )
        assert result.returncode == 0, result.stderr
        answer = result.stdout.strip().splitlines()[-1]
        assert json.loads(answer) == {"token": "round-trip", "database": connection.vendor}
        assert worker.poll() is None, "the worker died"
    finally:
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
    assert "Traceback" not in (output or "")
