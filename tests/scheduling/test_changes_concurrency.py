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
from collections import Counter
from dataclasses import dataclass, field, replace

import pytest
import requests
from django.db import connection, transaction
from django.db.models import Count, Q
from django.urls import reverse

from clinic.models import AuditEvent, Role
from notifications.models import Channel, Kind, Message, NotificationSettings
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    CancelCategory,
    DisplacedState,
    DisplacedWhy,
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


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_template_change_racing_bookings_loses_none_they_land_before_and_are_displaced_or_are_refused(
    clinic_a,
    admin_a,
    reception_a,
    day,
    roomy_server,  # noqa: F811
    round_,
):
    group = SlotTypeFactory(clinic=clinic_a, name="Group", capacity=3, default_length_minutes=10)
    session = allocate_session(
        clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=day, slot_types=[group] * 4
    )
    kept, cleared, kept_too, removed = session.slots.order_by("starts_at")
    # 09:00 and 09:20 stay; 09:10 becomes blank (its bookings displaced); 09:30 goes (displaced, or the slot deleted).
    set_template(session.template, [(group, 10), (None, 10), (group, 10)])
    targets = [kept, cleared, kept_too, removed] * 4  # four tries at each three-place slot
    patients = PatientFactory.create_batch(len(targets), clinic=clinic_a)
    reception = cookies_of(reception_a)
    change = Post(
        "change",
        reverse("scheduling:template-apply", args=[session.template.public_id]),
        {"first_date": f"{day:%Y-%m-%d}", "last_date": f"{day:%Y-%m-%d}", "action": "apply"},
        cookies_of(admin_a),
    )
    posts = [change] + [booking_post(slot, p, group, reception) for slot, p in zip(targets, patients, strict=True)]

    answers = posts_at_once(roomy_server, posts)

    assert answers[0].status == 302, answers[0]
    outcomes = [booking_outcome(a) for a in answers[1:]]
    assert all(not o.startswith("unexpected") for o in outcomes), list(zip(outcomes, answers[1:], strict=True))
    by_target = {slot.pk: Counter() for slot in (kept, cleared, kept_too, removed)}
    for slot, patient, outcome in zip(targets, patients, outcomes, strict=True):
        by_target[slot.pk][outcome] += 1
        live = list(Appointment.objects.filter(patient=patient).exclude(status=AppointmentStatus.CANCELLED))
        if outcome != "booked":
            assert live == [], (patient, outcome)  # a refusal wrote nothing
            continue
        (appointment,) = live  # no booking lost
        appointment.slot.refresh_from_db()
        assert appointment.status == AppointmentStatus.BOOKED and appointment.starts_at == slot.starts_at
        if slot in (kept, kept_too):
            assert appointment.slot_id == slot.pk and not appointment.slot.retired
            assert not Displacement.objects.filter(appointment=appointment).exists()
        else:  # landed before the change: displaced with the rest, still booked at its time on a retired slot
            assert appointment.slot.retired and not appointment.slot.bookable
            row = Displacement.objects.get(appointment=appointment)
            assert row.state == DisplacedState.OPEN
            assert row.why == (DisplacedWhy.CLEARED if slot == cleared else DisplacedWhy.REMOVED)
    # The untouched slots took three each and told the fourth it was full; the changed ones refused saying why.
    for slot in (kept, kept_too):
        assert by_target[slot.pk] == Counter(booked=3, full=1), by_target
    # The cleared slot: retired with its bookings when it had some (later tries hear "removed"), else made blank
    # in place (later tries hear "blank").
    assert set(by_target[cleared.pk]) <= {"booked", "full", "blank", "removed"}, by_target
    assert set(by_target[removed.pk]) <= {"booked", "full", "removed", "gone"}, by_target
    booked = outcomes.count("booked")
    displaced = by_target[cleared.pk]["booked"] + by_target[removed.pk]["booked"]
    assert Appointment.objects.filter(clinic=clinic_a).count() == booked
    change_row = RotaChange.objects.get(clinic=clinic_a)
    assert change_row.displaced_count == displaced == Displacement.objects.count()
    assert_counts_true(clinic_a)
    assert audited(clinic_a, "template.applied") == 1
    assert audited(clinic_a, "appointment.booked") == booked


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


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_session_cancelled_while_bookings_race_in_displaces_those_that_landed_and_refuses_the_rest(
    clinic_a,
    admin_a,
    reception_a,
    day,
    roomy_server,  # noqa: F811
    round_,
):
    group = SlotTypeFactory(clinic=clinic_a, name="Group", capacity=3, default_length_minutes=10)
    single = SlotTypeFactory(clinic=clinic_a, name="Routine", capacity=1, default_length_minutes=10)
    smith, jones = PractitionerFactory.create_batch(2, clinic=clinic_a)
    sick = allocate_session(clinic_a, practitioner=smith, day=day, slot_types=[group, single, group])
    well = allocate_session(clinic_a, practitioner=jones, day=day, slot_types=[group])
    sick_slots = list(sick.slots.order_by("starts_at"))
    targets = [(slot, slot.slot_type) for slot in sick_slots] * 4 + [(well.slots.get(), group)] * 3
    patients = PatientFactory.create_batch(len(targets), clinic=clinic_a)
    reception = cookies_of(reception_a)
    take_out = Post(
        "take out",
        reverse("scheduling:take-out"),
        {
            "practitioner": str(smith.public_id),
            "first_date": f"{day:%Y-%m-%d}",
            "last_date": f"{day:%Y-%m-%d}",
            "reason": OutReason.SICKNESS,
            "action": SessionOut.CANCELLED,
            "note": "Off sick",
            "action_step": "apply",
        },
        cookies_of(admin_a),
    )
    posts = [take_out] + [booking_post(s, p, t, reception) for (s, t), p in zip(targets, patients, strict=True)]

    answers = posts_at_once(roomy_server, posts)

    assert answers[0].status == 302, answers[0]
    outcomes = [booking_outcome(a) for a in answers[1:]]
    assert all(not o.startswith("unexpected") for o in outcomes), list(zip(outcomes, answers[1:], strict=True))
    landed_in_sick = 0
    for (slot, _), patient, outcome in zip(targets, patients, outcomes, strict=True):
        live = list(Appointment.objects.filter(patient=patient).exclude(status=AppointmentStatus.CANCELLED))
        if slot.session_id == well.pk:
            assert outcome == "booked" and len(live) == 1 and not Displacement.objects.filter(appointment=live[0])
            continue
        assert outcome in {"booked", "full", "sick"}, outcome
        if outcome != "booked":
            assert live == []
            continue
        (appointment,) = live  # landed before the change: still booked at its time, on the worklist
        landed_in_sick += 1
        assert appointment.slot_id == slot.pk and appointment.status == AppointmentStatus.BOOKED
        row = Displacement.objects.get(appointment=appointment)
        assert row.state == DisplacedState.OPEN and row.why == DisplacedWhy.CANCELLED
    change = RotaChange.objects.get(clinic=clinic_a)
    assert change.displaced_count == landed_in_sick == Displacement.objects.count()
    assert Appointment.objects.filter(clinic=clinic_a).count() == outcomes.count("booked")
    assert not Slot.objects.filter(session=sick, bookable=True).exists()
    assert_counts_true(clinic_a)
    assert audited(clinic_a, "sessions.cancelled") == 1
    assert audited(clinic_a, "appointment.booked") == outcomes.count("booked")


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


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_receptionists_rebooking_the_same_rows_at_once_rebook_each_patient_exactly_once(
    clinic_a,
    admin_a,
    reception_a,
    day,
    roomy_server,  # noqa: F811
    round_,
):
    smith, jones, routine, patients = displaced_practice(clinic_a, admin_a.user, day, people=4)
    allocate_session(
        clinic_a,
        practitioner=jones,
        location=smith.default_location,
        day=day,
        start=dt.time(14),
        slot_types=[routine] * 4,
    )
    colleague = MembershipFactory(clinic=clinic_a, role=Role.RECEPTION, perm_manage_appointments=True)
    originals = {a.patient_id: a.pk for a in Appointment.objects.filter(clinic=clinic_a)}

    answers = posts_at_once(
        roomy_server,
        [rebook_post("first", cookies_of(reception_a)), rebook_post("second", cookies_of(colleague))],
        follow=True,
    )

    assert [a.status for a in answers] == [302, 302], answers  # neither is told off with a form error
    told = [re.search(r"Rebooked (\d+) patient", a.text) for a in answers]
    assert all(told) and sum(int(m.group(1)) for m in told if m) == 4, answers  # the rows shared out between them
    rows = list(Displacement.objects.order_by("id"))
    assert [r.state for r in rows] == [DisplacedState.REBOOKED] * 4
    for patient in patients:
        old = Appointment.objects.get(pk=originals[patient.pk])
        assert old.status == AppointmentStatus.CANCELLED and old.cancel_category == CancelCategory.RESCHEDULED
        (new,) = Appointment.objects.filter(patient=patient).exclude(status=AppointmentStatus.CANCELLED)
        assert new.rescheduled_from_id == old.pk and new.practitioner_id == jones.pk
        assert Displacement.objects.get(appointment=old).new_appointment_id == new.pk
    moved = Message.objects.filter(clinic=clinic_a, kind=Kind.MOVED, channel=Channel.EMAIL)
    assert sorted(moved.values_list("patient_id", flat=True)) == sorted(p.pk for p in patients)  # once each
    assert not Message.objects.filter(clinic=clinic_a).exclude(kind=Kind.MOVED).exists()
    assert_counts_true(clinic_a)
    assert audited(clinic_a, "displaced.rebooked") == 4 and audited(clinic_a, "appointment.rescheduled") == 4
    assert audited(clinic_a, "sessions.cancelled") == 1


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


@pytest.mark.parametrize("with_a_next_place", [True, False], ids=["next-place", "no-next-place"])
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_rebook_racing_a_booking_for_its_proposed_place_moves_on_or_stays_on_the_worklist(
    clinic_a,
    admin_a,
    reception_a,
    day,
    roomy_server,  # noqa: F811
    round_,
    with_a_next_place,
):
    smith, jones, routine, (ann,) = displaced_practice(clinic_a, admin_a.user, day, people=1)
    places = allocate_session(
        clinic_a,
        practitioner=jones,
        location=smith.default_location,
        day=day,
        start=dt.time(14),
        slot_types=[routine] * (2 if with_a_next_place else 1),
    )
    proposed, *following = places.slots.order_by("starts_at")
    zed = PatientFactory(clinic=clinic_a)

    # The rebook has more to do before it comes to the place (the worklist, the proposals, the old appointment):
    # the booking sets off a little later in each round, so that each wins in some.
    booking = replace(booking_post(proposed, zed, routine, cookies_of(reception_a)), late=0.08 * round_)
    rebook, booking = posts_at_once(roomy_server, [rebook_post("rebook", cookies_of(admin_a)), booking])

    assert rebook.status == 302, rebook
    assert booking_outcome(booking) in {"booked", "full"}, booking
    row = Displacement.objects.get()
    zeds = list(Appointment.objects.filter(patient=zed))
    if booking_outcome(booking) == "full":  # the rebook got there first
        assert zeds == [] and row.state == DisplacedState.REBOOKED and row.new_appointment.slot_id == proposed.pk
    else:
        assert [a.slot_id for a in zeds] == [proposed.pk]
        if with_a_next_place:  # the next free place
            assert row.state == DisplacedState.REBOOKED and row.new_appointment.slot_id == following[0].pk
        else:  # none left: the row stays, saying so; the appointment still stands
            assert row.state == DisplacedState.OPEN and "No free place" in row.note
            assert row.appointment.status == AppointmentStatus.BOOKED
    assert not Appointment.objects.filter(practitioner=jones).values("slot").annotate(n=Count("id")).filter(n__gt=1)
    assert_counts_true(clinic_a)
    assert audited(clinic_a, "displaced.rebooked") == (1 if row.state == DisplacedState.REBOOKED else 0)


@pytest.mark.parametrize("with_a_next_place", [True, False], ids=["next-place", "no-next-place"])
def test_a_rebook_that_loses_its_proposed_place_while_it_waits_takes_the_next_or_stays_saying_so(
    clinic_a,
    admin_a,
    reception_a,
    day,
    roomy_server,  # noqa: F811
    with_a_next_place,
):
    """The proposed place's lock is held by a booking in flight while the rebook comes for it (the rebook queues
    behind it, on PostgreSQL): the booking wins, and the rebook moves on, or leaves the row open with its note."""
    smith, jones, routine, (ann,) = displaced_practice(clinic_a, admin_a.user, day, people=1)
    places = allocate_session(
        clinic_a,
        practitioner=jones,
        location=smith.default_location,
        day=day,
        start=dt.time(14),
        slot_types=[routine] * (2 if with_a_next_place else 1),
    )
    proposed, *following = places.slots.order_by("starts_at")
    zed = PatientFactory(clinic=clinic_a)
    holding = threading.Event()
    answers: list[Answer] = []

    def rebook():
        holding.wait(timeout=30)
        answers.append(send(roomy_server, rebook_post("rebook", cookies_of(admin_a)), follow=True))
        return "sent"

    def booking():
        with transaction.atomic():
            Slot.objects.select_for_update().get(pk=proposed.pk)  # as appointment_book's first step does
            holding.set()
            wait_until_a_connection_waits_for_a_lock()  # the rebook, for this place
            appointment_book(
                clinic=clinic_a, actor=reception_a.user, membership=reception_a, request=BookingRequest(proposed, zed)
            )
        return "booked"

    outcomes = all_at_once([rebook, booking])

    assert sorted(outcomes) == ["booked", "sent"], outcomes
    (answer,) = answers
    assert answer.status == 302, answer
    row = Displacement.objects.get()
    assert [a.slot_id for a in Appointment.objects.filter(patient=zed)] == [proposed.pk]
    if with_a_next_place:
        assert row.state == DisplacedState.REBOOKED and row.new_appointment.slot_id == following[0].pk
        assert "Rebooked 1 patient;" in answer.text
    else:
        assert row.state == DisplacedState.OPEN and row.note == "No free place found to rebook to; still to do."
        assert "No free place for 1" in answer.text
    assert_counts_true(clinic_a)


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

    def book_holding(patient, holding, waiters, strict=True):
        with transaction.atomic():
            Slot.objects.select_for_update().get(pk=slot.pk)  # appointment_book's first step, held a while
            holding.set()
            wait_until_a_connection_waits_for_a_lock(count=waiters, strict=strict)
            appointment_book(
                clinic=clinic_a, actor=reception_a.user, membership=reception_a, request=BookingRequest(slot, patient)
            )

    def first_booking():  # Zed's booking, in flight when the change starts
        book_holding(zed, first_holding, 2)  # the second booking and the change queue behind it
        return "Zed booked"

    def second_booking():  # another booking queued ahead of the change
        first_holding.wait(timeout=30)
        # The change and Zed's cancellation queue behind it, unless PostgreSQL handed the slot to the change first
        # (waiters on one row are not strictly served in turn): then go on after a while all the same.
        book_holding(wyn, second_holding, 2, strict=False)
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
    # Wyn's booking usually goes ahead of the change; when the change comes first (SQLite's writers take turns in
    # no set order, and PostgreSQL may hand the row to either waiter), Wyn is refused.
    assert wyn_told in ("Wyn booked", SICK), outcomes
    assert Appointment.objects.get(patient=zed).status == AppointmentStatus.CANCELLED
    if wyn_told == "Wyn booked":
        wyns = Appointment.objects.get(patient=wyn)
        assert wyns.status == AppointmentStatus.BOOKED and Displacement.objects.get(appointment=wyns).why == "cancelled"
    assert_counts_true(clinic_a)
    assert audited(clinic_a, "sessions.cancelled") == 1 and audited(clinic_a, "appointment.cancelled") == 1


def look_for_deadlocks_after(wait: str, *, local: bool = False) -> None:
    """Set PostgreSQL's `deadlock_timeout` for this connection (or, `local`, its transaction). SQLite's writers take
    turns on one lock and cannot deadlock, so there it does nothing."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET {'LOCAL ' if local else ''}deadlock_timeout = %s", [wait])


def test_a_change_aborted_to_break_a_deadlock_is_made_again_and_goes_through(clinic_a, admin_a, reception_a, day):
    """Something holding a slot of the session that then wants an appointment the change has locked: PostgreSQL
    aborts the change, and the change is made again from the start, once the other is done.

    PostgreSQL looks for a deadlock once per wait, `deadlock_timeout` after the wait began, and aborts the
    transaction that finds it. The change waits first, so it looks first; but on a busy machine the other may not
    be waiting yet a second later, and then the other finds the deadlock and is aborted instead. So each sets its
    own timeout (superuser-only, as the suite connects): the change looks after 5 s, the other not for a minute."""
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
            look_for_deadlocks_after("60s", local=True)
            Slot.objects.select_for_update().get(pk=slot.pk)
            holding.set()
            wait_until_a_connection_waits_for_a_lock()  # the change, holding Ann's appointment, waits for this slot
            Appointment.objects.select_for_update().get(pk=ann.pk)  # and this waits for the change: a deadlock
        return "done"

    def change():
        look_for_deadlocks_after("5s")  # for this thread's connection, closed after the job
        holding.wait(timeout=30)
        take = TakeOut(smith, None, day, day, SessionOut.CANCELLED, OutReason.SICKNESS)
        return f"displaced {sessions_take_out(clinic=clinic_a, actor=admin_a.user, take=take).displaced}"

    assert sorted(all_at_once([other, change])) == ["displaced 1", "done"]
    assert Displacement.objects.get().appointment_id == ann.pk
    assert RotaChange.objects.count() == 1 and audited(clinic_a, "sessions.cancelled") == 1
    assert_counts_true(clinic_a)
