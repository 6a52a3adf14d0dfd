"""Changing the rota after it is built: the template a year's rota was allocated from (20 practitioners, 5,200
sessions, 30% of places booked) changed in two slots, then previewed and applied to every session
(``scheduling.services.changes``).

Sizes: the rota family's (``benchmarks.cases.rota``: FULL for results.json, TINY for ``--size tiny``), chosen by the
harness; patients are this family's own."""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections import Counter
from dataclasses import dataclass, field

from django.db import connection, models, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from benchmarks.cases.common import (
    booked_counts_set,
    calendar_patients,
    clinics_clear_plain,
    insert_rows,
    register,
    slots_miscounted,
    sub_case,
    vacuum_analyze,
)
from benchmarks.cases.rota import (
    ROTA_FIRST_DATE,
    ROTA_PRACTITIONERS,
    ROTA_SESSIONS,
    ROTA_SLOTS,
    ROTA_SLOTS_PER_SESSION,
    RotaClinic,
    rota_clinic,
)
from benchmarks.harness import Case, Result, checked, sized
from clinic.db import DbValues
from clinic.models import AuditEvent, Membership, Role
from patients.models import Patient
from scheduling.models import (
    Appointment,
    AppointmentSource,
    AppointmentStatus,
    DisplacedWhy,
    Displacement,
    RotaChange,
    Session,
    Slot,
)
from scheduling.selectors.changes import PREVIEW_NAMED, ChangePreview
from scheduling.services.changes import Applied, template_apply, template_apply_preview
from scheduling.services.rota import allocation_create
from sessions_setup.models import SlotKind, SlotType, TemplateSlot

CHANGE_SLUG = "bench-rota-change"  # also the prefix an earlier run's clinic is cleared by
CHANGE_SEED = "rota_change_preview"
CHANGE_BOOKED_SHARE = 0.3  # of the places (every slot has one)
CHANGE_PATIENTS = sized(400, 40)
# The two slots the template changes: the fourth becomes a telephone slot, the eleventh blank. Every session then
# changes, and exactly the appointments booked in those two slots are displaced (retyped, cleared).
RETYPED_POSITION = 3
BLANKED_POSITION = 10
CHANGED_POSITIONS = (RETYPED_POSITION, BLANKED_POSITION)
# Apply is timed over at most this many runs: each is a full year's write, and its reset (untimed) undoes it.
APPLY_RUNS = 5
APPLY_AUDIT_ACTION = "template.applied"


@dataclass
class ChangeState:
    built: RotaClinic
    membership: Membership
    telephone: SlotType
    appointments: int
    displaced: Counter[str]  # expected, from the places booked: why (retyped, cleared) → appointments
    booked_changed: list[int]  # the booked slots of the two changed positions (their booked_count is 1)
    fingerprint: tuple[int, ...]  # the book as set up, which every apply's reset must give back
    applied: list[Applied] = field(default_factory=list)  # applies not yet checked (by the next reset)

    @property
    def displaced_total(self) -> int:
        return sum(self.displaced.values())


def book_fingerprint(clinic_id: int) -> tuple[int, ...]:
    """The book in a few numbers (slots, retired ones, places taken, slot types of the changed positions, where
    each appointment is, the worklist and changes): equal before a change and after its undoing, else not."""
    slots = Slot.objects.filter(clinic_id=clinic_id).aggregate(
        n=models.Count("id"),
        retired=models.Count("id", filter=models.Q(retired=True)),
        booked=models.Sum("booked_count"),
        bookable=models.Count("id", filter=models.Q(bookable=True)),
        typed=models.Sum("slot_type_id"),
    )
    appointments = Appointment.objects.filter(clinic_id=clinic_id).aggregate(
        n=models.Count("id"), where=models.Sum("slot_id")
    )
    return (
        slots["n"],
        slots["retired"],
        slots["booked"] or 0,
        slots["bookable"],
        slots["typed"] or 0,
        appointments["n"],
        appointments["where"] or 0,
        Displacement.objects.filter(clinic_id=clinic_id).count(),
        RotaChange.objects.filter(clinic_id=clinic_id).count(),
    )


@functools.cache
def change_setup() -> ChangeState:
    """The year's rota through the rota service, 30% of its places booked as plain rows, then the template's two
    slots changed (the rota not yet following it)."""
    clinics_clear_plain(CHANGE_SLUG)
    rng = random.Random(CHANGE_SEED)
    built = rota_clinic("Benchmark rota change", CHANGE_SLUG)
    clinic = built.clinic
    for request in built.requests:
        allocation_create(clinic=clinic, actor=built.actor, request=request)
    telephone = SlotType.objects.create(
        clinic=clinic, name="Telephone", kind=SlotKind.TELEPHONE, default_length_minutes=8, capacity=1, bookable=True
    )
    membership = Membership.objects.create(clinic=clinic, user=built.actor, role=Role.ADMIN)
    patients = calendar_patients(clinic, rng, CHANGE_PATIENTS)

    slots = list(
        Slot.objects.for_clinic(clinic)
        .order_by("id")
        .values_list("id", "session__practitioner_id", "slot_type_id", "starts_at", "ends_at", "position")
    )
    booked = rng.sample(slots, round(len(slots) * CHANGE_BOOKED_SHARE))  # every slot has one place
    db = DbValues()
    now = db.datetime(timezone.now())
    columns = (
        "clinic_id",
        "slot_id",
        "practitioner_id",
        "patient_id",
        "slot_type_id",
        "status",
        "starts_at",
        "ends_at",
        "source",
        "exclusive",  # one place: the practitioner's time is the patient's alone (the booking service's rule)
        "created_by_id",
        "created_at",
        "updated_at",
    )
    rows = [
        (
            clinic.pk,
            slot_id,
            practitioner_id,
            rng.choice(patients).pk,
            slot_type_id,
            AppointmentStatus.BOOKED.value,
            db.datetime(starts_at),
            db.datetime(ends_at),
            AppointmentSource.RECEPTION.value,
            True,
            built.actor.pk,
            now,
            now,
        )
        for slot_id, practitioner_id, slot_type_id, starts_at, ends_at, _ in booked
    ]
    with transaction.atomic():
        insert_rows(Appointment, columns, rows, db)
        booked_counts_set(clinic, {slot[0]: 1 for slot in booked})
    if connection.vendor == "postgresql":  # statistics, as autovacuum would leave them
        vacuum_analyze(Slot, Session, Appointment, Patient)

    # The change: two slots of the template, every other slot as it was. What it displaces is known from the places
    # booked above, not from the services measured.
    template_slots = TemplateSlot.objects.for_clinic(clinic).filter(template=built.template)
    template_slots.filter(position=RETYPED_POSITION).update(slot_type=telephone)
    template_slots.filter(position=BLANKED_POSITION).update(slot_type=None)
    changed = [slot for slot in booked if slot[5] in CHANGED_POSITIONS]
    displaced = Counter(
        DisplacedWhy.RETYPED.value if slot[5] == RETYPED_POSITION else DisplacedWhy.CLEARED.value for slot in changed
    )

    sessions = Session.objects.for_clinic(clinic).count()
    if (sessions, len(slots)) != (ROTA_SESSIONS, ROTA_SLOTS) or slots_miscounted(clinic) or not changed:
        raise RuntimeError(
            f"rota_change_preview: {sessions} sessions, {len(slots)} slots, {len(changed)} booked in the changed "
            f"slots, expected {ROTA_SESSIONS}, {ROTA_SLOTS} and some; or booked_count wrong"
        )
    checked()
    return ChangeState(
        built=built,
        membership=membership,
        telephone=telephone,
        appointments=len(rows),
        displaced=displaced,
        booked_changed=[slot[0] for slot in changed],
        fingerprint=book_fingerprint(clinic.pk),
    )


# --- The preview --------------------------------------------------------------------------------------------------


def change_preview(state: ChangeState, *, last_date: dt.date | None = None) -> ChangePreview:
    """The preview of the change over the whole year (or to ``last_date``), as the Apply page asks for it."""
    return template_apply_preview(
        clinic=state.built.clinic,
        membership=state.membership,
        template=state.built.template,
        first_date=ROTA_FIRST_DATE,
        last_date=last_date,
    )


def change_preview_check(state: ChangeState) -> None:
    """Every session changes; exactly the appointments booked in the two slots are displaced, for the right reason;
    the first PREVIEW_NAMED of them are named."""
    preview = change_preview(state)
    why = Counter(w for p in preview.sessions for _, w in p.replan.displaced)
    named = len(preview.displaced)
    if (
        len(preview.sessions) != ROTA_SESSIONS
        or preview.displaced_total != state.displaced_total
        or why != state.displaced
        or named != min(PREVIEW_NAMED, state.displaced_total)
        or {row.why for row in preview.displaced} - set(state.displaced)
    ):
        raise RuntimeError(
            f"rota_change_preview: {len(preview.sessions)} sessions changed, {preview.displaced_total} displaced "
            f"({dict(why)}), {named} named; expected {ROTA_SESSIONS}, {state.displaced_total} ({dict(state.displaced)})"
        )
    checked()


# --- The apply, and its undoing -----------------------------------------------------------------------------------


def change_apply(state: ChangeState) -> None:
    """The change applied to every session of the year: one transaction, committed (the commit is part of it)."""
    state.applied.append(
        template_apply(
            clinic=state.built.clinic,
            actor=state.built.actor,
            template=state.built.template,
            first_date=ROTA_FIRST_DATE,
        )
    )


def change_apply_check(state: ChangeState, applied: Applied) -> None:
    """What an apply wrote: every session changed; each booked slot of the two changed times retired with its
    appointment (which stays in it) and a worklist row each; on every session a free Telephone slot and a blank one
    where the two were (the booked ones new rows, the others changed in place)."""
    clinic = state.built.clinic
    total = state.displaced_total
    slots = Slot.objects.for_clinic(clinic)
    live = slots.filter(retired=False)
    found = (
        applied.sessions,
        applied.displaced,
        Displacement.objects.for_clinic(clinic).filter(change=applied.change).count(),
        slots.filter(retired=True, position__in=CHANGED_POSITIONS).count(),
        Appointment.objects.for_clinic(clinic).filter(slot__retired=True).count(),
        live.filter(slot_type=state.telephone, bookable=True, booked_count=0).count(),
        live.filter(slot_type=None, bookable=False, booked_count=0).count(),
    )
    expected = (ROTA_SESSIONS, total, total, total, total, ROTA_SESSIONS, ROTA_SESSIONS)
    if found != expected:
        raise RuntimeError(f"rota_change_preview's apply: {found}, expected {expected}")
    checked()


def change_apply_reset(state: ChangeState) -> None:
    """Untimed, before every apply: check the last apply, then undo it (the rows it added and the worklist
    gone, the two slots as the rota made them, back in the book), and prove the book is as set up.

    Undone, not rolled back: a timed apply inside a transaction the reset rolls back would run as a savepoint and
    never commit, where a user's apply commits (with its on-commit work)."""
    clinic = state.built.clinic
    if state.applied:
        change_apply_check(state, state.applied.pop())
    if book_fingerprint(clinic.pk) == state.fingerprint:
        checked()
        return
    slots = Slot.objects.for_clinic(clinic)
    with transaction.atomic():
        Displacement.objects.for_clinic(clinic).delete()
        RotaChange.objects.for_clinic(clinic).delete()
        AuditEvent.objects.for_clinic(clinic).filter(action=APPLY_AUDIT_ACTION).delete()
        # The rows the apply added (after each session's own positions), then the two times as the rota made them:
        # the retired ones still hold their appointments, which never moved.
        slots.filter(position__gte=ROTA_SLOTS_PER_SESSION).delete()
        slots.filter(position__in=CHANGED_POSITIONS).update(
            slot_type=state.built.slot_type, bookable=True, retired=False, capacity=1, booked_count=0, held_count=0
        )
        booked_counts_set(clinic, dict.fromkeys(state.booked_changed, 1))
    if connection.vendor == "postgresql":  # the dead rows of the apply and its undoing gone, as before the first
        vacuum_analyze(Slot, Appointment, Displacement, RotaChange)
    found = book_fingerprint(clinic.pk)
    if found != state.fingerprint:
        raise RuntimeError(f"rota_change_preview: the apply's undoing left {found}, expected {state.fingerprint}")
    checked()


# --- Figures ------------------------------------------------------------------------------------------------------


def change_figures(result: Result) -> Result:
    """The sizes; the preview of the first day alone (its query count must be the year's); and the apply, timed
    over at most APPLY_RUNS runs, each from the same book."""
    state = change_setup()
    first_day = ROTA_FIRST_DATE
    with CaptureQueriesContext(connection) as day:
        day_preview = change_preview(state, last_date=first_day)
    if len(day_preview.sessions) != ROTA_PRACTITIONERS or len(day) != result["queries"]:
        raise RuntimeError(
            f"rota_change_preview: the first day's preview made {len(day)} queries for {len(day_preview.sessions)} "
            f"sessions; the year's {result['queries']} for {ROTA_SESSIONS}"
        )
    checked()
    apply = sub_case(
        "apply",
        state,
        change_apply,
        result,
        reset=change_apply_reset,
        runs=min(int(result["runs"]), APPLY_RUNS),
    )
    return {
        "sessions": ROTA_SESSIONS,
        "slots": ROTA_SLOTS,
        "appointments": state.appointments,
        "displaced": state.displaced_total,
        "day_sessions": len(day_preview.sessions),
        "day_queries": len(day),
        **apply,
        "apply_runs": min(int(result["runs"]), APPLY_RUNS),
    }


register(
    Case(
        name="rota_change_preview",
        setup=change_setup,
        run=change_preview,
        check=change_preview_check,
        extras=change_figures,
        runs=9,
        warmup=1,
    )
)
