"""The fixture trio: an admin and a receptionist of clinic A, and an outsider of clinic B.

The outsider is an admin of B with every named permission, so that nothing but tenancy
stands between them and clinic A's objects.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from clinic.models import Membership, Role
from tests.factories import ClinicFactory, MembershipFactory

# The two-way sync fixtures (a fake Google wired into settings, a clinician with a practitioner) for any test.
pytest_plugins = ["tests.calendar_sync.google_helpers"]

ALL_PERMISSIONS = {
    "perm_manage_appointments": True,
    "perm_access_blocked_patients": True,
    "perm_manage_sessions": True,
    "perm_privacy_officer": True,
}
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def subprocess_env(drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """The environment for a fresh Django process started by a test."""
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_ALLOW_ASYNC_UNSAFE", *drop}}
    env.update(extra)
    return env


def run_python(args: list[str], *, env: dict[str, str], timeout: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python ARGS` run to its end, its output captured; one still running after `timeout` seconds is made to print
    every thread's stack, with those of the Python processes it started (PYTHONFAULTHANDLER: SIGABRT dumps them),
    and the test fails with them: a hang names its place."""
    command = [sys.executable, *args]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**env, "PYTHONFAULTHANDLER": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        from benchmarks.process_cpu import command_name, started_at, with_descendants

        tree = [(pid, started_at(pid)) for pid in reversed(with_descendants(process.pid))]
        # The process and every Python below it (the scale run's harness), each dumping into the same stderr.
        for pid, _ in tree:
            if pid == process.pid or command_name(pid).startswith("python"):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGABRT)
        try:
            stdout, stderr = process.communicate(timeout=10)  # the dumps, until every holder of the pipes is gone
        except subprocess.TimeoutExpired:
            stdout = stderr = ""  # one still holds them (a browser, a gunicorn): stopped below, then read to the end
        for pid, started in tree:  # nothing the run started outlives the test (and no process that took a pid since)
            if started is not None and started_at(pid) == started:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if process.returncode is None:
            stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(args)} still ran after {timeout} s; its stacks:\n{stderr[-20000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def process_stopped(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    """Stop a process a test started: asked first (SIGTERM), killed if it has not gone after `timeout` seconds. Its
    pipes, if any, are drained, so it never blocks on a full one."""
    process.terminate()
    try:
        process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


@contextmanager
def tasks_in_process() -> Iterator[None]:
    """Nudged tasks run in this process (as in the embedded default), even when REDIS_URL names a broker: for
    tests about what a task does, not about the worker (those start a real one)."""
    from celery._state import _set_task_join_will_block  # type: ignore[attr-defined]  # not in celery-types

    from clinic.celery import app

    # Celery marks "a task is running here" in one flag for the whole process while it applies an eager task, and
    # puts back what it found when it is done. Two threads running eager tasks at once (a live server's requests)
    # can put back each other's mark and leave it set for good; then every later `.delay().get()` in this process
    # refuses with "Never call result.get() within a task!". No task is running as a test begins: clear it.
    _set_task_join_will_block(False)
    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = previous


def logged_in_client(membership: Membership) -> Client:
    client = Client()
    client.force_login(membership.user, backend=MODEL_BACKEND)
    return client


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """With a read replica configured (DATABASE_REPLICA_URL), the test run's replica is default's mirror (settings:
    TEST MIRROR) on default's own server, so the router reads through default, where each test's transaction is.
    (The real replica is tested by tests/clinic/test_replica_pair.py, with a streaming pair of its own.)"""
    from django.conf import settings

    replica = settings.DATABASES.get("replica")
    if replica is not None:
        default = settings.DATABASES["default"]
        replica["ENGINE"], replica["NAME"] = default["ENGINE"], default["NAME"]
        replica["HOST"], replica["PORT"] = default["HOST"], default["PORT"]
        replica["USER"], replica["PASSWORD"] = default["USER"], default["PASSWORD"]
        replica["OPTIONS"] = default["OPTIONS"]


@pytest.fixture(scope="session", autouse=True)
def _clinic_exports_in_a_temporary_folder(tmp_path_factory):
    """Clinic exports (privacy) are written under a folder of the test run, never the project's own."""
    from django.test import override_settings

    with override_settings(PRIVACY_EXPORT_DIR=tmp_path_factory.mktemp("exports")):
        yield


@pytest.fixture
def clinic_a():
    return ClinicFactory(name="Clinic A", slug="clinic-a", internal_ids_enabled=True)


@pytest.fixture
def clinic_b():
    return ClinicFactory(name="Clinic B", slug="clinic-b", time_zone="America/Chicago")


@pytest.fixture
def admin_a(clinic_a):
    return MembershipFactory(clinic=clinic_a, role=Role.ADMIN, **ALL_PERMISSIONS)


@pytest.fixture
def reception_a(clinic_a):
    return MembershipFactory(clinic=clinic_a, role=Role.RECEPTION, perm_manage_appointments=True)


@pytest.fixture
def outsider_b(clinic_b):
    return MembershipFactory(clinic=clinic_b, role=Role.ADMIN, **ALL_PERMISSIONS)


@pytest.fixture
def admin_client_a(admin_a) -> Client:
    return logged_in_client(admin_a)


@pytest.fixture
def reception_client_a(reception_a) -> Client:
    return logged_in_client(reception_a)


@pytest.fixture
def outsider_client(outsider_b) -> Client:
    return logged_in_client(outsider_b)
