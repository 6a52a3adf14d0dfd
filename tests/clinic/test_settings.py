"""Settings from the environment: the embedded default, Redis mode and production mode.

Each case runs Django in a fresh interpreter with a chosen environment, since settings
are read once at start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from tests.conftest import subprocess_env

BASE_DIR = Path(settings.BASE_DIR)
PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "a-production-secret-key-that-is-long-and-random-8c1f9e2b7d3a5f60",
    "ALLOWED_HOSTS": "clinic.example.org",
}


def run_django(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = subprocess_env(
        drop=("DATABASE_URL", "REDIS_URL", "DJANGO_ENV", "DEBUG"),
        **{"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **env},
    )
    script = "import django, json; django.setup()\n" + code
    return subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=clean, capture_output=True, text=True, timeout=120
    )


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`manage.py check --deploy`, failing on anything it reports, even a DEBUG-level note."""
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_mode_passes_check_deploy():
    result = check_deploy(subprocess_env(drop=("DATABASE_URL", "REDIS_URL", "DEBUG"), **PRODUCTION_ENV))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_development_mode_is_not_deploy_ready():
    # Guards the check above: check --deploy does see problems when they are there.
    result = check_deploy(subprocess_env(drop=("DJANGO_ENV", "SECRET_KEY")))
    assert result.returncode != 0
    assert "security.W" in result.stdout + result.stderr


def test_production_mode_refuses_to_start_without_a_secret_key(tmp_path):
    env = {**PRODUCTION_ENV, "SECRET_KEY": ""}
    result = run_django("print('started')", env, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_the_embedded_default_is_sqlite_wal_immediate_eager_and_local_memory(tmp_path):
    code = """
from django.conf import settings

from tests.conftest import subprocess_env
from django.db import connection
from clinic.celery import app
from clinic.tasks import ping
with connection.cursor() as c:
    c.execute("PRAGMA journal_mode")
    journal = c.fetchone()[0]
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "transaction_mode": settings.DATABASES["default"]["OPTIONS"]["transaction_mode"],
    "journal": journal,
    "cache": settings.CACHES["default"]["BACKEND"],
    "eager": app.conf.task_always_eager,
    "result": ping.delay("hello").get(timeout=5),
}))
"""
    result = run_django(code, {}, tmp_path)
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["engine"] == "django.db.backends.sqlite3"
    assert facts["transaction_mode"] == "IMMEDIATE"
    assert facts["journal"] == "wal"
    assert facts["cache"].endswith("LocMemCache")
    assert facts["eager"] is True
    assert facts["result"] == {"token": "hello", "database": "sqlite"}


def test_with_redis_url_redis_is_broker_and_cache(tmp_path):
    code = """
from django.conf import settings

from tests.conftest import subprocess_env
from clinic.celery import app
print(json.dumps({
    "broker": app.conf.broker_url,
    "eager": app.conf.task_always_eager,
    "cache": settings.CACHES["default"]["BACKEND"],
    "cache_location": settings.CACHES["default"]["LOCATION"],
}))
"""
    result = run_django(code, {"REDIS_URL": "redis://127.0.0.1:6379/3"}, tmp_path)
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["broker"] == "redis://127.0.0.1:6379/3"
    assert facts["eager"] is False
    assert facts["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert facts["cache_location"] == "redis://127.0.0.1:6379/3"


def test_database_url_selects_postgresql(tmp_path):
    code = """
from django.conf import settings

from tests.conftest import subprocess_env
print(json.dumps(settings.DATABASES["default"]))
"""
    result = run_django(code, {"DATABASE_URL": "postgres://clinic:pw@db.internal:5432/clinic"}, tmp_path)
    assert result.returncode == 0, result.stderr
    db = json.loads(result.stdout.strip().splitlines()[-1])
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["HOST"], db["NAME"], db["USER"]) == ("db.internal", "clinic", "clinic")


def test_database_pooler_refuses_what_it_does_not_know_and_sqlite(tmp_path):
    unknown = run_django("print('started')", {"DATABASE_POOLER": "odyssey"}, tmp_path)
    assert unknown.returncode != 0
    assert "DATABASE_POOLER is 'pgbouncer'" in unknown.stderr
    sqlite = run_django("print('started')", {"DATABASE_POOLER": "pgbouncer"}, tmp_path)
    assert sqlite.returncode != 0
    assert "needs a PostgreSQL DATABASE_URL" in sqlite.stderr


def test_without_database_pooler_server_side_cursors_stay_on(tmp_path):
    code = """
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps([db.get("DISABLE_SERVER_SIDE_CURSORS", False), "prepare_threshold" in db["OPTIONS"]]))
"""
    result = run_django(code, {"DATABASE_URL": "postgres://clinic@db.example:5432/clinic"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [False, False]
