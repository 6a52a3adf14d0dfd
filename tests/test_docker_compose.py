"""docker-compose.yml, read as Compose reads it (no Docker engine runs here): the services, their scaling and
health checks, web, worker and beat through PgBouncer with DATABASE_POOLER on, migrations straight to PostgreSQL,
and the order they start in. tests/test_pgbouncer_topology.py runs the same topology natively."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import dj_database_url
import pytest
import yaml
from django.conf import settings

from tests.conftest import subprocess_env

BASE_DIR = Path(settings.BASE_DIR)
COMPOSE = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())  # PyYAML resolves the `<<` merge keys
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
POOLED = ("web", "worker", "beat")
VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def expanded(value: str, given: dict[str, str]) -> str:
    """Compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME:?error} from `given`."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if given.get(name):
            return given[name]
        if kind == "?":
            raise AssertionError(f"{name} is required: {rest}")
        return rest or ""

    return VARIABLE.sub(one, value)


def environment(service: str, **given: str) -> dict[str, str]:
    return {name: expanded(str(value), given) for name, value in SERVICES[service].get("environment", {}).items()}


def test_it_has_the_services_of_the_topology():
    assert set(SERVICES) == {"db", "redis", "pgbouncer", "migrate", "web", "worker", "beat"}


def test_web_and_worker_run_three_replicas_and_beat_one():
    assert SERVICES["web"]["deploy"]["replicas"] == 3
    assert SERVICES["worker"]["deploy"]["replicas"] == 3
    assert SERVICES["beat"]["deploy"]["replicas"] == 1
    # Each web replica gets a host port of its own: the range holds them all.
    (ports,) = SERVICES["web"]["ports"]
    first, last = map(int, re.fullmatch(r"(\d+)-(\d+):8000", ports).groups())
    assert last - first + 1 == SERVICES["web"]["deploy"]["replicas"]


@pytest.mark.parametrize("service", ["db", "redis", "pgbouncer", "web", "worker"])
def test_every_long_running_service_has_a_health_check(service):
    check = SERVICES[service]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) >= 2
    assert check["interval"] and check["retries"] >= 3


def test_the_health_checks_ask_the_right_things():
    assert "/healthz" in " ".join(SERVICES["web"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(SERVICES["worker"]["healthcheck"]["test"])
    pgbouncer_check = " ".join(SERVICES["pgbouncer"]["healthcheck"]["test"])
    assert "-p 6432" in pgbouncer_check and "SELECT 1" in pgbouncer_check  # a query through the pool


@pytest.mark.parametrize("service", POOLED)
def test_web_worker_and_beat_reach_postgresql_through_pgbouncer_with_the_switch_on(service):
    env = environment(service, SECRET_KEY="x")
    database = dj_database_url.parse(env["DATABASE_URL"])
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("pgbouncer", 6432, "clinic")
    assert env["DATABASE_POOLER"] == "pgbouncer"


@pytest.mark.parametrize("service", POOLED)
def test_they_start_after_migrations_and_healthy_pooler_and_broker(service):
    assert SERVICES[service]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "pgbouncer": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert "migrate" not in json.dumps(SERVICES[service]["command"])  # once, by `migrate`: not per replica


def test_migrations_run_once_against_postgresql_itself():
    env = environment("migrate", SECRET_KEY="x")
    database = dj_database_url.parse(env["DATABASE_URL"])
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db", 5432, "clinic")
    assert env["DATABASE_POOLER"] == ""
    assert SERVICES["migrate"]["command"][-2:] == ["migrate", "--noinput"]
    assert SERVICES["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert SERVICES["migrate"]["restart"] == "no"
    assert "deploy" not in SERVICES["migrate"]


def test_pgbouncer_pools_transactions_for_the_db_service():
    assert SERVICES["pgbouncer"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    folder = BASE_DIR / SERVICES["pgbouncer"]["build"]
    assert (
        "apt-get install" in (folder / "Dockerfile").read_text() and "pgbouncer" in (folder / "Dockerfile").read_text()
    )
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(folder / "pgbouncer.ini")
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    assert ini["pgbouncer"]["listen_port"] == "6432"
    server = dict(pair.split("=", 1) for pair in ini["databases"]["clinic"].split())
    assert (server["host"], server["port"], server["dbname"]) == ("db", "5432", "clinic")
    # Its login is the database's.
    db_env, pgbouncer_env = environment("db"), environment("pgbouncer")
    assert (pgbouncer_env["DB_USER"], pgbouncer_env["DB_PASSWORD"]) == (db_env["POSTGRES_USER"], "clinic")


def test_the_web_environment_turns_off_server_side_cursors_and_prepared_statements():
    """Django, started with web's environment from the compose file, has the settings transaction pooling needs."""
    env = environment("web", SECRET_KEY="a-production-secret-key-that-is-long-and-random-8c1f9e2b7d3a5f60")
    code = (
        "import django, json; django.setup()\n"
        "from django.conf import settings\n"
        "db = settings.DATABASES['default']\n"
        "print(json.dumps([db['HOST'], db['DISABLE_SERVER_SIDE_CURSORS'], db['OPTIONS'], db['CONN_MAX_AGE']]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=subprocess_env(drop=("REDIS_URL",), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    host, no_cursors, options, max_age = json.loads(result.stdout.strip().splitlines()[-1])
    assert (host, no_cursors) == ("pgbouncer", True)
    assert "prepare_threshold" in options and options["prepare_threshold"] is None
    assert max_age == 60  # persistent connections to PgBouncer are kept
