"""Login, lockout, logout, password change and reset."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
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
