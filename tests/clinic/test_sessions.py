"""Sessions: idle sign-out on the server (the strictest clinic's time; background requests are not activity),
the sessions list, ending one session, signing out everywhere, and keys stored only as hashes."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.urls import reverse

from clinic.models import AuditEvent, Role, UserSession
from tests.conftest import logged_in_client
from tests.factories import TEST_PASSWORD, ClinicFactory, MembershipFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2027, 3, 2, 9, 0, tzinfo=dt.UTC)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


def signed_in(membership, agent: str = FIREFOX) -> Client:
    client = Client(HTTP_USER_AGENT=agent)
    response = client.post(reverse("login"), {"username": membership.user.username, "password": TEST_PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    return client


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def test_an_idle_session_is_signed_out_on_the_server(admin_a, clock):
    client = signed_in(admin_a)
    clock.shift(dt.timedelta(minutes=29))
    assert client.get(reverse("clinic:members")).status_code == 200  # activity: the 30 minutes start again
    clock.shift(dt.timedelta(minutes=29))
    assert client.get(reverse("clinic:members")).status_code == 200
    clock.shift(dt.timedelta(minutes=30, seconds=1))
    response = client.get(reverse("clinic:members"), follow=True)
    assert response.redirect_chain[0][0] == f"{reverse('login')}?next=/clinic/members/"
    assert "You were signed out after 30 minutes without activity" in response.content.decode()
    assert not UserSession.objects.filter(user=admin_a.user).exists()
    event = AuditEvent.objects.for_clinic(admin_a.clinic).get(action="signin.signed_out")
    assert event.detail["reason"] == "idle for 30 minutes" and event.actor == admin_a.user
    assert client.get(reverse("home")).status_code == 302


def test_the_strictest_clinic_sets_the_idle_time(clock):
    member = MembershipFactory(clinic=ClinicFactory(idle_logoff_minutes=60), role=Role.ADMIN)
    MembershipFactory(clinic=ClinicFactory(idle_logoff_minutes=10), user=member.user)
    client = signed_in(member)
    clock.shift(dt.timedelta(minutes=9, seconds=50))
    assert client.get(reverse("home")).status_code == 200
    clock.shift(dt.timedelta(minutes=10, seconds=1))
    assert client.get(reverse("home")).url.startswith(reverse("login"))


def test_background_requests_are_not_activity(admin_a, clock):
    client = signed_in(admin_a)
    for _ in range(3):  # a page polling every ten minutes
        clock.shift(dt.timedelta(minutes=9))
        status = client.get(reverse("session-status"), headers={"X-Background": "1"})
        assert status.json()["signed_in"] is True
        assert client.get(reverse("patients:list"), headers={"X-Background": "1"}).status_code == 200
    assert status.json()["remaining"] == 3 * 60
    clock.shift(dt.timedelta(minutes=3, seconds=1))
    expired = client.get(reverse("session-status"), headers={"X-Background": "1"})
    assert expired.status_code == 401 and expired.json() == {"signed_in": False, "remaining": 0}


def test_stay_signed_in_extends_and_htmx_is_sent_to_sign_in_after_expiry(admin_a, clock):
    client = signed_in(admin_a)
    clock.shift(dt.timedelta(minutes=29))
    stay = client.post(reverse("session-status"), headers={"X-Background": "1"})
    assert stay.json() == {"signed_in": True, "remaining": 30 * 60}
    clock.shift(dt.timedelta(minutes=29))
    assert client.get(reverse("home")).status_code == 200
    clock.shift(dt.timedelta(minutes=31))
    htmx = client.get(reverse("patients:list"), headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"].startswith(reverse("login"))


def test_the_page_carries_the_idle_timer(admin_a, clock):
    page = signed_in(admin_a).get(reverse("home")).content.decode()
    assert 'data-idle-remaining="1800"' in page and 'data-idle-limit="1800"' in page
    assert "js/idle.js" in page and 'id="idle-dialog"' in page
    # A session without the sign-in's record (tests' force_login) has no timer and no idle sign-out.
    assert "js/idle.js" not in logged_in_client(admin_a).get(reverse("home")).content.decode()


def test_the_session_table_holds_hashes_of_keys_and_who_where(admin_a, clock):
    client = signed_in(admin_a)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    row = UserSession.objects.get(user=admin_a.user)
    assert row.session_key == hashlib.sha256(key.encode()).hexdigest()
    assert not UserSession.objects.filter(session_key=key).exists()
    assert key not in row.session_data
    assert row.user_agent == "Firefox on Windows" and row.ip_address == "127.0.0.1"
    assert row.signed_in_at == NOW and row.last_seen_at == NOW


def test_the_sessions_page_lists_them_and_ends_one(admin_a, clock):
    laptop = signed_in(admin_a)
    clock.shift(dt.timedelta(minutes=5))
    tablet = signed_in(admin_a, agent="Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) Safari/604.1")
    page = laptop.get(reverse("sessions")).content.decode()
    assert "Firefox on Windows" in page and "Safari on iPad" in page
    assert page.count("This browser") == 1
    other = UserSession.objects.get(user=admin_a.user, user_agent="Safari on iPad")
    response = laptop.post(reverse("session-end", args=[other.public_id]))
    assert response.status_code == 302 and response.url == reverse("sessions")
    assert tablet.get(reverse("home")).url.startswith(reverse("login"))
    assert laptop.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.for_clinic(admin_a.clinic).get(action="signin.session_ended").detail == {
        "session": str(other.public_id)
    }
    # Another user's session (or none) is a 404.
    stranger = signed_in(MembershipFactory(clinic=admin_a.clinic, role=Role.ADMIN))
    mine = UserSession.objects.get(user=admin_a.user)
    assert stranger.post(reverse("session-end", args=[mine.public_id])).status_code == 404
    assert laptop.get(reverse("home")).status_code == 200


def test_sign_out_everywhere_ends_every_session_with_a_confirmation(admin_a, outsider_b, clock):
    first, second = signed_in(admin_a), signed_in(admin_a)
    someone_else = signed_in(outsider_b)
    page = first.get(reverse("sign-out-everywhere")).content.decode()
    assert "Sign out everywhere?" in page and "(2 open)" in page
    assert UserSession.objects.filter(user=admin_a.user).count() == 2  # a GET changes nothing
    response = first.post(reverse("sign-out-everywhere"), follow=True)
    assert "Signed out everywhere (2 sessions)" in response.content.decode()
    assert first.get(reverse("home")).status_code == 302
    assert second.get(reverse("home")).status_code == 302
    assert someone_else.get(reverse("home")).status_code == 200
    assert not UserSession.objects.filter(user=admin_a.user).exists()
    reasons = AuditEvent.objects.for_clinic(admin_a.clinic).filter(action="signin.signed_out")
    assert [e.detail["reason"] for e in reasons] == ["signed out everywhere (1 other sessions ended)"]


def test_signing_out_is_audited(admin_a, clock):
    client = signed_in(admin_a)
    assert client.post(reverse("logout")).status_code == 302
    event = AuditEvent.objects.for_clinic(admin_a.clinic).get(action="signin.signed_out")
    assert event.detail["reason"] == "signed out"
    assert not UserSession.objects.filter(user=admin_a.user).exists()


def test_the_sessions_page_has_a_bounded_number_of_queries(
    admin_a, clock, django_assert_num_queries, django_assert_max_num_queries
):
    client = signed_in(admin_a)
    client.get(reverse("sessions"))
    with django_assert_max_num_queries(50) as few:
        assert client.get(reverse("sessions")).status_code == 200
    few_count = len(few)
    for _ in range(5):
        signed_in(admin_a)
    with django_assert_num_queries(few_count):
        assert client.get(reverse("sessions")).content.decode().count("<td>Firefox on Windows") == 6


def test_the_audit_page_shows_sign_in_events_in_words(admin_a, clock):
    client = signed_in(admin_a)
    Client(HTTP_USER_AGENT=FIREFOX).post(reverse("login"), {"username": admin_a.user.username, "password": "wrong"})
    page = client.get(reverse("clinic:audit")).content.decode()
    assert "Signed in" in page and "browser: Firefox on Windows · ip: 127.0.0.1 · method: password" in page
    assert "Sign-in failed" in page and "step: password" in page


def test_signing_out_this_browser_from_the_list(admin_a, clock):
    client = signed_in(admin_a)
    mine = UserSession.objects.get(user=admin_a.user)
    page = client.get(reverse("session-end", args=[mine.public_id])).content.decode()
    assert "Sign out this browser?" in page
    response = client.post(reverse("session-end", args=[mine.public_id]))
    assert response.status_code == 302 and response.url == reverse("login")
    assert client.get(reverse("home")).status_code == 302
    assert AuditEvent.objects.for_clinic(admin_a.clinic).get(action="signin.signed_out").detail["reason"] == (
        "ended from the sessions page"
    )
