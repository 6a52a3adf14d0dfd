"""The read-replica router's decisions and the pin cookie (clinic/replica.py), without a streaming pair.

Settings are read once at start-up, so the router's decisions with a replica configured are taken in a fresh Django
process (DATABASE_REPLICA_URL naming a SQLite file of the test's own, which connects at once; or a server that is not
there, which the router must read around). The pin cookie is the real middleware around small views of the test's
own. tests/clinic/test_replica_pair.py runs it all for real.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from clinic.models import Membership, UserSession
from clinic.replica import PIN_COOKIE, ReplicaPinMiddleware, ReplicaRouter, is_pinned, replica_reads
from scheduling.models import Slot
from tests.conftest import subprocess_env

BASE_DIR = Path(settings.BASE_DIR)
ELSEWHERE = "postgres://nobody@127.0.0.1:1/replica_that_is_never_there"  # port 1: connections are refused

DECISIONS = """
import json, django
django.setup()
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections, transaction
from clinic.models import AuditEvent, Membership, UserSession
from clinic.replica import ReplicaRouter, replica_reads, request_scope, wrote
from calendar_sync.models import FeedDocument
from privacy.models import BreakGlass
from scheduling.models import Appointment, Slot

router = ReplicaRouter()
read = lambda model: router.db_for_read(model)
out = {
    "routers": settings.DATABASE_ROUTERS,
    "mirror": settings.DATABASES["replica"]["TEST"],
    "replica_name": settings.DATABASES["replica"]["NAME"],
    "middleware_after_auth": settings.MIDDLEWARE[
        settings.MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1
    ],
    "outside": read(Slot),
}
with request_scope(pinned=False), replica_reads():
    out["inside"] = [read(Slot), read(Appointment), read(FeedDocument)]
    out["access"] = [read(m) for m in (Membership, User, UserSession, BreakGlass, AuditEvent)]
    router.db_for_write(UserSession)  # a session's activity stamp pins nothing
    out["after_session_write"] = [read(Slot), wrote()]
    with transaction.atomic():
        out["in_transaction"] = read(Slot)
    router.db_for_write(Slot)
    out["after_write"] = [read(Slot), router.db_for_write(Slot), wrote()]
with request_scope(pinned=True), replica_reads():
    out["pinned"] = read(Slot)
with request_scope(pinned=False):
    out["next_request"] = [read(Slot), wrote()]
    with replica_reads():
        out["next_request_inside"] = read(Slot)
out["migrate"] = [router.allow_migrate("default", "scheduling"), router.allow_migrate("replica", "scheduling")]
slot = Slot(); slot._state.db = "replica"
other = Slot(); other._state.db = "default"
out["relation"] = router.allow_relation(slot, other)
import time
from clinic.replica import replica_health
out["retry_in"] = max(0.0, replica_health.down_until - time.monotonic())
print(json.dumps(out))
"""


def replica_file(tmp_path: Path) -> str:
    """A replica the router can reach: a SQLite file other than default's (so not read through default)."""
    return f"sqlite:///{tmp_path / 'replica.sqlite3'}"


def decisions(tmp_path: Path, **env: str) -> dict[str, object]:
    clean = subprocess_env(
        drop=("DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL", "DJANGO_ENV", "DEBUG"),
        **{"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **env},
    )
    result = subprocess.run(
        [sys.executable, "-c", DECISIONS], cwd=BASE_DIR, env=clean, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "stderr": result.stderr}


def test_the_router_sends_only_scoped_data_reads_of_an_unpinned_request_to_the_replica(tmp_path):
    seen = decisions(tmp_path, DATABASE_REPLICA_URL=replica_file(tmp_path))
    assert seen["routers"] == ["clinic.replica.ReplicaRouter"]
    assert seen["mirror"]["MIRROR"] == "default"  # test runs make no database on a read-only server
    assert seen["replica_name"] == str(tmp_path / "replica.sqlite3")
    assert seen["middleware_after_auth"] == "clinic.replica.ReplicaPinMiddleware"
    assert seen["outside"] == "default"  # unscoped reads: writes' decisions, tasks, everything else
    assert seen["inside"] == ["replica", "replica", "replica"]
    assert seen["access"] == ["default"] * 5  # memberships, users, sessions, break-glass grants, audit
    assert seen["after_session_write"] == ["replica", False]
    assert seen["in_transaction"] == "default"
    assert seen["after_write"] == ["default", "default", True]  # the request that wrote reads its own write
    assert seen["pinned"] == "default"
    assert seen["next_request"] == ["default", False]
    assert seen["next_request_inside"] == "replica"
    assert seen["migrate"] == [True, False]
    assert seen["relation"] is True
    assert seen["retry_in"] == 0  # it was reached every time


def test_a_replica_that_cannot_be_reached_is_read_around_and_tried_again_later(tmp_path):
    seen = decisions(tmp_path, DATABASE_REPLICA_URL=ELSEWHERE, REPLICA_RETRY_SECONDS="120")
    assert seen["inside"] == ["default", "default", "default"]  # refused: the primary, not an error
    assert seen["next_request_inside"] == "default"  # within the retry time, not tried again
    assert 100 < seen["retry_in"] <= 120
    assert "read replica unreachable (OperationalError)" in seen["stderr"]
    assert "nobody" not in seen["stderr"] and "127.0.0.1" not in seen["stderr"]  # no connection details logged


def test_a_replica_url_naming_the_primary_itself_reads_through_default(tmp_path):
    seen = decisions(tmp_path, DATABASE_REPLICA_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert seen["inside"] == ["default", "default", "default"]


def test_without_a_replica_url_there_is_one_database_and_no_router(tmp_path):
    clean = subprocess_env(
        drop=("DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL", "DJANGO_ENV", "DEBUG"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps([list(settings.DATABASES), settings.DATABASE_ROUTERS, "
        "[m for m in settings.MIDDLEWARE if 'replica' in m]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=clean, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [["default"], [], []]


def test_unconfigured_the_scope_changes_nothing():
    router = ReplicaRouter()
    with replica_reads():
        assert router.db_for_read(Slot) == "default"  # no replica alias in this process
        assert router.db_for_read(Membership) == "default"


# The pin cookie ---------------------------------------------------------------------------------------------------


def signed_in(request: HttpRequest, membership: Membership | None) -> HttpRequest:
    request.user = membership.user if membership else AnonymousUser()
    return request


def serve(request: HttpRequest, *, writes: type | None = None) -> HttpResponse:
    def view(_request: HttpRequest) -> HttpResponse:
        if writes is not None:
            ReplicaRouter().db_for_write(writes)  # what Django asks the router before any write of that model
        return HttpResponse("ok")

    return ReplicaPinMiddleware(view)(request)


@pytest.mark.django_db
@override_settings(REPLICA_PIN_SECONDS=5)
def test_a_browser_that_wrote_is_pinned_for_the_pin_seconds_and_no_longer(reception_a):
    factory = RequestFactory()
    assert PIN_COOKIE not in serve(signed_in(factory.get("/calendar/"), reception_a)).cookies
    assert PIN_COOKIE not in serve(signed_in(factory.get("/calendar/"), reception_a), writes=UserSession).cookies
    assert PIN_COOKIE in serve(signed_in(factory.get("/calendar/"), reception_a), writes=Slot).cookies
    with time_machine.travel(dt.datetime(2027, 3, 1, 9, tzinfo=dt.UTC), tick=False) as clock:
        response = serve(signed_in(factory.post("/calendar/events/new/"), reception_a))
        cookie = response.cookies[PIN_COOKIE]
        assert cookie["max-age"] == 5 and cookie["httponly"] and cookie["samesite"] == "Lax"
        later = factory.get("/calendar/")
        later.COOKIES[PIN_COOKIE] = cookie.value
        assert is_pinned(later)
        clock.shift(dt.timedelta(seconds=4))
        assert is_pinned(later)
        clock.shift(dt.timedelta(seconds=2))
        assert not is_pinned(later)  # the cookie's own signed time, whatever the browser keeps


@pytest.mark.django_db
def test_a_forged_pin_or_a_signed_out_post_pins_nothing():
    factory = RequestFactory()
    forged = factory.get("/calendar/")
    forged.COOKIES[PIN_COOKIE] = "1:forged:signature"
    assert not is_pinned(forged)
    assert PIN_COOKIE not in serve(signed_in(factory.post("/accounts/login/"), None)).cookies
