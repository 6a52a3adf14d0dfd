"""Previewing a year's series against a busy calendar.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``), chosen by the harness."""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db import connection, models, transaction
from django.test import Client
from django.urls import reverse

from benchmarks.cases.common import (
    CALENDAR_MONDAY,
    CALENDAR_SESSIONS,
    CALENDAR_SLOT_TYPES,
    CALENDAR_SLOTS_PER_DAY,
    CALENDAR_TIME_ZONE,
    CALENDAR_WEEKDAYS,
    CalendarSize,
    booking_fields,
    calendar_appointments,
    calendar_patients,
    calendar_rota,
    clinics_clear,
    get_ok,
    logged_in_client,
    register,
    slots_book_to,
    slots_miscounted,
)
from benchmarks.harness import Case, Result, checked, count_queries, measure, sized
from clinic.models import Clinic, Location, Membership, Practitioner, Role
from patients.models import Patient
from scheduling.models import Appointment, Session, Slot
from scheduling.recurrence import RecurrenceRule
from scheduling.services.rota import AllocationRequest, allocation_create
from sessions_setup.models import SessionTemplate, SlotType, TemplateSlot

# --- Previewing a year's series against a busy calendar -----------------------------------

SERIES_SLUG = "bench-series-preview"
SERIES_RECEPTION = "bench-series-reception@example.invalid"  # "Schedule Admin: Manage Appointments"
SERIES_SEED = 20_270_315
SERIES_WEEKDAYS = (1, 3, 5)


@dataclass(frozen=True)
class SeriesSizes:
    weeks: int  # of sessions from CALENDAR_MONDAY (Monday 1 March 2027): one more than the series
    short_count: int  # the same preview with fewer cards: it must take as many queries
    group_runners: int  # practitioners with an 18:00 group on the series' days; the first one's is previewed
    calendar: CalendarSize  # the calendar's practitioners, live and cancelled appointments, and patients


# The calendar's 30 slots a day (AM and PM) for 30 practitioners on every weekday of the 53 weeks, 30,000 live and
# 300 cancelled appointments on random places (singles and the calendar's 8-place groups), 3,000 patients.
FULL = SeriesSizes(53, 6, 10, CalendarSize(SERIES_SLUG, SERIES_RECEPTION, 30, 30_000, 300, 3_000))
# Six weeks (the spring clock change, two bank holidays and one full date in the series), 2 practitioners.
TINY = SeriesSizes(6, 3, 2, CalendarSize(SERIES_SLUG, SERIES_RECEPTION, 2, 200, 4, 300))
SIZE = sized(FULL, TINY)

SERIES_WEEKS = SIZE.weeks
SERIES_COUNT = (SERIES_WEEKS - 1) * len(SERIES_WEEKDAYS)  # 156: 52 weeks x 3 days, to Friday 25 February 2028
SERIES_END = CALENDAR_MONDAY + dt.timedelta(weeks=SERIES_WEEKS - 1)  # the Monday after the series' last day
SERIES_SHORT_COUNT = SIZE.short_count
SERIES_GROUP_START = dt.time(18)
SERIES_GROUP_MINUTES = 60
SERIES_GROUP_TEMPLATE = "Evening group"
SERIES_GROUP_RUNNERS = SIZE.group_runners
SERIES_SIZE = SIZE.calendar
# The previewed group does not meet on the bank holidays that fall on its days (no session: "No session at this
# time")...
SERIES_BANK_HOLIDAYS = tuple(
    day
    for day in map(
        dt.date.fromisoformat,
        ("2027-03-26", "2027-03-29", "2027-05-03", "2027-05-31", "2027-08-30", "2027-12-27", "2028-01-03"),
    )
    if day < SERIES_END
)
# ...and is full on these (every place taken: "Full"), two of them either side of the autumn clock change.
SERIES_FULL_DATES = tuple(
    day
    for day in map(dt.date.fromisoformat, ("2027-03-03", "2027-06-18", "2027-10-29", "2027-11-01", "2028-02-25"))
    if day < SERIES_END
)
SERIES_GROUP_SESSIONS = SERIES_GROUP_RUNNERS * SERIES_WEEKS * len(SERIES_WEEKDAYS) - len(SERIES_BANK_HOLIDAYS)
SERIES_CALENDAR_DAYS = SERIES_SIZE.practitioners * SERIES_WEEKS * len(CALENDAR_WEEKDAYS)  # 7,950 practitioner-days
SERIES_SESSIONS = SERIES_CALENDAR_DAYS * len(CALENDAR_SESSIONS) + SERIES_GROUP_SESSIONS  # 17,483
SERIES_SLOTS = SERIES_CALENDAR_DAYS * CALENDAR_SLOTS_PER_DAY + SERIES_GROUP_SESSIONS  # 240,083 (one per group)


@dataclass(frozen=True)
class SeriesState:
    clinic: Clinic
    client: Client  # reception, its session's first request made
    url: str  # Create Recurring Series from the first Monday's group slot
    form: dict[str, Any]  # Preview Recurrence: weekly on Monday, Wednesday and Friday, 156 sessions
    floor_url: str
    practitioner: Practitioner
    slot_type: SlotType
    rule: RecurrenceRule
    zone: ZoneInfo
    queries: dict[int, int] = field(default_factory=dict)  # the preview's SQL count by number of occurrences


def series_at(day: dt.date) -> dt.datetime:
    """The group's start on ``day``, on the clinic's wall clock."""
    return dt.datetime.combine(day, SERIES_GROUP_START, tzinfo=ZoneInfo(CALENDAR_TIME_ZONE))


def series_groups(clinic: Clinic, runners: Sequence[Practitioner], group: SlotType) -> None:
    """An hour's group at 18:00 on Mondays, Wednesdays and Fridays for 53 weeks for each runner; the first
    runner's group does not meet on bank holidays (those sessions are removed, slots and all)."""
    location = Location.objects.for_clinic(clinic).get()
    template = SessionTemplate.objects.create(clinic=clinic, name=SERIES_GROUP_TEMPLATE, colour="purple")
    TemplateSlot.objects.create(
        clinic=clinic, template=template, position=0, slot_type=group, length_minutes=SERIES_GROUP_MINUTES
    )
    last = CALENDAR_MONDAY + dt.timedelta(weeks=SERIES_WEEKS, days=-3)
    for practitioner in runners:
        allocation_create(
            clinic=clinic,
            actor=None,
            request=AllocationRequest(
                template, practitioner, location, SERIES_GROUP_START, CALENDAR_MONDAY, last, SERIES_WEEKDAYS, 1
            ),
        )
    Session.objects.for_clinic(clinic).filter(
        practitioner=runners[0], template=template, date__in=SERIES_BANK_HOLIDAYS
    ).delete()


def series_check(clinic: Clinic, live_appointments: int) -> None:
    """Anything but exactly the year's sessions, slots and appointments, each slot's booked_count its live
    appointments, is an error, never a measurement."""
    slots = Slot.objects.for_clinic(clinic)
    found = (
        Session.objects.for_clinic(clinic).count(),
        slots.count(),
        Appointment.objects.for_clinic(clinic).live().count(),
        slots.aggregate(n=models.Sum("booked_count"))["n"],
        slots_miscounted(clinic),
    )
    expected = (SERIES_SESSIONS, SERIES_SLOTS, live_appointments, live_appointments, 0)
    if found != expected:
        raise RuntimeError(
            f"series_preview: (sessions, slots, live appointments, booked places, miscounted slots) are {found}, "
            f"expected {expected}"
        )
    checked()


def series_post(state: SeriesState, count: int) -> bytes:
    """Preview Recurrence as reception posts it; anything but a 200 with ``count`` cards is an error.

    The cards are counted in the HTML: outside the test runner's environment templates are not instrumented,
    so the response has no context.
    """
    response = state.client.post(state.url, {**state.form, "r-count": str(count)})
    cards = response.content.count(b'data-occurrence="')
    if response.status_code != 200 or cards != count:
        raise RuntimeError(f"POST {state.url} (r-count={count}) returned {response.status_code} with {cards} cards")
    return response.content


def series_select(state: SeriesState) -> list[Any]:
    """The selector alone: the rule expanded on the clinic's wall clock, and the occurrences matched to slots."""
    from scheduling.selectors.series import series_preview

    occurrences = state.rule.occurrences(state.zone)
    return series_preview(
        clinic=state.clinic, practitioner=state.practitioner, slot_type=state.slot_type, occurrences=occurrences
    )


def series_preview_check(state: SeriesState) -> None:
    """The preview offers a free group place for each occurrence but the bank holidays (no session) and the
    full dates; the page says so; and it takes as many queries for 6 occurrences as for 156."""
    matches = series_select(state)
    kinds = Counter("no session" if m.slot is None else "full" if m.full else "free" for m in matches)
    holidays, full = len(SERIES_BANK_HOLIDAYS), len(SERIES_FULL_DATES)
    expected = Counter({"free": SERIES_COUNT - holidays - full, "full": full, "no session": holidays})
    local_times = {m.starts_at.astimezone(state.zone).time() for m in matches}
    if kinds != expected or local_times != {SERIES_GROUP_START}:
        raise RuntimeError(f"series_preview: the occurrences are {dict(kinds)} at {local_times}, expected {expected}")
    page = series_post(state, SERIES_COUNT).decode()
    capacity = CALENDAR_SLOT_TYPES["group"][3]
    if page.count("No session at this time") != holidays or page.count(f"Full ({capacity} places)") != full:
        raise RuntimeError("series_preview: the page's cards do not show the bank holidays and the full groups")
    for count in (SERIES_SHORT_COUNT, SERIES_COUNT):
        state.queries[count] = count_queries(functools.partial(series_post, state, count))
    if state.queries[SERIES_SHORT_COUNT] != state.queries[SERIES_COUNT]:
        raise RuntimeError(f"series_preview: the preview's query count grows with the occurrences: {state.queries}")
    checked()


@functools.cache
def series_setup() -> SeriesState:
    """The busy year and reception's client, built once per process (the extras reuse them)."""
    clinics_clear([SERIES_SLUG])
    rng = random.Random(SERIES_SEED)
    clinic = Clinic.objects.create(
        name="Benchmark series preview", slug=SERIES_SLUG, time_zone=CALENDAR_TIME_ZONE, internal_ids_enabled=True
    )
    user, _ = User.objects.get_or_create(username=SERIES_RECEPTION, defaults={"email": SERIES_RECEPTION})
    Membership.objects.create(clinic=clinic, user=user, role=Role.RECEPTION, perm_manage_appointments=True)
    practitioners = calendar_rota(clinic, SERIES_SIZE, weeks=SERIES_WEEKS)
    group = SlotType.objects.for_clinic(clinic).get(name=CALENDAR_SLOT_TYPES["group"][0])
    tested = practitioners[0]
    series_groups(clinic, practitioners[:SERIES_GROUP_RUNNERS], group)
    # The previewed groups (at 18:00, not the calendar's 10-minute ones): 2 to 7 of their 8 places taken, and
    # every place on the full dates.
    tested_groups = Slot.objects.for_clinic(clinic).filter(session__practitioner=tested, slot_type=group)
    evenings = tested_groups.filter(session__template__name=SERIES_GROUP_TEMPLATE).select_related("session")
    with transaction.atomic():
        patients = calendar_patients(clinic, rng, SERIES_SIZE.patients)
        calendar_appointments(clinic, SERIES_SIZE, rng, patients, user)
        full = {series_at(day) for day in SERIES_FULL_DATES}
        targets = [(s, s.capacity if s.starts_at in full else rng.randint(2, s.capacity - 1)) for s in evenings]
        made = slots_book_to(clinic, targets, rng, patients, user)
    if connection.vendor == "postgresql":  # statistics, as autovacuum would leave them
        tables = ", ".join(m._meta.db_table for m in (Slot, Session, Appointment, Patient))
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {tables}")
    series_check(clinic, SERIES_SIZE.live_appointments + made)

    first = tested_groups.select_related("slot_type").get(starts_at=series_at(CALENDAR_MONDAY))
    booked = Appointment.objects.for_clinic(clinic).live().filter(slot__in=evenings)
    in_groups = set(booked.values_list("patient_id", flat=True))
    patient = next(p for p in patients if not p.is_blocked and p.pk not in in_groups)  # new to the group
    recurrence = {"frequency": "weekly", "interval": "1", "weekdays": [str(day) for day in SERIES_WEEKDAYS]}
    recurrence |= {"monthly_by": "day", "ends": "count", "count": str(SERIES_COUNT)}
    client = logged_in_client(SERIES_RECEPTION)
    get_ok(client, reverse("healthz"))  # the first request of a session stores the active clinic: not measured
    state = SeriesState(
        clinic=clinic,
        client=client,
        url=reverse("scheduling:series-new", args=[first.public_id]),
        form=booking_fields(first, patient, "preview") | {f"r-{name}": value for name, value in recurrence.items()},
        floor_url=reverse("healthz"),
        practitioner=tested,
        slot_type=group,
        rule=RecurrenceRule(
            frequency="weekly",
            start=CALENDAR_MONDAY,
            time=SERIES_GROUP_START,
            weekdays=SERIES_WEEKDAYS,
            count=SERIES_COUNT,
        ),
        zone=ZoneInfo(CALENDAR_TIME_ZONE),
    )
    series_preview_check(state)
    return state


def series_figures(result: Result) -> Result:
    """The preview's query count for 6 and for 156 occurrences, and the selector alone (rule expansion and
    series_preview, no HTTP), timed the same way."""
    state = series_setup()
    if result["queries"] != state.queries[SERIES_COUNT]:
        raise RuntimeError(f"series_preview: {result['queries']} queries timed, {state.queries} in the set-up")
    selector = measure(
        Case("series_preview_selector", series_setup, run=series_select),
        runs=int(result["runs"]),
        warmup=int(result["warmup"]),
    )
    return {
        f"queries_{SERIES_SHORT_COUNT}_occurrences": state.queries[SERIES_SHORT_COUNT],
        f"queries_{SERIES_COUNT}_occurrences": state.queries[SERIES_COUNT],
        "selector_median_s": selector["median_s"],
        "selector_min_s": selector["min_s"],
        "selector_max_s": selector["max_s"],
        "selector_queries": selector["queries"],
    }


register(
    Case(
        name="series_preview",
        setup=series_setup,
        run=lambda state: series_post(state, SERIES_COUNT),
        floor=lambda state: get_ok(state.client, state.floor_url),
        warmup=2,
        extras=series_figures,
    )
)
