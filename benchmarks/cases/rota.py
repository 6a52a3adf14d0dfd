"""Allocating a year's rota: a 30-slot template for 20 practitioners on weekdays for 52 weeks.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``), chosen by the harness."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db import connection, models, transaction
from django.utils import timezone

from benchmarks.cases.common import DEMO_ADMIN, register
from benchmarks.harness import Case, checked, sized
from clinic.db import bulk_insert
from clinic.models import AuditEvent, Clinic, Location, Practitioner, PractitionerRole
from scheduling.models import Allocation, Session, Slot
from scheduling.services.rota import SLOT_INSERT_COLUMNS, AllocationRequest, allocation_create
from sessions_setup.models import SessionTemplate, SlotType, TemplateSlot

# --- Allocating a year's rota ---------------------------------------------------------


@dataclass(frozen=True)
class RotaSizes:
    practitioners: int
    weeks: int


FULL = RotaSizes(practitioners=20, weeks=52)
TINY = RotaSizes(practitioners=2, weeks=1)
SIZE = sized(FULL, TINY)

ROTA_PRACTITIONERS = SIZE.practitioners
ROTA_WEEKS = SIZE.weeks
ROTA_WEEKDAYS = (1, 2, 3, 4, 5)
ROTA_SLOTS_PER_SESSION = 30
ROTA_SLOT_MINUTES = 8  # 30 x 8 minutes: a four-hour session
ROTA_START = dt.time(8, 0)
ROTA_FIRST_DATE = dt.date(2027, 1, 4)  # a Monday; the year crosses both clock changes
ROTA_LAST_DATE = ROTA_FIRST_DATE + dt.timedelta(weeks=ROTA_WEEKS, days=-3)  # the Friday of week 52
ROTA_TIME_ZONE = "Europe/London"
ROTA_SESSIONS = ROTA_PRACTITIONERS * ROTA_WEEKS * len(ROTA_WEEKDAYS)  # 5,200
ROTA_SLOTS = ROTA_SESSIONS * ROTA_SLOTS_PER_SESSION  # 156,000

Row = tuple[object, ...]
ALLOCATION_COLUMNS = tuple(f.attname for f in Allocation._meta.concrete_fields)
SESSION_COLUMNS = tuple(f.attname for f in Session._meta.concrete_fields)


@dataclass(frozen=True)
class RotaState:
    clinic: Clinic
    actor: User
    requests: list[AllocationRequest]
    # The floor's rows, as plain tuples stored the way the ORM stores them.
    allocation_rows: list[Row]
    session_rows: list[Row]
    slot_rows: list[Row]


def as_stored(model: type[models.Model], columns: Sequence[str], rows: Iterable[Sequence[object]]) -> list[Row]:
    """Python values as the ORM would write them into ``columns`` (attnames) of ``model`` on this connection."""
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    fields = [by_attname[name] for name in columns]
    return [tuple(f.get_db_prep_save(v, connection) for f, v in zip(fields, row, strict=True)) for row in rows]


@dataclass(frozen=True)
class RotaClinic:
    """A clinic with one 30-slot template of one slot type and 20 GPs, not yet on the rota (the rota_change_preview
    case builds on it too)."""

    clinic: Clinic
    location: Location
    slot_type: SlotType
    template: SessionTemplate
    practitioners: list[Practitioner]
    actor: User
    requests: list[AllocationRequest]  # the year for each practitioner


def rota_clinic(name: str, slug: str) -> RotaClinic:
    clinic = Clinic.objects.create(name=name, slug=slug)
    location = Location.objects.create(
        clinic=clinic, name="Main surgery", kind=Location.Kind.MAIN, time_zone=ROTA_TIME_ZONE
    )
    slot_type = SlotType.objects.create(
        clinic=clinic, name="Routine", default_length_minutes=ROTA_SLOT_MINUTES, capacity=1, bookable=True
    )
    template = SessionTemplate.objects.create(clinic=clinic, name="GP morning")
    TemplateSlot.objects.bulk_create(
        TemplateSlot(
            clinic=clinic, template=template, position=i, slot_type=slot_type, length_minutes=ROTA_SLOT_MINUTES
        )
        for i in range(ROTA_SLOTS_PER_SESSION)
    )
    practitioners = [
        Practitioner.objects.create(
            clinic=clinic, name=f"Dr Bench {i:02}", role=PractitionerRole.GP, default_location=location
        )
        for i in range(ROTA_PRACTITIONERS)
    ]
    requests = [
        AllocationRequest(
            template, p, location, ROTA_START, ROTA_FIRST_DATE, ROTA_LAST_DATE, ROTA_WEEKDAYS, every_weeks=1
        )
        for p in practitioners
    ]
    actor = User.objects.get(username=DEMO_ADMIN)
    return RotaClinic(clinic, location, slot_type, template, practitioners, actor, requests)


def rota_setup() -> RotaState:
    """A fresh clinic with one 30-slot template and 20 GPs, and the floor's rows for the same year."""
    built = rota_clinic("Benchmark rota", f"bench-rota-{uuid.uuid4().hex[:8]}")
    clinic, location, slot_type, template = built.clinic, built.location, built.slot_type, built.template
    practitioners, actor, requests = built.practitioners, built.actor, built.requests

    # The floor's rows, worked out here independently of scheduling.rota. Explicit ids above the current
    # maximum let the slots reference the sessions; no run's rows are in the way, as the reset comes between.
    zone = ZoneInfo(ROTA_TIME_ZONE)
    dates = [ROTA_FIRST_DATE + dt.timedelta(weeks=w, days=d - 1) for w in range(ROTA_WEEKS) for d in ROTA_WEEKDAYS]
    slot_length = dt.timedelta(minutes=ROTA_SLOT_MINUTES)
    session_length = slot_length * ROTA_SLOTS_PER_SESSION
    allocation_id = (Allocation.objects.aggregate(m=models.Max("id"))["m"] or 0) + 1
    session_id = (Session.objects.aggregate(m=models.Max("id"))["m"] or 0) + 1
    now = timezone.now()
    allocations: list[dict[str, object]] = []
    sessions: list[dict[str, object]] = []
    slots: list[Row] = []
    for practitioner in practitioners:
        allocations.append(
            {
                "id": allocation_id,
                "clinic_id": clinic.pk,
                "public_id": uuid.uuid4(),
                "template_id": template.pk,
                "practitioner_id": practitioner.pk,
                "location_id": location.pk,
                "start_time": ROTA_START,
                "first_date": ROTA_FIRST_DATE,
                "last_date": ROTA_LAST_DATE,
                "weekdays": ",".join(map(str, ROTA_WEEKDAYS)),
                "every_weeks": 1,
                "created_by_id": actor.pk,
                "created_at": now,
            }
        )
        for date in dates:
            starts_at = dt.datetime.combine(date, ROTA_START, tzinfo=zone).astimezone(dt.UTC)
            sessions.append(
                {
                    "id": session_id,
                    "clinic_id": clinic.pk,
                    "public_id": uuid.uuid4(),
                    "allocation_id": allocation_id,
                    "template_id": template.pk,
                    "practitioner_id": practitioner.pk,
                    "location_id": location.pk,
                    "date": date,
                    "time_zone": ROTA_TIME_ZONE,
                    "starts_at": starts_at,
                    "ends_at": starts_at + session_length,
                    "name": template.name,
                    "description": template.description,
                    "colour": template.colour,
                    "session_type": template.session_type,
                    "open_session": template.open_session,
                    "travel_clinic": template.travel_clinic,
                    "closed_session": template.closed_session,
                    "closed_enforced": template.closed_enforced,
                    "gp_connect_bookable": template.gp_connect_bookable,
                    "practitioner_role": template.practitioner_role,
                    "out_state": "",  # in the book, as the rota service makes every session
                    "out_reason": "",
                }
            )
            for position in range(ROTA_SLOTS_PER_SESSION):
                start = starts_at + position * slot_length
                slot = (clinic.pk, uuid.uuid4(), session_id, position, slot_type.pk, start, start + slot_length)
                slots.append((*slot, slot_type.bookable, slot_type.capacity, 0, 0))  # booked_count, held_count 0
            session_id += 1
        allocation_id += 1
    return RotaState(
        clinic=clinic,
        actor=actor,
        requests=requests,
        allocation_rows=as_stored(
            Allocation, ALLOCATION_COLUMNS, ([a[c] for c in ALLOCATION_COLUMNS] for a in allocations)
        ),
        session_rows=as_stored(Session, SESSION_COLUMNS, ([s[c] for c in SESSION_COLUMNS] for s in sessions)),
        slot_rows=as_stored(Slot, SLOT_INSERT_COLUMNS, slots),
    )


def rota_check(clinic: Clinic) -> None:
    """Anything but exactly the year's sessions and slots is an error, never a measurement."""
    sessions = Session.objects.for_clinic(clinic).count()
    slots = Slot.objects.for_clinic(clinic).count()
    if (sessions, slots) != (ROTA_SESSIONS, ROTA_SLOTS):
        raise RuntimeError(
            f"rota_allocate made {sessions} sessions and {slots} slots, expected {ROTA_SESSIONS} and {ROTA_SLOTS}"
        )
    checked()


def rota_run(state: RotaState) -> None:
    for request in state.requests:
        allocation_create(clinic=state.clinic, actor=state.actor, request=request)
    rota_check(state.clinic)


def rota_floor(state: RotaState) -> None:
    """The same rows with the same bulk_insert (COPY on PostgreSQL, executemany elsewhere).

    One transaction, where the run commits once per allocation (20 times).
    """
    with transaction.atomic():
        bulk_insert(Allocation._meta.db_table, ALLOCATION_COLUMNS, state.allocation_rows)
        bulk_insert(Session._meta.db_table, SESSION_COLUMNS, state.session_rows)
        bulk_insert(Slot._meta.db_table, SLOT_INSERT_COLUMNS, state.slot_rows)
    rota_check(state.clinic)


def rota_reset(state: RotaState) -> None:
    """Remove the clinic's slots, sessions, allocations and their audit events: whatever run or floor made."""
    Slot.objects.for_clinic(state.clinic).delete()
    Session.objects.for_clinic(state.clinic).delete()
    Allocation.objects.for_clinic(state.clinic).delete()
    AuditEvent.objects.for_clinic(state.clinic).delete()
    if connection.vendor == "postgresql":  # reclaim the dead rows now, untimed, whether or not autovacuum is on
        tables = ", ".join(m._meta.db_table for m in (Slot, Session, Allocation))
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {tables}")


register(
    Case(
        name="rota_allocate",
        setup=rota_setup,
        run=rota_run,
        floor=rota_floor,
        reset=rota_reset,
        runs=3,
        warmup=1,
    )
)
