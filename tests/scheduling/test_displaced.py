"""The displaced patients' worklist: a proposal each (same practitioner first, else the same role at the same
location, release rules honoured, one place never proposed twice), rebooked as reschedules that keep the history,
cancelled with the patient asked to rebook (with the online link), left for a phone call; each patient told once."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import mail

from notifications.models import Channel, Kind, Message, NotificationSettings
from online.models import OnlineSettings
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    CancelCategory,
    DisplacedState,
    Displacement,
    OutReason,
    SessionOut,
)
from scheduling.selectors.changes import worklist, worklist_proposals
from scheduling.services.booking import BookingRequest, appointment_book
from scheduling.services.changes import (
    TakeOut,
    displaced_cancel,
    displaced_rebook,
    displaced_to_contact,
    sessions_take_out,
)
from sessions_setup.models import ReleaseRule
from tests.conftest import tasks_in_process
from tests.factories import LocationFactory, PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session

pytestmark = pytest.mark.django_db(transaction=True)

DAY = dt.date(2027, 6, 8)  # a Tuesday
NOW = dt.datetime(2027, 6, 7, 9, tzinfo=dt.UTC)  # the Monday before, in working hours


@pytest.fixture(autouse=True)
def sends_in_this_process():
    with tasks_in_process():
        yield


@pytest.fixture
def practice(clinic_a, admin_a):
    main = LocationFactory(clinic=clinic_a, name="Main", time_zone="Europe/London")
    branch = LocationFactory(clinic=clinic_a, name="Branch", time_zone="Europe/London")
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine")
    smith = PractitionerFactory(clinic=clinic_a, name="Dr Smith", role="gp", default_location=main)
    jones = PractitionerFactory(clinic=clinic_a, name="Dr Jones", role="gp", default_location=main)
    nurse = PractitionerFactory(clinic=clinic_a, name="Nurse Kay", role="nurse", default_location=main)
    far = PractitionerFactory(clinic=clinic_a, name="Dr Far", role="gp", default_location=branch)
    sick_day = allocate_session(clinic_a, practitioner=smith, day=DAY, slot_types=[routine] * 3)
    return {
        "main": main, "routine": routine, "smith": smith, "jones": jones, "nurse": nurse, "far": far,
        "sick_day": sick_day, "actor": admin_a.user, "membership": admin_a,
    }  # fmt: skip


def patient(clinic, name):
    return PatientFactory(clinic=clinic, first_name=name, email=f"{name.lower()}@example.org")


def booked(clinic, slot, who):
    return appointment_book(
        clinic=clinic, actor=None, membership=None, request=BookingRequest(slot=slot, patient=who), tell=False
    )


def cancel_sick_day(clinic, p):
    take = TakeOut(p["smith"], None, DAY, DAY, SessionOut.CANCELLED, OutReason.SICKNESS)
    return sessions_take_out(clinic=clinic, actor=p["actor"], take=take)


def slots(session):
    return list(session.slots.filter(retired=False).order_by("starts_at"))


def test_proposals_prefer_the_same_practitioner_then_the_same_role_at_the_same_location(clinic_a, practice):
    p = practice
    first, second, _ = slots(p["sick_day"])
    a = booked(clinic_a, first, patient(clinic_a, "Ann"))
    b = booked(clinic_a, second, patient(clinic_a, "Bea"))
    # Jones (GP, Main) has one free place that day; the nurse and the branch GP have places, never proposed.
    jones_day = allocate_session(clinic_a, practitioner=p["jones"], day=DAY, slot_types=[p["routine"]])
    allocate_session(clinic_a, practitioner=p["nurse"], day=DAY, slot_types=[p["routine"]] * 3)
    allocate_session(clinic_a, practitioner=p["far"], day=DAY, slot_types=[p["routine"]] * 3)
    # Smith has one free place a week later.
    smith_later = allocate_session(clinic_a, practitioner=p["smith"], day=DAY + dt.timedelta(days=7),
                                   slot_types=[p["routine"]])  # fmt: skip
    with time_machine.travel(NOW, tick=False):
        cancel_sick_day(clinic_a, p)
        rows = worklist(clinic=clinic_a, membership=p["membership"])
        proposals = worklist_proposals(clinic=clinic_a, rows=rows)
    by_appointment = {row.appointment_id: proposals.get(row.id) for row in rows}
    assert by_appointment[a.pk].slot_id == slots(smith_later)[0].pk and by_appointment[a.pk].same_practitioner
    assert by_appointment[b.pk].slot_id == slots(jones_day)[0].pk and not by_appointment[b.pk].same_practitioner


def test_release_rules_are_honoured(clinic_a, practice):
    p = practice
    a = booked(clinic_a, slots(p["sick_day"])[0], patient(clinic_a, "Ann"))
    on_the_day = SlotTypeFactory(clinic=clinic_a, name="On the day", release_rule=ReleaseRule.ON_THE_DAY)
    allocate_session(clinic_a, practitioner=p["jones"], day=DAY, slot_types=[on_the_day])
    Appointment.objects.filter(pk=a.pk).update(slot_type=on_the_day)
    with time_machine.travel(NOW, tick=False):  # the day before: book-on-the-day places are not released yet
        cancel_sick_day(clinic_a, p)
        rows = worklist(clinic=clinic_a, membership=p["membership"])
        assert worklist_proposals(clinic=clinic_a, rows=rows) == {}
    with time_machine.travel(dt.datetime(2027, 6, 8, 7, tzinfo=dt.UTC), tick=False):  # on the day
        assert len(worklist_proposals(clinic=clinic_a, rows=rows)) == 1


def test_rebook_all_moves_each_patient_keeping_history_and_tells_each_once(clinic_a, practice):
    p = practice
    NotificationSettings.objects.filter(clinic=clinic_a).update(sms_on=False)
    people = [patient(clinic_a, name) for name in ("Ann", "Bea", "Cas")]
    originals = [booked(clinic_a, slot, who) for slot, who in zip(slots(p["sick_day"]), people, strict=True)]
    allocate_session(clinic_a, practitioner=p["jones"], day=DAY, slot_types=[p["routine"]] * 2)  # room for two
    with time_machine.travel(NOW, tick=False):
        cancel_sick_day(clinic_a, p)
        rows = [d.pk for d in Displacement.objects.all()]
        outcome = displaced_rebook(clinic=clinic_a, actor=p["actor"], membership=p["membership"], rows=rows)
        again = displaced_rebook(clinic=clinic_a, actor=p["actor"], membership=p["membership"], rows=rows)
    assert outcome.done == 2 and len(outcome.left) == 1 and again.done == 0
    moved = Displacement.objects.filter(state=DisplacedState.REBOOKED)
    assert moved.count() == 2 and all(d.handled_by == p["actor"] for d in moved)
    for row in moved:
        old = Appointment.objects.get(pk=row.appointment_id)
        assert old.status == AppointmentStatus.CANCELLED and old.cancel_category == CancelCategory.RESCHEDULED
        assert row.new_appointment.rescheduled_from_id == old.pk and row.new_appointment.practitioner == p["jones"]
    left = Displacement.objects.get(state=DisplacedState.OPEN)
    assert "No free place" in left.note
    # One "moved" message per rebooked patient, none twice, none for the one left.
    moves = Message.objects.filter(kind=Kind.MOVED, channel=Channel.EMAIL)
    assert moves.count() == 2
    assert len([m for m in mail.outbox if "has moved" in m.subject]) == 2
    told = {row.appointment.patient.email for row in moved}
    assert sorted(m.to[0] for m in mail.outbox) == sorted(told)
    assert originals[0].pk in {d.appointment_id for d in Displacement.objects.all()}


def test_a_rebook_that_loses_its_place_takes_the_next(clinic_a, practice):
    p = practice
    a = booked(clinic_a, slots(p["sick_day"])[0], patient(clinic_a, "Ann"))
    jones_day = allocate_session(clinic_a, practitioner=p["jones"], day=DAY, slot_types=[p["routine"]] * 2)
    with time_machine.travel(NOW, tick=False):
        cancel_sick_day(clinic_a, p)
        rows = worklist(clinic=clinic_a, membership=p["membership"])
        proposal = worklist_proposals(clinic=clinic_a, rows=rows)[rows[0].id]
        assert proposal.slot_id == slots(jones_day)[0].pk
        # Someone else takes the proposed place first.
        booked(clinic_a, slots(jones_day)[0], patient(clinic_a, "Zed"))
        outcome = displaced_rebook(clinic=clinic_a, actor=p["actor"], membership=p["membership"], rows=[rows[0].id])
    assert outcome.done == 1
    row = Displacement.objects.get(appointment=a)
    assert row.new_appointment.slot_id == slots(jones_day)[1].pk


def test_cancel_tells_the_patient_to_rebook_with_the_online_link(clinic_a, practice, settings):
    p = practice
    NotificationSettings.objects.filter(clinic=clinic_a).update(sms_on=False)
    OnlineSettings.objects.update_or_create(clinic=clinic_a, defaults={"enabled": True})
    a = booked(clinic_a, slots(p["sick_day"])[0], patient(clinic_a, "Ann"))
    with time_machine.travel(NOW, tick=False):
        cancel_sick_day(clinic_a, p)
        rows = [d.pk for d in Displacement.objects.all()]
        displaced_cancel(clinic=clinic_a, actor=p["actor"], rows=rows, reason="Dr Smith is unwell")
        displaced_cancel(clinic=clinic_a, actor=p["actor"], rows=rows, reason="Dr Smith is unwell")
    a.refresh_from_db()
    assert a.status == AppointmentStatus.CANCELLED and a.cancel_category == CancelCategory.CLINICIAN
    assert Message.objects.filter(kind=Kind.REBOOK, channel=Channel.EMAIL).count() == 1
    (email,) = mail.outbox
    assert "please rebook" in email.subject
    assert f"/book/{clinic_a.slug}/" in email.body
    assert "Dr Smith is unwell" not in email.body  # the reason stays inside
    assert Displacement.objects.get().state == DisplacedState.CANCELLED


def test_to_contact_keeps_the_row_and_says_who(clinic_a, practice):
    p = practice
    booked(clinic_a, slots(p["sick_day"])[0], patient(clinic_a, "Ann"))
    with time_machine.travel(NOW, tick=False):
        cancel_sick_day(clinic_a, p)
        displaced_to_contact(clinic=clinic_a, actor=p["actor"], rows=[d.pk for d in Displacement.objects.all()])
        rows = worklist(clinic=clinic_a, membership=p["membership"])
    assert [r.state for r in rows] == [DisplacedState.TO_CONTACT] and rows[0].waiting
    assert rows[0].handled_by and not Message.objects.exists()


def test_a_row_whose_appointment_was_dealt_with_elsewhere_closes(clinic_a, practice):
    from scheduling.services.booking import appointment_cancel

    p = practice
    a = booked(clinic_a, slots(p["sick_day"])[0], patient(clinic_a, "Ann"))
    with time_machine.travel(NOW, tick=False):
        cancel_sick_day(clinic_a, p)
        appointment_cancel(clinic=clinic_a, actor=p["actor"], appointment=a, reason="Phoned", tell=False)
        outcome = displaced_rebook(
            clinic=clinic_a, actor=p["actor"], membership=p["membership"], rows=[Displacement.objects.get().pk]
        )
    assert outcome.done == 0 and Displacement.objects.get().state == DisplacedState.GONE


def test_restricted_patients_are_unnamed_to_members_who_may_not_see_them(clinic_a, practice, reception_a):
    p = practice
    hidden = PatientFactory(
        clinic=clinic_a, first_name="Secret", last_name="Person", is_blocked=True, blocked_reason="Staff member"
    )
    booked(clinic_a, slots(p["sick_day"])[0], hidden)
    with time_machine.travel(NOW, tick=False):
        cancel_sick_day(clinic_a, p)
    assert [r.patient for r in worklist(clinic=clinic_a, membership=reception_a)] == ["Restricted patient"]
    assert [r.patient for r in worklist(clinic=clinic_a, membership=p["membership"])] == ["Secret Person"]
