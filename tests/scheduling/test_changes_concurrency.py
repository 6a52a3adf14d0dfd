"""Changes to the book racing the people using it, through real HTTP requests to a threaded server (one thread and
database connection per request): a template applied or a session cancelled while reception books into the slots it
touches, two receptionists rebooking the same displaced patients, a rebook losing its place to a booking. Nothing is
lost, nothing is booked twice, every count stays true, nobody sees a 500, and every change is audited."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import re
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests
from django.db import connection, transaction
from django.db.models import Count, Q
from django.urls import reverse

from clinic.models import AuditEvent, Role
from notifications.models import Kind, Message, NotificationSettings
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    Displacement,
    OutReason,
    RotaChange,
    SessionOut,
    Slot,
)
from scheduling.services.booking import BookingError, BookingRequest, appointment_book, appointment_cancel
from scheduling.services.changes import TakeOut, sessions_take_out, template_apply
from sessions_setup.models import TemplateSlot
from tests.concurrent import all_at_once, room_for, wait_until_a_connection_waits_for_a_lock
from tests.conftest import logged_in_client, tasks_in_process
from tests.factories import MembershipFactory, PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session
from tests.scheduling.test_booking_concurrency import roomy_server  # noqa: F401 - the fixture

# A storm holds a score of connections at once: these share the storms' worker, so PostgreSQL's limit holds.
pytestmark = [pytest.mark.xdist_group("fifty-connection-storms"), pytest.mark.django_db(transaction=True)]

CSRF = "t" * 32
ROUNDS = 3
REMOVED = "This slot was removed from its session by a change to the rota; choose another time."
BLANK = "This slot cannot be booked (a blank slot)."
SICK = "This session is cancelled (sickness); choose another time."


@pytest.fixture(autouse=True)
def sends_in_this_process():
    """Messages are written in the change's transaction; sending them runs here, never on a broker."""
    with tasks_in_process():
        yield


@pytest.fixture
def day(clinic_a):
    """A day three weeks ahead: in the future whenever the suite runs, so proposals and bookings are open."""
    return clinic_a.today() + dt.timedelta(days=21)


# --- Helpers ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    label: str
    url: str
    data: dict
    cookies: dict
    late: float = 0.0  # seconds after the others set off


@dataclass(frozen=True)
class Answer:
    label: str
    status: int
    text: str = field(repr=False)

    def __repr__(self) -> str:  # what the page said, not the whole page, when a test fails
        said = re.findall(r'role="alert">(.*?)<', self.text) or [self.text[:200]]
        return f"Answer({self.label!r}, {self.status}, {said})"


def cookies_of(membership) -> dict[str, str]:
    return {"sessionid": logged_in_client(membership).cookies["sessionid"].value, "csrftoken": CSRF}


def send(server: str, post: Post, barrier: threading.Barrier | None = None, follow: bool = False) -> Answer:
    with requests.Session() as http:
        http.cookies.update(post.cookies)
        if barrier is not None:
            barrier.wait(timeout=30)
        time.sleep(post.late)
        response = http.post(
            server + post.url, data=post.data, headers={"X-CSRFToken": CSRF}, allow_redirects=follow, timeout=90
        )
    return Answer(
        post.label, response.history[0].status_code if response.history else response.status_code, response.text
    )


def posts_at_once(server: str, posts: list[Post], follow: bool = False) -> list[Answer]:
    """Send every POST at the same moment, each from its own thread (the server gives each its own connection)."""
    room_for(len(posts) + 2)
    barrier = threading.Barrier(len(posts))
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(posts)) as pool:
        return list(pool.map(lambda post: send(server, post, barrier, follow), posts))


def booking_post(slot, patient, slot_type, cookies) -> Post:
    return Post(
        f"book {patient.pk}",
        reverse("scheduling:book", args=[slot.public_id]),
        {
            "patient": str(patient.public_id),
            "coverage": "self",
            "slot_type": str(slot_type.public_id),
            "action": "book",
        },
        cookies,
    )


def booking_outcome(answer: Answer) -> str:
    """What a reception booking was told, in one word: anything else (a 500 above all) fails the test."""
    if answer.status == 302:
        return "booked"
    if answer.status == 404:
        return "gone"  # the slot had been deleted (empty, removed by the change) before the page looked it up
    for word, text in (
        ("full", "This group is full"),
        ("full", "This slot is full."),
        ("removed", REMOVED),
        ("blank", BLANK),
        ("sick", SICK),
    ):
        if text in answer.text:
            return word
    return f"unexpected {answer.status}"


def set_template(template, types):
    TemplateSlot.objects.filter(template=template).delete()
    TemplateSlot.objects.bulk_create(
        TemplateSlot(clinic=template.clinic, template=template, position=i, slot_type=t, length_minutes=minutes)
        for i, (t, minutes) in enumerate(types)
    )


def assert_counts_true(clinic) -> None:
    """Every slot's places taken are its live appointments and live holds, and never more than its capacity."""
    slots = (
        Slot.objects.for_clinic(clinic)
        .annotate(
            live=Count("appointments", filter=~Q(appointments__status=AppointmentStatus.CANCELLED), distinct=True),
            holding=Count("holds", filter=Q(holds__ended_at__isnull=True), distinct=True),
        )
        .values_list("pk", "booked_count", "held_count", "capacity", "live", "holding")
    )
    for pk, booked, held, capacity, live, holding in slots:
        assert booked == live + holding and held == holding, f"slot {pk}: {booked} taken, {live}+{holding} live"
        assert booked <= capacity, f"slot {pk}: {booked} taken of {capacity}"


def audited(clinic, action: str) -> int:
    return AuditEvent.objects.filter(clinic=clinic, action=action).count()


def patient_with_email(clinic, name):
    return PatientFactory(clinic=clinic, first_name=name, email=f"{name.lower()}@example.org")


def displaced_practice(clinic, actor, day, *, people):
    """Dr Smith off sick on `day` with `people` patients booked (each now on the worklist); Dr Jones (the same role,
    at the same location) to rebook them to. Returns (smith, jones, their slot type, the patients)."""
    NotificationSettings.objects.filter(clinic=clinic).update(sms_on=False)  # one message per patient: the email
    routine = SlotTypeFactory(clinic=clinic, name="Routine", capacity=1, default_length_minutes=10)
    smith = PractitionerFactory(clinic=clinic, name="Dr Smith", role="gp")
    jones = PractitionerFactory(clinic=clinic, name="Dr Jones", role="gp", default_location=smith.default_location)
    sick = allocate_session(clinic, practitioner=smith, day=day, slot_types=[routine] * people)
    patients = [patient_with_email(clinic, f"Pat{n}") for n in range(people)]
    for slot, patient in zip(sick.slots.order_by("starts_at"), patients, strict=True):
        appointment_book(clinic=clinic, actor=None, membership=None, request=BookingRequest(slot, patient), tell=False)
    sessions_take_out(
        clinic=clinic, actor=actor, take=TakeOut(smith, None, day, day, SessionOut.CANCELLED, OutReason.SICKNESS)
    )
    return smith, jones, routine, patients


def rebook_post(label, cookies, rows=None) -> Post:
    rows = rows if rows is not None else Displacement.objects.order_by("id")
    return Post(
        label, reverse("scheduling:displaced"), {"action": "rebook", "rows": [str(r.public_id) for r in rows]}, cookies
    )


# --- A template applied while reception books into its slots ------------------------------------------------------


def test_a_booking_whose_slot_a_change_deleted_while_it_waited_is_refused_saying_why(clinic_a, admin_a, day):
    """The booking page looked the slot up; a change deleted it (empty, removed) before the booking's transaction
    locked it: the booking is refused with the reason, not a server error."""
    group = SlotTypeFactory(clinic=clinic_a, name="Group", capacity=3, default_length_minutes=10)
    session = allocate_session(
        clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=day, slot_types=[group] * 2
    )
    _, last = session.slots.order_by("starts_at")  # as the page read it
    set_template(session.template, [(group, 10)])
    template_apply(clinic=clinic_a, actor=admin_a.user, template=session.template, first_date=day, last_date=day)
    assert not Slot.objects.filter(pk=last.pk).exists()
    with pytest.raises(BookingError, match="removed from its session"):
        appointment_book(
            clinic=clinic_a, actor=None, membership=None, request=BookingRequest(last, PatientFactory(clinic=clinic_a))
        )


def test_the_booking_page_says_why_a_slot_of_a_change_takes_no_booking(clinic_a, admin_a, reception_client_a, day):
    group = SlotTypeFactory(clinic=clinic_a, name="Group", capacity=3, default_length_minutes=10)
    smith = PractitionerFactory(clinic=clinic_a)
    session = allocate_session(clinic_a, practitioner=smith, day=day, slot_types=[group] * 2)
    first, last = session.slots.order_by("starts_at")
    appointment_book(
        clinic=clinic_a, actor=None, membership=None, request=BookingRequest(last, PatientFactory(clinic=clinic_a))
    )
    set_template(session.template, [(group, 10)])
    template_apply(clinic=clinic_a, actor=admin_a.user, template=session.template, first_date=day, last_date=day)
    retired = Slot.objects.get(pk=last.pk)
    assert retired.retired  # kept for its displaced booking
    patient = PatientFactory(clinic=clinic_a)
    form = {"patient": str(patient.public_id), "coverage": "self", "slot_type": str(group.public_id), "action": "book"}
    response = reception_client_a.post(reverse("scheduling:book", args=[retired.public_id]), form)
    assert REMOVED in response.content.decode()
    sessions_take_out(
        clinic=clinic_a,
        actor=admin_a.user,
        take=TakeOut(smith, None, day, day, SessionOut.CANCELLED, OutReason.SICKNESS),
    )
    response = reception_client_a.post(reverse("scheduling:book", args=[first.public_id]), form)
    assert SICK in response.content.decode()
    assert not Appointment.objects.filter(patient=patient).exists()


# --- Sessions cancelled while reception books into them -----------------------------------------------------------


def test_a_booking_queued_behind_a_take_out_is_told_the_session_is_cancelled(clinic_a, admin_a, reception_a, day):
    """The booking waits for the slot while the take-out has it. It then reads the slot as the take-out left it (not
    bookable), but PostgreSQL gives it the session as it was when it started waiting: the reason must come from the
    session as it is now, not "a blank slot"."""
    group = SlotTypeFactory(clinic=clinic_a, name="Group", capacity=3, default_length_minutes=10)
    smith = PractitionerFactory(clinic=clinic_a)
    slot = allocate_session(clinic_a, practitioner=smith, day=day, slot_types=[group]).slots.get()
    holding = threading.Event()

    def holder():  # a booking in flight, that the take-out and then the new booking queue behind
        with transaction.atomic():
            Slot.objects.select_for_update().get(pk=slot.pk)
            holding.set()
            wait_until_a_connection_waits_for_a_lock(count=2)
        return "held"

    def take_out():
        holding.wait(timeout=30)
        take = TakeOut(smith, None, day, day, SessionOut.CANCELLED, OutReason.SICKNESS)
        sessions_take_out(clinic=clinic_a, actor=admin_a.user, take=take)
        return "taken out"

    def booking():
        holding.wait(timeout=30)
        wait_until_a_connection_waits_for_a_lock()  # behind the take-out
        appointment_book(
            clinic=clinic_a,
            actor=reception_a.user,
            membership=reception_a,
            request=BookingRequest(slot, PatientFactory(clinic=clinic_a)),
        )
        return "booked"

    outcomes = all_at_once([holder, take_out, booking])

    assert "held" in outcomes and "taken out" in outcomes
    (told,) = set(outcomes) - {"held", "taken out"}
    if told == "booked":  # SQLite: the booking's turn may come first; it is then displaced with the session
        assert Displacement.objects.count() == 1
    else:
        assert told == SICK
    assert_counts_true(clinic_a)


# --- The worklist: two receptionists at once, and a rebook losing its place ---------------------------------------


def test_rebook_pressed_just_after_a_colleague_dealt_with_the_rows_says_so_not_a_form_error(
    clinic_a, admin_a, reception_client_a, day
):
    """The second of two receptionists pressing at once can find the rows already rebooked when its request reads
    the worklist: told so, not a form error about choices that are no longer there."""
    smith, jones, routine, patients = displaced_practice(clinic_a, admin_a.user, day, people=2)
    allocate_session(
        clinic_a, practitioner=jones, location=smith.default_location, day=day, start=dt.time(14),
        slot_types=[routine] * 2,
    )  # fmt: skip
    data = {"action": "rebook", "rows": [str(r.public_id) for r in Displacement.objects.all()]}
    colleague = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.RECEPTION, perm_manage_appointments=True))
    assert colleague.post(reverse("scheduling:displaced"), data).status_code == 302

    late = reception_client_a.post(reverse("scheduling:displaced"), data, follow=True)

    assert late.redirect_chain and late.redirect_chain[0][1] == 302
    assert "2 were already dealt with." in late.content.decode()
    assert Appointment.objects.filter(practitioner=jones).count() == 2
    assert Message.objects.filter(clinic=clinic_a, kind=Kind.MOVED).count() == 2


# --- Deadlocks: a change and the cancellation of a booking made while it waited; a change aborted -----------------


def test_cancelling_a_booking_that_landed_while_a_change_waited_never_deadlocks_with_the_change(
    clinic_a, admin_a, reception_a, day
):
    """A change locks the sessions' appointments, then their slots. A booking that commits while the change waits for
    its slot is not among the appointments it locked; if its patient's cancellation (appointment, then slot) takes
    that appointment meanwhile, the change must not then wait for it while holding the slot: one of the two would
    be aborted as a deadlock (the cancellation, as a server error). Both go through."""
    group = SlotTypeFactory(clinic=clinic_a, name="Group", capacity=3, default_length_minutes=10)
    smith = PractitionerFactory(clinic=clinic_a)
    session = allocate_session(clinic_a, practitioner=smith, day=day, slot_types=[group] * 2)
    slot = session.slots.order_by("starts_at").first()
    zed, wyn = PatientFactory.create_batch(2, clinic=clinic_a)
    first_holding, second_holding = threading.Event(), threading.Event()

    def book_holding(patient, holding, waiters):
        with transaction.atomic():
            Slot.objects.select_for_update().get(pk=slot.pk)  # appointment_book's first step, held a while
            holding.set()
            wait_until_a_connection_waits_for_a_lock(count=waiters)
            appointment_book(
                clinic=clinic_a, actor=reception_a.user, membership=reception_a, request=BookingRequest(slot, patient)
            )

    def first_booking():  # Zed's booking, in flight when the change starts
        book_holding(zed, first_holding, 2)  # the second booking and the change queue behind it
        return "Zed booked"

    def second_booking():  # another booking queued ahead of the change
        first_holding.wait(timeout=30)
        book_holding(wyn, second_holding, 2)  # the change and Zed's cancellation queue behind it
        return "Wyn booked"

    def change():
        first_holding.wait(timeout=30)
        wait_until_a_connection_waits_for_a_lock()  # the second booking queues first
        take = TakeOut(smith, None, day, day, SessionOut.CANCELLED, OutReason.SICKNESS)
        sessions_take_out(clinic=clinic_a, actor=admin_a.user, take=take)
        return "sessions cancelled"

    def cancellation():
        second_holding.wait(timeout=30)  # Zed's booking is in
        appointment = Appointment.objects.get(patient=zed)
        appointment_cancel(clinic=clinic_a, actor=reception_a.user, appointment=appointment, reason="Can't come")
        return "Zed cancelled"

    outcomes = all_at_once([first_booking, second_booking, change, cancellation])

    assert len(outcomes) == 4 and {"Zed booked", "Zed cancelled", "sessions cancelled"} < set(outcomes), outcomes
    (wyn_told,) = set(outcomes) - {"Zed booked", "Zed cancelled", "sessions cancelled"}
    # PostgreSQL queues Wyn's booking ahead of the change; SQLite's writers take turns in no set order, so there the
    # change may come first and Wyn is refused.
    assert wyn_told == "Wyn booked" or (connection.vendor == "sqlite" and wyn_told == SICK), outcomes
    assert Appointment.objects.get(patient=zed).status == AppointmentStatus.CANCELLED
    if wyn_told == "Wyn booked":
        wyns = Appointment.objects.get(patient=wyn)
        assert wyns.status == AppointmentStatus.BOOKED and Displacement.objects.get(appointment=wyns).why == "cancelled"
    assert_counts_true(clinic_a)
    assert audited(clinic_a, "sessions.cancelled") == 1 and audited(clinic_a, "appointment.cancelled") == 1


def test_a_change_aborted_to_break_a_deadlock_is_made_again_and_goes_through(clinic_a, admin_a, reception_a, day):
    """Something holding a slot of the session that then wants an appointment the change has locked: PostgreSQL
    aborts the change (it waited first), and the change is made again from the start, once the other is done."""
    group = SlotTypeFactory(clinic=clinic_a, name="Group", capacity=3, default_length_minutes=10)
    smith = PractitionerFactory(clinic=clinic_a)
    session = allocate_session(clinic_a, practitioner=smith, day=day, slot_types=[group] * 2)
    slot = session.slots.order_by("starts_at").first()
    ann = appointment_book(
        clinic=clinic_a, actor=None, membership=None, request=BookingRequest(slot, PatientFactory(clinic=clinic_a))
    )
    holding = threading.Event()

    def other():
        with transaction.atomic():
            Slot.objects.select_for_update().get(pk=slot.pk)
            holding.set()
            wait_until_a_connection_waits_for_a_lock()  # the change, holding Ann's appointment, waits for this slot
            Appointment.objects.select_for_update().get(pk=ann.pk)  # and this waits for the change: a deadlock
        return "done"

    def change():
        holding.wait(timeout=30)
        take = TakeOut(smith, None, day, day, SessionOut.CANCELLED, OutReason.SICKNESS)
        return f"displaced {sessions_take_out(clinic=clinic_a, actor=admin_a.user, take=take).displaced}"

    assert sorted(all_at_once([other, change])) == ["displaced 1", "done"]
    assert Displacement.objects.get().appointment_id == ann.pk
    assert RotaChange.objects.count() == 1 and audited(clinic_a, "sessions.cancelled") == 1
    assert_counts_true(clinic_a)
