"""Reads of changes to the book after it is built: the slots and bookings of sessions as plain rows, what a change
would do (the preview: sessions slot by slot, the appointments displaced), the sessions a practitioner or location
has on dates, and the displaced patients' worklist with a proposed new place for each.

Every read here is a fixed number of queries, whatever the number of sessions: a year's rota is one read per kind of
row, and the arithmetic is scheduling.replan's, in memory."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from clinic.models import Practitioner
from patients.models import may_see_blocked
from scheduling.hours import local_day
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    DisplacedState,
    Displacement,
    Hold,
    Session,
    SessionOut,
    Slot,
)
from scheduling.replan import CurrentSlot, Fate, PlannedSlot, SessionReplan, planned_run, replan
from scheduling.selectors.booking import release_zones, released_by
from sessions_setup.models import ReleaseRule, SessionTemplate, SlotType, TemplateSlot

if TYPE_CHECKING:
    from clinic.models import Clinic, Location, Membership

# How many displaced appointments a preview names (the rest are counted), and how far ahead a proposal may be.
PREVIEW_NAMED = 200
PROPOSAL_DAYS = 42
PROPOSAL_CANDIDATES = 5000


class SessionInfo(NamedTuple):
    id: int
    public_id: UUID
    date: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime
    time_zone: str
    name: str
    description: str
    practitioner_id: int | None
    practitioner: str | None
    location: str
    out_state: str
    out_reason: str
    colour: str
    session_type: str
    open_session: bool
    travel_clinic: bool
    closed_session: bool
    closed_enforced: bool
    gp_connect_bookable: bool
    practitioner_role: str


SESSION_FIELDS = (
    "id",
    "public_id",
    "date",
    "starts_at",
    "ends_at",
    "time_zone",
    "name",
    "description",
    "practitioner_id",
    "practitioner__name",
    "location__name",
    "out_state",
    "out_reason",
    "colour",
    "session_type",
    "open_session",
    "travel_clinic",
    "closed_session",
    "closed_enforced",
    "gp_connect_bookable",
    "practitioner_role",
)


def session_infos(sessions: QuerySet[Session]) -> list[SessionInfo]:
    return [SessionInfo._make(row) for row in sessions.order_by("starts_at", "id").values_list(*SESSION_FIELDS)]


def _ids_by_slot(rows: QuerySet[Appointment] | QuerySet[Hold], session_ids: Sequence[int]) -> dict[int, list[int]]:
    """The rows' ids per slot (the sessions' slots that are not retired), oldest first: one query."""
    found: dict[int, list[int]] = defaultdict(list)
    for pk, slot_id in (
        rows.filter(slot__session__in=session_ids, slot__retired=False)
        .order_by("created_at", "id")
        .values_list("id", "slot_id")
    ):
        found[slot_id].append(pk)
    return found


def current_slots(*, clinic: Clinic, session_ids: Sequence[int]) -> dict[int, list[CurrentSlot]]:
    """Each session's slots as they are (not retired), with their live appointments in booking order and live holds:
    three queries."""
    if not session_ids:
        return {}
    appointments = _ids_by_slot(Appointment.objects.for_clinic(clinic).live(), session_ids)
    holds = _ids_by_slot(Hold.objects.for_clinic(clinic).live(), session_ids)
    found: dict[int, list[CurrentSlot]] = defaultdict(list)
    for pk, session_id, starts_at, ends_at, type_id, type_bookable, capacity in (
        Slot.objects.for_clinic(clinic)
        .filter(session__in=session_ids, retired=False)
        .order_by("starts_at", "position")
        .values_list("id", "session_id", "starts_at", "ends_at", "slot_type_id", "slot_type__bookable", "capacity")
    ):
        found[session_id].append(
            CurrentSlot(
                pk,
                starts_at,
                ends_at,
                type_id,
                bool(type_bookable),
                capacity,
                tuple(appointments.get(pk, ())),
                tuple(holds.get(pk, ())),
            )
        )
    return found


class ShapeSlot(NamedTuple):
    slot_type_id: int | None
    minutes: int
    bookable: bool
    capacity: int


def template_shape(*, clinic: Clinic, template: SessionTemplate) -> list[ShapeSlot]:
    """The template's slots in order as (type, minutes, bookable, capacity): one query."""
    return [
        ShapeSlot(type_id, minutes, bool(bookable), capacity or 1)
        for type_id, minutes, bookable, capacity in TemplateSlot.objects.for_clinic(clinic)
        .filter(template=template)
        .order_by("position")
        .values_list("slot_type_id", "length_minutes", "slot_type__bookable", "slot_type__capacity")
    ]


def planned_from_shape(starts_at: dt.datetime, shape: Sequence[ShapeSlot]) -> list[PlannedSlot]:
    return planned_run(starts_at, [(s.slot_type_id, s.minutes, s.bookable, s.capacity) for s in shape])


# --- What a change would do ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionPreview:
    session: SessionInfo
    replan: SessionReplan
    new_ends_at: dt.datetime
    fields_changed: tuple[str, ...] = ()  # session fields that follow the template (name, description, closed...)
    clash: str = ""  # the practitioner's other session the change would overlap, in words


class DisplacedRow(NamedTuple):
    appointment_id: int
    appointment_public_id: UUID
    patient: str  # "Restricted patient" where the member may not see who
    starts_at: dt.datetime
    ends_at: dt.datetime
    time_zone: str
    slot_type: str
    practitioner: str
    why: str


@dataclass
class ChangePreview:
    sessions: list[SessionPreview] = field(default_factory=list)  # the sessions that change
    displaced_total: int = 0
    displaced: list[DisplacedRow] = field(default_factory=list)  # the first PREVIEW_NAMED
    ended_holds: int = 0
    slot_types: Mapping[int, str] = field(default_factory=dict)

    @property
    def clashes(self) -> list[SessionPreview]:
        return [preview for preview in self.sessions if preview.clash]

    def groups(self, limit: int = 20) -> list[tuple[list[str], list[SessionPreview]]]:
        """Sessions that change alike, together: the changes in words (on the session's clock) and the sessions."""
        grouped: dict[tuple[str, ...], list[SessionPreview]] = {}
        for preview in self.sessions:
            grouped.setdefault(tuple(describe_changes(preview, self.slot_types)), []).append(preview)
        return [(list(lines), previews) for lines, previews in list(grouped.items())[:limit]]


def describe_changes(preview: SessionPreview, slot_types: Mapping[int, str]) -> list[str]:
    """The changes of one session, slot by slot, in words."""
    zone = ZoneInfo(preview.session.time_zone)

    def name(type_id: int | None) -> str:
        return slot_types.get(type_id, "?") if type_id is not None else "blank"

    def hhmm(moment: dt.datetime) -> str:
        return f"{moment.astimezone(zone):%H:%M}"

    lines = []
    for change in preview.replan.changed:
        before, after = change.before, change.after
        if change.fate == Fate.ADDED and after is not None:
            lines.append(f"{hhmm(after.starts_at)}–{hhmm(after.ends_at)} added: {name(after.slot_type_id)}")
        elif change.fate == Fate.REMOVED and before is not None:
            lines.append(f"{hhmm(before.starts_at)}–{hhmm(before.ends_at)} removed ({name(before.slot_type_id)})")
        elif before is not None and after is not None:
            parts = []
            if before.slot_type_id != after.slot_type_id:
                parts.append(f"{name(before.slot_type_id)} → {name(after.slot_type_id)}")
            if before.ends_at != after.ends_at:
                parts.append(f"ends {hhmm(before.ends_at)} → {hhmm(after.ends_at)}")
            if before.capacity != after.capacity:
                parts.append(f"places {before.capacity} → {after.capacity}")
            lines.append(f"{hhmm(before.starts_at)} " + ", ".join(parts or ["changed"]))
    if preview.new_ends_at != preview.session.ends_at:
        lines.append(f"session ends {hhmm(preview.session.ends_at)} → {hhmm(preview.new_ends_at)}")
    lines.extend(f"{label} follows the template" for label in preview.fields_changed)
    return lines


def slot_type_names(*, clinic: Clinic) -> dict[int, str]:
    return dict(SlotType.objects.for_clinic(clinic).values_list("id", "name"))


def clashes_of(
    *, clinic: Clinic, extended: Sequence[tuple[SessionInfo, dt.datetime]], exclude: Iterable[int] = ()
) -> dict[int, str]:
    """For sessions that would end later: the practitioner's other session each would then overlap, named (one
    query, none when nothing grows)."""
    grows = [(info, end) for info, end in extended if info.practitioner_id is not None and end > info.ends_at]
    if not grows:
        return {}
    skip = set(exclude)
    others = (
        Session.objects.for_clinic(clinic)
        .filter(
            practitioner__in={info.practitioner_id for info, _ in grows},
            starts_at__lt=max(end for _, end in grows),
            ends_at__gt=min(info.ends_at for info, _ in grows),
        )
        .exclude(out_state=SessionOut.CANCELLED)
        .order_by("starts_at")
        .values_list("id", "practitioner_id", "starts_at", "ends_at", "name", "location__name", "time_zone")
    )
    by_practitioner: dict[int, list[tuple]] = defaultdict(list)
    for row in others:
        by_practitioner[row[1]].append(row)
    found = {}
    for info, end in grows:
        for pk, _, start, stop, name, location, zone in by_practitioner.get(info.practitioner_id, ()):  # type: ignore[arg-type]
            if pk != info.id and pk not in skip and start < end and stop > info.ends_at:
                local = ZoneInfo(zone)
                found[info.id] = (
                    f"“{name}” {start.astimezone(local):%a %-d %b %Y %H:%M}–{stop.astimezone(local):%H:%M} "
                    f"at {location}"
                )
                break
    return found


def change_preview(
    *,
    clinic: Clinic,
    membership: Membership | None,
    infos: Sequence[SessionInfo],
    plans: Mapping[int, list[PlannedSlot]],
    field_changes: Mapping[int, tuple[str, ...]] | None = None,
    current: Mapping[int, list[CurrentSlot]] | None = None,
) -> ChangePreview:
    """What replacing each session's slots by its plan would do. A fixed number of queries: the slots and bookings
    (unless given), the slot types' names, the clashes, and the displaced appointments named."""
    field_changes = field_changes or {}
    if current is None:
        current = current_slots(clinic=clinic, session_ids=[info.id for info in infos])
    preview = ChangePreview(slot_types=slot_type_names(clinic=clinic))
    new_ends = {}
    for info in infos:
        planned = plans.get(info.id)
        if planned is None:
            continue
        session_replan = replan(current.get(info.id, []), planned)
        new_end = planned[-1].ends_at if planned else info.ends_at
        new_ends[info.id] = new_end
        if session_replan.changed or new_end != info.ends_at or field_changes.get(info.id):
            preview.sessions.append(SessionPreview(info, session_replan, new_end, field_changes.get(info.id, ())))
    clashes = clashes_of(clinic=clinic, extended=[(p.session, p.new_ends_at) for p in preview.sessions])
    if clashes:
        preview.sessions = [
            SessionPreview(p.session, p.replan, p.new_ends_at, p.fields_changed, clashes.get(p.session.id, ""))
            for p in preview.sessions
        ]
    displaced = [pair for p in preview.sessions for pair in p.replan.displaced]
    preview.displaced_total = len(displaced)
    preview.ended_holds = sum(len(p.replan.ended_holds) for p in preview.sessions)
    preview.displaced = displaced_rows(clinic=clinic, membership=membership, pairs=displaced[:PREVIEW_NAMED])
    return preview


RESTRICTED = "Restricted patient"


def patient_label(first: str, last: str, preferred: str, blocked: bool, visible: bool) -> str:
    if blocked and not visible:
        return RESTRICTED
    return f"{preferred or first} {last}".strip()


def displaced_rows(
    *, clinic: Clinic, membership: Membership | None, pairs: Sequence[tuple[int, str]]
) -> list[DisplacedRow]:
    """The appointments named (id, why), with the patient (a restricted one unnamed to a member who may not see
    them), time, type and practitioner: one query."""
    if not pairs:
        return []
    why = dict(pairs)
    sees_blocked = may_see_blocked(membership)
    rows = (
        Appointment.objects.for_clinic(clinic)
        .filter(pk__in=why)
        .order_by("starts_at", "id")
        .values_list(
            "id",
            "public_id",
            "patient__first_name",
            "patient__last_name",
            "patient__preferred_name",
            "patient__is_blocked",
            "starts_at",
            "ends_at",
            "slot__session__time_zone",
            "slot_type__name",
            "practitioner__name",
        )
    )
    return [
        DisplacedRow(
            pk,
            public_id,
            patient_label(first, last, preferred, blocked, sees_blocked),
            starts_at,
            ends_at,
            zone,
            type_name or "",
            practitioner or "",
            why[pk],
        )
        for pk, public_id, first, last, preferred, blocked, starts_at, ends_at, zone, type_name, practitioner in rows
    ]


# --- Which sessions ---------------------------------------------------------------------------------------------


def template_sessions(
    *,
    clinic: Clinic,
    template: SessionTemplate,
    first_date: dt.date,
    last_date: dt.date | None = None,
    allocations: Sequence[int] = (),
) -> QuerySet[Session]:
    """The template's allocated sessions from a date (to a date, of chosen allocations); cancelled ones are left be."""
    sessions = (
        Session.objects.for_clinic(clinic)
        .filter(template=template, allocation__isnull=False, date__gte=first_date)
        .exclude(out_state=SessionOut.CANCELLED)
    )
    if last_date is not None:
        sessions = sessions.filter(date__lte=last_date)
    if allocations:
        sessions = sessions.filter(allocation__in=allocations)
    return sessions


def sessions_between(
    *,
    clinic: Clinic,
    practitioner: Practitioner | None,
    location: Location | None,
    first_date: dt.date,
    last_date: dt.date,
) -> QuerySet[Session]:
    """A practitioner's (or a location's) sessions on local dates first to last."""
    sessions = Session.objects.for_clinic(clinic).filter(date__gte=first_date, date__lte=last_date)
    if practitioner is not None:
        sessions = sessions.filter(practitioner=practitioner)
    if location is not None:
        sessions = sessions.filter(location=location)
    return sessions


def live_appointments_of(*, clinic: Clinic, session_ids: Sequence[int]) -> list[int]:
    """The live appointments in the sessions' slots (retired ones included), in time order: one query."""
    return list(
        Appointment.objects.for_clinic(clinic)
        .live()
        .filter(slot__session__in=session_ids)
        .order_by("starts_at", "id")
        .values_list("id", flat=True)
    )


# --- The worklist -------------------------------------------------------------------------------------------------


class WorkRow(NamedTuple):
    id: int
    public_id: UUID
    state: str
    why: str
    note: str
    handled_at: dt.datetime | None
    handled_by: str
    change_summary: str
    change_at: dt.datetime
    appointment_id: int
    appointment_public_id: UUID
    appointment_status: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    time_zone: str
    patient: str
    slot_type_id: int | None
    slot_type: str
    practitioner_id: int | None
    practitioner: str
    practitioner_role: str
    location_id: int
    location: str
    new_starts_at: dt.datetime | None
    new_practitioner: str

    @property
    def waiting(self) -> bool:
        return self.state in (DisplacedState.OPEN, DisplacedState.TO_CONTACT)


def worklist(
    *, clinic: Clinic, membership: Membership | None, handled_since: dt.datetime | None = None
) -> list[WorkRow]:
    """The displaced appointments still to deal with, and those dealt with since a moment (who did what): one
    query. A restricted patient is unnamed to a member who may not see them."""
    shown = Q(state__in=(DisplacedState.OPEN, DisplacedState.TO_CONTACT))
    if handled_since is not None:
        shown |= Q(handled_at__gte=handled_since)
    sees_blocked = may_see_blocked(membership)
    rows = []
    for row in (
        Displacement.objects.for_clinic(clinic)
        .filter(shown)
        .order_by("appointment__starts_at", "id")
        .values_list(
            "id",
            "public_id",
            "state",
            "why",
            "note",
            "handled_at",
            "handled_by__first_name",
            "handled_by__last_name",
            "handled_by__username",
            "change__summary",
            "change__created_at",
            "appointment_id",
            "appointment__public_id",
            "appointment__status",
            "appointment__starts_at",
            "appointment__ends_at",
            "appointment__slot__session__time_zone",
            "appointment__patient__first_name",
            "appointment__patient__last_name",
            "appointment__patient__preferred_name",
            "appointment__patient__is_blocked",
            "appointment__slot_type_id",
            "appointment__slot_type__name",
            "appointment__practitioner_id",
            "appointment__practitioner__name",
            "appointment__practitioner__role",
            "appointment__slot__session__location_id",
            "appointment__slot__session__location__name",
            "new_appointment__starts_at",
            "new_appointment__practitioner__name",
        )
    ):
        (pk, public_id, state, why, note, handled_at, by_first, by_last, by_user, summary, change_at, appointment_id,
         appointment_public_id, status, starts_at, ends_at, zone, first, last, preferred, blocked, type_id, type_name,
         practitioner_id, practitioner, role, location_id, location, new_start, new_practitioner) = row  # fmt: skip
        by = f"{by_first} {by_last}".strip() or (by_user or "")
        rows.append(
            WorkRow(
                pk,
                public_id,
                state,
                why,
                note,
                handled_at,
                by,
                summary,
                change_at,
                appointment_id,
                appointment_public_id,
                status,
                starts_at,
                ends_at,
                zone,
                patient_label(first, last, preferred, blocked, sees_blocked),
                type_id,
                type_name or "",
                practitioner_id,
                practitioner or "",
                role or "",
                location_id,
                location,
                new_start,
                new_practitioner or "",
            )  # fmt: skip
        )
    return rows


class Candidate(NamedTuple):
    slot_id: int
    slot_public_id: UUID
    starts_at: dt.datetime
    ends_at: dt.datetime
    slot_type_id: int
    practitioner_id: int
    practitioner: str
    role: str
    location_id: int
    time_zone: str
    free: int


class Proposal(NamedTuple):
    slot_id: int
    slot_public_id: UUID
    starts_at: dt.datetime
    time_zone: str
    practitioner: str
    same_practitioner: bool


@dataclass(frozen=True)
class Wanted:
    """What a displaced appointment needs: a place of this type, from this moment, with this practitioner or another
    of the same role at the same location."""

    key: int
    slot_type_id: int
    practitioner_id: int | None
    role: str
    location_id: int
    earliest: dt.datetime
    avoid_slots: frozenset[int] = frozenset()


def wanted_from(row: WorkRow, now: dt.datetime) -> Wanted | None:
    """A displaced appointment looks for a place from the start of its own day (on its session's clock), never
    before now."""
    if row.slot_type_id is None or row.appointment_status != AppointmentStatus.BOOKED:
        return None
    day_start = local_day(row.starts_at.astimezone(ZoneInfo(row.time_zone)).date(), ZoneInfo(row.time_zone))[0]
    return Wanted(
        row.id, row.slot_type_id, row.practitioner_id, row.practitioner_role, row.location_id, max(now, day_start)
    )


def rebook_candidates(*, clinic: Clinic, wanted: Sequence[Wanted], now: dt.datetime) -> list[Candidate]:
    """Free, bookable places of the wanted types from the earliest wanted moment to PROPOSAL_DAYS past the latest,
    with the wanted practitioners or others of their roles at their locations, honouring release rules (a
    book-on-the-day slot is proposed only on its day): three queries, soonest first."""
    if not wanted:
        return []
    type_ids = {w.slot_type_id for w in wanted}
    kinds = list(
        SlotType.objects.for_clinic(clinic)
        .filter(pk__in=type_ids, bookable=True)
        .only("pk", "release_rule", "release_days_before")
    )
    released = Q()
    zones = release_zones(clinic=clinic) if any(k.release_rule != ReleaseRule.ANY_TIME for k in kinds) else []
    for kind in kinds:
        if kind.release_rule == ReleaseRule.ANY_TIME:
            released |= Q(slot_type=kind.pk)
        else:
            days = 0 if kind.release_rule == ReleaseRule.ON_THE_DAY else kind.release_days_before or 0
            released |= Q(slot_type=kind.pk) & released_by(now=now, zones=zones, days_ahead=days)
    if not released:
        return []
    who = Q(session__practitioner__in={w.practitioner_id for w in wanted if w.practitioner_id is not None})
    for role, location in {(w.role, w.location_id) for w in wanted if w.role}:
        who |= Q(session__practitioner__role=role, session__location=location)
    return [
        Candidate(*row)
        for row in Slot.objects.for_clinic(clinic)
        .filter(
            released,
            who,
            bookable=True,
            booked_count__lt=F("capacity"),
            session__practitioner__is_active=True,
            starts_at__gte=max(min(w.earliest for w in wanted), now),
            starts_at__lt=max(w.earliest for w in wanted) + dt.timedelta(days=PROPOSAL_DAYS),
        )
        .annotate(free=F("capacity") - F("booked_count"))
        .order_by("starts_at", "id")
        .values_list(
            "id",
            "public_id",
            "starts_at",
            "ends_at",
            "slot_type_id",
            "session__practitioner_id",
            "session__practitioner__name",
            "session__practitioner__role",
            "session__location_id",
            "session__time_zone",
            "free",
        )[:PROPOSAL_CANDIDATES]
    ]


def proposals_for(wanted: Sequence[Wanted], candidates: Sequence[Candidate]) -> dict[int, Proposal]:
    """A different place for each: the first free place of the same type with the same practitioner, else with any
    practitioner of the same role at the same location; places are shared out in order, so two rows are never
    proposed one single place. Rows with none are left out."""
    left = {c.slot_id: c.free for c in candidates}
    by_type: dict[int, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        by_type[candidate.slot_type_id].append(candidate)
    proposals: dict[int, Proposal] = {}
    for want in wanted:
        kind = by_type.get(want.slot_type_id, [])
        chosen = _first_fit(want, kind, left, same=True) or _first_fit(want, kind, left, same=False)
        if chosen is None:
            continue
        left[chosen.slot_id] -= 1
        proposals[want.key] = Proposal(
            chosen.slot_id,
            chosen.slot_public_id,
            chosen.starts_at,
            chosen.time_zone,
            chosen.practitioner,
            chosen.practitioner_id == want.practitioner_id,
        )
    return proposals


def _first_fit(want: Wanted, candidates: Sequence[Candidate], left: dict[int, int], *, same: bool) -> Candidate | None:
    for c in candidates:
        if c.starts_at < want.earliest or c.slot_type_id != want.slot_type_id or left[c.slot_id] <= 0:
            continue
        if c.slot_id in want.avoid_slots:
            continue
        if same:
            if c.practitioner_id == want.practitioner_id:
                return c
        elif c.role == want.role and c.location_id == want.location_id and c.practitioner_id != want.practitioner_id:
            return c
    return None


def worklist_proposals(
    *, clinic: Clinic, rows: Sequence[WorkRow], now: dt.datetime | None = None
) -> dict[int, Proposal]:
    """A proposed new place for each displaced appointment still to rebook (keyed by the row's id)."""
    now = now or timezone.now()
    wanted = [w for row in rows if row.waiting and (w := wanted_from(row, now)) is not None]
    return proposals_for(wanted, rebook_candidates(clinic=clinic, wanted=wanted, now=now))


def waiting_count(*, clinic: Clinic) -> int:
    return Displacement.objects.for_clinic(clinic).waiting().count()


def practitioners_of(*, clinic: Clinic) -> QuerySet[Practitioner]:
    return Practitioner.objects.for_clinic(clinic).filter(is_active=True).order_by("name")


def session_slots(*, clinic: Clinic, session: Session) -> list[Slot]:
    """A session's slots as they are (not retired), with their types, in time order: one query."""
    return list(
        Slot.objects.for_clinic(clinic)
        .filter(session=session, retired=False)
        .select_related("slot_type")
        .order_by("starts_at", "position")
    )
