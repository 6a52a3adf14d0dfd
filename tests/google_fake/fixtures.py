"""pytest fixtures for the fake. Register them with ``pytest_plugins = ["tests.google_fake.fixtures"]`` in the
root conftest (pytest refuses ``pytest_plugins`` in nested conftests), or import the helpers directly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .receiver import NotificationReceiver
from .server import FakeGoogle


@pytest.fixture
def fake_google() -> Iterator[FakeGoogle]:
    """A FakeGoogle of its own (own port, own state) for one test; fails the test on any internal error."""
    with FakeGoogle() as fake:
        yield fake
    assert not fake.internal_errors, "the fake Google failed internally:\n" + "\n".join(fake.internal_errors)


@pytest.fixture
def push_receiver() -> Iterator[NotificationReceiver]:
    with NotificationReceiver() as receiver:
        yield receiver
