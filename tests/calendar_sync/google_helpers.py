"""Shared set-up of the two-way sync tests: the fake Google wired into settings, a clinician with a
practitioner, and connecting through the real OAuth web flow (our views, google-auth-oauthlib, the fake's
consent and token endpoints)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from urllib.parse import urlsplit

import httplib2
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from calendar_sync.models import GoogleConnection
from clinic.models import Role
from scheduling.models import Appointment
from scheduling.signals import announce_calendar_change
from tests.conftest import logged_in_client
from tests.factories import (
    MembershipFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    book,
)
from tests.google_fake.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeGoogle

EMAIL = "dr.two.way@example.com"


@pytest.fixture
def google(settings, monkeypatch) -> Iterator[FakeGoogle]:
    """A fake Google of the test's own; our settings point at it. oauthlib is allowed plain http to it. Its quotas
    are the settings' (Google's); a test that scales them down changes both (see quota_scaled)."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    with FakeGoogle(
        rate_limit_user=settings.GOOGLE_RATE_LIMIT_USER,
        rate_limit_project=settings.GOOGLE_RATE_LIMIT_PROJECT,
        rate_window=settings.GOOGLE_RATE_WINDOW_SECONDS,
    ) as fake:
        settings.GOOGLE_CLIENT_ID, settings.GOOGLE_CLIENT_SECRET = DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
        settings.GOOGLE_AUTH_URI, settings.GOOGLE_TOKEN_URI = fake.auth_uri, fake.token_uri
        settings.GOOGLE_REVOKE_URI = fake.revoke_uri
        settings.GOOGLE_API_ROOT = fake.url + "/"
        settings.GOOGLE_WEBHOOK_ORIGIN = ""
        yield fake
    assert not fake.internal_errors, "the fake Google failed internally:\n" + "\n".join(fake.internal_errors)


@pytest.fixture
def clinician(clinic_a):
    membership = MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN)
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Two Way", user=membership.user)
    return membership, practitioner


@pytest.fixture
def clinician_client(clinician) -> Client:
    return logged_in_client(clinician[0])


def visit_google(fake: FakeGoogle, url: str) -> str:
    """The browser at Google's consent page: where Google sends it back (the Location)."""
    assert url.startswith(fake.auth_uri), url
    http = httplib2.Http(timeout=10)
    http.follow_redirects = False
    response, _ = http.request(url, "GET")
    assert response.status in (302, 303), response.status
    return response["location"]


def through_google(client: Client, fake: FakeGoogle, response):
    """Where a step ends: when it went to Google's consent screen (to connect, or for more access), the browser
    consents and comes back to our callback; that answer is returned. Other answers are returned as they are."""
    if response.status_code != 302 or not response["Location"].startswith(fake.auth_uri):
        return response
    back = urlsplit(visit_google(fake, response["Location"]))
    return client.get(f"{back.path}?{back.query}")


def connect(client: Client, fake: FakeGoogle, practitioner, *, email: str = EMAIL, default: str = "new"):
    """Sync Calendar → Connect with Google → consent → back → choose the Default Calendar (an existing one asks
    Google for its events first)."""
    fake.set_browser_user(email)
    response = client.post(reverse("calendar_sync:google-connect"), {"practitioner": str(practitioner.public_id)})
    assert response.status_code == 302
    response = through_google(client, fake, response)
    assert response.status_code == 302, response.content
    assert response["Location"].startswith(reverse("calendar_sync:google-default")), response["Location"]
    response = client.post(response["Location"], {"calendar": default, "practitioner": str(practitioner.public_id)})
    response = through_google(client, fake, response)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not response["Location"].startswith(reverse("calendar_sync:google-default")), response["Location"]
    return GoogleConnection.objects.get(practitioner=practitioner)


def sync_secondary(client: Client, fake: FakeGoogle, practitioner, calendar, selected: bool = True):
    """Turn a secondary calendar on (the first one asks Google for reading events) or off."""
    response = client.post(
        reverse("calendar_sync:google-calendar"),
        {
            "calendar": str(calendar.public_id),
            "selected": "1" if selected else "0",
            "practitioner": str(practitioner.public_id),
        },
    )
    return through_google(client, fake, response)


def future_appointment(clinic, practitioner, *, days: int = 3, patient=None) -> Appointment:
    """A booked appointment a few days ahead, announced as the booking service announces one."""
    day = timezone.localdate() + dt.timedelta(days=days)
    session = allocate_session(clinic, practitioner=practitioner, day=day, slot_types=[SlotTypeFactory(clinic=clinic)])
    slot = session.slots.order_by("starts_at").first()
    appointment = book(slot, patient or PatientFactory(clinic=clinic, first_name="Nadia", last_name="Quist"))
    announce_calendar_change([practitioner.pk], appointments=[appointment.pk])
    return appointment


def google_events(fake: FakeGoogle, connection: GoogleConnection) -> list[dict]:
    return fake.events(connection.default_calendar_id)


def quota_scaled(settings, fake: FakeGoogle, *, user: int, project: int, window: float, headroom: int) -> None:
    """Google's quotas scaled down, the same for our pacer (settings) and for the fake that enforces them."""
    settings.GOOGLE_RATE_LIMIT_USER = fake.rate_limit_user = user
    settings.GOOGLE_RATE_LIMIT_PROJECT = fake.rate_limit_project = project
    settings.GOOGLE_RATE_WINDOW_SECONDS = fake.rate_window = window
    settings.GOOGLE_PULL_HEADROOM = headroom


def worker_settings(fake: FakeGoogle) -> dict[str, str]:
    """The worker's Google is the fake, and it reads the tokens this process sealed."""
    return {
        "GOOGLE_CLIENT_ID": DEFAULT_CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "GOOGLE_AUTH_URI": fake.auth_uri,
        "GOOGLE_TOKEN_URI": fake.token_uri,
        "GOOGLE_REVOKE_URI": fake.revoke_uri,
        "GOOGLE_API_ROOT": fake.url + "/",
        "GOOGLE_WEBHOOK_ORIGIN": "",
        "OAUTHLIB_INSECURE_TRANSPORT": "1",
        "SECRET_KEY": settings.SECRET_KEY,
        "SYNC_TOKEN_KEYS": ",".join(settings.SYNC_TOKEN_KEYS),
    }
