"""A real Celery worker in a subprocess, on Redis, for the tests that are about the worker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.db import connection

from tests.conftest import in_ci, subprocess_env

BASE_DIR = Path(settings.BASE_DIR)
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"


def redis_or_skip(url: str = REDIS_URL) -> None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        message = f"Redis is not reachable at {url} ({error}); start it or set REDIS_URL."
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
def celery_worker(
    database_url: str, *, redis_url: str = REDIS_URL, queue: str | None = None, beat: bool = False, **extra_env: str
) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    """Start a worker on a queue of its own (or the one given: "celery" is where beat and nudges send); yields
    (queue, environment for producers, the worker's output). With beat, the worker runs beat too (-B, on
    the database scheduler, so every schedule is due at once). extra_env adds to the environment of the
    worker and of the producers (settings read from it)."""
    redis_or_skip(redis_url)
    queue = queue or f"test-{uuid.uuid4().hex[:12]}"
    env = subprocess_env(drop=("DJANGO_ENV",), **extra_env, REDIS_URL=redis_url, DATABASE_URL=database_url)
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
            *(["--beat"] if beat else []),
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


def eventually(check: Callable[[], Any], what: str, timeout: float = 40.0) -> Any:
    """Wait until check() gives something true (a worker's doing), and return it; fail saying what did not
    happen."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"did not {what} within {timeout:.0f} s")
        time.sleep(0.1)
    return value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def redis_server(port: int) -> Iterator[str]:
    """A Redis of the test's own on this port (stopped at the end, or by leaving the block): a broker that
    can go away and come back. Yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_connect_timeout=0.2).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def silent_socket() -> Iterator[str]:
    """A loopback port that accepts connections and never answers: a broker that hangs. Yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:  # the 0.1 s timeout: look at `done` again
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        done.set()
        thread.join()
        for peer in accepted:
            peer.close()
        listener.close()
