"""Booking through real HTTP: gunicorn on PostgreSQL, 1, 8 and 32 clients.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``), chosen by the harness."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import dj_database_url
import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS, connection, models, transaction
from django.test import Client
from django.urls import reverse

from benchmarks.cases.common import (
    CALENDAR_MONDAY,
    CALENDAR_TIME_ZONE,
    MODEL_BACKEND,
    CalendarSize,
    booking_fields,
    calendar_patients,
    calendar_rota,
    clinics_clear,
    register,
    slots_miscounted,
    vacuum_analyze,
)
from benchmarks.harness import SETTINGS_MODULE, Case, Result, checked, sized
from benchmarks.http_load import (
    REQUEST_TIMEOUT_S,
    GunicornServer,
    cpu_of_server_and_database,
    cpu_spent,
    percentile,
    run_clients,
)
from clinic.models import AuditEvent, Clinic, Membership, Practitioner, Role
from notifications.models import Kind, Message
from patients.models import Patient
from scheduling.models import Appointment, PendingNews, Session, Slot
from scheduling.services.quick import news_tell_waiting

# --- Booking through real HTTP: gunicorn on PostgreSQL --------------------------------

T = TypeVar("T")
U = TypeVar("U")

BOOKING_SLUG = "bench-booking"
BOOKING_RECEPTION = "bench-booking-reception-{:02}@example.invalid"  # one receptionist per client
BOOKING_SEED = 20_270_308


@dataclass(frozen=True)
class BookingSizes:
    practitioners: int  # the calendar's week: n x 5 days x (26 single slots + 2 groups of 8)
    patients: int  # every 40th is blocked; more to book than the bookings of the biggest run
    per_client: dict[int, int]  # number of clients: requests of each client
    workers: int | None  # gunicorn's; None: two per CPU (as many as PostgreSQL's connections allow)


FULL = BookingSizes(practitioners=40, patients=1_000, per_client={1: 160, 8: 40, 32: 20}, workers=None)  # 160, 320, 640
TINY = BookingSizes(practitioners=2, patients=100, per_client={1: 5, 4: 7}, workers=1)  # 5 and 28: one group at 4
SIZE = sized(FULL, TINY)

BOOKING_CLIENTS = tuple(SIZE.per_client)
BOOKING_PER_CLIENT = SIZE.per_client
BOOKING_GROUP_SHARE = 0.2  # of the requests go into group slots, each booked by several clients at once
BOOKING_GROUP_REQUESTS = 10  # per group slot: more than its 8 places, so that 2 are refused
BOOKING_REFUSALS = ("This slot is full.", "This group is full")
GUNICORN_THREADS = 4
GUNICORN_CONNECTIONS_SPARE = 20  # PostgreSQL connections left to everyone else
ALERT = re.compile(r'<p class="message error" role="alert">(.*?)</p>', re.S)


@dataclass(frozen=True)
class Booking:
    url: str
    form: dict[str, str] | str  # a form's fields, or a body already encoded (the FHIR API's JSON)


@dataclass(frozen=True)
class Outcome:
    kind: str  # "ok" (a booking's 302, healthz's 200), "refused" (200: the slot or group is full), or "error"
    latency_s: float
    detail: str = ""


@dataclass(frozen=True)
class Level:
    """``requests`` requests by ``clients`` clients: the latencies of the successful ones, and the refusals."""

    clients: int
    requests: int
    wall_s: float
    latencies_s: list[float]
    refused: int
    client_cpu_s: float  # CPU time the clients (this process) used meanwhile
    server_cpu_s: float = 0.0  # CPU time of the gunicorn server and its workers meanwhile (0: not measured)
    database_cpu_s: float = 0.0  # CPU time of the PostgreSQL processes meanwhile (0: not measured)


@dataclass(frozen=True)
class BookingState:
    clinic: Clinic
    server: GunicornServer
    sessions: list[requests.Session] = field(default_factory=list)  # one per client, logged in as reception
    plans: dict[int, list[list[Booking]]] = field(default_factory=dict)  # clients -> each client's bookings
    expected: dict[int, tuple[int, int]] = field(default_factory=dict)  # clients -> (booked, refused)
    healthz_url: str = ""
    # Every call of run and floor, in the harness's order: warm-up, timed, then the query-count and memory runs.
    runs: list[dict[int, Level]] = field(default_factory=list)
    floors: list[dict[int, Level]] = field(default_factory=list)
    news: list[float] = field(default_factory=list)  # each run's CPU s per booking, telling its news


def booking_request(base_url: str, slot: Slot, patient: Patient) -> Booking:
    """The form that the booking page posts for ``patient``: "Book"."""
    form = booking_fields(slot, patient, "book")
    return Booking(base_url + reverse("scheduling:book", args=[slot.public_id]), form)


def slots_dealt(
    clients: int, per_client: int, singles: Iterator[Slot], groups: Iterator[Slot], *, group_requests: int
) -> tuple[list[list[Slot]], list[Slot]]:
    """Each client's slots to book, and the group slots among them.

    Most are single slots of their own; BOOKING_GROUP_SHARE are group slots, each ``group_requests`` times, dealt
    round the clients, so that several clients book the same group at about the same point of their lists.
    """
    group_count = round(clients * per_client * BOOKING_GROUP_SHARE / group_requests)
    group_slots = [next(groups) for _ in range(group_count)]
    dealt = [slot for slot in group_slots for _ in range(group_requests)]
    plan = []
    for index in range(clients):
        mine = dealt[index::clients]
        at = {(2 * j + 1) * per_client // (2 * len(mine)) for j in range(len(mine))}
        queue = iter(mine)
        plan.append([next(queue) if position in at else next(singles) for position in range(per_client)])
    return plan, group_slots


def booking_plan(
    base_url: str,
    clients: int,
    singles: Iterator[Slot],
    groups: Iterator[Slot],
    patients: Iterator[Patient],
    *,
    per_client: int | None = None,
    request: Callable[[str, Slot, Patient], Booking] = booking_request,
) -> tuple[list[list[Booking]], tuple[int, int]]:
    """Each client's bookings (``per_client`` each, by default the size's; each made by ``request``, by default
    the booking form's post), all (slot, patient) pairs distinct, and the (booked, refused) they must come to."""
    per_client = BOOKING_PER_CLIENT[clients] if per_client is None else per_client
    slots, group_slots = slots_dealt(clients, per_client, singles, groups, group_requests=BOOKING_GROUP_REQUESTS)
    plan = [[request(base_url, slot, next(patients)) for slot in mine] for mine in slots]
    booked = clients * per_client - len(group_slots) * BOOKING_GROUP_REQUESTS
    booked += sum(min(BOOKING_GROUP_REQUESTS, slot.capacity) for slot in group_slots)
    return plan, (booked, clients * per_client - booked)


def booking_clinic(
    slug: str = BOOKING_SLUG,
    name: str = "Benchmark booking",
    *,
    size: BookingSizes = SIZE,
    reception: str = BOOKING_RECEPTION,
    monday: dt.date = CALENDAR_MONDAY,
) -> tuple[Clinic, list[User]]:
    """The calendar's week (from ``monday``) for the size's practitioners, its patients, and a receptionist (of this
    clinic only, named by ``reception``) per client."""
    clinics_clear([slug])
    clinic = Clinic.objects.create(name=name, slug=slug, time_zone=CALENDAR_TIME_ZONE, internal_ids_enabled=True)
    calendar_rota(clinic, CalendarSize(slug, "", size.practitioners, 0, 0, size.patients), monday=monday)
    with transaction.atomic():
        calendar_patients(clinic, random.Random(BOOKING_SEED), size.patients)
    users = []
    for index in range(max(size.per_client)):
        username = reception.format(index)
        user, created = User.objects.get_or_create(username=username, defaults={"email": username})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        Membership.objects.create(clinic=clinic, user=user, role=Role.RECEPTION)
        users.append(user)
    with connection.cursor() as cursor:  # statistics, as autovacuum would leave them
        tables = ", ".join(m._meta.db_table for m in (Slot, Session, Appointment, Patient, Practitioner))
        cursor.execute(f"ANALYZE {tables}")
    return clinic, users


def gunicorn_workers(wanted: int | None) -> int:
    """Two per CPU (or ``wanted``), as long as every worker thread can keep a PostgreSQL connection."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])
    wanted = wanted or 2 * (os.cpu_count() or 2)
    return max(1, min(wanted, (max_connections - GUNICORN_CONNECTIONS_SPARE) // GUNICORN_THREADS))


def booking_server(workers: int | None = SIZE.workers, **settings_env: str) -> GunicornServer:
    """gunicorn on the benchmarks' database (the URL the harness chose), DEBUG off, as the in-process cases;
    ``settings_env``: more settings read from the environment (e.g. the public site's rate limits)."""
    url = os.environ["DATABASE_URL"]
    if str(dj_database_url.parse(url)["NAME"]) != str(settings.DATABASES[DEFAULT_DB_ALIAS]["NAME"]):
        raise RuntimeError("DATABASE_URL is not the database Django is using: refusing to start the server")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        **settings_env,
    }
    return GunicornServer(
        "clinic.wsgi:application",
        workers=gunicorn_workers(workers),
        threads=GUNICORN_THREADS,
        env=env,
        ready_path=reverse("healthz"),
    )


def reception_session(base_url: str, user: User) -> requests.Session:
    """An HTTP client logged in as ``user`` (a session made as the test client makes one: no password, no axes),
    holding the CSRF cookie of a page and sending it back as the header."""
    client = Client()
    client.force_login(user, backend=MODEL_BACKEND)
    http = requests.Session()
    http.cookies.set(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)
    home = http.get(base_url + reverse("home"), allow_redirects=False, timeout=60)  # also stores the clinic
    token = http.cookies.get(settings.CSRF_COOKIE_NAME)
    if home.status_code != 200 or not token:
        raise RuntimeError(f"{user.username}: GET / returned {home.status_code}, CSRF cookie {bool(token)}")
    http.headers["X-CSRFToken"] = token
    return http


def on_postgresql(name: str) -> float:
    """Refuse any database but PostgreSQL (the harness skips the case elsewhere: Case.needs); the load average
    before the set-up, the other processes' share of the CPUs before ours adds to it."""
    if connection.vendor != "postgresql":
        raise RuntimeError(f"{name} measures gunicorn on PostgreSQL, and this database is {connection.vendor}")
    return os.getloadavg()[0]


def slots_shuffled(clinic: Clinic) -> tuple[Iterator[Slot], Iterator[Slot]]:
    """The clinic's bookable single slots and group slots, each in a random order (the same every time)."""
    slots = Slot.objects.for_clinic(clinic).filter(bookable=True).select_related("slot_type").order_by("id")
    rng = random.Random(BOOKING_SEED)
    singles = [slot for slot in slots if slot.capacity == 1]
    groups = [slot for slot in slots if slot.capacity > 1]
    rng.shuffle(singles)
    rng.shuffle(groups)
    return iter(singles), iter(groups)


@contextmanager
def server_started(name: str, server: GunicornServer, load: float) -> Iterator[str]:
    """Start ``server`` and give its base URL to the rest of the set-up: stopped if that fails, else announced
    with the load average before the set-up (``load``)."""
    base_url = server.start()
    try:
        yield base_url
    except BaseException:
        server.stop()
        raise
    print(
        f"{name}: gunicorn at {base_url}, {server.workers} workers x {server.threads} threads, "
        f"{os.cpu_count()} CPUs; load average before the set-up {load:.1f}"
        + (" (a busy machine: expect noisy figures)" if load > (os.cpu_count() or 1) else ""),
        file=sys.stderr,
    )


@functools.cache
def booking_setup() -> BookingState:
    load = on_postgresql("booking_http")
    clinic, users = booking_clinic()
    single_slots, group_slots = slots_shuffled(clinic)  # no slot is in two of the runs
    patients = list(Patient.objects.for_clinic(clinic).filter(is_blocked=False).order_by("id"))

    server = booking_server()
    with server_started("booking_http", server, load) as base_url:
        sessions = [reception_session(base_url, user) for user in users]
        plans, expected = {}, {}
        for clients in BOOKING_CLIENTS:  # within a run, every patient is booked once at most
            plans[clients], expected[clients] = booking_plan(
                base_url, clients, single_slots, group_slots, iter(patients)
            )
    return BookingState(
        clinic=clinic,
        server=server,
        sessions=sessions,
        plans=plans,
        expected=expected,
        healthz_url=base_url + reverse("healthz"),
    )


def post_all(
    http: requests.Session, posts: Sequence[Booking], judge: Callable[[requests.Response], tuple[str, str]]
) -> list[Outcome]:
    """One client's form posts, one after the other, each timed and judged: (kind, detail) of its response."""
    outcomes = []
    for post in posts:
        start = time.perf_counter()
        response = http.post(post.url, data=post.form, allow_redirects=False, timeout=REQUEST_TIMEOUT_S)
        latency = time.perf_counter() - start
        # The success message waits in a cookie for the next page, which a browser would load at once: drop it.
        http.cookies.pop("messages", None)
        kind, detail = judge(response)
        outcomes.append(Outcome(kind, latency, detail))
    return outcomes


@dataclass(frozen=True)
class Judge:
    """What a form's answer was: "ok" (a redirect to ``booked_at``), "refused" (the form again, ``refused_status``,
    its ``message`` one of ``refusals``), or "error" with the status and message."""

    refused_status: int
    message: re.Pattern[str]
    refusals: tuple[str, ...]
    booked_at: str = ""  # a part of the redirect's Location

    def __call__(self, response: requests.Response) -> tuple[str, str]:
        if response.status_code == 302 and self.booked_at in response.headers.get("Location", ""):
            return "ok", ""
        found = self.message.search(response.text)
        message = found.group(1).strip() if found else ""
        if response.status_code == self.refused_status and message.startswith(self.refusals):
            return "refused", ""
        return "error", f"{response.status_code} {message}"


# The booking form's answer: a redirect (booked), or the form again saying that the slot or group is full.
booking_judged = Judge(refused_status=200, message=ALERT, refusals=BOOKING_REFUSALS)


def book_all(http: requests.Session, bookings: Sequence[Booking]) -> list[Outcome]:
    """One client's bookings, one after the other, as the calendar's form posts them without htmx."""
    return post_all(http, bookings, booking_judged)


def get_healthz(http: requests.Session, url: str, count: int) -> list[Outcome]:
    outcomes = []
    for _ in range(count):
        start = time.perf_counter()
        response = http.get(url, timeout=REQUEST_TIMEOUT_S)
        latency = time.perf_counter() - start
        ok = response.status_code == 200 and response.text == "ok"
        outcomes.append(Outcome("ok", latency) if ok else Outcome("error", latency, str(response.status_code)))
    return outcomes


def level_of(clients: int, results: list[list[Outcome]], wall_s: float, cpu_s: float) -> tuple[Level, list[str]]:
    outcomes = [outcome for client in results for outcome in client]
    kinds = Counter(outcome.kind for outcome in outcomes)
    errors = [outcome.detail for outcome in outcomes if outcome.kind == "error"]
    latencies = [outcome.latency_s for outcome in outcomes if outcome.kind == "ok"]
    return Level(clients, len(outcomes), wall_s, latencies, kinds["refused"], cpu_s), errors


def failures(errors: Sequence[str], requests: int) -> list[str]:
    """The problem to report when requests failed (the five commonest answers), or none."""
    if not errors:
        return []
    common = ", ".join(f"{count} x {detail!r}" for detail, count in Counter(errors).most_common(5))
    return [f"{len(errors)} of {requests} requests failed ({common})"]


def bookings_agree(
    clinic: Clinic,
    level: Level,
    errors: list[str],
    *,
    booked_so_far: int,
    expected: tuple[int, int],
    name: str,
    log: object,
) -> None:
    """The responses and the database agree: (booked, refused) are as ``expected``, every booking is one live
    appointment, no slot holds more than its capacity, and every slot's booked_count is its number of live
    appointments. Anything else is an error naming the case (``name``) and the server's ``log``."""
    problems = failures(errors, level.requests)
    found = (len(level.latencies_s), level.refused)
    if found != expected:
        problems.append(f"(booked, refused) are {found}, expected {expected}")
    live = Appointment.objects.for_clinic(clinic).live().count()
    if live != booked_so_far:
        problems.append(f"{live} live appointments after {booked_so_far} successful bookings")
    slots = Slot.objects.for_clinic(clinic)
    over = slots.filter(booked_count__gt=models.F("capacity")).count()
    if over:
        problems.append(f"{over} slots hold more than their capacity")
    wrong = slots_miscounted(clinic)
    if wrong:
        problems.append(f"{wrong} slots have a booked_count other than their live appointments")
    if problems:
        raise RuntimeError(f"{name}: " + "; ".join(problems) + f" (server log: {log})")
    checked()


def booking_check(state: BookingState, level: Level, errors: list[str], booked_so_far: int) -> None:
    bookings_agree(
        state.clinic,
        level,
        errors,
        booked_so_far=booked_so_far,
        expected=state.expected[level.clients],
        name=f"booking_http, {level.clients} clients",
        log=state.server.log_path if state.server else None,
    )


def news_told(clinic: Clinic, name: str) -> float | None:
    """Tell the news the bookings left for a worker, in this process, as a worker would (the case runs none; called
    between runs, so that neither a run's time nor its query count includes it), and check that every live
    appointment then has its confirmation. With a broker, each booking left its news (every one is the plain case,
    booked in one call): the CPU telling it cost this process and the database, per booking, in seconds (the work a
    booking hands to the workers). Without one (tasks run in the web process) nothing waits: None."""
    waiting = PendingNews.objects.for_clinic(clinic).count()
    booked = Appointment.objects.for_clinic(clinic).live().count()
    if waiting not in (0, booked):
        raise RuntimeError(f"{name}: {waiting} bookings' news waiting after {booked} bookings")
    before, database_before = time.process_time(), cpu_of_server_and_database(None)[1]
    told = news_tell_waiting()
    cpu_s = time.process_time() - before + cpu_spent(database_before, cpu_of_server_and_database(None)[1]) / 1e9
    unconfirmed = (
        Appointment.objects.for_clinic(clinic)
        .live()
        .exclude(pk__in=Message.objects.for_clinic(clinic).filter(kind=Kind.CONFIRMATION).values("appointment_id"))
        .count()
    )
    if told != waiting or unconfirmed:
        raise RuntimeError(f"{name}: {told} of {waiting} bookings' news told; {unconfirmed} appointments unconfirmed")
    checked()
    return cpu_s / waiting if waiting else None


def level_measured(
    server: GunicornServer | None, clients: int, work: Sequence[Callable[[], list[Outcome]]]
) -> tuple[Level, list[str]]:
    """Run the clients' ``work`` all at once: the level, with what it cost ``server`` and the database in CPU
    (0 where that could not be read), and its errors."""
    pid = server.process.pid if server is not None and server.process is not None else None
    server_before, database_before = cpu_of_server_and_database(pid)
    results, wall_s, cpu_s = run_clients(list(work))
    server_after, database_after = cpu_of_server_and_database(pid)
    level, errors = level_of(clients, results, wall_s, cpu_s)
    if pid is None:
        return level, errors
    measured = dataclasses.replace(
        level,
        server_cpu_s=cpu_spent(server_before, server_after) / 1e9,
        database_cpu_s=cpu_spent(database_before, database_after) / 1e9,
    )
    return measured, errors


def booking_run(state: BookingState) -> None:
    """The three runs, 1, 8 and 32 clients, on slots of their own; each is checked once its clients are done."""
    levels, booked = {}, 0
    for clients in BOOKING_CLIENTS:
        plan = state.plans[clients]
        level, errors = level_measured(
            state.server,
            clients,
            [functools.partial(book_all, http, bookings) for http, bookings in zip(state.sessions, plan, strict=False)],
        )
        booked += len(level.latencies_s)
        booking_check(state, level, errors, booked)
        levels[clients] = level
    state.runs.append(levels)


def healthz_levels(
    url: str,
    sessions: Mapping[int, Sequence[requests.Session]],
    count: Mapping[int, int],
    server: GunicornServer | None = None,
) -> dict[int, Level]:
    """Per level (a number of clients): its ``sessions`` each GET /healthz ``count[level]`` times, all at once
    (with ``server``, what that cost it and the database in CPU)."""
    levels = {}
    for clients, https in sessions.items():
        level, errors = level_measured(
            server, clients, [functools.partial(get_healthz, http, url, count[clients]) for http in https]
        )
        if errors:
            raise RuntimeError(f"GET /healthz, {len(https)} clients: {len(errors)} failed ({Counter(errors)})")
        levels[clients] = level
    return levels


def booking_floor(state: BookingState) -> None:
    """As many GET /healthz (one SELECT 1, the same session and middleware) by as many clients."""
    sessions = {clients: state.sessions[:clients] for clients in BOOKING_CLIENTS}
    state.floors.append(healthz_levels(state.healthz_url, sessions, BOOKING_PER_CLIENT, state.server))


def bookings_cleared(clinic: Clinic) -> None:
    """No appointments, every booked_count 0, the dead rows vacuumed: each run starts from the same database."""
    with transaction.atomic():
        Appointment.objects.for_clinic(clinic).delete()
        AuditEvent.objects.for_clinic(clinic).delete()
        PendingNews.objects.for_clinic(clinic).delete()
        Slot.objects.for_clinic(clinic).exclude(booked_count=0).update(booked_count=0)
    vacuum_analyze(Slot, Appointment, AuditEvent)


def booking_reset(state: BookingState) -> None:
    cpu_s = news_told(state.clinic, "booking_http")
    if cpu_s is not None:
        state.news.append(cpu_s)
    bookings_cleared(state.clinic)


@dataclass(frozen=True)
class Rates:
    """One level over the timed runs: p50 and p95 of the successful requests' latencies (all runs pooled), and
    medians of the runs: bookings per second, /healthz requests per second, and the CPUs the clients used."""

    p50_s: float
    p95_s: float
    bookings_per_s: float
    healthz_per_s: float
    client_cpus: float  # CPUs the clients kept from the server
    healthz_client_cpus: float

    @property
    def ratio(self) -> float:
        return self.bookings_per_s / self.healthz_per_s


def level_figures(clients: int, level: Level, rates: Rates) -> dict[str, float | int | str]:
    """One level's figures in the results file (`c<clients>_…`), as every HTTP booking case records them."""
    return {
        f"c{clients}_requests": level.requests,
        f"c{clients}_refused": level.refused,
        f"c{clients}_p50_s": rates.p50_s,
        f"c{clients}_p95_s": rates.p95_s,
        f"c{clients}_bookings_per_s": round(rates.bookings_per_s, 2),
        f"c{clients}_healthz_per_s": round(rates.healthz_per_s, 2),
        f"c{clients}_ratio_to_healthz": round(rates.ratio, 4),
        f"c{clients}_client_cpus": round(rates.client_cpus, 3),
    }


def rates_of(timed: Sequence[Level], floors: Sequence[Level]) -> Rates:
    latencies = [latency for level in timed for latency in level.latencies_s]
    return Rates(
        p50_s=percentile(latencies, 0.5),
        p95_s=percentile(latencies, 0.95),
        bookings_per_s=statistics.median(len(level.latencies_s) / level.wall_s for level in timed),
        healthz_per_s=statistics.median(floor.requests / floor.wall_s for floor in floors),
        client_cpus=statistics.median(level.client_cpu_s / level.wall_s for level in timed),
        healthz_client_cpus=statistics.median(floor.client_cpu_s / floor.wall_s for floor in floors),
    )


def timed_of(name: str, result: Result, runs: Sequence[T], floors: Sequence[U]) -> tuple[Sequence[T], Sequence[U]]:
    """The records of the timed calls of run and floor, in the harness's order (after the warm-up ones)."""
    warmup, count = int(result["warmup"]), int(result["runs"])
    timed, timed_floors = runs[warmup : warmup + count], floors[warmup : warmup + count]
    if len(timed) != count or len(timed_floors) != count:
        raise RuntimeError(f"{name}: {len(runs)} runs and {len(floors)} floors recorded")
    return timed, timed_floors


def cpu_per_request(clients: int, timed: Sequence[Level], prefix: str = "") -> Result:
    """What one request (a booking, booked or refused as full; with ``prefix`` "healthz_", one GET /healthz) cost
    the server (gunicorn) and the database (PostgreSQL) in CPU, in ms: medians over the timed runs (docs/scaling.md
    builds its capacity figures on them). Nothing where it could not be read."""
    runs = [level for level in timed if level.requests and level.server_cpu_s > 0]
    if not runs:
        return {}
    return {
        f"c{clients}_{prefix}server_cpu_ms_per_request": round(
            statistics.median(level.server_cpu_s / level.requests for level in runs) * 1000, 2
        ),
        f"c{clients}_{prefix}database_cpu_ms_per_request": round(
            statistics.median(level.database_cpu_s / level.requests for level in runs) * 1000, 2
        ),
    }


def request_cpu_ms(clients: int, figures: Result, prefix: str = "") -> float | None:
    """A request's server + database CPU in ms (a booking's; with ``prefix`` "healthz_", a /healthz's), None where it
    was not measured."""
    server = figures.get(f"c{clients}_{prefix}server_cpu_ms_per_request")
    database = figures.get(f"c{clients}_{prefix}database_cpu_ms_per_request")
    return None if server is None or database is None else float(server) + float(database)


def cpu_text(clients: int, figures: Result, prefix: str) -> str:
    cpu = request_cpu_ms(clients, figures, prefix)
    return "-" if cpu is None else f"{cpu:.1f}"


def cpu_bound_ratio(clients: int, figures: Result) -> Result:
    """The ratio booking could reach if the CPUs were the only limit: what a /healthz costs the server and the
    database over what a booking costs them (the clients' own CPU left out). Nothing without both figures."""
    booking, healthz = request_cpu_ms(clients, figures), request_cpu_ms(clients, figures, "healthz_")
    if not booking or healthz is None:
        return {}
    return {f"c{clients}_cpu_bound_ratio": round(healthz / booking, 4)}


def booking_figures(result: Result) -> Result:
    """Per number of clients, over the timed runs: p50 and p95 of the successful bookings' latencies (all runs
    pooled), bookings per second and /healthz requests per second (medians of the runs), and their ratio."""
    state = booking_setup()
    timed, floors = timed_of("booking_http", result, state.runs, state.floors)
    figures: Result = {"gunicorn_workers": state.server.workers, "gunicorn_threads": state.server.threads}
    lines = [
        f"{'clients':>7}  {'p50 ms':>8}  {'p95 ms':>8}  {'bookings/s':>10}  {'healthz/s':>10}  {'ratio':>6}"
        f"  {'client CPUs':>11}  {'CPU ms: booking':>15}  {'healthz':>7}  {'CPU-bound ratio':>15}"
    ]
    for clients in BOOKING_CLIENTS:
        rates = rates_of([run[clients] for run in timed], [floor[clients] for floor in floors])
        figures |= level_figures(clients, timed[0][clients], rates) | {
            f"c{clients}_healthz_client_cpus": round(rates.healthz_client_cpus, 3),
            **cpu_per_request(clients, [run[clients] for run in timed]),
            **cpu_per_request(clients, [floor[clients] for floor in floors], "healthz_"),
        }
        figures |= cpu_bound_ratio(clients, figures)
        lines.append(
            f"{clients:>7}  {rates.p50_s * 1000:>8.1f}  {rates.p95_s * 1000:>8.1f}  {rates.bookings_per_s:>10.1f}"
            f"  {rates.healthz_per_s:>10.1f}  {rates.ratio:>6.3f}  {rates.client_cpus:>4.2f}"
            f" {rates.healthz_client_cpus:>6.2f}  {cpu_text(clients, figures, ''):>15}"
            f"  {cpu_text(clients, figures, 'healthz_'):>7}  {figures.get(f'c{clients}_cpu_bound_ratio', '-'):>15}"
        )
    if state.news:
        # What each booking hands to the workers (its observers told after commit), measured in this process.
        figures["news_cpu_ms_per_booking"] = round(statistics.median(state.news) * 1000, 2)
        lines.append(
            f"telling a booking's news (a worker's work after commit): {figures['news_cpu_ms_per_booking']} ms CPU"
        )
    print("booking_http (gunicorn, PostgreSQL):\n" + "\n".join(lines) + "\n")
    return figures


register(
    Case(
        name="booking_http",
        setup=booking_setup,
        run=booking_run,
        floor=booking_floor,
        reset=booking_reset,
        runs=3,
        warmup=1,
        extras=booking_figures,
        needs="postgresql",
    )
)
