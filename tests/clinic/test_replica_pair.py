"""Read replicas for real (issue 25 item 5): gunicorn pointed at a streaming pair of the test's own.

The pair (tests/replica_pair.py) is a primary and its hot standby; the site is migrated and seeded on the primary
and the standby follows. Pausing replay on the standby (`pg_wal_replay_pause()`) freezes what it shows, so a page
that does not show a change made on the primary meanwhile read the replica, and one that does read the primary.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings

from clinic.replica import PIN_COOKIE
from patients.display import RESTRICTED_LABEL
from tests.conftest import process_stopped, subprocess_env
from tests.replica_pair import ReplicaPair, free_port, replica_pair  # noqa: F401 (the fixture)

pytestmark = pytest.mark.xdist_group("replica-pair")

BASE_DIR = Path(settings.BASE_DIR)
PIN_SECONDS = 2.0
RETRY_SECONDS = 1.0  # how long a process reads the primary after the replica failed it
DAY = (dt.date.today() + dt.timedelta(days=14)).isoformat()  # inside the ICS feed's window
CALENDAR = f"/calendar/?view=day&date={DAY}"

# Run in a Django process on the primary (no replica configured): a clinic, a practitioner with an other event on
# DAY, a session that day with Vera Visible booked, an enabled ICS feed, and three members signed in (their session
# cookies printed).
SEED = """
import datetime as dt, json, os, django
django.setup()
from django.test import Client
from calendar_sync.feed.subscriptions import feed_token, subscription_get_or_create
from clinic.models import Role
from tests.factories import (
    ClinicFactory, MembershipFactory, OtherEventFactory, PatientFactory, PractitionerFactory, allocate_session, book
)
clinic = ClinicFactory(name="Replica Clinic", slug="replica-clinic", time_zone="UTC")
practitioner = PractitionerFactory(clinic=clinic, name="Dr Replica")
subscription = subscription_get_or_create(clinic=clinic, practitioner=practitioner)
subscription.enabled = True
subscription.save()
noon = dt.datetime.combine(dt.date.fromisoformat(os.environ["SEED_DAY"]), dt.time(12), tzinfo=dt.UTC)
OtherEventFactory(
    clinic=clinic, practitioner=practitioner, title="Before", starts_at=noon, ends_at=noon + dt.timedelta(hours=1)
)
session = allocate_session(clinic, practitioner=practitioner, day=noon.date(), start=dt.time(9))
book(session.slots.order_by("starts_at").first(), PatientFactory(clinic=clinic, first_name="Vera", last_name="Visible"))
cookies = {}
for name, role in (("writer", Role.ADMIN), ("other", Role.RECEPTION), ("revoked", Role.RECEPTION)):
    membership = MembershipFactory(clinic=clinic, role=role, perm_manage_appointments=True)
    client = Client()
    client.force_login(membership.user, backend="django.contrib.auth.backends.ModelBackend")
    cookies[name] = {"sessionid": client.cookies["sessionid"].value, "user_id": membership.user_id}
print(json.dumps({"practitioner": str(practitioner.public_id), "cookies": cookies, "feed": feed_token(subscription)}))
"""


@dataclass
class Site:
    pair: ReplicaPair
    url: str
    practitioner: str
    cookies: dict[str, dict[str, object]]
    feed: str = ""

    def browser(self, who: str) -> requests.Session:
        session = requests.Session()
        session.cookies.set("sessionid", str(self.cookies[who]["sessionid"]), domain="127.0.0.1")
        session.cookies.set("viewer_tz", "UTC", domain="127.0.0.1")
        return session

    def calendar(self, browser: requests.Session) -> requests.Response:
        return browser.get(f"{self.url}{CALENDAR}&tab={self.practitioner}", timeout=30)


def manage(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def site_env(pair: ReplicaPair, *, replica: bool) -> dict[str, str]:
    extra = {
        "DATABASE_URL": pair.primary_url,
        "DB_CONN_MAX_AGE": "0",
        "REPLICA_PIN_SECONDS": str(PIN_SECONDS),
        "REPLICA_RETRY_SECONDS": str(RETRY_SECONDS),
    }
    if replica:
        extra["DATABASE_REPLICA_URL"] = pair.replica_url
    return subprocess_env(drop=("DJANGO_ENV", "REDIS_URL", "DATABASE_REPLICA_URL", "DEBUG"), **extra)


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[str]:
    """gunicorn with two workers (the pin cookie works whichever process serves the next request)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "clinic.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "2"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or busy starting
                pass
            assert server.poll() is None, f"gunicorn stopped: {server.stderr.read() if server.stderr else ''}"
            assert time.monotonic() < deadline, "gunicorn did not answer"
            time.sleep(0.2)
        yield url
    finally:
        process_stopped(server)


@pytest.fixture(scope="module")
def seeded(replica_pair: ReplicaPair) -> dict[str, object]:  # noqa: F811 (the fixture imported above)
    env = site_env(replica_pair, replica=False)
    manage(["manage.py", "migrate", "--noinput", "-v", "0"], env)
    seed = json.loads(manage(["-c", SEED], {**env, "SEED_DAY": DAY}).strip().splitlines()[-1])
    replica_pair.caught_up()
    return seed


@pytest.fixture(scope="module")
def site(replica_pair: ReplicaPair, seeded: dict[str, object]) -> Iterator[Site]:  # noqa: F811
    with gunicorn(site_env(replica_pair, replica=True)) as url:
        yield Site(
            replica_pair,
            url,
            str(seeded["practitioner"]),
            seeded["cookies"],  # type: ignore[arg-type]
            str(seeded["feed"]),
        )


@contextmanager
def replay_paused(pair: ReplicaPair) -> Iterator[None]:
    """The replica stops applying what the primary writes; on leaving, it applies everything and catches up."""
    with pair.replica() as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        with pair.replica() as replica:
            replica.execute("SELECT pg_wal_replay_resume()")
        pair.caught_up()


def on_primary(pair: ReplicaPair, sql: str, *params: object) -> None:
    with pair.primary() as primary:
        primary.execute(sql, params)


def csrf_token(page: str) -> str:
    found = re.search(r'"X-CSRFToken": "([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def new_event(site: Site, browser: requests.Session, title: str) -> requests.Response:
    page = site.calendar(browser)
    data = {
        "kind": "other",
        "practitioner": site.practitioner,
        "title": title,
        "date": DAY,
        "start_time": "15:00",
        "end_time": "16:00",
        "show_as": "busy",
    }
    return browser.post(
        f"{site.url}/calendar/events/new/",
        data=data,
        headers={"X-CSRFToken": csrf_token(page.text)},
        allow_redirects=False,
        timeout=30,
    )


def test_the_calendar_page_reads_the_replica(site: Site):
    browser = site.browser("other")
    assert "Before" in site.calendar(browser).text
    with replay_paused(site.pair):
        on_primary(site.pair, "UPDATE scheduling_otherevent SET title = 'After' WHERE title = 'Before'")
        paused = site.calendar(browser)
        assert paused.status_code == 200
        assert "Before" in paused.text and "After" not in paused.text  # the replica, frozen before the change
    resumed = site.calendar(browser).text
    assert "After" in resumed and "Before" not in resumed
    on_primary(site.pair, "UPDATE scheduling_otherevent SET title = 'Before' WHERE title = 'After'")
    site.pair.caught_up()


def test_a_user_reads_their_own_write_at_once_then_the_replica_again_after_the_pin(site: Site):
    writer, other = site.browser("writer"), site.browser("other")
    with replay_paused(site.pair):
        posted = new_event(site, writer, "Mine")
        assert posted.status_code == 302, posted.text[:500]  # the write went to the primary: the standby is paused
        pin = writer.cookies.get(PIN_COOKIE)
        assert pin, "a write pins the browser to the primary"
        assert "Mine" in site.calendar(writer).text  # their own write, at once, from the primary
        assert "Mine" not in site.calendar(other).text  # another member reads the (paused) replica
        time.sleep(PIN_SECONDS + 0.5)
        # The pin has run out: even a browser that still sends the old cookie reads the replica again.
        writer.cookies.set(PIN_COOKIE, pin, domain="127.0.0.1")
        assert "Mine" not in site.calendar(writer).text
    assert "Mine" in site.calendar(writer).text and "Mine" in site.calendar(other).text
    with site.pair.primary() as primary:
        assert primary.execute("SELECT count(*) FROM scheduling_otherevent WHERE title = 'Mine'").fetchone()[0] == 1


def feed_fetch(site: Site) -> requests.Response:
    """As a calendar app fetches the feed: no session, no cookies, the plain text."""
    response = requests.get(
        f"{site.url}/sync/feeds/{site.feed}.ics", headers={"Accept-Encoding": "identity"}, timeout=30
    )
    assert response.status_code == 200
    assert PIN_COOKIE not in response.cookies  # nobody signed in is pinned, even by a GET that built the feed
    etag = 'W/"' + hashlib.blake2b(response.content, digest_size=16).hexdigest() + '"'
    assert response.headers["ETag"] == etag  # the bytes are always those of the ETag served with them
    return response


def test_the_feed_serves_the_replicas_bytes_of_the_version_the_primary_names(site: Site):
    first = feed_fetch(site)  # built on the primary at the first fetch
    site.pair.caught_up()
    with replay_paused(site.pair):
        # The primary's stored bytes change under the same ETag: a feed still served as before came from the replica.
        tampered = gzip.compress(b"BEGIN:VCALENDAR\r\nX-TAMPERED:1\r\nEND:VCALENDAR\r\n")
        on_primary(site.pair, "UPDATE calendar_sync_feeddocument SET body = %s", tampered)
        assert feed_fetch(site).content == first.content
        # A real change builds a new version on the primary; the paused replica has not got it: the primary's
        # bytes are served, with their own ETag.
        assert new_event(site, site.browser("writer"), "Feed news").status_code == 302
        fresh = feed_fetch(site)
        assert fresh.headers["ETag"] != first.headers["ETag"] and b"Feed news" in fresh.content
    assert feed_fetch(site).content == fresh.content


def test_the_appointments_report_reads_the_replica(site: Site):
    browser = site.browser("other")  # with "Schedule Admin: Manage Appointments"
    url = f"{site.url}/calendar/reports/appointments/?first_date={DAY}&last_date={DAY}&format=csv"
    before = browser.get(url, timeout=30)
    assert before.status_code == 200 and before.headers["Content-Type"].startswith("text/csv")
    with replay_paused(site.pair):
        on_primary(site.pair, "UPDATE scheduling_appointment SET status = 'did_not_attend' WHERE status = 'booked'")
        assert browser.get(url, timeout=30).text == before.text  # the paused replica's counts
    after = browser.get(url, timeout=30).text
    assert after != before.text  # the booking now counts as did not attend
    on_primary(site.pair, "UPDATE scheduling_appointment SET status = 'booked' WHERE status = 'did_not_attend'")
    site.pair.caught_up()
    assert browser.get(url, timeout=30).text == before.text


BLOCKED, UNBLOCKED = "is_blocked = true, blocked_reason = 'Staff'", "is_blocked = false, blocked_reason = ''"


def test_a_patient_blocked_a_moment_ago_is_never_named_from_the_replica(site: Site):
    browser = site.browser("other")  # reception, without "Privacy: Access Blocked Patients"
    assert "Visible" in site.calendar(browser).text
    with replay_paused(site.pair):
        on_primary(site.pair, f"UPDATE patients_patient SET {BLOCKED} WHERE last_name = 'Visible'")
        on_primary(site.pair, "UPDATE scheduling_otherevent SET title = 'Renamed' WHERE title = 'Before'")
        page = site.calendar(browser).text
        assert "Before" in page and "Renamed" not in page  # the grid still came from the paused replica
        assert "Visible" not in page and RESTRICTED_LABEL in page  # but who is blocked was read on the primary
    on_primary(site.pair, f"UPDATE patients_patient SET {UNBLOCKED} WHERE last_name = 'Visible'")
    on_primary(site.pair, "UPDATE scheduling_otherevent SET title = 'Before' WHERE title = 'Renamed'")
    site.pair.caught_up()


def test_a_revoked_membership_refuses_the_calendar_at_once(site: Site):
    browser = site.browser("revoked")
    assert site.calendar(browser).status_code == 200
    user_id = site.cookies["revoked"]["user_id"]
    with replay_paused(site.pair):
        on_primary(site.pair, "UPDATE clinic_membership SET is_active = false WHERE user_id = %s", user_id)
        refused = site.calendar(browser)
        assert refused.status_code == 403  # the membership is read on the primary, never the lagging replica
        assert "Before" not in refused.text
        with site.pair.replica() as replica:  # while the replica still says the member is active
            active = replica.execute("SELECT is_active FROM clinic_membership WHERE user_id = %s", [user_id])
            assert active.fetchone()[0] is True
    on_primary(site.pair, "UPDATE clinic_membership SET is_active = true WHERE user_id = %s", user_id)
    site.pair.caught_up()
    assert site.calendar(browser).status_code == 200


def test_a_replica_that_is_down_is_read_around_then_read_again_once_it_is_back(site: Site):
    browser = site.browser("other")
    with site.pair.replica_stopped():
        on_primary(site.pair, "UPDATE scheduling_otherevent SET title = 'While down' WHERE title = 'Before'")
        for _ in range(4):  # both workers: the first request of each finds the replica down, the next ones skip it
            page = site.calendar(browser)
            assert page.status_code == 200, page.text[:500]
            assert "While down" in page.text and "Before" not in page.text  # the primary's rows
    time.sleep(RETRY_SECONDS + 0.5)  # the replica is back and caught up; the workers try it again
    with replay_paused(site.pair):
        on_primary(site.pair, "UPDATE scheduling_otherevent SET title = 'Before' WHERE title = 'While down'")
        for _ in range(4):
            page = site.calendar(browser)
            assert page.status_code == 200
            assert "While down" in page.text and "Before" not in page.text  # the (paused) replica again
    assert "Before" in site.calendar(browser).text
    site.pair.caught_up()


def test_without_a_replica_url_every_read_is_the_primarys(replica_pair: ReplicaPair, seeded):  # noqa: F811
    with gunicorn(site_env(replica_pair, replica=False)) as url:
        site = Site(replica_pair, url, str(seeded["practitioner"]), seeded["cookies"])
        browser = site.browser("other")
        with replay_paused(replica_pair):
            on_primary(replica_pair, "UPDATE scheduling_otherevent SET title = 'Unpaused' WHERE title = 'Before'")
            page = site.calendar(browser).text
            assert "Unpaused" in page and "Before" not in page
            posted = new_event(site, browser, "No pin")
            assert posted.status_code == 302 and PIN_COOKIE not in browser.cookies
        on_primary(replica_pair, "UPDATE scheduling_otherevent SET title = 'Before' WHERE title = 'Unpaused'")
        replica_pair.caught_up()
