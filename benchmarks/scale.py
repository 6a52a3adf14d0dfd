"""A large database, and the cases measured against it (issue 25).

``python -m benchmarks.scale build --database-url URL [--size full|tiny|FRACTION] [--seed S] [--fresh]`` fills a
PostgreSQL database (migrated first) with clinics that look like real ones: at full size 2,000 clinics, 20,000
practitioners, 2 million patients and 10 million appointments over three years, with their sessions and slots
(booked counts matching the live appointments), other events, stored ICS feeds and sent messages. Rows go in by COPY
(psycopg's ``cursor.copy()``), generated in this process while a second thread streams the previous batch to the
server; every foreign key and every index but the primary keys is dropped first and made again at the end (measured:
see docs/scale-findings.md), then ANALYZE. The same seed gives the same rows, ids and all.

The clinic ids leave a gap halfway (``CLINIC_GAP`` ids after the first half of the clinics): ``measure`` moves the
clinic id sequence into it, so that the clinics the cases build in their setups land in the middle of the id order,
amid the others.

``python -m benchmarks.scale measure --database-url LARGE --small-database-url SMALL [--size full|tiny] [--runs N]``
runs the cases of ``SCALE_CASES`` through the harness (``python -m benchmarks``, one subprocess per database, the
small one first) and records in benchmarks/results.json a case ``scale``: the number of appointments in the large
database, each case's median on it over its median on the small database (``<case>_ratio_to_small``), its query
count (``<case>_queries``, when equal on both, else ``<case>_queries_large`` and ``<case>_queries_small``) and
``worst_ratio_to_small``.

Neither command touches any database but the ones it is given; neither loads the Django settings before it has
pointed DATABASE_URL at that database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"
META_TABLE = "benchmarks_scale_build"  # not a Django model: what the builder built, for measure and the tests
CLINIC_GAP = 1_000_000  # clinic ids left free halfway, for the clinics the cases build
DEFAULT_SEED = 25
BATCH_CLINICS = 20  # clinics generated, then streamed in one COPY per table
TIME_ZONE = "Europe/London"
FIRST_MONDAY = dt.date(2025, 9, 1)
WEEKS = 156  # three years
PRESENT = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)  # the build's "now": before it done, after it booked
EVERY_WEEKS = 3  # each practitioner works one session every third week on their weekday
LIVE_SHARE = 0.9  # of the appointments; the rest cancelled
MESSAGE_EVERY = 4  # one live appointment in four has its confirmation (and, once due, its reminder) sent
FEED_WINDOW = (PRESENT - dt.timedelta(days=90), PRESENT + dt.timedelta(days=365))
# Two templates as the calendar case's (10-minute slots; None: a blank slot; the group slot takes 8).
TEMPLATES = (
    ("Scale AM", dt.time(8, 30), ["routine"] * 14 + ["telephone"] * 2 + [None, "group"]),
    ("Scale PM", dt.time(14, 0), ["routine"] * 10 + [None, "group"]),
)
SLOT_TYPES = {"routine": ("Routine", "blue", "face_to_face", 1), "telephone": ("Telephone", "teal", "telephone", 1)}
SLOT_TYPES["group"] = ("Group education", "purple", "face_to_face", 8)
SLOT_MINUTES = 10

# The cases measured against the large database, in the order the harness registers them (some build on others).
SCALE_CASES = (
    "patient_search",
    "calendar_week",
    "calendar_month",
    "next_available",
    "series_preview",
    "ics_serve",
    "ics_incremental",
    "reminders_due",
    "online_times",
    "fhir_slot_search",
)


# --- Sizes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleSize:
    clinics: int
    practitioners: int  # per clinic
    patients: int  # per clinic
    appointments: int  # per clinic, over the three years (LIVE_SHARE of them live)

    @property
    def total_appointments(self) -> int:
        return self.clinics * self.appointments


FULL = ScaleSize(clinics=2000, practitioners=10, patients=1000, appointments=5000)
TINY = ScaleSize(clinics=4, practitioners=3, patients=60, appointments=200)


def size_from(text: str) -> ScaleSize:
    """``full``, ``tiny``, or a fraction of full ("0.05", "1/20"): that share of the clinics, each as at full size."""
    if text == "full":
        return FULL
    if text == "tiny":
        return TINY
    try:
        share = Fraction(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise argparse.ArgumentTypeError(f"--size: full, tiny or a fraction such as 1/20, not {text!r}") from exc
    if not 0 < share <= 1:
        raise argparse.ArgumentTypeError("--size: a fraction in (0, 1]")
    return ScaleSize(max(2, round(FULL.clinics * share)), FULL.practitioners, FULL.patients, FULL.appointments)


# --- Databases ------------------------------------------------------------------------


def postgres_url(url: str) -> str:
    if dj_database_url.parse(url)["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit(f"{url}: the scale database must be PostgreSQL (COPY)")
    return url


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def server_url(url: str) -> str:
    return urlsplit(url)._replace(path="/postgres", query="").geturl()


def refuse_developer_database(url: str) -> None:
    """The developer's own database (DATABASE_URL) is never built into nor measured."""
    own = os.environ.get("DATABASE_URL")
    if own and database_name(own) == database_name(url) and urlsplit(own).netloc == urlsplit(url).netloc:
        raise SystemExit(f"{url} is DATABASE_URL: give the scale database a database of its own.")


def create_database(url: str, *, fresh: bool) -> None:
    name = database_name(url)
    with psycopg.connect(server_url(url), autocommit=True) as admin:
        if fresh:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def django_on(url: str) -> None:
    """Point Django at ``url`` (before the settings load) and set it up."""
    from django.conf import settings

    if settings.configured:
        raise RuntimeError("Django settings were loaded before the scale database was chosen.")
    os.environ["DJANGO_SETTINGS_MODULE"] = "clinic.settings"
    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "0"
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    if str(settings.DATABASES["default"]["NAME"]) != database_name(url):
        raise RuntimeError(f"refusing: the default database is {settings.DATABASES['default']['NAME']!r}")


def row(conn: psycopg.Connection[Any], query: Any, params: Sequence[Any] = ()) -> tuple[Any, ...]:
    """The one row of ``query``."""
    found = conn.execute(query, params).fetchone()
    if found is None:
        raise RuntimeError(f"no row from {query}")
    return tuple(found)


def read_meta(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'build'").fetchone()
    if row is None:
        raise SystemExit("no complete scale build in this database: run `python -m benchmarks.scale build` first")
    meta: dict[str, Any] = row[0]
    return meta


# --- COPY text ------------------------------------------------------------------------


def text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


def copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.datetime):
        return stamp(value.astimezone(dt.UTC))
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, dict | list):
        return text(json.dumps(value))
    return text(str(value))


@dataclass
class Table:
    """A table's COPY: the columns the builder gives (``columns``), then the model's defaults for the rest."""

    model: Any
    columns: tuple[str, ...]
    db_table: str = ""
    all_columns: tuple[str, ...] = ()
    tail: str = ""

    def __post_init__(self) -> None:
        from django.db import connection

        constants: dict[str, str] = {}
        for f in self.model._meta.concrete_fields:
            if f.attname in self.columns:
                continue
            default = f.get_default()
            if default is None and not f.null:
                raise RuntimeError(f"{self.model.__name__}.{f.attname} needs a value")
            constants[f.column] = copy_value(None if default is None else f.get_db_prep_save(default, connection))
        self.db_table = self.model._meta.db_table
        self.all_columns = (*(self.model._meta.get_field(c).column for c in self.columns), *constants)
        self.tail = "".join("\t" + value for value in constants.values()) + "\n"

    def line(self, values: Sequence[str]) -> str:
        """One row: ``values`` already as COPY text, in the order of ``columns``."""
        return "\t".join(values) + self.tail


# --- What each clinic holds -----------------------------------------------------------


@dataclass
class Ids:
    """The next id of each table: assigned here, in build order, so the same seed gives the same ids."""

    next: dict[str, int] = field(default_factory=dict)

    def take(self, table: str, count: int = 1) -> int:
        first = self.next.get(table, 1)
        self.next[table] = first + count
        return first


def uuid_text(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def clinic_id_for(index: int, size: ScaleSize) -> int:
    """The id of the ``index``-th clinic (0-based): the first half from 1, the second half after the gap."""
    half = size.clinics // 2
    return index + 1 if index < half else index + 1 + CLINIC_GAP


class Builder:
    """Generates each clinic's rows as COPY text (the model's tables, set up once Django is)."""

    def __init__(self, size: ScaleSize, seed: int) -> None:
        from calendar_sync.models import FeedDocument, FeedEvent, FeedSubscription
        from clinic.models import Clinic, Location, Practitioner
        from notifications.models import Message
        from patients.models import InternalIdCounter, Patient
        from scheduling.models import Allocation, Appointment, OtherEvent, Session, Slot
        from sessions_setup.models import SessionTemplate, SlotType, TemplateSlot

        self.size, self.seed, self.ids = size, seed, Ids()
        self.zone = zoneinfo.ZoneInfo(TIME_ZONE)
        t = Table
        self.clinic = t(Clinic, ("id", "public_id", "name", "slug", "time_zone", "internal_ids_enabled", "created_at"))
        self.location = t(Location, ("id", "public_id", "clinic_id", "name", "kind", "time_zone", "postcode"))
        self.slot_type = t(
            SlotType,
            ("id", "public_id", "clinic_id", "name", "colour", "kind", "capacity", "default_length_minutes", "order"),
        )
        self.template = t(
            SessionTemplate,
            ("id", "public_id", "clinic_id", "name", "colour", "description", "nominal_start", "updated_at"),
        )
        self.template_slot = t(
            TemplateSlot, ("id", "clinic_id", "template_id", "position", "slot_type_id", "length_minutes")
        )
        self.practitioner = t(
            Practitioner, ("id", "public_id", "clinic_id", "name", "role", "time_zone", "default_location_id")
        )
        self.allocation = t(
            Allocation,
            (
                "id",
                "public_id",
                "clinic_id",
                "template_id",
                "practitioner_id",
                "location_id",
                "start_time",
                "first_date",
                "last_date",
                "weekdays",
                "every_weeks",
                "created_at",
            ),
        )
        self.session = t(
            Session,
            (
                "id",
                "public_id",
                "clinic_id",
                "allocation_id",
                "template_id",
                "practitioner_id",
                "location_id",
                "date",
                "time_zone",
                "starts_at",
                "ends_at",
                "name",
                "description",
                "colour",
                "practitioner_role",
            ),
        )
        self.slot = t(
            Slot,
            (
                "id",
                "public_id",
                "clinic_id",
                "session_id",
                "position",
                "starts_at",
                "ends_at",
                "bookable",
                "capacity",
                "booked_count",
                "slot_type_id",
            ),
        )
        self.patient = t(
            Patient,
            (
                "id",
                "public_id",
                "clinic_id",
                "internal_id",
                "first_name",
                "last_name",
                "date_of_birth",
                "sex",
                "national_id_kind",
                "national_id",
                "mobile_phone",
                "mobile_key",
                "email",
                "last_name_key",
                "first_name_key",
                "is_blocked",
                "blocked_reason",
                "created_at",
                "updated_at",
            ),
        )
        self.counter = t(InternalIdCounter, ("id", "clinic_id", "last_number"))
        self.appointment = t(
            Appointment,
            (
                "id",
                "public_id",
                "clinic_id",
                "slot_id",
                "practitioner_id",
                "patient_id",
                "slot_type_id",
                "status",
                "starts_at",
                "ends_at",
                "created_at",
                "updated_at",
                "cancelled_at",
                "notes_completed",
            ),
        )
        self.other_event = t(
            OtherEvent,
            (
                "id",
                "public_id",
                "clinic_id",
                "practitioner_id",
                "title",
                "all_day",
                "starts_at",
                "ends_at",
                "first_date",
                "last_date",
                "created_at",
                "updated_at",
            ),
        )
        self.message = t(
            Message,
            (
                "id",
                "public_id",
                "clinic_id",
                "appointment_id",
                "patient_id",
                "appointment_ids",
                "kind",
                "channel",
                "offset_hours",
                "version",
                "due_at",
                "status",
                "attempts",
                "claimed_at",
                "sent_at",
                "recipient",
                "subject",
                "body",
                "provider_id",
                "created_at",
            ),
        )
        self.subscription = t(
            FeedSubscription,
            (
                "id",
                "public_id",
                "clinic_id",
                "practitioner_id",
                "enabled",
                "identifier_mode",
                "token_salt",
                "token_hash",
                "updated_at",
            ),
        )
        self.document = t(
            FeedDocument,
            (
                "id",
                "public_id",
                "clinic_id",
                "subscription_id",
                "body",
                "etag",
                "built_at",
                "modified_at",
                "built_mode",
            ),
        )
        self.feed_event = t(
            FeedEvent, ("id", "public_id", "clinic_id", "document_id", "key", "sort_key", "fingerprint", "text")
        )
        self.tables = (
            self.clinic,
            self.location,
            self.slot_type,
            self.template,
            self.template_slot,
            self.practitioner,
            self.allocation,
            self.session,
            self.slot,
            self.patient,
            self.counter,
            self.appointment,
            self.other_event,
            self.message,
            self.subscription,
            self.document,
            self.feed_event,
        )
        from benchmarks.cases.common import FEMALE_NAMES, MALE_NAMES, SURNAMES

        self.surnames, self.female, self.male = SURNAMES, FEMALE_NAMES, MALE_NAMES
        # Each week's Monday, and each session start (date, template) in UTC, computed once.
        self.mondays = [FIRST_MONDAY + dt.timedelta(weeks=w) for w in range(WEEKS)]
        self._starts: dict[tuple[dt.date, dt.time], dt.datetime] = {}

    def start_utc(self, day: dt.date, at: dt.time) -> dt.datetime:
        key = (day, at)
        if key not in self._starts:
            self._starts[key] = dt.datetime.combine(day, at, self.zone).astimezone(dt.UTC)
        return self._starts[key]

    def clinic_rows(self, index: int) -> dict[str, list[str]]:  # noqa: C901, PLR0915 - one clinic, table by table
        from benchmarks.cases.common import nhs_numbers
        from patients.identifiers import name_key, phone_key
        from patients.models import format_internal_id

        size, ids = self.size, self.ids
        rng = random.Random(f"scale:{self.seed}:{index}")
        out: dict[str, list[str]] = {table.db_table: [] for table in self.tables}
        clinic_id = clinic_id_for(index, size)
        cid = str(clinic_id)
        created = stamp(dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=index))
        name = f"{rng.choice(self.surnames)} Medical Practice {index + 1}"
        out[self.clinic.db_table].append(
            self.clinic.line(
                [
                    cid,
                    uuid_text(rng),
                    text(name),
                    f"scale-{index + 1:05}",
                    TIME_ZONE,
                    "t" if index % 2 else "f",
                    created,
                ]
            )
        )
        location_id = ids.take("location")
        out[self.location.db_table].append(
            self.location.line(
                [str(location_id), uuid_text(rng), cid, "Main surgery", "main", TIME_ZONE, f"BS{index % 99 + 1} 1AA"]
            )
        )
        slot_types: dict[str, tuple[int, int]] = {}  # key: (id, capacity)
        for order, (type_key, (type_name, colour, kind, capacity)) in enumerate(SLOT_TYPES.items()):
            type_id = ids.take("slottype")
            slot_types[type_key] = (type_id, capacity)
            out[self.slot_type.db_table].append(
                self.slot_type.line(
                    [str(type_id), uuid_text(rng), cid, type_name, colour, kind, str(capacity), str(SLOT_MINUTES)]
                    + [str(order)]
                )
            )
        templates: list[tuple[int, str, dt.time, list[str | None]]] = []
        for template_name, start, layout in TEMPLATES:
            template_id = ids.take("template")
            templates.append((template_id, template_name, start, layout))
            out[self.template.db_table].append(
                self.template.line(
                    [str(template_id), uuid_text(rng), cid, template_name, "navy", f"{template_name} list"]
                    + [start.isoformat(), created]
                )
            )
            for position, key in enumerate(layout):
                out[self.template_slot.db_table].append(
                    self.template_slot.line(
                        [str(ids.take("templateslot")), cid, str(template_id), str(position)]
                        + [str(slot_types[key][0]) if key else "\\N", str(SLOT_MINUTES)]
                    )
                )
        # Practitioners, one allocation each (a session every third week on their weekday), its sessions and slots.
        bookable: list[tuple[int, int, int, int, str, str, dt.datetime, int]] = []  # slot, cap, pract, type, ...
        slot_lines: dict[int, tuple[str, str]] = {}  # slot id: (line before booked_count, after)
        practitioner_ids = []
        for p in range(size.practitioners):
            practitioner_id = ids.take("practitioner")
            practitioner_ids.append(practitioner_id)
            surname = rng.choice(self.surnames)
            out[self.practitioner.db_table].append(
                self.practitioner.line(
                    [str(practitioner_id), uuid_text(rng), cid, text(f"Dr {surname} {p + 1}"), "gp", TIME_ZONE]
                    + [str(location_id)]
                )
            )
            template_id, template_name, start, layout = templates[p % 2]
            weekday, phase = p % 5, (p // 5) % EVERY_WEEKS
            days = [monday + dt.timedelta(days=weekday) for w, monday in enumerate(self.mondays) if w % 3 == phase]
            allocation_id = ids.take("allocation")
            out[self.allocation.db_table].append(
                self.allocation.line(
                    [str(allocation_id), uuid_text(rng), cid, str(template_id), str(practitioner_id), str(location_id)]
                    + [start.isoformat(), days[0].isoformat(), days[-1].isoformat(), str(weekday + 1)]
                    + [str(EVERY_WEEKS), created]
                )
            )
            first_session = ids.take("session", len(days))
            first_slot = ids.take("slot", len(days) * len(layout))
            slot_id = first_slot
            for n, day in enumerate(days):
                session_id = first_session + n
                begins = self.start_utc(day, start)
                ends = begins + dt.timedelta(minutes=SLOT_MINUTES * len(layout))
                out[self.session.db_table].append(
                    self.session.line(
                        [str(session_id), uuid_text(rng), cid, str(allocation_id), str(template_id)]
                        + [str(practitioner_id), str(location_id), day.isoformat(), TIME_ZONE, stamp(begins)]
                        + [stamp(ends), template_name, f"{template_name} list", "navy", "gp"]
                    )
                )
                for position, key in enumerate(layout):
                    slot_start = begins + dt.timedelta(minutes=SLOT_MINUTES * position)
                    starts, ends_s = stamp(slot_start), stamp(slot_start + dt.timedelta(minutes=SLOT_MINUTES))
                    type_id, capacity = slot_types[key] if key else (0, 1)
                    head = "\t".join(
                        [str(slot_id), uuid_text(rng), cid, str(session_id), str(position), starts, ends_s]
                        + ["t" if key else "f", str(capacity)]
                    )
                    slot_lines[slot_id] = (head, str(type_id) if key else "\\N")
                    if key:
                        bookable.append((slot_id, capacity, practitioner_id, type_id, starts, ends_s, slot_start, 0))
                    slot_id += 1
        # Patients, numbered from 1 as the clinic's internal ids.
        first_patient = ids.take("patient", size.patients)
        nhs = nhs_numbers(rng, size.patients)
        patient_contacts: list[tuple[str, str, str]] = []  # first name, mobile, email
        for number in range(1, size.patients + 1):
            female = rng.random() < 0.51
            first_name = rng.choice(self.female if female else self.male)
            last_name = rng.choices(self.surnames[:200])[0]
            mobile = f"07700 9{rng.randrange(100_000):05}"
            email = f"p{number}.{index + 1}@example.com" if rng.random() < 0.7 else ""
            blocked = number % 40 == 0
            born = dt.date.fromordinal(rng.randint(dt.date(1925, 1, 1).toordinal(), dt.date(2024, 12, 31).toordinal()))
            joined = stamp(dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=rng.randrange(14_000)))
            patient_contacts.append((first_name, mobile, email))
            out[self.patient.db_table].append(
                self.patient.line(
                    [str(first_patient + number - 1), uuid_text(rng), cid, format_internal_id(number)]
                    + [text(first_name), text(last_name), born.isoformat(), "female" if female else "male", "nhs"]
                    + [nhs[number - 1], mobile, phone_key(mobile), email, name_key(last_name), name_key(first_name)]
                    + ["t" if blocked else "f", "Restricted record" if blocked else "", joined, joined]
                )
            )
        out[self.counter.db_table].append(
            self.counter.line([str(ids.take("internalidcounter")), cid, str(size.patients)])
        )
        # Appointments: live ones on random places of the bookable slots (a patient once per slot), the rest
        # cancelled; then each slot's booked_count.
        places = [slot for slot in bookable for _ in range(slot[1])]
        live_count = min(round(size.appointments * LIVE_SHARE), len(places))
        chosen = [(slot, True) for slot in rng.sample(places, live_count)]
        chosen += [(slot, False) for slot in rng.choices(bookable, k=size.appointments - live_count)]
        chosen.sort(key=lambda item: (item[0][6], item[0][0]))  # by start: ids in the order of the calendar
        booked: dict[int, int] = {}
        in_slot: dict[int, set[int]] = {}
        first_appointment = ids.take("appointment", len(chosen))
        messages: list[tuple[int, int, int, dt.datetime, dt.datetime, str]] = []
        practitioner_appointments: dict[int, list[tuple[int, dt.datetime, str, str]]] = {}
        for n, ((slot_id, _, practitioner_id, type_id, starts, ends_s, slot_start, _), live) in enumerate(chosen):
            appointment_id = first_appointment + n
            while True:
                patient_number = rng.randrange(size.patients)
                if not live or patient_number not in in_slot.setdefault(slot_id, set()):
                    break
            made = slot_start - dt.timedelta(hours=rng.randrange(2, 24 * 60))
            if live:
                in_slot[slot_id].add(patient_number)
                booked[slot_id] = booked.get(slot_id, 0) + 1
                if slot_start < PRESENT:
                    status = "completed" if rng.random() < 0.94 else "did_not_attend"
                else:
                    status = "booked"
            else:
                status = "cancelled"
            cancelled = stamp(made + (slot_start - made) / 2) if not live else "\\N"
            out[self.appointment.db_table].append(
                self.appointment.line(
                    [str(appointment_id), uuid_text(rng), cid, str(slot_id), str(practitioner_id)]
                    + [str(first_patient + patient_number), str(type_id), status, starts, ends_s, stamp(made)]
                    + [stamp(made), cancelled, "t" if status == "completed" else "f"]
                )
            )
            if live and n % MESSAGE_EVERY == 0 and made < PRESENT:
                messages.append((appointment_id, first_patient + patient_number, patient_number, made, slot_start, ""))
            if live and FEED_WINDOW[0] <= slot_start < FEED_WINDOW[1]:
                practitioner_appointments.setdefault(practitioner_id, []).append(
                    (appointment_id, slot_start, starts, ends_s)
                )
        for slot_id, (head, type_text) in slot_lines.items():
            out[self.slot.db_table].append(self.slot.line([head, str(booked.get(slot_id, 0)), type_text]))
        # Messages: the booking confirmation, and the reminder a day before once that was due (all sent by now).
        for appointment_id, patient_id, patient_number, made, slot_start, _ in messages:
            first_name, mobile, email = patient_contacts[patient_number]
            channel, recipient = ("email", email) if email else ("sms", mobile)
            when = slot_start.astimezone(self.zone).strftime("%a %d %b %Y, %H:%M")
            for kind, offset, due in (("confirmation", 0, made), ("reminder", 24, slot_start - dt.timedelta(days=1))):
                if due >= PRESENT:
                    continue
                sent = due + dt.timedelta(seconds=rng.randrange(5, 120))
                body = f"Dear {first_name}, your appointment at {name} is on {when}."
                out[self.message.db_table].append(
                    self.message.line(
                        [str(ids.take("message")), uuid_text(rng), cid, str(appointment_id), str(patient_id)]
                        + [f"[{appointment_id}]", kind, channel, str(offset), stamp(slot_start), stamp(due), "sent"]
                        + ["1", stamp(sent), stamp(sent), text(recipient), f"Your appointment on {when}"]
                        + [text(body), f"SCALE{rng.getrandbits(64):016X}", stamp(due)]
                    )
                )
        # Other events: per practitioner two meetings a year and a week of leave a year.
        for practitioner_id in practitioner_ids:
            for year in range(3):
                base = FIRST_MONDAY + dt.timedelta(days=365 * year)
                for _ in range(2):
                    day = base + dt.timedelta(days=rng.randrange(360))
                    begins = self.start_utc(day, dt.time(13, 0))
                    out[self.other_event.db_table].append(
                        self.other_event.line(
                            [str(ids.take("otherevent")), uuid_text(rng), cid, str(practitioner_id), "Practice meeting"]
                            + ["f", stamp(begins), stamp(begins + dt.timedelta(hours=1)), "\\N", "\\N", created]
                            + [created]
                        )
                    )
                first = base + dt.timedelta(days=rng.randrange(355))
                out[self.other_event.db_table].append(
                    self.other_event.line(
                        [str(ids.take("otherevent")), uuid_text(rng), cid, str(practitioner_id), "Annual leave", "t"]
                        + ["\\N", "\\N", first.isoformat(), (first + dt.timedelta(days=4)).isoformat(), created]
                        + [created]
                    )
                )
        # A stored ICS feed for the first practitioner: the subscription, the document and one event per appointment.
        practitioner_id = practitioner_ids[0]
        subscription_id, document_id = ids.take("feedsubscription"), ids.take("feeddocument")
        token_hash = f"{rng.getrandbits(256):064x}"
        out[self.subscription.db_table].append(
            self.subscription.line(
                [str(subscription_id), uuid_text(rng), cid, str(practitioner_id), "t", "initials"]
                + [f"{rng.getrandbits(128):032x}", token_hash, created]
            )
        )
        events = []
        for appointment_id, slot_start, _, _ in practitioner_appointments.get(practitioner_id, []):
            key = f"a{appointment_id}"
            body = f"BEGIN:VEVENT\r\nUID:{key}@scale\r\nDTSTART:{slot_start:%Y%m%dT%H%M%SZ}\r\nSUMMARY:Booked"
            body += "\r\nEND:VEVENT"
            events.append(body)
            out[self.feed_event.db_table].append(
                self.feed_event.line(
                    [str(ids.take("feedevent")), uuid_text(rng), cid, str(document_id), key]
                    + [f"{slot_start:%Y%m%dT%H%M}{key}"[:24], hashlib.md5(body.encode()).hexdigest(), text(body)]
                )
            )
        feed = "BEGIN:VCALENDAR\r\n" + "\r\n".join(events) + "\r\nEND:VCALENDAR\r\n"
        document = gzip.compress(feed.encode(), mtime=0)
        out[self.document.db_table].append(
            self.document.line(
                [str(document_id), uuid_text(rng), cid, str(subscription_id), copy_value(document)]
                + [f'"{hashlib.md5(document).hexdigest()}"', created, created, "full"]
            )
        )
        return out


# --- Build ----------------------------------------------------------------------------


@dataclass
class Schema:
    """What the builder drops for the load and makes again: foreign keys, unique constraints, other indexes."""

    foreign_keys: list[tuple[str, str, str]]  # table, name, definition
    constraints: list[tuple[str, str, str]]  # unique and exclusion constraints (their indexes with them)
    indexes: list[tuple[str, str]]  # name, CREATE INDEX statement

    @classmethod
    def read(cls, conn: psycopg.Connection[Any], tables: Sequence[str]) -> Schema:
        rows = conn.execute(
            "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype FROM pg_constraint c"
            " WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype IN ('f', 'u', 'x') ORDER BY 1, 2",
            [list(tables)],
        ).fetchall()
        indexes = conn.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype <> 'f')"
            " ORDER BY 1",
            [list(tables)],
        ).fetchall()
        return cls(
            foreign_keys=[(t, n, d) for t, n, d, kind in rows if kind == "f"],
            constraints=[(t, n, d) for t, n, d, kind in rows if kind != "f"],
            indexes=[(n, d) for n, d in indexes],
        )

    def drop(self, conn: psycopg.Connection[Any]) -> None:
        for table, name, _ in self.foreign_keys + self.constraints:
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(name))
            )
        for name, _ in self.indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))

    def create(self, conn: psycopg.Connection[Any], say: Callable[[str], None]) -> None:
        for table, name, definition in self.constraints:
            started = time.perf_counter()
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(sql.Identifier(table), sql.Identifier(name))
                + sql.SQL(definition)  # from pg_get_constraintdef
            )
            say(f"constraint {name}: {time.perf_counter() - started:.1f} s")
        for name, definition in self.indexes:
            started = time.perf_counter()
            conn.execute(definition)
            say(f"index {name}: {time.perf_counter() - started:.1f} s")
        for table, name, definition in self.foreign_keys:
            started = time.perf_counter()
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(sql.Identifier(table), sql.Identifier(name))
                + sql.SQL(definition)
            )
            say(f"foreign key {name}: {time.perf_counter() - started:.1f} s")


class CopyStream:
    """A thread that COPYs each batch into the database while the next one is generated."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("SET synchronous_commit = off")
        self.batches: queue.Queue[list[tuple[str, tuple[str, ...], str]] | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.rows: dict[str, int] = {}
        self.thread = threading.Thread(target=self.work, name="scale-copy", daemon=True)
        self.thread.start()

    def work(self) -> None:
        try:
            while (batch := self.batches.get()) is not None:
                with self.conn.transaction(), self.conn.cursor() as cursor:
                    for table, columns, data in batch:
                        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
                        )
                        with cursor.copy(statement) as copy:
                            copy.write(data)
                        self.rows[table] = self.rows.get(table, 0) + data.count("\n")
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            while self.batches.get() is not None:  # unblock the producer
                pass

    def put(self, batch: list[tuple[str, tuple[str, ...], str]]) -> None:
        if self.error is not None:
            raise self.error
        self.batches.put(batch)

    def close(self) -> None:
        self.batches.put(None)
        self.thread.join()
        self.conn.close()
        if self.error is not None:
            raise self.error


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build(url: str, size: ScaleSize, seed: int, *, keep_indexes: bool = False) -> dict[str, Any]:
    """Migrate the database at ``url`` (empty of clinics) and fill it; return what was built (also in META_TABLE)."""
    from django.core.management import call_command

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        made = row(conn, "SELECT to_regclass('clinic_clinic') IS NOT NULL") == (True,)
        if made and row(conn, "SELECT EXISTS (SELECT 1 FROM clinic_clinic)") == (True,):
            raise SystemExit(f"{database_name(url)} already holds clinics: build into an empty database (--fresh)")
    call_command("migrate", verbosity=0)
    builder = Builder(size, seed)
    tables = [table.db_table for table in builder.tables]
    timings: dict[str, float] = {"migrate_s": round(time.perf_counter() - started, 1)}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {META_TABLE}")
        schema = Schema.read(conn, tables)
        if not keep_indexes:
            with conn.transaction():
                schema.drop(conn)
        step = time.perf_counter()
        stream = CopyStream(url)
        try:
            for first in range(0, size.clinics, BATCH_CLINICS):
                rows: dict[str, list[str]] = {table: [] for table in tables}
                for index in range(first, min(first + BATCH_CLINICS, size.clinics)):
                    for table, lines in builder.clinic_rows(index).items():
                        rows[table] += lines
                stream.put(
                    [
                        (table.db_table, table.all_columns, "".join(rows[table.db_table]))
                        for table in builder.tables
                        if rows[table.db_table]
                    ]
                )
                done = min(first + BATCH_CLINICS, size.clinics)
                if done % 200 == 0 or done == size.clinics:
                    say(f"{done} of {size.clinics} clinics generated: {time.perf_counter() - step:.0f} s")
        finally:
            stream.close()
        timings["copy_s"] = round(time.perf_counter() - step, 1)
        step = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        if not keep_indexes:
            schema.create(conn, say)
        timings["indexes_s"] = round(time.perf_counter() - step, 1)
        for table in tables:
            conn.execute(
                sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), (SELECT max(id) FROM {}))").format(
                    sql.Literal(table), sql.Identifier(table)
                )
            )
        step = time.perf_counter()
        conn.execute("ANALYZE")
        timings["analyze_s"] = round(time.perf_counter() - step, 1)
        timings["total_s"] = round(time.perf_counter() - started, 1)
        half = size.clinics // 2
        meta = {
            "seed": seed,
            "size": asdict(size),
            "rows": dict(sorted(stream.rows.items())),
            "clinic_gap": [half + 1, half + CLINIC_GAP],  # the first and last free clinic id
            "indexes_dropped": not keep_indexes,
            "timings": timings,
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        conn.execute(f"CREATE TABLE {META_TABLE} (key text PRIMARY KEY, value jsonb NOT NULL)")
        conn.execute(f"INSERT INTO {META_TABLE} VALUES ('build', %s)", [Jsonb(meta)])
    return meta


# --- Measure --------------------------------------------------------------------------


def probe_into_gap(url: str) -> tuple[int, int]:
    """Move the clinic id sequence into the gap (after what earlier runs put there); return the gap."""
    with psycopg.connect(url, autocommit=True) as conn:
        first, last = read_meta(conn)["clinic_gap"]
        first, last = int(first), int(last)
        (used,) = row(conn, "SELECT max(id) FROM clinic_clinic WHERE id BETWEEN %s AND %s", [first, last])
        current = max(first - 1, used or 0)
        if current > last - 10_000:
            raise SystemExit("the clinic id gap is nearly used up: rebuild the scale database")
        if current >= first:
            conn.execute("SELECT setval(pg_get_serial_sequence('clinic_clinic', 'id'), %s)", [current])
        else:
            conn.execute("SELECT setval(pg_get_serial_sequence('clinic_clinic', 'id'), %s, false)", [first])
    return first, last


def filler_fingerprint(url: str, gap: tuple[int, int]) -> dict[str, int]:
    """How many rows the built clinics (outside the gap) hold in the big tables: the cases must leave them be."""
    counts = {}
    with psycopg.connect(url) as conn:
        for table in ("clinic_clinic", "patients_patient", "scheduling_slot", "scheduling_appointment"):
            column = "id" if table == "clinic_clinic" else "clinic_id"
            (counts[table],) = row(
                conn,
                sql.SQL(
                    "SELECT count(*) FROM {} WHERE {} NOT BETWEEN %s AND %s AND {} IN (SELECT id FROM clinic_clinic"
                    " WHERE slug LIKE 'scale-%%')"
                ).format(sql.Identifier(table), sql.Identifier(column), sql.Identifier(column)),
                list(gap),
            )
    return counts


def run_harness(url: str, cases: Sequence[str], *, size: str, runs: int | None, output: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BENCH_SIZE"}}
    env["BENCH_DATABASE_URL"] = url
    command = [sys.executable, "-m", "benchmarks", *cases, "--size", size, "--output", str(output)]
    if runs is not None:
        command += ["--runs", str(runs), "--warmup", "0" if runs == 1 else "1"]
    say(f"harness on {database_name(url)}: {' '.join(command[2:])}")
    done = subprocess.run(command, cwd=PROJECT_DIR, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the harness failed on {database_name(url)} (exit {done.returncode})")
    result: dict[str, Any] = json.loads(output.read_text())
    return result


def measure(
    large_url: str, small_url: str, cases: Sequence[str], *, size: str, runs: int | None, output: Path | None
) -> dict[str, Any]:
    gap = probe_into_gap(large_url)
    before = filler_fingerprint(large_url, gap)
    create_database(small_url, fresh=False)
    with tempfile.TemporaryDirectory(prefix="clinic-scale-") as tmp:
        small = run_harness(small_url, cases, size=size, runs=runs, output=Path(tmp) / "small.json")
        large = run_harness(large_url, cases, size=size, runs=runs, output=Path(tmp) / "large.json")
    after = filler_fingerprint(large_url, gap)
    if before != after:
        raise SystemExit(f"the cases changed the built clinics: {before} before, {after} after")
    with psycopg.connect(large_url) as conn:
        (appointments,) = row(conn, "SELECT count(*) FROM scheduling_appointment")
        probes = row(conn, "SELECT min(id), max(id), count(*) FROM clinic_clinic WHERE id BETWEEN %s AND %s", gap)
        below, above = row(
            conn, "SELECT count(*) FILTER (WHERE id < %s), count(*) FILTER (WHERE id > %s) FROM clinic_clinic", gap
        )
        meta = read_meta(conn)
    entry: dict[str, Any] = {
        "appointments": appointments,
        "built_clinics": meta["size"]["clinics"],
        "built_appointments": meta["rows"]["scheduling_appointment"],
        "build_seed": meta["seed"],
        "clinics_below_probes": below,
        "clinics_above_probes": above,
        "probe_clinics": probes[2],
        "probe_clinic_first_id": probes[0],
        "probe_clinic_last_id": probes[1],
        "database_vendor": "postgresql",
    }
    ratios = []
    queries_equal = True
    for name in cases:
        big, little = large["cases"][name], small["cases"][name]
        ratio = round(big["median_s"] / little["median_s"], 3)
        ratios.append(ratio)
        entry[f"{name}_ratio_to_small"] = ratio
        entry[f"{name}_median_s"] = big["median_s"]
        entry[f"{name}_small_median_s"] = little["median_s"]
        if "db_cpu_ms" in big:
            entry[f"{name}_db_cpu_ms"] = big["db_cpu_ms"]  # the database server's CPU per run (docs/scaling.md)
        if big["queries"] == little["queries"]:
            entry[f"{name}_queries"] = big["queries"]
        else:
            queries_equal = False
            entry[f"{name}_queries_large"], entry[f"{name}_queries_small"] = big["queries"], little["queries"]
    entry["worst_ratio_to_small"] = max(ratios)
    entry["queries_equal"] = queries_equal
    entry["runs"] = runs if runs is not None else "case defaults"
    entry["size"] = size
    entry["timestamp"] = large["env"]["timestamp"]
    entry["small_database"] = database_name(small_url)
    if output is not None:
        from benchmarks.harness import write_results

        # The file's env stays as the last harness run left it: this entry says where and when it was measured.
        previous = json.loads(output.read_text()).get("env", {}) if output.exists() else {}
        write_results(output, {"scale": entry}, previous)
    return entry


def explain(url: str, name: str, *, size: str) -> str:
    """The case's setup on ``url`` (its clinics in the gap), then EXPLAIN (ANALYZE, BUFFERS) of each query its run
    sends (writes in a transaction rolled back), as text (the plans for docs/scale-findings.md)."""
    from benchmarks import harness

    probe_into_gap(url)
    os.environ["BENCH_DATABASE_URL"] = url
    harness.choose_size(size)
    lines: list[str] = []
    with harness.dedicated_database() as bench_url:
        import django

        django.setup()
        from django.db import connection, transaction
        from django.test.utils import CaptureQueriesContext

        from benchmarks.cases import CASES

        harness.prepare_django(bench_url)
        case = CASES[name]
        state = case.setup()
        for _ in range(2):  # warm, then captured
            if case.reset is not None:
                case.reset(state)
            with CaptureQueriesContext(connection) as captured:
                case.run(state)
        if case.reset is not None:
            case.reset(state)
        for number, query in enumerate(captured.captured_queries, 1):
            statement = query["sql"]
            lines.append(f"-- query {number} ({query['time']} s): {statement}")
            if statement.lstrip().upper().startswith(("SELECT", "WITH", "INSERT", "UPDATE", "DELETE")):
                # A write is explained in a transaction rolled back: its plan and timing, the rows left as they were.
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement)
                    lines += [found[0] for found in cursor.fetchall()]
                    transaction.set_rollback(True)
            lines.append("")
        if case.reset is not None:
            case.reset(state)
    return "\n".join(lines)


# --- Command line ---------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="fill a PostgreSQL database with many clinics, by COPY")
    b.add_argument("--database-url", required=True, help="the PostgreSQL database to build (created if missing)")
    b.add_argument("--size", type=size_from, default=FULL, help="full (default), tiny, or a fraction such as 1/20")
    b.add_argument("--seed", type=int, default=DEFAULT_SEED)
    b.add_argument("--fresh", action="store_true", help="drop the database first if it exists")
    b.add_argument("--keep-indexes", action="store_true", help="load with every index and foreign key in place")
    m = commands.add_parser("measure", help="the cases on the large database and on a small one, as ratios")
    m.add_argument("--database-url", required=True, help="the database built by `build`")
    m.add_argument(
        "--small-database-url",
        help="a PostgreSQL database for the small figures (created if missing; default: the large one's name "
        "+ '_small' on the same server)",
    )
    m.add_argument("--size", choices=("full", "tiny"), default="full", help="the cases' own size")
    m.add_argument("--runs", type=int, help="timed runs per case (default: each case's own)")
    m.add_argument("cases", nargs="*", metavar="CASE", help=f"default: {' '.join(SCALE_CASES)}")
    m.add_argument("--output", type=Path, help="results file (default: benchmarks/results.json at full size)")
    e = commands.add_parser("explain", help="EXPLAIN (ANALYZE, BUFFERS) of each query of a case's run")
    e.add_argument("--database-url", required=True, help="the database built by `build` (or a small one)")
    e.add_argument("--size", choices=("full", "tiny"), default="full", help="the case's own size")
    e.add_argument("case", choices=SCALE_CASES)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url = postgres_url(args.database_url)
    refuse_developer_database(url)
    if args.command == "build":
        create_database(url, fresh=args.fresh)
        django_on(url)
        meta = build(url, args.size, args.seed, keep_indexes=args.keep_indexes)
        print(json.dumps(meta, indent=2))
        return 0
    if args.command == "explain":
        print(explain(url, args.case, size=args.size))
        return 0
    small_url = postgres_url(
        args.small_database_url or urlsplit(url)._replace(path=urlsplit(url).path + "_small").geturl()
    )
    refuse_developer_database(small_url)
    if database_name(small_url) == database_name(url):
        raise SystemExit("the small database must not be the large one")
    unknown = [name for name in args.cases if name not in SCALE_CASES]
    if unknown:
        raise SystemExit(f"not a scale case: {', '.join(unknown)} (one of {', '.join(SCALE_CASES)})")
    cases = [name for name in SCALE_CASES if name in args.cases] or list(SCALE_CASES)
    output = args.output or (DEFAULT_OUTPUT if args.size == "full" else None)
    entry = measure(url, small_url, cases, size=args.size, runs=args.runs, output=output)
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
