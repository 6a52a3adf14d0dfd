"""The large-database builder and the measure against it (benchmarks/scale.py), end to end at the tiny size.

Both need PostgreSQL (COPY): on the suite's server when DATABASE_URL is PostgreSQL, else on the one at
127.0.0.1:5432 (the SQLite run too); databases of this module's own, made here and dropped afterwards. Without a
reachable server the tests skip outside CI and fail under CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import psycopg
import pytest
from psycopg import sql

from benchmarks import scale
from benchmarks.scale import row
from tests.conftest import run_python, subprocess_env

PROJECT_DIR = Path(__file__).resolve().parents[1]
LOCAL_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
BENCH_ENV = ("DATABASE_URL", "BENCH_DATABASE_URL", "REDIS_URL", "BENCH_REDIS_URL", "BENCH_SIZE")
pytestmark = pytest.mark.xdist_group("scale")

# Each model's rows per clinic at the tiny size (the builder's promise), with the clinic's own share.
TINY = scale.TINY


def server_and_prefix() -> tuple[str, str]:
    """The PostgreSQL server to use (the suite's when it is PostgreSQL) and a prefix for this module's databases."""
    url = os.environ.get("DATABASE_URL", "")
    if url and dj_database_url.parse(url)["ENGINE"] == "django.db.backends.postgresql":
        parts = urlsplit(url)
        return parts._replace(path="/postgres", query="").geturl(), parts.path.lstrip("/") + f"_scale_{os.getpid()}"
    return LOCAL_SERVER, f"test_scale_{os.getpid()}"


@dataclass(frozen=True)
class Databases:
    server: str
    prefix: str

    def url(self, suffix: str) -> str:
        return urlsplit(self.server)._replace(path=f"/{self.prefix}_{suffix}").geturl()


@pytest.fixture(scope="module")
def databases() -> Iterator[Databases]:
    server, prefix = server_and_prefix()
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the scale builder needs PostgreSQL at {server}, unreachable: {exc}")
        pytest.skip(f"no PostgreSQL at {server} for the scale builder: {exc}")
    dbs = Databases(server, prefix)
    # One migrated, empty database, the template of the others: migrate runs once, not per build.
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(f"{prefix}_empty")))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"{prefix}_empty")))
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=PROJECT_DIR,
        env=subprocess_env(drop=BENCH_ENV, DATABASE_URL=dbs.url("empty")),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr[-5000:]
    yield dbs
    with psycopg.connect(server, autocommit=True) as admin:
        names = [
            row[0] for row in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"])
        ]
        for name in names:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_scale(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = run_python(
        ["-m", "benchmarks.scale", *args], cwd=PROJECT_DIR, env=subprocess_env(drop=BENCH_ENV), timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-5000:]
    return done


def copy_of_empty(databases: Databases, suffix: str) -> str:
    """A new database, migrated and empty (a copy of the template); its URL."""
    with psycopg.connect(databases.server, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(f"{databases.prefix}_{suffix}"), sql.Identifier(f"{databases.prefix}_empty")
            )
        )
    return databases.url(suffix)


def build_tiny(databases: Databases, suffix: str, seed: int = scale.DEFAULT_SEED) -> dict[str, Any]:
    url = copy_of_empty(databases, suffix)
    done = run_scale("build", "--database-url", url, "--size", "tiny", "--seed", str(seed))
    meta: dict[str, Any] = json.loads(done.stdout)
    return meta


def table_digests(url: str, tables: list[str]) -> dict[str, str]:
    """Each table's rows, in id order, as one md5: equal digests, equal rows."""
    with psycopg.connect(url) as conn:
        return {
            table: row(
                conn,
                sql.SQL("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {} t").format(
                    sql.Identifier(table)
                ),
            )[0]
            for table in tables
        }


def schema_of(url: str, tables: list[str]) -> set[tuple[str, str]]:
    """The tables' indexes and constraints, by name and definition."""
    with psycopg.connect(url) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)", [tables]
        ).fetchall()
        constraints = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) || CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END"
            " FROM pg_constraint WHERE conrelid = ANY(%s::regclass[])",
            [tables],
        ).fetchall()
    return {(str(name), str(definition)) for name, definition in [*indexes, *constraints]}


@pytest.fixture(scope="module")
def built(databases: Databases) -> dict[str, Any]:
    return build_tiny(databases, "big")


@pytest.fixture(scope="module")
def measured(databases: Databases, built: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The measure on a copy of the built database (the other tests see it as built)."""
    with psycopg.connect(databases.server, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(f"{databases.prefix}_measured"), sql.Identifier(f"{databases.prefix}_big")
            )
        )
    copy_of_empty(databases, "small")
    output = tmp_path_factory.mktemp("scale") / "results.json"
    output.write_text(json.dumps({"cases": {"other_case": {"median_s": 1.0}}, "env": {}}))
    run_scale(
        "measure",
        "--database-url",
        databases.url("measured"),
        "--small-database-url",
        databases.url("small"),
        "--size",
        "tiny",
        "--runs",
        "1",
        "--output",
        str(output),
        timeout=1500,
    )
    data: dict[str, Any] = json.loads(output.read_text())
    return data


def test_sizes_scale_the_clinics_and_keep_each_clinic_whole() -> None:
    assert scale.size_from("full") == scale.FULL
    assert scale.FULL.total_appointments == 10_000_000
    assert scale.FULL.clinics * scale.FULL.practitioners == 20_000
    assert scale.FULL.clinics * scale.FULL.patients == 2_000_000
    twentieth = scale.size_from("1/20")
    assert twentieth == scale.size_from("0.05")
    assert (twentieth.clinics, twentieth.appointments) == (100, scale.FULL.appointments)
    for wrong in ("0", "2", "big", "1/0"):
        with pytest.raises(Exception, match="--size"):
            scale.size_from(wrong)


def test_build_fills_every_model_as_the_size_promises(built: dict[str, Any], databases: Databases) -> None:
    size = TINY
    slots_per_practitioner = {  # a session every third week for three years, AM or PM by turns
        p: len(range(p // 5 % scale.EVERY_WEEKS, scale.WEEKS, scale.EVERY_WEEKS)) * len(scale.TEMPLATES[p % 2][2])
        for p in range(size.practitioners)
    }
    expected = {
        "clinic_clinic": size.clinics,
        "clinic_practitioner": size.clinics * size.practitioners,
        "patients_patient": size.clinics * size.patients,
        "scheduling_appointment": size.total_appointments,
        "scheduling_slot": size.clinics * sum(slots_per_practitioner.values()),
        "scheduling_allocation": size.clinics * size.practitioners,
        "scheduling_otherevent": size.clinics * size.practitioners * 9,
        "calendar_sync_feedsubscription": size.clinics,
        "calendar_sync_feeddocument": size.clinics,
        "patients_internalidcounter": size.clinics,
    }
    with psycopg.connect(databases.url("big")) as conn:
        counts = {
            table: row(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))[0] for table in expected
        }
        assert counts == expected
        assert built["rows"]["scheduling_appointment"] == size.total_appointments
        for table in ("notifications_message", "calendar_sync_feedevent", "scheduling_session"):
            assert built["rows"][table] > 0, table
        one = conn.execute
        # Booked counts are the live appointments; nothing over capacity; statuses as the build's present says.
        assert one(
            "SELECT count(*) FROM scheduling_slot s WHERE booked_count <> (SELECT count(*) FROM"
            " scheduling_appointment a WHERE a.slot_id = s.id AND a.status <> 'cancelled')"
        ).fetchone() == (0,)
        assert row(conn, "SELECT sum(booked_count) FROM scheduling_slot")[0] == round(
            size.total_appointments * scale.LIVE_SHARE
        )
        statuses: dict[str, int] = dict(
            one("SELECT status, count(*) FROM scheduling_appointment GROUP BY 1").fetchall()
        )
        assert set(statuses) == {"booked", "completed", "did_not_attend", "cancelled"}
        assert one(
            "SELECT count(*) FROM scheduling_appointment WHERE (status = 'booked') <> (starts_at >= %s)"
            " AND status <> 'cancelled'",
            [scale.PRESENT],
        ).fetchone() == (0,)
        # Same-clinic references along the chain appointment -> slot -> session -> practitioner, and patient.
        assert one(
            "SELECT count(*) FROM scheduling_appointment a JOIN scheduling_slot s ON s.id = a.slot_id"
            " JOIN scheduling_session se ON se.id = s.session_id JOIN patients_patient p ON p.id = a.patient_id"
            " JOIN clinic_practitioner pr ON pr.id = a.practitioner_id WHERE a.clinic_id <> s.clinic_id"
            " OR s.clinic_id <> se.clinic_id OR p.clinic_id <> a.clinic_id OR pr.clinic_id <> a.clinic_id"
            " OR se.practitioner_id <> a.practitioner_id OR a.starts_at <> s.starts_at"
            " OR a.slot_type_id IS DISTINCT FROM s.slot_type_id"
        ).fetchone() == (0,)
        assert one(
            "SELECT count(*) FROM notifications_message m JOIN scheduling_appointment a ON a.id = m.appointment_id"
            " WHERE m.clinic_id <> a.clinic_id OR m.patient_id <> a.patient_id OR m.status <> 'sent'"
        ).fetchone() == (0,)
        # Every foreign key is back and valid (they were dropped for the load and validated when made again).
        assert one("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated").fetchone() == (0,)
        # The sequences carry on after the built rows.
        clinic_max = row(conn, "SELECT max(id) FROM clinic_clinic")[0]
        assert row(conn, "SELECT last_value FROM clinic_clinic_id_seq")[0] == clinic_max
        # The clinic ids leave the gap halfway.
        ids = [row[0] for row in one("SELECT id FROM clinic_clinic ORDER BY id")]
        half = size.clinics // 2
        assert ids == [*range(1, half + 1), *range(half + 1 + scale.CLINIC_GAP, size.clinics + 1 + scale.CLINIC_GAP)]
        assert built["clinic_gap"] == [half + 1, half + scale.CLINIC_GAP]


def test_build_is_reproducible_from_its_seed(built: dict[str, Any], databases: Databases) -> None:
    tables = [
        "clinic_clinic",
        "patients_patient",
        "scheduling_session",
        "scheduling_slot",
        "scheduling_appointment",
        "notifications_message",
        "calendar_sync_feeddocument",
        "calendar_sync_feedevent",
    ]
    again = build_tiny(databases, "again")
    assert again["rows"] == built["rows"]
    first = table_digests(databases.url("big"), tables)
    assert table_digests(databases.url("again"), tables) == first
    other = build_tiny(databases, "other", seed=scale.DEFAULT_SEED + 1)
    assert other["rows"]["scheduling_appointment"] == built["rows"]["scheduling_appointment"]
    differs = table_digests(databases.url("other"), tables)
    assert all(differs[table] != first[table] for table in tables)


def test_build_refuses_a_database_with_clinics_in_it(built: dict[str, Any], databases: Databases) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "build", "--database-url", databases.url("big"), "--size", "tiny"],
        cwd=PROJECT_DIR,
        env=subprocess_env(drop=BENCH_ENV),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert "already holds clinics" in done.stderr


def test_measure_runs_each_case_with_its_clinics_midway_and_records_the_ratios(
    measured: dict[str, Any], databases: Databases
) -> None:
    assert measured["cases"]["other_case"] == {"median_s": 1.0}  # the file's other entries stay
    assert measured["env"] == {}  # the file's env is the harness's: the entry carries its own when and where
    entry = measured["cases"]["scale"]
    assert (entry["built_clinics"], entry["built_appointments"]) == (TINY.clinics, TINY.total_appointments)
    assert entry["small_database"] == f"{databases.prefix}_small"
    assert entry["appointments"] > TINY.total_appointments  # the built ones and the cases' own
    half = TINY.clinics // 2
    # The cases' clinics (and the demo's) took ids in the gap: as many built clinics below as above them.
    assert entry["clinics_below_probes"] == half and entry["clinics_above_probes"] == TINY.clinics - half
    assert entry["probe_clinics"] > 2  # the two demo clinics, and the cases' own
    assert half < entry["probe_clinic_first_id"] <= entry["probe_clinic_last_id"] < half + scale.CLINIC_GAP
    ratios = []
    for name in scale.SCALE_CASES:
        ratio = entry[f"{name}_ratio_to_small"]
        assert ratio > 0, name
        ratios.append(ratio)
        assert entry[f"{name}_queries"] > 0, name  # equal on both databases (else _large and _small are recorded)
    assert entry["worst_ratio_to_small"] == max(ratios)
    assert entry["queries_equal"] is True
    # The cases built and cleared their own clinics only: the built ones are all still there, whole.
    with psycopg.connect(databases.url("measured")) as conn:
        assert conn.execute(
            "SELECT count(*) FROM scheduling_appointment WHERE clinic_id IN"
            " (SELECT id FROM clinic_clinic WHERE slug LIKE 'scale-%')"
        ).fetchone() == (TINY.total_appointments,)
    # The small database has the same schema as the built one (indexes and constraints made again as migrated).
    tables = ["scheduling_appointment", "scheduling_slot", "patients_patient", "notifications_message"]
    assert schema_of(databases.url("measured"), tables) == schema_of(databases.url("small"), tables)
