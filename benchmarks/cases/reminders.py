"""Reminders: one beat tick finding and enqueueing 10,000 due reminders among 1,000,000 appointments in 100 clinics.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``), chosen by the harness.

The year of each clinic (raw rows, the fastest plain way): group slots of ``per_slot`` places spread over a year
around ``REMINDERS_NOW``, and at that moment two windows in which reminders are due, one per channel at the
clinics' default offsets (email 48 h, SMS 2 h, each looked back over REMINDER_LOOKBACK_HOURS): six slots in each,
hourly, the last starting exactly at now + the offset. In each window ten appointments are not due (four
cancelled, two booked after the reminder's moment, two of patients without the channel's address, two of patients
who refused the channel), one slot starting exactly at the window's open end (not due either) lies beside it, and
no other slot is in it. So each clinic has 2 x (6 x per_slot - 10) reminders due: FULL, 2 x 50 in each of the 100
clinics, 10,000 (5,000 emails and 5,000 SMS).
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.color import no_style
from django.db import connection, models, transaction

from benchmarks.cases.common import clinics_clear_plain, insert_rows, register
from benchmarks.harness import Case, Result, checked, count_queries, sized
from clinic.db import DbValues
from clinic.models import Clinic, Location, Practitioner, PractitionerRole
from notifications.models import Channel, ContactPreference, Kind, Message, NotificationSettings, Status
from notifications.sending import tick
from patients.identifiers import name_key, phone_key
from patients.models import Patient
from scheduling.models import Appointment, AppointmentStatus, CancelCategory, Session, Slot
from sessions_setup.models import SessionType, SlotType

# --- Sizes and the layout -------------------------------------------------------------


@dataclass(frozen=True)
class ReminderSizes:
    clinics: int
    patients: int  # per clinic
    slots: int  # per clinic, window slots included
    per_slot: int  # places of each (group) slot, every one taken


FULL = ReminderSizes(clinics=100, patients=500, slots=1_000, per_slot=10)  # 1,000,000 appointments
TINY = ReminderSizes(clinics=3, patients=40, slots=40, per_slot=4)  # 480 appointments, 84 reminders due
SIZE = sized(FULL, TINY)

REMINDERS_SLUG_PREFIX = "bench-reminders-"
REMINDERS_NOW = dt.datetime(2031, 3, 12, 9, 0, tzinfo=dt.UTC)  # far from the demo's and other cases' dates
REMINDERS_LATER = REMINDERS_NOW + dt.timedelta(hours=3)  # fewer due: the query count must be the same
YEAR_START = REMINDERS_NOW - dt.timedelta(days=60)
YEAR = dt.timedelta(days=365)
TIME_ZONE = "Europe/London"
SLOT_LENGTH = dt.timedelta(minutes=30)
WINDOW_SLOTS = 6
LOOKBACK = dt.timedelta(hours=settings.REMINDER_LOOKBACK_HOURS)
OFFSETS: dict[
    str, dt.timedelta
] = {  # channel: the clinics' default offset (the settings rows are left as a new clinic gets them)
    Channel.EMAIL: dt.timedelta(hours=NotificationSettings._meta.get_field("email_reminder_hours").get_default()),
    Channel.SMS: dt.timedelta(hours=NotificationSettings._meta.get_field("sms_reminder_hours").get_default()),
}
# The appointments of a window that are not due, earliest first.
DECOYS = ("cancelled",) * 4 + ("late",) * 2 + ("no_address",) * 2 + ("refused",) * 2
# Patients 0-7 of each clinic: 0, 1 have no email; 2, 3 no mobile; 4, 5 refuse emails; 6, 7 refuse texts.
NO_ADDRESS: dict[str, tuple[int, ...]] = {Channel.EMAIL: (0, 1), Channel.SMS: (2, 3)}
REFUSING: dict[str, tuple[int, ...]] = {Channel.EMAIL: (4, 5), Channel.SMS: (6, 7)}
SPECIAL_PATIENTS = 8
PREFERENCE_EVERY = 10  # every 10th other patient has a preference row too, saying yes to both

DUE_PER_WINDOW = WINDOW_SLOTS * SIZE.per_slot - len(DECOYS)
REMINDERS_DUE = SIZE.clinics * len(OFFSETS) * DUE_PER_WINDOW  # FULL: 10,000
APPOINTMENTS = SIZE.clinics * SIZE.slots * SIZE.per_slot  # FULL: 1,000,000

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Place:
    patient: int  # the patient's number in the clinic (0-based)
    status: str
    created_at: dt.datetime


@dataclass(frozen=True)
class PlannedSlot:
    starts_at: dt.datetime
    places: list[Place]


def window(channel: str, now: dt.datetime = REMINDERS_NOW) -> tuple[dt.datetime, dt.datetime]:
    """The starts whose reminder by ``channel`` is due at ``now``: (open start, closed end]."""
    return now + OFFSETS[channel] - LOOKBACK, now + OFFSETS[channel]


def in_a_window(moment: dt.datetime) -> bool:
    """Within a slot's length of a window, either end included: no other slot comes near one."""
    return any(
        start - SLOT_LENGTH <= moment <= end + SLOT_LENGTH for start, end in (window(channel) for channel in OFFSETS)
    )


def window_slots(channel: str) -> list[PlannedSlot]:
    """The window's six slots (decoys first, in the earliest), and one at its open end, outside it."""
    start, end = window(channel)
    offset = OFFSETS[channel]
    step = LOOKBACK / WINDOW_SLOTS
    starts = [start + step * k for k in range(1, WINDOW_SLOTS + 1)]
    if starts[-1] != end:
        raise RuntimeError("the window's last slot must start exactly at its end")
    regular = iter(range(SPECIAL_PATIENTS, SIZE.patients))
    no_address, refusing = iter(NO_ADDRESS[channel]), iter(REFUSING[channel])
    kinds = list(DECOYS) + ["due"] * DUE_PER_WINDOW
    slots = []
    for index, slot_start in enumerate(starts):
        early = slot_start - dt.timedelta(days=20)
        places = []
        for kind in kinds[index * SIZE.per_slot : (index + 1) * SIZE.per_slot]:
            if kind == "no_address":
                places.append(Place(next(no_address), AppointmentStatus.BOOKED, early))
            elif kind == "refused":
                places.append(Place(next(refusing), AppointmentStatus.BOOKED, early))
            elif kind == "late":  # booked a minute after the reminder's moment: its confirmation said it all
                late = slot_start - offset + dt.timedelta(minutes=1)
                places.append(Place(next(regular), AppointmentStatus.BOOKED, late))
            else:
                status = AppointmentStatus.CANCELLED if kind == "cancelled" else AppointmentStatus.BOOKED
                places.append(Place(next(regular), status, early))
        slots.append(PlannedSlot(slot_start, places))
    # Exactly at the open end: booked, but not due.
    edge = [
        Place(SPECIAL_PATIENTS + p, AppointmentStatus.BOOKED, start - dt.timedelta(days=20))
        for p in range(SIZE.per_slot)
    ]
    return [*slots, PlannedSlot(start, edge)]


def spread_slots(clinic_index: int, count: int) -> list[PlannedSlot]:
    """``count`` slots over the year, none near a window: done (or missed, or cancelled) before now, booked (some
    cancelled) after it."""
    slots = []
    step = YEAR / count
    others = SIZE.patients - SPECIAL_PATIENTS
    for index in range(count):
        start = YEAR_START + step * index + dt.timedelta(minutes=3 * clinic_index)
        start = start.replace(second=0, microsecond=0)
        while in_a_window(start):
            start += LOOKBACK + dt.timedelta(hours=1)
        created = start - dt.timedelta(days=20)
        places = []
        for place in range(SIZE.per_slot):
            number = index * SIZE.per_slot + place
            if number % 20 == 7:
                status = AppointmentStatus.CANCELLED
            elif start + SLOT_LENGTH > REMINDERS_NOW:
                status = AppointmentStatus.BOOKED
            else:
                status = AppointmentStatus.DID_NOT_ATTEND if number % 20 == 11 else AppointmentStatus.COMPLETED
            places.append(Place(SPECIAL_PATIENTS + number % others, status, created))
        slots.append(PlannedSlot(start, places))
    return slots


def clinic_year(clinic_index: int) -> list[PlannedSlot]:
    planned = window_slots(Channel.EMAIL) + window_slots(Channel.SMS)
    planned += spread_slots(clinic_index, SIZE.slots - len(planned))
    return sorted(planned, key=lambda slot: slot.starts_at)


# --- Rows -----------------------------------------------------------------------------


def next_id(model: type[models.Model]) -> int:
    return int(model._default_manager.aggregate(m=models.Max("id"))["m"] or 0) + 1


def reminders_clear() -> None:
    """Remove the clinics of an earlier run (a kept BENCH_DATABASE_URL) and every row they own."""
    clinics_clear_plain(REMINDERS_SLUG_PREFIX)


@dataclass
class ReminderState:
    clinic_ids: list[int]
    waiting_before: int  # other clinics' waiting messages already due at now (the tick hands them out too)
    setup_s: float = 0.0
    batches: list[list[int]] = field(default_factory=list)  # the last run's


def build_clinic(index: int, db: DbValues, ids: dict[str, int]) -> int:
    """One clinic and its year; ``ids`` holds the next free session, slot and patient ids (advanced here)."""
    clinic = Clinic.objects.create(name=f"Benchmark reminders {index:03}", slug=f"{REMINDERS_SLUG_PREFIX}{index:03}")
    location = Location.objects.create(clinic=clinic, name="Main surgery", kind=Location.Kind.MAIN, time_zone=TIME_ZONE)
    practitioner = Practitioner.objects.create(
        clinic=clinic, name=f"Dr Reminder {index:03}", role=PractitionerRole.GP, default_location=location
    )
    slot_type = SlotType.objects.create(
        clinic=clinic, name="Clinic", default_length_minutes=30, capacity=SIZE.per_slot, bookable=True
    )
    now_stored = db.datetime(REMINDERS_NOW - dt.timedelta(days=400))

    # Patients, with explicit ids so that the appointments can name them.
    first_patient = ids["patient"]
    patients = []
    for number in range(SIZE.patients):
        email = "" if number in NO_ADDRESS[Channel.EMAIL] else f"patient{number}.c{index}@example.invalid"
        mobile = "" if number in NO_ADDRESS[Channel.SMS] else f"07700 9{index % 100:02}{number:03d}"
        first, last = f"Pat{number}", f"Clinic{index}"
        patients.append(
            (first_patient + number, clinic.pk, f"P{number + 1:06d}", first, last, db.date(dt.date(1970, 1, 1)))
            + (email, mobile, phone_key(mobile), name_key(first), name_key(last), now_stored, now_stored)
        )
    insert_rows(
        Patient,
        ("id", "clinic_id", "internal_id", "first_name", "last_name", "date_of_birth")
        + ("email", "mobile_phone", "mobile_key", "first_name_key", "last_name_key", "created_at", "updated_at"),
        patients,
        db,
    )
    ids["patient"] += SIZE.patients
    preferences = [
        (clinic.pk, first_patient + n, n not in REFUSING[Channel.EMAIL], n not in REFUSING[Channel.SMS], now_stored)
        for n in range(SIZE.patients)
        if n < SPECIAL_PATIENTS or n % PREFERENCE_EVERY == 0
    ]
    insert_rows(ContactPreference, ("clinic_id", "patient_id", "email_ok", "sms_ok", "updated_at"), preferences, db)

    # Sessions (one per local day with slots), slots and their appointments.
    zone = ZoneInfo(TIME_ZONE)
    sessions: list[Row] = []
    slots: list[Row] = []
    appointments: list[Row] = []
    by_day: dict[dt.date, list[PlannedSlot]] = {}
    for planned in clinic_year(index):
        by_day.setdefault(planned.starts_at.astimezone(zone).date(), []).append(planned)
    for day, day_slots in by_day.items():
        session_id = ids["session"]
        ids["session"] += 1
        sessions.append(
            (session_id, clinic.pk, practitioner.pk, location.pk, db.date(day), TIME_ZONE)
            + (db.datetime(day_slots[0].starts_at), db.datetime(day_slots[-1].starts_at + SLOT_LENGTH))
            + ("Reminders", "blue", SessionType.GROUP)
        )
        for position, planned in enumerate(day_slots):
            slot_id = ids["slot"]
            ids["slot"] += 1
            starts, ends = db.datetime(planned.starts_at), db.datetime(planned.starts_at + SLOT_LENGTH)
            live = sum(place.status != AppointmentStatus.CANCELLED for place in planned.places)
            slots.append((slot_id, clinic.pk, session_id, position, slot_type.pk, starts, ends, True, SIZE.per_slot))
            slots[-1] += (live,)
            for place in planned.places:
                created = db.datetime(place.created_at)
                cancelled = place.status == AppointmentStatus.CANCELLED
                appointments.append(
                    (clinic.pk, slot_id, practitioner.pk, first_patient + place.patient, slot_type.pk, place.status)
                    + (starts, ends, CancelCategory.PATIENT.value if cancelled else "")
                    + (db.datetime(place.created_at + dt.timedelta(days=1)) if cancelled else None, created, created)
                )
    insert_rows(
        Session,
        ("id", "clinic_id", "practitioner_id", "location_id", "date", "time_zone", "starts_at", "ends_at")
        + ("name", "colour", "session_type"),
        sessions,
        db,
    )
    insert_rows(
        Slot,
        ("id", "clinic_id", "session_id", "position", "slot_type_id", "starts_at", "ends_at", "bookable", "capacity")
        + ("booked_count",),
        slots,
        db,
    )
    insert_rows(
        Appointment,
        ("clinic_id", "slot_id", "practitioner_id", "patient_id", "slot_type_id", "status", "starts_at", "ends_at")
        + ("cancel_category", "cancelled_at", "created_at", "updated_at"),
        appointments,
        db,
    )
    return clinic.pk


@functools.cache
def reminders_setup() -> ReminderState:
    started = time.perf_counter()
    reminders_clear()
    db = DbValues()
    ids = {"patient": next_id(Patient), "session": next_id(Session), "slot": next_id(Slot)}
    clinic_ids = []
    for index in range(SIZE.clinics):
        with transaction.atomic():
            clinic_ids.append(build_clinic(index, db, ids))
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), [Patient, Session, Slot]):  # PostgreSQL
            cursor.execute(statement)
        tables = ", ".join(m._meta.db_table for m in (Appointment, Slot, Session, Patient, ContactPreference, Message))
        cursor.execute(f"ANALYZE {tables}" if connection.vendor == "postgresql" else "ANALYZE")

    appointments = Appointment.objects.filter(clinic_id__in=clinic_ids).count()  # the bench's own clinics
    settings_rows = NotificationSettings.objects.filter(
        clinic_id__in=clinic_ids, reminders_on=True, email_on=True, sms_on=True
    ).count()
    if (appointments, settings_rows) != (APPOINTMENTS, SIZE.clinics):
        raise RuntimeError(
            f"reminders_due: {appointments} appointments and {settings_rows} clinics sending reminders, "
            f"expected {APPOINTMENTS} and {SIZE.clinics}"
        )
    checked()
    waiting_before = Message.objects.filter(status=Status.WAITING, due_at__lte=REMINDERS_NOW).count()
    return ReminderState(clinic_ids, waiting_before, setup_s=time.perf_counter() - started)


# --- The case -------------------------------------------------------------------------


def one_tick(now: dt.datetime) -> tuple[dict[str, int], list[list[int]]]:
    batches: list[list[int]] = []
    outcome = tick(now, enqueue=batches.append)
    return outcome, batches


def reminders_run(state: ReminderState) -> None:
    """One beat tick: stale claims, the due reminders recorded, every due message handed out in batches."""
    outcome, batches = one_tick(REMINDERS_NOW)
    handed = sum(len(batch) for batch in batches)
    expected = {"unknown": 0, "reminders": REMINDERS_DUE, "due": REMINDERS_DUE + state.waiting_before}
    if outcome != expected or handed != outcome["due"] or max(map(len, batches)) > settings.MESSAGE_BATCH:
        raise RuntimeError(f"reminders_due: the tick gave {outcome} in {len(batches)} batches, expected {expected}")
    state.batches = batches
    checked()


def reminders_reset(state: ReminderState) -> None:
    """No messages in the bench's clinics: each run finds the reminders again."""
    Message.objects.filter(clinic_id__in=state.clinic_ids).delete()  # the bench's own clinics
    if connection.vendor == "postgresql":  # reclaim the dead rows now, untimed
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {Message._meta.db_table}")


def reminders_check(state: ReminderState) -> None:
    """The messages the last run recorded: one per due appointment and channel, waiting, due at the start less the
    offset, each handed out once; and a second tick at the same moment records none."""
    mine = Message.objects.filter(clinic_id__in=state.clinic_ids)  # the bench's own clinics
    per_channel = dict(mine.values_list("channel").annotate(n=models.Count("id")).values_list("channel", "n"))
    wanted = {channel: REMINDERS_DUE // len(OFFSETS) for channel in OFFSETS}
    if per_channel != wanted:
        raise RuntimeError(f"reminders_due: {per_channel} reminders recorded, expected {wanted}")
    for channel, offset in OFFSETS.items():
        start, end = window(channel)
        hours = offset // dt.timedelta(hours=1)
        rows = mine.filter(channel=channel).values_list(
            "kind", "status", "offset_hours", "version", "due_at", "appointment__starts_at"
        )
        wrong = [
            row
            for row in rows
            if row[:3] != (Kind.REMINDER, Status.WAITING, hours)
            or row[3] != row[5]
            or not start < row[3] <= end
            or row[4] != row[3] - offset
        ]
        if wrong:
            raise RuntimeError(f"reminders_due: {len(wrong)} {channel} reminders with a wrong key, status or moment")
    handed = [pk for batch in state.batches for pk in batch]
    if len(set(handed)) != len(handed) or not set(mine.values_list("id", flat=True)) <= set(handed):
        raise RuntimeError("reminders_due: the tick did not hand out every reminder exactly once")
    again, _ = one_tick(REMINDERS_NOW)
    if again["reminders"] != 0 or mine.count() != REMINDERS_DUE:
        raise RuntimeError(f"reminders_due: a second tick at the same moment recorded {again['reminders']}")
    checked()


def reminders_figures(result: Result) -> Result:
    """The set-up time, the sizes, and the query count of a tick with fewer reminders due (three hours later): the
    same as with all of them."""
    state = reminders_setup()
    reminders_reset(state)
    found: dict[str, int] = {}

    def later() -> None:
        found.update(one_tick(REMINDERS_LATER)[0])

    queries = count_queries(later)
    reminders_reset(state)
    if not 0 < found["reminders"] < REMINDERS_DUE or queries != result["queries"]:
        raise RuntimeError(
            f"reminders_due: {found['reminders']} due three hours later in {queries} queries; "
            f"{REMINDERS_DUE} due now in {result['queries']}"
        )
    checked()
    return {
        "setup_s": round(state.setup_s, 1),
        "clinics": SIZE.clinics,
        "appointments": APPOINTMENTS,
        "reminders_due": REMINDERS_DUE,
        "later_reminders_due": found["reminders"],
        "later_queries": queries,
    }


register(
    Case(
        name="reminders_due",
        setup=reminders_setup,
        run=reminders_run,
        reset=reminders_reset,
        check=reminders_check,
        extras=reminders_figures,
        runs=5,
        warmup=1,
    )
)
