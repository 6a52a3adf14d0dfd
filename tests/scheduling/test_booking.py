"""Reception booking from a slot: search, the patient card and coverage, review, book; cancel frees the place."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import RequestFactory
from django.urls import reverse

from clinic.models import AuditEvent
from patients.models import Coverage
from scheduling.models import Appointment, AppointmentStatus
from scheduling.views.booking import who_and_when
from tests.conftest import logged_in_client
from tests.factories import (
    DepartmentFactory,
    OtherEventFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    book,
)

pytestmark = pytest.mark.django_db
DAY = dt.date(2027, 6, 7)


@pytest.fixture
def slot(clinic_a):
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Book")
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine")
    return allocate_session(clinic_a, practitioner=practitioner, day=DAY, slot_types=[routine, None]).slots.first()


def plan(patient, priority="primary", payer="Aetna"):
    return Coverage.objects.create(
        clinic=patient.clinic, patient=patient, payer=payer, plan_name="Gold", member_id="M1", priority=priority
    )


def test_the_whole_flow_search_card_review_book(clinic_a, reception_client_a, slot):
    patient = PatientFactory(clinic=clinic_a, first_name="Nadia", last_name="Quist")
    primary = plan(patient)
    department = DepartmentFactory(clinic=clinic_a, name="General practice")
    url = reverse("scheduling:book", args=[slot.public_id])
    assert "Find the patient" in reception_client_a.get(url).content.decode()
    results = reception_client_a.get(url, {"q": "quist"}).content.decode()
    assert f"?patient={patient.public_id}" in results and "Quist, Nadia" in results
    card = reception_client_a.get(url, {"patient": str(patient.public_id)}).content.decode()
    assert "Nadia Quist" in card and "SELF PAY" in card and "Primary: Aetna · Gold" in card
    assert "Riverside" not in card and clinic_a.name in card  # provider group: the clinic, read-only
    form = {
        "patient": str(patient.public_id),
        "coverage": str(primary.public_id),
        "department": str(department.public_id),
        "slot_type": str(slot.slot_type.public_id),
        "resources": [str(slot.session.practitioner.public_id)],
    }
    review = reception_client_a.post(url, {**form, "action": "review"})
    assert review.status_code == 200
    text = review.content.decode()
    assert "Review Appointment Details" in text and "Book appointment" in text and "General practice" in text
    assert not Appointment.objects.exists()  # reviewing books nothing
    response = reception_client_a.post(url, {**form, "action": "book"})
    assert response.status_code == 302 and "view=day&date=2027-06-07" in response["Location"]
    appointment = Appointment.objects.get()
    assert (appointment.patient, appointment.coverage, appointment.department) == (patient, primary, department)
    assert appointment.practitioner == slot.session.practitioner and not appointment.self_pay
    assert appointment.starts_at == slot.starts_at and appointment.status == AppointmentStatus.BOOKED
    slot.refresh_from_db()
    assert slot.booked_count == 1
    assert AuditEvent.objects.filter(action="appointment.booked", object_id=str(appointment.public_id)).exists()
    # The single slot is now full: the tooltip says so, and a second booking is refused with a message.
    tip = reception_client_a.get(reverse("scheduling:slot", args=[slot.public_id])).content.decode()
    assert "This slot is full." in tip and "Book Appointment" not in tip and "Nadia Quist" in tip
    other = PatientFactory(clinic=clinic_a)
    again = reception_client_a.post(
        url, {**form, "patient": str(other.public_id), "coverage": "self", "action": "book"}
    )
    assert "This slot is full." in again.content.decode()
    assert Appointment.objects.count() == 1


def test_booking_through_htmx_closes_the_popup_and_refreshes_the_calendar(clinic_a, reception_client_a, slot):
    patient = PatientFactory(clinic=clinic_a)
    url = reverse("scheduling:book", args=[slot.public_id])
    response = reception_client_a.post(
        url,
        {
            "patient": str(patient.public_id),
            "coverage": "self",
            "slot_type": str(slot.slot_type.public_id),
            "action": "book",
        },
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 204 and "calendar:changed" in response["HX-Trigger"]
    assert Appointment.objects.get().self_pay


def test_a_group_slot_takes_one_place_per_booking_until_full(clinic_a, reception_a, reception_client_a):
    group = SlotTypeFactory(clinic=clinic_a, name="Group therapy", capacity=3)
    slot = allocate_session(
        clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=DAY, slot_types=[group]
    ).slots.get()
    url = reverse("scheduling:book", args=[slot.public_id])
    for n in range(3):
        patient = PatientFactory(clinic=clinic_a)
        reception_client_a.post(
            url,
            {
                "patient": str(patient.public_id),
                "coverage": "self",
                "slot_type": str(group.public_id),
                "action": "book",
            },
        )
        slot.refresh_from_db()
        assert slot.booked_count == n + 1
    tip = reception_client_a.get(reverse("scheduling:slot", args=[slot.public_id])).content.decode()
    assert "3/3" in tip and "This group is full." in tip
    assert "This group is full (3 places)." in reception_client_a.get(url).content.decode()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"coverage": "self", "secondary_coverage": "PRIMARY"}, "A self-pay appointment has no secondary plan."),
        ({"coverage": "PRIMARY", "secondary_coverage": "PRIMARY"}, "Choose a different plan from the primary one."),
        ({"coverage": "not-a-plan"}, "Select a valid choice."),
        ({"coverage": "self", "slot_type": "00000000-0000-0000-0000-000000000000"}, "Select a valid choice."),
    ],
)
def test_bad_booking_forms_are_refused_with_a_message(clinic_a, reception_client_a, slot, fields, message):
    patient = PatientFactory(clinic=clinic_a)
    primary = plan(patient)
    data = {"patient": str(patient.public_id), "slot_type": str(slot.slot_type.public_id), "action": "book"}
    data |= {k: str(primary.public_id) if v == "PRIMARY" else v for k, v in fields.items()}
    response = reception_client_a.post(reverse("scheduling:book", args=[slot.public_id]), data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Appointment.objects.exists()


def test_a_blank_slot_cannot_be_booked(clinic_a, reception_client_a, slot):
    blank = slot.session.slots.get(slot_type__isnull=True)
    patient = PatientFactory(clinic=clinic_a)
    response = reception_client_a.post(
        reverse("scheduling:book", args=[blank.public_id]), {"patient": str(patient.public_id), "coverage": "self"}
    )
    assert "This slot cannot be booked" in response.content.decode()
    assert not Appointment.objects.exists()


def test_blocked_patients_need_the_permission_to_be_found_and_booked(
    clinic_a, admin_client_a, reception_client_a, slot
):
    patient = PatientFactory(clinic=clinic_a, last_name="Hidden", is_blocked=True, blocked_reason="VIP")
    url = reverse("scheduling:book", args=[slot.public_id])
    assert "Hidden" not in reception_client_a.get(url, {"q": "hidden"}).content.decode()
    assert reception_client_a.get(url, {"patient": str(patient.public_id)}).status_code == 404
    data = {"patient": str(patient.public_id), "coverage": "self", "slot_type": str(slot.slot_type.public_id)}
    assert reception_client_a.post(url, {**data, "action": "book"}).status_code == 404
    assert not Appointment.objects.exists()
    # The admin holds "Privacy: Access Blocked Patients": sees the lock, books, and both are audited.
    found = admin_client_a.get(url, {"q": "hidden"}).content.decode()
    assert '<span class="badge"><span class="ico ico-lock" aria-hidden="true"></span> blocked</span>' in found
    admin_client_a.get(url, {"patient": str(patient.public_id)})
    assert admin_client_a.post(url, {**data, "action": "book"}).status_code == 302
    assert Appointment.objects.filter(patient=patient).exists()
    assert AuditEvent.objects.filter(action="appointment.booked", detail__blocked=True).count() == 1
    assert AuditEvent.objects.filter(object_id=str(patient.public_id)).exists()


def test_cancelling_needs_a_reason_and_frees_the_place(clinic_a, reception_client_a, slot):
    appointment = book(slot, PatientFactory(clinic=clinic_a))
    url = reverse("scheduling:appointment-cancel", args=[appointment.public_id])
    assert "Reason for cancelling" in reception_client_a.get(url).content.decode()
    response = reception_client_a.post(url, {"reason": "   "})
    assert response.status_code == 422 and "This field is required." in response.content.decode()
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED
    response = reception_client_a.post(url, {"reason": "Patient unwell"})
    assert response.status_code == 302
    appointment.refresh_from_db()
    slot.refresh_from_db()
    assert (appointment.status, appointment.cancel_reason, slot.booked_count) == ("cancelled", "Patient unwell", 0)
    assert appointment.cancelled_at is not None
    assert AuditEvent.objects.filter(action="appointment.cancelled").count() == 1
    assert "already cancelled" in reception_client_a.post(url, {"reason": "again"}).content.decode()
    slot.refresh_from_db()
    assert slot.booked_count == 0
    # The place is free again: the same patient can be booked into it afresh.
    again = reception_client_a.post(
        reverse("scheduling:book", args=[slot.public_id]),
        {
            "patient": str(appointment.patient.public_id),
            "coverage": "self",
            "slot_type": str(slot.slot_type.public_id),
            "action": "book",
        },
    )
    assert again.status_code == 302
    assert Appointment.objects.live().count() == 1


def test_garbage_ids_in_forms_and_query_strings_are_404_not_500(clinic_a, reception_client_a, slot):
    reception_client_a.raise_request_exception = True
    url = reverse("scheduling:book", args=[slot.public_id])
    assert reception_client_a.get(url, {"patient": "not-a-uuid"}).status_code == 404
    assert reception_client_a.post(url, {"patient": "not-a-uuid", "action": "book"}).status_code == 404
    assert reception_client_a.get(reverse("scheduling:next-available"), {"slot_type": "nope"}).status_code == 200


def test_the_secondary_plan_list_never_offers_the_chosen_primary_plan(clinic_a, reception_client_a, slot):
    patient = PatientFactory(clinic=clinic_a)
    aetna, cigna = plan(patient), plan(patient, priority="secondary", payer="Cigna")
    url = reverse("scheduling:book", args=[slot.public_id])

    def secondary_options(html: str) -> dict[str, str]:
        found = re.search(r'<select name="secondary_coverage".*?</select>', html, re.S)
        assert found is not None, "the card has the secondary plan list"
        select = found.group()
        return {m[1]: m[0] for m in re.findall(r'(<option value="([^"]*)"[^>]*>)', select)}

    card = secondary_options(reception_client_a.get(url, {"patient": str(patient.public_id)}).content.decode())
    assert "hidden" in card[str(aetna.public_id)] and "disabled" in card[str(aetna.public_id)]  # the primary
    assert "hidden" not in card[str(cigna.public_id)]
    # Cigna chosen as the primary instead: now Cigna is the one not offered.
    data = {
        "patient": str(patient.public_id),
        "coverage": str(cigna.public_id),
        "slot_type": str(slot.slot_type.public_id),
    }
    review = secondary_options(reception_client_a.post(url, {**data, "action": "review"}).content.decode())
    assert "hidden" in review[str(cigna.public_id)] and "hidden" not in review[str(aetna.public_id)]
    # A secondary equal to the primary is still refused with a clear message, should a request carry one.
    same = reception_client_a.post(url, {**data, "secondary_coverage": str(cigna.public_id), "action": "book"})
    assert "Choose a different plan from the primary one." in same.content.decode()
    assert not Appointment.objects.exists()


def test_booking_over_busy_time_warns_and_records_the_warning(clinic_a, reception_client_a, slot):
    practitioner = slot.session.practitioner
    leave = OtherEventFactory(
        clinic=clinic_a, practitioner=practitioner, title="Annual leave", all_day=True, starts_at=None, ends_at=None,
        first_date=DAY, last_date=DAY + dt.timedelta(days=4),
    )  # fmt: skip
    training = OtherEventFactory(
        clinic=clinic_a, practitioner=practitioner, title="Training",
        starts_at=slot.starts_at - dt.timedelta(minutes=5), ends_at=slot.starts_at + dt.timedelta(minutes=5),
    )  # fmt: skip
    OtherEventFactory(  # shown as free: no warning
        clinic=clinic_a, practitioner=practitioner, title="Reading", busy=False, starts_at=slot.starts_at,
        ends_at=slot.ends_at,
    )  # fmt: skip
    OtherEventFactory(  # another practitioner's leave: not this slot's business
        clinic=clinic_a, title="Someone else's leave", all_day=True, starts_at=None, ends_at=None, first_date=DAY,
        last_date=DAY,
    )  # fmt: skip
    patient = PatientFactory(clinic=clinic_a)
    url = reverse("scheduling:book", args=[slot.public_id])
    form = reception_client_a.get(url, {"patient": str(patient.public_id)}).content.decode()
    assert "Dr Book is busy then:</strong> Training (" in form and "Annual leave (all day)" in form
    assert "Booking stays possible." in form and "Reading" not in form and "Someone else" not in form
    data = {"patient": str(patient.public_id), "coverage": "self", "slot_type": str(slot.slot_type.public_id)}
    assert reception_client_a.post(url, {**data, "action": "book"}).status_code == 302  # still possible
    booked = AuditEvent.objects.get(action="appointment.booked")
    assert sorted(booked.detail["busy_events"]) == sorted([str(training.public_id), str(leave.public_id)])


def test_booking_without_busy_time_records_no_warning(clinic_a, reception_client_a, slot):
    patient = PatientFactory(clinic=clinic_a)
    url = reverse("scheduling:book", args=[slot.public_id])
    assert "is busy then" not in reception_client_a.get(url, {"patient": str(patient.public_id)}).content.decode()
    data = {"patient": str(patient.public_id), "coverage": "self", "slot_type": str(slot.slot_type.public_id)}
    reception_client_a.post(url, {**data, "action": "book"})
    assert AuditEvent.objects.get(action="appointment.booked").detail["busy_events"] == []


def test_book_appointment_lists_the_members_own_department(clinic_a, clinic_b, admin_client_a, reception_a, slot):
    from clinic.models import Membership

    nursing = DepartmentFactory(clinic=clinic_a, name="Nursing")
    DepartmentFactory(clinic=clinic_a, name="General practice")
    theirs = DepartmentFactory(clinic=clinic_b, name="Nursing")
    url = reverse("clinic:member-edit", args=[reception_a.public_id])
    form = {"role": "reception", "perm_manage_appointments": "on", "is_active": "on"}
    refused = admin_client_a.post(url, {**form, "department": theirs.pk})  # another clinic's: not a choice
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert admin_client_a.post(url, {**form, "department": nursing.pk}).status_code == 302
    assert Membership.objects.get(pk=reception_a.pk).department == nursing
    patient = PatientFactory(clinic=clinic_a)
    card = logged_in_client(reception_a).get(
        reverse("scheduling:book", args=[slot.public_id]), {"patient": str(patient.public_id)}
    )
    assert card.context["form"]["department"].value() == nursing.public_id  # two departments: the member's own
    # Without a department of their own, nothing is chosen for them among several.
    Membership.objects.filter(pk=reception_a.pk).update(department=None)
    again = logged_in_client(reception_a).get(
        reverse("scheduling:book", args=[slot.public_id]), {"patient": str(patient.public_id)}
    )
    assert again.context["form"]["department"].value() is None


def test_a_clinic_that_does_not_bill_insurance_books_without_plans_or_self_pay(clinic_a, reception_client_a, slot):
    clinic_a.bills_insurance = False
    clinic_a.save()
    patient = PatientFactory(clinic=clinic_a, first_name="Nadia", last_name="Quist")
    plan(patient)  # a plan on file from before the practice stopped billing: never offered
    url = reverse("scheduling:book", args=[slot.public_id])
    card = reception_client_a.get(url, {"patient": str(patient.public_id)}).content.decode()
    assert "Nadia Quist" in card and "Appointment type" in card
    assert "SELF PAY" not in card and "Insurance" not in card and "Aetna" not in card
    form = {"patient": str(patient.public_id), "slot_type": str(slot.slot_type.public_id)}
    review = reception_client_a.post(url, {**form, "action": "review"}).content.decode()
    assert "Review Appointment Details" in review and "Insurance" not in review and "SELF PAY" not in review
    assert reception_client_a.post(url, {**form, "action": "book"}).status_code == 302
    appointment = Appointment.objects.get()
    assert (appointment.coverage, appointment.secondary_coverage, appointment.self_pay) == (None, None, False)
    page = reception_client_a.get(reverse("scheduling:appointment", args=[appointment.public_id])).content.decode()
    assert "Nadia Quist" in page and "Insurance" not in page


def test_a_confirmation_names_a_blocked_patient_only_to_members_who_may_see_them(
    clinic_a, admin_a, reception_a, reception_client_a, slot
):
    patient = PatientFactory(
        clinic=clinic_a, first_name="Vera", last_name="Private", is_blocked=True, blocked_reason="VIP"
    )
    appointment = book(slot, patient)
    moment = dt.datetime(2027, 6, 7, 9, tzinfo=dt.UTC)
    request = RequestFactory().post("/")
    request.viewer_zone = ZoneInfo("Europe/London")
    for membership, named in ((admin_a, "Vera Private"), (reception_a, "Restricted patient")):
        request.membership = membership
        assert who_and_when(request, patient, moment) == (named, "Mon 7 Jun 2027, 10:00")
    # Today every route to such a confirmation stops first: the appointment is not found for this member.
    cancel = reverse("scheduling:appointment-cancel", args=[appointment.public_id])
    assert reception_client_a.post(cancel, {"reason": "Unwell"}).status_code == 404
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED


# The booking form's post ("Book"), as counted with the test client's session (no idle-timer record to write):
# the session, the user and the memberships (the middleware); the slot, the patient and their plans (this clinic
# bills insurance; the appointment type is the slot's own, read with the slot); in the transaction, the slot and
# its practitioner locked (whether the patient is in the slot already is not asked of an empty slot), no
# overlapping appointment of the practitioner,
# the appointment, the slot's count, the practitioner's busy events (for the audit), the audit row, the
# practitioner's enabled feeds (none: no Google connection to look for), the clinic's message settings, the
# appointment with its patient's addresses and contact preference, the messages; the savepoint the test's
# transaction turns the booking's into, and its release. It was 25 before issue 25 (a savepoint of its own around
# the insert, the department and the type looked up for a posted form, the Google connections looked up without
# a feed, the contact preference read on its own), and 20 until an empty slot stopped looking for the patient in it.
BOOKING_POST_QUERIES = 19
# On PostgreSQL the plain booking is one call (scheduling.services.quick): the same three reads of the session, user
# and membership, then the savepoint, the call and its release. A booking the call leaves to the form costs those
# three more.
QUICK_CALL_QUERIES = 3
QUICK_POST_QUERIES = 3 + QUICK_CALL_QUERIES


def test_booking_a_slot_takes_a_fixed_small_number_of_queries(
    clinic_a, reception_client_a, slot, django_assert_num_queries, django_assert_max_num_queries
):
    DepartmentFactory(clinic=clinic_a, name="General practice")
    patients = PatientFactory.create_batch(2, clinic=clinic_a)
    url = reverse("scheduling:book", args=[slot.public_id])
    data = {"coverage": "self", "slot_type": str(slot.slot_type.public_id), "action": "book"}
    reception_client_a.get(reverse("home"))  # the session's clinic chosen
    quick = connection.vendor == "postgresql"
    with django_assert_num_queries(QUICK_POST_QUERIES if quick else BOOKING_POST_QUERIES):
        response = reception_client_a.post(url, {**data, "patient": str(patients[0].public_id)})
    assert response.status_code == 302
    appointment = Appointment.objects.get()
    assert (appointment.patient, appointment.slot_type) == (patients[0], slot.slot_type)
    assert AuditEvent.objects.filter(action="appointment.booked", object_id=str(appointment.public_id)).exists()
    # A refusal (the slot is full now) takes no more than that either.
    with django_assert_max_num_queries(BOOKING_POST_QUERIES + (QUICK_CALL_QUERIES if quick else 0)):
        refused = reception_client_a.post(url, {**data, "patient": str(patients[1].public_id)})
    assert "This slot is full." in refused.content.decode()


def test_a_patient_already_in_a_group_slot_is_refused_a_second_place_in_it(clinic_a, reception_client_a):
    kind = SlotTypeFactory(clinic=clinic_a, name="Group therapy", capacity=3)
    group = allocate_session(
        clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=DAY, slot_types=[kind]
    ).slots.get()
    patient, other = PatientFactory.create_batch(2, clinic=clinic_a)
    url = reverse("scheduling:book", args=[group.public_id])
    data = {"coverage": "self", "slot_type": str(group.slot_type.public_id), "action": "book"}
    booked = reception_client_a.post(url, {**data, "patient": str(patient.public_id)})
    assert booked.status_code == 302
    again = reception_client_a.post(url, {**data, "patient": str(patient.public_id)})
    assert "This patient is already booked in this slot." in again.content.decode()
    assert reception_client_a.post(url, {**data, "patient": str(other.public_id)}).status_code == 302
    group.refresh_from_db()
    assert group.booked_count == 2
    assert sorted(Appointment.objects.filter(slot=group).values_list("patient_id", flat=True)) == sorted(
        [patient.pk, other.pk]
    )


def test_a_posted_appointment_type_other_than_the_slots_is_still_checked_against_the_clinics(
    clinic_a, clinic_b, reception_client_a, slot
):
    patient = PatientFactory(clinic=clinic_a)
    url = reverse("scheduling:book", args=[slot.public_id])
    data = {"patient": str(patient.public_id), "coverage": "self", "action": "book"}
    theirs = SlotTypeFactory(clinic=clinic_b, name="Theirs")
    refused = reception_client_a.post(url, {**data, "slot_type": str(theirs.public_id)})
    assert refused.status_code == 422 and "Select a valid choice" in refused.content.decode()
    # The slot's own type, no longer bookable: refused as any other type that is not a choice.
    own = slot.slot_type
    own.bookable = False
    own.save(update_fields=["bookable"])
    refused = reception_client_a.post(url, {**data, "slot_type": str(own.public_id)})
    assert refused.status_code == 422 and "Select a valid choice" in refused.content.decode()
    other = SlotTypeFactory(clinic=clinic_a, name="Long")
    assert reception_client_a.post(url, {**data, "slot_type": str(other.public_id)}).status_code == 302
    assert Appointment.objects.get().slot_type == other
