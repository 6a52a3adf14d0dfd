"""Writes of the rota: a session template allocated to a practitioner (or the clinic) at a location on
dates becomes dated sessions and their slots; future sessions of an allocation are removed.

Wall-clock rule: a template starting at 08:00 starts at 08:00 in the location's zone on every date, DST or
not. The start is resolved per date with zoneinfo and converted to UTC at once; slots then follow at exact
minute offsets."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction

from clinic.db import DbValues, bulk_insert
from clinic.models import Practitioner
from clinic.services import audit_record
from scheduling.hours import clock_change_note
from scheduling.models import (
    Allocation,
    Session,
    Slot,
)
from scheduling.selectors.rota import booked_future_slots
from sessions_setup.models import SessionTemplate, TemplateSlot

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic, Location


UTC = dt.UTC
MAX_ALLOCATION_DAYS = 2 * 366
# Slots are written in chunks of this many sessions, so memory stays flat for a year's rota.
SESSIONS_PER_CHUNK = 500


class RotaError(ValueError):
    """An allocation that cannot be made; the message is shown to the user."""


def allocation_dates(
    *, first_date: dt.date, last_date: dt.date, weekdays: Iterable[int], every_weeks: int
) -> list[dt.date]:
    """Dates from first to last (inclusive) on the ISO weekdays given, in every Nth week.

    Weeks are counted from the Monday of the first date's week. With no weekdays, only the
    first date (a one-off allocation).
    """
    if last_date < first_date:
        raise RotaError("The last date is before the first date.")
    if (last_date - first_date).days > MAX_ALLOCATION_DAYS:
        raise RotaError("Allocate at most two years at a time.")
    if every_weeks < 1:
        raise RotaError("Repeat every 1 week or more.")
    days = set(weekdays)
    if not days:
        return [first_date]
    week_zero = first_date - dt.timedelta(days=first_date.weekday())
    result = []
    day = first_date
    while day <= last_date:
        if day.isoweekday() in days and ((day - week_zero).days // 7) % every_weeks == 0:
            result.append(day)
        day += dt.timedelta(days=1)
    return result


@dataclass(frozen=True)
class PlannedSession:
    date: dt.date
    starts_at: dt.datetime  # UTC
    ends_at: dt.datetime  # UTC


def local_start(date: dt.date, start_time: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of `start_time` on `date` on the wall clock of `zone`."""
    return dt.datetime.combine(date, start_time, tzinfo=zone).astimezone(UTC)


def plan_sessions(
    *, dates: Sequence[dt.date], start_time: dt.time, time_zone: str, duration_minutes: int
) -> list[PlannedSession]:
    zone = ZoneInfo(time_zone)
    length = dt.timedelta(minutes=duration_minutes)
    planned = []
    for date in dates:
        start = local_start(date, start_time, zone)
        planned.append(PlannedSession(date, start, start + length))
    return planned


def template_slots(template: SessionTemplate) -> list[TemplateSlot]:
    """The template's slots in order, with their slot types (uses a prefetch when there is one)."""
    if "slots" in getattr(template, "_prefetched_objects_cache", {}):
        return sorted(template.slots.all(), key=lambda s: s.position)
    return list(template.slots.select_related("slot_type").order_by("position"))


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
    # Dates where the start falls in a jump of the clocks, happens twice, or the clocks change during the
    # session: what will happen, in words ("Sun 28 Mar 2027: 01:30 does not exist …, so it starts at 02:30 BST.")
    clock_notes: list[str]


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
    zone = ZoneInfo(request.location.time_zone)
    notes = [clock_change_note(date, request.start_time, zone, minutes=duration) for date in dates]
    return AllocationPlan(
        request, planned, slots, len(slots) * len(planned), duration, clashes, [note for note in notes if note]
    )


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
            template.closed_enforced,
            template.gp_connect_bookable,
            template.practitioner_role,
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
    "closed_enforced",
    "gp_connect_bookable",
    "practitioner_role",
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
    "held_count",
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
