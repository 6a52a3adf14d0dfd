"""Online booking. ``online_times``: the free times of one online slot type over four weeks, for "anyone" of 10
practitioners, with 60% of places booked, weekly availability with date overrides, busy events pulled from Google
(timed and all-day) and a release rule on the type. ``online_book_http``: the public booking's last step (the
emailed code typed, which books) through gunicorn on PostgreSQL at 1, 8 and 32 patients, beside as many
receptionists booking into the same slots.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``)."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import random
import re
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import requests
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from benchmarks.cases.booking import (
    Booking,
    BookingSizes,
    Judge,
    Level,
    book_all,
    booking_clinic,
    booking_request,
    booking_server,
    failures,
    healthz_levels,
    level_of,
    on_postgresql,
    post_all,
    rates_of,
    reception_session,
    server_started,
    slots_dealt,
    slots_shuffled,
    timed_of,
)
from benchmarks.cases.common import (
    CALENDAR_TIME_ZONE,
    CALENDAR_WEEKDAYS,
    FEMALE_NAMES,
    MALE_NAMES,
    PATIENT_DOB_RANGE,
    SURNAMES,
    clinics_clear,
    register,
    slots_overbooked,
    vacuum_analyze,
)
from benchmarks.harness import Case, Result, checked, sized
from benchmarks.http_load import REQUEST_TIMEOUT_S, GunicornServer, run_clients
from clinic.models import AuditEvent, Clinic, Location, Practitioner, PractitionerRole
from notifications.models import Message
from online.models import BookingMode, EmailCheck, OnlineBooking, OnlineSettings, OnlineStatus, PractitionerOnline
from online.services import _code_hash
from patients.models import InternalIdCounter, Patient
from scheduling.models import Appointment, Availability, AvailabilityOverride, Hold, OtherEvent, Session, Slot
from scheduling.services.rota import AllocationRequest, allocation_create
from sessions_setup.models import SessionTemplate, SlotType, TemplateSlot

if TYPE_CHECKING:
    from scheduling.selectors.booking import OnlinePlace

ONLINE_SLUG = "bench-online-times"


@dataclass(frozen=True)
class OnlineSizes:
    practitioners: int
    weeks: int  # of sessions on the rota, from ONLINE_FIRST_DAY (the search covers four of them)


FULL = OnlineSizes(practitioners=10, weeks=6)
TINY = OnlineSizes(practitioners=2, weeks=5)
SIZE = sized(FULL, TINY)

ONLINE_FIRST_DAY = dt.date(2027, 9, 6)  # a Monday
NOW = dt.datetime(2027, 9, 6, 6, tzinfo=dt.UTC)  # 07:00 in London on that Monday
SLOTS_PER_SESSION = 16  # 15-minute slots from 08:30; every other one online
BOOKED_SHARE = 0.6
RELEASE_DAYS = 21  # the online type opens 21 days ahead: the last week of the four is not yet released
ZONE = ZoneInfo(CALENDAR_TIME_ZONE)


@dataclass(frozen=True)
class OnlineState:
    clinic: Clinic
    slot_type: SlotType
    practitioners: list[Practitioner]


@functools.cache
def online_times_setup() -> OnlineState:
    clinics_clear([ONLINE_SLUG])
    zone = CALENDAR_TIME_ZONE
    clinic = Clinic.objects.create(name="Benchmark online times", slug=ONLINE_SLUG, time_zone=zone)
    location = Location.objects.create(clinic=clinic, name="Main surgery", kind=Location.Kind.MAIN, time_zone=zone)
    online = SlotType.objects.create(
        clinic=clinic,
        name="Online consult",
        default_length_minutes=15,
        online_bookable=True,
        release_rule="days_before",
        release_days_before=RELEASE_DAYS,
        order=1,
    )
    routine = SlotType.objects.create(clinic=clinic, name="Routine", default_length_minutes=15, order=2)
    template = SessionTemplate.objects.create(clinic=clinic, name="GP morning")
    TemplateSlot.objects.bulk_create(
        TemplateSlot(
            clinic=clinic, template=template, position=n, slot_type=online if n % 2 == 0 else routine, length_minutes=15
        )
        for n in range(SLOTS_PER_SESSION)
    )
    last_day = ONLINE_FIRST_DAY + dt.timedelta(weeks=SIZE.weeks, days=-1)
    practitioners = [
        Practitioner.objects.create(
            clinic=clinic, name=f"Dr Online {n:02}", role=PractitionerRole.GP, default_location=location
        )
        for n in range(SIZE.practitioners)
    ]
    rng = random.Random(ONLINE_SLUG)
    weekdays = ("1", "2", "3", "4", "5")
    for index, practitioner in enumerate(practitioners):
        allocation_create(
            clinic=clinic,
            actor=None,
            request=AllocationRequest(
                template, practitioner, location, dt.time(8, 30), ONLINE_FIRST_DAY, last_day, (1, 2, 3, 4, 5), 1
            ),
        )
        # Online mornings 08:30-11:30 (the last half hour of each session is not offered online).
        Availability.objects.create(
            clinic=clinic, practitioner=practitioner, time_zone=zone, weekly={d: [["08:30", "11:30"]] for d in weekdays}
        )
        # Two date overrides each: a day off, and a short day.
        days = [ONLINE_FIRST_DAY + dt.timedelta(days=d) for d in range(SIZE.weeks * 7) if d % 7 < 5]
        off, short = rng.sample(days, 2)
        AvailabilityOverride.objects.create(clinic=clinic, practitioner=practitioner, date=off, hours=[])
        AvailabilityOverride.objects.create(
            clinic=clinic, practitioner=practitioner, date=short, hours=[["09:00", "10:00"]]
        )
        # Busy events pulled from Google: three timed ones a week and an all-day one in the second week.
        events = []
        for week in range(SIZE.weeks):
            for n in range(3):
                day = ONLINE_FIRST_DAY + dt.timedelta(weeks=week, days=rng.randrange(5))
                # In UTC: on BST, 09:00 to 12:30 in London.
                starts_at = dt.datetime.combine(
                    day, dt.time(8 + rng.randrange(4), 30 * rng.randrange(2)), tzinfo=dt.UTC
                )
                events.append(
                    OtherEvent(
                        clinic=clinic,
                        practitioner=practitioner,
                        title="Busy",
                        starts_at=starts_at,
                        ends_at=starts_at + dt.timedelta(minutes=45),
                        busy=True,
                        google_calendar_id="primary",
                        google_event_id=f"bench{index}w{week}n{n}",
                    )
                )
        day = ONLINE_FIRST_DAY + dt.timedelta(weeks=1, days=index % 5)
        events.append(
            OtherEvent(
                clinic=clinic,
                practitioner=practitioner,
                title="Conference",
                all_day=True,
                first_date=day,
                last_date=day,
                busy=True,
                google_calendar_id="primary",
                google_event_id=f"bench{index}allday",
            )
        )
        OtherEvent.objects.bulk_create(events)
    # 60% of places taken, spread evenly but not in a pattern the planner could exploit.
    ids = list(Slot.objects.for_clinic(clinic).values_list("id", flat=True))
    taken = rng.sample(ids, int(len(ids) * BOOKED_SHARE))
    for chunk in range(0, len(taken), 5_000):
        Slot.objects.filter(id__in=taken[chunk : chunk + 5_000]).update(booked_count=1)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Slot._meta.db_table}, {Session._meta.db_table}, {OtherEvent._meta.db_table}")
    expected = SIZE.practitioners * SIZE.weeks * 5 * SLOTS_PER_SESSION
    if len(ids) != expected:
        raise RuntimeError(f"online_times: {len(ids)} slots, expected {expected}")
    state = OnlineState(clinic=clinic, slot_type=online, practitioners=practitioners)
    online_times_check(state)
    return state


def _search(state: OnlineState, practitioners: list[Practitioner] | None = None, weeks: int = 4) -> list[OnlinePlace]:
    from scheduling.selectors.booking import online_places

    return online_places(
        clinic=state.clinic,
        slot_type=state.slot_type,
        now=NOW,
        until=NOW + dt.timedelta(weeks=weeks),
        practitioners=practitioners,
    )


def online_times_check(state: OnlineState) -> None:
    """Free places only, of the online type, released, inside availability and outside busy events; the same
    query count for one practitioner over a week as for everyone over four."""
    from scheduling.hours import local_day

    found = _search(state)
    if not found:
        raise RuntimeError("online_times: no free time found")
    released_until = local_day(NOW.astimezone(ZONE).date() + dt.timedelta(days=RELEASE_DAYS), ZONE)[1]
    events = OtherEvent.objects.for_clinic(state.clinic)
    busy = list(events.filter(all_day=False).values_list("practitioner_id", "starts_at", "ends_at"))
    away = set(events.filter(all_day=True).values_list("practitioner_id", "first_date"))
    away |= set(
        AvailabilityOverride.objects.for_clinic(state.clinic).filter(hours=[]).values_list("practitioner_id", "date")
    )
    slots = {
        slot.public_id: slot
        for slot in Slot.objects.for_clinic(state.clinic).filter(public_id__in=[p.slot for p in found])
    }
    for place in found:
        slot = slots[place.slot]
        if slot.slot_type_id != state.slot_type.pk or slot.booked_count >= slot.capacity or place.places_left != 1:
            raise RuntimeError("online_times: a place that is not a free online place was offered")
        if slot.starts_at >= released_until:
            raise RuntimeError("online_times: a place was offered before its release")
        local = slot.starts_at.astimezone(ZONE)
        if (place.practitioner_id, local.date()) in away:
            raise RuntimeError("online_times: a place on a day off or an all-day busy day was offered")
        if not (dt.time(8, 30) <= local.time() and (local + dt.timedelta(minutes=15)).time() <= dt.time(11, 30)):
            raise RuntimeError("online_times: a place outside the online availability was offered")
        practitioner = place.practitioner_id
        if any(p == practitioner and s < slot.ends_at and slot.starts_at < e for p, s, e in busy):
            raise RuntimeError("online_times: a place during a busy event was offered")
    checked()
    with CaptureQueriesContext(connection) as everyone:
        _search(state)
    with CaptureQueriesContext(connection) as one:
        _search(state, practitioners=state.practitioners[:1], weeks=1)
    if len(everyone) != len(one):
        raise RuntimeError(f"online_times: {len(everyone)} queries for everyone, {len(one)} for one practitioner")
    checked()


def online_times_run(state: OnlineState) -> None:
    _search(state)


def online_times_floor(state: OnlineState) -> None:
    list(Slot.objects.filter(pk=Slot.objects.for_clinic(state.clinic).values("pk")[:1]))


register(
    Case(
        name="online_times",
        setup=online_times_setup,
        run=online_times_run,
        floor=online_times_floor,
        runs=30,
        warmup=3,
        check=online_times_check,
    )
)


# --- online_book_http: the public booking POST through gunicorn, beside reception -----------------------------

BOOK_SLUG = "bench-online-book"
BOOK_RECEPTION = "bench-online-reception-{:02}@example.invalid"  # one receptionist per reception client
# per_client: number of patients (online clients) -> code posts of each; as many reception clients post as many
# bookings. Patients: every 40th is blocked; the others are reception's (one per booking of the biggest run) and,
# with an email, the online clients' (one per matched booking of the biggest run).
BOOK_FULL = BookingSizes(practitioners=40, patients=1_200, per_client={1: 160, 8: 40, 32: 20}, workers=None)
BOOK_TINY = BookingSizes(practitioners=2, patients=120, per_client={1: 4, 4: 5}, workers=1)  # one contested group at 4
BOOK_SIZE = sized(BOOK_FULL, BOOK_TINY)
BOOK_GROUP_REQUESTS = 5  # online code posts per group slot, and as many reception bookings: 10 for its 8 places
BOOK_REQUESTS_EVERY = 8  # the 2nd, 10th, 18th... practitioner takes online requests (a hold) instead of bookings
BOOK_LEAD_DAYS = 7  # the rota's week starts on the first Monday at least this far ahead: inside the horizon
BOOK_HOURS = [["08:00", "17:00"]]  # online availability, Monday to Friday: every session of the rota
BOOK_CODE_HOURS = 24  # how long the prepared codes work: longer than any run of the case
# All clients come from 127.0.0.1: the server's per-address limits of the public site must not refuse them.
BOOK_LIMITS = dict.fromkeys(("ONLINE_PAGE_LIMIT", "ONLINE_CODE_LIMIT_IP", "ONLINE_VERIFY_LIMIT_IP"), "1000000000")
BOOK_REFUSALS = (  # a place taken meanwhile, by reception or another patient
    "Sorry, that time has just gone.",
    "This slot is full.",
    "This group is full",
    "This time has just been taken.",
)
FIELD_ERROR = re.compile(r'<ul class="errorlist"><li>(.*?)</li>', re.S)


@dataclass(frozen=True)
class Contest:
    """One level's requests: each patient's code posts and each receptionist's bookings, into the same slots."""

    online: list[list[Booking]]
    reception: list[list[Booking]]
    booked: int  # the places they must come to: every slot's requests, up to its capacity


@dataclass(frozen=True)
class ContestLevel:
    online: Level  # the patients' code posts
    reception: Level
    both: Level
    held: int  # online requests now held for reception (practitioners who take requests)
    overbooked: int  # slots_overbooked after the level: must be 0


@dataclass(frozen=True)
class OnlineBookState:
    clinic: Clinic
    server: GunicornServer
    public: list[requests.Session]  # one per patient, on the public site (no login)
    reception: list[requests.Session]  # one per receptionist, logged in
    plans: dict[int, Contest]
    healthz_url: str
    checks: list[EmailCheck]  # as setup made them: a used check is deleted with its booking, so each run restores them
    runs: list[dict[int, ContestLevel]] = field(default_factory=list)
    floors: list[dict[int, Level]] = field(default_factory=list)


def book_monday(now: dt.datetime) -> dt.date:
    """The first Monday at least BOOK_LEAD_DAYS after ``now``'s date in the clinic's zone: the rota's week is
    inside the online horizon and past the notice, whenever the case runs."""
    day = now.astimezone(ZONE).date() + dt.timedelta(days=BOOK_LEAD_DAYS)
    return day + dt.timedelta(days=-day.weekday() % 7)


def book_offered(clinic: Clinic) -> None:
    """Online booking on, every bookable slot type offered online, and every practitioner's availability covering
    the rota's sessions; every BOOK_REQUESTS_EVERY-th takes requests (reception accepts them) instead."""
    OnlineSettings.objects.create(clinic=clinic, enabled=True)
    SlotType.objects.for_clinic(clinic).filter(bookable=True).update(online_bookable=True)
    practitioners = list(Practitioner.objects.for_clinic(clinic).order_by("id"))
    Availability.objects.bulk_create(
        Availability(
            clinic=clinic,
            practitioner=practitioner,
            time_zone=CALENDAR_TIME_ZONE,
            weekly={str(day): BOOK_HOURS for day in CALENDAR_WEEKDAYS},
        )
        for practitioner in practitioners
    )
    PractitionerOnline.objects.bulk_create(
        PractitionerOnline(clinic=clinic, practitioner=practitioner, mode=BookingMode.REQUEST)
        for index, practitioner in enumerate(practitioners)
        if index % BOOK_REQUESTS_EVERY == 1
    )


def book_patients(clinic: Clinic) -> tuple[list[Patient], list[Patient]]:
    """Reception's patients (one per booking of the biggest run) and the online clients' (the rest, each given
    an email: a patient who books online with it, their first name and date of birth is matched)."""
    patients = list(Patient.objects.for_clinic(clinic).filter(is_blocked=False).order_by("id"))
    biggest = max(clients * per_client for clients, per_client in BOOK_SIZE.per_client.items())
    reception, online = patients[:biggest], patients[biggest:]
    if len(online) < (biggest + 1) // 2:
        raise RuntimeError(f"online_book_http: {len(patients)} patients are too few for {biggest} bookings a side")
    for patient in online:
        patient.email = f"bench-online-{patient.internal_id}@example.invalid"
    Patient.objects.bulk_update(online, ["email"], batch_size=500)
    return reception, online


def code_check(clinic: Clinic, slot: Slot, who: dict[str, str], rng: random.Random) -> tuple[EmailCheck, str]:
    """The email check (unsaved) that check_start would leave for ``who`` and ``slot``, and its code."""
    if slot.slot_type is None:
        raise RuntimeError(f"bookable slot {slot.public_id} has no slot type")
    token, code = secrets.token_urlsafe(24), f"{rng.randrange(1_000_000):06d}"
    check = EmailCheck(
        clinic=clinic,
        token=token,
        code_hash=_code_hash(token, code),
        email=who["email"],
        details={**who, "slot": str(slot.public_id), "slot_type": str(slot.slot_type.public_id)},
        expires_at=timezone.now() + dt.timedelta(hours=BOOK_CODE_HOURS),
    )
    return check, code


def online_person(number: int, matched: Iterator[Patient], rng: random.Random) -> dict[str, str]:
    """What a patient types in the details form: every other one a patient of the clinic (matched by first name,
    date of birth and email), the others new to it (registered online, for reception to check)."""
    if number % 2 == 0:
        patient = next(matched)
        first_name, last_name, born, email = patient.first_name, patient.last_name, patient.date_of_birth, patient.email
    else:
        first_name, last_name = rng.choice(FEMALE_NAMES + MALE_NAMES), rng.choice(SURNAMES)
        born = dt.date.fromordinal(rng.randint(*PATIENT_DOB_RANGE))
        email = f"bench-online-new-{number:05}@example.invalid"
    return {
        "first_name": first_name,
        "last_name": last_name,
        "date_of_birth": born.isoformat(),
        "email": email,
        "mobile": f"07700 9{number:05}",
        "reason": "Benchmark",
    }


def contest_plan(
    base_url: str,
    clinic: Clinic,
    clients: int,
    slots: tuple[Iterator[Slot], Iterator[Slot]],
    patients: tuple[list[Patient], list[Patient]],
    numbers: Iterator[int],
    rng: random.Random,
) -> tuple[Contest, list[EmailCheck]]:
    """Each patient's code posts and each receptionist's bookings at ``clients`` clients a side, and the email
    checks (unsaved) behind the code posts. Receptionist i books patient i's slots in the opposite order, so that
    each side takes about half of the single slots before the other comes; each group slot is booked by
    BOOK_GROUP_REQUESTS patients and as many receptionists at about the same point of their lists."""
    per_client = BOOK_SIZE.per_client[clients]
    dealt, _groups = slots_dealt(clients, per_client, *slots, group_requests=BOOK_GROUP_REQUESTS)
    reception, matched = iter(patients[0]), iter(patients[1])  # each patient books once at most in a level
    checks, online = [], []
    for mine in dealt:
        posts = []
        for slot in mine:
            check, code = code_check(clinic, slot, online_person(next(numbers), matched, rng), rng)
            checks.append(check)
            posts.append(Booking(base_url + reverse("online:check", args=[clinic.slug, check.token]), {"code": code}))
        online.append(posts)
    bookings = [[booking_request(base_url, slot, next(reception)) for slot in reversed(mine)] for mine in dealt]
    requests_per_slot = Counter(slot for mine in dealt for slot in mine)
    booked = sum(min(2 * count, slot.capacity) for slot, count in requests_per_slot.items())
    return Contest(online, bookings, booked), checks


def public_session(url: str) -> requests.Session:
    """A patient's browser on the public site, holding the CSRF cookie of the code page at ``url`` and sending it
    back as the header."""
    http = requests.Session()
    page = http.get(url, allow_redirects=False, timeout=REQUEST_TIMEOUT_S)
    token = http.cookies.get(settings.CSRF_COOKIE_NAME)
    if page.status_code != 200 or not token:
        raise RuntimeError(f"GET {url} returned {page.status_code}, CSRF cookie {bool(token)}")
    http.headers["X-CSRFToken"] = token
    return http


@functools.cache
def online_book_setup() -> OnlineBookState:
    load = on_postgresql("online_book_http")
    clinic, users = booking_clinic(
        BOOK_SLUG,
        "Benchmark online booking",
        size=BOOK_SIZE,
        reception=BOOK_RECEPTION,
        monday=book_monday(timezone.now()),
    )
    book_offered(clinic)
    slots = slots_shuffled(clinic)  # no slot is in two of the levels
    patients = book_patients(clinic)
    rng, numbers = random.Random(BOOK_SLUG), itertools.count()  # every patient's details are their own

    server = booking_server(BOOK_SIZE.workers, **BOOK_LIMITS)
    with server_started("online_book_http", server, load) as base_url:
        plans, checks = {}, []
        for clients in BOOK_SIZE.per_client:
            plans[clients], more = contest_plan(base_url, clinic, clients, slots, patients, numbers, rng)
            checks += more
        checks = EmailCheck.objects.bulk_create(checks, batch_size=500)
        vacuum_analyze(Slot, Session, Patient, Practitioner, EmailCheck, Availability, PractitionerOnline)
        reception = [reception_session(base_url, user) for user in users]
        public = [public_session(posts[0].url) for posts in plans[max(plans)].online]
    return OnlineBookState(
        clinic=clinic,
        server=server,
        public=public,
        reception=reception,
        plans=plans,
        healthz_url=base_url + reverse("healthz"),
        checks=checks,
    )


# The code page's answer: a redirect to the confirmation (booked or requested), or the page again saying that the
# time has gone.
online_judged = Judge(refused_status=400, message=FIELD_ERROR, refusals=BOOK_REFUSALS, booked_at="/done/")


def online_book_check(state: OnlineBookState, level: ContestLevel, errors: list[str], so_far: tuple[int, int]) -> None:
    """The responses and the database agree: the level's slots are taken up to their capacity and no further,
    every 302 of a code post is one online booking (an appointment, or a hold for a practitioner who takes
    requests), every 302 of reception's one appointment, and no slot is overbooked or miscounted."""
    clinic, problems = state.clinic, failures(errors, level.both.requests)
    if not level.online.latencies_s:
        problems.append("no code post booked: the public site refused every one")
    expected = state.plans[level.online.clients].booked
    if len(level.both.latencies_s) != expected:
        problems.append(f"{len(level.both.latencies_s)} places taken, expected {expected}")
    booked, online = so_far
    appointments = Appointment.objects.for_clinic(clinic).live().count()
    holds = Hold.objects.for_clinic(clinic).live().count()
    if appointments + holds != booked:
        problems.append(f"{appointments} live appointments and {holds} holds after {booked} places taken")
    bookings = OnlineBooking.objects.for_clinic(clinic)
    if bookings.count() != online:
        problems.append(f"{bookings.count()} online bookings after {online} code posts that booked")
    if bookings.filter(status=OnlineStatus.PENDING).count() != holds:
        problems.append(f"{holds} holds, not one per online request")
    if level.overbooked:
        problems.append(f"{level.overbooked} slots overbooked or miscounted")
    if problems:
        clients = level.online.clients
        log = state.server.log_path
        raise RuntimeError(f"online_book_http, {clients} + {clients} clients: " + "; ".join(problems) + f" ({log})")
    checked()


def online_book_run(state: OnlineBookState) -> None:
    """The levels, on slots of their own: patients and receptionists at once, each level checked once they are
    done."""
    levels: dict[int, ContestLevel] = {}
    booked = online = held = 0
    for clients, contest in state.plans.items():
        posts = [
            functools.partial(post_all, http, checks, online_judged)
            for http, checks in zip(state.public, contest.online, strict=False)
        ]
        posts += [
            functools.partial(book_all, http, bookings)
            for http, bookings in zip(state.reception, contest.reception, strict=False)
        ]
        results, wall_s, cpu_s = run_clients(posts)
        online_level, errors = level_of(clients, results[:clients], wall_s, cpu_s)
        reception_level, more_errors = level_of(clients, results[clients:], wall_s, cpu_s)
        both, _ = level_of(clients, results, wall_s, cpu_s)
        booked += len(both.latencies_s)
        online += len(online_level.latencies_s)
        holds = Hold.objects.for_clinic(state.clinic).live().count()
        level = ContestLevel(online_level, reception_level, both, holds - held, slots_overbooked(state.clinic))
        held = holds
        online_book_check(state, level, errors + more_errors, (booked, online))
        levels[clients] = level
    state.runs.append(levels)


def online_book_floor(state: OnlineBookState) -> None:
    """As many GET /healthz by as many clients (patients' and receptionists' sessions) as each level."""
    sessions = {clients: state.public[:clients] + state.reception[:clients] for clients in state.plans}
    state.floors.append(healthz_levels(state.healthz_url, sessions, BOOK_SIZE.per_client))


def online_book_reset(state: OnlineBookState) -> None:
    """No bookings, holds or appointments, no patients registered online, every code unused and every slot
    empty, the dead rows vacuumed: each run starts from the same database."""
    clinic = state.clinic
    with transaction.atomic():
        OnlineBooking.objects.for_clinic(clinic).delete()
        Hold.objects.for_clinic(clinic).delete()
        Appointment.objects.for_clinic(clinic).delete()
        AuditEvent.objects.for_clinic(clinic).delete()
        Message.objects.for_clinic(clinic).delete()
        Patient.objects.for_clinic(clinic).filter(registered_online=True).delete()
        InternalIdCounter.objects.for_clinic(clinic).update(last_number=BOOK_SIZE.patients)
        # Every code unused again: the checks as setup made them (a booked one was deleted with its booking).
        EmailCheck.objects.for_clinic(clinic).delete()
        fields = [f.attname for f in EmailCheck._meta.concrete_fields]
        EmailCheck.objects.bulk_create(
            [EmailCheck(**{name: getattr(check, name) for name in fields}) for check in state.checks], batch_size=500
        )
        Slot.objects.for_clinic(clinic).exclude(booked_count=0, held_count=0).update(booked_count=0, held_count=0)
    vacuum_analyze(Slot, Appointment, Hold, OnlineBooking, AuditEvent, Message, Patient, EmailCheck)


def online_book_figures(result: Result) -> Result:
    """Per level, over the timed runs: p50 and p95 of the patients' code posts that booked (and of reception's
    bookings), online bookings and all bookings per second, /healthz per second by as many clients, the ratio of
    all bookings to it, and the slots overbooked (the most after any level of any run: always 0, or the case
    fails)."""
    state = online_book_setup()
    timed, floors = timed_of("online_book_http", result, state.runs, state.floors)
    figures: Result = {
        "gunicorn_workers": state.server.workers,
        "gunicorn_threads": state.server.threads,
        # 1: with a broker (BENCH_REDIS_URL), as in production; 0: tasks ran in the request (no broker), so every
        # code post that booked also sent the patient's confirmation before it answered.
        "tasks_queued": int(bool(settings.REDIS_URL)),
    }
    lines = [
        f"{'clients':>9}  {'p50 ms':>8}  {'p95 ms':>8}  {'online/s':>8}  {'bookings/s':>10}  {'healthz/s':>9}"
        f"  {'ratio':>6}  {'reception p50/p95 ms':>20}  {'overbooked':>10}"
    ]
    for clients in state.plans:
        levels = [run[clients] for run in timed]
        level_floors = [floor[clients] for floor in floors]
        online = rates_of([level.online for level in levels], level_floors)
        reception = rates_of([level.reception for level in levels], level_floors)
        both = rates_of([level.both for level in levels], level_floors)
        overbooked = max(run[clients].overbooked for run in state.runs)
        figures |= {
            f"c{clients}_online_requests": levels[0].online.requests,
            f"c{clients}_online_refused": levels[0].online.refused,
            f"c{clients}_online_held": levels[0].held,
            f"c{clients}_reception_requests": levels[0].reception.requests,
            f"c{clients}_reception_refused": levels[0].reception.refused,
            f"c{clients}_p50_s": online.p50_s,
            f"c{clients}_p95_s": online.p95_s,
            f"c{clients}_reception_p50_s": reception.p50_s,
            f"c{clients}_reception_p95_s": reception.p95_s,
            f"c{clients}_online_bookings_per_s": round(online.bookings_per_s, 2),
            f"c{clients}_bookings_per_s": round(both.bookings_per_s, 2),
            f"c{clients}_healthz_per_s": round(both.healthz_per_s, 2),
            f"c{clients}_ratio_to_healthz": round(both.ratio, 4),
            f"c{clients}_online_ratio_to_healthz": round(online.ratio, 4),
            f"c{clients}_client_cpus": round(both.client_cpus, 3),
            f"c{clients}_healthz_client_cpus": round(both.healthz_client_cpus, 3),
            f"c{clients}_overbooked": overbooked,
        }
        lines.append(
            f"{f'{clients} + {clients}':>9}  {online.p50_s * 1000:>8.1f}  {online.p95_s * 1000:>8.1f}"
            f"  {online.bookings_per_s:>8.1f}  {both.bookings_per_s:>10.1f}  {both.healthz_per_s:>9.1f}"
            f"  {both.ratio:>6.3f}  {f'{reception.p50_s * 1000:.1f} / {reception.p95_s * 1000:.1f}':>20}"
            f"  {overbooked:>10}"
        )
    print("online_book_http (gunicorn, PostgreSQL; patients + receptionists):\n" + "\n".join(lines) + "\n")
    return figures


register(
    Case(
        name="online_book_http",
        setup=online_book_setup,
        run=online_book_run,
        floor=online_book_floor,
        reset=online_book_reset,
        runs=3,
        warmup=1,
        extras=online_book_figures,
        needs="postgresql",
    )
)
