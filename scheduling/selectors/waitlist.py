"""Reads of the waitlist: the clinic's rules for offers, who is first for a freed place, how many wait for a slot,
the list page, the places an entry could take now, and a group's roster."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from patients.models import visible_patients
from scheduling.models import (
    Appointment,
    FreedPlace,
    Hold,
    SeriesScope,
    Session,
    SessionOut,
    Slot,
    WaitlistEntry,
    WaitlistKind,
    WaitlistOffer,
    WaitlistSettings,
    WaitlistState,
)

if TYPE_CHECKING:
    from clinic.models import Clinic, Membership
    from patients.models import Patient


def rules_for(clinic_id: int) -> WaitlistSettings:
    """The clinic's rules for offers (its row, or the defaults)."""
    return WaitlistSettings.objects.for_clinic(clinic_id).first() or WaitlistSettings(clinic_id=clinic_id)


def offer_expiry(rules: WaitlistSettings, starts_at: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """When an offer made now of a place starting at `starts_at` runs out: the clinic's hold time, shortened to end
    the lead time before the start; None when that leaves less than the shortest hold (too late to offer)."""
    latest = starts_at - dt.timedelta(minutes=rules.lead_minutes)
    expires = min(now + dt.timedelta(minutes=rules.hold_minutes), latest)
    shortest = dt.timedelta(minutes=min(rules.shortest_hold_minutes, rules.hold_minutes))
    if expires - now < shortest:
        return None
    return expires


def slot_match(slot: Slot) -> Q:
    """The entries a slot (with its session) answers: this slot; its group series (any occurrence, or from a date on
    or before its date) for its type; a practitioner (or anyone) and type (or any) whose weekdays and times take in
    the slot on its location's clock."""
    session = slot.session
    zone = ZoneInfo(session.time_zone)
    start, end = slot.starts_at.astimezone(zone), slot.ends_at.astimezone(zone)
    end_time = end.time() if end.date() == start.date() else dt.time(23, 59, 59)
    match = Q(kind=WaitlistKind.SLOT, slot_id=slot.pk)
    if session.allocation_id is not None and slot.slot_type_id is not None:
        match |= Q(kind=WaitlistKind.SERIES, allocation_id=session.allocation_id, slot_type_id=slot.slot_type_id) & (
            Q(scope=SeriesScope.ANY) | Q(from_date__lte=session.date)
        )
    who = Q(practitioner__isnull=True)
    if session.practitioner_id is not None:
        who |= Q(practitioner_id=session.practitioner_id)
    what = Q(slot_type__isnull=True)
    if slot.slot_type_id is not None:
        what |= Q(slot_type_id=slot.slot_type_id)
    match |= (
        Q(kind=WaitlistKind.PREFERENCE)
        & who
        & what
        & (Q(weekdays="") | Q(weekdays__contains=str(start.isoweekday())))
        & (Q(time_from__isnull=True) | Q(time_from__lte=start.time()))
        & (Q(time_until__isnull=True) | Q(time_until__gte=end_time))
    )
    return match


def _group_members(clinic: Clinic, session: Session) -> QuerySet[Appointment, dict[str, Any]]:
    group = Q(slot__session__allocation_id=session.allocation_id) if session.allocation_id else Q(slot__session=session)
    return Appointment.objects.for_clinic(clinic).live().filter(group).values("patient_id")


def first_in_line(clinic: Clinic, slot: Slot, *, members_only: bool) -> QuerySet[WaitlistEntry]:
    """The waiting entries a freed place in `slot` may go to, first first: matching, not archived, not booked in the
    slot already nor holding an offer of it, never offered this slot before; only patients already in the group when
    it is closed to new ones. One query, whatever the length of the list."""
    entries = (
        WaitlistEntry.objects.for_clinic(clinic)
        .filter(slot_match(slot), state=WaitlistState.WAITING, patient__is_archived=False)
        .exclude(patient_id__in=Appointment.objects.for_clinic(clinic).live().filter(slot=slot).values("patient_id"))
        .exclude(Exists(WaitlistOffer.objects.for_clinic(clinic).filter(entry=OuterRef("pk"), slot=slot)))
        # A patient holding an offer of this slot already (through another of their entries) waits for one place.
        .exclude(
            patient_id__in=WaitlistOffer.objects.for_clinic(clinic)
            .filter(slot=slot, hold__ended_at__isnull=True)
            .values("entry__patient_id")
        )
        .order_by("position", "id")
    )
    if members_only:
        entries = entries.filter(patient_id__in=_group_members(clinic, slot.session))
    return entries


def offers_waiting_for_morning(clinic: Clinic, now: dt.datetime) -> tuple[int, dt.datetime | None]:
    """Freed places waiting for quiet hours to end before they are offered: how many, and when the first goes."""
    pending = FreedPlace.objects.for_clinic(clinic).filter(due_at__gt=now)
    first = pending.order_by("due_at").values_list("due_at", flat=True).first()
    return (pending.values("slot_id").distinct().count() if first else 0), first


def waiting_for_slot(clinic: Clinic, slot: Slot) -> int:
    """How many wait for this slot (the tooltip's "Full · 3 waiting"): open entries it answers whose patient is not
    booked in it."""
    booked = Appointment.objects.for_clinic(clinic).live().filter(slot=slot).values("patient_id")
    return (
        WaitlistEntry.objects.for_clinic(clinic)
        .open()
        .filter(slot_match(slot))
        .exclude(patient_id__in=booked)
        .values("patient_id")
        .distinct()
        .count()
    )


def entries_list(
    *, clinic: Clinic, membership: Membership, state: str = "open", kind: str = "", practitioner_id: int | None = None
) -> QuerySet[WaitlistEntry]:
    """The list page's entries (the patients this member may see), in offer order, with everything a row shows and
    the live offer's hold: a fixed number of queries."""
    entries = (
        WaitlistEntry.objects.for_clinic(clinic)
        .filter(visible_patients(membership, through="patient"))
        .select_related(
            "patient",
            "slot__session__practitioner",
            "slot__slot_type",
            "allocation__template",
            "allocation__practitioner",
            "practitioner",
            "slot_type",
            "added_by",
        )
        .annotate(
            live_offer_expires=Hold.objects.for_clinic(clinic)
            .live()
            .filter(offer__entry=OuterRef("pk"))
            .values("expires_at")[:1],
            offers_made=Count("offers"),
        )
        .order_by("position", "id")
    )
    if state == "open":
        entries = entries.open()
    elif state in WaitlistState.values:
        entries = entries.filter(state=state)
    if kind in WaitlistKind.values:
        entries = entries.filter(kind=kind)
    if practitioner_id is not None:
        entries = entries.filter(
            Q(practitioner_id=practitioner_id)
            | Q(slot__session__practitioner_id=practitioner_id)
            | Q(allocation__practitioner_id=practitioner_id)
        )
    return entries


@dataclass(frozen=True)
class Candidate:
    """A free place an entry could be offered or booked into now."""

    slot: Slot
    free: int
    offer_until: dt.datetime | None  # None: too close to its start to offer (book it directly)


def candidates_for(clinic: Clinic, entry: WaitlistEntry, now: dt.datetime, limit: int = 8) -> list[Candidate]:
    """The next free, bookable places this entry answers (soonest first), for an offer or a booking by hand."""
    rules = rules_for(clinic.pk)
    slots = (
        Slot.objects.for_clinic(clinic)
        .filter(bookable=True, starts_at__gt=now, booked_count__lt=F("capacity"), session__out_state="")
        .select_related("session__practitioner", "session__location", "slot_type")
        .order_by("starts_at", "id")
    )
    if entry.kind == WaitlistKind.SLOT:
        slots = slots.filter(pk=entry.slot_id)
    elif entry.kind == WaitlistKind.SERIES:
        slots = slots.filter(session__allocation_id=entry.allocation_id, slot_type_id=entry.slot_type_id)
        if entry.scope == SeriesScope.FROM_DATE and entry.from_date:
            slots = slots.filter(session__date__gte=entry.from_date)
    else:
        if entry.practitioner_id:
            slots = slots.filter(session__practitioner_id=entry.practitioner_id)
        if entry.slot_type_id:
            slots = slots.filter(slot_type_id=entry.slot_type_id)
        slots = slots.filter(starts_at__lt=now + dt.timedelta(days=90))
    booked = Appointment.objects.for_clinic(clinic).live().filter(patient_id=entry.patient_id).values("slot_id")
    slots = slots.exclude(pk__in=booked)
    found: list[Candidate] = []
    for slot in slots[: limit * 20 if entry.kind == WaitlistKind.PREFERENCE else limit]:
        if entry.kind == WaitlistKind.PREFERENCE and not _preference_takes(entry, slot):
            continue
        found.append(Candidate(slot, slot.capacity - slot.booked_count, offer_expiry(rules, slot.starts_at, now)))
        if len(found) >= limit:
            break
    return found


def _preference_takes(entry: WaitlistEntry, slot: Slot) -> bool:
    """The preference rule in Python, for a slot already loaded (the same rule as slot_match)."""
    zone = ZoneInfo(slot.session.time_zone)
    start, end = slot.starts_at.astimezone(zone), slot.ends_at.astimezone(zone)
    end_time = end.time() if end.date() == start.date() else dt.time(23, 59, 59)
    if entry.weekday_numbers and start.isoweekday() not in entry.weekday_numbers:
        return False
    if entry.time_from is not None and start.time() < entry.time_from:
        return False
    return not (entry.time_until is not None and end_time > entry.time_until)


def group_began(clinic: Clinic, session: Session) -> dt.datetime:
    """When a session's group began: the first session of its rota allocation that was not cancelled (an ad-hoc
    session is its own group)."""
    if session.allocation_id is None:
        return session.starts_at
    first = (
        Session.objects.for_clinic(clinic)
        .filter(allocation_id=session.allocation_id)
        .exclude(out_state=SessionOut.CANCELLED)
        .order_by("starts_at")
        .values_list("starts_at", flat=True)
        .first()
    )
    return first or session.starts_at


def group_closed_to_new(clinic: Clinic, session: Session, now: dt.datetime) -> dt.datetime | None:
    """When the session's enforced closed group began, if it has (None: it takes new patients)."""
    if not (session.closed_session and session.closed_enforced):
        return None
    began = group_began(clinic, session)
    return began if began <= now else None


def in_group(clinic: Clinic, session: Session, patient_id: int) -> bool:
    """Whether the patient holds a place (any status but cancelled) in the session's group."""
    return _group_members(clinic, session).filter(patient_id=patient_id).exists()


ROSTER_COLUMNS = 12


@dataclass(frozen=True)
class RosterColumn:
    slot: Slot
    local_start: dt.datetime
    waiting: int | None
    begun: bool  # attendance is marked once a session has begun


@dataclass(frozen=True)
class RosterRow:
    patient_id: int
    label: str
    restricted: bool
    cells: list[Appointment | None]


@dataclass(frozen=True)
class Roster:
    """A group session's occurrences (its allocation's slots of the same type at the same local time) as columns, its
    patients as rows, each cell the patient's appointment that day."""

    slot: Slot
    columns: list[RosterColumn]
    rows: list[RosterRow]
    earlier: dt.date | None  # the first date of the previous page, if any
    later: dt.date | None
    total_occurrences: int
    closed_since: dt.datetime | None


def group_occurrences(clinic: Clinic, slot: Slot) -> list[Slot]:
    """Every occurrence of a slot's group: slots of the same type at the same time on its location's clock in the
    sessions of its rota allocation (an ad-hoc session's group is the slot alone), in date order, retired ones
    left out."""
    session = slot.session
    if session.allocation_id is None:
        return [slot]
    zone = ZoneInfo(session.time_zone)
    at = slot.starts_at.astimezone(zone).time()
    candidates = (
        Slot.objects.for_clinic(clinic)
        .filter(session__allocation_id=session.allocation_id, slot_type_id=slot.slot_type_id, retired=False)
        .select_related("session", "slot_type")
        .order_by("starts_at", "id")
    )
    return [s for s in candidates if s.starts_at.astimezone(ZoneInfo(s.session.time_zone)).time() == at]


def patient_label(clinic: Clinic, patient: Patient, sees_blocked: bool) -> str:
    """A patient as the waiting list and the roster name them (a blocked one is only "Restricted patient" to a
    member who may not see them)."""
    from patients.display import staff_label

    return staff_label(
        first_name=patient.first_name,
        last_name=patient.last_name,
        preferred_name=patient.preferred_name,
        internal_id=patient.internal_id,
        is_blocked=patient.is_blocked,
        may_see_blocked=sees_blocked,
        internal_ids_enabled=clinic.internal_ids_enabled,
    )


def group_roster(
    *, clinic: Clinic, membership: Membership, slot: Slot, now: dt.datetime, first: dt.date | None = None
) -> Roster:
    """One page of the roster (ROSTER_COLUMNS occurrences from `first`, else from a few before today): a fixed number
    of queries, whatever the number of patients."""
    from patients.models import may_see_blocked

    occurrences = group_occurrences(clinic, slot)
    if first is not None:
        start = next((i for i, s in enumerate(occurrences) if s.session.date >= first), max(len(occurrences) - 1, 0))
    else:
        upcoming = next((i for i, s in enumerate(occurrences) if s.ends_at > now), len(occurrences))
        start = max(0, upcoming - 3)
    page = occurrences[start : start + ROSTER_COLUMNS]
    columns = [
        RosterColumn(
            s,
            s.starts_at.astimezone(ZoneInfo(s.session.time_zone)),
            waiting_for_slot(clinic, s) if s.starts_at > now else None,  # nobody waits for a session that began
            s.starts_at <= now,
        )
        for s in page
    ]
    appointments = (
        Appointment.objects.for_clinic(clinic)
        .live()
        .filter(slot__in=[s.pk for s in page])
        .select_related("patient")
        .order_by("patient__last_name", "patient__first_name", "patient_id")
    )
    sees_blocked = may_see_blocked(membership)
    index = {s.pk: i for i, s in enumerate(page)}
    rows: dict[int, RosterRow] = {}
    for appointment in appointments:
        patient = appointment.patient
        if patient.pk not in rows:
            rows[patient.pk] = RosterRow(
                patient.pk,
                patient_label(clinic, patient, sees_blocked),
                patient.is_blocked and not sees_blocked,
                [None] * len(page),
            )
        rows[patient.pk].cells[index[appointment.slot_id]] = appointment
    ordered = sorted(rows.values(), key=lambda r: (r.restricted, r.label.lower()))
    return Roster(
        slot=slot,
        columns=columns,
        rows=ordered,
        earlier=occurrences[max(0, start - ROSTER_COLUMNS)].session.date if start > 0 else None,
        later=occurrences[start + ROSTER_COLUMNS].session.date if start + ROSTER_COLUMNS < len(occurrences) else None,
        total_occurrences=len(occurrences),
        closed_since=group_closed_to_new(clinic, slot.session, now),
    )


def roster_table(*, clinic: Clinic, membership: Membership, slot: Slot) -> list[list[str]]:
    """The whole roster as a CSV table: a row per patient, a column per occurrence, each cell the status."""
    from patients.models import may_see_blocked

    occurrences = group_occurrences(clinic, slot)
    index = {s.pk: i for i, s in enumerate(occurrences)}
    sees_blocked = may_see_blocked(membership)
    header = ["Patient"] + [
        f"{s.starts_at.astimezone(ZoneInfo(s.session.time_zone)):%Y-%m-%d %H:%M}" for s in occurrences
    ]
    rows: dict[int, list[str]] = {}
    for appointment in (
        Appointment.objects.for_clinic(clinic).live().filter(slot__in=list(index)).select_related("patient")
    ):
        patient = appointment.patient
        row = rows.setdefault(patient.pk, [patient_label(clinic, patient, sees_blocked)] + [""] * len(occurrences))
        row[1 + index[appointment.slot_id]] = appointment.get_status_display()
    body = sorted(rows.values(), key=lambda r: r[0].lower())
    places = ["Places booked"] + [
        f"{s.booked_count}/{s.capacity}" + (f" ({s.held_count} held)" if s.held_count else "") for s in occurrences
    ]
    return [header, *body, places]
