"""Writes of booking: a patient booked into a slot, cancelled, moved along the appointment's lifecycle or
rescheduled, and the ad-hoc slot of Create New Slot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from clinic.models import Clinic, Department, Membership, NamedPermission, Practitioner
from clinic.services import audit_record
from patients.models import may_see_blocked
from patients.signals import blocked_access_grant
from scheduling.models import (
    Appointment,
    AppointmentSource,
    AppointmentStatus,
    CancelCategory,
    Hold,
    HoldKind,
    HoldOutcome,
    Series,
    Session,
    Slot,
)
from scheduling.selectors.booking import busy_event_ids_during
from scheduling.selectors.waitlist import group_closed_to_new, in_group
from scheduling.services.freed import places_freed
from scheduling.services.quick import news_told_first
from scheduling.signals import PatientNews, announce_calendar_change, hold_ended, tell_patient

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Location
    from patients.models import Coverage, Patient
    from sessions_setup.models import SlotType


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
    source: str = AppointmentSource.RECEPTION  # who booked: reception, online, fhir, waitlist
    hold: Hold | None = None  # the hold this booking turns into an appointment (its place is already taken)
    # Why a new patient joins an enforced closed group that has begun (only with "Schedule Admin: Manage
    # Appointments"; audited). Empty: the closed group refuses them.
    closed_override: str = ""


def booking_like(source: Appointment | Series, *, slot: Slot, **more: Any) -> BookingRequest:
    """A booking of the same patient with the department, resources and insurance of an appointment or a series
    (and its series)."""
    if isinstance(source, Appointment):
        # A move keeps where the booking came from (an online booking moved by reception is still online).
        more.setdefault("source", source.source)
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


def may_book(membership: Membership | None, patient: Patient) -> str | None:
    """Refuse a patient this member may not book (blocked without the permission or a break-glass grant, or
    archived). No membership: the patient books themselves online (or a system does), and the caller applies its
    own rule for blocked patients (online turns their bookings into requests). Returns the id of the break-glass
    grant that lets this member book a blocked patient, when that is what does (for the audit)."""
    grant = None
    if membership is not None and patient.is_blocked and not may_see_blocked(membership):
        grant = blocked_access_grant(membership=membership, patient=patient)
        if grant is None:
            raise BookingError("You do not have permission to book this patient.")
    if patient.is_archived:
        raise BookingError("This patient's record is archived; restore it before booking.")
    return grant


def appointment_book(
    *,
    clinic: Clinic,
    actor: User | None,
    membership: Membership | None,
    request: BookingRequest,
    tell: bool = True,
) -> Appointment:
    """Book a patient into a slot, taking one place, all or nothing. The patient is told (a confirmation)
    unless `tell` is off: a series or a move tells them once, in its own words. With a hold, the booking takes
    the hold's place (already counted) and ends the hold as accepted. No actor: the patient booked online.

    Concurrent bookings of one slot queue on its row lock, so the capacity check is exact; the
    database's booked_count <= capacity constraint is the last guard. A single (capacity 1) slot
    also locks its practitioner, so two overlapping single slots of one practitioner are never
    both booked. On SQLite, IMMEDIATE transactions serialise writers instead.
    """
    patient = request.patient
    grant = may_book(membership, patient)
    with transaction.atomic():
        no_key = connection.features.has_select_for_no_key_update
        slot = slot_locked(clinic, request.slot.pk)
        practitioner_id = slot.session.practitioner_id
        if not slot.bookable:
            raise BookingError(_unbookable_reason_locked(slot))
        override = _closed_group_check(clinic, membership, slot, request)
        if slot.capacity == 1 and practitioner_id is not None:
            Practitioner.objects.for_clinic(clinic).select_for_update(no_key=no_key).filter(pk=practitioner_id).get()
        # booked_count counts the slot's live appointments and holds (read under the lock): none, nobody to find.
        in_slot = Appointment.objects.for_clinic(clinic).live().filter(slot=slot, patient=patient)
        if slot.booked_count and in_slot.exists():
            raise BookingError("This patient is already booked in this slot.")
        hold = _hold_to_accept(clinic, slot, request.hold) if request.hold is not None else None
        if hold is None and slot.booked_count >= slot.capacity and slot.held_count:
            slot = _expired_holds_released(clinic, slot)
        if hold is None and slot.booked_count >= slot.capacity:
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
            # No savepoint of its own: an error here leaves this function, whose atomic block (the transaction,
            # or the caller's savepoint) rolls back.
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
                source=request.source,
            )
        except IntegrityError as error:
            # The database's last guard (the locks above should leave nothing for it to catch).
            raise BookingError("The practitioner already has an appointment at that time.") from error
        if request.resources:
            appointment.resources.set([r for r in request.resources if r.pk != practitioner_id])
        if hold is None:
            Slot.objects.for_clinic(clinic).filter(pk=slot.pk).update(booked_count=F("booked_count") + 1)
        else:
            # The hold's place becomes the appointment's: still taken, no longer held.
            Slot.objects.for_clinic(clinic).filter(pk=slot.pk).update(held_count=F("held_count") - 1)
            hold.ended_at = timezone.now()
            hold.outcome = HoldOutcome.ACCEPTED
            hold.appointment = appointment
            hold.save(update_fields=["ended_at", "outcome", "appointment"])
        audit_record(
            clinic=clinic,
            actor=actor,
            action="appointment.booked",
            target=appointment,
            detail={
                "slot": str(slot.public_id),
                "patient": str(patient.public_id),
                "blocked": patient.is_blocked,
                **({"break_glass": grant} if grant else {}),
                "source": request.source,
                **({"hold": str(hold.public_id)} if hold is not None else {}),
                **({"closed_override": override} if override else {}),
                # Booked over the practitioner's busy time (reception was warned): which events, by id.
                "busy_events": [str(public_id) for public_id in busy_event_ids_during(clinic=clinic, slot=slot)],
            },
        )
        announce_calendar_change([practitioner_id], appointments=[appointment.pk])
        if tell:
            tell_patient(clinic.pk, PatientNews.BOOKED, [appointment.pk])
    return appointment


def closed_group_refusal(
    clinic: Clinic, slot: Slot, patient_id: int, *, now: dt.datetime, moved_from: int | None = None
) -> str:
    """Why an enforced closed group refuses this patient now ("" when it does not): it has begun and they are not
    in it (moving within it is allowed: `moved_from`, the appointment being moved). A warning-only closed session
    refuses nobody."""
    session = slot.session
    began = group_closed_to_new(clinic, session, now)
    if began is None or in_group(clinic, session, patient_id):
        return ""
    if moved_from is not None:
        group = (
            Q(slot__session__allocation_id=session.allocation_id) if session.allocation_id else Q(slot__session=session)
        )
        if Appointment.objects.for_clinic(clinic).filter(group, pk=moved_from).exists():
            return ""
    local = began.astimezone(ZoneInfo(session.time_zone))
    return f"This group is closed: it began on {local:%a %-d %b %Y}, and new patients are not added after that."


def _closed_group_check(clinic: Clinic, membership: Membership | None, slot: Slot, request: BookingRequest) -> str:
    """Refuse a new patient an enforced closed group that has begun, unless a member with "Schedule Admin: Manage
    Appointments" gives a reason (returned, for the audit); "" when the group does not refuse them."""
    moved_from = request.rescheduled_from.pk if request.rescheduled_from is not None else None
    refusal = closed_group_refusal(clinic, slot, request.patient.pk, now=timezone.now(), moved_from=moved_from)
    if not refusal:
        return ""
    allowed = membership is not None and membership.has_permission(NamedPermission.MANAGE_APPOINTMENTS)
    if not allowed:
        raise BookingError(
            f"{refusal} Only a member with “{NamedPermission.MANAGE_APPOINTMENTS.label}” can add a new patient, "
            "with a reason."
        )
    reason = request.closed_override.strip()
    if not reason:
        raise BookingError(f"{refusal} To add this patient anyway, give a reason.")
    return reason[:200]


REMOVED_FROM_SESSION = "This slot was removed from its session by a change to the rota; choose another time."


def unbookable_reason(slot: Slot) -> str:
    """Why a slot (with its session) takes no booking, in words for the person trying."""
    if slot.retired:
        return REMOVED_FROM_SESSION
    if slot.session.out_state:
        return (
            f"This session is {slot.session.get_out_state_display().lower()} "
            f"({slot.session.get_out_reason_display().lower()}); choose another time."
        )
    return "This slot cannot be booked (a blank slot)."


def _unbookable_reason_locked(slot: Slot) -> str:
    """Why a slot just locked takes no booking. PostgreSQL gives the locked row as it is now but the session read
    with it as it was before any wait for the lock, so a take-out that made the slot unbookable meanwhile would read
    as "a blank slot": read the session again (only on this refusal)."""
    slot.session.refresh_from_db(fields=["out_state", "out_reason"])
    return unbookable_reason(slot)


def slot_locked(clinic: Clinic, pk: int) -> Slot:
    """The slot, with its session, locked for the rest of the transaction: bookings and holds of one slot queue
    here. FOR NO KEY UPDATE where the database has it: the foreign-key checks of other bookings' inserts then need
    not wait for this lock."""
    no_key = connection.features.has_select_for_no_key_update
    try:
        return (
            Slot.objects.for_clinic(clinic)
            .select_for_update(no_key=no_key, of=("self",))
            .select_related("session")
            .get(pk=pk)
        )
    except Slot.DoesNotExist:
        # The caller read the slot a moment ago; a change to the rota deleted it since (an empty slot it removed),
        # perhaps while this waited for its lock.
        raise BookingError(REMOVED_FROM_SESSION) from None


def _hold_to_accept(clinic: Clinic, slot: Slot, hold: Hold) -> Hold:
    """The hold, locked, if it still holds a place in this slot (the slot is locked already)."""
    locked = Hold.objects.for_clinic(clinic).select_for_update().filter(pk=hold.pk).first()
    if locked is None or locked.slot_id != slot.pk:
        raise BookingError("That held place is not in this slot.")
    if locked.ended_at is not None:
        raise BookingError(f"The held place has already ended ({locked.get_outcome_display().lower()}).")
    return locked


def _expired_holds_released(clinic: Clinic, slot: Slot) -> Slot:
    """End the slot's lapsed holds (the slot is locked), so their places are free now rather than at the next
    sweep; the slot as it is then."""
    now = timezone.now()
    lapsed = list(Hold.objects.for_clinic(clinic).live().filter(slot=slot, expires_at__lte=now))
    for hold in lapsed:
        _hold_close(clinic, None, hold, slot, HoldOutcome.EXPIRED, now)
    if lapsed:
        slot.refresh_from_db(fields=["booked_count", "held_count"])
    return slot


def hold_take(*, clinic: Clinic, actor: User | None, slot: Slot, kind: str, expires_at: dt.datetime) -> Hold:
    """Take one place of a slot for a while (an online request, a waitlist offer): counted against capacity like a
    booking, so nobody else can take it, until it is accepted, declined, withdrawn or expires."""
    if kind not in HoldKind.values:
        raise BookingError("That is not a kind of hold.")
    if expires_at <= timezone.now():
        raise BookingError("A hold must last into the future.")
    with transaction.atomic():
        locked = slot_locked(clinic, slot.pk)
        if not locked.bookable:
            raise BookingError(_unbookable_reason_locked(locked))
        if locked.booked_count >= locked.capacity and locked.held_count:
            locked = _expired_holds_released(clinic, locked)
        if locked.booked_count >= locked.capacity:
            raise BookingError("This time has just been taken.")
        hold = Hold.objects.create(clinic=clinic, slot=locked, kind=kind, expires_at=expires_at)
        Slot.objects.for_clinic(clinic).filter(pk=locked.pk).update(
            booked_count=F("booked_count") + 1, held_count=F("held_count") + 1
        )
        audit_record(
            clinic=clinic,
            actor=actor,
            action="hold.taken",
            target=hold,
            detail={"slot": str(locked.public_id), "kind": kind, "expires_at": expires_at.isoformat()},
        )
        announce_calendar_change([locked.session.practitioner_id])
    return hold


def hold_end(*, clinic: Clinic, actor: User | None, hold: Hold, outcome: str) -> Hold:
    """End a hold without a booking (declined, withdrawn or expired): its place is free again. Refused when it has
    ended already (two receptionists deciding at once: the second is told)."""
    if outcome not in (HoldOutcome.DECLINED, HoldOutcome.WITHDRAWN, HoldOutcome.EXPIRED):
        raise BookingError("A hold ends declined, withdrawn or expired (accepting it is a booking).")
    with transaction.atomic():
        slot = slot_locked(clinic, hold.slot_id)
        locked = Hold.objects.for_clinic(clinic).select_for_update().get(pk=hold.pk)
        if locked.ended_at is not None:
            raise BookingError(f"This has already been dealt with ({locked.get_outcome_display().lower()}).")
        _hold_close(clinic, actor, locked, slot, outcome, timezone.now())
    return locked


def _hold_close(clinic: Clinic, actor: User | None, hold: Hold, slot: Slot, outcome: str, now: dt.datetime) -> None:
    """Mark a live hold ended and free its place in `slot` (the slot, with its session, and the hold are locked by
    the caller)."""
    hold.ended_at = now
    hold.outcome = outcome
    hold.save(update_fields=["ended_at", "outcome"])
    Slot.objects.for_clinic(clinic).filter(pk=hold.slot_id).update(
        booked_count=F("booked_count") - 1, held_count=F("held_count") - 1
    )
    audit_record(clinic=clinic, actor=actor, action="hold.ended", target=hold, detail={"outcome": outcome})
    announce_calendar_change([slot.session.practitioner_id])
    hold_ended.send(sender=None, clinic_id=clinic.pk, hold=hold.pk, outcome=outcome)
    places_freed(clinic.pk, [hold.slot_id], now=now)


HOLDS_PER_SWEEP = 500


def holds_expire(now: dt.datetime | None = None) -> int:
    """End every hold past its time, in every clinic (beat's sweep; a booking into a full slot also releases its
    own lapsed holds at once). One transaction per hold: a slow one holds no other slot's lock."""
    now = now or timezone.now()
    ended = 0
    lapsed = Hold.objects.live().filter(expires_at__lte=now).values_list("pk", "clinic_id")[:HOLDS_PER_SWEEP]
    clinics = {clinic.pk: clinic for clinic in Clinic.objects.filter(pk__in={c for _, c in lapsed})}
    for pk, clinic_id in lapsed:
        clinic = clinics[clinic_id]
        hold = Hold.objects.for_clinic(clinic).get(pk=pk)
        try:
            hold_end(clinic=clinic, actor=None, hold=hold, outcome=HoldOutcome.EXPIRED)
        except BookingError:
            continue  # accepted or declined meanwhile
        ended += 1
    return ended


def appointment_cancel(
    *,
    clinic: Clinic,
    actor: User | None,
    appointment: Appointment,
    reason: str,
    category: str = CancelCategory.OTHER,
    tell: bool = True,
    by: str = "",
) -> Appointment:
    """Cancel an appointment (a reason is required) and free its place. The patient is told the category (never
    the reason, which may be clinical) unless `tell` is off: a series or a move tells them once. `by` names who
    acted when it was not a member of staff ("patient online"), for the history."""
    reason = reason.strip()
    if not reason:
        raise BookingError("Give a reason for the cancellation.")
    if category not in CancelCategory.values:
        raise BookingError("Choose why the appointment is cancelled.")
    with transaction.atomic():
        locked = Appointment.objects.for_clinic(clinic).select_for_update().get(pk=appointment.pk)
        if locked.status == AppointmentStatus.CANCELLED:
            raise BookingError("This appointment is already cancelled.")
        if locked.series_id is None:  # perhaps booked in one call, its confirmation not yet told: told first
            news_told_first(clinic.pk, locked.pk)
        Slot.objects.for_clinic(clinic).select_for_update().filter(pk=locked.slot_id).update(
            booked_count=F("booked_count") - 1
        )
        locked.status = AppointmentStatus.CANCELLED
        locked.cancel_reason = reason
        locked.cancel_category = category
        locked.cancelled_at = timezone.now()
        locked.save(update_fields=["status", "cancel_reason", "cancel_category", "cancelled_at", "updated_at"])
        audit_record(
            clinic=clinic,
            actor=actor,
            action="appointment.cancelled",
            target=locked,
            detail={"category": category, **({"by": by} if by else {})},
        )
        announce_calendar_change([locked.practitioner_id], appointments=[locked.pk])
        if tell:
            tell_patient(clinic.pk, PatientNews.CANCELLED, [locked.pk], category=category)
        places_freed(clinic.pk, [locked.slot_id], now=locked.cancelled_at)
    return locked


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
    *,
    clinic: Clinic,
    actor: User | None,
    membership: Membership | None,
    appointment: Appointment,
    slot: Slot,
    by: str = "",
) -> Appointment:
    """Move a booking to another slot: a new appointment linked to the old, which is cancelled as
    "Rescheduled" (so the history stays). All or nothing. `by` as for a cancellation."""
    if appointment.status != S.BOOKED:
        raise BookingError("Only a booked appointment (not yet arrived) can be rescheduled.")
    if slot.pk == appointment.slot_id:
        raise BookingError("Choose a different slot.")
    with transaction.atomic():
        old = Appointment.objects.for_clinic(clinic).select_for_update().get(pk=appointment.pk)
        if old.status != S.BOOKED:
            raise BookingError("Only a booked appointment (not yet arrived) can be rescheduled.")
        appointment_cancel(
            clinic=clinic,
            actor=actor,
            appointment=old,
            reason="Rescheduled",
            category=CancelCategory.RESCHEDULED,
            tell=False,
            by=by,
        )
        new = appointment_book(
            clinic=clinic,
            actor=actor,
            membership=membership,
            request=booking_like(old, slot=slot, slot_type=slot.slot_type or old.slot_type, rescheduled_from=old),
            tell=False,
        )
        # One "moved" message, never a cancellation plus a confirmation.
        tell_patient(clinic.pk, PatientNews.MOVED, [new.pk], previous=old.pk)
        audit_record(
            clinic=clinic,
            actor=actor,
            action="appointment.rescheduled",
            target=new,
            detail={"from": str(old.public_id), **({"by": by} if by else {})},
        )
    return new


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
