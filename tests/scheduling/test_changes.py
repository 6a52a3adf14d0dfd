"""Changing the book after it is built: a template change applied to the rota, one session edited, sessions taken
out and resumed; what each does to the slots and to the appointments in them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db.models import F

from scheduling.models import (
    Appointment,
    AppointmentStatus,
    DisplacedState,
    DisplacedWhy,
    Displacement,
    Hold,
    HoldKind,
    HoldOutcome,
    OutReason,
    RotaChange,
    Session,
    SessionOut,
    Slot,
)
from scheduling.services.booking import BookingError, BookingRequest, appointment_book, hold_take
from scheduling.services.changes import (
    ChangeError,
    SessionEdit,
    TakeOut,
    session_edit,
    session_edit_preview,
    sessions_resume,
    sessions_take_out,
    take_out_preview,
    template_apply,
    template_apply_preview,
)
from scheduling.services.rota import AllocationRequest, allocation_create
from sessions_setup.models import TemplateSlot
from tests.factories import (
    LocationFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    template_with_slots,
)

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def book_setup(clinic_a, admin_a):
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine", default_length_minutes=10)
    phone = SlotTypeFactory(clinic=clinic_a, name="Telephone", default_length_minutes=10)
    group = SlotTypeFactory(clinic=clinic_a, name="Group", default_length_minutes=10, capacity=3)
    london = LocationFactory(clinic=clinic_a, name="Main", time_zone="Europe/London")
    smith = PractitionerFactory(clinic=clinic_a, name="Dr Smith", default_location=london)
    template = template_with_slots(clinic_a, [routine, routine, routine, group], name="Smith AM")
    request = AllocationRequest(
        template, smith, london, dt.time(9), dt.date(2027, 3, 22), dt.date(2027, 4, 2), (1, 3, 5), 1
    )
    allocation = allocation_create(clinic=clinic_a, actor=admin_a.user, request=request)
    return {
        "routine": routine, "phone": phone, "group": group, "london": london, "smith": smith,
        "template": template, "allocation": allocation, "actor": admin_a.user, "membership": admin_a,
    }  # fmt: skip


def reception_book(clinic, slot, patient=None, membership=None):
    return appointment_book(
        clinic=clinic,
        actor=None,
        membership=membership,
        request=BookingRequest(slot=slot, patient=patient or PatientFactory(clinic=clinic)),
    )


def slots_of(session):
    return list(Slot.objects.filter(session=session, retired=False).order_by("starts_at"))


def set_template(template, types):
    TemplateSlot.objects.filter(template=template).delete()
    TemplateSlot.objects.bulk_create(
        TemplateSlot(clinic=template.clinic, template=template, position=i, slot_type=t, length_minutes=minutes)
        for i, (t, minutes) in enumerate(types)
    )


# --- A template change applied to the rota ----------------------------------------------------------------------


def test_template_apply_retypes_removes_and_adds_with_the_displaced_listed_first(clinic_a, book_setup):
    s = book_setup
    sessions = list(Session.objects.filter(allocation=s["allocation"]).order_by("date"))
    first, second = sessions[0], sessions[1]
    kept = reception_book(clinic_a, slots_of(first)[0])  # 09:00 stays Routine
    retyped = reception_book(clinic_a, slots_of(first)[1])  # 09:10 becomes Telephone
    group_people = [reception_book(clinic_a, slots_of(first)[3]) for _ in range(3)]  # 09:30 group: 3 → 2 places
    other_week = reception_book(clinic_a, slots_of(second)[2])  # 09:20 removed on every date
    narrow_group = SlotTypeFactory(clinic=clinic_a, name="Small group", default_length_minutes=10, capacity=2)
    s["group"].capacity = 2
    set_template(
        s["template"],
        [(s["routine"], 10), (s["phone"], 10), (narrow_group, 10), (s["routine"], 10), (s["routine"], 10)],
    )
    # 09:20 is now the small group (retyped), 09:30 Routine (retyped from the group), 09:40 added.
    s["template"].description = "Now with phones"
    s["template"].closed_session = True
    s["template"].save()

    preview = template_apply_preview(
        clinic=clinic_a, membership=s["membership"], template=s["template"], first_date=dt.date(2027, 3, 22)
    )
    assert len(preview.sessions) == len(sessions)
    named = {row.appointment_id: row.why for row in preview.displaced}
    assert named == {
        retyped.pk: DisplacedWhy.RETYPED,
        other_week.pk: DisplacedWhy.RETYPED,
        **{a.pk: DisplacedWhy.RETYPED for a in group_people},
    }
    assert kept.pk not in named
    lines, _ = preview.groups()[0]
    assert "09:10 Routine → Telephone" in lines and any("09:40–09:50 added" in line for line in lines)
    assert "Description follows the template" in lines

    applied = template_apply(clinic=clinic_a, actor=s["actor"], template=s["template"], first_date=dt.date(2027, 3, 22))
    assert applied.displaced == 5 and applied.sessions == len(sessions)
    # Untouched bookings keep their slots; displaced ones keep their time on a retired twin, not bookable.
    kept.refresh_from_db()
    assert kept.slot_id == slots_of(first)[0].pk and kept.slot.booked_count == 1
    retyped.refresh_from_db()
    assert retyped.slot.retired and not retyped.slot.bookable and retyped.starts_at == retyped.slot.starts_at
    assert retyped.status == AppointmentStatus.BOOKED
    new_first = slots_of(first)
    assert [sl.slot_type_id for sl in new_first] == [
        s["routine"].pk, s["phone"].pk, narrow_group.pk, s["routine"].pk, s["routine"].pk
    ]  # fmt: skip
    assert all(sl.booked_count == 0 for sl in new_first[1:]) and all(sl.bookable for sl in new_first)
    first.refresh_from_db()
    assert first.ends_at == first.starts_at + dt.timedelta(minutes=50)
    assert first.description == "Now with phones" and first.closed_session
    rows = Displacement.objects.filter(change=applied.change)
    assert rows.count() == 5 and set(rows.values_list("state", flat=True)) == {DisplacedState.OPEN}
    assert RotaChange.objects.get(pk=applied.change.pk).displaced_count == 5


def test_a_capacity_drop_displaces_the_last_booked_and_keeps_the_first(clinic_a, book_setup):
    s = book_setup
    session = Session.objects.filter(allocation=s["allocation"]).order_by("date").first()
    group_slot = slots_of(session)[3]
    people = [reception_book(clinic_a, group_slot) for _ in range(3)]
    smaller = SlotTypeFactory(clinic=clinic_a, name="Pair", default_length_minutes=10, capacity=2)
    # Same type, fewer places: change the group type's capacity on the template's slot type.
    Slot.objects.filter(pk=group_slot.pk)  # (the slot keeps its own capacity until the template is applied)
    type(s["group"]).objects.filter(pk=s["group"].pk).update(capacity=2)
    template_apply(clinic=clinic_a, actor=s["actor"], template=s["template"], first_date=session.date,
                   last_date=session.date)  # fmt: skip
    group_slot.refresh_from_db()
    assert group_slot.capacity == 2 and group_slot.booked_count == 2 and not group_slot.retired
    displaced = Displacement.objects.get()
    assert displaced.appointment_id == people[2].pk and displaced.why == DisplacedWhy.CAPACITY
    assert Appointment.objects.filter(slot=group_slot).count() == 2
    assert smaller.capacity == 2  # (an unused type: the change is to the group type itself)


def test_a_removed_slot_without_history_goes_and_with_history_is_retired(clinic_a, book_setup):
    s = book_setup
    sessions = list(Session.objects.filter(allocation=s["allocation"]).order_by("date"))
    last_slot = slots_of(sessions[0])[3]
    cancelled = reception_book(clinic_a, last_slot)
    Appointment.objects.filter(pk=cancelled.pk).update(status="cancelled")
    Slot.objects.filter(pk=last_slot.pk).update(booked_count=F("booked_count") - 1)
    set_template(s["template"], [(s["routine"], 10)] * 3)
    template_apply(clinic=clinic_a, actor=s["actor"], template=s["template"], first_date=dt.date(2027, 3, 22))
    last_slot.refresh_from_db()
    assert last_slot.retired and not last_slot.bookable  # kept for the cancelled appointment's history
    assert not Slot.objects.filter(session=sessions[1], starts_at=last_slot.starts_at + dt.timedelta(days=2)).exists()
    assert all(len(slots_of(session)) == 3 for session in sessions)


def test_template_apply_from_a_date_and_by_allocation_leaves_the_rest(clinic_a, book_setup):
    s = book_setup
    set_template(s["template"], [(s["phone"], 10)] * 4)
    applied = template_apply(clinic=clinic_a, actor=s["actor"], template=s["template"], first_date=dt.date(2027, 3, 29))
    by_date = {
        session.date: slots_of(session)[0].slot_type_id for session in Session.objects.filter(template=s["template"])
    }
    assert all(type_id == s["routine"].pk for date, type_id in by_date.items() if date < dt.date(2027, 3, 29))
    assert all(type_id == s["phone"].pk for date, type_id in by_date.items() if date >= dt.date(2027, 3, 29))
    assert applied.sessions == sum(1 for date in by_date if date >= dt.date(2027, 3, 29))
    other = allocate_session(clinic_a, practitioner=s["smith"], day=dt.date(2027, 3, 23), slot_types=[s["routine"]])
    template_apply(clinic=clinic_a, actor=s["actor"], template=s["template"], first_date=dt.date(2027, 3, 1),
                   allocations=[other.allocation_id])  # fmt: skip
    assert by_date == {
        session.date: slots_of(session)[0].slot_type_id for session in Session.objects.filter(template=s["template"])
    }  # another template's allocation: nothing of this template changes


def test_a_template_that_would_overlap_another_session_is_refused_naming_it(clinic_a, book_setup):
    s = book_setup
    allocate_session(
        clinic_a, practitioner=s["smith"], location=s["london"], day=dt.date(2027, 3, 24), start=dt.time(10),
        slot_types=[s["routine"]], name="Smith late",
    )  # fmt: skip
    set_template(s["template"], [(s["routine"], 10)] * 8)  # 09:00-10:20 now
    preview = template_apply_preview(
        clinic=clinic_a, membership=s["membership"], template=s["template"], first_date=dt.date(2027, 3, 22)
    )
    assert [p.session.date for p in preview.clashes] == [dt.date(2027, 3, 24)]
    assert "Smith late" in preview.clashes[0].clash
    with pytest.raises(ChangeError, match="Smith late"):
        template_apply(clinic=clinic_a, actor=s["actor"], template=s["template"], first_date=dt.date(2027, 3, 22))
    assert all(len(slots_of(x)) == 4 for x in Session.objects.filter(template=s["template"]))


def test_template_apply_matches_slots_by_local_time_across_the_clock_change(clinic_a, book_setup):
    """Fri 26 Mar (GMT) and Mon 29 Mar 2027 (BST): the same wall-clock slots on both sides of the change."""
    s = book_setup
    before_change = Session.objects.get(allocation=s["allocation"], date=dt.date(2027, 3, 26))
    after_change = Session.objects.get(allocation=s["allocation"], date=dt.date(2027, 3, 29))
    a = reception_book(clinic_a, slots_of(before_change)[1])
    b = reception_book(clinic_a, slots_of(after_change)[1])
    set_template(s["template"], [(s["routine"], 10), (s["routine"], 10), (s["phone"], 10), (s["group"], 10)])
    applied = template_apply(clinic=clinic_a, actor=s["actor"], template=s["template"], first_date=dt.date(2027, 3, 22))
    assert applied.displaced == 0
    for session, appointment in ((before_change, a), (after_change, b)):
        appointment.refresh_from_db()
        assert not appointment.slot.retired
        assert appointment.starts_at.astimezone(LONDON).time() == dt.time(9, 10)
        assert slots_of(session)[2].starts_at.astimezone(LONDON).time() == dt.time(9, 20)


def test_a_live_hold_in_a_removed_slot_is_ended_and_its_place_freed(clinic_a, book_setup):
    s = book_setup
    session = Session.objects.filter(allocation=s["allocation"]).order_by("date").first()
    target = slots_of(session)[2]
    hold = hold_take(
        clinic=clinic_a, actor=None, slot=target, kind=HoldKind.ONLINE_REQUEST,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2),
    )  # fmt: skip
    set_template(s["template"], [(s["routine"], 10)] * 2)
    applied = template_apply(clinic=clinic_a, actor=s["actor"], template=s["template"], first_date=session.date)
    hold.refresh_from_db()
    target.refresh_from_db()
    assert hold.outcome == HoldOutcome.WITHDRAWN and applied.holds_ended == 1
    assert target.retired and target.booked_count == 0 and target.held_count == 0


# --- One session edited -------------------------------------------------------------------------------------------


def test_edit_one_session_retypes_clears_shortens_and_adds(clinic_a, book_setup):
    s = book_setup
    session = Session.objects.filter(allocation=s["allocation"]).order_by("date").first()
    current = slots_of(session)
    last = reception_book(clinic_a, current[3])
    edit = SessionEdit(
        slot_types={current[0].pk: s["phone"].pk, current[1].pk: None},
        keep=3,
        add_count=2,
        add_type=s["routine"],
        add_minutes=15,
        description="Cover",
    )
    preview = session_edit_preview(clinic=clinic_a, membership=s["membership"], session=session, edit=edit)
    # The group slot at 09:30 goes; a Routine slot added at the end starts at 09:30: matched by time, retyped.
    assert [(row.appointment_id, row.why) for row in preview.displaced] == [(last.pk, DisplacedWhy.RETYPED)]
    session_edit(clinic=clinic_a, actor=s["actor"], session=session, edit=edit)
    after = slots_of(session)
    assert [(sl.slot_type_id, sl.bookable) for sl in after] == [
        (s["phone"].pk, True), (None, False), (s["routine"].pk, True), (s["routine"].pk, True), (s["routine"].pk, True)
    ]  # fmt: skip
    assert after[3].starts_at == current[2].ends_at and after[4].ends_at - after[3].starts_at == dt.timedelta(
        minutes=30
    )
    session.refresh_from_db()
    assert session.description == "Cover" and session.ends_at == after[-1].ends_at
    assert Displacement.objects.get().appointment_id == last.pk
    # Other dates of the allocation are untouched.
    other = Session.objects.filter(allocation=s["allocation"]).exclude(pk=session.pk).first()
    assert [sl.slot_type_id for sl in slots_of(other)] == [s["routine"].pk] * 3 + [s["group"].pk]


def test_an_edit_that_overlaps_another_session_is_refused_naming_it(clinic_a, book_setup):
    s = book_setup
    session = Session.objects.filter(allocation=s["allocation"]).order_by("date").first()
    allocate_session(
        clinic_a, practitioner=s["smith"], location=s["london"], day=session.date, start=dt.time(9, 45),
        slot_types=[s["routine"]], name="Smith extra",
    )  # fmt: skip
    edit = SessionEdit(slot_types={}, keep=4, add_count=2, add_type=s["routine"], add_minutes=10)
    with pytest.raises(ChangeError, match="Smith extra"):
        session_edit(clinic=clinic_a, actor=s["actor"], session=session, edit=edit)
    assert len(slots_of(session)) == 4


def test_a_session_cannot_move_to_a_location_on_another_clock(clinic_a, book_setup):
    s = book_setup
    session = Session.objects.filter(allocation=s["allocation"]).first()
    new_york = LocationFactory(clinic=clinic_a, name="NY", time_zone="America/New_York")
    branch = LocationFactory(clinic=clinic_a, name="Branch", time_zone="Europe/London")
    with pytest.raises(ChangeError, match="another clock"):
        session_edit(
            clinic=clinic_a, actor=s["actor"], session=session, edit=SessionEdit({}, keep=4, location=new_york)
        )
    session_edit(clinic=clinic_a, actor=s["actor"], session=session, edit=SessionEdit({}, keep=4, location=branch))
    session.refresh_from_db()
    assert session.location_id == branch.pk


def test_a_booking_into_a_removed_slot_is_refused_clearly(clinic_a, book_setup):
    s = book_setup
    session = Session.objects.filter(allocation=s["allocation"]).order_by("date").first()
    doomed = slots_of(session)[3]
    reception_book(clinic_a, doomed)
    session_edit(clinic=clinic_a, actor=s["actor"], session=session, edit=SessionEdit({}, keep=3))
    with pytest.raises(BookingError, match="removed from its session"):
        reception_book(clinic_a, Slot.objects.get(pk=doomed.pk))


# --- Taken out, and back -----------------------------------------------------------------------------------------


def test_cancelling_sessions_displaces_every_booking_and_refuses_new_ones(clinic_a, book_setup):
    s = book_setup
    sessions = list(Session.objects.filter(allocation=s["allocation"]).order_by("date")[:2])
    booked = [reception_book(clinic_a, slots_of(session)[0]) for session in sessions]
    hold = hold_take(
        clinic=clinic_a, actor=None, slot=slots_of(sessions[0])[3], kind=HoldKind.ONLINE_REQUEST,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2),
    )  # fmt: skip
    take = TakeOut(s["smith"], None, sessions[0].date, sessions[1].date, SessionOut.CANCELLED, OutReason.SICKNESS)
    preview = take_out_preview(clinic=clinic_a, membership=s["membership"], take=take)
    assert [info.id for info in preview.sessions] == [x.pk for x in sessions]
    assert {row.appointment_id for row in preview.appointments} == {a.pk for a in booked} and preview.displaces
    applied = sessions_take_out(clinic=clinic_a, actor=s["actor"], take=take)
    assert applied.displaced == 2 and applied.holds_ended == 1
    for session in sessions:
        session.refresh_from_db()
        assert session.out_state == SessionOut.CANCELLED and session.out_reason == OutReason.SICKNESS
        assert not Slot.objects.filter(session=session, bookable=True).exists()
    hold.refresh_from_db()
    assert hold.outcome == HoldOutcome.WITHDRAWN and hold.slot.booked_count == 0
    assert all(a.status == AppointmentStatus.BOOKED for a in Appointment.objects.filter(pk__in=[b.pk for b in booked]))
    with pytest.raises(BookingError, match=r"cancelled \(sickness\)"):
        reception_book(clinic_a, slots_of(sessions[0])[1])
    # A third session of the range was not taken (the dates end at the second).
    assert Session.objects.filter(allocation=s["allocation"], out_state="").count() == 4


def test_suspending_keeps_bookings_refuses_new_ones_and_resume_restores(clinic_a, book_setup):
    s = book_setup
    session = Session.objects.filter(allocation=s["allocation"]).order_by("date").first()
    booked = reception_book(clinic_a, slots_of(session)[0])
    take = TakeOut(None, s["london"], session.date, session.date, SessionOut.SUSPENDED, OutReason.TRAINING)
    applied = sessions_take_out(clinic=clinic_a, actor=s["actor"], take=take)
    assert applied.displaced == 0 and not Displacement.objects.exists()
    with pytest.raises(BookingError, match=r"suspended \(training\)"):
        reception_book(clinic_a, slots_of(session)[1])
    booked.refresh_from_db()
    assert booked.status == AppointmentStatus.BOOKED
    sessions_resume(clinic=clinic_a, actor=s["actor"], sessions=[session])
    session.refresh_from_db()
    assert session.out_state == "" and session.out_reason == ""
    assert reception_book(clinic_a, slots_of(session)[1]).status == AppointmentStatus.BOOKED


def test_resuming_a_cancelled_session_lets_its_bookings_stand(clinic_a, book_setup):
    s = book_setup
    session = Session.objects.filter(allocation=s["allocation"]).order_by("date").first()
    reception_book(clinic_a, slots_of(session)[0])
    take = TakeOut(s["smith"], None, session.date, session.date, SessionOut.CANCELLED, OutReason.LEAVE)
    sessions_take_out(clinic=clinic_a, actor=s["actor"], take=take)
    sessions_resume(clinic=clinic_a, actor=s["actor"], sessions=[session])
    row = Displacement.objects.get()
    assert row.state == DisplacedState.GONE and row.handled_by == s["actor"]


def test_take_out_needs_whom_and_sane_dates(clinic_a, book_setup):
    s = book_setup
    with pytest.raises(ChangeError, match="practitioner or a location"):
        sessions_take_out(
            clinic=clinic_a, actor=s["actor"],
            take=TakeOut(None, None, dt.date(2027, 3, 22), dt.date(2027, 3, 22), "cancelled", "sickness"),
        )  # fmt: skip
    with pytest.raises(ChangeError, match="before the first"):
        sessions_take_out(
            clinic=clinic_a, actor=s["actor"],
            take=TakeOut(s["smith"], None, dt.date(2027, 3, 22), dt.date(2027, 3, 20), "cancelled", "sickness"),
        )  # fmt: skip
    with pytest.raises(ChangeError, match="no sessions"):
        sessions_take_out(
            clinic=clinic_a, actor=s["actor"],
            take=TakeOut(s["smith"], None, dt.date(2028, 3, 22), dt.date(2028, 3, 22), "cancelled", "sickness"),
        )  # fmt: skip
    assert not RotaChange.objects.exists() and not Hold.objects.exists()


def test_past_sessions_keep_the_shape_they_had(clinic_a, book_setup):
    import time_machine

    s = book_setup
    session = Session.objects.filter(allocation=s["allocation"]).order_by("date").first()
    with time_machine.travel(dt.datetime(2027, 3, 30, 12, tzinfo=dt.UTC), tick=False):
        with pytest.raises(ChangeError, match="past sessions"):
            template_apply(clinic=clinic_a, actor=s["actor"], template=s["template"], first_date=dt.date(2027, 3, 22))
        with pytest.raises(ChangeError, match="past sessions"):
            sessions_take_out(
                clinic=clinic_a, actor=s["actor"],
                take=TakeOut(s["smith"], None, dt.date(2027, 3, 29), dt.date(2027, 3, 31), "cancelled", "sickness"),
            )  # fmt: skip
        with pytest.raises(ChangeError, match="session is over"):
            session_edit(clinic=clinic_a, actor=s["actor"], session=session, edit=SessionEdit({}, keep=3))
    assert not RotaChange.objects.exists()
