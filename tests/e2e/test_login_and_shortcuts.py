"""A person signs in, then presses Alt+C to reach the calendar from another page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from clinic.models import Role
from tests.factories import TEST_PASSWORD, MembershipFactory, PractitionerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_sign_in_then_alt_c_opens_the_calendar(page, live_server, csp_violations):
    membership = MembershipFactory(role=Role.RECEPTION)
    PractitionerFactory(clinic=membership.clinic, name="Dr Browser Test")

    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Email").fill(membership.user.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(membership.clinic.name)

    page.get_by_role("link", name="Patients", exact=True).click()
    expect(page).to_have_url(re.compile(r"/patients/$"))
    page.keyboard.press("Alt+c")
    expect(page).to_have_url(re.compile(r"/calendar/$"))
    expect(page.locator("nav.tabs").get_by_text("Dr Browser Test")).to_be_visible()
    assert csp_violations == []


def test_the_clinic_switcher_switches_on_change(page, live_server):
    first = MembershipFactory(role=Role.ADMIN, clinic__name="Alpha Clinic")
    MembershipFactory(role=Role.RECEPTION, clinic__name="Beta Clinic", user=first.user)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(first.user.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Alpha Clinic")
    page.get_by_label("Clinic").select_option(label="Beta Clinic")
    expect(page.get_by_role("heading", level=1)).to_have_text("Beta Clinic")
    expect(page.get_by_text("Now working in Beta Clinic")).to_be_visible()
