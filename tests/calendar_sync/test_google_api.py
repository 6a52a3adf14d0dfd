"""The app's Calendar v3 client reaches wherever settings point it, batches included (here: the fake Google)."""

from __future__ import annotations

import pytest

from calendar_sync.google.client import calendar_service, client_config, credentials, google_enabled
from tests.google_fake.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeGoogle


@pytest.fixture
def fake(settings):
    with FakeGoogle() as fake:
        settings.GOOGLE_CLIENT_ID, settings.GOOGLE_CLIENT_SECRET = DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
        settings.GOOGLE_AUTH_URI, settings.GOOGLE_TOKEN_URI = fake.auth_uri, fake.token_uri
        settings.GOOGLE_API_ROOT = fake.url + "/"
        yield fake


def test_google_sync_is_offered_only_with_a_client(settings):
    settings.GOOGLE_CLIENT_ID = settings.GOOGLE_CLIENT_SECRET = ""
    assert not google_enabled()
    settings.GOOGLE_CLIENT_ID, settings.GOOGLE_CLIENT_SECRET = "id", "secret"
    assert google_enabled()


def test_the_client_lists_calendars_refreshes_its_token_and_batches_to_the_configured_root(fake):
    tokens = fake.issue_tokens("dr.feed@example.com")
    # No access token yet: google-auth refreshes it at the configured token endpoint first.
    service = calendar_service(credentials(access_token="", refresh_token=tokens["refresh_token"]))
    calendars = service.calendarList().list().execute()["items"]
    assert [c["id"] for c in calendars] == ["dr.feed@example.com"]
    fake.clear_requests()
    answers = []
    batch = service.new_batch_http_request(callback=lambda _id, response, error: answers.append(error or response))
    for n in range(3):
        batch.add(service.events().insert(calendarId="primary", body={"summary": f"E{n}", **WHEN}))
    batch.execute()
    assert [a["summary"] for a in answers] == ["E0", "E1", "E2"]
    assert fake.count_requests(path_contains="batch") == 1  # one HTTP request, to the fake


def test_the_oauth_client_config_names_the_configured_endpoints(fake):
    config = client_config("http://testserver/sync/google/callback/")["web"]
    assert (config["auth_uri"], config["token_uri"]) == (fake.auth_uri, fake.token_uri)
    assert config["redirect_uris"] == ["http://testserver/sync/google/callback/"]


WHEN = {"start": {"dateTime": "2027-03-01T10:00:00Z"}, "end": {"dateTime": "2027-03-01T11:00:00Z"}}


@pytest.mark.django_db
def test_a_connection_keeps_its_tokens_sealed_and_one_row_per_calendar(clinic_a):
    from django.db import IntegrityError, transaction

    from calendar_sync.crypto import seal, unseal
    from calendar_sync.models import GoogleCalendar, GoogleConnection
    from tests.factories import PractitionerFactory

    connection = GoogleConnection.objects.create(
        clinic=clinic_a,
        practitioner=PractitionerFactory(clinic=clinic_a),
        email="dr.feed@example.com",
        refresh_token=seal("1//refresh"),
    )
    stored = GoogleConnection.objects.values_list("refresh_token", flat=True).get(pk=connection.pk)
    assert "1//refresh" not in stored and unseal(stored) == "1//refresh"
    GoogleCalendar.objects.create(clinic=clinic_a, connection=connection, calendar_id="dr.feed@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        GoogleCalendar.objects.create(clinic=clinic_a, connection=connection, calendar_id="dr.feed@example.com")
