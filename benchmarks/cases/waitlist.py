"""Waitlists: a cancellation in a full group with people waiting across many rules, from the cancel's commit to the
offer queued (``scheduling.services.waitlist.freed_offer``: the slot locked, the first eligible entry found, the
hold taken, the WaitlistOffer and its Message rows recorded, in one transaction).

The cancel (``appointment_cancel``) runs untimed in the reset, before every run: it commits the cancelled
appointment with its FreedPlace row, and nudges ``scheduling.tasks.waitlist_offer(freed_ids)`` after commit. Here
the nudges are held as a broker would hold them (recorded, not run: ``nudges_held``): in the benchmarks' embedded
default a nudge runs its task in this process at once, which would put the offer run inside the cancel and the
sending of the offer's messages inside the offer run. The timed run is then what the worker's task does with the
ids the cancel nudged, up to the offer's commit: "the offer queued" (its messages recorded, their send nudged).

Sizes: FULL (200 waiting across 50 rules: the figures of results.json) and TINY (``--size tiny``), chosen by the
harness. Each size also has a short list (20 waiting at FULL) in a clinic of its own, built the same way: the offer
must take as many queries there as on the long list."""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db import connection, models, transaction
from django.utils import timezone

from benchmarks.cases.common import (
    appointment_in,
    booked_counts_set,
    clinics_clear_plain,
    register,
    sub_case,
    vacuum_analyze,
)
from benchmarks.harness import Case, Result, checked, count_queries, sized
from clinic import nudges
from clinic.models import AuditEvent, Clinic, Location, Membership, Practitioner, PractitionerRole, Role
from notifications import tasks as notification_tasks
from notifications.models import Channel, Kind, Message, NotificationSettings, Status
from patients.identifiers import name_key
from patients.models import InternalIdCounter, Patient, format_internal_id
from scheduling import tasks
from scheduling.models import (
    Allocation,
    Appointment,
    AppointmentStatus,
    FreedPlace,
    Hold,
    HoldKind,
    HoldOutcome,
    SeriesScope,
    Slot,
    WaitlistEntry,
    WaitlistKind,
    WaitlistOffer,
    WaitlistState,
)
from scheduling.services.booking import appointment_cancel
from scheduling.services.rota import AllocationRequest, allocation_create
from scheduling.services.waitlist import freed_offer
from sessions_setup.models import SessionTemplate, SlotKind, SlotType, TemplateSlot

WAITLIST_SLUG = "bench-waitlist"  # also the prefix an earlier run's clinics are cleared by
WAITLIST_RECEPTION = "bench-waitlist-reception@example.invalid"
WAITLIST_SEED = 20_270_310
WAITLIST_TIME_ZONE = "Europe/London"
GROUP_CAPACITY = 10
GROUP_START = dt.time(10)  # on Wednesdays, an hour: 10:00-11:00 on the location's clock
GROUP_MINUTES = 60
GROUP_WEEKDAY = 3  # ISO: Wednesday
GROUP_WEEKS = 4  # the group series; the tested slot is the third week's
TESTED_WEEK = 2
LEAD_DAYS = 28  # the first week at least this far ahead of today: offers are never too near the start
PRACTITIONERS = 6
CANCEL_REASON = "Cannot come"


@dataclass(frozen=True)
class ListSize:
    waiting: int  # open entries (all waiting but one, whose offer of another place is out)
    rules: int  # distinct things waited for
    matching: int  # of the rules, those the tested slot answers
    first_at: int  # the position of the first entry the freed place may go to


@dataclass(frozen=True)
class WaitlistSizes:
    long: ListSize  # the figures
    short: ListSize  # the same offer on a short list: as many queries


FULL = WaitlistSizes(long=ListSize(200, 50, 8, 150), short=ListSize(20, 5, 2, 15))
TINY = WaitlistSizes(long=ListSize(20, 5, 2, 15), short=ListSize(10, 4, 2, 7))
SIZE = sized(FULL, TINY)

# Entries before the first eligible one that a matching rule would reach, each left out for its own reason.
TRAPS = ("archived", "booked in the slot", "offered this slot before", "offered another place")


# --- Nudges held, as a broker holds them ---------------------------------------------------------------------------


@contextmanager
def nudges_held() -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """The nudges queued inside (each at its transaction's commit), recorded as (task name, args) and not run: what
    a broker would hand a worker later. Without this the embedded default runs each task here at once."""
    queued: list[tuple[str, tuple[Any, ...]]] = []

    def publish(task: Any, args: tuple[Any, ...], *rest: Any, **options: Any) -> None:
        queued.append((task.name, args))

    with mock.patch.object(nudges, "_publish", publish):
        yield queued


def held_args(queued: Sequence[tuple[str, tuple[Any, ...]]], task: Any) -> list[int]:
    """The ids the held nudges of ``task`` carry (each nudge's first argument, a list of ids)."""
    return [pk for name, args in queued if name == task.name for pk in args[0]]


# --- The rules -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What an entry waits for: the WaitlistEntry columns of its kind (the practitioner and the type by their
    index and key in the clinic; the slot, allocation and from_date by name), and whether the tested slot answers
    it (by construction)."""

    kind: str
    matches: bool
    practitioner: int | None = None
    slot_type: str | None = None
    weekdays: str = ""
    time_from: dt.time | None = None
    time_until: dt.time | None = None
    slot: str = ""  # "tested", or "week1" etc. of the tested group, or "other" (another practitioner's group)
    allocation: str = ""  # "tested" or "other"
    scope: str = ""
    from_week: int | None = None  # the from_date: the group's date in this week


T = dt.time
WHO_MATCH: tuple[int | None, ...] = (0, None)  # the tested group's practitioner, or anyone
WHO_OTHER = (1, 2, 3, 4, 5)
WHAT_MATCH: tuple[str | None, ...] = ("group", None)
WHAT_OTHER = ("routine", "telephone")
DAYS_MATCH = ("", "3", "1,3,5", "2,3", "3,4")
DAYS_OTHER = ("1", "2,4", "4,5", "6,7", "1,2,4,5")
WINDOWS_MATCH: tuple[tuple[dt.time | None, dt.time | None], ...] = (
    (None, None),
    (T(9), T(12)),
    (T(10), T(11)),  # exactly the slot
    (None, T(11)),
    (T(10), None),
    (T(7), T(13)),
)
WINDOWS_OTHER: tuple[tuple[dt.time | None, dt.time | None], ...] = (
    (T(10, 30), T(12)),  # starts too early for it
    (T(8), T(10, 30)),  # ends too late for it
    (T(13), T(17)),
    (T(11), None),
    (None, T(10, 45)),
)


def preferences(rng: random.Random, *, matching: bool) -> Iterator[Rule]:
    """Distinct preference rules, endlessly: every part answering the tested slot, or exactly one part not."""
    seen: set[Rule] = set()
    while True:
        who, what = rng.choice(WHO_MATCH), rng.choice(WHAT_MATCH)
        days, window = rng.choice(DAYS_MATCH), rng.choice(WINDOWS_MATCH)
        if not matching:
            spoiled = rng.randrange(4)
            who = rng.choice(WHO_OTHER) if spoiled == 0 else who
            what = rng.choice(WHAT_OTHER) if spoiled == 1 else what
            days = rng.choice(DAYS_OTHER) if spoiled == 2 else days
            window = rng.choice(WINDOWS_OTHER) if spoiled == 3 else window
        if who is None and what is None:
            continue  # reception must choose a practitioner, a type, or both
        rule = Rule(WaitlistKind.PREFERENCE, matching, who, what, days, *window)
        if rule not in seen:
            seen.add(rule)
            yield rule


def rules_made(size: ListSize, rng: random.Random) -> tuple[list[Rule], list[Rule]]:
    """``size.matching`` rules the tested slot answers and the rest not: mostly preferences, some slots and group
    series (the tested one, in any occurrence or from an earlier date; others, or from a later date)."""
    yes, no = preferences(rng, matching=True), preferences(rng, matching=False)
    series_any = Rule(WaitlistKind.SERIES, True, slot_type="group", allocation="tested", scope=SeriesScope.ANY)
    matching = [
        next(yes),
        series_any,
        Rule(WaitlistKind.SLOT, True, slot="tested"),
        Rule(WaitlistKind.SERIES, True, slot_type="group", allocation="tested", scope="from_date", from_week=0),
    ]
    other = [
        next(no),
        Rule(WaitlistKind.SLOT, False, slot="week1"),
        next(no),
        Rule(WaitlistKind.SERIES, False, slot_type="group", allocation="tested", scope="from_date", from_week=3),
        Rule(WaitlistKind.SERIES, False, slot_type="group", allocation="other", scope=SeriesScope.ANY),
        Rule(WaitlistKind.SLOT, False, slot="other"),
        Rule(WaitlistKind.SLOT, False, slot="week4"),
    ]
    matching += [next(yes) for _ in range(size.matching - len(matching))]
    other += [next(no) for _ in range(size.rules - size.matching - len(other))]
    return matching[: size.matching], other[: size.rules - size.matching]


def entry_rules(size: ListSize, rng: random.Random) -> tuple[list[Rule], list[Rule], dict[int, str]]:
    """The rule of each position (1 to ``size.waiting``) and the traps' positions: before ``first_at`` only rules
    the slot does not answer (each of them used) and the traps (a matching rule, each left out for its reason); at
    ``first_at`` a matching rule; after it, every matching rule and a random mix."""
    matching, other = rules_made(size, rng)
    traps = {size.first_at * (i + 1) // (len(TRAPS) + 1): trap for i, trap in enumerate(TRAPS)}
    if len(traps) != len(TRAPS) or size.first_at - 1 - len(TRAPS) < 1:
        raise RuntimeError(f"waitlist_offer: no room for the traps before position {size.first_at}")
    rng.shuffle(other)
    dealt = iter(other * size.waiting)
    before = [rng.choice(matching) if position in traps else next(dealt) for position in range(1, size.first_at)]
    after = matching + [rng.choice(matching + other) for _ in range(size.waiting - size.first_at - len(matching))]
    if len(after) != size.waiting - size.first_at:
        raise RuntimeError(f"waitlist_offer: {size.waiting} waiting leave no room for the {len(matching)} rules")
    rng.shuffle(after)
    return [*before, rng.choice(matching), *after], matching + other, traps


# --- The clinic ----------------------------------------------------------------------------------------------------


@dataclass
class WaitlistClinic:
    """One clinic's full group, its list, and the appointment each run's reset cancels."""

    size: ListSize
    clinic: Clinic
    actor: User
    slot: Slot  # the tested group's third week: full, then one place freed
    appointment: Appointment  # the member whose cancellation frees it
    first: int  # the entry the freed place must go to (its pk), as built
    rules: int  # distinct rules among the entries
    kept_offers: frozenset[int]  # the offers of the set-up (history, and one out elsewhere)
    kept_offered: frozenset[int]  # the entry whose offer of another place is out
    fingerprint: tuple[Any, ...] = ()
    freed_ids: list[int] = field(default_factory=list)  # what the last cancel nudged
    queued: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)  # the last offer run's nudges
    made: int = -1  # offers the last offer run made


def group_dates(today: dt.date) -> list[dt.date]:
    first = today + dt.timedelta(days=LEAD_DAYS)
    first += dt.timedelta(days=(GROUP_WEEKDAY - first.isoweekday()) % 7)
    return [first + dt.timedelta(weeks=week) for week in range(GROUP_WEEKS)]


def patients_made(clinic: Clinic, count: int, *, contact: bool, start: int) -> list[Patient]:
    """``count`` patients, numbered from ``start`` (with an email and a mobile when ``contact``)."""
    rows = []
    for number in range(start, start + count):
        first_name, last_name = f"Wait{number:03}", "Waiting" if contact else "Member"
        rows.append(
            Patient(
                clinic=clinic,
                internal_id=format_internal_id(number),
                first_name=first_name,
                last_name=last_name,
                date_of_birth=dt.date(1960, 1, 1) + dt.timedelta(days=97 * number),
                email=f"wait{number:03}@example.invalid" if contact else "",
                mobile_phone=f"07700 900{number:03}" if contact else "",
                last_name_key=name_key(last_name),
                first_name_key=name_key(first_name),
            )
        )
    made = Patient.objects.bulk_create(rows)
    return list(Patient.objects.for_clinic(clinic).filter(pk__in=[p.pk for p in made]).order_by("id"))


def waitlist_clinic(slug: str, size: ListSize, actor: User) -> WaitlistClinic:
    """A clinic (quiet hours off) with two practitioners' weekly groups of 10 for four weeks; the third week of the
    first one full; ``size.waiting`` entries on the list (plain rows), and what the traps need."""
    rng = random.Random(f"{WAITLIST_SEED}-{slug}")
    clinic = Clinic.objects.create(name=f"Benchmark {slug}", slug=slug, time_zone=WAITLIST_TIME_ZONE)
    Membership.objects.create(clinic=clinic, user=actor, role=Role.RECEPTION, perm_manage_appointments=True)
    if NotificationSettings.objects.for_clinic(clinic).update(quiet_from=dt.time(0), quiet_until=dt.time(0)) != 1:
        raise RuntimeError("waitlist_offer: the clinic has no notification settings to turn quiet hours off in")
    location = Location.objects.create(
        clinic=clinic, name="Main surgery", kind=Location.Kind.MAIN, time_zone=WAITLIST_TIME_ZONE
    )
    types = {
        key: SlotType.objects.create(
            clinic=clinic, name=name, kind=kind, capacity=capacity, default_length_minutes=minutes, bookable=True
        )
        for key, name, kind, capacity, minutes in (
            ("group", "Group education", SlotKind.FACE_TO_FACE, GROUP_CAPACITY, GROUP_MINUTES),
            ("routine", "Routine", SlotKind.FACE_TO_FACE, 1, 10),
            ("telephone", "Telephone", SlotKind.TELEPHONE, 1, 10),
        )
    }
    practitioners = [
        Practitioner.objects.create(
            clinic=clinic, name=f"Dr Waitlist {i:02}", role=PractitionerRole.GP, default_location=location
        )
        for i in range(PRACTITIONERS)
    ]
    template = SessionTemplate.objects.create(clinic=clinic, name="Group", colour="purple")
    TemplateSlot.objects.create(
        clinic=clinic, template=template, position=0, slot_type=types["group"], length_minutes=GROUP_MINUTES
    )
    dates = group_dates(timezone.now().astimezone(ZoneInfo(WAITLIST_TIME_ZONE)).date())
    allocations: dict[str, Allocation] = {}
    for key, practitioner in (("tested", practitioners[0]), ("other", practitioners[1])):
        request = AllocationRequest(
            template, practitioner, location, GROUP_START, dates[0], dates[-1], (GROUP_WEEKDAY,), every_weeks=1
        )
        allocations[key] = allocation_create(clinic=clinic, actor=None, request=request)
    group_slots = Slot.objects.for_clinic(clinic).select_related("session").order_by("starts_at", "id")
    weeks = list(group_slots.filter(session__allocation=allocations["tested"]))
    slots = {f"week{week + 1}": slot for week, slot in enumerate(weeks)}
    slots |= {"tested": weeks[TESTED_WEEK], "other": group_slots.filter(session__allocation=allocations["other"])[0]}
    tested = slots["tested"]

    members = patients_made(clinic, GROUP_CAPACITY, contact=False, start=1)
    waiters = patients_made(clinic, size.waiting - 1, contact=True, start=GROUP_CAPACITY + 1)
    InternalIdCounter.objects.create(clinic=clinic, last_number=GROUP_CAPACITY + size.waiting - 1)
    row = (tested.pk, tested.session.practitioner_id, tested.slot_type_id, tested.capacity)
    booked = [
        appointment_in(clinic, (*row, tested.starts_at, tested.ends_at), patient, AppointmentStatus.BOOKED, actor)
        for patient in members
    ]
    Appointment.objects.bulk_create(booked)
    booked_counts_set(clinic, {tested.pk: GROUP_CAPACITY})

    by_position, rules, traps = entry_rules(size, rng)
    waiting = iter(waiters)
    entries = []
    for position, rule in enumerate(by_position, start=1):
        trap = traps.get(position)
        patient = members[1] if trap == "booked in the slot" else next(waiting)
        entries.append(
            WaitlistEntry(
                clinic=clinic,
                patient=patient,
                kind=rule.kind,
                slot=slots[rule.slot] if rule.slot else None,
                allocation=allocations[rule.allocation] if rule.allocation else None,
                scope=rule.scope,
                from_date=None if rule.from_week is None else dates[rule.from_week],
                practitioner=None if rule.practitioner is None else practitioners[rule.practitioner],
                slot_type=None if rule.slot_type is None else types[rule.slot_type],
                weekdays=rule.weekdays,
                time_from=rule.time_from,
                time_until=rule.time_until,
                position=position,
                state=WaitlistState.OFFERED if trap == "offered another place" else WaitlistState.WAITING,
                added_by=actor,
            )
        )
    WaitlistEntry.objects.bulk_create(entries)
    entry_at = dict(WaitlistEntry.objects.for_clinic(clinic).values_list("position", "pk"))
    trap_entry = {trap: entry_at[position] for position, trap in traps.items()}
    Patient.objects.for_clinic(clinic).filter(waitlist_entries=trap_entry["archived"]).update(is_archived=True)
    # Offered this slot before, and let it go (its hold ended, the entry waiting again); offered week 1's place
    # now (a live hold there, counted in its slot).
    now = timezone.now()
    declined = Hold.objects.create(
        clinic=clinic,
        slot=tested,
        kind=HoldKind.WAITLIST_OFFER,
        expires_at=now - dt.timedelta(hours=1),
        ended_at=now - dt.timedelta(hours=2),
        outcome=HoldOutcome.DECLINED,
    )
    elsewhere = Hold.objects.create(
        clinic=clinic, slot=slots["week1"], kind=HoldKind.WAITLIST_OFFER, expires_at=slots["week1"].starts_at
    )
    Slot.objects.for_clinic(clinic).filter(pk=slots["week1"].pk).update(booked_count=1, held_count=1)
    kept = [
        WaitlistOffer.objects.create(
            clinic=clinic, entry_id=trap_entry["offered this slot before"], slot=tested, hold=declined
        ),
        WaitlistOffer.objects.create(
            clinic=clinic, entry_id=trap_entry["offered another place"], slot=slots["week1"], hold=elsewhere
        ),
    ]
    AuditEvent.objects.for_clinic(clinic).delete()  # the rota's: each run's undoing deletes the clinic's
    built = WaitlistClinic(
        size=size,
        clinic=clinic,
        actor=actor,
        slot=tested,
        appointment=Appointment.objects.for_clinic(clinic).get(slot=tested, patient=members[0]),
        first=entry_at[size.first_at],
        rules=len({entry_rule_key(e) for e in WaitlistEntry.objects.for_clinic(clinic)}),
        kept_offers=frozenset(offer.pk for offer in kept),
        kept_offered=frozenset([trap_entry["offered another place"]]),
    )
    built.fingerprint = waitlist_fingerprint(built)
    expected = first_eligible(built)
    if (
        expected != built.first
        or built.rules != size.rules
        or WaitlistEntry.objects.for_clinic(clinic).open().count() != size.waiting
        or sum(rule.matches for rule in rules) != size.matching
    ):
        raise RuntimeError(
            f"waitlist_offer ({slug}): first eligible entry {expected}, built {built.first}; {built.rules} rules, "
            f"expected {size.rules} ({size.matching} matching) and {size.waiting} waiting"
        )
    checked()
    return built


def entry_rule_key(entry: WaitlistEntry) -> tuple[Any, ...]:
    return tuple(
        getattr(entry, name)
        for name in (
            "kind",
            "slot_id",
            "allocation_id",
            "scope",
            "from_date",
            "practitioner_id",
            "slot_type_id",
            "weekdays",
            "time_from",
            "time_until",
        )
    )


# --- The expected answer, from the rows ----------------------------------------------------------------------------


def first_eligible(built: WaitlistClinic, *, set_aside: Sequence[WaitlistOffer] = ()) -> int | None:
    """The entry a freed place in the slot goes to, worked out here in Python from the rows (not slot_match): the
    first in (position, id) order that waits, whose patient is not archived nor booked in the slot, that was never
    offered this slot, and whose rule the slot answers on its location's clock. ``set_aside``: offers made since
    (the list as it was before them: their entries waiting, never offered this slot)."""
    clinic = built.clinic
    slot = Slot.objects.for_clinic(clinic).select_related("session").get(pk=built.slot.pk)
    session = slot.session
    zone = ZoneInfo(str(session.time_zone))
    start, end = slot.starts_at.astimezone(zone), slot.ends_at.astimezone(zone)
    booked = set(Appointment.objects.for_clinic(clinic).live().filter(slot=slot).values_list("patient_id", flat=True))
    aside = {made.entry_id for made in set_aside}
    offers = WaitlistOffer.objects.for_clinic(clinic).filter(slot=slot).exclude(pk__in=[o.pk for o in set_aside])
    offered = set(offers.values_list("entry_id", flat=True))

    def answers(entry: WaitlistEntry) -> bool:
        if entry.kind == WaitlistKind.SLOT:
            return entry.slot_id == slot.pk
        if entry.kind == WaitlistKind.SERIES:
            return (
                entry.allocation_id == session.allocation_id
                and entry.slot_type_id == slot.slot_type_id
                and (entry.scope == SeriesScope.ANY or entry.from_date is not None and entry.from_date <= session.date)
            )
        days = [int(day) for day in entry.weekdays.split(",") if day]
        return (
            entry.practitioner_id in (None, session.practitioner_id)
            and entry.slot_type_id in (None, slot.slot_type_id)
            and (not days or start.isoweekday() in days)
            and (entry.time_from is None or entry.time_from <= start.time())
            and (entry.time_until is None or entry.time_until >= end.time())
        )

    entries = WaitlistEntry.objects.for_clinic(clinic).select_related("patient").order_by("position", "id")
    for entry in entries:
        if (
            (entry.state == WaitlistState.WAITING or entry.pk in aside)
            and not entry.patient.is_archived
            and entry.patient_id not in booked
            and entry.pk not in offered
            and answers(entry)
        ):
            return entry.pk
    return None


def waitlist_fingerprint(built: WaitlistClinic) -> tuple[Any, ...]:
    """The clinic's waitlist in a few numbers: equal as set up and after each run's undoing, else not."""
    clinic = built.clinic
    slot = Slot.objects.for_clinic(clinic).values("booked_count", "held_count").get(pk=built.slot.pk)
    states = WaitlistEntry.objects.for_clinic(clinic).values("state").annotate(n=models.Count("id")).order_by("state")
    return (
        slot["booked_count"],
        slot["held_count"],
        Appointment.objects.for_clinic(clinic).live().filter(slot=built.slot).count(),
        tuple((row["state"], row["n"]) for row in states),
        Hold.objects.for_clinic(clinic).count(),
        Hold.objects.for_clinic(clinic).live().count(),
        WaitlistOffer.objects.for_clinic(clinic).count(),
        FreedPlace.objects.for_clinic(clinic).count(),
        Message.objects.for_clinic(clinic).count(),
        AuditEvent.objects.for_clinic(clinic).count(),
    )


# --- Cancel, offer, undo -------------------------------------------------------------------------------------------


def cancel(built: WaitlistClinic) -> None:
    """Reception cancels the member's appointment (committed, the patient told); the freed rows it nudged kept."""
    with nudges_held() as queued:
        appointment_cancel(clinic=built.clinic, actor=built.actor, appointment=built.appointment, reason=CANCEL_REASON)
    built.freed_ids = held_args(queued, tasks.waitlist_offer)
    if len(built.freed_ids) != 1:
        raise RuntimeError(f"waitlist_offer: the cancel nudged {queued}, expected one waitlist_offer of one row")


def offer(built: WaitlistClinic) -> None:
    """The worker's task for the ids the cancel nudged, up to the offer's commit (its own nudges held)."""
    with nudges_held() as queued:
        built.made = freed_offer(built.freed_ids)
    built.queued = queued


def undo(built: WaitlistClinic) -> None:
    """Put the clinic back as set up: the run's offer, hold and messages gone (and the cancel's messages, freed rows
    and history), its entry waiting again, the appointment booked again and the slot full; then prove it."""
    clinic = built.clinic
    with transaction.atomic():
        Message.objects.for_clinic(clinic).delete()  # the set-up records none
        offers = WaitlistOffer.objects.for_clinic(clinic).exclude(pk__in=built.kept_offers)
        holds = list(offers.values_list("hold_id", flat=True))
        offers.delete()
        Hold.objects.for_clinic(clinic).filter(pk__in=holds).delete()
        WaitlistEntry.objects.for_clinic(clinic).filter(state=WaitlistState.OFFERED).exclude(
            pk__in=built.kept_offered
        ).update(state=WaitlistState.WAITING)
        FreedPlace.objects.for_clinic(clinic).delete()
        AuditEvent.objects.for_clinic(clinic).delete()
        Appointment.objects.for_clinic(clinic).filter(pk=built.appointment.pk).update(
            status=AppointmentStatus.BOOKED, cancel_reason="", cancel_category="", cancelled_at=None
        )
        Slot.objects.for_clinic(clinic).filter(pk=built.slot.pk).update(booked_count=GROUP_CAPACITY, held_count=0)
    found = waitlist_fingerprint(built)
    if found != built.fingerprint:
        raise RuntimeError(f"waitlist_offer: the undoing left {found}, expected {built.fingerprint}")
    checked()


def undo_and_cancel(built: WaitlistClinic) -> None:
    """The reset before every offer run: the clinic as set up, then the cancel (untimed)."""
    undo(built)
    cancel(built)


def offer_check(built: WaitlistClinic) -> None:
    """What the last offer run did: one offer, to the entry worked out from the rows; its hold the slot's one live
    hold (the slot full again, one place held); the entry offered; one message per channel recorded, waiting, with
    their send nudged; the freed row done."""
    clinic = built.clinic
    offers = list(
        WaitlistOffer.objects.for_clinic(clinic).exclude(pk__in=built.kept_offers).select_related("hold", "entry")
    )
    expected = first_eligible(built, set_aside=offers)
    problems = []
    if built.made != 1 or len(offers) != 1:
        problems.append(f"{built.made} offers made, {len(offers)} recorded; expected 1")
    else:
        made = offers[0]
        live = list(Hold.objects.for_clinic(clinic).live().filter(slot=built.slot).values_list("pk", flat=True))
        slot = Slot.objects.for_clinic(clinic).get(pk=built.slot.pk)
        messages = Message.objects.for_clinic(clinic).filter(kind=Kind.OFFER, ref=str(made.public_id))
        told = {(m.channel, m.status, m.patient_id, m.slot_id): m.pk for m in messages}
        wanted = {(channel, Status.WAITING, made.entry.patient_id, slot.pk) for channel in (Channel.EMAIL, Channel.SMS)}
        if made.entry_id != expected or made.entry_id != built.first:
            problems.append(f"offered to entry {made.entry_id}, expected {expected} (built {built.first})")
        hold = made.hold
        if live != [hold.pk] or hold.kind != HoldKind.WAITLIST_OFFER or hold.expires_at <= timezone.now():
            problems.append(f"live holds {live} in the slot, expected the offer's {made.hold_id}")
        if (slot.booked_count, slot.held_count) != (GROUP_CAPACITY, 1):
            problems.append(f"slot booked/held {slot.booked_count}/{slot.held_count}, expected {GROUP_CAPACITY}/1")
        if made.entry.state != WaitlistState.OFFERED:
            problems.append(f"the entry is {made.entry.state}")
        sends = held_args(built.queued, notification_tasks.send_messages)
        if set(told) != wanted or sorted(sends) != sorted(told.values()):
            problems.append(f"offer messages {set(told)} and nudges {built.queued}, expected {wanted} nudged")
        if FreedPlace.objects.for_clinic(clinic).exists():
            problems.append("freed rows left")
    if problems:
        raise RuntimeError(f"waitlist_offer ({built.clinic.slug}): " + "; ".join(problems))
    checked()


# --- The case ------------------------------------------------------------------------------------------------------


@dataclass
class WaitlistBench:
    long: WaitlistClinic
    short: WaitlistClinic
    queries: dict[int, int] = field(default_factory=dict)  # the offer run's SQL count by number waiting


@functools.cache
def waitlist_setup() -> WaitlistBench:
    clinics_clear_plain(WAITLIST_SLUG)
    actor, created = User.objects.get_or_create(username=WAITLIST_RECEPTION, defaults={"email": WAITLIST_RECEPTION})
    if created:
        actor.set_unusable_password()
        actor.save(update_fields=["password"])
    state = WaitlistBench(
        long=waitlist_clinic(WAITLIST_SLUG, SIZE.long, actor),
        short=waitlist_clinic(f"{WAITLIST_SLUG}-short", SIZE.short, actor),
    )
    if connection.vendor == "postgresql":  # statistics, as autovacuum would leave them
        vacuum_analyze(WaitlistEntry, WaitlistOffer, Hold, FreedPlace, Appointment, Patient, Slot, Message)
    return state


def waitlist_check(state: WaitlistBench) -> None:
    """The last measured run's offer is right; then the offer on the long and on the short list, each checked: the
    same number of queries, whatever the length of the list."""
    offer_check(state.long)
    for built in (state.long, state.short):
        undo_and_cancel(built)
        state.queries[built.size.waiting] = count_queries(functools.partial(offer, built))
        offer_check(built)
    undo(state.short)
    long, short = state.queries[SIZE.long.waiting], state.queries[SIZE.short.waiting]
    if long != short:
        raise RuntimeError(f"waitlist_offer: the offer run's query count grows with the list: {state.queries}")
    checked()


def waitlist_figures(result: Result) -> Result:
    """The list's sizes and the query counts at both; the offer on the short list, timed the same way
    (``short_*``); the cancel itself up to its commit (``cancel_*``, its nudges held)."""
    state = waitlist_setup()
    long, short = SIZE.long, SIZE.short
    if result["queries"] != state.queries[long.waiting]:
        raise RuntimeError(f"waitlist_offer: {result['queries']} queries timed, {state.queries} in the check")
    short_figures = sub_case("short", state.short, offer, result, reset=undo_and_cancel)
    if short_figures["short_queries"] != result["queries"]:
        raise RuntimeError(f"waitlist_offer: {short_figures['short_queries']} queries on the short list")
    checked()
    cancel_figures = sub_case("cancel", state.long, cancel, result, reset=undo)
    for built in (state.long, state.short):  # nothing left for another case's sweep
        undo(built)
    return {
        "waiting": long.waiting,
        "rules": state.long.rules,
        "first_position": long.first_at,
        f"queries_{long.waiting}_waiting": state.queries[long.waiting],
        f"queries_{short.waiting}_waiting": state.queries[short.waiting],
        "short_waiting": short.waiting,
        **short_figures,
        **cancel_figures,
    }


def waitlist_run(state: WaitlistBench) -> None:
    offer(state.long)


def waitlist_reset(state: WaitlistBench) -> None:
    undo_and_cancel(state.long)


register(
    Case(
        name="waitlist_offer",
        setup=waitlist_setup,
        run=waitlist_run,
        reset=waitlist_reset,
        check=waitlist_check,
        extras=waitlist_figures,
    )
)
