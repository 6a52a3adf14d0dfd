"""The calendar of a busy week: the week (All tab) and the month pages.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``), chosen by the harness."""

from __future__ import annotations

import datetime as dt
import functools
import os
import random
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db import connection, models, transaction
from django.test import Client
from django.urls import reverse

from benchmarks import render
from benchmarks.cases.common import (
    CALENDAR_MONDAY,
    CALENDAR_SESSIONS,
    CALENDAR_SLOTS_PER_DAY,
    CALENDAR_TIME_ZONE,
    CALENDAR_WEEKDAYS,
    CalendarSize,
    PageState,
    calendar_appointments,
    calendar_patients,
    calendar_rota,
    clinics_clear,
    get_ok,
    logged_in_client,
    register,
)
from benchmarks.harness import Case, Result, checked, count_queries, sized
from clinic.models import Clinic, Membership, Practitioner, Role
from patients.models import Patient
from scheduling.grid_html import drawn
from scheduling.models import Appointment, OfficeHours, OtherEvent, Session, Slot

# --- The calendar of a busy week ------------------------------------------------------

CALENDAR_SLUG = "bench-calendar"
CALENDAR_SMALL_SLUG = "bench-calendar-small"  # the same shape, smaller: its pages must take as many queries
CALENDAR_ADMIN = "bench-calendar-admin@example.invalid"
CALENDAR_SMALL_ADMIN = "bench-calendar-small-admin@example.invalid"

CALENDAR_SEED = 20_270_301


@dataclass(frozen=True)
class CalendarSizes:
    practitioners: int
    live_appointments: int
    cancelled_appointments: int  # besides the live ones: the page must leave them out
    patients: int


FULL = CalendarSizes(practitioners=20, live_appointments=2_000, cancelled_appointments=100, patients=400)
TINY = CalendarSizes(practitioners=4, live_appointments=80, cancelled_appointments=4, patients=60)
SIZE = sized(FULL, TINY)

CALENDAR_PRACTITIONERS = SIZE.practitioners
CALENDAR_LIVE_APPOINTMENTS = SIZE.live_appointments
CALENDAR_CANCELLED_APPOINTMENTS = SIZE.cancelled_appointments
CALENDAR_PATIENTS = SIZE.patients

CALENDAR_BIG = CalendarSize(  # 20 practitioners x 5 days x 30 slots: 3,000 slots
    CALENDAR_SLUG,
    CALENDAR_ADMIN,
    CALENDAR_PRACTITIONERS,
    CALENDAR_LIVE_APPOINTMENTS,
    CALENDAR_CANCELLED_APPOINTMENTS,
    CALENDAR_PATIENTS,
)
CALENDAR_SMALL = CalendarSize(CALENDAR_SMALL_SLUG, CALENDAR_SMALL_ADMIN, 2, 40, 2, 30)  # smaller at either size


@dataclass(frozen=True)
class CalendarClinic:
    """A clinic with one busy week, its admin's logged-in client and the calendar's URLs for that week."""

    clinic: Clinic
    client: Client
    week_url: str  # every practitioner side by side (the All tab)
    tab_url: str  # one practitioner's tab of the same week
    month_url: str
    practitioner_name: str  # shown on the week (All tab)
    tab_practitioner_name: str


def calendar_clear() -> None:
    """Remove the calendar clinics of an earlier run."""
    clinics_clear([CALENDAR_BIG.slug, CALENDAR_SMALL.slug])


def calendar_week_bounds() -> tuple[dt.datetime, dt.datetime]:
    """The shown week, Monday 00:00 to the next Monday 00:00 on the clinic's wall clock, as instants."""
    zone = ZoneInfo(CALENDAR_TIME_ZONE)
    start = dt.datetime.combine(CALENDAR_MONDAY, dt.time(0), tzinfo=zone)
    return start, dt.datetime.combine(CALENDAR_MONDAY + dt.timedelta(weeks=1), dt.time(0), tzinfo=zone)


def calendar_events_and_hours(clinic: Clinic, practitioners: list[Practitioner]) -> None:
    """Other events (timed, overlapping, free and all-day) and office hours: the default and one practitioner's."""
    zone = ZoneInfo(CALENDAR_TIME_ZONE)

    def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
        return dt.datetime.combine(CALENDAR_MONDAY + dt.timedelta(days=day), dt.time(hour, minute), tzinfo=zone)

    events = [
        OtherEvent(clinic=clinic, practitioner=p, title="Practice meeting", starts_at=at(2, 12), ends_at=at(2, 13))
        for p in practitioners[:5]
    ]
    events += [
        OtherEvent(
            clinic=clinic,
            practitioner=practitioners[0],
            title="Supervision",
            starts_at=at(2, 12, 30),
            ends_at=at(2, 13, 30),
        ),
        OtherEvent(
            clinic=clinic,
            practitioner=practitioners[0],
            title="Journal club",
            busy=False,
            starts_at=at(3, 17),
            ends_at=at(3, 18),
        ),
        OtherEvent(
            clinic=clinic,
            practitioner=practitioners[-1],
            title="Home visits",
            starts_at=at(1, 11, 45),
            ends_at=at(1, 13, 15),
        ),
        OtherEvent(
            clinic=clinic,
            practitioner=practitioners[-1],
            title="Annual leave",
            all_day=True,
            first_date=CALENDAR_MONDAY + dt.timedelta(days=3),
            last_date=CALENDAR_MONDAY + dt.timedelta(days=4),
        ),
        OtherEvent(
            clinic=clinic,
            practitioner=practitioners[0],
            title="Training day",
            all_day=True,
            first_date=CALENDAR_MONDAY + dt.timedelta(days=5),
            last_date=CALENDAR_MONDAY + dt.timedelta(days=5),
        ),
    ]
    OtherEvent.objects.bulk_create(events)
    weekdays = {str(day): [["08:00", "18:30"]] for day in CALENDAR_WEEKDAYS}
    OfficeHours.objects.create(clinic=clinic, practitioner=None, time_zone=CALENDAR_TIME_ZONE, weekly=weekdays)
    OfficeHours.objects.create(
        clinic=clinic,
        practitioner=practitioners[0],
        time_zone=CALENDAR_TIME_ZONE,
        weekly={str(day): [["08:00", "12:30"], ["13:30", "18:00"]] for day in (1, 2, 3, 4)},
    )


def calendar_check(clinic: Clinic, size: CalendarSize) -> None:
    """Anything but exactly the week's slots and live appointments is an error, never a measurement."""
    start, end = calendar_week_bounds()
    slots = Slot.objects.for_clinic(clinic).filter(starts_at__gte=start, starts_at__lt=end)
    live = Appointment.objects.for_clinic(clinic).live().filter(starts_at__gte=start, starts_at__lt=end)
    found = (slots.count(), live.count(), slots.aggregate(n=models.Sum("booked_count"))["n"])
    expected = (size.slots, size.live_appointments, size.live_appointments)
    if found != expected:
        raise RuntimeError(f"{clinic.slug}: (slots, live appointments, booked places) are {found}, expected {expected}")


def calendar_clinic(size: CalendarSize) -> CalendarClinic:
    """A clinic of ``size``: the rota of one week, patients, appointments, other events and office hours."""
    rng = random.Random(f"{CALENDAR_SEED}-{size.slug}")
    clinic = Clinic.objects.create(
        name=f"Benchmark calendar ({size.practitioners})",
        slug=size.slug,
        time_zone=CALENDAR_TIME_ZONE,
        internal_ids_enabled=True,
    )
    user, _ = User.objects.get_or_create(username=size.admin, defaults={"email": size.admin})
    Membership.objects.create(clinic=clinic, user=user, role=Role.ADMIN)  # its only clinic: no switching
    practitioners = calendar_rota(clinic, size)
    with transaction.atomic():
        patients = calendar_patients(clinic, rng, size.patients)
        calendar_appointments(clinic, size, rng, patients, user)
        calendar_events_and_hours(clinic, practitioners)
    calendar_check(clinic, size)

    base = reverse("scheduling:calendar")
    monday = CALENDAR_MONDAY.isoformat()
    tab = practitioners[len(practitioners) // 2]
    client = logged_in_client(size.admin)
    get_ok(client, reverse("healthz"))  # the first request of a session stores the active clinic: not measured
    return CalendarClinic(
        clinic=clinic,
        client=client,
        week_url=f"{base}?view=week&date={monday}&tab=all",
        tab_url=f"{base}?view=week&date={monday}&tab={tab.public_id}",
        month_url=f"{base}?view=month&date={monday}",
        practitioner_name=practitioners[-1].name,
        tab_practitioner_name=tab.name,
    )


def calendar_page_check(data: CalendarClinic, size: CalendarSize) -> None:
    """The pages show the week: every slot on the grid, the practitioners, and the month's per-day sums."""
    placeholder = str(uuid.UUID(int=0))
    slot_link = 'href="' + reverse("scheduling:slot", args=[placeholder]).split(placeholder)[0]
    week = drawn(get_ok(data.client, data.week_url).decode())  # the slots as calendar.js draws them from their data
    tab = drawn(get_ok(data.client, data.tab_url).decode())
    month = get_ok(data.client, data.month_url).decode()
    per_practitioner = len(CALENDAR_WEEKDAYS) * CALENDAR_SLOTS_PER_DAY
    problems = []
    if week.count(slot_link) != size.slots or data.practitioner_name not in week:
        problems.append(f"the week shows {week.count(slot_link)} slot links, expected {size.slots}")
    if tab.count(slot_link) != per_practitioner or data.tab_practitioner_name not in tab:
        problems.append(f"the tab shows {tab.count(slot_link)} slot links, expected {per_practitioner}")
    monday = (
        Session.objects.for_clinic(data.clinic)
        .filter(date=CALENDAR_MONDAY, slots__bookable=True)
        .aggregate(places=models.Sum("slots__capacity"), booked=models.Sum("slots__booked_count"))
    )
    sessions = len(CALENDAR_SESSIONS) * size.practitioners
    summary = f"{sessions} sessions, {monday['booked']} booked, {monday['places'] - monday['booked']} free"
    if summary not in month:
        problems.append(f"the month does not say “{summary}” for {CALENDAR_MONDAY}")
    if problems:
        raise RuntimeError(f"{data.clinic.slug}: " + "; ".join(problems))
    checked()


@functools.cache
def calendar_setup() -> CalendarClinic:
    """The busy week, built once per process; calendar_week and calendar_month share it.

    A small clinic of the same shape is built beside it: each page must take as many queries there as here,
    so that the count grows with neither practitioners nor appointments.
    """
    calendar_clear()
    big = calendar_clinic(CALENDAR_BIG)
    small = calendar_clinic(CALENDAR_SMALL)
    if connection.vendor == "postgresql":  # statistics, as autovacuum would leave them
        tables = ", ".join(m._meta.db_table for m in (Slot, Session, Appointment, Patient, OtherEvent))
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {tables}")
    calendar_page_check(big, CALENDAR_BIG)
    calendar_page_check(small, CALENDAR_SMALL)
    for url in ("week_url", "tab_url", "month_url"):
        counts = [count_queries(functools.partial(get_ok, data.client, getattr(data, url))) for data in (small, big)]
        if counts[0] != counts[1]:
            raise RuntimeError(f"the calendar's {url} takes {counts[0]} queries for the small clinic, {counts[1]} here")
    return big


def calendar_page_setup(url: str) -> Callable[[], PageState]:
    def setup() -> PageState:
        data = calendar_setup()
        return PageState(data.client, getattr(data, url), reverse("healthz"))

    return setup


def calendar_week_figures(result: Result) -> Result:
    """The week page's size (its HTML before compression, and per slot shown) and its time to first render in
    Chromium at a 4x CPU slowdown (benchmarks.render): first-contentful-paint, the moment calendar.js has drawn the
    slots from their data, DOMContentLoaded and load, in ms.

    Without Chromium the browser's figures are left out (the reason is printed), except under CI, where that fails."""
    data = calendar_setup()
    html = get_ok(data.client, data.week_url)
    figures: Result = {
        "html_bytes": len(html),
        "slots": CALENDAR_BIG.slots,
        "html_bytes_per_slot": round(len(html) / CALENDAR_BIG.slots, 1),
    }
    missing = render.chromium_missing()
    if missing:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            raise RuntimeError(f"calendar_week: {missing}")
        print(f"calendar_week: no first paint measured: {missing}", file=sys.stderr)
        return figures
    timings = render.first_render(
        data.client, data.week_url, time_zone=CALENDAR_TIME_ZONE, loads=RENDER_LOADS, mark=SLOTS_DRAWN_MARK
    )
    checked()
    return figures | {
        "render_cpu_slowdown": render.CPU_SLOWDOWN,
        "render_loads": RENDER_LOADS,
        "first_contentful_paint_ms": timings["fcp"],
        "slots_drawn_ms": timings["mark"],
        "dom_content_loaded_ms": timings["dcl"],
        "load_ms": timings["load"],
    }


SLOTS_DRAWN_MARK = "calendar-slots-drawn"  # static/js/calendar.js marks it once it has drawn the grid's slots


RENDER_LOADS = sized(7, 1)

for case_name, case_url in (("calendar_week", "week_url"), ("calendar_month", "month_url")):
    register(
        Case(
            name=case_name,
            setup=calendar_page_setup(case_url),
            run=lambda state: get_ok(state.client, state.url),
            floor=lambda state: get_ok(state.client, state.floor_url),
            warmup=2,
            check=lambda state: calendar_page_check(calendar_setup(), CALENDAR_BIG),
            extras=calendar_week_figures if case_name == "calendar_week" else None,
        )
    )
