"""Requests: a practitioner whose online bookings reception accepts. The request holds its place (nobody else can
take it), reception accepts (the appointment, a confirmation) or declines (the place free again, the patient told
the reason), and a request nobody answers expires with its hold."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notifications.models import Kind, Message
from online.models import BookingMode, OnlineBooking, OnlineStatus, PractitionerOnline
from scheduling.models import Appointment, AppointmentSource, Hold, HoldOutcome, Slot
from scheduling.services.booking import BookingError, BookingRequest, appointment_book, holds_expire
from tests.factories import PatientFactory
from tests.online.conftest import book_online

# Transactional: messages are sent after the change commits (the nudge is an on_commit callback).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def requests_only(clinic_a, gp):
    return PractitionerOnline.objects.create(clinic=clinic_a, practitioner=gp, accepts=True, mode=BookingMode.REQUEST)


@pytest.fixture
def requested(client: Client, clinic_a, online_on, consult, session, requests_only) -> OnlineBooking:
    book_online(client, clinic_a, consult, session.slots.first())
    return OnlineBooking.objects.get()


def test_a_held_place_cannot_be_taken_by_reception(clinic_a, admin_a, requested):
    slot = requested.slot
    other = PatientFactory(clinic=clinic_a)
    with pytest.raises(BookingError, match="This slot is full"):
        appointment_book(
            clinic=clinic_a, actor=admin_a.user, membership=admin_a, request=BookingRequest(slot=slot, patient=other)
        )


def test_reception_sees_the_request_and_accepting_books_it_and_tells_the_patient(
    reception_client_a: Client, clinic_a, requested
):
    page = reception_client_a.get(reverse("online:requests"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "LOVELACE, Ada" in text and "Knee pain" in text and "Registered online: check details" in text
    response = reception_client_a.post(reverse("online:accept", args=[requested.public_id]))
    assert response.status_code == 302
    requested.refresh_from_db()
    assert requested.status == OnlineStatus.ACCEPTED
    appointment = requested.appointment
    assert appointment.source == AppointmentSource.ONLINE and appointment.slot == requested.slot
    slot = Slot.objects.get(pk=requested.slot_id)
    assert (slot.booked_count, slot.held_count) == (1, 0)  # the hold's place became the appointment's
    hold = Hold.objects.get()
    assert (hold.outcome, hold.appointment) == (HoldOutcome.ACCEPTED, appointment)
    assert Message.objects.filter(kind=Kind.CONFIRMATION, appointment=appointment, status="sent").exists()
    # Answering twice (two receptionists at once): the second is told.
    again = reception_client_a.post(reverse("online:accept", args=[requested.public_id]), follow=True)
    assert "already been answered" in again.content.decode()
    assert Appointment.objects.count() == 1


def test_declining_frees_the_place_and_tells_the_patient_the_reason(reception_client_a: Client, clinic_a, requested):
    asked = reception_client_a.get(reverse("online:decline", args=[requested.public_id]))
    assert asked.status_code == 200 and "Decline the request" in asked.content.decode()
    reception_client_a.post(reverse("online:decline", args=[requested.public_id]), {"reason": "call"})
    requested.refresh_from_db()
    assert (requested.status, requested.decline_reason) == (OnlineStatus.DECLINED, "call")
    slot = Slot.objects.get(pk=requested.slot_id)
    assert (slot.booked_count, slot.held_count) == (0, 0)
    declined = Message.objects.get(kind=Kind.DECLINED, channel="email")
    assert declined.status == "sent" and "please call us" in declined.body
    assert not Appointment.objects.exists()


def test_a_request_nobody_answers_expires_frees_its_place_and_the_patient_is_told(clinic_a, requested):
    Hold.objects.update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert holds_expire() == 1
    requested.refresh_from_db()
    assert requested.status == OnlineStatus.EXPIRED
    slot = Slot.objects.get(pk=requested.slot_id)
    assert (slot.booked_count, slot.held_count) == (0, 0)
    assert "could not confirm it in time" in Message.objects.get(kind=Kind.DECLINED, channel="email").body
    assert holds_expire() == 0  # once


def test_a_lapsed_hold_gives_its_place_to_the_next_booking_at_once(clinic_a, admin_a, requested):
    Hold.objects.update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    other = PatientFactory(clinic=clinic_a)
    appointment = appointment_book(
        clinic=clinic_a,
        actor=admin_a.user,
        membership=admin_a,
        request=BookingRequest(slot=requested.slot, patient=other),
    )
    assert appointment.patient == other
    requested.refresh_from_db()
    assert requested.status == OnlineStatus.EXPIRED


def test_the_queue_is_for_reception_and_admins_and_hides_other_clinics(
    client: Client, clinic_b, requested, outsider_client: Client
):
    from tests.conftest import logged_in_client
    from tests.factories import MembershipFactory

    clinician = logged_in_client(MembershipFactory.create(clinic=requested.clinic, role="clinician"))
    assert clinician.get(reverse("online:requests")).status_code == 403
    assert outsider_client.post(reverse("online:accept", args=[requested.public_id])).status_code in (403, 404)
    requested.refresh_from_db()
    assert requested.status == OnlineStatus.PENDING


def test_the_header_counts_waiting_requests_for_reception(reception_client_a: Client, requested):
    page = reception_client_a.get(reverse("patients:list")).content.decode()
    assert "Online requests" in page and 'class="count"' in page


def test_the_header_count_follows_the_queue(reception_client_a: Client, requested):
    assert '<span class="count">1<' in reception_client_a.get(reverse("patients:list")).content.decode()
    reception_client_a.post(reverse("online:accept", args=[requested.public_id]))
    page = reception_client_a.get(reverse("patients:list")).content.decode()
    assert "Online requests" in page and 'class="count"' not in page


def test_one_patient_cannot_hold_two_places_of_one_group_by_asking_twice(
    client: Client, clinic_a, online_on, gp, surgery, requests_only
):
    import datetime as dt

    from tests.factories import SlotTypeFactory, allocate_session
    from tests.online.conftest import next_week_day

    group = SlotTypeFactory.create(clinic=clinic_a, capacity=4, online_bookable=True, default_length_minutes=60)
    slot = allocate_session(
        clinic_a, practitioner=gp, location=surgery, day=next_week_day(clinic_a), start=dt.time(10), slot_types=[group]
    ).slots.get()
    book_online(client, clinic_a, group, slot)
    again = book_online(client, clinic_a, group, slot)
    assert "You have already asked for this time" in again.content.decode()
    slot.refresh_from_db()
    assert (slot.booked_count, slot.held_count) == (1, 1)
