"""booking_bound: how much of the /healthz floor a booking could keep on this stack, whatever its rules.

Issue 25 asks for reception booking at half the floor. ``booking_http`` measures the booking form; this case
measures, on one gunicorn server and in one run, the form (the product: on PostgreSQL its plain case is one call of
scheduling_quick_book, scheduling/services/quick.py) beside bookings that keep only part of the work of the form's
Python path (benchmarks/bound/views.py): ``statements`` (that path's round trips, by hand), ``orm`` and ``raw``
(four reads through the ORM or by hand, then one write statement), ``procedure`` (those statements in one PL/pgSQL
call) and ``write`` (one statement). Their ratios to /healthz are ceilings for a booking written that way
(docs/scaling.md reads them).

Single slots only, each booked once per run by one of the clients; after each variant, every booking is checked as
booking_http's are, and a slot it filled, posted again for another patient, must be refused.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``), chosen by the harness."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

import requests
from django.db import connection
from django.urls import reverse

from benchmarks.bound.views import BOOKINGS, PROCEDURE_CREATE
from benchmarks.cases.booking import (
    Booking,
    BookingSizes,
    GunicornServer,
    Level,
    book_all,
    booking_clinic,
    booking_server,
    bookings_agree,
    bookings_cleared,
    cpu_per_request,
    healthz_levels,
    level_measured,
    on_postgresql,
    rates_of,
    reception_session,
    request_cpu_ms,
    server_started,
    slots_shuffled,
    timed_of,
)
from benchmarks.cases.common import booking_fields, register
from benchmarks.harness import Case, Result, sized
from clinic.models import Clinic
from patients.models import Patient
from scheduling.models import Slot

BOUND_SLUG = "bench-bound"
BOUND_RECEPTION = "bench-bound-reception-{:02}@example.invalid"
BOUND_SETTINGS = "benchmarks.bound.settings"
# The booking form first (the product), then the bounds from the most work to the least.
VARIANTS = ("form", *BOOKINGS)


@dataclass(frozen=True)
class BoundSizes:
    clients: int
    per_client: int  # bookings per client and variant
    practitioners: int  # the clinic's week (booking_http's): n x 5 days x 26 single slots
    patients: int
    workers: int | None  # gunicorn's; None: two per CPU

    @property
    def booking(self) -> BookingSizes:
        """The clinic as booking_clinic makes it, one level of ``clients``."""
        return BookingSizes(self.practitioners, self.patients, {self.clients: self.per_client}, self.workers)


FULL = BoundSizes(clients=8, per_client=40, practitioners=40, patients=1_400, workers=None)
# Enough requests a variant for /proc's clock ticks (10 ms) to see the server's CPU: about 100 ms of it.
TINY = BoundSizes(clients=2, per_client=10, practitioners=2, patients=150, workers=1)
SIZE = sized(FULL, TINY)


@dataclass
class BoundState:
    clinic: Clinic
    server: GunicornServer
    healthz_url: str
    sessions: list[requests.Session] = field(default_factory=list)
    plans: dict[str, list[list[Booking]]] = field(default_factory=dict)  # variant -> each client's bookings
    runs: list[dict[str, Level]] = field(default_factory=list)
    floors: list[dict[int, Level]] = field(default_factory=list)


def bound_url(variant: str, slot: Slot) -> str:
    if variant == "form":
        return reverse("scheduling:book", args=[slot.public_id])
    return reverse("bound-book", args=[variant, slot.public_id], urlconf="benchmarks.bound.urls")


@functools.cache
def bound_setup() -> BoundState:
    load = on_postgresql("booking_bound")
    clinic, users = booking_clinic(BOUND_SLUG, "Benchmark booking bound", size=SIZE.booking, reception=BOUND_RECEPTION)
    singles, _groups = slots_shuffled(clinic)
    patients = itertools.cycle(Patient.objects.for_clinic(clinic).filter(is_blocked=False).order_by("id"))
    with connection.cursor() as cursor:
        cursor.execute(PROCEDURE_CREATE)
    server = booking_server(SIZE.workers, DJANGO_SETTINGS_MODULE=BOUND_SETTINGS)
    with server_started("booking_bound", server, load) as base_url:
        state = BoundState(clinic=clinic, server=server, healthz_url=base_url + reverse("healthz"))
        state.sessions = [reception_session(base_url, user) for user in users[: SIZE.clients]]
        needed = len(VARIANTS) * SIZE.clients * SIZE.per_client
        if Slot.objects.for_clinic(clinic).filter(bookable=True, capacity=1).count() < needed:
            raise RuntimeError(f"booking_bound: fewer than {needed} single slots")
        for variant in VARIANTS:  # every slot in one variant only, each patient in a slot once
            state.plans[variant] = [
                [
                    Booking(base_url + bound_url(variant, slot), booking_fields(slot, next(patients), "book"))
                    for slot in itertools.islice(singles, SIZE.per_client)
                ]
                for _ in range(SIZE.clients)
            ]
    return state


def bound_check(state: BoundState, variant: str, level: Level, errors: list[str], booked_so_far: int) -> None:
    """booking_http's check, every request booked (each slot is free, and in one request only)."""
    bookings_agree(
        state.clinic,
        level,
        errors,
        booked_so_far=booked_so_far,
        expected=(level.requests, 0),
        name=f"booking_bound, {variant}",
        log=state.server.log_path,
    )


def bound_run(state: BoundState) -> None:
    levels, booked = {}, 0
    for variant in VARIANTS:
        work = [
            functools.partial(book_all, http, plan)
            for http, plan in zip(state.sessions, state.plans[variant], strict=True)
        ]
        level, errors = level_measured(state.server, SIZE.clients, work)
        booked += len(level.latencies_s)
        bound_check(state, variant, level, errors, booked)
        # Untimed: a slot of this run again, now full, for another patient, is refused and written nowhere.
        first, other = state.plans[variant][0][:2]
        if not isinstance(first.form, dict) or not isinstance(other.form, dict):
            raise TypeError("booking_bound posts forms")
        again = book_all(state.sessions[0], [Booking(first.url, {**first.form, "patient": other.form["patient"]})])
        if [outcome.kind for outcome in again] != ["refused"]:
            raise RuntimeError(f"booking_bound, {variant}: a full slot booked again answered {again}")
        bound_check(state, variant, level, [], booked)
        levels[variant] = level
    state.runs.append(levels)


def bound_floor(state: BoundState) -> None:
    """GET /healthz, as many requests by as many clients as one variant."""
    state.floors.append(
        healthz_levels(state.healthz_url, {SIZE.clients: state.sessions}, {SIZE.clients: SIZE.per_client}, state.server)
    )


def bound_reset(state: BoundState) -> None:
    bookings_cleared(state.clinic)


def bound_figures(result: Result) -> Result:
    """Per variant, over the timed runs: bookings per second, the ratio to /healthz, p95, and CPU per booking."""
    state = bound_setup()
    timed, floors = timed_of("booking_bound", result, state.runs, state.floors)
    clients = SIZE.clients
    floor_levels = [floor[clients] for floor in floors]
    figures: Result = {"clients": clients, **cpu_per_request(clients, floor_levels, "healthz_")}
    healthz_cpu = request_cpu_ms(clients, figures, "healthz_")
    lines = [
        f"{'variant':>10}  {'bookings/s':>10}  {'ratio':>6}  {'p95 ms':>7}  {'CPU ms: server':>14}  {'database':>8}"
    ]
    for variant in VARIANTS:
        levels = [run[variant] for run in timed]
        rates = rates_of(levels, floor_levels)
        cpu = {
            key.replace(f"c{clients}_", f"{variant}_"): value for key, value in cpu_per_request(clients, levels).items()
        }
        figures |= {
            f"{variant}_bookings_per_s": round(rates.bookings_per_s, 2),
            f"{variant}_ratio_to_healthz": round(rates.ratio, 4),
            f"{variant}_p95_s": rates.p95_s,
            **cpu,
        }
        figures["healthz_per_s"] = round(rates.healthz_per_s, 2)
        lines.append(
            f"{variant:>10}  {rates.bookings_per_s:>10.1f}  {rates.ratio:>6.3f}  {rates.p95_s * 1000:>7.1f}"
            f"  {cpu.get(f'{variant}_server_cpu_ms_per_request', '-'):>14}"
            f"  {cpu.get(f'{variant}_database_cpu_ms_per_request', '-'):>8}"
        )
    lines.append(
        f"{'healthz':>10}  {figures['healthz_per_s']:>10.1f}  {1:>6.3f}  {'':>7}"
        f"  {figures.get(f'c{clients}_healthz_server_cpu_ms_per_request', '-'):>14}"
        f"  {figures.get(f'c{clients}_healthz_database_cpu_ms_per_request', '-'):>8}"
        + (f"   (half the floor: a booking of at most {2 * healthz_cpu:.1f} ms CPU)" if healthz_cpu else "")
    )
    print(f"booking_bound (gunicorn, PostgreSQL, {clients} clients):\n" + "\n".join(lines) + "\n")
    return figures


register(
    Case(
        name="booking_bound",
        setup=bound_setup,
        run=bound_run,
        floor=bound_floor,
        reset=bound_reset,
        runs=3,
        warmup=1,
        extras=bound_figures,
        needs="postgresql",
    )
)
