"""Real HTTP for the benchmarks: a gunicorn server in a subprocess, and clients in threads that start together.

Django-free apart from what the server imports itself: the cases build the requests and judge the responses.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TypeVar

import requests

from benchmarks.process_cpu import named_pids, process_cpu_ns, with_descendants

T = TypeVar("T")

PROJECT_DIR = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
REQUEST_TIMEOUT_S = 120.0


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the benchmark process dies, however it dies (Linux only)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class GunicornServer:
    """``gunicorn <app>`` (gthread workers) on a socket bound here, 127.0.0.1 on a free port, so nothing races for it.

    ``start`` returns once a worker has answered ``ready_path``; ``stop`` is idempotent and also runs at exit, and
    the server gets SIGTERM if this process dies without running it.
    """

    def __init__(
        self,
        app: str,
        *,
        workers: int,
        threads: int,
        env: Mapping[str, str],
        ready_path: str,
        keep_alive_s: int = 75,
    ) -> None:
        self.app = app
        self.workers = workers
        self.threads = threads
        self.env = dict(env)
        self.ready_path = ready_path
        self.keep_alive_s = keep_alive_s
        self.base_url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> str:
        if self.process is not None:
            raise RuntimeError("the server is already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1024)
            port = listener.getsockname()[1]
            fd, name = tempfile.mkstemp(prefix="clinic-bench-gunicorn-", suffix=".log")
            self._log = os.fdopen(fd, "wb")
            self.log_path = Path(name)
            command = [
                sys.executable,
                "-m",
                "gunicorn",
                self.app,
                f"--bind=fd://{listener.fileno()}",
                f"--workers={self.workers}",
                "--worker-class=gthread",
                f"--threads={self.threads}",
                f"--keep-alive={self.keep_alive_s}",  # longer than any pause between a client's requests
                "--timeout=120",
                "--graceful-timeout=10",
                "--log-level=warning",
                "--error-logfile=-",
            ]
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
                start_new_session=True,  # the terminal's Ctrl-C reaches us, and we stop it in order
                preexec_fn=_die_with_parent,  # no client threads exist yet
            )
        finally:
            listener.close()  # the server holds its own copy
        atexit.register(self.stop)
        self.base_url = f"http://127.0.0.1:{port}"
        self._wait_until_ready()
        return self.base_url

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited during start-up; see {self.log_path}:\n{self.log_tail()}")
            try:
                response = requests.get(self.base_url + self.ready_path, timeout=READY_TIMEOUT_S)
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                continue
            if response.status_code != 200:
                raise RuntimeError(f"GET {self.ready_path} returned {response.status_code}:\n{self.log_tail()}")
            return

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        process, self.process = self.process, None
        atexit.unregister(self.stop)
        if process is not None and process.poll() is None:
            process.terminate()  # the master stops its workers gracefully
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: the master and its workers only
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.log_path is not None and self.log_path.exists():
            if self.log_path.stat().st_size == 0:
                self.log_path.unlink()
            else:
                print(f"gunicorn's log (warnings and errors) is kept in {self.log_path}", file=sys.stderr)


# --- Clients ----------------------------------------------------------------------------


def run_clients(clients: Sequence[Callable[[], list[T]]]) -> tuple[list[list[T]], float, float]:
    """Run each client in a thread of its own, all released at once.

    Returns their results, the wall time from the start to the last client's end, and the CPU time this process
    (the clients) used meanwhile: on a small machine the clients take CPU from the server.
    """
    start_line = threading.Barrier(len(clients) + 1, timeout=60)
    finished: list[float] = [0.0] * len(clients)

    def client(index: int) -> list[T]:
        start_line.wait()
        try:
            return clients[index]()
        finally:
            finished[index] = time.perf_counter()

    with ThreadPoolExecutor(max_workers=len(clients), thread_name_prefix="bench-client") as pool:
        futures = [pool.submit(client, index) for index in range(len(clients))]
        start_line.wait()
        start, cpu_start = time.perf_counter(), time.process_time()
        results = [future.result() for future in futures]
        cpu_s = time.process_time() - cpu_start
    return results, max(finished) - start, cpu_s


CpuReading = tuple[dict[int, int], dict[int, int]]  # CPU so far in ns by pid: the server's processes, PostgreSQL's


def cpu_of_server_and_database(server_pid: int | None) -> CpuReading:
    """CPU so far, in ns by pid, of a server process with its children (gunicorn's workers), and of every
    PostgreSQL process on this machine (empty where /proc cannot tell). `cpu_spent` turns two readings into what
    the time between them cost the server and the database, provided nothing else runs meanwhile."""
    if not Path("/proc/self/stat").exists():
        return {}, {}
    server = read_cpu(with_descendants(server_pid)) if server_pid else {}
    return server, read_cpu(named_pids("postgres"))


def read_cpu(pids: Iterable[int | str]) -> dict[int, int]:
    found = {}
    for pid in pids:
        cpu_ns = process_cpu_ns(pid)
        if cpu_ns is not None:
            found[int(pid)] = cpu_ns
    return found


def cpu_spent(before: dict[int, int], after: dict[int, int]) -> int:
    """The CPU, in ns, the processes of ``after`` had since ``before``: one that started meanwhile counts whole;
    one that exited meanwhile (another test's backend, under the suite's parallel workers) drops out instead of
    taking its earlier CPU off the sum, so the figure is never negative."""
    return sum(max(cpu_ns - before.get(pid, 0), 0) for pid, cpu_ns in after.items())


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0.95: p95), interpolated between the nearest ranks."""
    if not values:
        raise ValueError("no values")
    if len(values) == 1:
        return values[0]
    if fraction == 0.5:
        return statistics.median(values)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[round(fraction * 100) - 1]
