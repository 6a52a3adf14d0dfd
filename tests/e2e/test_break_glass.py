"""Break-glass in the browser: reception finds a restricted record by its ID, is refused without a reason, breaks
glass and opens the record; the privacy officer sees the use in the header's count, reviews it and closes it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from clinic.models import AuditEvent, Role
from privacy.models import BreakGlass
from tests.e2e.calendar_browser import sign_in
from tests.factories import ClinicFactory, MembershipFactory, PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_reception_breaks_glass_and_the_officer_closes_the_review(page, live_server, js_errors, csp_violations):
    clinic = ClinicFactory(name="Glass Clinic", slug="glass", internal_ids_enabled=True)
    reception = MembershipFactory(clinic=clinic, role=Role.RECEPTION, perm_manage_appointments=True)
    officer = MembershipFactory(
        clinic=clinic, role=Role.ADMIN, perm_privacy_officer=True, user__first_name="Olive", user__last_name="Officer"
    )
    PatientFactory(
        clinic=clinic, first_name="Hester", last_name="Hidden", internal_id="P000777", is_blocked=True,
        blocked_reason="A member of staff",
    )  # fmt: skip

    sign_in(page, live_server, reception)
    page.goto(f"{live_server.url}/patients/")
    box = page.get_by_role("searchbox", name="Find a patient")
    box.press_sequentially("hidden", delay=30)
    expect(page.locator("#results")).to_contain_text("No patient matches")
    box.fill("P000777")
    restricted = page.get_by_role("group", name="Restricted record")
    expect(restricted).to_be_visible()
    expect(page.locator("#results")).not_to_contain_text("Hester")
    restricted.get_by_role("link", name="Break glass to open").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Break glass")
    page.get_by_role("button", name="Break glass and open the record").click()
    expect(page.get_by_text("Give the reason you need this record.")).to_be_visible()
    expect(page.get_by_text("Confirm that this is an emergency to break glass.")).to_be_visible()
    assert not BreakGlass.objects.exists()

    page.get_by_label("Clinical emergency").check()
    page.get_by_label("Reason").fill("Collapsed at the desk; the GP needs her allergies now.")
    page.get_by_label(re.compile("I confirm this is an emergency")).check()
    page.get_by_role("button", name="Break glass and open the record").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Hester")
    expect(page.locator(".messages")).to_contain_text("Break-glass access granted to this record until")
    assert AuditEvent.objects.filter(action="patient.blocked_viewed", detail__view="record").count() == 1

    page.context.clear_cookies()
    sign_in(page, live_server, officer)
    nav = page.get_by_role("navigation", name="Main")
    link = nav.get_by_role("link", name=re.compile("Break-glass review"))
    expect(link).to_contain_text("1")
    link.click()
    expect(page.locator("table")).to_contain_text("Hester")
    expect(page.locator("table")).to_contain_text("1 opened · 0 booked")
    page.get_by_role("link", name=re.compile("^Review")).click()
    expect(page.get_by_text("Collapsed at the desk")).to_be_visible()
    page.get_by_label("Appropriate", exact=True).check()
    page.get_by_label("Note").fill("Checked with the duty GP: a real emergency.")
    page.get_by_role("button", name="Close the review").click()
    expect(page.get_by_text("No use of break-glass is waiting for review.")).to_be_visible()
    expect(nav.get_by_role("link", name=re.compile("Break-glass review"))).not_to_contain_text("1")
    page.get_by_role("link", name="Closed").click()
    expect(page.locator("table")).to_contain_text("Appropriate")
    use = BreakGlass.objects.get()
    assert use.outcome == "appropriate" and use.reviewed_by == officer.user
    assert js_errors == [] and csp_violations == []
