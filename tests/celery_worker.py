"""A real Celery worker in a subprocess, on Redis, for the tests that are about the worker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


def worker_database_url(fallback: Path | None = None) -> str:
    """The database a worker should use: this test's own (PostgreSQL, or the SQLite test file), or a
    separate SQLite file when the task needs no data of the test."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
        return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{fallback or db['NAME']}"


@contextmanager
def celery_worker(database_url: str, **extra_env: str) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    """Start a worker on a queue of its own; yields (queue, environment for producers, the worker's output).
    extra_env adds to the environment of the worker and of the producers (settings read from it)."""
    redis_or_skip()
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = subprocess_env(drop=("DJANGO_ENV",), **extra_env, REDIS_URL=REDIS_URL, DATABASE_URL=database_url)
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
    output: list[str] = []
    try:
        yield queue, env, output
        assert worker.poll() is None, "the worker died"
    finally:
        worker.terminate()
        try:
            text, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            text, _ = worker.communicate()
        output.append(text or "")
    assert "Traceback" not in "".join(output)


def produce(env: dict[str, str], code: str) -> str:
    """Run producer code in a fresh process (it reads REDIS_URL as the web would); its last output line."""
    script = "import django, json; django.setup()\n" + code
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]
