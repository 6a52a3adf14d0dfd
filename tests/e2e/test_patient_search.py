"""Reception types into the patient search; results and the quickview follow without a page load."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from clinic.models import Role
from tests.factories import TEST_PASSWORD, MembershipFactory, PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(page, live_server, membership):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(membership.user.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(membership.clinic.name)


def test_results_update_as_you_type_and_open_the_quickview(page, live_server, csp_violations):
    reception = MembershipFactory(role=Role.RECEPTION, perm_manage_appointments=True)
    clinic = reception.clinic
    PatientFactory(clinic=clinic, last_name="Smith", first_name="John", national_id_kind="nhs",
                   national_id="9434765919", mobile_phone="07700900123")  # fmt: skip
    PatientFactory(clinic=clinic, last_name="Smyth", first_name="Jo")
    PatientFactory(clinic=clinic, last_name="Jones", first_name="Ann")
    PatientFactory(clinic=clinic, last_name="Smithers", first_name="Hidden", is_blocked=True, blocked_reason="VIP")
    sign_in(page, live_server, reception)
    page.goto(f"{live_server.url}/patients/")
    loads = []
    page.on("load", lambda _: loads.append(1))
    box = page.get_by_role("searchbox", name="Find a patient")
    box.press_sequentially("sm", delay=50)
    results = page.locator("#results tbody tr")
    expect(results).to_have_count(2)  # Smith, Smyth; the blocked Smithers is not there
    expect(page.locator("#results")).not_to_contain_text("Smithers")
    box.press_sequentially("i", delay=50)
    expect(results).to_have_count(1)
    expect(page).to_have_url(re.compile(r"\?q=smi$"))
    box.fill("+44 7700 900123")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("SMITH, John")
    expect(results.first).to_contain_text("•••• 5919")
    results.first.get_by_role("link").click()
    panel = page.locator("#quickview")
    expect(panel.get_by_role("heading", name=re.compile("John Smith"))).to_be_visible()
    expect(panel).to_contain_text("No insurance plans")
    assert loads == [], "searching and the quickview happen without a page load"
    assert csp_violations == []


def test_blocked_patients_show_a_lock_with_the_permission(page, live_server):
    admin = MembershipFactory(role=Role.ADMIN, perm_access_blocked_patients=True)
    PatientFactory(clinic=admin.clinic, last_name="Smithers", first_name="Hidden", is_blocked=True,
                   blocked_reason="VIP")  # fmt: skip
    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/patients/?q=smithers")
    row = page.locator("#results tbody tr")
    expect(row).to_have_count(1)
    expect(row.get_by_role("img", name="Blocked record")).to_be_visible()
