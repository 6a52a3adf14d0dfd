"""Waitlists: a freed place is offered to the first person waiting (a hold against capacity, a message with a link),
taken through the booking service (source "waitlist") or let go to the next; offers run out, wait out quiet hours,
are never made too close to the start, and each is told once."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail
from django.test import Client

from clinic.models import AuditEvent
from notifications.models import Channel, Kind, Message, NotificationSettings, Status
from notifications.sending import send_messages
from scheduling.models import (
    AppointmentSource,
    FreedPlace,
    HoldOutcome,
    SeriesScope,
    WaitlistEntry,
    WaitlistKind,
    WaitlistOffer,
    WaitlistSettings,
    WaitlistState,
)
from scheduling.services.booking import (
    BookingError,
    BookingRequest,
    appointment_book,
    appointment_cancel,
    holds_expire,
)
from scheduling.services.waitlist import (
    EntryData,
    OfferEnded,
    freed_sweep,
    offer_accept,
    offer_by_hand,
    offer_decline,
    waitlist_add,
    waitlist_book,
    waitlist_remove,
)
from tests.conftest import tasks_in_process
from tests.factories import LocationFactory, PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session

pytestmark = pytest.mark.django_db(transaction=True)

DAY = dt.date(2027, 6, 10)  # a Thursday
NOW = dt.datetime(2027, 6, 7, 10, tzinfo=dt.UTC)  # the Monday before, 11:00 in London: not quiet hours


@pytest.fixture(autouse=True)
def sends_in_this_process():
    with tasks_in_process():
        yield


@pytest.fixture
def group(clinic_a):
    """A full group of three (DBT skills) on Thursday 10:00 London, and three patients waiting for it."""
    main = LocationFactory(clinic=clinic_a, name="Main", time_zone="Europe/London")
    dbt = SlotTypeFactory(clinic=clinic_a, name="DBT skills", capacity=3, default_length_minutes=60)
    therapist = PractitionerFactory(clinic=clinic_a, name="Sam Reid", role="therapist", default_location=main)
    session = allocate_session(clinic_a, practitioner=therapist, day=DAY, start=dt.time(10), slot_types=[dbt])
    slot = session.slots.get()
    members = [PatientFactory(clinic=clinic_a, first_name=f"Member{i}", email=f"m{i}@example.org") for i in range(3)]
    for patient in members:
        request = BookingRequest(slot=slot, patient=patient)
        appointment_book(clinic=clinic_a, actor=None, membership=None, request=request)
    slot.refresh_from_db()
    return {"slot": slot, "session": session, "members": members, "type": dbt, "practitioner": therapist}


def wait_for_slot(clinic, membership, slot, *names):
    entries = []
    for name in names:
        patient = PatientFactory(clinic=clinic, first_name=name, email=f"{name.lower()}@example.org")
        entries.append(
            waitlist_add(
                clinic=clinic,
                actor=membership.user,
                membership=membership,
                data=EntryData(patient=patient, kind=WaitlistKind.SLOT, slot=slot, note=f"{name} asked"),
            )
        )
    return entries


def cancel_one(clinic, slot, *, who=0):
    appointment = slot.appointments.filter(status="booked").order_by("id")[who]
    return appointment_cancel(clinic=clinic, actor=None, appointment=appointment, reason="Cannot come")


def live_offer(entry):
    return WaitlistOffer.objects.filter(entry=entry, hold__ended_at__isnull=True).select_related("hold").first()


def offer_link(patient) -> str:
    body = next(str(m.body) for m in mail.outbox if patient.email in m.to and "place has come free" in m.body)
    found = re.search(r"http://[^\s]+/offer/[^\s]+/", body)
    assert found is not None, body
    return found.group(0).split("8000", 1)[1]


@time_machine.travel(NOW, tick=False)
def test_a_cancelled_place_goes_to_the_first_person_waiting_who_takes_it_through_the_link(clinic_a, admin_a, group):
    slot = group["slot"]
    first, second, _third = wait_for_slot(clinic_a, admin_a, slot, "Ada", "Ben", "Cy")
    assert slot.booked_count == 3

    cancel_one(clinic_a, slot)

    offer = live_offer(first)
    assert offer is not None and live_offer(second) is None
    slot.refresh_from_db()
    assert (slot.booked_count, slot.held_count) == (3, 1)  # the place is held: nobody else can take it
    first.refresh_from_db()
    assert first.state == WaitlistState.OFFERED
    # Default hold: two hours (the place starts days later).
    assert offer.hold.expires_at == NOW + dt.timedelta(hours=2)
    message = Message.objects.get(kind=Kind.OFFER, channel=Channel.EMAIL, ref=str(offer.public_id))
    assert message.status == Status.SENT and message.patient_id == first.patient_id
    assert "until Mon 7 Jun 2027, 13:00 (BST)" in message.body
    assert not FreedPlace.objects.exists()

    with pytest.raises(BookingError, match="full"):
        appointment_book(
            clinic=clinic_a,
            actor=admin_a.user,
            membership=admin_a,
            request=BookingRequest(slot=slot, patient=PatientFactory(clinic=clinic_a)),
        )

    page = Client().get(offer_link(first.patient))
    assert page.status_code == 200
    assert b"Take this place" in page.content
    taken = Client().post(offer_link(first.patient), {"action": "take"}, follow=True)
    assert b"it is booked for you" in taken.content
    first.refresh_from_db()
    assert first.state == WaitlistState.BOOKED
    appointment = first.appointment
    assert appointment.source == AppointmentSource.WAITLIST and appointment.slot_id == slot.pk
    slot.refresh_from_db()
    assert (slot.booked_count, slot.held_count) == (3, 0)
    assert Message.objects.filter(appointment=appointment, kind=Kind.CONFIRMATION).count() >= 1


@time_machine.travel(NOW, tick=False)
def test_letting_an_offer_go_offers_the_next_and_can_leave_the_list(clinic_a, admin_a, group):
    slot = group["slot"]
    first, second, third = wait_for_slot(clinic_a, admin_a, slot, "Ada", "Ben", "Cy")
    cancel_one(clinic_a, slot)

    offer_decline(clinic=clinic_a, offer=live_offer(first), leave_list=True)
    first.refresh_from_db()
    assert first.state == WaitlistState.REMOVED
    assert live_offer(second) is not None

    offer_decline(clinic=clinic_a, offer=live_offer(second))
    second.refresh_from_db()
    assert second.state == WaitlistState.WAITING  # still waiting, but never offered this slot again
    assert live_offer(third) is not None
    offer_decline(clinic=clinic_a, offer=live_offer(third))
    assert not WaitlistOffer.objects.filter(hold__ended_at__isnull=True).exists()
    slot.refresh_from_db()
    assert (slot.booked_count, slot.held_count) == (2, 0)  # nobody left to offer: the place is free for anyone


def test_an_offer_runs_out_and_goes_to_the_next_and_a_late_accept_is_refused_kindly(clinic_a, admin_a, group):
    slot = group["slot"]
    with time_machine.travel(NOW, tick=False):
        first, second = wait_for_slot(clinic_a, admin_a, slot, "Ada", "Ben")
        cancel_one(clinic_a, slot)
        offer = live_offer(first)
    with time_machine.travel(NOW + dt.timedelta(hours=2, minutes=1), tick=False):
        # Before beat's sweep ends it: the accept itself finds it ran out, ends it, and the next is offered.
        with pytest.raises(OfferEnded, match="ran out at 13:00"):
            offer_accept(clinic=clinic_a, offer=offer)
        offer.hold.refresh_from_db()
        assert offer.hold.outcome == HoldOutcome.EXPIRED
        assert live_offer(second) is not None
        first.refresh_from_db()
        assert first.state == WaitlistState.WAITING
        second_offer = live_offer(second)
    with time_machine.travel(NOW + dt.timedelta(hours=4, minutes=2), tick=False):
        assert holds_expire() == 1
        second_offer.hold.refresh_from_db()
        assert second_offer.hold.outcome == HoldOutcome.EXPIRED
        slot.refresh_from_db()
        assert slot.held_count == 0 and slot.booked_count == 2


def test_offers_wait_for_quiet_hours_to_end(clinic_a, admin_a, group):
    slot = group["slot"]
    evening = dt.datetime(2027, 6, 7, 21, 30, tzinfo=dt.UTC)  # 22:30 in London: quiet until 08:00
    with time_machine.travel(evening, tick=False):
        (first,) = wait_for_slot(clinic_a, admin_a, slot, "Ada")
        cancel_one(clinic_a, slot)
        assert live_offer(first) is None
        waiting = FreedPlace.objects.get()
        assert waiting.due_at == dt.datetime(2027, 6, 8, 7, tzinfo=dt.UTC)
        assert freed_sweep() == 0
    with time_machine.travel(dt.datetime(2027, 6, 8, 7, 1, tzinfo=dt.UTC), tick=False):
        assert freed_sweep() == 1
        assert live_offer(first) is not None
        assert not FreedPlace.objects.exists()


def test_no_offer_too_close_to_the_start_and_the_hold_is_shortened_near_it(clinic_a, admin_a, group):
    slot = group["slot"]
    WaitlistSettings.objects.create(clinic=clinic_a, hold_minutes=120, shortest_hold_minutes=30, lead_minutes=60)
    NotificationSettings.objects.filter(clinic=clinic_a).update(quiet_from=dt.time(0), quiet_until=dt.time(0))
    start = slot.starts_at
    with time_machine.travel(start - dt.timedelta(minutes=80), tick=False):
        (first,) = wait_for_slot(clinic_a, admin_a, slot, "Ada")
        cancel_one(clinic_a, slot)
        assert live_offer(first) is None  # 80 minutes < 30 minutes' hold + 60 minutes' lead
    with time_machine.travel(start - dt.timedelta(minutes=150), tick=False):
        cancel_one(clinic_a, slot)
        offer = live_offer(first)
        assert offer.hold.expires_at == start - dt.timedelta(minutes=60)  # shortened: 90 minutes, not 120


@time_machine.travel(NOW, tick=False)
def test_each_offer_is_told_once_however_often_the_run_comes(clinic_a, admin_a, group):
    slot = group["slot"]
    (first,) = wait_for_slot(clinic_a, admin_a, slot, "Ada")
    cancel_one(clinic_a, slot)
    FreedPlace.objects.create(clinic=clinic_a, slot=slot, due_at=NOW)  # a second nudge for the same place
    assert freed_sweep() == 0
    assert WaitlistOffer.objects.count() == 1
    offers = Message.objects.filter(kind=Kind.OFFER, status=Status.SENT)
    assert offers.count() == 1  # the email (the patient has no mobile: the text is "not sent")
    assert send_messages([m.pk for m in offers]) == {}
    assert len([m for m in mail.outbox if "place has come free" in m.body]) == 1


@time_machine.travel(NOW, tick=False)
def test_a_raised_capacity_offers_every_new_place_in_order(clinic_a, admin_a, group):
    from scheduling.services.changes import template_apply

    slot = group["slot"]
    entries = wait_for_slot(clinic_a, admin_a, slot, "Ada", "Ben", "Cy")
    group["type"].capacity = 5
    group["type"].save()
    template_apply(clinic=clinic_a, actor=admin_a.user, template=group["session"].template, first_date=NOW.date())
    slot.refresh_from_db()
    assert (slot.capacity, slot.booked_count, slot.held_count, slot.retired) == (5, 5, 2, False)
    offered = [e for e in entries if live_offer(e) is not None]
    assert offered == entries[:2]


@time_machine.travel(NOW, tick=False)
def test_series_and_preference_entries_are_offered_in_position_order(clinic_a, admin_a, group):
    slot, session = group["slot"], group["session"]
    ada, ben, cy = (PatientFactory(clinic=clinic_a, first_name=n, email=f"{n}@example.org") for n in "ABC")
    wrong_day = waitlist_add(
        clinic=clinic_a,
        actor=admin_a.user,
        membership=admin_a,
        data=EntryData(patient=ada, kind=WaitlistKind.PREFERENCE, practitioner=group["practitioner"], weekdays=[2]),
    )
    afternoon = waitlist_add(
        clinic=clinic_a,
        actor=admin_a.user,
        membership=admin_a,
        data=EntryData(
            patient=ben, kind=WaitlistKind.PREFERENCE, slot_type=group["type"], weekdays=[4], time_from=dt.time(13)
        ),
    )
    series = waitlist_add(
        clinic=clinic_a,
        actor=admin_a.user,
        membership=admin_a,
        data=EntryData(
            patient=cy,
            kind=WaitlistKind.SERIES,
            allocation=session.allocation,
            slot_type=group["type"],
            scope=SeriesScope.ANY,
        ),
    )
    cancel_one(clinic_a, slot)
    assert [live_offer(e) is not None for e in (wrong_day, afternoon, series)] == [False, False, True]


@time_machine.travel(NOW, tick=False)
def test_reception_offers_by_hand_books_from_the_list_and_removes(clinic_a, admin_a, group):
    slot = group["slot"]
    WaitlistSettings.objects.create(clinic=clinic_a, offers_on=False)
    first, second = wait_for_slot(clinic_a, admin_a, slot, "Ada", "Ben")
    cancel_one(clinic_a, slot)
    assert live_offer(first) is None  # automatic offers are off

    offer = offer_by_hand(clinic=clinic_a, actor=admin_a.user, membership=admin_a, entry=second, slot=slot, now=NOW)
    assert offer.offered_by == admin_a.user
    with pytest.raises(BookingError, match="just been taken"):
        offer_by_hand(clinic=clinic_a, actor=admin_a.user, membership=admin_a, entry=first, slot=slot, now=NOW)
    appointment = waitlist_book(clinic=clinic_a, actor=admin_a.user, membership=admin_a, entry=second, slot=slot)
    assert appointment.source == AppointmentSource.WAITLIST
    offer.hold.refresh_from_db()
    assert offer.hold.outcome == HoldOutcome.ACCEPTED
    waitlist_remove(clinic=clinic_a, actor=admin_a.user, entry=first)
    first.refresh_from_db()
    assert first.state == WaitlistState.REMOVED
    assert AuditEvent.objects.filter(action="waitlist.removed").count() == 1


def test_a_free_slot_is_booked_not_waited_for(clinic_a, admin_a, group):
    slot = group["slot"]
    cancel_one(clinic_a, slot)
    slot.refresh_from_db()
    with pytest.raises(BookingError, match="free place"):
        wait_for_slot(clinic_a, admin_a, slot, "Ada")
    assert not WaitlistEntry.objects.exists()
