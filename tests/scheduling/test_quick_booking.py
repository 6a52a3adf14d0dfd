"""Booking in one database call (scheduling.services.quick): on PostgreSQL the reception form's plain case is one
call of scheduling_quick_book, which writes what appointment_book writes and leaves its observers' news for a worker;
whatever it does not book it leaves untouched, for the form and appointment_book to book or refuse in words. On
SQLite the form and appointment_book book everything, and the same tests hold."""

from __future__ import annotations

import datetime as dt
from uuid import uuid4

import pytest
from django.db import connection
from django.http import QueryDict
from django.urls import reverse

from calendar_sync.feed.subscriptions import subscription_get_or_create
from calendar_sync.models import FeedChange, FeedSubscription
from clinic.models import AuditEvent
from notifications.models import Message
from patients.models import Coverage
from scheduling.forms import SELF_PAY, PlainBooking, plain_booking
from scheduling.models import Appointment, PendingNews, Slot
from scheduling.services.booking import BookingRequest, appointment_book, appointment_cancel, appointment_reschedule
from scheduling.services.quick import NOT_HERE, news_sweep, news_tell, quick_book
from scheduling.signals import PatientNews
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


def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def plan(patient, priority="primary", payer="Aetna"):
    return Coverage.objects.create(
        clinic=patient.clinic, patient=patient, payer=payer, plan_name="Gold", member_id="M1", priority=priority
    )


def two_slots(clinic, *, capacity=1):
    """Two slots of one practitioner on one day, at 9:00 and at 14:00 (the same type), her feed enabled."""
    practitioner = PractitionerFactory(clinic=clinic, name="Dr Twin")
    kind = SlotTypeFactory(clinic=clinic, name="Visit", capacity=capacity)
    first = allocate_session(clinic, practitioner=practitioner, day=DAY, slot_types=[kind]).slots.get()
    second = allocate_session(
        clinic, practitioner=practitioner, day=DAY, start=dt.time(14), slot_types=[kind]
    ).slots.get()
    feed = subscription_get_or_create(clinic=clinic, practitioner=practitioner)
    FeedSubscription.objects.filter(pk=feed.pk).update(enabled=True)
    return first, second


def written(appointment: Appointment) -> dict:
    """What a booking wrote about one appointment, without what differs between any two (ids, times, the slot)."""
    appointment.refresh_from_db()
    audit = AuditEvent.objects.get(action="appointment.booked", object_id=str(appointment.public_id))
    detail = dict(audit.detail)
    assert detail.pop("slot") == str(appointment.slot.public_id)
    messages = sorted(
        Message.objects.filter(appointment=appointment).values_list(
            "kind", "channel", "status", "recipient", "offset_hours", "category", "version"
        )
    )
    return {
        "appointment": {
            field: getattr(appointment, field)
            for field in (
                "status",
                "patient_id",
                "practitioner_id",
                "slot_type_id",
                "department_id",
                "coverage_id",
                "secondary_coverage_id",
                "self_pay",
                "notes_completed",
                "exclusive",
                "rescheduled_from_id",
                "series_id",
                "source",
                "cancel_reason",
                "cancel_category",
                "cancelled_at",
                "created_by_id",
            )
        },
        "times": (appointment.starts_at, appointment.ends_at) == (appointment.slot.starts_at, appointment.slot.ends_at),
        "resources": list(appointment.resources.all()),
        "places": Slot.objects.get(pk=appointment.slot_id).booked_count,
        "audit": (audit.actor_id, audit.object_type, detail),
        "messages": [m[:-1] for m in messages],
        "message_versions": {m[-1] for m in messages} <= {appointment.starts_at},
        "feed_changes": FeedChange.objects.filter(key=f"a{appointment.pk}").count(),
    }


# Each case: what reception posts (beyond the patient and the button) for a slot, and what appointment_book is
# asked for the same booking.
def self_pay_single(clinic, slot, patient):
    form = {"coverage": SELF_PAY, "slot_type": str(slot.slot_type.public_id)}
    return form, {"self_pay": True}


def plans_department_and_own_practitioner(clinic, slot, patient):
    primary, secondary = plan(patient), plan(patient, "secondary", "Cigna")
    department = DepartmentFactory(clinic=clinic, name="General practice")
    form = {
        "coverage": str(primary.public_id),
        "secondary_coverage": str(secondary.public_id),
        "department": str(department.public_id),
        "resources": [str(slot.session.practitioner.public_id)],
        "slot_type": str(slot.slot_type.public_id),
    }
    request = {
        "coverage": primary,
        "secondary_coverage": secondary,
        "department": department,
        "resources": [slot.session.practitioner],
    }
    return form, request


def clinic_without_insurance(clinic, slot, patient):
    clinic.bills_insurance = False
    clinic.save(update_fields=["bills_insurance"])
    # A plan posted anyway is not read (the form has no plan fields then): no plan, and not self pay.
    form = {"coverage": SELF_PAY, "slot_type": str(slot.slot_type.public_id)}
    return form, {}


@pytest.mark.parametrize("capacity", [1, 4])
@pytest.mark.parametrize("case", [self_pay_single, plans_department_and_own_practitioner, clinic_without_insurance])
def test_the_plain_booking_writes_what_appointment_book_writes(
    clinic_a, reception_a, reception_client_a, case, capacity
):
    first, second = two_slots(clinic_a, capacity=capacity)
    patient = PatientFactory(clinic=clinic_a, email="nadia@example.com", mobile_phone="+15555550123")
    practitioner = first.session.practitioner
    # Busy all day: both bookings are audited as made over it.
    OtherEventFactory(
        clinic=clinic_a,
        practitioner=practitioner,
        all_day=True,
        starts_at=None,
        ends_at=None,
        first_date=DAY,
        last_date=DAY,
        busy=True,
    )
    form, request = case(clinic_a, first, patient)
    url = reverse("scheduling:book", args=[first.public_id])
    response = reception_client_a.post(url, {**form, "patient": str(patient.public_id), "action": "book"})
    assert response.status_code == 302 and "view=day&date=2027-06-07" in response["Location"]
    quick = Appointment.objects.get(slot=first)
    # On PostgreSQL the call booked it, and its observers hear of it after commit (a worker tells them).
    assert PendingNews.objects.count() == (1 if on_postgresql() else 0)
    assert news_sweep() == (1 if on_postgresql() else 0)
    assert not PendingNews.objects.exists()

    clinic_a.refresh_from_db()
    reference = appointment_book(
        clinic=clinic_a,
        actor=reception_a.user,
        membership=reception_a,
        request=BookingRequest(slot=second, patient=patient, slot_type=second.slot_type, **request),
    )
    ours, theirs = written(quick), written(reference)
    assert ours == theirs
    assert ours["places"] == 1 and ours["feed_changes"] == 1 and ours["times"] and ours["message_versions"]
    assert ours["audit"][2]["busy_events"] and ours["messages"]  # the comparison compared something


def a_blocked_patient(clinic, slot, patient, form):
    patient.is_blocked, patient.blocked_reason = True, "VIP"
    patient.save(update_fields=["is_blocked", "blocked_reason"])


def an_archived_patient(clinic, slot, patient, form):
    patient.is_archived = True
    patient.save(update_fields=["is_archived"])


def another_clinics_patient(clinic, slot, patient, form):
    form["patient"] = str(PatientFactory().public_id)


def an_inactive_department(clinic, slot, patient, form):
    form["department"] = str(DepartmentFactory(clinic=clinic, is_active=False).public_id)


def another_patients_plan(clinic, slot, patient, form):
    form["coverage"] = str(plan(PatientFactory(clinic=clinic)).public_id)


def another_clinics_slot(clinic, slot, patient, form):
    form["slot"] = str(uuid4())


def a_blank_slot(clinic, slot, patient, form):
    Slot.objects.filter(pk=slot.pk).update(bookable=False)


def an_enforced_closed_group(clinic, slot, patient, form):
    type(slot.session).objects.filter(pk=slot.session_id).update(closed_session=True, closed_enforced=True)


def another_appointment_type(clinic, slot, patient, form):
    form["slot_type"] = str(SlotTypeFactory(clinic=clinic, name="Long").public_id)


def another_resource(clinic, slot, patient, form):
    form["resources"] = [str(PractitionerFactory(clinic=clinic).public_id)]


def a_full_slot(clinic, slot, patient, form):
    book(slot, PatientFactory(clinic=clinic))


def the_patient_already_in_the_group(clinic, slot, patient, form):
    book(slot, patient)


def the_practitioner_already_busy(clinic, slot, patient, form):
    other = allocate_session(clinic, practitioner=slot.session.practitioner, day=DAY, start=dt.time(15)).slots.first()
    Slot.objects.filter(pk=other.pk).update(starts_at=slot.starts_at, ends_at=slot.ends_at, capacity=1)
    other.refresh_from_db()
    book(other, PatientFactory(clinic=clinic))


@pytest.mark.parametrize(
    ("change", "capacity", "reason"),
    [
        (a_blocked_patient, 1, "patient"),
        (an_archived_patient, 1, "patient"),
        (another_clinics_patient, 1, "patient"),
        (an_inactive_department, 1, "department"),
        (another_patients_plan, 1, "coverage"),
        (another_clinics_slot, 1, "slot"),
        (a_blank_slot, 1, "unbookable"),
        (an_enforced_closed_group, 4, "closed"),
        (another_appointment_type, 1, "type"),
        (another_resource, 1, "resources"),
        (a_full_slot, 1, "full"),
        (the_patient_already_in_the_group, 4, "duplicate"),
        (the_practitioner_already_busy, 1, "overlap"),
    ],
)
def test_the_call_leaves_to_python_what_it_does_not_plainly_book(clinic_a, reception_a, change, capacity, reason):
    slot, _ = two_slots(clinic_a, capacity=capacity)
    patient = PatientFactory(clinic=clinic_a)
    form = {
        "patient": str(patient.public_id),
        "coverage": SELF_PAY,
        "slot_type": str(slot.slot_type.public_id),
        "slot": str(slot.public_id),
    }
    change(clinic_a, slot, patient, form)
    before = (Appointment.objects.count(), list(Slot.objects.order_by("pk").values_list("booked_count", flat=True)))
    posted = QueryDict(mutable=True)
    for key, value in form.items():
        posted.setlist(key, value if isinstance(value, list) else [value])
    plain = plain_booking(posted, bills_insurance=True)
    assert plain is not None
    outcome = quick_book(clinic=clinic_a, actor=reception_a.user, slot=form["slot"], booking=plain)
    assert outcome.outcome == (reason if on_postgresql() else NOT_HERE) and not outcome.booked
    after = (Appointment.objects.count(), list(Slot.objects.order_by("pk").values_list("booked_count", flat=True)))
    assert after == before
    assert not PendingNews.objects.exists()
    assert not AuditEvent.objects.filter(action="appointment.booked").exists()


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        (a_blocked_patient, 404, ""),  # the form's patient lookup: a blocked patient is not found without the right
        (a_full_slot, 200, "This slot is full."),
        (the_practitioner_already_busy, 200, "The practitioner already has an appointment at that time."),
    ],
)
def test_a_booking_the_call_leaves_is_refused_in_words_by_the_form(clinic_a, reception_client_a, change, status, words):
    slot, _ = two_slots(clinic_a)
    patient = PatientFactory(clinic=clinic_a)
    data = {"patient": str(patient.public_id), "coverage": SELF_PAY, "slot_type": str(slot.slot_type.public_id)}
    change(clinic_a, slot, patient, data)
    response = reception_client_a.post(reverse("scheduling:book", args=[slot.public_id]), {**data, "action": "book"})
    assert response.status_code == status and words in response.content.decode()
    assert not Appointment.objects.filter(patient=patient).exists()
    assert not PendingNews.objects.exists()


def posted(**fields):
    data = QueryDict(mutable=True)
    for key, value in fields.items():
        data.setlist(key, value if isinstance(value, list) else [value])
    return data


def test_the_posted_booking_is_read_as_the_form_reads_it():
    patient, kind, plan_id, other_plan, resource = (uuid4() for _ in range(5))
    base = {"patient": str(patient), "slot_type": str(kind).upper(), "coverage": SELF_PAY}
    assert plain_booking(posted(**base), bills_insurance=True) == PlainBooking(
        patient=patient,
        slot_type=kind,
        department=None,
        resources=(),
        self_pay=True,
        coverage=None,
        secondary_coverage=None,
    )
    chosen = plain_booking(
        posted(
            **base | {"coverage": str(plan_id), "secondary_coverage": str(other_plan), "resources": [str(resource)]}
        ),
        bills_insurance=True,
    )
    assert chosen is not None
    assert (chosen.coverage, chosen.secondary_coverage, chosen.resources, chosen.self_pay) == (
        plan_id,
        other_plan,
        (resource,),
        False,
    )
    # Without insurance billing, plans posted are not read: no plan, and not self pay.
    unbilled = plain_booking(posted(**base | {"secondary_coverage": str(other_plan)}), bills_insurance=False)
    assert unbilled is not None and (unbilled.self_pay, unbilled.coverage, unbilled.secondary_coverage) == (
        False,
        None,
        None,
    )
    # What the form would refuse is left to the form (None), never guessed.
    refused = [
        base | {"patient": "nobody"},
        base | {"slot_type": ""},
        base | {"department": "sales"},
        base | {"coverage": ""},
        base | {"coverage": str(plan_id).upper()},  # a choice is compared as the page wrote it
        base | {"secondary_coverage": str(other_plan)},  # self pay has no secondary plan
        base | {"coverage": str(plan_id), "secondary_coverage": str(plan_id)},
        base | {"resources": [str(resource).upper()]},
        base | {"resources": [""]},
    ]
    assert [plain_booking(posted(**fields), bills_insurance=True) for fields in refused] == [None] * len(refused)


def confirmations(appointment):
    return sorted(
        Message.objects.filter(appointment=appointment, kind="confirmation").values_list("channel", flat=True)
    )


def test_news_is_told_once_and_the_sweep_finds_what_a_nudge_lost(clinic_a, reception_a):
    slot, later = two_slots(clinic_a)
    patient = PatientFactory(clinic=clinic_a, email="nadia@example.com")
    appointments = [
        appointment_book(
            clinic=clinic_a,
            actor=reception_a.user,
            membership=reception_a,
            request=BookingRequest(s, patient),
            tell=False,
        )
        for s in (slot, later)
    ]
    FeedChange.objects.all().delete()
    practitioner = slot.session.practitioner_id
    rows = [
        PendingNews.objects.create(
            clinic=clinic_a, news=PatientNews.BOOKED, appointments=[a.pk], practitioners=[practitioner]
        )
        for a in appointments
    ]
    assert news_tell([rows[0].pk, rows[0].pk]) == 1
    assert news_tell([rows[0].pk]) == 0  # told already: nothing twice
    assert confirmations(appointments[0]) == ["email", "sms"]  # one a channel (the text skipped: no mobile number)
    assert FeedChange.objects.filter(key=f"a{appointments[0].pk}").count() == 1
    assert not Message.objects.filter(appointment=appointments[1]).exists()
    assert news_sweep() == 1 and news_sweep() == 0  # the row whose nudge never came
    assert confirmations(appointments[1]) == ["email", "sms"]
    assert not PendingNews.objects.exists()


def test_a_plain_booking_through_htmx_closes_the_popup_naming_the_patient(clinic_a, reception_client_a):
    slot, _ = two_slots(clinic_a)
    patient = PatientFactory(clinic=clinic_a, title="Ms", first_name="Nadia", preferred_name="Nad", last_name="Quist")
    url = reverse("scheduling:book", args=[slot.public_id])
    data = {"patient": str(patient.public_id), "coverage": SELF_PAY, "slot_type": str(slot.slot_type.public_id)}
    response = reception_client_a.post(url, {**data, "action": "book"}, headers={"HX-Request": "true"})
    assert response.status_code == 204 and "calendar:changed" in response["HX-Trigger"]
    assert "Booked Ms Nadia (Nad) Quist on Mon 7 Jun 2027" in response["HX-Trigger"]
    assert f"slot-{slot.public_id}" in response["HX-Trigger"]
    assert Appointment.objects.get().patient == patient


def test_news_its_observers_fail_on_waits_and_holds_back_no_other(clinic_a, reception_a, caplog):
    slot, _ = two_slots(clinic_a)
    patient = PatientFactory(clinic=clinic_a, email="nadia@example.com")
    request = BookingRequest(slot, patient)
    appointment = appointment_book(
        clinic=clinic_a, actor=reception_a.user, membership=reception_a, request=request, tell=False
    )
    broken = PendingNews.objects.create(clinic=clinic_a, news=PatientNews.BOOKED, appointments=[{"not": "an id"}])
    PendingNews.objects.create(clinic=clinic_a, news=PatientNews.BOOKED, appointments=[appointment.pk])
    assert news_sweep() == 1  # the broken row first, then the good one
    assert confirmations(appointment) == ["email", "sms"]
    assert list(PendingNews.objects.values_list("pk", flat=True)) == [broken.pk]  # it waits for the next run
    assert f"news {broken.pk} not told" in caplog.text and "not an id" not in caplog.text


@pytest.mark.parametrize("change", ["cancel", "move"])
def test_a_change_before_the_news_is_told_tells_the_booking_first(clinic_a, reception_a, change):
    """With the worker late (the broker down), a booking made in one call and then cancelled or moved: the patient
    hears of the booking first, then of the change; never the change alone or before it. The news is told once."""
    slot, later = two_slots(clinic_a)
    patient = PatientFactory(clinic=clinic_a, email="nadia@example.com")
    appointment = appointment_book(
        clinic=clinic_a,
        actor=reception_a.user,
        membership=reception_a,
        request=BookingRequest(slot, patient),
        tell=False,
    )
    other = appointment_book(
        clinic=clinic_a,
        actor=reception_a.user,
        membership=reception_a,
        request=BookingRequest(later, PatientFactory(clinic=clinic_a, email="omar@example.com")),
        tell=False,
    )
    practitioner = slot.session.practitioner_id
    for booked in (appointment, other):  # what the call leaves for a worker
        PendingNews.objects.create(
            clinic=clinic_a, news=PatientNews.BOOKED, appointments=[booked.pk], practitioners=[practitioner]
        )
    if change == "cancel":
        appointment_cancel(clinic=clinic_a, actor=reception_a.user, appointment=appointment, reason="Unwell")
        expected = ["confirmation", "cancelled"]
    else:
        third = allocate_session(
            clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=DAY, slot_types=[slot.slot_type]
        ).slots.get()
        appointment_reschedule(
            clinic=clinic_a, actor=reception_a.user, membership=reception_a, appointment=appointment, slot=third
        )
        expected = ["confirmation", "moved"]
    told = Message.objects.filter(patient=patient, channel="email").order_by("id").values_list("kind", flat=True)
    assert list(told) == expected
    assert list(PendingNews.objects.values_list("appointments", flat=True)) == [[other.pk]]  # another's waits
    assert news_sweep() == 1 and news_sweep() == 0
    assert list(told) == expected  # nothing told twice
    assert confirmations(other) == ["email", "sms"]
