"""OAuth as Google does it (issue 18, item 7): the narrowest scopes, a grant carrying more scopes than asked for
(incremental authorization), scopes unticked at consent, and a refused OAuth client (invalid_client) that is the
deployment's to fix, not each practitioner's."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from calendar_sync import tasks
from calendar_sync.google.client import CONNECT_SCOPES, SCOPE_EVENTS_READ
from calendar_sync.models import GoogleCalendar, GoogleConnection, GooglePending, GoogleState
from tests.calendar_sync.google_helpers import EMAIL, connect, future_appointment, sync_secondary, visit_google
from tests.conftest import logged_in_client
from tests.google_fake.server import CALENDAR_SCOPE, DEFAULT_CLIENT_SECRET

pytestmark = pytest.mark.django_db(transaction=True)

APP_CREATED = "https://www.googleapis.com/auth/calendar.app.created"
CALENDAR_LIST_READ = "https://www.googleapis.com/auth/calendar.calendarlist.readonly"


def consent(client, google, practitioner) -> str:
    """Connect with Google → Google's consent page → back: the callback's answer, followed."""
    google.set_browser_user(EMAIL)
    response = client.post(reverse("calendar_sync:google-connect"), {"practitioner": str(practitioner.public_id)})
    back = visit_google(google, response["Location"])
    return client.get(back.split("testserver", 1)[-1], follow=True).content.decode()


def test_connecting_asks_for_the_narrowest_scopes_and_keeps_what_was_granted(google, clinician, clinician_client):
    _, practitioner = clinician
    google.set_browser_user(EMAIL)
    response = clinician_client.post(
        reverse("calendar_sync:google-connect"), {"practitioner": str(practitioner.public_id)}
    )
    asked = set(parse_qs(urlsplit(response["Location"]).query)["scope"][0].split())
    # The calendar made for the clinic and the list of calendars: not every event of every calendar, and not
    # "see, edit, share and delete all your calendars".
    assert asked == {APP_CREATED, CALENDAR_LIST_READ} == set(CONNECT_SCOPES)
    connection = connect(clinician_client, google, practitioner)
    assert set(connection.scopes.split()) == set(CONNECT_SCOPES)
    # A refreshed token asks for no scope of its own: it has what was granted.
    google.expire_access_tokens(EMAIL)
    google.clear_requests()
    future_appointment(connection.clinic, practitioner)
    refreshes = [r for r in google.requests if r.path == "/token"]
    assert refreshes and GoogleConnection.objects.get().state == GoogleState.CONNECTED


def test_a_grant_with_more_scopes_than_asked_for_connects(google, clinician, clinician_client):
    """Google adds the scopes granted before (include_granted_scopes): oauthlib would call that an error."""
    _, practitioner = clinician
    google.issue_tokens(EMAIL, [CALENDAR_SCOPE])  # an earlier version of the app was granted the whole calendar
    page = consent(clinician_client, google, practitioner)
    assert "Connected to Google as" in page
    connection = GoogleConnection.objects.get()
    assert CALENDAR_SCOPE in connection.scopes.split() and set(CONNECT_SCOPES) <= set(connection.scopes.split())


def test_scopes_unticked_at_consent_connect_nothing_and_say_which_box(google, clinician, clinician_client):
    _, practitioner = clinician
    google.untick_next_consent(CALENDAR_LIST_READ)
    page = consent(clinician_client, google, practitioner)
    assert "Google did not grant access to the list of your calendars, so two-way sync is not connected" in page
    assert "tick every box" in page
    assert not GoogleConnection.objects.exists()


def test_a_secondary_calendar_asks_google_for_reading_events_once(google, clinician, clinician_client):
    _, practitioner = clinician
    google.set_browser_user(EMAIL)
    personal = google.user_create_calendar(EMAIL, "Personal")
    family = google.user_create_calendar(EMAIL, "Family")
    connection = connect(clinician_client, google, practitioner)
    rows = {c.calendar_id: c for c in GoogleCalendar.objects.filter(connection=connection)}
    # Unticked at Google's screen: not synced, and the page says why.
    google.untick_next_consent(SCOPE_EVENTS_READ)
    page = sync_secondary(clinician_client, google, practitioner, rows[personal])
    assert not GoogleCalendar.objects.get(pk=rows[personal].pk).selected
    followed = clinician_client.get(page["Location"]).content.decode()
    assert "Google did not grant access to reading the events of your calendars, so that calendar is not synced" in (
        followed
    )
    # Granted: synced, and the next secondary calendar needs no second trip to Google.
    page = sync_secondary(clinician_client, google, practitioner, rows[personal])
    assert GoogleCalendar.objects.get(pk=rows[personal].pk).selected
    assert SCOPE_EVENTS_READ in GoogleConnection.objects.get().scopes.split()
    response = clinician_client.post(
        reverse("calendar_sync:google-calendar"),
        {"calendar": str(rows[family].public_id), "selected": "1", "practitioner": str(practitioner.public_id)},
    )
    assert response["Location"].startswith(reverse("calendar_sync:index"))
    assert GoogleCalendar.objects.get(pk=rows[family].pk).selected


def test_a_refused_oauth_client_is_a_configuration_error_and_connections_recover_when_it_is_fixed(
    google, settings, clinic_a, clinician, clinician_client, admin_a
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    settings.GOOGLE_CLIENT_SECRET = "rotated-in-the-console"  # the deployment's setting is now wrong
    google.expire_access_tokens(EMAIL)  # the next call refreshes the token: invalid_client
    appointment = future_appointment(clinic_a, practitioner)

    connection.refresh_from_db()
    assert connection.state == GoogleState.CONNECTED and not connection.problem  # nobody must reconnect
    assert GooglePending.objects.filter(key=f"a{appointment.pk}").exists()  # kept for later
    admin_page = logged_in_client(admin_a).get(
        reverse("calendar_sync:index") + f"?practitioner={practitioner.public_id}"
    )
    assert "Google refuses this site's OAuth client" in admin_page.content.decode()
    assert "GOOGLE_CLIENT_SECRET" in admin_page.content.decode()
    own_page = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert "Two-way sync is paused" in own_page and "GOOGLE_CLIENT_SECRET" not in own_page
    # While the client is refused, the sweep leaves Google alone.
    google.clear_requests()
    tasks.deliver_waiting.delay().get()
    tasks.google_pull_all.delay().get()
    assert google.count_requests(path_contains="/calendar/v3") == 0
    assert google.count_requests(path_contains="/token") <= 1

    settings.GOOGLE_CLIENT_SECRET = DEFAULT_CLIENT_SECRET  # fixed by the deployment
    assert tasks.deliver_waiting.delay().get()["pushes"] == 1
    assert google.event(connection.default_calendar_id, "csa" + appointment.public_id.hex)["status"] == "confirmed"
    assert not GooglePending.objects.exists()
    assert "Two-way sync is paused" not in clinician_client.get(reverse("calendar_sync:index")).content.decode()


def test_a_refused_oauth_client_at_connect_says_it_is_the_setup_not_the_person(
    google, settings, clinician, clinician_client
):
    _, practitioner = clinician
    settings.GOOGLE_CLIENT_SECRET = "wrong"
    page = consent(clinician_client, google, practitioner)
    assert "Google sync is not set up correctly" in page
    assert not GoogleConnection.objects.exists()
