"""Export patient data (a subject access request): one zip of patient.json and patient.html holding every row of
every table that has the patient (the app registry walked, so a new model cannot be forgotten), each appointment
with its history, and the audit of who opened the blocked record; audited; admins and privacy officers only."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.models import AuditEvent, Role
from privacy.selectors.patient_data import NOT_EXPORTED
from scheduling.models import Appointment
from scheduling.services.booking import BookingRequest, appointment_book
from tests.conftest import logged_in_client
from tests.factories import MembershipFactory, PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session
from tests.privacy.patient_data import BIRTH, EMAIL, FIRST, LAST, lookups_to_patient, rich_patient, rows_reaching

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2027, 3, 1, 9, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def rich(clinic_a, admin_a):
    return rich_patient(clinic_a, admin_a, day=NOW.date() + dt.timedelta(days=2))


def download(client, patient) -> tuple[dict, str]:
    response = client.post(reverse("privacy:patient-export", args=[patient.public_id]))
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/zip"
    assert str(patient.public_id) in response["Content-Disposition"]
    assert LAST not in response["Content-Disposition"]  # the file name never names the patient
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["patient.html", "patient.json"]
        return json.loads(archive.read("patient.json")), archive.read("patient.html").decode()


def test_the_export_holds_every_row_of_every_table_that_has_the_patient(admin_client_a, rich):
    data, _ = download(admin_client_a, rich.patient)
    walked = lookups_to_patient()
    # The walk finds what a patient's data lives in today (a sanity check of the walk itself).
    assert {"scheduling.appointment", "notifications.message", "patients.coverage", "online.onlinebooking"} <= set(
        walked
    )
    missing, empty = [], []
    for label, lookups in sorted(walked.items()):
        if label in NOT_EXPORTED:  # left out on purpose, each with its reason (nothing of the patient's own)
            continue
        expected = rows_reaching(label, lookups, rich.patient)
        if not expected:
            empty.append(label)
            continue
        exported = {row["public_id"] for row in data["tables"].get(label, [])}
        if exported != expected:
            missing.append(f"{label}: {len(expected - exported)} row(s) missing, {len(exported - expected)} extra")
    assert not missing, "the export does not hold every row that has the patient:\n" + "\n".join(missing)
    assert not empty, (
        "these models can hold a patient's data but the test patient has no row in them: add one to "
        "tests/privacy/patient_data.rich_patient (and check the erasure handles them): " + ", ".join(empty)
    )
    record = data["patient"]
    assert (record["first_name"], record["last_name"], record["date_of_birth"], record["email"]) == (
        FIRST,
        LAST,
        BIRTH.isoformat(),
        EMAIL,
    )
    assert data["tables"]["patients.coverage"][0]["member_id"] == "QF-77881"
    sent = [m for m in data["tables"]["notifications.message"] if m["body"]]
    assert sent and all(m["kind"] and m["channel"] and m["status"] for m in sent)


def test_each_appointment_comes_with_its_history(admin_client_a, rich, admin_a):
    data, page = download(admin_client_a, rich.patient)
    stories = {story["public_id"]: story for story in data["appointments"]}
    assert set(stories) == {str(a.public_id) for a in rich.appointments}
    first, moved, done = rich.appointments[0], rich.appointments[1], rich.appointments[2]
    assert [e["action"] for e in stories[str(first.public_id)]["history"]] == [
        "appointment.booked",
        "appointment.cancelled",
    ]
    assert stories[str(first.public_id)]["rescheduled_to"] == str(moved.public_id)
    assert stories[str(moved.public_id)]["rescheduled_from"] == str(first.public_id)
    assert "appointment.rescheduled" in [e["action"] for e in stories[str(moved.public_id)]["history"]]
    assert [
        e["detail"].get("to") for e in stories[str(done.public_id)]["history"] if e["action"] == "appointment.status"
    ] == [
        "arrived",
        "in_consultation",
        "completed",
    ]
    by = admin_a.user.get_full_name()
    assert all(e["by"] == by for e in stories[str(done.public_id)]["history"])
    assert "Moved to" in page and "Cancelled" in page and "History" in page


def test_the_blocked_patients_record_openings_are_in_it(clinic_a, admin_client_a, rich):
    viewer = MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN, perm_access_blocked_patients=True)
    client = logged_in_client(viewer)
    assert client.get(reverse("patients:detail", args=[rich.patient.public_id])).status_code == 200
    data, page = download(admin_client_a, rich.patient)
    openings = data["record_viewed_while_blocked"]
    assert [e["by"] for e in openings][-1] == viewer.user.get_full_name()
    assert (
        len(openings)
        == AuditEvent.objects.filter(action="patient.blocked_viewed", object_id=str(rich.patient.public_id)).count()
        == 2
    )
    assert "Who opened the record while it was blocked" in page and viewer.user.get_full_name() in page


def test_the_export_is_audited_without_patient_data(admin_client_a, admin_a, rich):
    download(admin_client_a, rich.patient)
    event = AuditEvent.objects.get(action="patient.exported")
    assert event.actor == admin_a.user and event.object_id == str(rich.patient.public_id)
    assert event.detail["appointments"] == 3 and event.detail["tables"]["notifications.message"] >= 2
    assert FIRST not in json.dumps(event.detail) and LAST not in json.dumps(event.detail)


def test_the_page_says_what_the_file_holds_and_an_empty_record_is_still_exported(clinic_a, admin_client_a):
    patient = PatientFactory(clinic=clinic_a, first_name="Olive", last_name="Empty")
    page = admin_client_a.get(reverse("privacy:patient-export", args=[patient.public_id])).content.decode()
    assert "Download the export" in page and "Nothing but the record itself" in page
    data, html = download(admin_client_a, patient)
    assert data["patient"]["last_name"] == "Empty" and data["appointments"] == []
    assert "No appointments." in html


def test_the_patient_page_offers_export_to_admins_and_privacy_officers_only(
    clinic_a, admin_client_a, reception_client_a
):
    patient = PatientFactory(clinic=clinic_a)
    url = reverse("privacy:patient-export", args=[patient.public_id])
    detail = reverse("patients:detail", args=[patient.public_id])
    assert url in admin_client_a.get(detail).content.decode()
    assert url not in reception_client_a.get(detail).content.decode()
    assert reception_client_a.get(url).status_code == 403
    assert reception_client_a.post(url).status_code == 403
    officer = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.RECEPTION, perm_privacy_officer=True))
    assert url in officer.get(detail).content.decode()
    assert officer.post(url).status_code == 200
    assert not AuditEvent.objects.filter(action="patient.exported", actor__isnull=True).exists()


def test_a_blocked_patient_is_a_404_for_an_admin_who_may_not_see_them(clinic_a):
    patient = PatientFactory(clinic=clinic_a, is_blocked=True, blocked_reason="Staff")
    admin = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.ADMIN))
    assert admin.get(reverse("privacy:patient-export", args=[patient.public_id])).status_code == 404
    assert admin.post(reverse("privacy:patient-export", args=[patient.public_id])).status_code == 404


def test_another_clinics_patient_is_a_404_on_every_patient_data_url(clinic_a, outsider_client):
    patient = PatientFactory(clinic=clinic_a)
    for name in ("privacy:patient-export", "privacy:patient-erase"):
        url = reverse(name, args=[patient.public_id])
        assert outsider_client.get(url).status_code == 404
        assert (
            outsider_client.post(url, {"confirm_name": f"{patient.first_name} {patient.last_name}"}).status_code == 404
        )
    assert not AuditEvent.objects.filter(action__in=("patient.exported", "patient.erased")).exists()


def book_some(clinic, admin, patient, count: int, day: dt.date) -> None:
    kind = SlotTypeFactory(clinic=clinic)
    practitioner = PractitionerFactory(clinic=clinic)
    session = allocate_session(clinic, practitioner=practitioner, day=day, slot_types=[kind] * count)
    for slot in session.slots.order_by("starts_at"):
        appointment_book(clinic=clinic, actor=admin.user, membership=admin, request=BookingRequest(slot, patient))


def test_the_export_reads_a_bounded_number_of_queries_whatever_the_patients_history(
    clinic_a, admin_a, admin_client_a, django_assert_max_num_queries
):
    patient = PatientFactory(clinic=clinic_a, email="counted@example.org", mobile_phone="07700 900999")
    page, download_url = (reverse("privacy:patient-export", args=[patient.public_id]),) * 2
    book_some(clinic_a, admin_a, patient, 2, NOW.date() + dt.timedelta(days=3))
    with CaptureQueriesContext(connection) as small_page:
        admin_client_a.get(page)
    with CaptureQueriesContext(connection) as small_file:
        admin_client_a.post(download_url)
    book_some(clinic_a, admin_a, patient, 8, NOW.date() + dt.timedelta(days=4))
    assert Appointment.objects.filter(patient=patient).count() == 10
    with django_assert_max_num_queries(len(small_page)):
        admin_client_a.get(page)
    with django_assert_max_num_queries(len(small_file)):
        admin_client_a.post(download_url)
