"""The docker-compose topology on loopback: 3 gunicorn servers and 3 Celery workers, all through PgBouncer in
transaction pooling (DATABASE_POOLER=pgbouncer), a booking storm through real HTTP.

A database of the test's own on 127.0.0.1:5432 is migrated directly (as docker-compose's `migrate` service does,
not through the pooler), seeded by a subprocess, then PgBouncer (4 server connections for 15 clients), the servers
and the workers start. Reception books the same single slots and group places from every server at once: no slot
takes more than its places, every request gets a booking or a refusal (never a 500), and the confirmations the
bookings recorded are sent once each by the workers (to a real SMTP server), all through the pooler.

The test runs the same on either suite run (its database is its own, whatever Django's is): PgBouncer and
PostgreSQL missing fail under CI=true and skip with the reason elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import psycopg
import pytest
import requests
from django.db import connection
from django.urls import reverse

from benchmarks.http_load import GunicornServer
from tests.celery_worker import BASE_DIR, celery_worker, eventually, free_port, redis_server
from tests.conftest import subprocess_env
from tests.pgbouncer import admin_url, pgbouncer, pgbouncer_binary, postgres_or_skip
from tests.smtp_server import smtp_environment, smtp_server

pytestmark = [pytest.mark.redis, pytest.mark.xdist_group("pgbouncer-topology")]

SERVERS = 3  # gunicorn servers (1 worker x 4 threads each)
WORKERS = 3  # Celery workers
POOL_SIZE = 4  # PgBouncer's server connections: fewer than the 3 x 4 + 3 clients
SINGLES = 12  # single slots, each asked for by 3 clients at once (one per server)
GROUPS = 2  # group slots of GROUP_PLACES places, each asked for by GROUP_ASKS clients
GROUP_PLACES = 4
GROUP_ASKS = 10
CSRF = "p" * 32


def run_django(database_url: str, code: str, **env: str) -> dict:
    """Run `code` in a fresh Django process on `database_url`; the JSON of its last output line."""
    script = "import django, json; django.setup()\n" + code
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=subprocess_env(drop=("DJANGO_ENV", "REDIS_URL"), DATABASE_URL=database_url, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


SEED = f"""
import datetime as dt
from django.contrib.auth.backends import ModelBackend
from django.test import Client
from django.urls import reverse
from clinic.models import Role
from notifications.models import NotificationSettings
from tests.factories import ClinicFactory, MembershipFactory, PatientFactory, PractitionerFactory, SlotTypeFactory
from tests.factories import allocate_session

clinic = ClinicFactory(name="Pooled clinic", slug="pooled")
NotificationSettings.objects.update_or_create(clinic=clinic, defaults={{"sms_on": False}})
single = SlotTypeFactory(clinic=clinic, name="Routine")
group = SlotTypeFactory(clinic=clinic, name="Class", capacity={GROUP_PLACES})
session = allocate_session(
    clinic, practitioner=PractitionerFactory(clinic=clinic), day=dt.date(2027, 6, 7),
    slot_types=[single] * {SINGLES} + [group] * {GROUPS},
)
slots = list(session.slots.select_related("slot_type").order_by("starts_at"))
asks = {SINGLES} * 3 + {GROUPS} * {GROUP_ASKS}
patients = [PatientFactory(clinic=clinic, email=f"pooled-{{i}}@example.com") for i in range(asks)]
cookies = []
for _ in range({SERVERS}):
    member = MembershipFactory(clinic=clinic, role=Role.RECEPTION)
    client = Client()
    client.force_login(member.user, backend="django.contrib.auth.backends.ModelBackend")
    cookies.append(client.cookies["sessionid"].value)
print(json.dumps({{
    "slots": [
        {{"path": reverse("scheduling:book", args=[s.public_id]), "capacity": s.capacity,
          "slot_type": str(s.slot_type.public_id)}}
        for s in slots
    ],
    "patients": [str(p.public_id) for p in patients],
    "cookies": cookies,
}}))
"""

FACTS = """
from collections import Counter
from django.db.models import Count
from notifications.models import Kind, Message
from scheduling.models import Appointment, Slot
booked = Appointment.objects.filter(status="booked")
print(json.dumps({
    "slots": [
        {"capacity": s.capacity, "booked_count": s.booked_count, "appointments": booked.filter(slot=s).count()}
        for s in Slot.objects.order_by("starts_at")
    ],
    "pairs_twice": Appointment.objects.values("slot", "patient").annotate(n=Count("id")).filter(n__gt=1).count(),
    "booked_emails": sorted(booked.values_list("patient__email", flat=True)),
    "confirmations": dict(Counter(Message.objects.filter(kind=Kind.CONFIRMATION).values_list("status", flat=True))),
}))
"""


@pytest.fixture
def own_database() -> Iterator[str]:
    """A database of this test's own on 127.0.0.1:5432, dropped at the end (with whatever is still connected)."""
    pgbouncer_binary()
    postgres_or_skip()
    base = str(connection.settings_dict["NAME"]) if connection.vendor == "postgresql" else "clinic"
    name = f"{base}_pgb_{os.getpid()}"[-63:].lstrip("_")
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ask(server: str, cookie: str, path: str, form: dict[str, str], start: threading.Barrier) -> str:
    """One reception post of the booking form: "booked" (its redirect), "full" (the form again, saying so), or
    what else came back."""
    with requests.Session() as http:
        http.cookies.update({"sessionid": cookie, "csrftoken": CSRF})
        start.wait(timeout=60)
        response = http.post(server + path, data=form, headers={"X-CSRFToken": CSRF}, allow_redirects=False, timeout=90)
    if response.status_code == 302 and "login" not in response.headers.get("Location", ""):
        return "booked"
    if response.status_code == 200 and ("This slot is full." in response.text or "This group is full" in response.text):
        return "full"
    return f"{response.status_code}: {response.text[:300]}"


def test_three_servers_and_three_workers_through_pgbouncer_never_overbook_and_send_each_confirmation_once(
    own_database,
):
    direct = admin_url(own_database)
    # Migrations run against the database itself, not through the pooler (as docker-compose's `migrate`), while
    # the rest starts (the servers and workers need no table to start).
    migrating = subprocess.Popen(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=BASE_DIR,
        env=subprocess_env(drop=("DJANGO_ENV", "REDIS_URL", "DATABASE_POOLER"), DATABASE_URL=direct),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    with ExitStack() as stack:
        stack.callback(lambda: migrating.poll() is None and (migrating.kill(), migrating.wait()))
        broker = stack.enter_context(redis_server(free_port()))  # its own: the default queue is this test's alone
        pooler = stack.enter_context(pgbouncer(own_database, pool_size=POOL_SIZE))
        pooled = {"DATABASE_URL": pooler.url(), "DATABASE_POOLER": "pgbouncer", "REDIS_URL": broker}
        web_env = subprocess_env(drop=("DJANGO_ENV",), DEBUG="0", ALLOWED_HOSTS="127.0.0.1", **pooled)
        servers = []
        for _ in range(SERVERS):
            server = GunicornServer("clinic.wsgi:application", workers=1, threads=4, env=web_env, ready_path="/healthz")
            stack.callback(server.stop)
            servers.append(server.start())
        smtp = stack.enter_context(smtp_server())
        for _ in range(WORKERS):
            stack.enter_context(
                celery_worker(
                    pooler.url(),
                    redis_url=broker,
                    queue="celery",
                    DATABASE_POOLER="pgbouncer",
                    **smtp_environment(smtp),
                )
            )
        _, errors = migrating.communicate(timeout=240)
        assert migrating.returncode == 0, errors[-4000:]
        seeded = run_django(direct, SEED)

        # Each single slot is asked for by one client per server at the same moment; each group by GROUP_ASKS
        # clients spread over the servers. Every ask is for another patient.
        patients = iter(seeded["patients"])
        asks = []
        for slot in seeded["slots"]:
            times = 3 if slot["capacity"] == 1 else GROUP_ASKS
            for _ in range(times):
                form = {"patient": next(patients), "coverage": "self", "slot_type": slot["slot_type"], "action": "book"}
                index = len(asks)
                asks.append((servers[index % SERVERS], seeded["cookies"][index % SERVERS], slot["path"], form))
        start = threading.Barrier(len(asks))
        with ThreadPoolExecutor(max_workers=len(asks)) as pool:
            answers = list(pool.map(lambda a: ask(*a, start), asks))

        # Every client got a clear answer: a booking or a refusal, never an error.
        assert [a for a in answers if a not in ("booked", "full")] == []
        booked = SINGLES + GROUPS * GROUP_PLACES
        assert Counter(answers) == {"booked": booked, "full": len(asks) - booked}

        # docker-compose's transaction pooling, and the pool was shared: more clients than server connections, and
        # no more server connections than allowed.
        assert [p["pool_mode"] for p in pooler.show("POOLS") if p["database"] == own_database] == ["transaction"]
        clients = [c for c in pooler.show("CLIENTS") if c["database"] == own_database]
        server_connections = [s for s in pooler.show("SERVERS") if s["database"] == own_database]
        assert len(server_connections) <= POOL_SIZE < len(clients)

        # The workers sent each booking's confirmation, once, through the pooler.
        eventually(lambda: len(smtp.received) >= booked, f"send {booked} confirmations", timeout=60)
        facts = eventually(
            lambda: (f := run_django(direct, FACTS))["confirmations"] == {"sent": booked} and f,
            "mark every confirmation sent",
        )
        recipients = Counter(address for message in smtp.received for address in message.rcpt_tos)
        assert recipients == Counter(facts["booked_emails"])
        assert all(count == 1 for count in recipients.values())
        for server in servers:
            assert requests.get(server + reverse("healthz"), timeout=10).status_code == 200

    # No slot holds more than its places, and the counter agrees with the appointments.
    for slot in facts["slots"]:
        assert slot["appointments"] == slot["booked_count"] == slot["capacity"]
    assert facts["pairs_twice"] == 0


def test_pgbouncer_keeps_each_clients_time_zone_on_a_shared_server_connection_but_not_a_plain_set(own_database):
    """Django sets the session's TimeZone when it connects (set_config(..., false): session state). PgBouncer tracks
    TimeZone per client and puts it back on whichever server connection the client gets ("Startup parameters",
    https://www.pgbouncer.org/features.html), so that is safe. Any other SET stays on the server connection and
    reaches the next client: why the code sets none (SET LOCAL, inside a transaction, would be the way)."""
    with (
        pgbouncer(own_database, pool_size=1) as pooler,
        psycopg.connect(pooler.url(), autocommit=True) as first,
        psycopg.connect(pooler.url(), autocommit=True) as second,
    ):

        def one(client: psycopg.Connection, sql: str) -> object:
            row = client.execute(sql).fetchone()
            assert row is not None
            return row[0]

        one(first, "SELECT set_config('TimeZone', 'UTC', false)")
        second.execute("SET TimeZone = 'America/Chicago'")
        second.execute("SET lock_timeout = '1234ms'")
        assert one(first, "SELECT pg_backend_pid()") == one(second, "SELECT pg_backend_pid()")  # one server session
        assert one(first, "SHOW TimeZone") == "UTC"
        assert one(second, "SHOW TimeZone") == "America/Chicago"
        assert one(first, "SHOW lock_timeout") == "1234ms"  # the other client's SET, leaked
