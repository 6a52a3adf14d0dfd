"""Writes of changes to the book after it is built: one dated session edited, a template change applied to the
sessions on the rota, sessions taken out (suspended or cancelled) and resumed, and the displaced patients' worklist
(rebooked to a proposal, cancelled and told, or left for a phone call).

Every change is one transaction that first locks the live appointments of the sessions it touches, then their
slots (the order a cancellation takes them), and works out what happens from the rows as they are under those
locks: a booking that got in before the change is displaced with the rest; one that comes after meets the new
shape (a removed slot refuses it, saying why). Displaced appointments keep their old time on a retired slot (the
removed slot itself, or a retired twin of a changed one) until they are moved, and each gets a row on the worklist.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import F, Max, QuerySet
from django.utils import timezone

from clinic.models import Location
from clinic.services import audit_record
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    CancelCategory,
    ChangeKind,
    DisplacedState,
    DisplacedWhy,
    Displacement,
    Hold,
    HoldOutcome,
    OutReason,
    RotaChange,
    Session,
    SessionOut,
    Slot,
    WaitlistEntry,
)
from scheduling.replan import Fate, PlannedSlot, replan
from scheduling.selectors import changes as selectors
from scheduling.services.booking import BookingError, appointment_cancel, appointment_reschedule
from scheduling.services.freed import places_freed
from scheduling.signals import announce_calendar_change, hold_ended
from sessions_setup.models import SessionTemplate, SlotType

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic, Membership, Practitioner

T = TypeVar("T")
BATCH = 1000
MAX_DAYS_OUT = 366


class ChangeError(ValidationError):
    """A change that cannot be made; the message is shown to the user and nothing is written."""


# PostgreSQL's codes for a transaction aborted to break a deadlock, and for a row lock not taken at once (NOWAIT).
LOCK_CONFLICTS = frozenset({"40P01", "55P03"})


def _retrying_deadlocks(work: Callable[[], T], attempts: int = 3) -> T:
    """Run a change again when PostgreSQL broke a deadlock by aborting it, or it stood back from an appointment
    another transaction holds (`_lock`): the change then sees what that transaction did and carries on. Each attempt
    is a transaction of its own; inside a caller's transaction there is none to start again, so no retry."""
    if connection.in_atomic_block:
        return work()
    for attempt in range(attempts):
        try:
            return work()
        except OperationalError as error:
            if attempt == attempts - 1 or getattr(error.__cause__, "sqlstate", None) not in LOCK_CONFLICTS:
                raise
    raise AssertionError("unreachable")


def _lock(clinic: Clinic, session_ids: Sequence[int]) -> None:
    """Lock the sessions' live appointments, then their slots, each in id order; then, without waiting, the
    appointments booked while we waited for the slots."""
    live = Appointment.objects.for_clinic(clinic).live().filter(slot__session__in=session_ids)
    locked = set(live.select_for_update(of=("self",)).order_by("id").values_list("id", flat=True))
    list(
        Slot.objects.for_clinic(clinic)
        .filter(session__in=session_ids)
        .select_for_update()
        .order_by("id")
        .values_list("id", flat=True)
    )
    # A booking that went in while we waited for its slot is not locked yet, and its patient's cancellation (which
    # locks the appointment, then the slot we hold) may have it: waiting for it here would deadlock, and PostgreSQL
    # might abort the cancellation. So take such appointments NOWAIT; if one is held, the change starts again
    # (`_retrying_deadlocks`), this time locking it with the rest before any slot.
    late = [pk for pk in live.order_by("id").values_list("id", flat=True) if pk not in locked]
    if late:
        list(
            Appointment.objects.for_clinic(clinic)
            .filter(pk__in=late)
            .select_for_update(of=("self",), nowait=True)
            .order_by("id")
            .values_list("id", flat=True)
        )


# --- Replacing sessions' slots (one session edited, a template applied) -------------------------------------------


@dataclass(frozen=True)
class Applied:
    change: RotaChange
    sessions: int
    displaced: int
    holds_ended: int


def _free_places(clinic: Clinic, session_ids: Sequence[int]) -> dict[tuple[int, dt.datetime], int] | None:
    """Free places per (session, start) of the sessions' bookable slots, when anyone waits (None when nobody does:
    nothing to offer, nothing read)."""
    if not WaitlistEntry.objects.for_clinic(clinic).open().exists():
        return None
    rows = (
        Slot.objects.for_clinic(clinic)
        .filter(session__in=session_ids, bookable=True, retired=False)
        .values_list("session_id", "starts_at", "capacity", "booked_count")
    )
    return {(session, start): capacity - booked for session, start, capacity, booked in rows}


def _record_opened(
    clinic: Clinic, session_ids: Sequence[int], before: dict[tuple[int, dt.datetime], int] | None
) -> None:
    """Places a change opened (capacity raised, slots added, sessions resumed) are freed places: offered to the
    waitlist after commit."""
    if before is None:
        return
    rows = (
        Slot.objects.for_clinic(clinic)
        .filter(session__in=session_ids, bookable=True, retired=False, starts_at__gt=timezone.now())
        .values_list("pk", "session_id", "starts_at", "capacity", "booked_count")
    )
    opened = [pk for pk, session, at, capacity, booked in rows if capacity - booked > before.get((session, at), 0)]
    places_freed(clinic.pk, opened)


def _apply_plans(
    *,
    clinic: Clinic,
    actor: User | None,
    change: RotaChange,
    infos: Sequence[selectors.SessionInfo],
    plans: Mapping[int, list[PlannedSlot]],
    session_fields: Mapping[int, Mapping[str, object]],
) -> Applied:
    """Give each session the slots of its plan (the locks are held).

    A slot whose bookings all lose their place (removed, made blank, retyped, shortened) is retired with them, and
    the plan's slot at its time (if any) is a new row: the bookings are never moved between rows. A slot nobody ever
    booked or held is changed in place (or deleted when removed). A group that keeps some bookings but loses places
    keeps the first ones and moves the rest to a retired twin. Holds that lost their place are ended; each displaced
    appointment gets a worklist row. Rows are written by value groups (a year's template change is a few UPDATEs)."""
    ids = [info.id for info in infos]
    free_before = _free_places(clinic, ids)
    current = selectors.current_slots(clinic=clinic, session_ids=ids)
    positions = dict(
        Slot.objects.for_clinic(clinic)
        .filter(session__in=ids)
        .values("session_id")
        .annotate(top=Max("position"))
        .values_list("session_id", "top")
    )
    replans = {info.id: replan(current.get(info.id, []), plans[info.id]) for info in infos if info.id in plans}
    candidates = [
        c.before.id
        for r in replans.values()
        for c in r.changes
        if c.before is not None and c.fate in (Fate.REMOVED, Fate.CHANGED)
    ]
    with_history = _slots_with_history(clinic, candidates)
    # Changed in place, by new values: (slot type, minutes, bookable, places, taken, held).
    reshaped: dict[tuple[int | None, int, bool, int, int, int], list[int]] = defaultdict(list)
    retired: dict[tuple[int, int], list[int]] = defaultdict(list)  # retired with their bookings, by (taken, places)
    added: list[Slot] = []
    twins: list[tuple[Slot, tuple[int, ...]]] = []
    deleted: list[int] = []
    displaced: list[tuple[int, str]] = []
    ended: list[int] = []
    touched: set[int] = set()
    for info in infos:
        session_replan = replans.get(info.id)
        if session_replan is None:
            continue
        open_for_booking = info.out_state == ""
        top = positions.get(info.id, -1)
        for change_ in session_replan.changes:
            before, after = change_.before, change_.after
            if change_.fate == Fate.SAME:
                continue
            touched.add(info.id)
            displaced.extend(change_.displaced)
            ended.extend(change_.ended_holds)
            whole = before is not None and (
                change_.fate == Fate.REMOVED or (change_.displaced and change_.kept_appointments == 0)
            )
            if before is not None and (whole or change_.fate == Fate.REMOVED):
                if before.id in with_history:
                    taken = len(before.appointments)
                    retired[(taken, max(before.capacity, taken, 1))].append(before.id)
                else:
                    deleted.append(before.id)
                if after is not None:  # the plan's slot at this time: a fresh row
                    top += 1
                    added.append(_new_slot(clinic, info.id, top, after, open_for_booking))
            elif change_.fate == Fate.ADDED and after is not None:
                top += 1
                added.append(_new_slot(clinic, info.id, top, after, open_for_booking))
            elif before is not None and after is not None:
                minutes = int((after.ends_at - after.starts_at).total_seconds() // 60)
                values = (
                    after.slot_type_id,
                    minutes,
                    after.bookable and open_for_booking,
                    after.capacity,
                    change_.kept_appointments + change_.kept_holds,
                    change_.kept_holds,
                )
                reshaped[values].append(before.id)
                if change_.displaced:  # fewer places: the last booked move to a retired twin of the slot
                    top += 1
                    twin = Slot(
                        clinic=clinic,
                        session_id=info.id,
                        position=top,
                        slot_type_id=before.slot_type_id,
                        starts_at=before.starts_at,
                        ends_at=before.ends_at,
                        bookable=False,
                        capacity=len(change_.displaced),
                        booked_count=len(change_.displaced),
                        held_count=0,
                        retired=True,
                    )
                    twins.append((twin, tuple(a for a, _ in change_.displaced)))
    if ended:
        _holds_end(clinic, actor, ended)
    slots = Slot.objects.for_clinic(clinic)
    for (taken, places), pks in retired.items():
        for batch in _batches(pks):
            slots.filter(pk__in=batch).update(
                retired=True, bookable=False, booked_count=taken, held_count=0, capacity=places
            )
    for (type_id, length, bookable, capacity, taken, held), pks in reshaped.items():
        for batch in _batches(pks):
            slots.filter(pk__in=batch).update(
                slot_type_id=type_id,
                ends_at=F("starts_at") + dt.timedelta(minutes=length),
                bookable=bookable,
                capacity=capacity,
                booked_count=taken,
                held_count=held,
                retired=False,
            )
    for batch in _batches(deleted):
        slots.filter(pk__in=batch).delete()
    if added or twins:
        Slot.objects.bulk_create(added + [twin for twin, _ in twins], batch_size=BATCH)
    for twin, appointments in twins:
        Appointment.objects.for_clinic(clinic).filter(pk__in=appointments).update(slot=twin)
    _sessions_update(clinic, infos, plans, session_fields)
    rows = _worklist_add(clinic, change, displaced)
    practitioners = {info.practitioner_id for info in infos if info.id in touched or info.id in session_fields}
    announce_calendar_change(sorted(p for p in practitioners if p is not None))
    sessions = len(touched | {pk for pk, fields in session_fields.items() if fields})
    change.sessions = sessions
    change.displaced_count = rows
    change.save(update_fields=["sessions", "displaced_count"])
    _record_opened(clinic, ids, free_before)
    return Applied(change, sessions, rows, len(ended))


def _batches(pks: Sequence[int]) -> list[Sequence[int]]:
    return [pks[start : start + BATCH] for start in range(0, len(pks), BATCH)]


def _new_slot(clinic: Clinic, session_id: int, position: int, planned: PlannedSlot, open_for_booking: bool) -> Slot:
    return Slot(
        clinic=clinic,
        session_id=session_id,
        position=position,
        slot_type_id=planned.slot_type_id,
        starts_at=planned.starts_at,
        ends_at=planned.ends_at,
        bookable=planned.bookable and open_for_booking,
        capacity=planned.capacity,
        booked_count=0,
        held_count=0,
    )


def _slots_with_history(clinic: Clinic, slot_ids: Sequence[int]) -> set[int]:
    """Of these slots, those any appointment or hold points at (live or not): they are retired, never deleted."""
    if not slot_ids:
        return set()
    found = set(
        Appointment.objects.for_clinic(clinic).filter(slot__in=slot_ids).values_list("slot_id", flat=True).distinct()
    )
    found |= set(Hold.objects.for_clinic(clinic).filter(slot__in=slot_ids).values_list("slot_id", flat=True).distinct())
    return found


def _holds_end(clinic: Clinic, actor: User | None, hold_ids: Sequence[int]) -> None:
    """End holds whose place a change took away (the caller sets the slots' counts): withdrawn, audited, and observers
    told (an online request is declined: the time is no longer there)."""
    now = timezone.now()
    holds = list(Hold.objects.for_clinic(clinic).filter(pk__in=hold_ids, ended_at__isnull=True))
    for hold in holds:
        hold.ended_at = now
        hold.outcome = HoldOutcome.WITHDRAWN
    Hold.objects.bulk_update(holds, ["ended_at", "outcome"], batch_size=BATCH)
    for hold in holds:
        audit_record(
            clinic=clinic, actor=actor, action="hold.ended", target=hold, detail={"outcome": HoldOutcome.WITHDRAWN}
        )
        hold_ended.send(sender=None, clinic_id=clinic.pk, hold=hold.pk, outcome=HoldOutcome.WITHDRAWN)


def _sessions_update(
    clinic: Clinic,
    infos: Sequence[selectors.SessionInfo],
    plans: Mapping[int, list[PlannedSlot]],
    session_fields: Mapping[int, Mapping[str, object]],
) -> None:
    """The sessions' new ends (from their own starts) and the fields that follow (the template's, or the edit's
    location and description), one UPDATE per group of sessions given the same values."""
    groups: dict[tuple[tuple[tuple[str, object], ...], int | None], list[int]] = defaultdict(list)
    for info in infos:
        planned = plans.get(info.id)
        values = dict(session_fields.get(info.id, {}))
        minutes = None
        if planned and planned[-1].ends_at != info.ends_at:
            minutes = int((planned[-1].ends_at - info.starts_at).total_seconds() // 60)
        if values or minutes is not None:
            groups[(tuple(sorted(values.items())), minutes)].append(info.id)
    sessions = Session.objects.for_clinic(clinic)
    for (pairs, length), pks in groups.items():
        update: dict[str, object] = dict(pairs)
        if length is not None:
            update["ends_at"] = F("starts_at") + dt.timedelta(minutes=length)
        for batch in _batches(pks):
            sessions.filter(pk__in=batch).update(**update)


def _worklist_add(clinic: Clinic, change: RotaChange, displaced: Sequence[tuple[int, str]]) -> int:
    """A worklist row per displaced appointment (one already waiting keeps its row)."""
    if not displaced:
        return 0
    ids = [a for a, _ in displaced]
    waiting = set(
        Displacement.objects.for_clinic(clinic)
        .waiting()
        .filter(appointment__in=ids)
        .values_list("appointment_id", flat=True)
    )
    rows = [
        Displacement(clinic=clinic, change=change, appointment_id=a, why=why)
        for a, why in displaced
        if a not in waiting
    ]
    Displacement.objects.bulk_create(rows, batch_size=BATCH)
    return len(rows)


def _clash_refusal(
    clinic: Clinic, previews: Sequence[selectors.SessionInfo], plans: Mapping[int, list[PlannedSlot]]
) -> None:
    extended = [(info, plans[info.id][-1].ends_at) for info in previews if plans.get(info.id)]
    clashes = selectors.clashes_of(clinic=clinic, extended=extended)
    if clashes:
        first = next(info for info in previews if info.id in clashes)
        zone = ZoneInfo(first.time_zone)
        raise ChangeError(
            f"{len(clashes)} session(s) would overlap another session of their practitioner: "
            f"{first.name} on {first.starts_at.astimezone(zone):%a %-d %b %Y} would overlap {clashes[first.id]}."
        )


# --- One session edited -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionEdit:
    """An edit of one dated session: new slot types (slot id → type id, None for blank), the first `keep` slots kept
    (shorten), slots added at the end, and its location and description."""

    slot_types: Mapping[int, int | None]
    keep: int
    add_count: int = 0
    add_type: SlotType | None = None
    add_minutes: int = 0
    location: Location | None = None
    description: str | None = None


def session_edit_plan(*, clinic: Clinic, session: Session, edit: SessionEdit) -> list[PlannedSlot]:
    """The session's slots after the edit (reads the slot types named: one query)."""
    current = selectors.current_slots(clinic=clinic, session_ids=[session.pk]).get(session.pk, [])
    names = set(edit.slot_types.values()) - {None}
    types = {t.pk: t for t in SlotType.objects.for_clinic(clinic).filter(pk__in=names)}
    if len(types) != len(names):
        raise ChangeError("Choose slot types of this clinic.")
    planned = []
    for slot in current[: max(edit.keep, 0)]:
        new_type = edit.slot_types.get(slot.id, slot.slot_type_id)
        if new_type == slot.slot_type_id:
            planned.append(PlannedSlot(slot.starts_at, slot.ends_at, slot.slot_type_id, slot.bookable, slot.capacity))
        elif new_type is None:
            planned.append(PlannedSlot(slot.starts_at, slot.ends_at, None, False, 1))
        else:
            kind = types[new_type]
            planned.append(PlannedSlot(slot.starts_at, slot.ends_at, kind.pk, kind.bookable, kind.capacity))
    if edit.add_count:
        if edit.add_type is None or edit.add_minutes < 1:
            raise ChangeError("Say which slot type to add, and how long each slot is.")
        start = planned[-1].ends_at if planned else session.starts_at
        for _ in range(edit.add_count):
            end = start + dt.timedelta(minutes=edit.add_minutes)
            planned.append(PlannedSlot(start, end, edit.add_type.pk, edit.add_type.bookable, edit.add_type.capacity))
            start = end
    if not planned:
        raise ChangeError("A session keeps at least one slot; to take it out, use Take sessions out.")
    return planned


def _edit_fields(session: Session, edit: SessionEdit) -> dict[str, object]:
    fields: dict[str, object] = {}
    if edit.location is not None and edit.location.pk != session.location_id:
        if edit.location.time_zone != session.time_zone:
            raise ChangeError(
                f"{edit.location.name} keeps another clock ({edit.location.time_zone}); a session cannot move to it. "
                "Take this session out and allocate one there."
            )
        fields["location_id"] = edit.location.pk
    if edit.description is not None and edit.description != session.description:
        fields["description"] = edit.description[:30]
    return fields


def _editable(session: Session) -> None:
    if session.out_state == SessionOut.CANCELLED:
        raise ChangeError("This session is cancelled; resume it before editing.")
    if session.ends_at <= timezone.now():
        raise ChangeError("This session is over: past sessions keep the shape they had.")


def session_edit_preview(
    *, clinic: Clinic, membership: Membership | None, session: Session, edit: SessionEdit
) -> selectors.ChangePreview:
    _editable(session)
    plan = session_edit_plan(clinic=clinic, session=session, edit=edit)
    fields = _edit_fields(session, edit)
    info = selectors.session_infos(Session.objects.for_clinic(clinic).filter(pk=session.pk))[0]
    labels = tuple({"location_id": "Location", "description": "Description"}[name] for name in fields)
    return selectors.change_preview(
        clinic=clinic, membership=membership, infos=[info], plans={session.pk: plan}, field_changes={session.pk: labels}
    )


def session_edit(*, clinic: Clinic, actor: User | None, session: Session, edit: SessionEdit) -> Applied:
    """Edit one dated session, all or nothing; refused when it would overlap another session of its practitioner."""

    def work() -> Applied:
        with transaction.atomic():
            _lock(clinic, [session.pk])
            locked = Session.objects.for_clinic(clinic).select_for_update().get(pk=session.pk)
            _editable(locked)
            plan = session_edit_plan(clinic=clinic, session=locked, edit=edit)
            infos = selectors.session_infos(Session.objects.for_clinic(clinic).filter(pk=locked.pk))
            _clash_refusal(clinic, infos, {locked.pk: plan})
            fields = _edit_fields(locked, edit)
            zone = ZoneInfo(locked.time_zone)
            change = RotaChange.objects.create(
                clinic=clinic,
                kind=ChangeKind.SESSION_EDIT,
                actor=actor,
                summary=f"{locked.name}, {locked.starts_at.astimezone(zone):%a %-d %b %Y %H:%M}: edited"[:200],
            )
            applied = _apply_plans(
                clinic=clinic,
                actor=actor,
                change=change,
                infos=infos,
                plans={locked.pk: plan},
                session_fields={locked.pk: fields},
            )
            audit_record(
                clinic=clinic,
                actor=actor,
                action="session.edited",
                target=locked,
                detail={"change": str(change.public_id), "displaced": applied.displaced, "fields": sorted(fields)},
            )
            return applied

    return _retrying_deadlocks(work)


# --- A template change applied to the rota ------------------------------------------------------------------------


def _from_today(clinic: Clinic, first_date: dt.date, last_date: dt.date | None) -> None:
    if last_date is not None and last_date < first_date:
        raise ChangeError("The last date is before the first date.")
    if first_date < clinic.today():
        raise ChangeError("Start from today or later: past sessions keep the shape they had.")


TEMPLATE_FIELDS = (
    ("name", "Name"),
    ("description", "Description"),
    ("colour", "Colour"),
    ("session_type", "Session type"),
    ("open_session", "Open session"),
    ("travel_clinic", "Travel clinic"),
    ("closed_session", "Closed session"),
    ("closed_enforced", "Closed session enforced"),
    ("gp_connect_bookable", "GP Connect bookable"),
    ("practitioner_role", "Practitioner role"),
)


def template_plans(
    *, clinic: Clinic, template: SessionTemplate, infos: Sequence[selectors.SessionInfo]
) -> tuple[dict[int, list[PlannedSlot]], dict[int, dict[str, object]]]:
    """Each session's slots under the template (from the session's own start) and the fields that follow it."""
    shape = selectors.template_shape(clinic=clinic, template=template)
    if not shape:
        raise ChangeError("This session template has no slots.")
    plans = {info.id: selectors.planned_from_shape(info.starts_at, shape) for info in infos}
    fields = {}
    for info in infos:
        differ = {
            name: getattr(template, name)
            for name, _ in TEMPLATE_FIELDS
            if getattr(info, name) != getattr(template, name)
        }
        if differ:
            fields[info.id] = differ
    return plans, fields


def template_apply_preview(
    *,
    clinic: Clinic,
    membership: Membership | None,
    template: SessionTemplate,
    first_date: dt.date,
    last_date: dt.date | None = None,
    allocations: Sequence[int] = (),
) -> selectors.ChangePreview:
    """What applying the template to its allocated sessions would do: a fixed number of queries."""
    _from_today(clinic, first_date, last_date)
    infos = selectors.session_infos(
        selectors.template_sessions(
            clinic=clinic, template=template, first_date=first_date, last_date=last_date, allocations=allocations
        )
    )
    plans, fields = template_plans(clinic=clinic, template=template, infos=infos)
    labels = dict(TEMPLATE_FIELDS)
    return selectors.change_preview(
        clinic=clinic,
        membership=membership,
        infos=infos,
        plans=plans,
        field_changes={pk: tuple(labels[name] for name in names) for pk, names in fields.items()},
    )


def template_apply(
    *,
    clinic: Clinic,
    actor: User | None,
    template: SessionTemplate,
    first_date: dt.date,
    last_date: dt.date | None = None,
    allocations: Sequence[int] = (),
) -> Applied:
    """Give the template's allocated sessions (from a date, to a date, of chosen allocations) its slots, name,
    description and flags, in one transaction; refused when a session would overlap another of its practitioner."""
    _from_today(clinic, first_date, last_date)

    def work() -> Applied:
        with transaction.atomic():
            sessions = selectors.template_sessions(
                clinic=clinic, template=template, first_date=first_date, last_date=last_date, allocations=allocations
            )
            ids = list(sessions.values_list("id", flat=True))
            _lock(clinic, ids)
            infos = selectors.session_infos(Session.objects.for_clinic(clinic).filter(pk__in=ids))
            plans, fields = template_plans(clinic=clinic, template=template, infos=infos)
            _clash_refusal(clinic, infos, plans)
            span = f"from {first_date:%-d %b %Y}" + (f" to {last_date:%-d %b %Y}" if last_date else "")
            change = RotaChange.objects.create(
                clinic=clinic,
                kind=ChangeKind.TEMPLATE_APPLY,
                actor=actor,
                summary=f"“{template.name}” applied to its sessions {span}"[:200],
            )
            applied = _apply_plans(
                clinic=clinic, actor=actor, change=change, infos=infos, plans=plans, session_fields=fields
            )
            audit_record(
                clinic=clinic,
                actor=actor,
                action="template.applied",
                target=template,
                detail={
                    "change": str(change.public_id),
                    "sessions": applied.sessions,
                    "displaced": applied.displaced,
                    "from": first_date.isoformat(),
                    "to": last_date.isoformat() if last_date else None,
                    "allocations": len(allocations),
                },
            )
            return applied

    return _retrying_deadlocks(work)


# --- Sessions taken out, and back ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TakeOut:
    practitioner: Practitioner | None
    location: Location | None
    first_date: dt.date
    last_date: dt.date
    action: str  # SessionOut: suspended or cancelled
    reason: str  # OutReason
    note: str = ""


def _take_out_checked(clinic: Clinic, take: TakeOut) -> None:
    if take.practitioner is None and take.location is None:
        raise ChangeError("Choose a practitioner or a location.")
    _from_today(clinic, take.first_date, take.last_date)
    if (take.last_date - take.first_date).days > MAX_DAYS_OUT:
        raise ChangeError("Take out at most a year at a time.")
    if take.action not in SessionOut.values:
        raise ChangeError("Choose Suspend or Cancel sessions.")
    if take.reason not in OutReason.values:
        raise ChangeError("Choose a reason.")


def take_out_sessions(*, clinic: Clinic, take: TakeOut) -> QuerySet[Session]:
    """The sessions a take-out would touch: those not already out (cancelling also takes suspended ones)."""
    sessions = selectors.sessions_between(
        clinic=clinic,
        practitioner=take.practitioner,
        location=take.location,
        first_date=take.first_date,
        last_date=take.last_date,
    )
    if take.action == SessionOut.SUSPENDED:
        return sessions.filter(out_state="")
    return sessions.exclude(out_state=SessionOut.CANCELLED)


@dataclass(frozen=True)
class TakeOutPreview:
    sessions: list[selectors.SessionInfo]
    appointments: list[selectors.DisplacedRow]
    appointment_total: int
    displaces: bool  # cancelling: the appointments go on the worklist; suspending: they stay


def take_out_preview(*, clinic: Clinic, membership: Membership | None, take: TakeOut) -> TakeOutPreview:
    _take_out_checked(clinic, take)
    infos = selectors.session_infos(take_out_sessions(clinic=clinic, take=take))
    ids = selectors.live_appointments_of(clinic=clinic, session_ids=[info.id for info in infos])
    rows = selectors.displaced_rows(
        clinic=clinic,
        membership=membership,
        pairs=[(a, DisplacedWhy.CANCELLED) for a in ids[: selectors.PREVIEW_NAMED]],
    )
    return TakeOutPreview(infos, rows, len(ids), take.action == SessionOut.CANCELLED)


def sessions_take_out(*, clinic: Clinic, actor: User | None, take: TakeOut) -> Applied:
    """Suspend the sessions (no new bookings; those made stay) or cancel them (their appointments displaced onto the
    worklist, live holds ended), all in one transaction."""
    _take_out_checked(clinic, take)

    def work() -> Applied:
        with transaction.atomic():
            ids = list(take_out_sessions(clinic=clinic, take=take).values_list("id", flat=True))
            if not ids:
                raise ChangeError("There are no sessions to take out on those dates.")
            _lock(clinic, ids)
            who = take.practitioner.name if take.practitioner else take.location.name  # type: ignore[union-attr]
            span = f"{take.first_date:%a %-d %b %Y}" + (
                f" to {take.last_date:%a %-d %b %Y}" if take.last_date != take.first_date else ""
            )
            verb = "suspended" if take.action == SessionOut.SUSPENDED else "cancelled"
            change = RotaChange.objects.create(
                clinic=clinic,
                kind=ChangeKind.SUSPEND if take.action == SessionOut.SUSPENDED else ChangeKind.CANCEL,
                actor=actor,
                reason=take.reason,
                note=take.note[:200],
                summary=f"{who}, {span}: sessions {verb} ({OutReason(take.reason).label.lower()})"[:200],
                sessions=len(ids),
            )
            Session.objects.for_clinic(clinic).filter(pk__in=ids).update(out_state=take.action, out_reason=take.reason)
            Slot.objects.for_clinic(clinic).filter(session__in=ids).update(bookable=False)
            ended = 0
            displaced: list[tuple[int, str]] = []
            if take.action == SessionOut.CANCELLED:
                holds = list(
                    Hold.objects.for_clinic(clinic).live().filter(slot__session__in=ids).values_list("id", flat=True)
                )
                if holds:
                    _holds_end(clinic, actor, holds)
                    Slot.objects.for_clinic(clinic).filter(session__in=ids, held_count__gt=0).update(
                        booked_count=F("booked_count") - F("held_count"), held_count=0
                    )
                ended = len(holds)
                displaced = [
                    (a, DisplacedWhy.CANCELLED) for a in selectors.live_appointments_of(clinic=clinic, session_ids=ids)
                ]
            rows = _worklist_add(clinic, change, displaced)
            change.displaced_count = rows
            change.save(update_fields=["displaced_count"])
            practitioners = set(
                Session.objects.for_clinic(clinic).filter(pk__in=ids).values_list("practitioner_id", flat=True)
            )
            announce_calendar_change(sorted(p for p in practitioners if p is not None))
            audit_record(
                clinic=clinic,
                actor=actor,
                action=f"sessions.{verb}",
                target=change,
                detail={"sessions": len(ids), "displaced": rows, "reason": take.reason, "holds_ended": ended},
            )
            return Applied(change, len(ids), rows, ended)

    return _retrying_deadlocks(work)


def sessions_resume(*, clinic: Clinic, actor: User | None, sessions: Sequence[Session]) -> Applied:
    """Put taken-out sessions back in the book: their slots bookable again by their type (retired ones never).
    Appointments of a cancelled session still waiting on the worklist stand again: their rows are closed."""
    ids = [s.pk for s in sessions]

    def work() -> Applied:
        with transaction.atomic():
            _lock(clinic, ids)
            out = list(
                Session.objects.for_clinic(clinic).filter(pk__in=ids).exclude(out_state="").values_list("id", flat=True)
            )
            if not out:
                raise ChangeError("Those sessions are not taken out.")
            change = RotaChange.objects.create(
                clinic=clinic,
                kind=ChangeKind.RESUME,
                actor=actor,
                summary=f"{len(out)} session(s) resumed",
                sessions=len(out),
            )
            before = _free_places(clinic, out)
            if before is not None:
                before = {}  # a session taken out offered nothing: every free place it has now is new
            Session.objects.for_clinic(clinic).filter(pk__in=out).update(out_state="", out_reason="")
            Slot.objects.for_clinic(clinic).filter(session__in=out, retired=False, slot_type__bookable=True).update(
                bookable=True
            )
            stood = (
                Displacement.objects.for_clinic(clinic)
                .waiting()
                .filter(
                    why=DisplacedWhy.CANCELLED, appointment__slot__session__in=out, appointment__slot__retired=False
                )
                .update(
                    state=DisplacedState.GONE,
                    note="Session resumed: the booking stands",
                    handled_by=actor,
                    handled_at=timezone.now(),
                )
            )
            practitioners = set(
                Session.objects.for_clinic(clinic).filter(pk__in=out).values_list("practitioner_id", flat=True)
            )
            announce_calendar_change(sorted(p for p in practitioners if p is not None))
            audit_record(
                clinic=clinic,
                actor=actor,
                action="sessions.resumed",
                target=change,
                detail={"sessions": len(out), "stood": stood},
            )
            _record_opened(clinic, out, before)
            return Applied(change, len(out), 0, 0)

    return _retrying_deadlocks(work)


# --- The worklist -------------------------------------------------------------------------------------------------

REBOOK_TRIES = 3


@dataclass
class WorkOutcome:
    done: int = 0
    left: list[str] = field(default_factory=list)  # the rows left on the worklist, in words


def _waiting_locked(clinic: Clinic, pk: int) -> Displacement | None:
    """The worklist row, locked, if it still waits and its appointment is still booked (else it is closed as dealt
    with elsewhere, and None)."""
    row = (
        Displacement.objects.for_clinic(clinic)
        .select_for_update(of=("self",))
        .select_related("appointment")
        .filter(pk=pk)
        .first()
    )
    if row is None or row.state not in (DisplacedState.OPEN, DisplacedState.TO_CONTACT):
        return None
    if row.appointment.status != AppointmentStatus.BOOKED:
        row.state = DisplacedState.GONE
        row.note = f"The appointment is {row.appointment.get_status_display().lower()}"
        row.handled_at = timezone.now()
        row.save(update_fields=["state", "note", "handled_at"])
        return None
    return row


def displaced_rebook(
    *, clinic: Clinic, actor: User, membership: Membership | None, rows: Sequence[int], now: dt.datetime | None = None
) -> WorkOutcome:
    """Rebook each chosen row to its proposal: a reschedule (the old appointment kept as moved, the patient told the
    new time once). A proposal lost to another booking meanwhile gives way to the next; a row with none left stays
    on the worklist, saying so. Each row is its own transaction: one refusal never undoes the others."""
    now = now or timezone.now()
    outcome = WorkOutcome()
    work_rows = [r for r in selectors.worklist(clinic=clinic, membership=membership) if r.id in set(rows) and r.waiting]
    proposals = selectors.worklist_proposals(clinic=clinic, rows=work_rows, now=now)
    for row in work_rows:
        if row.appointment_status != AppointmentStatus.BOOKED:
            with transaction.atomic():
                _waiting_locked(clinic, row.id)  # closes it: dealt with elsewhere
            continue
        proposal = proposals.get(row.id)
        tried: set[int] = set()
        for _attempt in range(REBOOK_TRIES):
            if proposal is None:
                break
            tried.add(proposal.slot_id)
            try:
                with transaction.atomic():
                    locked = _waiting_locked(clinic, row.id)
                    if locked is None:
                        proposal = None
                        break
                    slot = Slot.objects.for_clinic(clinic).select_related("slot_type").get(pk=proposal.slot_id)
                    new = appointment_reschedule(
                        clinic=clinic, actor=actor, membership=membership, appointment=locked.appointment, slot=slot
                    )
                    locked.state = DisplacedState.REBOOKED
                    locked.new_appointment = new
                    locked.handled_by = actor
                    locked.handled_at = timezone.now()
                    locked.note = ""
                    locked.save(update_fields=["state", "new_appointment", "handled_by", "handled_at", "note"])
                    audit_record(
                        clinic=clinic,
                        actor=actor,
                        action="displaced.rebooked",
                        target=locked,
                        detail={"from": str(row.appointment_public_id), "to": str(new.public_id)},
                    )
                outcome.done += 1
                break
            except BookingError:
                proposal = _next_proposal(clinic, row, now, tried)
        else:
            proposal = None
        if proposal is None and not _handled(clinic, row.id):
            note = "No free place found to rebook to; still to do."
            Displacement.objects.for_clinic(clinic).filter(pk=row.id).update(note=note)
            outcome.left.append(f"{row.patient} ({row.starts_at.astimezone(ZoneInfo(row.time_zone)):%a %-d %b %H:%M})")
    return outcome


def _handled(clinic: Clinic, pk: int) -> bool:
    return not Displacement.objects.for_clinic(clinic).waiting().filter(pk=pk).exists()


def _next_proposal(
    clinic: Clinic, row: selectors.WorkRow, now: dt.datetime, tried: set[int]
) -> selectors.Proposal | None:
    want = selectors.wanted_from(row, now)
    if want is None:
        return None
    want = selectors.Wanted(
        want.key, want.slot_type_id, want.practitioner_id, want.role, want.location_id, want.earliest, frozenset(tried)
    )
    found = selectors.proposals_for([want], selectors.rebook_candidates(clinic=clinic, wanted=[want], now=now))
    return found.get(row.id)


def displaced_cancel(
    *,
    clinic: Clinic,
    actor: User,
    rows: Sequence[int],
    reason: str,
    category: str = CancelCategory.CLINICIAN,
) -> WorkOutcome:
    """Cancel each chosen row's appointment with the reason given; the patient is told to rebook (with the online
    booking link where the clinic books online)."""
    if not reason.strip():
        raise ChangeError("Give a reason for the cancellation.")
    if category not in (CancelCategory.CLINICIAN, CancelCategory.CLINIC, CancelCategory.OTHER):
        raise ChangeError("Choose why the appointments are cancelled.")
    outcome = WorkOutcome()
    for pk in rows:
        with transaction.atomic():
            locked = _waiting_locked(clinic, pk)
            if locked is None:
                continue
            appointment_cancel(
                clinic=clinic, actor=actor, appointment=locked.appointment, reason=reason, category=category
            )
            locked.state = DisplacedState.CANCELLED
            locked.handled_by = actor
            locked.handled_at = timezone.now()
            locked.note = ""
            locked.save(update_fields=["state", "handled_by", "handled_at", "note"])
            audit_record(
                clinic=clinic, actor=actor, action="displaced.cancelled", target=locked, detail={"category": category}
            )
        outcome.done += 1
    return outcome


def displaced_to_contact(*, clinic: Clinic, actor: User, rows: Sequence[int]) -> WorkOutcome:
    """Leave the chosen rows for a phone call: marked "to contact", still on the worklist."""
    outcome = WorkOutcome()
    for pk in rows:
        with transaction.atomic():
            locked = _waiting_locked(clinic, pk)
            if locked is None or locked.state == DisplacedState.TO_CONTACT:
                continue
            locked.state = DisplacedState.TO_CONTACT
            locked.handled_by = actor
            locked.handled_at = timezone.now()
            locked.save(update_fields=["state", "handled_by", "handled_at"])
            audit_record(clinic=clinic, actor=actor, action="displaced.to_contact", target=locked)
        outcome.done += 1
    return outcome
