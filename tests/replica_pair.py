"""A real streaming pair for the read-replica tests: a primary and its hot standby of the test's own.

Made with `initdb` and `pg_basebackup -R` (PostgreSQL 15's binaries) in a temporary folder owned by the `postgres`
system user, each server on a free loopback port, the primary with wal_level=replica and replication allowed from
127.0.0.1 (trust), the standby with hot_standby=on. Started once per test session that asks for it, stopped and
deleted at the end. The shared server on 5432 allows no replication connections, so it is never used here.

Under CI=true a pair that cannot be started fails the test; elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import in_ci

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
SYSTEM_USER = "postgres"


class PairError(RuntimeError):
    pass


@dataclass(frozen=True)
class ReplicaPair:
    primary_port: int
    replica_port: int
    root: Path  # the servers' folders (primary/, replica/) and logs
    database: str = "clinic"

    def url(self, port: int) -> str:
        return f"postgres://postgres@127.0.0.1:{port}/{self.database}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port)

    def connect(self, port: int, dbname: str | None = None):  # -> psycopg.Connection
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname=dbname or self.database, autocommit=True
        )

    def primary(self):
        return self.connect(self.primary_port)

    def replica(self):
        return self.connect(self.replica_port)

    @contextlib.contextmanager
    def replica_stopped(self) -> Iterator[None]:
        """The standby is shut down (connections to its port are refused) until the block ends; then it starts again,
        resumes streaming from the primary and catches up."""
        as_postgres(BIN / "pg_ctl", "-D", self.root / "replica", "-m", "fast", "-w", "stop", timeout=60)
        try:
            yield
        finally:
            as_postgres(BIN / "pg_ctl", "-D", self.root / "replica", "-l", self.root / "replica.log", "-w", "start")
            wait_ready(self.replica_port, standby=True)
            self.caught_up()

    def caught_up(self, timeout: float = 30.0) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        with self.primary() as primary:
            target = primary.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with self.replica() as replica:
            while True:
                behind = replica.execute(
                    "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn()) > 0", [str(target)]
                ).fetchone()[0]
                if not behind:
                    return
                if time.monotonic() > deadline:
                    raise PairError("the replica did not catch up")
                time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def as_postgres(*command: str | Path, timeout: float = 120) -> None:
    """Run a PostgreSQL binary as the postgres system user (the servers refuse to run as root)."""
    args = [str(part) for part in command]
    if os.geteuid() == 0:
        args = ["runuser", "-u", SYSTEM_USER, "--", *args]
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise PairError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def configure(data: Path, port: int, sockets: Path) -> None:
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{sockets}'\n"
            "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n"
            # A throwaway pair: durability is not what is tested, speed is welcome.
            "fsync = off\nfull_page_writes = off\nmax_connections = 40\n"
            "shared_buffers = 32MB\n"
        )


def wait_ready(port: int, *, standby: bool, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres") as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone() == (standby,):
                    return
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise PairError(f"the server on port {port} did not become ready")
        time.sleep(0.1)


def start_pair(root: Path) -> ReplicaPair:
    import psycopg

    for binary in ("initdb", "pg_ctl", "pg_basebackup"):
        if not (BIN / binary).exists():
            raise PairError(f"{BIN / binary} is missing (Debian: postgresql-15)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise PairError("runuser is missing: the servers must run as the postgres system user")
    pair = ReplicaPair(primary_port=free_port(), replica_port=free_port(), root=root)
    primary, replica = root / "primary", root / "replica"
    as_postgres(BIN / "initdb", "-D", primary, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    configure(primary, pair.primary_port, root)
    with (primary / "pg_hba.conf").open("a") as hba:
        hba.write("\nhost replication all 127.0.0.1/32 trust\n")
    as_postgres(BIN / "pg_ctl", "-D", primary, "-l", root / "primary.log", "-w", "start")
    wait_ready(pair.primary_port, standby=False)
    with psycopg.connect(host="127.0.0.1", port=pair.primary_port, user="postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {pair.database}")
    as_postgres(
        BIN / "pg_basebackup",
        "-h",
        "127.0.0.1",
        "-p",
        str(pair.primary_port),
        "-U",
        "postgres",
        "-D",
        replica,
        "-R",
        "-X",
        "stream",
        "--checkpoint=fast",
        "--no-sync",
    )
    configure(replica, pair.replica_port, root)  # later lines win: the standby's own port
    as_postgres(BIN / "pg_ctl", "-D", replica, "-l", root / "replica.log", "-w", "start")
    wait_ready(pair.replica_port, standby=True)
    return pair


def stop_pair(root: Path) -> None:
    for name in ("replica", "primary"):
        if (root / name / "postmaster.pid").exists():
            with contextlib.suppress(PairError):
                as_postgres(BIN / "pg_ctl", "-D", root / name, "-m", "immediate", "-w", "stop", timeout=60)


@pytest.fixture(scope="session")
def replica_pair() -> Iterator[ReplicaPair]:
    root = Path(tempfile.mkdtemp(prefix="replica-pair-"))
    try:
        user = pwd.getpwnam(SYSTEM_USER)
        if os.geteuid() == 0:
            os.chown(root, user.pw_uid, user.pw_gid)
        pair = start_pair(root)
    except (PairError, KeyError, OSError, subprocess.TimeoutExpired) as error:
        logs = "".join(
            f"\n--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in sorted(root.glob("*.log"))
        )
        stop_pair(root)
        shutil.rmtree(root, ignore_errors=True)
        message = f"could not start a streaming pair: {error}{logs}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield pair
    finally:
        stop_pair(root)
        shutil.rmtree(root, ignore_errors=True)
