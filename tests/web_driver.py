"""A web process of its own for tests that need one (its own settings from the environment, its own Celery
producer and cache connections), driven over stdin/stdout: `python -m tests.web_driver`.

Each input line is a JSON command, each output line the JSON answer:
  {"login": <membership pk>}                     -> {"ok": true}
  {"post": "/url/", "data": {...}}               -> {"status": 302, "seconds": 0.04, "location": "..."}
  {"get": "/url/"}                               -> {"status": 200, "seconds": 0.01}
Requests go through Django's test client: the whole middleware stack, the view, the commit and its
on_commit callbacks, timed as the user waits for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent


class WebProcess:
    """The test's side: send a command, read its answer."""

    def __init__(self, process: subprocess.Popen[str], log: Any) -> None:
        self.process, self.log = process, log

    def __call__(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise AssertionError("the web process died:\n" + self.log.read())
        answer: dict[str, Any] = json.loads(line)
        return answer

    def output(self) -> str:
        """What the process logged so far (its stderr)."""
        self.log.seek(0)
        return str(self.log.read())


@contextmanager
def web_process(env: dict[str, str]) -> Iterator[WebProcess]:
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.web_driver"],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            yield WebProcess(process, log)
        finally:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main() -> None:
    """The web process's side."""
    import django

    django.setup()
    from django.test import Client

    from clinic.models import Membership

    client = Client()
    for line in sys.stdin:
        command = json.loads(line)
        if "login" in command:
            membership = Membership.objects.select_related("user").get(pk=command["login"])
            client.force_login(membership.user, backend="django.contrib.auth.backends.ModelBackend")
            answer: dict[str, object] = {"ok": True}
        else:
            started = time.monotonic()
            if "post" in command:
                response = client.post(command["post"], command.get("data", {}))
            else:
                response = client.get(command["get"])
            answer = {
                "status": response.status_code,
                "seconds": time.monotonic() - started,
                "location": response.get("Location", ""),
            }
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
