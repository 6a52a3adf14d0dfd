"""Demo scheduling for `manage.py seed_demo`: six weeks of rota from this week's Monday, then
appointments around today, office hours, availability and other events (each seeded once)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from clinic.models import Clinic, Location, Membership, Practitioner, Role
from patients.models import Patient
from scheduling.models import Allocation, Appointment, AppointmentStatus, Series, Slot
from scheduling.recurrence import Frequency, RecurrenceRule
from scheduling.selectors.series import series_preview
from scheduling.services import calendar as services
from scheduling.services.booking import BookingRequest
from scheduling.services.rota import AllocationRequest, allocation_create
from scheduling.services.series import PlannedOccurrence, SeriesRequest, series_book
from sessions_setup.models import SessionTemplate, SlotType

WEEKS = 6
# template -> (practitioner name or None for the whole clinic, location name, start, weekdays, every N weeks)
ROTA: dict[str, dict[str, tuple[str | None, str, dt.time, tuple[int, ...], int]]] = {
    "riverside": {
        "Dr Smith AM": ("Dr Sarah Smith", "Riverside Surgery", dt.time(8, 30), (1, 2, 3, 4, 5), 1),
        "Dr Patel PM": ("Dr Omar Patel", "Riverside Surgery", dt.time(14, 0), (1, 2, 3, 4), 1),
        "Nurses PM surgery": ("Nurse Jane Okafor", "Hillside Branch", dt.time(13, 30), (2, 4), 1),
        "Flu & COVID clinic": (None, "Hillside Branch", dt.time(9, 0), (6,), 2),
        "Ante-Natal Clinic": ("Nurse Jane Okafor", "Riverside Surgery", dt.time(10, 0), (3,), 1),
    },
    "lakeview": {
        "Lopez AM": ("Dr Maria Lopez", "Lakeview Center", dt.time(9, 0), (1, 2, 3, 4, 5), 1),
        "Chen Brooklyn": ("James Chen, LCSW", "Brooklyn Office", dt.time(10, 0), (2, 4), 1),
        "Evening group": ("Dr Maria Lopez", "Lakeview Center", dt.time(18, 0), (3,), 1),
    },
}


def seed_clinic(clinic: Clinic) -> None:
    admin = Membership.objects.for_clinic(clinic).filter(role=Role.ADMIN).select_related("user").first()
    actor = admin.user if admin else None
    seed_rota(clinic, actor)
    seed_calendar(clinic, actor)
    if admin is not None:
        seed_series(clinic, admin)
        seed_changes(clinic, admin)
        seed_waitlist(clinic, admin)


def seed_rota(clinic: Clinic, actor: Any) -> None:
    plan = ROTA.get(clinic.slug, {})
    if not plan or Allocation.objects.for_clinic(clinic).exists():
        return  # the rota is seeded once; later runs keep what is there
    today = clinic.today()
    monday = today - dt.timedelta(days=today.weekday())
    for template_name, (practitioner_name, location_name, start, weekdays, every) in plan.items():
        template = SessionTemplate.objects.for_clinic(clinic).get(name=template_name)
        practitioner = (
            Practitioner.objects.for_clinic(clinic).get(name=practitioner_name) if practitioner_name else None
        )
        location = Location.objects.for_clinic(clinic).get(name=location_name)
        request = AllocationRequest(
            template,
            practitioner,
            location,
            start,
            monday,
            monday + dt.timedelta(weeks=WEEKS, days=-1),
            weekdays,
            every,
        )
        allocation_create(clinic=clinic, actor=actor, request=request)


def seed_calendar(clinic: Clinic, actor: Any) -> None:
    """Appointments around today, office hours, availability and a few other events (seeded once)."""
    if Appointment.objects.for_clinic(clinic).exists():
        return
    rng = random.Random(clinic.slug)
    patients = list(Patient.objects.for_clinic(clinic).filter(is_archived=False))
    if not patients:
        return
    today = clinic.today()
    now = timezone.now()
    slots = list(
        Slot.objects.for_clinic(clinic)
        .filter(bookable=True, session__date__range=(today - dt.timedelta(days=14), today + dt.timedelta(days=21)))
        .select_related("session")
    )
    appointments = []
    for slot in slots:
        places = slot.capacity if slot.capacity == 1 else rng.randint(0, slot.capacity)
        if slot.capacity == 1 and rng.random() > 0.6:
            continue
        for patient in rng.sample(patients, k=min(places, len(patients))):
            appointments.append(
                Appointment(
                    clinic=clinic,
                    slot=slot,
                    practitioner_id=slot.session.practitioner_id,
                    patient=patient,
                    slot_type_id=slot.slot_type_id,
                    status=demo_status(rng, slot.starts_at, slot.ends_at, now),
                    starts_at=slot.starts_at,
                    ends_at=slot.ends_at,
                    created_by=actor,
                )
            )
            slot.booked_count += 1
    with transaction.atomic():
        Appointment.objects.bulk_create(appointments, batch_size=500)
        Slot.objects.bulk_update([s for s in slots if s.booked_count], ["booked_count"], batch_size=500)

    practitioners = list(Practitioner.objects.for_clinic(clinic).filter(is_active=True).order_by("name"))
    weekdays = {day: [(dt.time(8), dt.time(18, 30))] for day in range(1, 6)}
    services.office_hours_save(
        clinic=clinic, actor=actor, practitioner=None, time_zone=clinic.time_zone, weekly=weekdays
    )
    if practitioners:
        first = practitioners[0]
        services.office_hours_save(
            clinic=clinic,
            actor=actor,
            practitioner=first,
            time_zone=first.time_zone or clinic.time_zone,
            weekly={day: [(dt.time(8), dt.time(12, 30)), (dt.time(13, 30), dt.time(18))] for day in range(1, 5)},
        )
    monday = today - dt.timedelta(days=today.weekday())
    for index, practitioner in enumerate(practitioners[:3]):
        zone = practitioner.time_zone or clinic.time_zone
        services.availability_save(
            clinic=clinic,
            actor=actor,
            practitioner=practitioner,
            time_zone=zone,
            weekly={day: [(dt.time(9), dt.time(12)), (dt.time(14), dt.time(17))] for day in range(1, 6)},
        )
        services.availability_overrides_set(
            clinic=clinic,
            actor=actor,
            practitioner=practitioner,
            dates=[monday + dt.timedelta(days=8 + index)],
            hours=[],
        )
        local = ZoneInfo(zone)
        services.other_event_save(
            clinic=clinic,
            actor=actor,
            data=services.EventData(
                practitioner=practitioner,
                title="Practice meeting" if index == 0 else "Supervision",
                all_day=False,
                busy=True,
                notes="",
                starts_at=dt.datetime.combine(monday + dt.timedelta(days=2), dt.time(12, 30), tzinfo=local),
                ends_at=dt.datetime.combine(monday + dt.timedelta(days=2), dt.time(13, 30), tzinfo=local),
            ),
        )
        services.other_event_save(
            clinic=clinic,
            actor=actor,
            data=services.EventData(
                practitioner=practitioner,
                title="Training day" if index == 0 else "Annual leave",
                all_day=True,
                busy=True,
                notes="",
                first_date=monday + dt.timedelta(days=8 + index),
                last_date=monday + dt.timedelta(days=8 + index + (1 if index else 0)),
            ),
        )
    if practitioners:
        services.other_event_save(
            clinic=clinic,
            actor=actor,
            data=services.EventData(
                practitioner=practitioners[0],
                title="Optional journal club",
                all_day=False,
                busy=False,
                notes="",
                starts_at=dt.datetime.combine(
                    monday + dt.timedelta(days=3), dt.time(17), tzinfo=ZoneInfo(clinic.time_zone)
                ),
                ends_at=dt.datetime.combine(
                    monday + dt.timedelta(days=3), dt.time(18), tzinfo=ZoneInfo(clinic.time_zone)
                ),
            ),
        )


# clinic -> (practitioner, appointment type, weekdays, sessions): a weekly group series, longer than the rota,
# so its last weeks are drafts to place.
SERIES: dict[str, tuple[str, str, tuple[int, ...], int]] = {
    "lakeview": ("Dr Maria Lopez", "Group therapy", (3,), 8),
}


def seed_series(clinic: Clinic, admin: Membership) -> None:
    """A patient's weekly evening group series from next week, with drafts beyond the rota (seeded once)."""
    if clinic.slug not in SERIES or Series.objects.for_clinic(clinic).exists():
        return
    practitioner_name, type_name, weekdays, count = SERIES[clinic.slug]
    practitioner = Practitioner.objects.for_clinic(clinic).get(name=practitioner_name)
    slot_type = SlotType.objects.for_clinic(clinic).get(name=type_name)
    first = (
        Slot.objects.for_clinic(clinic)
        .filter(
            session__practitioner=practitioner,
            slot_type=slot_type,
            starts_at__gte=timezone.now() + dt.timedelta(days=7),
        )
        .select_related("session")
        .order_by("starts_at")
        .first()
    )
    if first is None:
        return
    zone = ZoneInfo(first.session.time_zone)
    local = first.starts_at.astimezone(zone)
    rule = RecurrenceRule(
        Frequency.WEEKLY, start=local.date(), time=local.time().replace(tzinfo=None), weekdays=weekdays, count=count
    )
    matches = series_preview(
        clinic=clinic, practitioner=practitioner, slot_type=slot_type, occurrences=rule.occurrences(zone)
    )
    # Someone not booked into any of those places already (the demo calendar books people at random).
    booked = (
        Appointment.objects.for_clinic(clinic)
        .live()
        .filter(slot__in=[m.slot for m in matches if m.slot is not None])
        .values("patient_id")
    )
    patient = (
        Patient.objects.for_clinic(clinic)
        .filter(is_archived=False, is_blocked=False)
        .exclude(pk__in=booked)
        .order_by("last_name", "pk")
        .first()
    )
    if patient is None:
        return
    series_book(
        clinic=clinic,
        actor=admin.user,
        membership=admin,
        request=SeriesRequest(
            booking=BookingRequest(slot=first, patient=patient, slot_type=slot_type, self_pay=True),
            practitioner=practitioner,
            rule=rule,
            time_zone=first.session.time_zone,
            plan=[PlannedOccurrence(m.starts_at, m.slot if m.bookable else None) for m in matches],
        ),
    )


def demo_status(rng: random.Random, starts_at: dt.datetime, ends_at: dt.datetime, now: dt.datetime) -> str:
    if ends_at < now:
        return AppointmentStatus.DID_NOT_ATTEND if rng.random() < 0.07 else AppointmentStatus.COMPLETED
    if starts_at <= now:
        return AppointmentStatus.IN_CONSULTATION
    if starts_at - now < dt.timedelta(minutes=30):
        return AppointmentStatus.ARRIVED
    return AppointmentStatus.BOOKED


# clinic -> (practitioner on leave next week, on which weekday; practitioner on training, on which weekday): the
# first's sessions are cancelled (their patients on the worklist to rebook), the second's suspended.
CHANGES: dict[str, tuple[str, int, str, int]] = {
    "riverside": ("Nurse Jane Okafor", 2, "Dr Omar Patel", 4),
}


def seed_changes(clinic: Clinic, admin: Membership) -> None:
    """A clinician on leave next week (sessions cancelled: the displaced patients' worklist has rows) and one on
    training (suspended), made through the services (seeded once)."""
    from scheduling.models import OutReason, RotaChange, SessionOut
    from scheduling.services.changes import ChangeError, TakeOut, sessions_take_out

    plan = CHANGES.get(clinic.slug)
    if plan is None or RotaChange.objects.for_clinic(clinic).exists():
        return
    on_leave, leave_day, on_training, training_day = plan
    today = clinic.today()
    next_monday = today + dt.timedelta(days=7 - today.weekday())
    for name, weekday, action, reason in (
        (on_leave, leave_day, SessionOut.CANCELLED, OutReason.LEAVE),
        (on_training, training_day, SessionOut.SUSPENDED, OutReason.TRAINING),
    ):
        practitioner = Practitioner.objects.for_clinic(clinic).filter(name=name).first()
        day = next_monday + dt.timedelta(days=weekday - 1)
        if practitioner is None:
            continue
        take = TakeOut(practitioner, None, day, day, action, reason, note="Demo")
        try:
            sessions_take_out(clinic=clinic, actor=admin.user, take=take)
        except ChangeError:
            continue  # no session that day


# clinic slug -> (group template, its slot type, the practitioner a preference waits for, their type, weekday)
WAITLIST = {
    "riverside": ("Ante-Natal Clinic", "Antenatal group", "Dr Sarah Smith", "Normal", 2),
    "lakeview": ("Evening group", "Group therapy", "Dr Maria Lopez", "Therapy 50", 2),
}


def seed_waitlist(clinic: Clinic, admin: Membership) -> None:
    """A full group a few days ahead with three patients waiting for it (this slot, any occurrence of the group, a
    practitioner on Tuesday afternoons): cancel a place there and the first is offered it (seeded once)."""
    from scheduling.models import WaitlistEntry

    plan = WAITLIST.get(clinic.slug)
    if plan is None:
        return
    if not WaitlistEntry.objects.for_clinic(clinic).exists():
        seed_waitlist_entries(clinic, admin, plan)
    if clinic.slug == "lakeview":
        # Last, so the patients above join before the group closes (the closed group would refuse them once it has
        # begun, which depends on today's date).
        enforce_closed(clinic, admin, "Evening group")


def seed_waitlist_entries(clinic: Clinic, admin: Membership, plan: tuple[str, str, str, str, int]) -> None:
    from scheduling.models import SeriesScope, WaitlistKind
    from scheduling.services.booking import BookingError, appointment_book
    from scheduling.services.waitlist import EntryData, waitlist_add

    template_name, type_name, practitioner_name, wanted_type, weekday = plan
    soon = timezone.now() + dt.timedelta(days=2)
    slot = (
        Slot.objects.for_clinic(clinic)
        .filter(session__template__name=template_name, slot_type__name=type_name, starts_at__gte=soon, bookable=True)
        .select_related("session__allocation", "slot_type")
        .order_by("starts_at", "position")
        .first()
    )
    if slot is None:
        return
    booked = set(Appointment.objects.for_clinic(clinic).live().filter(slot=slot).values_list("patient_id", flat=True))
    people = list(
        Patient.objects.for_clinic(clinic)
        .filter(is_blocked=False, is_archived=False)
        .exclude(pk__in=booked)
        .exclude(email="")
        .order_by("last_name", "first_name")
    )
    free = slot.capacity - slot.booked_count
    to_book, waiting = people[:free], people[free : free + 3]
    for patient in to_book:
        try:
            appointment_book(
                clinic=clinic,
                actor=admin.user,
                membership=admin,
                request=BookingRequest(slot=slot, patient=patient),
                tell=False,
            )
        except BookingError:
            continue
    slot.refresh_from_db()
    if slot.booked_count < slot.capacity or len(waiting) < 3:
        return
    practitioner = Practitioner.objects.for_clinic(clinic).filter(name=practitioner_name).first()
    preference_type = SlotType.objects.for_clinic(clinic).filter(name=wanted_type).first()
    wishes = [
        EntryData(patient=waiting[0], kind=WaitlistKind.SLOT, slot=slot, note="Can come at short notice"),
        EntryData(
            patient=waiting[1],
            kind=WaitlistKind.SERIES,
            allocation=slot.session.allocation,
            slot_type=slot.slot_type,
            scope=SeriesScope.ANY,
            note="Referred by the midwife" if clinic.slug == "riverside" else "Referred by Dr Lopez",
        ),
        EntryData(
            patient=waiting[2],
            kind=WaitlistKind.PREFERENCE,
            practitioner=practitioner,
            slot_type=preference_type,
            weekdays=[weekday],
            time_from=dt.time(13),
            note="Tuesday afternoons only",
        ),
    ]
    for wish in wishes:
        try:
            waitlist_add(clinic=clinic, actor=admin.user, membership=admin, data=wish)
        except BookingError:
            continue


def enforce_closed(clinic: Clinic, admin: Membership, template_name: str) -> None:
    """The DBT skills group closes once it has begun: the template's closed session enforced, applied to its sessions
    (the patients booked already are in the group and keep their places)."""
    from scheduling.services.changes import ChangeError, template_apply

    template = SessionTemplate.objects.for_clinic(clinic).filter(name=template_name).first()
    if template is None or template.closed_enforced:
        return  # enforced once: the demo leaves what a user changed since
    template.closed_session = template.closed_enforced = True
    template.save(update_fields=["closed_session", "closed_enforced", "updated_at"])
    try:
        template_apply(clinic=clinic, actor=admin.user, template=template, first_date=clinic.today())
    except ChangeError:
        return
