"""Merging a duplicate record (one registered online) into the patient it really is: its appointments and
everything else move with it, the duplicate is archived, the merge is audited; a merge that cannot be made
changes nothing."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from clinic.models import AuditEvent
from patients.models import Patient
from patients.services import MergeError, patient_merge
from scheduling.models import Appointment
from tests.factories import PatientFactory, SlotTypeFactory, allocate_session, book

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(clinic_a):
    keep = PatientFactory(clinic=clinic_a, first_name="Ada", last_name="Lovelace")
    duplicate = PatientFactory(clinic=clinic_a, first_name="Ada", last_name="Lovelace", registered_online=True)
    return keep, duplicate


def test_the_duplicates_appointments_move_and_it_is_archived(clinic_a, admin_a, pair):
    import datetime as dt

    keep, duplicate = pair
    session = allocate_session(clinic_a, day=dt.date(2027, 1, 4), slot_types=[SlotTypeFactory(clinic=clinic_a)] * 2)
    first, second = session.slots.all()
    book(first, duplicate)
    book(second, keep)
    patient_merge(clinic=clinic_a, actor=admin_a.user, keep=keep, duplicate=duplicate)
    assert set(Appointment.objects.values_list("patient_id", flat=True)) == {keep.pk}
    duplicate.refresh_from_db()
    assert duplicate.is_archived and not duplicate.registered_online
    event = AuditEvent.objects.get(action="patient.merged")
    assert event.object_id == str(keep.public_id) and event.detail["duplicate"] == str(duplicate.public_id)
    assert event.detail["moved"] == {"scheduling.appointment": 1}


def test_two_records_booked_into_one_slot_are_not_merged_and_nothing_changes(clinic_a, admin_a, pair):
    import datetime as dt

    keep, duplicate = pair
    group = SlotTypeFactory(clinic=clinic_a, capacity=4)
    slot = allocate_session(clinic_a, day=dt.date(2027, 1, 4), slot_types=[group]).slots.get()
    book(slot, keep)
    book(slot, duplicate)
    with pytest.raises(MergeError, match="booked into the same time"):
        patient_merge(clinic=clinic_a, actor=admin_a.user, keep=keep, duplicate=duplicate)
    duplicate.refresh_from_db()
    assert not duplicate.is_archived
    assert Appointment.objects.filter(patient=duplicate).count() == 1
    assert not AuditEvent.objects.filter(action="patient.merged").exists()


def test_a_patient_of_another_clinic_is_never_merged(clinic_a, clinic_b, admin_a, pair):
    keep, _ = pair
    stranger = PatientFactory(clinic=clinic_b)
    with pytest.raises(MergeError):
        patient_merge(clinic=clinic_a, actor=admin_a.user, keep=keep, duplicate=stranger)


def test_the_merge_page_finds_shows_both_and_merges_on_confirmation(admin_client_a: Client, pair):
    keep, duplicate = pair
    detail = admin_client_a.get(reverse("patients:detail", args=[duplicate.public_id])).content.decode()
    assert "Registered online: check these details" in detail
    url = reverse("patients:merge", args=[duplicate.public_id])
    found = admin_client_a.get(url, {"q": "lovelace"}).content.decode()
    assert f"?keep={keep.public_id}" in found and f"?keep={duplicate.public_id}" not in found
    check = admin_client_a.get(url, {"keep": keep.public_id}).content.decode()
    assert "Moves from (archived)" in check and "Into (kept)" in check
    response = admin_client_a.post(url, {"keep": keep.public_id, "confirm": "merge"})
    assert response.status_code == 302 and response["Location"] == reverse("patients:detail", args=[keep.public_id])
    assert Patient.objects.get(pk=duplicate.pk).is_archived
