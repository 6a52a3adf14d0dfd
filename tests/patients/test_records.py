"""Patient records: registration, validation, masking, blocked privacy with audit, coverage, archive."""

from __future__ import annotations

import json
import logging

import pytest
from django.urls import reverse

from clinic.models import AuditEvent
from patients.models import Coverage, Patient
from tests.conftest import logged_in_client
from tests.factories import PatientFactory, blocked_national_id_holder

pytestmark = pytest.mark.django_db
NHS = "9434765919"


def patient_data(**overrides):
    data = {
        "first_name": "John",
        "last_name": "Smith",
        "date_of_birth": "1980-03-12",
        "sex": "male",
        "national_id_kind": "nhs",
        "national_id": "943 476 5919",
        "mobile_phone": "07700 900 123",
    }
    data.update(overrides)
    return data


def test_registering_a_patient_numbers_and_normalises(reception_client_a, clinic_a):
    response = reception_client_a.post(reverse("patients:add"), patient_data())
    assert response.status_code == 302
    second = reception_client_a.post(reverse("patients:add"), patient_data(national_id="", last_name="Jones"))
    assert second.status_code == 302
    first, other = Patient.objects.for_clinic(clinic_a).order_by("internal_id")
    assert (first.internal_id, other.internal_id) == ("P000001", "P000002")
    assert (first.national_id, first.mobile_phone, first.mobile_key) == (NHS, "07700900123", "7700900123")
    assert other.national_id is None
    assert AuditEvent.objects.filter(clinic=clinic_a, action="patient.created").count() == 2
    assert "Smith" not in str(AuditEvent.objects.values_list("detail", flat=True)[0])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"national_id": "9434765918"}, "national_id"),  # wrong check digit
        ({"national_id_kind": "ssn", "national_id": "000-12-3456"}, "national_id"),
        ({"national_id_kind": ""}, "national_id_kind"),
        ({"mobile_phone": "12"}, "mobile_phone"),
        ({"date_of_birth": "31/02/1980"}, "date_of_birth"),
        ({"last_name": ""}, "last_name"),
    ],
)
def test_bad_patient_input_gets_messages(reception_client_a, overrides, field):
    response = reception_client_a.post(reverse("patients:add"), patient_data(**overrides))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not Patient.objects.exists()


def test_a_national_id_is_unique_in_a_clinic_but_not_across_clinics(reception_client_a, clinic_a, clinic_b):
    PatientFactory(clinic=clinic_b, national_id_kind="nhs", national_id=NHS)
    assert reception_client_a.post(reverse("patients:add"), patient_data()).status_code == 302
    again = reception_client_a.post(reverse("patients:add"), patient_data(last_name="Other"))
    told = "Another patient of this clinic has this national identifier: John Smith · P000001."
    assert told in again.content.decode()


UNUSABLE = "This national ID cannot be used: check it, or ask a member who can see restricted records."


def test_a_blocked_patients_national_id_is_refused_naming_nobody_and_audited(
    reception_client_a, reception_a, clinic_a, caplog
):
    blocked = blocked_national_id_holder(clinic_a)
    caplog.set_level(logging.DEBUG)
    response = reception_client_a.post(reverse("patients:add"), patient_data(last_name="Other"))
    assert response.status_code == 200
    assert response.context["form"].errors == {"national_id": [UNUSABLE]}
    page = response.content.decode()
    assert UNUSABLE in page
    for told in ("Another patient", "Hidden", "Hester", blocked.internal_id, "blocked"):
        assert told not in page, told
    assert Patient.objects.for_clinic(clinic_a).count() == 1  # refused all the same: national IDs stay unique
    event = AuditEvent.objects.get(clinic=clinic_a, action="patient.national_id_refused")
    assert (event.actor, event.object_id, event.detail) == (reception_a.user, str(blocked.public_id), {"via": "form"})
    for number in (NHS, "943 476 5919", "5919"):
        assert number not in caplog.text
        assert number not in json.dumps(list(AuditEvent.objects.values_list("detail", flat=True)))


def test_editing_a_patient_to_a_blocked_patients_national_id_is_refused_the_same_way(reception_client_a, clinic_a):
    blocked_national_id_holder(clinic_a)
    patient = PatientFactory(clinic=clinic_a, last_name="Smith", first_name="John")
    url = reverse("patients:edit", args=[patient.public_id])
    response = reception_client_a.post(url, patient_data())
    assert response.context["form"].errors == {"national_id": [UNUSABLE]}
    patient.refresh_from_db()
    assert patient.national_id is None
    assert AuditEvent.objects.filter(clinic=clinic_a, action="patient.national_id_refused").count() == 1


def test_a_member_who_may_see_blocked_patients_is_told_which_patient_has_the_national_id(admin_client_a, clinic_a):
    blocked = blocked_national_id_holder(clinic_a)
    response = admin_client_a.post(reverse("patients:add"), patient_data(last_name="Other"))
    assert response.context["form"].errors == {
        "national_id": [
            "Another patient of this clinic has this national identifier: "
            f"Hester Hidden · {blocked.internal_id} (blocked)."
        ]
    }
    assert not AuditEvent.objects.filter(action="patient.national_id_refused").exists()


def test_the_national_id_is_masked_in_lists_and_full_on_the_record(reception_client_a, clinic_a):
    patient = PatientFactory(clinic=clinic_a, last_name="Smith", national_id_kind="nhs", national_id=NHS)
    listing = reception_client_a.get(reverse("patients:list")).content.decode()
    assert NHS not in listing and "•••• 5919" in listing
    quick = reception_client_a.get(reverse("patients:quickview", args=[patient.public_id])).content.decode()
    assert NHS not in quick
    record = reception_client_a.get(reverse("patients:detail", args=[patient.public_id])).content.decode()
    assert NHS in record


def test_blocked_patients_are_invisible_without_the_permission(reception_client_a, admin_client_a, clinic_a):
    open_ = PatientFactory(clinic=clinic_a, last_name="Open")
    blocked = PatientFactory(clinic=clinic_a, last_name="Hidden", is_blocked=True, blocked_reason="Staff relative")
    listing = reception_client_a.get(reverse("patients:list"))
    assert listing.context["total"] == 1 and "HIDDEN" not in listing.content.decode()
    for name in ("patients:detail", "patients:quickview", "patients:edit", "patients:archive", "patients:coverage-add"):
        assert reception_client_a.get(reverse(name, args=[blocked.public_id])).status_code == 404, name
        assert reception_client_a.get(reverse(name, args=[open_.public_id])).status_code == 200, name
    with_permission = admin_client_a.get(reverse("patients:list"))
    assert with_permission.context["total"] == 2
    assert 'class="ico ico-lock" role="img" aria-label="Blocked record"' in with_permission.content.decode()


def test_every_opening_of_a_blocked_record_is_audited(admin_client_a, admin_a, clinic_a):
    blocked = PatientFactory(clinic=clinic_a, is_blocked=True, blocked_reason="VIP")
    plain = PatientFactory(clinic=clinic_a)
    admin_client_a.get(reverse("patients:detail", args=[blocked.public_id]))
    admin_client_a.get(reverse("patients:quickview", args=[blocked.public_id]))
    admin_client_a.get(reverse("patients:detail", args=[blocked.public_id]))
    admin_client_a.get(reverse("patients:detail", args=[plain.public_id]))
    events = AuditEvent.objects.filter(clinic=clinic_a, action="patient.blocked_viewed")
    assert events.count() == 3
    assert {e.actor for e in events} == {admin_a.user}
    assert {e.object_id for e in events} == {str(blocked.public_id)}
    assert sorted(e.detail["view"] for e in events) == ["quickview", "record", "record"]


def test_without_the_permission_a_member_cannot_block(reception_client_a, clinic_a):
    response = reception_client_a.post(
        reverse("patients:add"), patient_data(is_blocked="on", blocked_reason="x", national_id="")
    )
    assert response.status_code == 302
    assert not Patient.objects.get().is_blocked


def test_blocking_needs_a_reason(admin_client_a):
    response = admin_client_a.post(reverse("patients:add"), patient_data(is_blocked="on"))
    assert "Give the reason the record is blocked." in response.content.decode()


def test_coverage_add_edit_and_remove(reception_client_a, clinic_a):
    patient = PatientFactory(clinic=clinic_a)
    add = reception_client_a.post(
        reverse("patients:coverage-add", args=[patient.public_id]),
        {
            "priority": "primary",
            "payer": "Aetna",
            "plan_name": "Gold",
            "member_id": "M1",
            "valid_from": "2026-01-01",
            "valid_to": "2025-01-01",
        },  # fmt: skip
    )
    assert "The plan ends before it starts." in add.content.decode()
    reception_client_a.post(
        reverse("patients:coverage-add", args=[patient.public_id]),
        {"priority": "secondary", "payer": "Aetna", "plan_name": "Gold", "member_id": "M1"},
    )
    coverage = Coverage.objects.for_clinic(clinic_a).get()
    detail = reception_client_a.get(reverse("patients:detail", args=[patient.public_id])).content.decode()
    assert "Aetna" in detail and "Secondary" in detail
    url = reverse("patients:coverage-edit", args=[patient.public_id, coverage.public_id])
    reception_client_a.post(url, {"action": "delete"})
    assert not Coverage.objects.exists()


def test_a_clinic_that_does_not_bill_insurance_keeps_no_plans(reception_client_a, clinic_a):
    clinic_a.bills_insurance = False
    clinic_a.save()
    patient = PatientFactory(clinic=clinic_a)
    old = Coverage.objects.create(clinic=clinic_a, patient=patient, payer="Aetna", plan_name="Gold", member_id="M1")
    for name in ("patients:detail", "patients:quickview"):
        page = reception_client_a.get(reverse(name, args=[patient.public_id])).content.decode()
        assert patient.last_name in page
        assert "Insurance" not in page and "insurance plan" not in page and "Aetna" not in page
    add = reverse("patients:coverage-add", args=[patient.public_id])
    edit = reverse("patients:coverage-edit", args=[patient.public_id, old.public_id])
    assert reception_client_a.get(add).status_code == 404
    new_plan = {"priority": "primary", "payer": "X", "plan_name": "Y", "member_id": "1"}
    assert reception_client_a.post(add, new_plan).status_code == 404
    assert reception_client_a.post(edit, {"action": "delete"}).status_code == 404
    assert list(Coverage.objects.values_list("payer", flat=True)) == ["Aetna"]


def test_archive_asks_then_hides_but_never_deletes(reception_client_a, clinic_a):
    patient = PatientFactory(clinic=clinic_a, last_name="Leaving")
    url = reverse("patients:archive", args=[patient.public_id])
    assert "Patients are never deleted" in reception_client_a.get(url).content.decode()
    reception_client_a.post(url)
    patient.refresh_from_db()
    assert patient.is_archived
    assert "LEAVING" not in reception_client_a.get(reverse("patients:list")).content.decode()
    assert reception_client_a.get(reverse("patients:detail", args=[patient.public_id])).status_code == 200


def test_clinicians_read_but_do_not_edit(clinic_a):
    from clinic.models import Role
    from tests.factories import MembershipFactory

    clinician = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN))
    patient = PatientFactory(clinic=clinic_a)
    assert clinician.get(reverse("patients:detail", args=[patient.public_id])).status_code == 200
    assert clinician.get(reverse("patients:edit", args=[patient.public_id])).status_code == 403
    assert clinician.get(reverse("patients:add")).status_code == 403


def test_the_record_and_the_quickview_load_the_appointments_instead_of_a_placeholder(clinic_a, reception_client_a):
    patient = PatientFactory(clinic=clinic_a)
    appointments = reverse("scheduling:patient-appointments", args=[patient.public_id])
    for name in ("patients:detail", "patients:quickview"):
        body = reception_client_a.get(reverse(name, args=[patient.public_id])).content.decode()
        assert "once booking is available" not in body
        assert f'hx-get="{appointments}"' in body
