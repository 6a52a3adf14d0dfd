"""A webhook receiver on 127.0.0.1 that records Google's push notifications, for tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.local_http import LocalServer


@dataclass
class ReceivedNotification:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def channel_id(self) -> str | None:
        return self.headers.get("x-goog-channel-id")

    @property
    def resource_state(self) -> str | None:
        return self.headers.get("x-goog-resource-state")

    @property
    def message_number(self) -> int:
        return int(self.headers.get("x-goog-message-number", "0"))


class NotificationReceiver:
    """Collects POSTs; ``wait_for(n)`` blocks (with a timeout) until ``n`` have arrived."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[ReceivedNotification] = []
        self._condition = threading.Condition()
        self._server: LocalServer | None = None
        self.url = ""

    def start(self) -> NotificationReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the base class's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._condition:
                    receiver.received.append(ReceivedNotification(self.path, headers, body))
                    receiver._condition.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = LocalServer(Handler, name="push-receiver")
        self.url = f"{self._server.url}/notifications"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> NotificationReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedNotification]:
        """The first ``count`` notifications; raises AssertionError if they don't arrive in time."""
        with self._condition:
            arrived = self._condition.wait_for(lambda: len(self.received) >= count, timeout)
            if not arrived:
                raise AssertionError(f"expected {count} notifications within {timeout}s, got {len(self.received)}")
            return list(self.received[:count])
