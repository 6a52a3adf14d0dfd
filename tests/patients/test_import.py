"""CSV import: dry run with line-numbered errors, all-or-nothing unless bad rows are skipped, duplicates."""

from __future__ import annotations

import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from clinic.models import AuditEvent
from patients.models import Patient
from tests.factories import PatientFactory, blocked_national_id_holder

pytestmark = pytest.mark.django_db

GOOD = "Smith,John,1980-03-12,male,nhs,943 476 5919\nJones,Ann,12/03/1981,female,,\n"
HEADER = "last_name,first_name,date_of_birth,sex,national_id_kind,national_id\n"


def upload(client, text, **extra):
    return client.post(
        reverse("patients:import"), {"file": SimpleUploadedFile("p.csv", text.encode()), "action": "check", **extra}
    )


def test_a_dry_run_writes_nothing_and_a_clean_file_imports(reception_client_a, clinic_a):
    response = upload(reception_client_a, HEADER + GOOD)
    assert response.context["check"].can_import and len(response.context["check"].valid) == 2
    assert not Patient.objects.exists()
    text = response.context["form"].initial["csv_text"]
    done = reception_client_a.post(reverse("patients:import"), {"csv_text": text, "action": "import"})
    assert done.status_code == 302
    assert sorted(Patient.objects.for_clinic(clinic_a).values_list("internal_id", flat=True)) == ["P000001", "P000002"]


def test_bad_rows_are_reported_by_line_and_block_the_import_unless_skipped(reception_client_a, clinic_a):
    text = HEADER + GOOD + "Brown,,1990-01-01,male,,\nGreen,Gus,not-a-date,male,nhs,9434765918\n"
    report = upload(reception_client_a, text)
    errors = dict(report.context["check"].errors)
    assert set(errors) == {4, 5}
    assert "First name" in errors[4]
    assert "Date of birth" in errors[5] and "NHS" in errors[5]
    refused = reception_client_a.post(reverse("patients:import"), {"csv_text": text, "action": "import"})
    assert "fix the file, or choose to skip them" in refused.content.decode()
    assert not Patient.objects.exists()
    skipped = reception_client_a.post(
        reverse("patients:import"), {"csv_text": text, "action": "import", "skip_bad_rows": "on"}
    )
    assert skipped.status_code == 302
    assert Patient.objects.for_clinic(clinic_a).count() == 2


def test_duplicates_are_reported_and_never_created_twice(reception_client_a, clinic_a):
    existing = PatientFactory(clinic=clinic_a, national_id_kind="nhs", national_id="9434765919")
    text = HEADER + GOOD + "Smith,Johnny,1980-03-12,male,nhs,9434765919\n"
    report = upload(reception_client_a, text)
    duplicates = dict(report.context["check"].duplicates)
    assert existing.internal_id in duplicates[2]
    assert set(duplicates) == {2, 4}
    reception_client_a.post(reverse("patients:import"), {"csv_text": text, "action": "import"})
    assert Patient.objects.for_clinic(clinic_a).filter(national_id="9434765919").count() == 1
    assert Patient.objects.for_clinic(clinic_a).count() == 2


def test_an_import_row_with_a_blocked_patients_national_id_names_nobody_and_is_audited(
    reception_client_a, reception_a, clinic_a, caplog
):
    blocked = blocked_national_id_holder(clinic_a)
    caplog.set_level(logging.DEBUG)
    report = upload(reception_client_a, HEADER + GOOD)
    check = report.context["check"]
    assert check.duplicates == []
    assert dict(check.errors) == {
        2: "National identifier: This national ID cannot be used: check it, or ask a member who can see "
        "restricted records."
    }
    page = report.content.decode()
    for told in ("Hidden", "Hester", blocked.internal_id, "existing patient", "blocked"):
        assert told not in page, told
    assert "0 duplicates" in page
    event = AuditEvent.objects.get(clinic=clinic_a, action="patient.national_id_refused")
    assert (event.actor, event.object_id) == (reception_a.user, str(blocked.public_id))
    assert event.detail == {"via": "import", "line": 2}
    assert "9434765919" not in caplog.text and "943 476 5919" not in caplog.text
    skipped = reception_client_a.post(
        reverse("patients:import"), {"csv_text": HEADER + GOOD, "action": "import", "skip_bad_rows": "on"}
    )
    assert skipped.status_code == 302
    assert Patient.objects.for_clinic(clinic_a).filter(national_id="9434765919").get() == blocked


def test_an_import_by_a_member_who_may_see_blocked_patients_names_the_duplicate(admin_client_a, clinic_a):
    blocked = blocked_national_id_holder(clinic_a)
    check = upload(admin_client_a, HEADER + GOOD).context["check"]
    assert dict(check.duplicates) == {
        2: f"Another patient of this clinic has this national identifier: Hester Hidden · {blocked.internal_id} "
        "(blocked)."
    }
    assert check.errors == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"first_name,date_of_birth\nJohn,1980-01-01\n", "lacks the column(s): last_name"),
        (b"last_name,first_name,date_of_birth,shoe_size\nA,B,1980-01-01,9\n", "Unknown column(s): shoe_size"),
        ("last_name\n".encode("utf-16"), "not UTF-8"),
    ],
)
def test_whole_file_problems_get_a_message(reception_client_a, content, message):
    response = reception_client_a.post(
        reverse("patients:import"), {"file": SimpleUploadedFile("p.csv", content), "action": "check"}
    )
    assert message in response.content.decode()
    assert not Patient.objects.exists()
