"""What reception does on its pages becomes exactly the messages the patient should get: one confirmation per
booking, one "moved" per reschedule (never a cancellation plus a confirmation), a cancellation naming its
category (or asking to rebook), and nothing for steps the patient need not hear of."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from notifications.models import Channel, Kind, Message, NotificationSettings, Status
from scheduling.models import Appointment
from tests.conftest import logged_in_client
from tests.factories import PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session

# Transactional: messages are sent after the booking commits (the nudge is an on_commit callback).
pytestmark = pytest.mark.django_db(transaction=True)

DAY = dt.date(2027, 6, 7)
BEFORE = dt.datetime(2027, 6, 1, 10, tzinfo=dt.UTC)  # a weekday morning in London: not quiet hours


@pytest.fixture
def session(clinic_a):
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine")
    return allocate_session(
        clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=DAY, slot_types=[routine] * 3
    )


@pytest.fixture
def patient(clinic_a):
    return PatientFactory(
        clinic=clinic_a, first_name="Nadia", last_name="Quist", email="nadia@example.org", mobile_phone="07700 900123"
    )


def kinds() -> list[tuple[str, str, str]]:
    return sorted(Message.objects.values_list("kind", "channel", "status"))


def book_through_the_page(client, slot, patient) -> Appointment:
    url = reverse("scheduling:book", args=[slot.public_id])
    form = {
        "patient": str(patient.public_id),
        "slot_type": str(slot.slot_type.public_id),
        "coverage": "self",
        "action": "book",
    }
    assert client.post(url, form).status_code == 302
    return Appointment.objects.get(slot=slot, patient=patient)


def test_booking_moving_and_cancelling_on_the_pages_tell_the_patient_once_each(reception_a, session, patient):
    first, _, third = session.slots.order_by("position")
    with time_machine.travel(BEFORE, tick=False):
        client = logged_in_client(reception_a)
        appointment = book_through_the_page(client, first, patient)
        assert kinds() == [("confirmation", "email", "sent"), ("confirmation", "sms", "sent")]
        assert mail.outbox[-1].subject == "Your appointment on Mon 7 Jun"
        assert "Mon 7 Jun 2027, 09:00 (BST)" in mail.outbox[-1].body  # on the location's clock

        response = client.post(
            reverse("scheduling:appointment-reschedule", args=[appointment.public_id]), {"slot": str(third.public_id)}
        )
        assert response.status_code == 302
        moved = Appointment.objects.get(rescheduled_from=appointment)
        assert kinds().count(("moved", "email", "sent")) == 1 and kinds().count(("moved", "sms", "sent")) == 1
        assert not Message.objects.filter(kind=Kind.CANCELLED).exists()
        assert Message.objects.filter(kind=Kind.CONFIRMATION, appointment=moved).count() == 0
        assert "has moved from Mon 7 Jun 2027, 09:00 (BST) to Mon 7 Jun 2027, 09:20 (BST)" in mail.outbox[-1].body

        cancel = reverse("scheduling:appointment-cancel", args=[moved.public_id])
        form = client.get(cancel).content.decode()
        assert "The clinician is unavailable" in form and "never sent to the patient" in form
        response = client.post(cancel, {"category": "clinician", "reason": "Dr off with flu; see notes"})
        assert response.status_code == 302
    rebook = Message.objects.get(kind=Kind.REBOOK, channel=Channel.EMAIL)
    assert rebook.status == Status.SENT and rebook.appointment == moved
    email = mail.outbox[-1]
    assert "please rebook" in email.subject and "the clinician is unavailable" in email.body
    assert "flu" not in email.body and "notes" not in email.body  # the free-text reason stays in the clinic
    assert Appointment.objects.get(pk=moved.pk).cancel_category == "clinician"


def test_a_cancellation_at_the_patients_request_is_a_plain_cancellation(reception_a, session, patient):
    with time_machine.travel(BEFORE, tick=False):
        client = logged_in_client(reception_a)
        appointment = book_through_the_page(client, session.slots.order_by("position").first(), patient)
        # Arrived, and back to booked: the clinic's own business, no message.
        page = reverse("scheduling:appointment", args=[appointment.public_id])
        for status in ("arrived", "booked"):
            assert client.post(page, {"status": status}).status_code in (200, 302)
        assert Message.objects.count() == 2
        cancel = reverse("scheduling:appointment-cancel", args=[appointment.public_id])
        assert client.post(cancel, {"category": "patient", "reason": "Going abroad"}).status_code == 302
    assert Message.objects.filter(kind=Kind.CANCELLED, status=Status.SENT).count() == 2
    assert not Message.objects.filter(kind=Kind.REBOOK).exists()
    assert "at the patient's request" in mail.outbox[-1].body


def test_turned_off_kinds_and_channels_record_nothing_and_missing_details_say_why(clinic_a, reception_a, session):
    NotificationSettings.objects.filter(clinic=clinic_a).update(sms_on=False)
    no_email = PatientFactory(clinic=clinic_a, first_name="Omar", mobile_phone="07700 900999")
    with time_machine.travel(BEFORE, tick=False):
        client = logged_in_client(reception_a)
        appointment = book_through_the_page(client, session.slots.order_by("position").first(), no_email)
    assert kinds() == [("confirmation", "email", "skipped")]
    assert Message.objects.get().detail == "No email address."
    NotificationSettings.objects.filter(clinic=clinic_a).update(changes_on=False)
    with time_machine.travel(BEFORE, tick=False):
        client.post(
            reverse("scheduling:appointment-cancel", args=[appointment.public_id]),
            {"category": "clinic", "reason": "Closed"},
        )
    assert Message.objects.count() == 1 and not mail.outbox


def test_a_failed_booking_leaves_no_message(clinic_a, reception_a, session, patient):
    slot = session.slots.order_by("position").first()
    other = PatientFactory(clinic=clinic_a, email="other@example.org")
    with time_machine.travel(BEFORE, tick=False):
        client = logged_in_client(reception_a)
        book_through_the_page(client, slot, other)
        before = Message.objects.count()
        url = reverse("scheduling:book", args=[slot.public_id])
        response = client.post(
            url,
            {
                "patient": str(patient.public_id),
                "slot_type": str(slot.slot_type.public_id),
                "coverage": "self",
                "action": "book",
            },
        )
    assert "full" in response.content.decode()
    assert not Appointment.objects.filter(patient=patient).exists()
    assert Message.objects.count() == before
    assert not Message.objects.filter(patient=patient).exists()


def test_an_offer_of_a_freed_place_is_recorded_once_per_hold_and_names_the_place(clinic_a, session, patient):
    """The generic offer later issues make (waitlists, holds): keyed by the hold, so offering twice is one message."""
    from django.db import transaction

    from notifications.recording import offer_record

    slot = session.slots.order_by("position").last()
    with time_machine.travel(BEFORE, tick=False):
        for _ in range(2):
            with transaction.atomic():
                offer_record(clinic_id=clinic_a.pk, patient=patient, slot=slot, ref="hold-42")
    offers = Message.objects.filter(kind=Kind.OFFER)
    assert sorted(offers.values_list("channel", "status")) == [("email", "sent"), ("sms", "sent")]
    email = mail.outbox[-1]
    assert email.subject == "A place is free on Mon 7 Jun"
    assert "a place has come free at Clinic A on Mon 7 Jun 2027, 09:20 (BST)" in email.body
    name, content, mimetype = email.attachments[0]
    assert (name, mimetype) == ("appointment.ics", "text/calendar; method=REQUEST")
    text = content.decode() if isinstance(content, bytes) else content
    assert "METHOD:REQUEST" in text and "DTSTART:20270607T082000Z" in text


def test_an_offer_waits_for_the_end_of_quiet_hours_by_email_too(clinic_a, session, patient):
    from django.db import transaction

    from notifications.recording import offer_record

    slot = session.slots.order_by("position").last()
    night = dt.datetime(2027, 6, 1, 23, 30, tzinfo=dt.UTC)  # 00:30 in London (BST): inside 21:00-08:00
    with time_machine.travel(night, tick=False), transaction.atomic():
        offer_record(clinic_id=clinic_a.pk, patient=patient, slot=slot, ref="hold-43")
    held = Message.objects.get(kind=Kind.OFFER, channel=Channel.EMAIL)
    assert held.status == Status.WAITING and held.attempts == 0
    assert held.due_at == dt.datetime(2027, 6, 2, 7, tzinfo=dt.UTC)  # 08:00 BST
    assert not mail.outbox
