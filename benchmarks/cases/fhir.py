"""The FHIR API (GP Connect Appointment Management). ``fhir_slot_search``: a consumer's free-slot search over 14
days with all four includes, through Django's test client, for a practice of 20 practitioners each with a GP
Connect morning session of 15-minute slots every weekday (some booked). ``fhir_book_http``: consumers' Appointment
POSTs into free GP Connect slots (single slots and contested groups) through gunicorn on PostgreSQL at 1, 8 and 32
clients, each with a bearer token of its own.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``), chosen by the harness."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import requests
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import Application

from benchmarks.cases.booking import (
    Booking,
    BookingSizes,
    Level,
    booking_clinic,
    booking_plan,
    booking_server,
    failures,
    healthz_levels,
    level_figures,
    level_of,
    on_postgresql,
    post_all,
    rates_of,
    server_started,
    slots_shuffled,
    timed_of,
)
from benchmarks.cases.common import (
    CALENDAR_TIME_ZONE,
    CALENDAR_WEEKDAYS,
    DEMO_ADMIN,
    calendar_patients,
    clinics_clear,
    register,
    slots_book_to,
    slots_overbooked,
    vacuum_analyze,
)
from benchmarks.cases.online import book_monday
from benchmarks.harness import Case, Result, checked, count_queries, sized
from benchmarks.http_load import REQUEST_TIMEOUT_S, GunicornServer, percentile, run_clients
from clinic.models import AuditEvent, Clinic, Location, Practitioner, PractitionerRole
from fhir_api.models import Consumer, FhirBooking, Scope
from fhir_api.resources import FHIR_JSON
from fhir_api.services.consumers import Credentials, consumer_create
from patients.models import Patient
from scheduling.models import Appointment, Session, Slot
from scheduling.services.rota import AllocationRequest, allocation_create
from sessions_setup.models import SessionTemplate, SlotKind, SlotType, TemplateSlot

CONSUMER_SECRET = "bench-consumer-secret-0123456789abcdef"  # the benchmarks' own consumers only
CONSUMER_RATE_LIMIT = 1_000_000_000  # calls a minute: the benchmark measures the API, not its rate limit
REQUESTER = {"X-Requesting-Practitioner": "Dr Bench (SDS 555)", "X-Requesting-Organization": "NHS111"}
INCLUDES = {
    "_include": ["Slot:schedule"],
    "_include:recurse": ["Schedule:actor:Practitioner", "Schedule:actor:Location", "Location:managingOrganization"],
}


def fhir_clinics_clear(slugs: Sequence[str]) -> None:
    """Remove the clinics of an earlier run (a kept BENCH_DATABASE_URL): their FHIR bookings, consumers and the
    consumers' OAuth2 clients (with their tokens) first, then the rest (``clinics_clear``)."""
    consumers = Consumer.objects.filter(clinic__slug__in=slugs)
    applications = list(consumers.values_list("application_id", flat=True))
    with transaction.atomic():
        FhirBooking.objects.filter(clinic__slug__in=slugs).delete()
        consumers.delete()
        Application.objects.filter(id__in=applications).delete()  # its tokens go with it
    clinics_clear(slugs)


def bench_consumer(clinic: Clinic, slot_types: Sequence[SlotType], name: str) -> Credentials:
    """A consumer of ``clinic`` (every scope, these slot types), made by the demo admin as the admin's page makes
    one, with a known secret."""
    admin = get_user_model().objects.get(username=DEMO_ADMIN)
    return consumer_create(
        clinic=clinic,
        actor=admin,
        name=name,
        organisation_type="urgent-care",
        ods_code="NHS111",
        scopes=list(Scope.values),
        slot_types=slot_types,
        rate_limit=CONSUMER_RATE_LIMIT,
        client_secret=CONSUMER_SECRET,
    )


# --- fhir_slot_search: GET /fhir/Slot over 14 days with every include ------------------------------------------

SEARCH_SLUG = "bench-fhir-search"


@dataclass(frozen=True)
class SearchSizes:
    practitioners: int
    slots_per_session: int  # 15-minute slots from 08:30, each weekday morning
    patients: int


SEARCH_FULL = SearchSizes(practitioners=20, slots_per_session=12, patients=1_000)  # 20 x 10 days x 12 = 2,400 slots
SEARCH_TINY = SearchSizes(practitioners=2, slots_per_session=4, patients=60)
SEARCH_SIZE = sized(SEARCH_FULL, SEARCH_TINY)
SEARCH_DAYS = 14  # GP Connect's longest search: two weeks of weekdays
SEARCH_SHORT_DAYS = 3  # the second search, on fewer slots: it must take as many queries
SEARCH_BOOKED_SHARE = 0.3
SEARCH_SEED = 20_261_207
SEARCH_START = dt.time(8, 30)
SEARCH_SLOT_MINUTES = 15


@dataclass(frozen=True)
class SearchState:
    clinic: Clinic
    client: Client
    headers: dict[str, str]
    monday: dt.date  # the first day of the rota's two weeks
    url: str  # the 14 days
    short_url: str  # the first SEARCH_SHORT_DAYS of them
    floor_url: str  # the same search over the week before the rota: nothing found
    times: list[float] = field(default_factory=list)  # every run's own timing, in the harness's order
    bundles: list[bytes] = field(default_factory=list)  # the last run's answer


def search_url(first: dt.date, days: int) -> str:
    last = first + dt.timedelta(days=days - 1)
    query = {"start": f"ge{first}", "end": f"le{last}", "status": "free", **INCLUDES}
    return reverse("fhir_api:slot-search") + "?" + urlencode(query, doseq=True)


def search_rota(clinic: Clinic, monday: dt.date) -> SlotType:
    """A GP consultation type, one GP Connect morning template (role GP, at the main surgery) and each
    practitioner's sessions of it on the weekdays of the two weeks from ``monday`` (through the rota service)."""
    location = Location.objects.create(
        clinic=clinic,
        name="High Street Surgery",
        kind=Location.Kind.MAIN,
        time_zone=CALENDAR_TIME_ZONE,
        address="1 High Street, Anytown",
        postcode="AB1 2CD",
    )
    consult = SlotType.objects.create(
        clinic=clinic,
        name="GP consultation",
        colour="blue",
        kind=SlotKind.FACE_TO_FACE,
        capacity=1,
        default_length_minutes=SEARCH_SLOT_MINUTES,
        bookable=True,
    )
    template = SessionTemplate.objects.create(
        clinic=clinic,
        name="GP Connect AM",
        colour="navy",
        description="Morning surgery",
        gp_connect_bookable=True,
        practitioner_role=PractitionerRole.GP,
        location=location,
    )
    TemplateSlot.objects.bulk_create(
        TemplateSlot(
            clinic=clinic, template=template, position=i, slot_type=consult, length_minutes=SEARCH_SLOT_MINUTES
        )
        for i in range(SEARCH_SIZE.slots_per_session)
    )
    last_friday = monday + dt.timedelta(days=SEARCH_DAYS - 3)
    for number in range(1, SEARCH_SIZE.practitioners + 1):
        practitioner = Practitioner.objects.create(
            clinic=clinic, name=f"Dr FHIR {number:02}", role=PractitionerRole.GP, default_location=location
        )
        request = AllocationRequest(
            template, practitioner, location, SEARCH_START, monday, last_friday, CALENDAR_WEEKDAYS, every_weeks=1
        )
        allocation_create(clinic=clinic, actor=None, request=request)
    return consult


def basic_auth(credentials: Credentials) -> str:
    pair = f"{credentials.client_id}:{credentials.client_secret}".encode()
    return f"Basic {base64.b64encode(pair).decode()}"


def bearer_client(credentials: Credentials) -> tuple[Client, dict[str, str]]:
    """A test client and the headers of a call with a token from the token endpoint (client credentials)."""
    client = Client()
    response = client.post(
        reverse("fhir_api:token"),
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic_auth(credentials),
    )
    if response.status_code != 200:
        raise RuntimeError(f"the token endpoint answered {response.status_code}: {response.content[:300]!r}")
    token = response.json()["access_token"]
    return client, {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_ACCEPT": FHIR_JSON}


@functools.cache
def search_setup() -> SearchState:
    fhir_clinics_clear([SEARCH_SLUG])
    clinic = Clinic.objects.create(
        name="Benchmark FHIR practice",
        slug=SEARCH_SLUG,
        time_zone=CALENDAR_TIME_ZONE,
        internal_ids_enabled=True,
        ods_code="B12345",
    )
    monday = book_monday(timezone.now())  # in the future whenever the case runs
    consult = search_rota(clinic, monday)
    rng = random.Random(SEARCH_SEED)
    with transaction.atomic():
        patients = calendar_patients(clinic, rng, SEARCH_SIZE.patients)
    slots = list(Slot.objects.for_clinic(clinic).select_related("session").order_by("id"))
    booked = rng.sample(slots, round(len(slots) * SEARCH_BOOKED_SHARE))
    admin = get_user_model().objects.get(username=DEMO_ADMIN)
    slots_book_to(clinic, [(slot, 1) for slot in booked], rng, patients, admin)
    credentials = bench_consumer(clinic, [consult], "NHS 111 bench")
    client, headers = bearer_client(credentials)
    if connection.vendor == "postgresql":
        vacuum_analyze(Slot, Session, Appointment, Practitioner, Patient)
    return SearchState(
        clinic=clinic,
        client=client,
        headers=headers,
        monday=monday,
        url=search_url(monday, SEARCH_DAYS),
        short_url=search_url(monday, SEARCH_SHORT_DAYS),
        floor_url=search_url(monday - dt.timedelta(days=7), 7),
    )


def search_get(state: SearchState, url: str) -> bytes:
    """GET the search; anything but a 200 is an error, never a measurement."""
    response = state.client.get(url, **state.headers)  # type: ignore[arg-type]
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} returned {response.status_code}: {response.content[:300]!r}")
    return response.content


def search_run(state: SearchState) -> None:
    start = time.perf_counter()
    content = search_get(state, state.url)
    state.times.append(time.perf_counter() - start)
    state.bundles[:] = [content]


def search_floor(state: SearchState) -> None:
    """The same call over a week with no sessions: token, consumer, rate limit, audit, an empty Bundle."""
    search_get(state, state.floor_url)


def bundle_kinds(content: bytes) -> dict[str, int]:
    bundle = json.loads(content)
    kinds: dict[str, int] = {}
    for entry in bundle.get("entry", []):
        kind = entry["resource"]["resourceType"]
        kinds[kind] = kinds.get(kind, 0) + 1
    kinds["total"] = bundle["total"]
    return kinds


def free_in(state: SearchState, first: dt.date, days: int) -> tuple[int, int]:
    """The clinic's slots that start in the ``days`` from ``first`` (its clock), and the free ones among them."""
    local = ZoneInfo(state.clinic.time_zone)  # a date alone is a day on the clinic's clock, as the API reads it
    start = dt.datetime.combine(first, dt.time(), tzinfo=local)
    end = dt.datetime.combine(first + dt.timedelta(days=days), dt.time(), tzinfo=local)
    slots = Slot.objects.for_clinic(state.clinic).filter(starts_at__gte=start, ends_at__lte=end)
    return slots.count(), slots.filter(booked_count=0).count()


def search_check(state: SearchState) -> None:
    """The Bundle holds every free slot of the 14 days and nothing booked, each practitioner, role, schedule and
    location once, the organisation once; a search over fewer slots takes as many queries."""
    kinds = bundle_kinds(state.bundles[-1])
    slots, free = free_in(state, state.monday, SEARCH_DAYS)
    sessions = Session.objects.for_clinic(state.clinic).filter(slots__booked_count=0).distinct().count()
    expected = {
        "total": free,
        "Slot": free,
        "Schedule": sessions,
        "Practitioner": SEARCH_SIZE.practitioners,
        "PractitionerRole": SEARCH_SIZE.practitioners,
        "Location": 1,
        "Organization": 1,
    }
    if kinds != expected or not 0 < free < slots:
        raise RuntimeError(f"fhir_slot_search: the Bundle holds {kinds}, expected {expected} ({slots} slots)")
    checked()
    short_kinds = bundle_kinds(search_get(state, state.short_url))
    long_queries = count_queries(lambda: search_get(state, state.url))
    short_queries = count_queries(lambda: search_get(state, state.short_url))
    if not 0 < short_kinds["Slot"] < kinds["Slot"] or short_queries != long_queries:
        raise RuntimeError(
            f"fhir_slot_search: {long_queries} queries for {kinds['Slot']} free slots, {short_queries} for "
            f"{short_kinds['Slot']}: the query count must not grow with the slots"
        )
    checked()


def search_figures(result: Result) -> Result:
    """p95 of the timed runs, the slots found and the Bundle's size, and the shorter search's query count (the
    same: checked)."""
    state = search_setup()
    warmup, runs = int(result["warmup"]), int(result["runs"])
    timed = state.times[warmup : warmup + runs]
    if len(timed) != runs:
        raise RuntimeError(f"fhir_slot_search: {len(state.times)} runs recorded")
    content = search_get(state, state.url)
    kinds = bundle_kinds(content)
    short = bundle_kinds(search_get(state, state.short_url))
    figures: Result = {
        "p95_s": percentile(timed, 0.95),
        "slots_in_window": free_in(state, state.monday, SEARCH_DAYS)[0],
        "free_slots": kinds["Slot"],
        "entries": sum(count for kind, count in kinds.items() if kind != "total"),
        "bundle_kb": round(len(content) / 1024, 1),
        "short_free_slots": short["Slot"],
        "short_queries": count_queries(lambda: search_get(state, state.short_url)),
    }
    print(
        f"fhir_slot_search: {figures['free_slots']} free of {figures['slots_in_window']} slots, "
        f"{figures['entries']} entries, {figures['bundle_kb']} kB; median {statistics.median(timed) * 1000:.1f} ms, "
        f"p95 {figures['p95_s'] * 1000:.1f} ms; {result['queries']} queries "
        f"({figures['short_queries']} for {figures['short_free_slots']} free slots)\n"
    )
    return figures


register(
    Case(
        name="fhir_slot_search",
        setup=search_setup,
        run=search_run,
        floor=search_floor,
        check=search_check,
        extras=search_figures,
    )
)


# --- fhir_book_http: Appointment POSTs through gunicorn on PostgreSQL ------------------------------------------

BOOK_SLUG = "bench-fhir-book"
BOOK_RECEPTION = "bench-fhir-reception-{:02}@example.invalid"  # booking_clinic's receptionists: unused here
# The calendar's week (single slots and groups of 8) released for GP Connect; per_client as booking_http's.
BOOK_FULL = BookingSizes(practitioners=40, patients=1_000, per_client={1: 160, 8: 40, 32: 20}, workers=None)
BOOK_TINY = BookingSizes(practitioners=2, patients=100, per_client={1: 5, 4: 7}, workers=1)  # one contested group at 4
BOOK_SIZE = sized(BOOK_FULL, BOOK_TINY)


@dataclass(frozen=True)
class BookLevel:
    level: Level
    overbooked: int  # slots_overbooked after the level: must be 0


@dataclass(frozen=True)
class FhirBookState:
    clinic: Clinic
    server: GunicornServer
    sessions: list[requests.Session]  # one per client, each with a bearer token of its own
    plans: dict[int, list[list[Booking]]]  # clients -> each client's Appointment POSTs
    expected: dict[int, tuple[int, int]]  # clients -> (booked, refused)
    healthz_url: str
    runs: list[dict[int, BookLevel]] = field(default_factory=list)
    floors: list[dict[int, Level]] = field(default_factory=list)


def gp_connect_release(clinic: Clinic) -> None:
    """Release the clinic's templates and their sessions on the rota for GP Connect (role GP, at the main
    surgery): what ticking "GP Connect bookable" on each template does, sessions already dated included."""
    location = Location.objects.for_clinic(clinic).get(kind=Location.Kind.MAIN)
    SessionTemplate.objects.for_clinic(clinic).update(
        gp_connect_bookable=True, practitioner_role=PractitionerRole.GP, location=location
    )
    Session.objects.for_clinic(clinic).update(gp_connect_bookable=True, practitioner_role=PractitionerRole.GP)


def fhir_booking(base_url: str, slot: Slot, patient: Patient) -> Booking:
    """GP Connect's Book Appointment: the patient into the slot, with a description."""
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "description": "Benchmark: sore throat for 3 days",
        "slot": [{"reference": f"Slot/{slot.public_id}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient.public_id}"}, "status": "accepted"}],
    }
    return Booking(base_url + reverse("fhir_api:appointments"), json.dumps(body))


def consumer_session(base_url: str, credentials: Credentials) -> requests.Session:
    """An HTTP client holding a bearer token it got from the token endpoint (client credentials), sending FHIR JSON
    and naming the requesting practitioner and organisation."""
    http = requests.Session()
    response = http.post(
        base_url + reverse("fhir_api:token"),
        data={"grant_type": "client_credentials"},
        auth=(credentials.client_id, credentials.client_secret),
        timeout=REQUEST_TIMEOUT_S,
    )
    if response.status_code != 200:
        raise RuntimeError(f"the token endpoint answered {response.status_code}: {response.text[:300]}")
    http.headers.update(
        {
            "Authorization": f"Bearer {response.json()['access_token']}",
            "Accept": FHIR_JSON,
            "Content-Type": FHIR_JSON,
            **REQUESTER,
        }
    )
    return http


def fhir_judged(response: requests.Response) -> tuple[str, str]:
    """A POST's answer: "ok" (201), "refused" (409 and an OperationOutcome: the slot or group is full, or taken
    meanwhile), or "error" with the status and the OperationOutcome's code and diagnostics."""
    if response.status_code == 201:
        return "ok", ""
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    issue = body.get("issue", [{}])[0] if isinstance(body, dict) else {}
    code = issue.get("details", {}).get("coding", [{}])[0].get("code", "")
    if response.status_code == 409 and body.get("resourceType") == "OperationOutcome":
        return "refused", ""
    return "error", f"{response.status_code} {code} {issue.get('diagnostics', response.text[:200])}"


@functools.cache
def fhir_book_setup() -> FhirBookState:
    load = on_postgresql("fhir_book_http")
    fhir_clinics_clear([BOOK_SLUG])
    clinic, _receptionists = booking_clinic(
        BOOK_SLUG,
        "Benchmark FHIR booking",
        size=BOOK_SIZE,
        reception=BOOK_RECEPTION,
        monday=book_monday(timezone.now()),
    )
    gp_connect_release(clinic)
    credentials = bench_consumer(clinic, list(SlotType.objects.for_clinic(clinic).filter(bookable=True)), "NHS 111")
    single_slots, group_slots = slots_shuffled(clinic)  # no slot is in two of the levels
    patients = list(Patient.objects.for_clinic(clinic).filter(is_blocked=False).order_by("id"))
    vacuum_analyze(Slot, Session, Patient, Practitioner, SessionTemplate)

    server = booking_server(BOOK_SIZE.workers)
    with server_started("fhir_book_http", server, load) as base_url:
        sessions = [consumer_session(base_url, credentials) for _ in range(max(BOOK_SIZE.per_client))]
        plans, expected = {}, {}
        for clients, per_client in BOOK_SIZE.per_client.items():  # within a level, every patient books once at most
            plans[clients], expected[clients] = booking_plan(
                base_url,
                clients,
                single_slots,
                group_slots,
                iter(patients),
                per_client=per_client,
                request=fhir_booking,
            )
    return FhirBookState(
        clinic=clinic,
        server=server,
        sessions=sessions,
        plans=plans,
        expected=expected,
        healthz_url=base_url + reverse("healthz"),
    )


def fhir_book_check(state: FhirBookState, booked: BookLevel, errors: list[str], booked_so_far: int) -> None:
    """The responses and the database agree: every 201 is one live appointment with its FHIR booking, every other
    answer a 409, and no slot holds more than its capacity or counts its places wrong."""
    level, clinic = booked.level, state.clinic
    problems = failures(errors, level.requests)
    found = (len(level.latencies_s), level.refused)
    if found != state.expected[level.clients]:
        problems.append(f"(booked, refused) are {found}, expected {state.expected[level.clients]}")
    live = Appointment.objects.for_clinic(clinic).live().count()
    fhir = FhirBooking.objects.for_clinic(clinic).count()
    if live != booked_so_far or fhir != booked_so_far:
        problems.append(f"{live} live appointments and {fhir} FHIR bookings after {booked_so_far} 201s")
    if booked.overbooked:
        problems.append(f"{booked.overbooked} slots overbooked or miscounted")
    if problems:
        log = state.server.log_path
        raise RuntimeError(f"fhir_book_http, {level.clients} clients: " + "; ".join(problems) + f" (server log: {log})")
    checked()


def fhir_book_run(state: FhirBookState) -> None:
    """The levels (1, 8 and 32 clients at FULL), on slots of their own; each checked once its clients are done."""
    levels, booked = {}, 0
    for clients, plan in state.plans.items():
        results, wall_s, cpu_s = run_clients(
            [
                functools.partial(post_all, http, posts, fhir_judged)
                for http, posts in zip(state.sessions, plan, strict=False)
            ]
        )
        level, errors = level_of(clients, results, wall_s, cpu_s)
        booked += len(level.latencies_s)
        levels[clients] = BookLevel(level, slots_overbooked(state.clinic))
        fhir_book_check(state, levels[clients], errors, booked)
    state.runs.append(levels)


def fhir_book_floor(state: FhirBookState) -> None:
    """As many GET /healthz by as many clients (the same sessions) as each level."""
    sessions = {clients: state.sessions[:clients] for clients in state.plans}
    state.floors.append(healthz_levels(state.healthz_url, sessions, BOOK_SIZE.per_client))


def fhir_book_reset(state: FhirBookState) -> None:
    """No appointments (their FHIR bookings go with them), no audit rows, every slot empty, the dead rows
    vacuumed: each run starts from the same database. The tokens stay."""
    with transaction.atomic():
        Appointment.objects.for_clinic(state.clinic).delete()
        AuditEvent.objects.for_clinic(state.clinic).delete()
        Slot.objects.for_clinic(state.clinic).exclude(booked_count=0).update(booked_count=0)
    vacuum_analyze(Slot, Appointment, FhirBooking, AuditEvent)


def fhir_book_figures(result: Result) -> Result:
    """Per number of clients, over the timed runs: p50 and p95 of the 201s' latencies (all runs pooled), bookings
    per second and /healthz per second (medians of the runs), their ratio, and the slots overbooked (the most after
    any level of any run: always 0, or the case fails)."""
    state = fhir_book_setup()
    timed, floors = timed_of("fhir_book_http", result, state.runs, state.floors)
    figures: Result = {"gunicorn_workers": state.server.workers, "gunicorn_threads": state.server.threads}
    lines = [
        f"{'clients':>7}  {'p50 ms':>8}  {'p95 ms':>8}  {'bookings/s':>10}  {'healthz/s':>10}  {'ratio':>6}"
        f"  {'refused':>7}  {'overbooked':>10}"
    ]
    for clients in state.plans:
        rates = rates_of([run[clients].level for run in timed], [floor[clients] for floor in floors])
        overbooked = max(run[clients].overbooked for run in state.runs)
        figures |= level_figures(clients, timed[0][clients].level, rates) | {f"c{clients}_overbooked": overbooked}
        lines.append(
            f"{clients:>7}  {rates.p50_s * 1000:>8.1f}  {rates.p95_s * 1000:>8.1f}  {rates.bookings_per_s:>10.1f}"
            f"  {rates.healthz_per_s:>10.1f}  {rates.ratio:>6.3f}  {timed[0][clients].level.refused:>7}"
            f"  {overbooked:>10}"
        )
    print("fhir_book_http (gunicorn, PostgreSQL; POST /fhir/Appointment):\n" + "\n".join(lines) + "\n")
    return figures


register(
    Case(
        name="fhir_book_http",
        setup=fhir_book_setup,
        run=fhir_book_run,
        floor=fhir_book_floor,
        reset=fhir_book_reset,
        runs=3,
        warmup=1,
        extras=fhir_book_figures,
        needs="postgresql",
    )
)
