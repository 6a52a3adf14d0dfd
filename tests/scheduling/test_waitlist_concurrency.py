"""Waitlist offers racing the people using them, through real HTTP requests to a threaded server (one thread and
database connection per request) and services run in threads at the same moment: a patient taking one offer from
many tabs at once, a reception booking into the held place, an accept racing the sweep that ends it, cancellations
racing the offer runs, two freed slots racing for one patient. Each place is offered once and taken once, every count
stays true, and nobody sees a 500."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import re
import threading
import time
from collections import Counter
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from clinic.models import AuditEvent
from notifications.models import Channel, Kind, Message, NotificationSettings, Status
from scheduling.models import (
    Appointment,
    AppointmentSource,
    AppointmentStatus,
    FreedPlace,
    Hold,
    HoldOutcome,
    WaitlistEntry,
    WaitlistKind,
    WaitlistOffer,
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
    freed_sweep,
    offer_accept,
    waitlist_add,
    waitlist_book,
    waitlist_remove,
)
from tests.concurrent import all_at_once, room_for, wait_until_a_connection_waits_for_a_lock
from tests.conftest import tasks_in_process
from tests.factories import LocationFactory, PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session
from tests.scheduling.test_booking_concurrency import roomy_server  # noqa: F401 - the fixture
from tests.scheduling.test_changes_concurrency import (
    CSRF,
    Answer,
    Post,
    assert_counts_true,
    booking_outcome,
    booking_post,
    cookies_of,
    posts_at_once,
    send,
)

# A storm holds a dozen connections at once: these share the storms' worker, so PostgreSQL's limit holds.
pytestmark = [pytest.mark.xdist_group("fifty-connection-storms"), pytest.mark.django_db(transaction=True)]

ROUNDS = 2
TAKEN = "You have already taken this place: it is booked for you."
RAN_OUT = "this offer ran out at"
FREE_PLACE = "place has come free"  # the offer email's words


@pytest.fixture(autouse=True)
def sends_in_this_process():
    """Offer runs and messages run where they are nudged (the server's request thread, or the job's), never on a
    broker."""
    with tasks_in_process():
        yield


@pytest.fixture(autouse=True)
def no_quiet_hours(clinic_a):
    """Offers go out whatever the time of day the suite runs at (quiet hours would make them wait)."""
    NotificationSettings.objects.filter(clinic=clinic_a).update(quiet_from=dt.time(0), quiet_until=dt.time(0))


@pytest.fixture
def day(clinic_a):
    """A day three weeks ahead: offers of its places run their full two hours."""
    return clinic_a.today() + dt.timedelta(days=21)


# --- Helpers ------------------------------------------------------------------------------------------------------


def full_group(clinic, day, *, capacity, start=dt.time(10), practitioner=None, name="DBT skills"):
    """A group slot of `capacity` places on `day`, every place booked by a member. Returns (slot, members)."""
    main = LocationFactory(clinic=clinic, name=f"{name} room", time_zone="Europe/London")
    kind = SlotTypeFactory(clinic=clinic, name=name, capacity=capacity, default_length_minutes=60)
    practitioner = practitioner or PractitionerFactory(clinic=clinic, name="Sam Reid", default_location=main)
    session = allocate_session(
        clinic, practitioner=practitioner, location=main, day=day, start=start, slot_types=[kind]
    )
    slot = session.slots.get()
    members = [PatientFactory(clinic=clinic, first_name=f"Member{n}") for n in range(capacity)]
    for patient in members:
        appointment_book(
            clinic=clinic, actor=None, membership=None, request=BookingRequest(slot=slot, patient=patient), tell=False
        )
    slot.refresh_from_db()
    assert (slot.booked_count, slot.held_count) == (capacity, 0)
    return slot, members


def waiting(clinic, membership, names, **entry):
    """Patients (with an email each) put on the waitlist in this order; `entry` says what they wait for."""
    entries = []
    for name in names:
        patient = PatientFactory(clinic=clinic, first_name=name, email=f"{name.lower()}@example.org")
        data = EntryData(patient=patient, **entry)
        entries.append(waitlist_add(clinic=clinic, actor=membership.user, membership=membership, data=data))
    return entries


def for_slot(slot):
    return {"kind": WaitlistKind.SLOT, "slot": slot}


def cancel(clinic, appointment):
    return appointment_cancel(clinic=clinic, actor=None, appointment=appointment, reason="Cannot come", tell=False)


def live_offers(entry=None):
    offers = WaitlistOffer.objects.filter(hold__ended_at__isnull=True).select_related("hold", "entry")
    return list(offers.filter(entry=entry) if entry is not None else offers)


def offer_emails(patient) -> list[str]:
    return [str(m.body) for m in mail.outbox if patient.email in m.to and FREE_PLACE in m.body]


def offer_path(patient) -> str:
    """The offer page's path, from the one offer email the patient was sent."""
    (body,) = offer_emails(patient)
    found = re.search(r"https?://\S+/offer/\S+/", body)
    assert found is not None, body
    return urlsplit(found.group(0)).path


def take(path: str, label: str = "take") -> Post:
    return Post(label, path, {"action": "take"}, {"csrftoken": CSRF})


def take_outcome(answer: Answer) -> str:
    """What a patient taking an offer was told, in one word: anything else (a 500 above all) fails the test."""
    if answer.status == 302:
        return "taken"
    if answer.status == 409 and TAKEN in answer.text:
        return "already taken"
    if answer.status == 409 and RAN_OUT in answer.text:
        return "ran out"
    return f"unexpected {answer.status}"


def live_appointments(slot, patient=None):
    found = Appointment.objects.filter(slot=slot).exclude(status=AppointmentStatus.CANCELLED)
    return found.filter(patient=patient) if patient is not None else found


def assert_offers_told_once(offers):
    """Every offer message is recorded once per channel, each offer's email was sent, and each offered patient got
    exactly one offer email (nobody else got one)."""
    messages = Message.objects.filter(kind=Kind.OFFER)
    twice = messages.order_by().values("ref", "channel").annotate(n=Count("id")).filter(n__gt=1)
    assert not twice.exists(), list(twice)
    assert set(messages.values_list("ref", flat=True)) == {str(o.public_id) for o in offers}
    for offer in offers:
        email = messages.get(ref=str(offer.public_id), channel=Channel.EMAIL)
        assert email.status == Status.SENT and email.patient_id == offer.entry.patient_id
        assert len(offer_emails(offer.entry.patient)) == 1, offer.entry.patient
    offered = {o.entry.patient.email for o in offers}
    assert {to for m in mail.outbox if FREE_PLACE in m.body for to in m.to} == offered


def together(jobs):
    """Run the jobs at the same moment, each in its own thread (and database connection); their answers in order.
    Any exception is an answer too (the test then fails on it)."""
    room_for(len(jobs) + 2)
    barrier = threading.Barrier(len(jobs))

    def run(job):
        barrier.wait(timeout=30)
        try:
            return job()
        except Exception as error:  # noqa: BLE001 - reported, not raised: the test asserts on every answer
            return f"ERROR {type(error).__name__}: {error}"
        finally:
            connection.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


# --- 1. Many takes of one offer, and reception booking into the held place ----------------------------------------


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_eight_takes_of_one_offer_at_once_book_it_once_and_the_rest_hear_it_is_theirs(
    clinic_a,
    admin_a,
    day,
    roomy_server,  # noqa: F811
    round_,
):
    slot, members = full_group(clinic_a, day, capacity=3)
    ada, ben = waiting(clinic_a, admin_a, ["Ada", "Ben"], **for_slot(slot))
    cancel(clinic_a, live_appointments(slot).order_by("id").first())
    (offer,) = live_offers()
    assert offer.entry == ada
    path = offer_path(ada.patient)

    answers = posts_at_once(roomy_server, [take(path, f"take {n}") for n in range(8)])

    outcomes = Counter(take_outcome(a) for a in answers)
    assert outcomes == Counter({"taken": 1, "already taken": 7}), answers
    (booked,) = live_appointments(slot, ada.patient)
    assert booked.source == AppointmentSource.WAITLIST
    offer.hold.refresh_from_db()
    assert (offer.hold.outcome, offer.hold.appointment_id) == (HoldOutcome.ACCEPTED, booked.pk)
    ada.refresh_from_db()
    assert (ada.state, ada.appointment_id) == (WaitlistState.BOOKED, booked.pk)
    slot.refresh_from_db()
    assert (slot.booked_count, slot.held_count) == (3, 0) and live_appointments(slot).count() == 3
    assert_counts_true(clinic_a)
    assert live_offers() == [] and WaitlistOffer.objects.count() == 1  # Ben was never offered it
    assert AuditEvent.objects.filter(action="waitlist.accepted").count() == 1
    confirmations = Message.objects.filter(appointment=booked, kind=Kind.CONFIRMATION)
    assert confirmations.filter(channel=Channel.EMAIL).count() == 1


def test_reception_booking_into_the_held_place_while_the_patient_takes_it_is_told_it_is_full(
    clinic_a,
    admin_a,
    reception_a,
    day,
    roomy_server,  # noqa: F811
):
    slot, members = full_group(clinic_a, day, capacity=3)
    (ada,) = waiting(clinic_a, admin_a, ["Ada"], **for_slot(slot))
    cancel(clinic_a, live_appointments(slot).order_by("id").first())
    (offer,) = live_offers()
    others = PatientFactory.create_batch(6, clinic=clinic_a)
    reception = cookies_of(reception_a)
    # Reception's bookings set off before, with and after the take (seconds late): some find the place held, some
    # find it booked. The booking page is heavier than the offer's, so the take goes a little after the first ones.
    lates = [0.0, 0.0, 0.05, 0.1, 0.2, 0.3]
    posts = [replace(take(offer_path(ada.patient)), late=0.05)]
    posts += [
        replace(booking_post(slot, p, slot.slot_type, reception), late=s) for p, s in zip(others, lates, strict=True)
    ]

    answers = posts_at_once(roomy_server, posts)

    assert take_outcome(answers[0]) == "taken", answers[0]
    bookings = [booking_outcome(a) if a.status == 200 else f"unexpected {a.status}" for a in answers[1:]]
    assert bookings == ["full"] * 6, list(zip(bookings, answers[1:], strict=True))  # refused by the booking itself
    (booked,) = live_appointments(slot, ada.patient)
    assert booked.source == AppointmentSource.WAITLIST
    assert not Appointment.objects.filter(patient__in=others).exists()
    slot.refresh_from_db()
    assert (slot.booked_count, slot.held_count) == (3, 0)
    assert_counts_true(clinic_a)


# --- 2. An accept after the hold ran out, and an accept racing the sweep that ends it -----------------------------


def test_a_take_after_the_hold_ran_out_is_refused_kindly_and_the_place_goes_to_the_next(
    clinic_a,
    admin_a,
    day,
    roomy_server,  # noqa: F811
):
    slot, members = full_group(clinic_a, day, capacity=3)
    ada, ben = waiting(clinic_a, admin_a, ["Ada", "Ben"], **for_slot(slot))
    cancel(clinic_a, live_appointments(slot).order_by("id").first())
    (offer,) = live_offers()
    # The hold's time passed, and beat's sweep has not come yet (time cannot be moved in the server's threads).
    Hold.objects.filter(pk=offer.hold_id).update(expires_at=timezone.now() - dt.timedelta(minutes=1))

    answer = send(roomy_server, take(offer_path(ada.patient)))

    assert take_outcome(answer) == "ran out", answer
    assert "You are still on the waiting list." in answer.text
    assert not live_appointments(slot, ada.patient).exists()
    offer.hold.refresh_from_db()
    assert offer.hold.outcome == HoldOutcome.EXPIRED and offer.hold.appointment_id is None
    ada.refresh_from_db()
    assert ada.state == WaitlistState.WAITING
    (next_offer,) = live_offers()
    assert next_offer.entry == ben and next_offer.slot_id == slot.pk
    assert len(offer_emails(ben.patient)) == 1
    slot.refresh_from_db()
    assert (slot.booked_count, slot.held_count) == (3, 1)  # Ben's offer holds the place
    assert_counts_true(clinic_a)
    assert not FreedPlace.objects.exists()


# The sweep sets off a little after the takes (seconds): the first usually reaches the slot first, the last
# usually after a take; either way exactly one outcome.
@pytest.mark.parametrize("late", [0.0, 0.03, 0.1])
def test_takes_racing_the_sweep_that_ends_the_offer_either_book_it_or_expire_it_never_both(
    clinic_a,
    admin_a,
    day,
    roomy_server,  # noqa: F811
    late,
):
    """The sweep believes the hold's time has come (its clock is ahead), the patient's request that it has not: they
    queue on the slot's lock, and whichever is first decides. Exactly one outcome, every time."""
    slot, members = full_group(clinic_a, day, capacity=3)
    ada, ben = waiting(clinic_a, admin_a, ["Ada", "Ben"], **for_slot(slot))
    cancel(clinic_a, live_appointments(slot).order_by("id").first())
    (offer,) = live_offers()
    path = offer_path(ada.patient)
    sweep_now = timezone.now() + dt.timedelta(hours=3)  # past the hold's two hours
    jobs = [lambda: send(roomy_server, take(path)) for _ in range(4)]
    jobs += [lambda: time.sleep(late) or holds_expire(now=sweep_now)]

    *answers, swept = together(jobs)

    outcomes = Counter(take_outcome(a) if isinstance(a, Answer) else a for a in answers)
    offer.hold.refresh_from_db()
    booked = list(live_appointments(slot, ada.patient))
    ada.refresh_from_db()
    if offer.hold.outcome == HoldOutcome.ACCEPTED:
        assert outcomes == Counter({"taken": 1, "already taken": 3}), answers
        assert swept == 0
        assert len(booked) == 1 and booked[0].source == AppointmentSource.WAITLIST
        assert ada.state == WaitlistState.BOOKED
        assert live_offers() == []  # nothing freed: Ben is not offered it
        assert (slot.capacity, live_appointments(slot).count()) == (3, 3)
    else:
        assert offer.hold.outcome == HoldOutcome.EXPIRED, offer.hold.outcome
        assert outcomes == Counter({"ran out": 4}), answers
        assert swept == 1
        assert booked == []
        assert ada.state == WaitlistState.WAITING
        (next_offer,) = live_offers()
        assert next_offer.entry == ben
    slot.refresh_from_db()
    assert slot.booked_count == 3
    assert_counts_true(clinic_a)
    ended = 1 if offer.hold.outcome == HoldOutcome.EXPIRED else 0
    assert AuditEvent.objects.filter(action="hold.ended").count() == ended
    assert not FreedPlace.objects.exists()


# --- 3. Cancellations racing the offer runs -----------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_cancellations_racing_offer_runs_offer_each_freed_place_once_to_the_first_in_line(
    clinic_a, admin_a, day, round_
):
    slot, members = full_group(clinic_a, day, capacity=8)
    entries = waiting(clinic_a, admin_a, [f"Wait{n}" for n in range(10)], **for_slot(slot))
    cancelling = list(live_appointments(slot).order_by("?")[:4])
    done = threading.Event()
    left = [len(cancelling)]
    lock = threading.Lock()

    def cancelled(appointment):
        def run():
            try:
                cancel(clinic_a, appointment)  # its own offer run follows its commit, in this thread
                return "cancelled"
            finally:
                with lock:
                    left[0] -= 1
                    if not left[0]:
                        done.set()

        return run

    def sweeping():
        runs = offered = 0
        while not done.is_set() or runs == 0:
            offered += freed_sweep()
            runs += 1
            time.sleep(0.002)
        offered += freed_sweep()  # and once more after the last cancellation
        return f"swept {offered}"

    outcomes = all_at_once([cancelled(a) for a in cancelling] + [sweeping] * 4)

    assert outcomes.count("cancelled") == 4, outcomes
    assert not [o for o in outcomes if o.startswith("ERROR")], outcomes
    offers = live_offers()
    assert len(offers) == 4 == WaitlistOffer.objects.count()  # each freed place offered once, none twice
    offered = sorted(o.entry.position for o in offers)
    assert offered == [e.position for e in entries[:4]]  # the first four in line, each once
    assert Counter(o.entry_id for o in offers).most_common(1)[0][1] == 1
    states = dict(WaitlistEntry.objects.values_list("pk", "state"))
    assert [states[e.pk] for e in entries] == [WaitlistState.OFFERED] * 4 + [WaitlistState.WAITING] * 6
    slot.refresh_from_db()
    assert (slot.booked_count, slot.held_count) == (8, 4)
    assert live_appointments(slot).count() == 4
    assert_counts_true(clinic_a)
    assert_offers_told_once(offers)
    assert AuditEvent.objects.filter(action="waitlist.offered").count() == 4
    assert not FreedPlace.objects.exists()


# --- 4. Two slots freed at once, one patient first in line for both -----------------------------------------------


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_slots_freed_at_once_for_one_preference_offer_that_patient_one_and_the_next_the_other(
    clinic_a, admin_a, day, round_
):
    physio = PractitionerFactory(clinic=clinic_a, name="Pat Physio")
    morning, _ = full_group(clinic_a, day, capacity=2, start=dt.time(9), practitioner=physio, name="Back class")
    noon, _ = full_group(clinic_a, day, capacity=2, start=dt.time(12), practitioner=physio, name="Neck class")
    ada, ben, cy = waiting(clinic_a, admin_a, ["Ada", "Ben", "Cy"], kind=WaitlistKind.PREFERENCE, practitioner=physio)
    freeing = [live_appointments(slot).order_by("id").first() for slot in (morning, noon)]

    outcomes = all_at_once([lambda a=a: cancel(clinic_a, a) and "cancelled" for a in freeing])

    assert outcomes == ["cancelled"] * 2, outcomes
    offers = live_offers()
    assert sorted(o.slot_id for o in offers) == sorted([morning.pk, noon.pk])
    assert sorted(o.entry.position for o in offers) == [ada.position, ben.position], [
        (o.entry.patient.first_name, o.slot_id) for o in offers
    ]
    assert live_offers(cy) == []
    for slot in (morning, noon):
        slot.refresh_from_db()
        assert (slot.booked_count, slot.held_count) == (2, 1)
    assert_counts_true(clinic_a)
    assert_offers_told_once(offers)
    assert not FreedPlace.objects.exists()


# --- 5. Reception acting on the entry while the patient takes the offer ---------------------------------------------


@pytest.mark.parametrize("rival", ["remove", "book"])
def test_reception_removing_or_booking_the_entry_while_the_patient_takes_its_offer_settles_one_way(
    clinic_a, admin_a, day, rival
):
    """The patient's take has the slot and waits for the offer's hold; reception's removal (or booking straight from
    the list) would have the entry and wait for the slot; then the take gets the hold and wants the entry. Reception
    takes the slot before the entry (the order every writer keeps), so one of them wins and the other is told why,
    never a database error. (SQLite serialises writers: nothing to cross.)"""
    slot, members = full_group(clinic_a, day, capacity=3)
    (ada,) = waiting(clinic_a, admin_a, ["Ada"], **for_slot(slot))
    cancel(clinic_a, live_appointments(slot).order_by("id").first())
    (offer,) = live_offers()

    def reception():
        if rival == "remove":
            waitlist_remove(clinic=clinic_a, actor=admin_a.user, entry=ada)
            return "removed"
        waitlist_book(clinic=clinic_a, actor=admin_a.user, membership=admin_a, entry=ada, slot=slot)
        return "booked"

    def taking():
        offer_accept(clinic=clinic_a, offer=offer)
        return "taken"

    answers: dict[str, str] = {}

    def run(name, job):
        try:
            answers[name] = job()
        except BookingError as error:
            answers[name] = error.messages[0]
        except Exception as error:  # noqa: BLE001 - a deadlock above all: the test fails on it
            answers[name] = f"ERROR {type(error).__name__}: {error}"
        finally:
            connection.close()

    patient = threading.Thread(target=run, args=("patient", taking))
    desk = threading.Thread(target=run, args=("reception", reception))
    with transaction.atomic():
        Hold.objects.select_for_update().get(pk=offer.hold_id)  # held a moment (as a sweep would)
        patient.start()  # takes the slot, waits here for the hold
        wait_until_a_connection_waits_for_a_lock()
        desk.start()  # takes the entry, waits for the slot
        wait_until_a_connection_waits_for_a_lock(count=2)
    patient.join(timeout=60)
    desk.join(timeout=60)

    assert not [a for a in answers.values() if a.startswith("ERROR")], answers
    ada.refresh_from_db()
    offer.hold.refresh_from_db()
    if answers["patient"] == "taken":
        assert ada.state == WaitlistState.BOOKED and offer.hold.outcome == HoldOutcome.ACCEPTED
        assert answers["reception"] == "This entry is no longer waiting (booked).", answers
    else:
        assert answers["reception"] in ("removed", "booked"), answers
        assert answers["patient"].startswith(("Sorry: this place is no longer available", TAKEN)), answers
        assert ada.state == (WaitlistState.REMOVED if rival == "remove" else WaitlistState.BOOKED)
    assert live_appointments(slot, ada.patient).count() == (0 if ada.state == WaitlistState.REMOVED else 1)
    assert_counts_true(clinic_a)
