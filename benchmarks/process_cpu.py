"""CPU time of processes on this machine, read from /proc (Linux): what a benchmark cost the database server and the
web server, beside the wall time it measures. Django-free. Every reader returns None once the process has gone (or
where /proc cannot tell)."""

from __future__ import annotations

import os
from pathlib import Path


def task_cpu_ns(pid: int | str) -> int | None:
    """CPU a single-threaded process (a PostgreSQL backend) has had so far, in ns: the first field of
    /proc/PID/schedstat, to the nanosecond, but its main thread's only."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def process_cpu_ns(pid: int | str) -> int | None:
    """CPU a process has had so far, all its threads (gunicorn's gthread workers serve requests in threads), in ns:
    utime + stime of /proc/PID/stat, counted in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks = int(fields[11]) + int(fields[12])  # the 14th and 15th fields, counted from after the name
    except (OSError, ValueError, IndexError):
        return None
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def started_at(pid: int | str) -> int | None:
    """When a process started (clock ticks after boot, /proc/PID/stat's 22nd field): with its pid, which process
    this is (a pid is reused once its process has gone). None once it has gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def with_descendants(pid: int) -> list[int]:
    """The process and every process below it (a server's workers)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        found.append(parent)
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def named_pids(name: str) -> list[str]:
    """Every process on this machine whose command name is `name` ("postgres")."""
    return [comm.parent.name for comm in Path("/proc").glob("[0-9]*/comm") if command_name(comm.parent.name) == name]


def command_name(pid: int | str) -> str:
    """A process's command name (/proc/PID/comm: "postgres", "node-MainThread"), "" once it has gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
