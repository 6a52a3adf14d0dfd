"""Debian's PgBouncer in a subprocess, in transaction pooling, in front of the PostgreSQL on 127.0.0.1:5432.

Each test's PgBouncer runs docker-compose's configuration (deploy/pgbouncer/pgbouncer.ini) with its own server,
port and authentication over it, from a temporary folder: a free loopback port, trust for 127.0.0.1 (as the
shared server does). `default_pool_size` is small on purpose: many clients share few server
connections, so anything that leans on session state shows.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.celery_worker import free_port
from tests.conftest import in_ci, process_stopped

POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER = "127.0.0.1", 5432, "postgres"
DEPLOY_INI = Path(__file__).resolve().parent.parent / "deploy" / "pgbouncer" / "pgbouncer.ini"


def pgbouncer_binary() -> str:
    """Debian installs it in /usr/sbin, which a user's PATH may leave out. Missing: a failure in CI (.ci/run
    installs it), a skip with the reason elsewhere."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        message = "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found


def postgres_or_skip() -> None:
    try:
        psycopg.connect(admin_url(), connect_timeout=3).close()
    except psycopg.Error as error:
        message = f"PostgreSQL is not reachable at {POSTGRES_HOST}:{POSTGRES_PORT} as {POSTGRES_USER} ({error})"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


def admin_url(database: str = "postgres") -> str:
    return f"postgres://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"


@dataclass(frozen=True)
class Pooler:
    port: int
    database: str
    log_path: Path

    def url(self, database: str | None = None) -> str:
        """A client's URL: PgBouncer's port, the database's name."""
        return f"postgres://{POSTGRES_USER}@127.0.0.1:{self.port}/{database or self.database}"

    def show(self, what: str) -> list[dict[str, object]]:
        """A SHOW command of PgBouncer's admin console (POOLS, CLIENTS, SERVERS, ...), as rows of name -> value."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True) as admin, admin.cursor() as cursor:
            cursor.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def pgbouncer(database: str, *, pool_size: int = 4, max_clients: int = 200) -> Iterator[Pooler]:
    """PgBouncer (pool_mode = transaction) for `database` on 127.0.0.1:5432, stopped when the block ends."""
    binary = pgbouncer_binary()
    postgres_or_skip()
    folder = Path(tempfile.mkdtemp(prefix="clinic-pgbouncer-"))
    port = free_port()
    log_path = folder / "pgbouncer.log"
    (folder / "userlist.txt").write_text(f'"{POSTGRES_USER}" ""\n')
    # docker-compose's [pgbouncer] settings (pool_mode = transaction, its timeouts), with this test's port,
    # authentication and pool size over them; its one database is this test's, on the shared server.
    deployed = configparser.ConfigParser(interpolation=None)
    deployed.read(DEPLOY_INI)
    options = {
        **deployed["pgbouncer"],
        "listen_addr": "127.0.0.1",
        "listen_port": str(port),
        "unix_socket_dir": "",
        "auth_type": "trust",
        "auth_file": str(folder / "userlist.txt"),
        "admin_users": POSTGRES_USER,
        "default_pool_size": str(pool_size),
        "reserve_pool_size": "0",
        "max_client_conn": str(max_clients),
        "logfile": str(log_path),
        # PgBouncer refuses to run as root: it switches to this user (Debian's package runs it as postgres).
        **({"user": POSTGRES_USER} if os.geteuid() == 0 else {}),
    }
    server = f"host={POSTGRES_HOST} port={POSTGRES_PORT} dbname={database} user={POSTGRES_USER} timezone=UTC"
    settings = ["[databases]", f"{database} = {server}", "[pgbouncer]", *(f"{k} = {v}" for k, v in options.items())]
    (folder / "pgbouncer.ini").write_text("\n".join(settings) + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, user=POSTGRES_USER)
        for path in folder.iterdir():
            shutil.chown(path, user=POSTGRES_USER)
    process = subprocess.Popen(
        [binary, str(folder / "pgbouncer.ini")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    pooler = Pooler(port=port, database=database, log_path=log_path)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                psycopg.connect(pooler.url(), connect_timeout=2).close()
                break
            except psycopg.Error:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"PgBouncer did not start:\n{pooler.log()}")
                time.sleep(0.1)
        yield pooler
    finally:
        process_stopped(process, timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
