"""Writes of scheduling: the rota (allocating templates into dated sessions and slots), and the calendar's
other events, office hours, availability and remembered filters."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from clinic.db import DbValues, bulk_insert
from clinic.models import Department, Membership, NamedPermission, Practitioner
from clinic.services import audit_record
from scheduling.hours import TimeRange, ranges_to_json, weekly_to_json
from scheduling.models import (
    Allocation,
    Appointment,
    AppointmentStatus,
    Availability,
    AvailabilityOverride,
    CalendarPreference,
    OfficeHours,
    OtherEvent,
    Series,
    Session,
    Slot,
)
from scheduling.rota import PlannedSession, RotaError, allocation_dates, plan_sessions, template_slots
from scheduling.selectors import booked_future_slots
from scheduling.signals import announce_calendar_change

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic, Location
    from patients.models import Coverage, Patient
    from sessions_setup.models import SessionTemplate, SlotType, TemplateSlot

# Slots are written in chunks of this many sessions, so memory stays flat for a year's rota.
SESSIONS_PER_CHUNK = 500


@dataclass(frozen=True)
class Clash:
    planned: PlannedSession
    existing_name: str
    existing_start: dt.datetime
    existing_end: dt.datetime
    existing_location: str


@dataclass(frozen=True)
class AllocationRequest:
    template: SessionTemplate
    practitioner: Practitioner | None
    location: Location
    start_time: dt.time
    first_date: dt.date
    last_date: dt.date
    weekdays: tuple[int, ...]
    every_weeks: int


@dataclass(frozen=True)
class AllocationPlan:
    request: AllocationRequest
    sessions: list[PlannedSession]
    template_slots: list[TemplateSlot]
    slot_count: int
    duration_minutes: int
    clashes: list[Clash]


class AllocationClash(ValidationError):
    """The plan clashes with sessions on the rota; carries the plan, so callers can show it."""

    def __init__(self, plan: AllocationPlan) -> None:
        self.plan = plan
        self.clashes = clashes = plan.clashes
        first = clashes[0]
        super().__init__(
            f"{len(clashes)} date(s) clash with sessions already on the rota, "
            f"first {first.planned.date:%a %d %b %Y}: “{first.existing_name}” at {first.existing_location}."
        )


def allocation_plan(*, clinic: Clinic, request: AllocationRequest) -> AllocationPlan:
    """What an allocation would create, and what it would clash with. Reads only."""
    slots = template_slots(request.template)
    if not slots:
        raise RotaError("This session template has no slots yet.")
    duration = sum(s.length_minutes for s in slots)
    dates = allocation_dates(
        first_date=request.first_date,
        last_date=request.last_date,
        weekdays=request.weekdays,
        every_weeks=request.every_weeks,
    )
    if not dates:
        raise RotaError("No date between the first and last date falls on the chosen weekdays.")
    planned = plan_sessions(
        dates=dates, start_time=request.start_time, time_zone=request.location.time_zone, duration_minutes=duration
    )
    clashes = _clashes(clinic=clinic, practitioner=request.practitioner, planned=planned)
    return AllocationPlan(request, planned, slots, len(slots) * len(planned), duration, clashes)


def _clashes(*, clinic: Clinic, practitioner: Practitioner | None, planned: Sequence[PlannedSession]) -> list[Clash]:
    """Planned sessions that overlap the practitioner's existing sessions: one query, then a sorted search."""
    if practitioner is None or not planned:
        return []
    existing = list(
        Session.objects.for_clinic(clinic)
        .filter(
            practitioner=practitioner,
            starts_at__lt=max(p.ends_at for p in planned),
            ends_at__gt=min(p.starts_at for p in planned),
        )
        .order_by("starts_at")
        .values_list("starts_at", "ends_at", "name", "location__name")
    )
    starts = [row[0] for row in existing]
    longest = max((row[1] - row[0] for row in existing), default=dt.timedelta(0))
    clashes = []
    for p in planned:
        # Any overlapping session starts before p ends and no earlier than p.start - longest.
        lo = bisect.bisect_left(starts, p.starts_at - longest)
        hi = bisect.bisect_left(starts, p.ends_at)
        for start, end, name, location in existing[lo:hi]:
            if end > p.starts_at:
                clashes.append(Clash(p, name, start, end, location))
                break
    return clashes


def allocation_create(*, clinic: Clinic, actor: User | None, request: AllocationRequest) -> Allocation:
    """Allocate a template: the Allocation, its Sessions and their Slots, all or nothing."""
    template, location, practitioner = request.template, request.location, request.practitioner
    with transaction.atomic():
        if practitioner is not None:
            # Serialise allocations of one practitioner, so two at once cannot both miss a clash.
            Practitioner.objects.for_clinic(clinic).select_for_update().filter(pk=practitioner.pk).get()
        plan = allocation_plan(clinic=clinic, request=request)
        if plan.clashes:
            raise AllocationClash(plan)
        allocation = Allocation.objects.create(
            clinic=clinic,
            template=template,
            practitioner=practitioner,
            location=location,
            start_time=request.start_time,
            first_date=request.first_date,
            last_date=request.last_date,
            weekdays=",".join(str(d) for d in sorted(request.weekdays)),
            every_weeks=request.every_weeks,
            created_by=actor,
        )
        db = DbValues()
        # What the session looked like when allocated: later template edits never change it.
        snapshot = (
            template.pk,
            practitioner.pk if practitioner else None,
            location.pk,
            location.time_zone,
            template.name,
            template.description,
            template.colour,
            template.session_type,
            template.open_session,
            template.travel_clinic,
            template.closed_session,
        )
        bulk_insert(
            Session._meta.db_table,
            SESSION_INSERT_COLUMNS,
            [
                (
                    clinic.pk,
                    db.new_uuid(),
                    allocation.pk,
                    db.date(p.date),
                    db.datetime(p.starts_at),
                    db.datetime(p.ends_at),
                )
                + snapshot
                for p in plan.sessions
            ],
        )
        # An allocation has at most one session per date.
        session_ids = dict(Session.objects.for_clinic(clinic).filter(allocation=allocation).values_list("date", "id"))
        for start in range(0, len(plan.sessions), SESSIONS_PER_CHUNK):
            chunk = plan.sessions[start : start + SESSIONS_PER_CHUNK]
            _insert_slots(
                clinic=clinic,
                sessions=[(session_ids[p.date], p.starts_at) for p in chunk],
                template_slots=plan.template_slots,
                db=db,
            )
        audit_record(
            clinic=clinic,
            actor=actor,
            action="allocation.created",
            target=allocation,
            detail={"sessions": len(plan.sessions), "slots": plan.slot_count, "template": str(template.public_id)},
        )
    return allocation


def _insert_slots(
    *,
    clinic: Clinic,
    sessions: Sequence[tuple[int, dt.datetime]],
    template_slots: Sequence[TemplateSlot],
    db: DbValues,
) -> None:
    """Insert every slot of `sessions` (id, start) in one bulk insert.

    A year's rota is 150,000+ slots; the ORM's bulk_create spends most of its time building
    model instances and SQL, so the rows go in as plain tuples.
    """
    offsets = []
    minutes = 0
    for ts in template_slots:
        slot_type = ts.slot_type
        offsets.append(
            (
                ts.slot_type_id,
                dt.timedelta(minutes=minutes),
                dt.timedelta(minutes=minutes + ts.length_minutes),
                bool(slot_type and slot_type.bookable),
                slot_type.capacity if slot_type else 1,
            )
        )
        minutes += ts.length_minutes
    public_ids = iter(db.random_uuids(len(sessions) * len(offsets)))
    rows = []
    for session_id, starts_at in sessions:
        base = starts_at.astimezone(dt.UTC)
        if db.naive_text:
            base = base.replace(tzinfo=None)
        for position, (type_id, begin, end, bookable, capacity) in enumerate(offsets):
            start, stop = base + begin, base + end
            rows.append(
                (
                    clinic.pk,
                    next(public_ids),
                    session_id,
                    position,
                    type_id,
                    str(start) if db.naive_text else start,
                    str(stop) if db.naive_text else stop,
                    bookable,
                    capacity,
                    0,
                )
            )
    bulk_insert(Slot._meta.db_table, SLOT_INSERT_COLUMNS, rows)


SESSION_INSERT_COLUMNS = (
    "clinic_id",
    "public_id",
    "allocation_id",
    "date",
    "starts_at",
    "ends_at",
    "template_id",
    "practitioner_id",
    "location_id",
    "time_zone",
    "name",
    "description",
    "colour",
    "session_type",
    "open_session",
    "travel_clinic",
    "closed_session",
)
SLOT_INSERT_COLUMNS = (
    "clinic_id",
    "public_id",
    "session_id",
    "position",
    "slot_type_id",
    "starts_at",
    "ends_at",
    "bookable",
    "capacity",
    "booked_count",
)


class AllocationHasBookings(ValidationError):
    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        super().__init__(f"{len(slots)} future slot(s) of this allocation hold bookings; move or cancel them first.")


def allocation_remove_future(*, clinic: Clinic, actor: User, allocation: Allocation, from_date: dt.date) -> int:
    """Remove the allocation's sessions from `from_date` on; refused while any of their slots hold bookings.

    Returns the number of sessions removed. The allocation itself goes when no session is left.
    """
    with transaction.atomic():
        locked = Allocation.objects.for_clinic(clinic).select_for_update().get(pk=allocation.pk)
        booked = list(booked_future_slots(clinic=clinic, allocation=locked, from_date=from_date))
        if booked:
            raise AllocationHasBookings(booked)
        future = Session.objects.for_clinic(clinic).filter(allocation=locked, date__gte=from_date)
        count = future.count()
        future.delete()  # their slots go with them (a fast DELETE: nothing else points at slots yet)
        audit_record(
            clinic=clinic,
            actor=actor,
            action="allocation.future_removed",
            target=locked,
            detail={"sessions": count, "from": from_date.isoformat()},
        )
        if not Session.objects.for_clinic(clinic).filter(allocation=locked).exists():
            locked.delete()
    return count


# The calendar: other events, office hours, availability, remembered filters ----------------------


@dataclass(frozen=True)
class EventData:
    practitioner: Practitioner
    title: str
    all_day: bool
    busy: bool
    notes: str
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    first_date: dt.date | None = None
    last_date: dt.date | None = None


def other_event_save(*, clinic: Clinic, actor: User, data: EventData, event: OtherEvent | None = None) -> OtherEvent:
    """Create or change an other event. A timed event keeps UTC instants, an all-day one dates."""
    creating = event is None
    previous_practitioner = None if event is None else event.practitioner_id
    event = event or OtherEvent(clinic=clinic, created_by=actor)
    event.practitioner = data.practitioner
    event.title = data.title
    event.all_day = data.all_day
    event.busy = data.busy
    event.notes = data.notes
    if data.all_day:
        event.starts_at = event.ends_at = None
        event.first_date, event.last_date = data.first_date, data.last_date
    else:
        event.first_date = event.last_date = None
        event.starts_at, event.ends_at = data.starts_at, data.ends_at
    with transaction.atomic():
        event.save()
        audit_record(
            clinic=clinic,
            actor=actor,
            action="event.created" if creating else "event.changed",
            target=event,
            detail={"practitioner": str(data.practitioner.public_id), "all_day": data.all_day, "busy": data.busy},
        )
        announce_calendar_change([previous_practitioner, event.practitioner_id], events=[event.pk])
    return event


def other_event_delete(*, clinic: Clinic, actor: User, event: OtherEvent) -> None:
    with transaction.atomic():
        audit_record(clinic=clinic, actor=actor, action="event.deleted", target=event)
        announce_calendar_change([event.practitioner_id], events=[event.pk])
        event.delete()


WeeklyHours = TypeVar("WeeklyHours", OfficeHours, Availability)


def weekly_hours_save(
    model: type[WeeklyHours],
    *,
    action: str,
    clinic: Clinic,
    actor: User,
    practitioner: Practitioner | None,
    time_zone: str,
    weekly: Mapping[int, Sequence[TimeRange]],
) -> WeeklyHours:
    """Create or replace the weekly hours row (office hours or availability) of a practitioner."""
    with transaction.atomic():
        row, _ = (
            model.objects.for_clinic(clinic)
            .select_for_update()
            .get_or_create(clinic=clinic, practitioner=practitioner, defaults={"time_zone": time_zone})
        )
        row.time_zone = time_zone
        row.weekly = weekly_to_json(weekly)
        row.save()
        audit_record(
            clinic=clinic,
            actor=actor,
            action=action,
            target=row,
            detail={"practitioner": str(practitioner.public_id) if practitioner else "practice default"},
        )
    return row


def office_hours_save(
    *,
    clinic: Clinic,
    actor: User,
    practitioner: Practitioner | None,
    time_zone: str,
    weekly: Mapping[int, Sequence[TimeRange]],
) -> OfficeHours:
    """Set a practitioner's office hours, or the practice default (practitioner None)."""
    return weekly_hours_save(
        OfficeHours,
        action="office_hours.saved",
        clinic=clinic,
        actor=actor,
        practitioner=practitioner,
        time_zone=time_zone,
        weekly=weekly,
    )


def office_hours_clear(*, clinic: Clinic, actor: User, practitioner: Practitioner | None) -> None:
    """Remove office hours: a practitioner falls back to the practice default, the practice to none."""
    with transaction.atomic():
        for hours in OfficeHours.objects.for_clinic(clinic).filter(practitioner=practitioner):
            audit_record(clinic=clinic, actor=actor, action="office_hours.cleared", target=hours)
            hours.delete()


def availability_save(
    *,
    clinic: Clinic,
    actor: User,
    practitioner: Practitioner,
    time_zone: str,
    weekly: Mapping[int, Sequence[TimeRange]],
) -> Availability:
    """Set a practitioner's weekly online-booking windows."""
    return weekly_hours_save(
        Availability,
        action="availability.saved",
        clinic=clinic,
        actor=actor,
        practitioner=practitioner,
        time_zone=time_zone,
        weekly=weekly,
    )


def availability_overrides_set(
    *,
    clinic: Clinic,
    actor: User,
    practitioner: Practitioner,
    dates: Sequence[dt.date],
    hours: Sequence[TimeRange],
) -> list[AvailabilityOverride]:
    """Give each date these hours instead of the weekly windows (no hours: unavailable that date)."""
    stored = ranges_to_json(hours)
    with transaction.atomic():
        overrides = []
        for date in sorted(set(dates)):
            override, _ = AvailabilityOverride.objects.for_clinic(clinic).update_or_create(
                clinic=clinic, practitioner=practitioner, date=date, defaults={"hours": stored}
            )
            overrides.append(override)
        audit_record(
            clinic=clinic,
            actor=actor,
            action="availability.overrides_set",
            target=practitioner,
            detail={"dates": [d.isoformat() for d in sorted(set(dates))], "hours": stored},
        )
    return overrides


def availability_override_delete(*, clinic: Clinic, actor: User, override: AvailabilityOverride) -> None:
    with transaction.atomic():
        audit_record(
            clinic=clinic,
            actor=actor,
            action="availability.override_removed",
            target=override,
            detail={"date": override.date.isoformat()},
        )
        override.delete()


def calendar_preference_save(
    *, clinic: Clinic, membership: Membership, practitioners: Sequence[str], locations: Sequence[str]
) -> CalendarPreference:
    preference, _ = CalendarPreference.objects.for_clinic(clinic).update_or_create(
        clinic=clinic,
        membership=membership,
        defaults={"practitioners": list(practitioners), "locations": list(locations)},
    )
    return preference


# Booking --------------------------------------------------------------------------------------------


class BookingError(ValidationError):
    """A booking that cannot be made; the message is shown to the user and nothing is written."""


@dataclass(frozen=True)
class BookingRequest:
    slot: Slot
    patient: Patient
    slot_type: SlotType | None = None  # the appointment type; the slot's own when None
    department: Department | None = None
    resources: Sequence[Practitioner] = ()
    coverage: Coverage | None = None
    secondary_coverage: Coverage | None = None
    self_pay: bool = False
    rescheduled_from: Appointment | None = None
    series: Series | None = None


def booking_like(source: Appointment | Series, *, slot: Slot, **more: Any) -> BookingRequest:
    """A booking of the same patient with the department, resources and insurance of an appointment or a series
    (and its series)."""
    return BookingRequest(
        slot=slot,
        patient=source.patient,
        department=source.department,
        resources=list(source.resources.all()),
        coverage=source.coverage,
        secondary_coverage=source.secondary_coverage,
        self_pay=source.self_pay,
        series=source if isinstance(source, Series) else source.series,
        **more,
    )


def may_book(membership: Membership, patient: Patient) -> None:
    """Refuse a patient this member may not book (blocked without the permission, or archived)."""
    if patient.is_blocked and not membership.has_permission(NamedPermission.ACCESS_BLOCKED_PATIENTS):
        raise BookingError("You do not have permission to book this patient.")
    if patient.is_archived:
        raise BookingError("This patient's record is archived; restore it before booking.")


def appointment_book(*, clinic: Clinic, actor: User, membership: Membership, request: BookingRequest) -> Appointment:
    """Book a patient into a slot, taking one place, all or nothing.

    Concurrent bookings of one slot queue on its row lock, so the capacity check is exact; the
    database's booked_count <= capacity constraint is the last guard. A single (capacity 1) slot
    also locks its practitioner, so two overlapping single slots of one practitioner are never
    both booked. On SQLite, IMMEDIATE transactions serialise writers instead.
    """
    patient = request.patient
    may_book(membership, patient)
    with transaction.atomic():
        # FOR NO KEY UPDATE where the database has it: the foreign-key checks of other bookings'
        # inserts then need not wait for these locks.
        no_key = connection.features.has_select_for_no_key_update
        slot = (
            Slot.objects.for_clinic(clinic)
            .select_for_update(no_key=no_key, of=("self",))
            .select_related("session")
            .get(pk=request.slot.pk)
        )
        practitioner_id = slot.session.practitioner_id
        if not slot.bookable:
            raise BookingError("This slot cannot be booked (a blank slot).")
        if slot.capacity == 1 and practitioner_id is not None:
            Practitioner.objects.for_clinic(clinic).select_for_update(no_key=no_key).filter(pk=practitioner_id).get()
        if Appointment.objects.for_clinic(clinic).live().filter(slot=slot, patient=patient).exists():
            raise BookingError("This patient is already booked in this slot.")
        if slot.booked_count >= slot.capacity:
            raise BookingError(
                "This slot is full." if slot.capacity == 1 else f"This group is full ({slot.capacity} places)."
            )
        if slot.capacity == 1 and practitioner_id is not None:
            overlapping = (
                Appointment.objects.for_clinic(clinic)
                .live()
                .filter(
                    practitioner_id=practitioner_id,
                    slot__capacity=1,
                    starts_at__lt=slot.ends_at,
                    ends_at__gt=slot.starts_at,
                )
                .exclude(slot=slot)
            )
            if overlapping.exists():
                raise BookingError("The practitioner already has an appointment at that time.")
        try:
            with transaction.atomic():
                appointment = Appointment.objects.create(
                    clinic=clinic,
                    slot=slot,
                    practitioner_id=practitioner_id,
                    patient=patient,
                    slot_type=request.slot_type or slot.slot_type,
                    department=request.department,
                    coverage=None if request.self_pay else request.coverage,
                    secondary_coverage=None if request.self_pay else request.secondary_coverage,
                    self_pay=request.self_pay,
                    exclusive=slot.capacity == 1,
                    starts_at=slot.starts_at,
                    ends_at=slot.ends_at,
                    created_by=actor,
                    rescheduled_from=request.rescheduled_from,
                    series=request.series,
                )
        except IntegrityError as error:
            # The database's last guard (the locks above should leave nothing for it to catch).
            raise BookingError("The practitioner already has an appointment at that time.") from error
        if request.resources:
            appointment.resources.set([r for r in request.resources if r.pk != practitioner_id])
        Slot.objects.for_clinic(clinic).filter(pk=slot.pk).update(booked_count=F("booked_count") + 1)
        audit_record(
            clinic=clinic,
            actor=actor,
            action="appointment.booked",
            target=appointment,
            detail={"slot": str(slot.public_id), "patient": str(patient.public_id), "blocked": patient.is_blocked},
        )
        announce_calendar_change([practitioner_id], appointments=[appointment.pk])
    return appointment


def appointment_cancel(*, clinic: Clinic, actor: User, appointment: Appointment, reason: str) -> Appointment:
    """Cancel an appointment (a reason is required) and free its place."""
    reason = reason.strip()
    if not reason:
        raise BookingError("Give a reason for the cancellation.")
    with transaction.atomic():
        locked = Appointment.objects.for_clinic(clinic).select_for_update().get(pk=appointment.pk)
        if locked.status == AppointmentStatus.CANCELLED:
            raise BookingError("This appointment is already cancelled.")
        Slot.objects.for_clinic(clinic).select_for_update().filter(pk=locked.slot_id).update(
            booked_count=F("booked_count") - 1
        )
        locked.status = AppointmentStatus.CANCELLED
        locked.cancel_reason = reason
        locked.cancelled_at = timezone.now()
        locked.save(update_fields=["status", "cancel_reason", "cancelled_at", "updated_at"])
        audit_record(clinic=clinic, actor=actor, action="appointment.cancelled", target=locked, detail={})
        announce_calendar_change([locked.practitioner_id], appointments=[locked.pk])
    return locked


# The appointment lifecycle ------------------------------------------------------------------------------

S = AppointmentStatus
STATUS_STEPS: dict[str, set[str]] = {
    S.BOOKED: {S.ARRIVED, S.DID_NOT_ATTEND},
    S.ARRIVED: {S.IN_CONSULTATION, S.DID_NOT_ATTEND, S.BOOKED},
    S.IN_CONSULTATION: {S.COMPLETED, S.ARRIVED},
    S.COMPLETED: {S.IN_CONSULTATION},
    S.DID_NOT_ATTEND: {S.BOOKED, S.ARRIVED},
    S.CANCELLED: set(),
}


def appointment_status_set(*, clinic: Clinic, actor: User, appointment: Appointment, status: str) -> Appointment:
    """Move an appointment along booked → arrived → in consultation → completed, or to did not attend.

    Cancelling has its own service (it needs a reason and frees the place).
    """
    with transaction.atomic():
        locked = Appointment.objects.for_clinic(clinic).select_for_update().get(pk=appointment.pk)
        if status not in STATUS_STEPS.get(locked.status, set()):
            raise BookingError(
                f"An appointment that is “{locked.get_status_display()}” cannot become “{S(status).label}”."
                if status in S.values
                else "That is not an appointment status."
            )
        previous = locked.status
        locked.status = status
        if status != S.COMPLETED:
            locked.notes_completed = False
        locked.save(update_fields=["status", "notes_completed", "updated_at"])
        audit_record(
            clinic=clinic,
            actor=actor,
            action="appointment.status",
            target=locked,
            detail={"from": previous, "to": status},
        )
        announce_calendar_change([locked.practitioner_id], appointments=[locked.pk])
    return locked


def appointment_notes_completed(*, clinic: Clinic, actor: User, appointment: Appointment, done: bool) -> Appointment:
    """Mark (or unmark) a completed appointment's notes as completed."""
    with transaction.atomic():
        locked = Appointment.objects.for_clinic(clinic).select_for_update().get(pk=appointment.pk)
        if locked.status != S.COMPLETED:
            raise BookingError("Only a completed appointment has notes to complete.")
        locked.notes_completed = done
        locked.save(update_fields=["notes_completed", "updated_at"])
        audit_record(
            clinic=clinic, actor=actor, action="appointment.notes_completed", target=locked, detail={"done": done}
        )
    return locked


def appointment_reschedule(
    *, clinic: Clinic, actor: User, membership: Membership, appointment: Appointment, slot: Slot
) -> Appointment:
    """Move a booking to another slot: a new appointment linked to the old, which is cancelled as
    "Rescheduled" (so the history stays). All or nothing."""
    if appointment.status != S.BOOKED:
        raise BookingError("Only a booked appointment (not yet arrived) can be rescheduled.")
    if slot.pk == appointment.slot_id:
        raise BookingError("Choose a different slot.")
    with transaction.atomic():
        old = Appointment.objects.for_clinic(clinic).select_for_update().get(pk=appointment.pk)
        if old.status != S.BOOKED:
            raise BookingError("Only a booked appointment (not yet arrived) can be rescheduled.")
        appointment_cancel(clinic=clinic, actor=actor, appointment=old, reason="Rescheduled")
        new = appointment_book(
            clinic=clinic,
            actor=actor,
            membership=membership,
            request=booking_like(old, slot=slot, slot_type=slot.slot_type or old.slot_type, rescheduled_from=old),
        )
        audit_record(
            clinic=clinic,
            actor=actor,
            action="appointment.rescheduled",
            target=new,
            detail={"from": str(old.public_id)},
        )
    return new


# Create New Slot ----------------------------------------------------------------------------------------

ADHOC_SESSION_NAME = "Ad-hoc slot"


def adhoc_slot_create(
    *,
    clinic: Clinic,
    actor: User,
    practitioner: Practitioner,
    location: Location,
    date: dt.date,
    start_time: dt.time,
    length_minutes: int,
    slot_type: SlotType,
) -> Slot:
    """A one-slot session for a practitioner outside the rota (Create New Slot), ready to book."""
    zone = ZoneInfo(location.time_zone)
    starts_at = dt.datetime.combine(date, start_time, tzinfo=zone).astimezone(dt.UTC)
    ends_at = starts_at + dt.timedelta(minutes=length_minutes)
    with transaction.atomic():
        session = Session.objects.create(
            clinic=clinic,
            allocation=None,
            template=None,
            practitioner=practitioner,
            location=location,
            date=date,
            time_zone=location.time_zone,
            starts_at=starts_at,
            ends_at=ends_at,
            name=ADHOC_SESSION_NAME,
            description=f"Added by {actor.get_full_name() or actor.get_username()}"[:30],
            colour="grey",
            session_type="timed",
        )
        slot = Slot.objects.create(
            clinic=clinic,
            session=session,
            position=0,
            slot_type=slot_type,
            starts_at=starts_at,
            ends_at=ends_at,
            bookable=True,
            capacity=slot_type.capacity,
        )
        audit_record(
            clinic=clinic,
            actor=actor,
            action="slot.created_adhoc",
            target=slot,
            detail={"practitioner": str(practitioner.public_id), "starts_at": starts_at.isoformat()},
        )
    return slot
