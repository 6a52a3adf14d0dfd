"""A patient's data in the browser: from the patient's page, Export patient data downloads one zip (JSON and a
readable page); Erase record asks for the patient's name and leaves an "Erased record"; every page passes axe."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from clinic.models import AuditEvent
from patients.models import Patient
from tests.e2e.calendar_browser import sign_in
from tests.e2e.test_accessibility import accessibility_problems
from tests.factories import PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session, book

pytestmark = pytest.mark.django_db(transaction=True)


def axe_clean(page: Page, where: str) -> None:
    assert accessibility_problems(page, where) == []


def test_export_then_erase_from_the_patients_page(
    page: Page, live_server, clinic_a, admin_a, js_errors, csp_violations
):
    patient: Patient = PatientFactory(  # type: ignore[assignment]  # factory_boy returns the model instance
        clinic=clinic_a, first_name="Opal", last_name="Oldfield", email="opal@example.org", mobile_phone="07700 900777"
    )
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Long Ago")
    long_ago = timezone.localdate() - dt.timedelta(days=365 * 10)
    session = allocate_session(
        clinic_a, practitioner=practitioner, day=long_ago, slot_types=[SlotTypeFactory(clinic=clinic_a)]
    )
    book(session.slots.get(), patient, status="completed")

    sign_in(page, live_server, admin_a)
    page.goto(live_server.url + reverse("patients:detail", args=[patient.public_id]))
    section = page.get_by_role("region", name="Patient data")
    section.get_by_role("link", name="Export patient data").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Export patient data")
    axe_clean(page, "export page")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the export").click()
    with zipfile.ZipFile(io.BytesIO(download.value.path().read_bytes())) as archive:
        data = json.loads(archive.read("patient.json"))
        html = archive.read("patient.html").decode()
    assert data["patient"]["last_name"] == "Oldfield" and len(data["appointments"]) == 1
    assert "Oldfield" in html and "Dr Long Ago" in html
    assert AuditEvent.objects.filter(action="patient.exported", object_id=str(patient.public_id)).count() == 1

    page.goto(live_server.url + reverse("patients:detail", args=[patient.public_id]))
    page.get_by_role("region", name="Patient data").get_by_role("link", name="Erase record…").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Erase")
    axe_clean(page, "erase confirmation")
    page.get_by_label("Type the patient's full name to confirm").fill("Opal Someone")
    page.get_by_role("button", name="Erase the record").click()
    expect(page.get_by_text("That is not the patient's name")).to_be_visible()
    axe_clean(page, "erase confirmation refused")
    page.get_by_label("Type the patient's full name to confirm").fill("opal oldfield")
    page.get_by_role("button", name="Erase the record").click()
    expect(page.get_by_role("status").filter(has_text="Erased record")).to_be_visible()
    expect(page.get_by_text("Oldfield")).to_have_count(0)
    axe_clean(page, "an erased record")
    assert Patient.objects.get(pk=patient.pk).erased_at is not None

    page.goto(live_server.url + reverse("privacy:retention"))
    expect(page.get_by_label("Keep appointment records for (years)")).to_have_value("8")
    axe_clean(page, "data retention")
    page.get_by_label("Keep appointment records for (years)").fill("10")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Data retention saved.")).to_be_visible()
    clinic_a.refresh_from_db()
    assert clinic_a.retention_years == 10
    assert js_errors == [] and csp_violations == []


def test_a_refusal_within_retention_passes_axe_and_says_when(page: Page, live_server, clinic_a, admin_a):
    patient: Patient = PatientFactory(clinic=clinic_a, first_name="Recent", last_name="Visitor")  # type: ignore[assignment]
    practitioner = PractitionerFactory(clinic=clinic_a)
    day = timezone.localdate() - dt.timedelta(days=30)
    session = allocate_session(
        clinic_a, practitioner=practitioner, day=day, slot_types=[SlotTypeFactory(clinic=clinic_a)]
    )
    book(session.slots.get(), patient, status="completed")
    sign_in(page, live_server, admin_a)
    page.goto(live_server.url + reverse("privacy:patient-erase", args=[patient.public_id]))
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("cannot be erased now")
    expect(alert).to_contain_text(f"from {day.day} {day:%B} {day.year + 8}")
    expect(page.get_by_label("Type the patient's full name to confirm")).to_have_count(0)
    axe_clean(page, "erase refused")
