"""Login, lockout, logout, password change and reset."""

from __future__ import annotations

import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def test_it_signs_a_member_in_and_shows_their_clinic(client, admin_a):
    response = client.post(
        reverse("login"), {"username": admin_a.user.username, "password": TEST_PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("home")
    assert response.context["request"].clinic == admin_a.clinic


def test_a_wrong_password_gets_a_message_on_the_form(client, admin_a):
    response = client.post(reverse("login"), {"username": admin_a.user.username, "password": "nope"})
    assert response.status_code == 200
    assert "enter a correct email and password" in response.content.decode().lower()


def test_the_sign_in_asks_for_the_email_members_are_invited_with(client, admin_a):
    page = client.get(reverse("login")).content.decode()
    assert re.search(r'<label[^>]*for="id_username"[^>]*>Email', page), "the login field is labelled Email"
    assert "Username" not in page
    assert 'autocomplete="username"' in page


def test_repeated_failed_logins_lock_the_account_even_for_the_right_password(client, admin_a, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": admin_a.user.username, "password": "wrong-guess"})
    response = client.post(reverse("login"), {"username": admin_a.user.username, "password": TEST_PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_failures_below_the_limit_do_not_lock(client, admin_a, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(reverse("login"), {"username": admin_a.user.username, "password": "wrong-guess"})
    response = client.post(reverse("login"), {"username": admin_a.user.username, "password": TEST_PASSWORD})
    assert response.status_code == 302


PROXY = "172.18.0.5"  # the TLS proxy of docker-compose: every request reaches us from it


def sign_in_through_the_proxy(client, membership, password, forwarded_for):
    data = {"username": membership.user.username, "password": password}
    return client.post(reverse("login"), data, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)


def test_behind_the_proxy_the_lockout_is_of_one_client_not_everyone_behind_it(admin_a, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    attacker, colleague = Client(), Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in_through_the_proxy(attacker, admin_a, "wrong-guess", "198.51.100.7")
    assert sign_in_through_the_proxy(attacker, admin_a, TEST_PASSWORD, "198.51.100.7").status_code == 429
    # An address the client adds itself (left of the one the proxy appended) changes nothing.
    assert sign_in_through_the_proxy(attacker, admin_a, TEST_PASSWORD, "10.9.9.9, 198.51.100.7").status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}
    # Another client behind the same proxy still signs in to the same account.
    assert sign_in_through_the_proxy(colleague, admin_a, TEST_PASSWORD, "203.0.113.20").status_code == 302
    assert "_auth_user_id" in colleague.session


def test_without_a_trusted_proxy_a_forged_x_forwarded_for_is_not_believed(admin_a, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    attacker = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):  # a new made-up address each time
        sign_in_through_the_proxy(attacker, admin_a, "wrong-guess", f"198.51.100.{n}")
    assert sign_in_through_the_proxy(attacker, admin_a, TEST_PASSWORD, "203.0.113.20").status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {PROXY}


@pytest.mark.parametrize(
    ("count", "forwarded_for", "client"),
    [
        (0, "198.51.100.7", PROXY),
        (1, "198.51.100.7", "198.51.100.7"),
        (1, "10.9.9.9, 198.51.100.7", "198.51.100.7"),
        (2, "10.9.9.9, 198.51.100.7, 192.0.2.44", "198.51.100.7"),  # a CDN, then our proxy
        (2, "198.51.100.7", PROXY),  # fewer entries than proxies: it did not come through them
        (1, "", PROXY),
        (1, "not-an-address", PROXY),
    ],
)
def test_the_client_address_is_the_one_the_outermost_trusted_proxy_saw(settings, rf, count, forwarded_for, client):
    from clinic.proxy import client_ip

    settings.TRUSTED_PROXY_COUNT = count
    assert client_ip(rf.get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)) == client


def test_logout_needs_post_and_ends_the_session(admin_client_a):
    assert admin_client_a.get(reverse("logout")).status_code == 405
    admin_client_a.post(reverse("logout"))
    assert admin_client_a.get(reverse("home")).status_code == 302


def test_password_change(admin_client_a, admin_a):
    response = admin_client_a.post(
        reverse("password_change"),
        {
            "old_password": TEST_PASSWORD,
            "new_password1": "a-new-long-passphrase",
            "new_password2": "a-new-long-passphrase",
        },
    )
    assert response.status_code == 302
    admin_a.user.refresh_from_db()
    assert admin_a.user.check_password("a-new-long-passphrase")
    assert admin_a.user.password.startswith("argon2")


def test_password_reset_by_email(client, admin_a):
    client.post(reverse("password_reset"), {"email": admin_a.user.email})
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/password/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.context["validlink"]
    response = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "reset-passphrase-42", "new_password2": "reset-passphrase-42"},
    )
    assert response.status_code == 302
    assert get_user_model().objects.get(pk=admin_a.user.pk).check_password("reset-passphrase-42")


def test_password_reset_does_not_reveal_whether_an_address_exists(client):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 0
