"""Quota pacing (issue 18, item 5): pushes and pulls stay under Google's per-user and per-project limits.

The limits and their window are scaled down (0.5 s instead of a minute) the same way for our pacer (settings)
and for the fake Google that enforces them; every test asserts that Google refused nothing and that every event
landed. Concurrency is real: threads against the real cache (locmem here, Redis with REDIS_URL).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import cast

import pytest
from django.db import connection as db_connection
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from calendar_sync import tasks
from calendar_sync.google.connect import resync_all
from calendar_sync.google.events import OUR_EVENT_ID
from calendar_sync.keys import EVERYTHING
from calendar_sync.models import GoogleConnection, GooglePending
from clinic.models import Membership, Role
from scheduling.models import OtherEvent
from tests.calendar_sync.google_helpers import connect, google_events, quota_scaled
from tests.conftest import logged_in_client
from tests.factories import MembershipFactory, OtherEventFactory, PractitionerFactory

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = 0.5  # seconds standing for Google's minute
USER = 60  # calls per user and window (Google: 600)
HEADROOM = 10  # left to pulls: a push sends at most 50 a window, one batch
EVENTS = 130  # three batches: more than two windows' worth of a push


@pytest.fixture
def scaled(settings, google):
    quota_scaled(settings, google, user=USER, project=1_000, window=WINDOW, headroom=HEADROOM)


def ours(fake, connection) -> dict[str, dict]:
    return {e["id"]: e for e in google_events(fake, connection) if OUR_EVENT_ID.match(e["id"])}


def blocks(clinic, practitioner, n: int, title: str = "Block") -> None:
    """n busy events in the coming weeks (not announced: nothing is pending for them)."""
    today = timezone.now().astimezone(dt.UTC).date()
    for k in range(n):
        starts = dt.datetime.combine(today + dt.timedelta(days=1 + k // 8), dt.time(8 + k % 8), tzinfo=dt.UTC)
        OtherEventFactory(clinic=clinic, practitioner=practitioner, title=f"{title} {k}", starts_at=starts)


def landed(fake, connection, title: str = "Block") -> int:
    return sum(1 for event in ours(fake, connection).values() if event["summary"].startswith(title))


def another_clinician(clinic, name: str):
    membership = cast(Membership, MembershipFactory(clinic=clinic, role=Role.CLINICIAN))
    practitioner = PractitionerFactory(clinic=clinic, name=name, user=membership.user)
    return practitioner, logged_in_client(membership)


def in_thread(work, finished: list[str], name: str, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            work()
            finished.append(name)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            db_connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def test_a_first_push_of_more_than_the_user_limit_lands_every_event_and_google_refuses_nothing(
    google, scaled, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    blocks(clinic_a, practitioner, EVENTS)
    connection = connect(clinician_client, google, practitioner)
    assert google.rate_refusals == []
    assert landed(google, connection) == EVENTS
    assert not GooglePending.objects.filter(connection=connection).exists()


def test_sync_now_and_resend_everything_stay_under_the_user_limit(
    google, scaled, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    blocks(clinic_a, practitioner, EVENTS)
    response = clinician_client.post(
        reverse("calendar_sync:google-sync-now"), {"practitioner": str(practitioner.public_id)}
    )
    assert response.status_code == 302
    assert landed(google, connection) == EVENTS
    google.clear_requests()
    with transaction.atomic():
        resync_all(connection)  # everything sent again, at once after the first push
    updates = [r for r in google.requests if r.operation == "calendar.events.patch"]
    assert len(updates) == EVENTS
    assert google.rate_refusals == []
    assert not GooglePending.objects.filter(connection=connection).exists()


def test_a_switch_from_one_way_to_two_way_stays_under_the_user_limit(
    google, scaled, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    blocks(clinic_a, practitioner, EVENTS)
    for sync_type in ("one_way", "two_way"):
        response = clinician_client.post(
            reverse("calendar_sync:index"),
            {
                "action": "save",
                "practitioner": str(practitioner.public_id),
                "enabled": "on",
                "identifier_mode": "initials",
                "sync_type": sync_type,
            },
        )
        assert response.status_code == 302
    assert google.rate_refusals == []
    assert landed(google, connection) == EVENTS
    assert not GooglePending.objects.filter(connection=connection).exists()


def test_two_google_users_pushing_at_once_stay_under_the_project_limit(
    google, settings, clinic_a, clinician, clinician_client
):
    # Each user could send a batch a window; the project takes 70 calls a window, not two batches.
    quota_scaled(settings, google, user=USER, project=70, window=WINDOW, headroom=HEADROOM)
    _, first = clinician
    second, second_client = another_clinician(clinic_a, "Dr Second")
    connections = [
        connect(clinician_client, google, first, email="first@example.com"),
        connect(second_client, google, second, email="second@example.com"),
    ]
    for practitioner in (first, second):
        blocks(clinic_a, practitioner, 100)
    for connection in connections:
        GooglePending.objects.create(clinic=clinic_a, connection=connection, key=EVERYTHING)
    finished: list[str] = []
    errors: list[BaseException] = []
    threads = [
        in_thread(lambda pk=c.pk: tasks.google_push.apply(args=[pk]).result, finished, f"push {c.pk}", errors)
        for c in connections
    ]
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(finished) == 2
    assert google.rate_refusals == []
    assert [landed(google, connection) for connection in connections] == [100, 100]
    assert not GooglePending.objects.exists()


def test_a_pull_started_while_a_large_push_runs_finishes_first(google, scaled, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    blocks(clinic_a, practitioner, 200)  # four windows of pushing
    GooglePending.objects.create(clinic=clinic_a, connection=connection, key=EVERYTHING)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=2)
    google.user_create_event(
        connection.default_calendar_id,
        {
            "summary": "Dentist",
            "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "end": {"dateTime": (start + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        },
    )
    google.clear_requests()
    finished: list[str] = []
    errors: list[BaseException] = []
    pushing = in_thread(lambda: tasks.google_push.apply(args=[connection.pk]).result, finished, "push", errors)
    deadline = time.monotonic() + 30
    while google.count_requests(path_contains="/events", batched=True) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert finished == [] and errors == []  # the push is under way
    assert tasks.google_pull.apply(args=[connection.pk]).result.startswith("PullReport(")
    finished.append("pull")
    pushing.join(timeout=60)
    assert errors == []
    assert finished == ["pull", "push"]
    assert OtherEvent.objects.filter(title="Dentist", practitioner=practitioner).exists()
    assert google.rate_refusals == []
    assert landed(google, connection) == 200


def test_beat_spreads_the_pulls_over_the_interval(google, settings, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connections = [connect(clinician_client, google, practitioner)]
    for n in range(4):
        other, client = another_clinician(clinic_a, f"Dr Spread {n}")
        connections.append(connect(client, google, other, email=f"spread{n}@example.com"))
    countdowns = tasks.google_pull_all()
    interval = settings.GOOGLE_PULL_MINUTES * 60.0
    assert len(countdowns) == len(connections) == GoogleConnection.objects.count()
    assert len(set(countdowns)) == len(countdowns)  # each connection at its own moment
    assert all(0 <= countdown < interval for countdown in countdowns)
    assert max(countdowns) - min(countdowns) > interval / 4  # spread, not bunched


def test_in_process_a_wait_longer_than_the_bound_stops_the_push_and_keeps_the_rest_pending(
    google, scaled, settings, clinic_a, clinician, clinician_client
):
    settings.GOOGLE_PACE_EAGER_WAIT_SECONDS = 0.05  # a request never sleeps a window away
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    blocks(clinic_a, practitioner, EVENTS)
    GooglePending.objects.create(clinic=clinic_a, connection=connection, key=EVERYTHING)
    google.clear_requests()
    rounds = []
    while GooglePending.objects.filter(connection=connection).exists():
        assert len(rounds) < 10
        rounds.append(tasks.google_push.apply(args=[connection.pk]).result)
        time.sleep(WINDOW)  # the next trigger comes later (a change, Sync now, the sweep)
    assert len(rounds) >= 3  # a batch of 50 a window at most
    assert set(rounds[:-1]) == {"paced"} and rounds[-1].startswith("PushReport(sent=")
    assert google.rate_refusals == []
    assert landed(google, connection) == EVENTS
    inserts = [r for r in google.requests if r.operation == "calendar.events.insert"]
    assert len(inserts) == EVENTS  # what was sent before a stop is remembered, never sent again


def test_a_push_stops_at_the_end_of_its_slice_and_the_rest_stays_pending(
    google, scaled, settings, clinic_a, clinician, clinician_client
):
    settings.GOOGLE_PUSH_SLICE_SECONDS = 0.0  # over after the first batch request
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    blocks(clinic_a, practitioner, 80)
    GooglePending.objects.create(clinic=clinic_a, connection=connection, key=EVERYTHING)
    assert tasks.google_push.apply(args=[connection.pk]).result == "paced"
    assert landed(google, connection) == 0  # a slice of nothing: nothing sent, all still pending
    assert GooglePending.objects.filter(connection=connection).count() == 80
    settings.GOOGLE_PUSH_SLICE_SECONDS = 60.0
    assert tasks.google_push.apply(args=[connection.pk]).result.startswith("PushReport(sent=80")
    assert landed(google, connection) == 80 and google.rate_refusals == []
