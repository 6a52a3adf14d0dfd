"""Backup and restore (issue 24 item 5): the README's commands dump this test database and restore it into a NEW
database, and every table has the same number of rows in both.

On PostgreSQL (CI's first run): pg_dump -Fc and pg_restore --clean --if-exists --no-owner, the flags the README's
docker compose commands use, with a database of the test's own made for the restore and dropped afterwards. On
SQLite (the embedded default, CI's second run) the same check runs on the README's SQLite backup (sqlite3's online
backup, `.backup`): never skipped. The test is transactional, so the rows are committed when pg_dump reads them.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.factories import ClinicFactory
from tests.privacy.clinic_data import clinic_with_data

pytestmark = pytest.mark.django_db(transaction=True)

# The README's flags ("Backup and restore"): a custom-format dump, restored over whatever is there.
PG_DUMP_FLAGS = ["--format=custom", "--no-owner"]
PG_RESTORE_FLAGS = ["--clean", "--if-exists", "--no-owner"]
README = Path(settings.BASE_DIR) / "README.md"


def _pg_env() -> dict[str, str]:
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(PGHOST=db["HOST"] or "localhost", PGPORT=str(db["PORT"] or 5432), PGUSER=db["USER"] or "postgres")
    if db["PASSWORD"]:
        env["PGPASSWORD"] = db["PASSWORD"]
    return env


def _binary(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is not installed (Debian: postgresql-client)"
    return found


@contextmanager
def _new_postgres_database(name: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    db = connection.settings_dict
    params = {
        "host": db["HOST"] or "localhost",
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "password": db["PASSWORD"] or None,
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**params) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(**params) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _postgres_counts(dbname: str) -> dict[str, int]:
    import psycopg
    from psycopg import sql

    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "localhost", port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"] or None,
        dbname=dbname,
    ) as conn:  # fmt: skip
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
            )
        ]
        counts = {}
        for table in tables:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            assert row is not None
            counts[table] = int(row[0])
        return counts


def _sqlite_counts(path: str) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}


def test_a_dump_restored_into_a_new_database_has_every_tables_rows(tmp_path):
    clinic_with_data(ClinicFactory(name="Backed up"), "Backup")
    clinic_with_data(ClinicFactory(name="Also backed up"), "Other")
    source = connection.settings_dict["NAME"]
    if connection.vendor == "postgresql":
        dump = tmp_path / "clinic.dump"
        env = _pg_env()
        subprocess.run(
            [_binary("pg_dump"), *PG_DUMP_FLAGS, "--dbname", source, "--file", str(dump)],
            env=env, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        assert dump.stat().st_size > 0
        with _new_postgres_database(f"{source}_restored_{os.getpid()}") as restored:
            subprocess.run(
                [_binary("pg_restore"), *PG_RESTORE_FLAGS, "--dbname", restored, str(dump)],
                env=env, check=True, capture_output=True, timeout=300,
            )  # fmt: skip
            before, after = _postgres_counts(source), _postgres_counts(restored)
    else:
        copy = tmp_path / "clinic-backup.sqlite3"
        with sqlite3.connect(source) as live, sqlite3.connect(copy) as backup:
            live.backup(backup)  # what the sqlite3 shell's ".backup" does
        before, after = _sqlite_counts(source), _sqlite_counts(str(copy))
    assert after == before
    # The comparison compared real rows: the tables of both clinics' data are not empty.
    for table in ("clinic_clinic", "patients_patient", "scheduling_appointment", "clinic_auditevent", "auth_user"):
        assert before[table] >= 2, table
    assert len(before) >= 60 and sum(before.values()) > 100


def test_the_readme_gives_these_commands_with_the_compose_service_names():
    text = README.read_text()
    section = text[text.index("## Backup and restore") :]
    assert "docker compose exec -T db pg_dump" in section and "docker compose exec -T db pg_restore" in section
    for flag in PG_DUMP_FLAGS + PG_RESTORE_FLAGS:
        assert flag in section, flag
    assert "manage.py clinic_export" in section
