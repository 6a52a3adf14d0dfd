"""A real SMTP server in the test process (aiosmtpd), for the tests of email to patients.

`smtp` starts aiosmtpd's Controller on a free loopback port, points Django's SMTP backend at it, and collects
what it accepts. A test can make it refuse a recipient (550: for good; 451: try later), pause inside DATA
(before accepting the message, or after accepting it but before the 250 reaches the client), and run checks
in the server's thread at every DATA (the scale test looks at the database from there).

Only what the server accepted is counted: as a real server would, it keeps a message once it has decided to
answer 250, and a client that vanishes before that leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.celery_worker import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


@dataclass
class Pause:
    """Hold DATA: `entered` is set when the server reaches the point, and it waits there until `release`."""

    accepted_first: bool  # False: before the server accepts the message; True: after, before the 250 goes out
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class SmtpServer:
    """What the tests see of the server: its address, what it received, and its switches."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self.refusals: dict[str, int] = {}
        self.pause: Pause | None = None
        self.data_checks: list[Callable[[], None]] = []
        self.data_count = 0  # every DATA that reached the handler, accepted or not

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]

    def refuse(self, address: str, code: int) -> None:
        """Refuse RCPT TO this address: 550 (a permanent failure) or 451 (a temporary one)."""
        assert code in (550, 451)
        self.refusals[address.lower()] = code

    def accept(self, address: str) -> None:
        self.refusals.pop(address.lower(), None)

    def pause_data(self, *, accepted_first: bool) -> Pause:
        self.pause = Pause(accepted_first=accepted_first)
        return self.pause

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def _keep(self, envelope: Any) -> None:
        content = envelope.original_content or envelope.content
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self._received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:  # noqa: N802
        code = self.server.refusals.get(address.lower())
        if code == 550:
            return f"550 5.1.1 <{address}>: Recipient address rejected: no such user"
        if code == 451:
            return f"451 4.7.1 <{address}>: Recipient address rejected: try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.server.data_count += 1
        for check in self.server.data_checks:
            check()  # in the server's thread, while the client waits for our answer
        pause = self.server.pause
        if pause is not None and not pause.accepted_first:
            # The client is killed while we wait: aiosmtpd cancels this coroutine, and nothing is kept.
            await _wait(pause)
        self.server._keep(envelope)
        if pause is not None and pause.accepted_first:
            await _wait(pause)
        return "250 2.0.0 Ok: queued"


async def _wait(pause: Pause) -> None:
    pause.entered.set()
    while not pause.release.is_set():
        await asyncio.sleep(0.01)


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """An aiosmtpd server on a free loopback port, stopped when the block ends."""
    port = free_port()
    server = SmtpServer("127.0.0.1", port)
    controller = Controller(_Handler(server), hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield server
    finally:
        if server.pause is not None:
            server.pause.release.set()
        controller.stop()


@pytest.fixture(name="smtp")
def smtp_fixture(settings) -> Iterator[SmtpServer]:
    """The SMTP server, with Django's SMTP backend pointed at it."""
    with smtp_server() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = server.host
        settings.EMAIL_PORT = server.port
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 10
        yield server


def smtp_environment(server: SmtpServer) -> dict[str, str]:
    """The settings a worker process needs to send through this server (it reads them from its environment)."""
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": server.host,
        "EMAIL_PORT": str(server.port),
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": "0",
    }
