"""Two-factor sign-in: authenticator apps (TOTP, on a fixed clock) and recovery codes, enrolment when a clinic
requires it (the strictest of several), nothing reachable between the steps, axes' lockout on the second step,
and the admins' settings and reset."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.models import AuditEvent, Role
from tests.conftest import logged_in_client
from tests.factories import TEST_PASSWORD, ClinicFactory, MembershipFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2027, 3, 2, 9, 0, tzinfo=dt.UTC)


def code_of(device: TOTPDevice, at: dt.datetime = NOW) -> str:
    """The code an authenticator app shows for the device's key at `at` (the frozen clock by default)."""
    with time_machine.travel(at, tick=False):
        return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def enrolled(user) -> TOTPDevice:
    """A confirmed authenticator and ten recovery codes, as the set-up page leaves them."""
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    static = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    for n in range(10):
        static.token_set.create(token=f"recov{n:04d}")
    return device


def password_step(client: Client, user, next_url: str = "") -> object:
    data = {"username": user.username, "password": TEST_PASSWORD}
    url = reverse("login") + (f"?next={next_url}" if next_url else "")
    return client.post(url, data)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def test_without_a_device_or_a_requiring_clinic_the_password_is_enough(client, admin_a, frozen):
    response = password_step(client, admin_a.user)
    assert response.status_code == 302 and response.url == reverse("home")
    assert client.get(reverse("home")).status_code == 200
    event = AuditEvent.objects.for_clinic(admin_a.clinic).get(action="signin.succeeded")
    assert event.actor == admin_a.user and event.detail["method"] == "password"


def test_a_member_with_an_authenticator_gives_a_code_and_nothing_is_reachable_before(client, admin_a, frozen):
    device = enrolled(admin_a.user)
    response = password_step(client, admin_a.user, next_url=reverse("clinic:members"))
    assert response.status_code == 302 and response.url == reverse("two-factor")
    # Between the steps the session is not signed in: every clinic page sends them to sign in.
    for name in ("home", "clinic:members", "patients:list", "account-security", "sessions"):
        page = client.get(reverse(name))
        assert page.status_code == 302 and page.url.startswith(reverse("login")), name
    assert client.get(reverse("session-status")).status_code == 401
    assert "Two-factor sign-in" in client.get(reverse("two-factor")).content.decode()

    response = client.post(reverse("two-factor"), {"code": code_of(device)})
    assert response.status_code == 302 and response.url == reverse("clinic:members")
    assert client.get(reverse("clinic:members")).status_code == 200
    event = AuditEvent.objects.for_clinic(admin_a.clinic).get(action="signin.succeeded")
    assert event.detail["method"] == "authenticator app"


def test_a_code_is_refused_after_its_time_and_once_used(admin_a, frozen):
    device = enrolled(admin_a.user)
    first, second = Client(), Client()
    code = code_of(device)
    password_step(first, admin_a.user)
    password_step(second, admin_a.user)
    assert first.post(reverse("two-factor"), {"code": code}).status_code == 302
    # The same code again (another browser, same 30 seconds): refused, it was used.
    refused = second.post(reverse("two-factor"), {"code": code})
    assert refused.status_code == 200 and "That code is not right" in refused.content.decode()
    # Ten minutes on, a code from then works; the old one does not. (django-otp throttles after a failure.)
    frozen.shift(dt.timedelta(minutes=10))
    assert second.post(reverse("two-factor"), {"code": code}).status_code == 200
    frozen.shift(dt.timedelta(minutes=1))
    later = code_of(device, at=NOW + dt.timedelta(minutes=11))
    assert second.post(reverse("two-factor"), {"code": later}).status_code == 302


def test_a_recovery_code_signs_in_once(admin_a, frozen):
    enrolled(admin_a.user)
    client = Client()
    password_step(client, admin_a.user)
    response = client.post(reverse("two-factor"), {"code": "RECOV 0003"}, follow=True)
    assert response.status_code == 200
    assert "You used a recovery code; 9 left" in response.content.decode()
    assert not StaticToken.objects.filter(token="recov0003").exists()
    other = Client()
    password_step(other, admin_a.user)
    frozen.shift(dt.timedelta(minutes=5))
    refused = other.post(reverse("two-factor"), {"code": "recov0003"})
    assert refused.status_code == 200 and "That code is not right" in refused.content.decode()
    assert AuditEvent.objects.for_clinic(admin_a.clinic).filter(action="signin.failed").get().detail == {
        "step": "second factor",
        "kind": "recovery code",
        "ip": "127.0.0.1",
        "browser": "A browser",
    }


def test_a_requiring_clinic_enrols_the_member_at_sign_in_and_shows_the_codes_once(client, clinic_a, frozen):
    clinic_a.requires_two_factor = True
    clinic_a.save()
    member = MembershipFactory(clinic=clinic_a, role=Role.RECEPTION)
    response = password_step(client, member.user)
    assert response.url == reverse("two-factor")
    response = client.get(reverse("two-factor"))
    assert response.status_code == 302 and response.url.startswith(reverse("two-factor-setup"))
    assert client.get(reverse("home")).url.startswith(reverse("login"))

    page = client.get(reverse("two-factor-setup")).content.decode()
    assert "<svg" in page and "Set up two-factor sign-in" in page
    device = TOTPDevice.objects.get(user=member.user, confirmed=False)
    assert " ".join(device.config_url.split("secret=")[1].split("&")[0][i : i + 4] for i in range(0, 32, 4)) in page
    wrong = client.post(reverse("two-factor-setup"), {"code": "000000" if code_of(device) != "000000" else "111111"})
    assert "That code is not right" in wrong.content.decode()
    frozen.shift(dt.timedelta(seconds=30))  # a new period (django-otp throttles for a second after a failure)
    response = client.post(reverse("two-factor-setup"), {"code": code_of(device, at=NOW + dt.timedelta(seconds=30))})
    assert response.status_code == 302 and response.url.startswith(reverse("recovery-codes"))

    shown = client.get(response.url).content.decode()
    codes = list(StaticToken.objects.filter(device__user=member.user).values_list("token", flat=True))
    assert len(codes) == 10 and all(code in shown for code in codes)
    again = client.get(reverse("recovery-codes")).content.decode()
    assert not any(code in again for code in codes), "recovery codes are shown once"
    assert client.get(reverse("home")).status_code == 200
    actions = set(AuditEvent.objects.for_clinic(clinic_a).values_list("action", flat=True))
    assert {"two_factor.enrolled", "signin.succeeded"} <= actions


def test_a_member_of_several_clinics_meets_the_strictest(client, frozen):
    relaxed, strict, gone = (
        ClinicFactory(),
        ClinicFactory(requires_two_factor=True),
        ClinicFactory(requires_two_factor=True),
    )
    member = MembershipFactory(clinic=relaxed, role=Role.ADMIN)
    MembershipFactory(clinic=gone, user=member.user, is_active=False)  # a suspended membership does not count
    password_step(client, member.user)
    assert client.get(reverse("home")).status_code == 200

    MembershipFactory(clinic=strict, user=member.user)
    other = Client()
    assert password_step(other, member.user).url == reverse("two-factor")
    assert other.get(reverse("two-factor")).url.startswith(reverse("two-factor-setup"))
    # The session signed in before the strict clinic was joined is held at the second step too.
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response.url.startswith(reverse("two-factor"))


def test_a_clinic_that_starts_requiring_it_stops_signed_in_members_at_the_second_step(admin_a):
    client = logged_in_client(admin_a)
    assert client.get(reverse("home")).status_code == 200
    admin_a.clinic.requires_two_factor = True
    admin_a.clinic.save()
    for name in ("home", "clinic:members", "patients:list"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response.url.startswith(reverse("two-factor")), name
    htmx = client.get(reverse("patients:list"), headers={"HX-Request": "true"})
    assert htmx.status_code == 200 and htmx.headers["HX-Redirect"].startswith(reverse("two-factor"))
    assert client.get(reverse("two-factor")).url.startswith(reverse("two-factor-setup"))
    assert client.get(reverse("two-factor-setup")).status_code == 200


def test_wrong_codes_lock_the_account_like_wrong_passwords(client, admin_a, settings, frozen):
    settings.AXES_FAILURE_LIMIT = 5
    device = enrolled(admin_a.user)
    password_step(client, admin_a.user)
    right = code_of(device)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(2):
        assert client.post(reverse("two-factor"), {"code": wrong}).status_code == 200
    # Typing the password again does not wipe the count (nobody is signed in until the second step passes).
    assert password_step(client, admin_a.user).url == reverse("two-factor")
    for _ in range(2):
        assert client.post(reverse("two-factor"), {"code": wrong}).status_code == 200
    locked = client.post(reverse("two-factor"), {"code": wrong})
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.content.decode()
    assert AccessAttempt.objects.get(username=admin_a.user.username).failures_since_start == 5
    # Locked: the right password, then the right code, are refused as well.
    response = password_step(client, admin_a.user)
    assert response.status_code == 429
    assert client.post(reverse("two-factor"), {"code": right}).status_code in (302, 429)
    assert client.get(reverse("home")).url.startswith(reverse("login"))
    assert AuditEvent.objects.for_clinic(admin_a.clinic).filter(action="signin.failed").count() >= 5


def test_admins_require_two_factor_and_set_the_idle_time(admin_client_a, clinic_a):
    url = reverse("clinic:signin-settings")
    assert "Require two-factor sign-in" in admin_client_a.get(url).content.decode()
    refused = admin_client_a.post(url, {"requires_two_factor": "on", "idle_logoff_minutes": "4"})
    assert refused.status_code == 200 and "greater than or equal to 5" in refused.content.decode()
    assert admin_client_a.post(url, {"requires_two_factor": "on", "idle_logoff_minutes": "15"}).status_code == 302
    clinic_a.refresh_from_db()
    assert clinic_a.requires_two_factor and clinic_a.idle_logoff_minutes == 15
    assert AuditEvent.objects.for_clinic(clinic_a).get(action="clinic.updated").detail["fields"] == [
        "idle_logoff_minutes",
        "requires_two_factor",
    ]


def test_the_settings_and_reset_are_for_admins(reception_client_a, admin_a):
    assert reception_client_a.get(reverse("clinic:signin-settings")).status_code == 403
    url = reverse("clinic:member-two-factor-reset", args=[admin_a.public_id])
    assert reception_client_a.post(url).status_code == 403


def test_an_admin_resets_a_members_two_factor_and_they_enrol_again(admin_a, clinic_a, frozen):
    clinic_a.requires_two_factor = True
    clinic_a.save()
    admin_client_a = Client()
    password_step(admin_client_a, admin_a.user)
    assert admin_client_a.post(reverse("two-factor"), {"code": code_of(enrolled(admin_a.user))}).status_code == 302
    member = MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN)
    enrolled(member.user)
    MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN)
    members = admin_client_a.get(reverse("clinic:members")).content.decode()
    assert members.count(">Set up<") == 2 and members.count(">Not set up<") == 1
    url = reverse("clinic:member-two-factor-reset", args=[member.public_id])
    assert "Reset two-factor sign-in for" in admin_client_a.get(url).content.decode()
    assert admin_client_a.post(url).status_code == 302
    assert not TOTPDevice.objects.filter(user=member.user).exists()
    assert not StaticDevice.objects.filter(user=member.user).exists()
    event = AuditEvent.objects.for_clinic(clinic_a).get(action="two_factor.reset")
    assert event.object_id == str(member.public_id) and event.detail["had_authenticator"] is True

    client = Client()
    password_step(client, member.user)
    assert client.get(reverse("two-factor")).url.startswith(reverse("two-factor-setup"))


def test_the_reset_of_another_clinics_member_is_a_404(outsider_client, admin_a):
    url = reverse("clinic:member-two-factor-reset", args=[admin_a.public_id])
    assert outsider_client.get(url).status_code == 404
    assert outsider_client.post(url).status_code == 404


def test_members_list_shows_two_factor_in_a_bounded_number_of_queries(
    admin_client_a, clinic_a, django_assert_num_queries, django_assert_max_num_queries
):
    MembershipFactory(clinic=clinic_a)
    admin_client_a.get(reverse("clinic:members"))  # the first request of a session writes it
    with django_assert_max_num_queries(50) as few:
        assert admin_client_a.get(reverse("clinic:members")).status_code == 200
    few_count = len(few)
    for _ in range(6):
        enrolled(MembershipFactory(clinic=clinic_a).user)
    with django_assert_num_queries(few_count):
        assert admin_client_a.get(reverse("clinic:members")).content.decode().count(">Set up<") == 6


def test_a_member_enrols_voluntarily_and_makes_new_recovery_codes(admin_a, frozen):
    client = Client()
    password_step(client, admin_a.user)
    assert "Set up two-factor sign-in" in client.get(reverse("account-security")).content.decode()
    client.get(reverse("two-factor-setup"))
    device = TOTPDevice.objects.get(user=admin_a.user)
    assert client.post(reverse("two-factor-setup"), {"code": code_of(device)}).status_code == 302
    old = set(StaticToken.objects.filter(device__user=admin_a.user).values_list("token", flat=True))
    response = client.post(reverse("account-security"), {"action": "new-codes"})
    assert response.url == reverse("recovery-codes")
    new = set(StaticToken.objects.filter(device__user=admin_a.user).values_list("token", flat=True))
    assert len(new) == 10 and not old & new
    shown = client.get(response.url).content.decode()
    assert all(code in shown for code in new)
    # The next sign-in asks for a code, though no clinic requires it.
    other = Client()
    assert password_step(other, admin_a.user).url == reverse("two-factor")


def test_the_second_step_must_follow_the_password_within_ten_minutes(client, admin_a, frozen):
    device = enrolled(admin_a.user)
    password_step(client, admin_a.user)
    frozen.shift(dt.timedelta(minutes=10, seconds=1))
    response = client.post(reverse("two-factor"), {"code": code_of(device, at=NOW + dt.timedelta(minutes=10))})
    assert response.status_code == 302 and response.url == reverse("login")
    assert client.get(reverse("home")).url.startswith(reverse("login"))
