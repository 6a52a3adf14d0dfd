"""The clinic export in Chromium (issue 24 item 5): an admin opens Clinic → Export data, starts an export, watches
its progress (htmx polls while it runs and stops when it is done), downloads the zip once, and is told the link was
used; every state of the page passes axe-core.

Screenshots for a person to look at: /tmp/clinic-export-*.png (SHOTS_DIR to put them elsewhere).
"""

from __future__ import annotations

import json
import os
import zipfile

import pytest
from django.test import TestCase
from playwright.sync_api import Page, expect

from clinic.models import Role
from privacy.models import ClinicExport, ExportState
from privacy.selectors.clinic_export import export_plan
from privacy.services.clinic_export import clinic_export_run
from tests.conftest import ALL_PERMISSIONS, tasks_in_process
from tests.e2e.calendar_browser import sign_in
from tests.e2e.test_accessibility import check
from tests.factories import ClinicFactory, MembershipFactory
from tests.privacy.clinic_data import clinic_with_data

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = os.environ.get("SHOTS_DIR", "/tmp")


def exports_section(page: Page):
    return page.locator("section#exports")


def test_an_admin_exports_the_clinic_watches_progress_and_downloads_once(page, live_server, tmp_path):
    clinic = ClinicFactory(name="Export Clinic")
    admin = MembershipFactory(clinic=clinic, role=Role.ADMIN, **ALL_PERMISSIONS)
    clinic_with_data(clinic, "Browser")
    found: list[str] = []
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, live_server, admin)

    page.get_by_role("link", name="Clinic", exact=True).first.click()
    page.get_by_role("navigation", name="Clinic admin").get_by_role("link", name="Export data").click()
    expect(page.get_by_role("heading", name="Export clinic data")).to_be_visible()
    expect(exports_section(page)).to_contain_text("No export has been made yet")
    check(page, "export page, empty", found)

    # Queued and then running: the list polls (no reload) and shows the worker's progress as it moves.
    waiting = ClinicExport.objects.create(clinic=clinic, requested_by=admin.user)
    page.reload()
    expect(exports_section(page)).to_contain_text("Queued")
    expect(page.get_by_role("button", name="Start a new export")).to_be_disabled()
    page.evaluate("window.__marker = 1")
    ClinicExport.objects.filter(pk=waiting.pk).update(state=ExportState.RUNNING, models_total=56, models_done=12)
    expect(exports_section(page)).to_contain_text("Running: 12 of 56 kinds of record")
    expect(page.get_by_label("Running: 12 of 56 kinds of record, 0 rows")).to_have_attribute("value", "12")
    check(page, "export page, running", found)
    page.screenshot(path=f"{SHOTS}/clinic-export-running.png", full_page=True)
    # The worker finishes: the link appears by polling, and polling stops.
    ClinicExport.objects.filter(pk=waiting.pk).update(state=ExportState.QUEUED)
    clinic_export_run(waiting.pk)
    expect(exports_section(page).get_by_role("link", name="Download zip (once)")).to_be_visible(timeout=10_000)
    assert page.evaluate("window.__marker") == 1  # the same page: htmx swapped the list in
    expect(exports_section(page)).not_to_have_attribute("hx-trigger", "every 2s")
    check(page, "export page, done", found)

    # Download it: the zip's manifest counts this clinic's rows; then the link says it was used.
    with page.expect_download() as download_info:
        exports_section(page).get_by_role("link", name="Download zip (once)").click()
    target = tmp_path / "export.zip"
    download_info.value.save_as(target)
    with zipfile.ZipFile(target) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["clinic"]["slug"] == clinic.slug and len(manifest["models"]) == len(export_plan().parts)
    link = exports_section(page).get_by_role("link", name="Download zip (once)").get_attribute("href")
    page.reload()
    expect(exports_section(page)).to_contain_text("the link has been used")
    response = page.goto(live_server.url + link)
    assert response is not None and response.status == 410
    expect(page.get_by_role("status")).to_contain_text("has been used")
    check(page, "download link used", found)

    # A new export from the button (the worker's task run in this process, as in the embedded default).
    page.goto(f"{live_server.url}/privacy/export/")
    with tasks_in_process():
        page.get_by_role("button", name="Start a new export").click()
        expect(page.get_by_role("status")).to_contain_text("Export started")
    expect(exports_section(page).get_by_role("link", name="Download zip (once)")).to_be_visible()
    page.screenshot(path=f"{SHOTS}/clinic-export-done.png", full_page=True)
    assert ClinicExport.objects.for_clinic(clinic).filter(state=ExportState.DONE).count() == 2
    assert found == [], "\n".join(found)


def test_the_page_works_on_a_tablet(page, live_server):
    clinic = ClinicFactory(name="Tablet Clinic")
    admin = MembershipFactory(clinic=clinic, role=Role.ADMIN, **ALL_PERMISSIONS)
    with TestCase.captureOnCommitCallbacks(execute=True), tasks_in_process():
        export = ClinicExport.objects.create(clinic=clinic, requested_by=admin.user)
        clinic_export_run(export.pk)
    page.set_viewport_size({"width": 768, "height": 1024})
    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/privacy/export/")
    link = exports_section(page).get_by_role("link", name="Download zip (once)")
    expect(link).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    # Keyboard: the link is reached with Tab.
    link.focus()
    expect(link).to_be_focused()
    found: list[str] = []
    check(page, "export page on a tablet", found)
    assert found == [], "\n".join(found)
