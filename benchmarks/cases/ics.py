"""The ICS subscription feed: 5,000 events built, served and rebuilt.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``), chosen by the harness."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import icalendar
from django.contrib.auth.models import User
from django.db import connection, models, transaction
from django.test import Client
from django.urls import reverse

from benchmarks.cases.common import (
    CALENDAR_TIME_ZONE,
    CalendarSize,
    appointment_in,
    calendar_patients,
    calendar_rota,
    clinics_clear,
    get_ok,
    register,
    slots_book_to,
    sub_case,
)
from benchmarks.harness import Case, Result, checked, count_queries, peak_memory_mb, sized
from calendar_sync.feed import ics
from calendar_sync.feed.build import feed_build, feed_bytes, feed_changes_record
from calendar_sync.feed.ics import FeedItem
from calendar_sync.feed.sources import UID_DOMAIN, feed_sources, feed_window
from calendar_sync.feed.subscriptions import feed_token, subscription_get_or_create
from calendar_sync.models import (
    FeedDocument,
    FeedEvent,
    FeedSubscription,
)
from calendar_sync.services import subscription_save
from clinic.models import Clinic, Membership, Practitioner, Role
from patients.display import IdentifierMode
from patients.identifiers import name_key
from patients.models import Patient
from scheduling.models import Appointment, AppointmentStatus, OtherEvent, Session, Slot

# --- The ICS subscription feed: 5,000 events built, served and rebuilt ---------------------

ICS_SLUG = "bench-ics-feed"
ICS_ADMIN = "bench-ics-admin@example.invalid"
ICS_SEED = 20_270_503
ICS_NOW = dt.datetime(2027, 5, 3, 7, tzinfo=dt.UTC)  # the window: 4 March 2027 07:00 to 1 November 2028 07:00 UTC
ICS_WEEKS = 90  # of the calendar's sessions from CALENDAR_MONDAY (1 March 2027) to Friday 17 November 2028
ICS_MODE = IdentifierMode.INITIALS


@dataclass(frozen=True)
class IcsSizes:
    patients: int  # every 40th blocked ("Restricted patient"), every 10th renamed from ICS_NAMES
    appointments: int  # live, in the window: singles and 2 to 5 places of group slots
    appointments_outside: int  # live, before the window and as many after it
    cancelled: int  # in the window
    timed_events: int  # in the window; every third free (TRANSP:TRANSPARENT)
    all_day_events: int  # in the window, 1 to 5 days; the first one begins before it
    events_outside: int  # other events before the window and as many after it (half timed, half all-day)


FULL = IcsSizes(1_500, 4_600, 20, 150, 300, 100, 6)
# The same 90 weeks of sessions (some must lie after the window); every patient booked several times, so that the
# blocked one and the renamed ones are in the feed.
TINY = IcsSizes(40, 300, 2, 3, 6, 4, 2)
SIZE = sized(FULL, TINY)

ICS_PATIENTS = SIZE.patients
ICS_APPOINTMENTS = SIZE.appointments
ICS_APPOINTMENTS_OUTSIDE = SIZE.appointments_outside
ICS_CANCELLED = SIZE.cancelled
ICS_TIMED_EVENTS = SIZE.timed_events
ICS_ALL_DAY_EVENTS = SIZE.all_day_events
ICS_EVENTS_OUTSIDE = SIZE.events_outside
ICS_EVENTS = ICS_APPOINTMENTS + ICS_TIMED_EVENTS + ICS_ALL_DAY_EVENTS  # 5,000 VEVENTs
ICS_MOVE = dt.timedelta(minutes=5)  # ics_incremental moves one appointment by this and back, run after run
ICS_USER_AGENT = "Google-Calendar-Importer"
ICS_SERVE_QUERIES = 2  # the subscription lookup and the stored bytes; 1 for a 304
ICS_NAMES = (
    ("Zoë", "Ødegaard"),
    ("Siobhán", "Ó Súilleabháin"),
    ("Łukasz", "Wiśniewski"),
    ("Thị", "Nguyễn"),
    ("Çağan", "Öztürk"),
    ("Åsa", "Håkansson"),
    ("Émile", "Dubois"),
    ("Ngozi", "Okafor"),
)
ICS_TITLES = (
    "Practice meeting",
    "Supervision; room 2, upstairs",
    "Home visits — Ørsted Road",
    "Team training: safeguarding, level 3 (the annual refresher for every clinical member of staff)",
)
ICS_ALL_DAY_TITLES = ("Annual leave", "Training day", "Conference, Zürich")
ICS_FEED_TABLES = (FeedEvent, FeedDocument)


def analyze(*tables_of: type[models.Model], vacuum: bool = False) -> None:
    """On PostgreSQL, the tables' statistics (and, with ``vacuum``, their dead rows reclaimed) as autovacuum
    would leave them; nothing elsewhere."""
    if connection.vendor != "postgresql":
        return
    tables = ", ".join(m._meta.db_table for m in tables_of)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {tables}" if vacuum else f"ANALYZE {tables}")


@dataclass(frozen=True)
class IcsState:
    clinic: Clinic
    practitioner: Practitioner
    subscription: FeedSubscription
    name: str  # X-WR-CALNAME
    items: list[FeedItem]  # the feed's 5,000 events as feed_sources gives them, for the floors
    url: str  # the subscription URL
    floor_url: str
    client: Client  # anonymous, as a calendar app
    left_out: list[str]  # UIDs of the cancelled appointments and of the events outside the window


def ics_blocks(body: bytes) -> list[bytes]:
    """The VEVENTs of a feed, sorted, and what surrounds them."""
    blocks = re.findall(rb"BEGIN:VEVENT\r\n.*?END:VEVENT\r\n", body, flags=re.S)
    return sorted(blocks) + [re.sub(rb"BEGIN:VEVENT\r\n.*?END:VEVENT\r\n", b"", body, flags=re.S)]


def ics_vevents(body: bytes) -> int:
    return body.count(b"BEGIN:VEVENT")


def ics_document(state: IcsState) -> FeedDocument | None:
    return FeedDocument.objects.filter(subscription=state.subscription).first()


def ics_body(state: IcsState) -> bytes:
    document = ics_document(state)
    return b"" if document is None else feed_bytes(bytes(document.body))


def ics_build(state: IcsState, *, force: bool = False) -> FeedDocument:
    return feed_build(subscription=state.subscription, now=ICS_NOW, force=force)


def ics_serializer(state: IcsState) -> bytes:
    """The app's own serializer alone (calendar_sync.feed.ics), on the items: what a build from nothing writes."""
    return ics.calendar(state.name, (ics.vevent(item, sequence=0, stamp=ICS_NOW) for item in state.items))


def ics_icalendar(state: IcsState) -> bytes:
    """Floor: the icalendar library building the same calendar and events, the same properties."""
    calendar = icalendar.Calendar()
    for key, value in (
        ("version", "2.0"),
        ("prodid", ics.PRODID),
        ("calscale", "GREGORIAN"),
        ("method", "PUBLISH"),
        ("x-wr-calname", state.name),
        ("x-published-ttl", ics.REFRESH),
    ):
        calendar.add(key, value)
    calendar.add("refresh-interval", dt.timedelta(minutes=15), parameters={"VALUE": "DURATION"})
    for item in state.items:
        event = icalendar.Event()
        event.add("uid", item.uid)
        event.add("dtstamp", ICS_NOW)
        event.add("sequence", 0)
        event.add("dtstart", item.first_date or item.starts_at)
        event.add("dtend", item.end_date or item.ends_at)
        event.add("summary", item.summary)
        if item.location:
            event.add("location", item.location)
        event.add("transp", "TRANSPARENT" if item.transparent else "OPAQUE")
        calendar.add_component(event)
    return calendar.to_ical()


def ics_plain(state: IcsState) -> bytes:
    """Floor: plain string formatting of the same items, no escaping and no folding."""
    stamp = f"{ICS_NOW:%Y%m%dT%H%M%SZ}"
    parts = [
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:{ics.PRODID}\r\nCALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\n"
        f"X-WR-CALNAME:{state.name}\r\nREFRESH-INTERVAL;VALUE=DURATION:{ics.REFRESH}\r\n"
        f"X-PUBLISHED-TTL:{ics.REFRESH}\r\n"
    ]
    for item in state.items:
        if item.first_date is not None:
            when = f"DTSTART;VALUE=DATE:{item.first_date:%Y%m%d}\r\nDTEND;VALUE=DATE:{item.end_date:%Y%m%d}"
        else:
            when = f"DTSTART:{item.starts_at:%Y%m%dT%H%M%SZ}\r\nDTEND:{item.ends_at:%Y%m%dT%H%M%SZ}"
        where = f"LOCATION:{item.location}\r\n" if item.location else ""
        transp = "TRANSPARENT" if item.transparent else "OPAQUE"
        parts.append(
            f"BEGIN:VEVENT\r\nUID:{item.uid}\r\nDTSTAMP:{stamp}\r\nSEQUENCE:0\r\n{when}\r\n"
            f"SUMMARY:{item.summary}\r\n{where}TRANSP:{transp}\r\nEND:VEVENT\r\n"
        )
    parts.append("END:VCALENDAR\r\n")
    return "".join(parts).encode()


def ics_patients(clinic: Clinic, rng: random.Random) -> list[Patient]:
    """The calendar's patients (every 40th blocked, every 25th with a preferred name), every 10th of them
    renamed from ICS_NAMES: initials like "ZØ" and "ŁW" in the feed."""
    patients = calendar_patients(clinic, rng, ICS_PATIENTS)
    renamed = patients[3::10]
    for patient, (first, last) in zip(renamed, itertools.cycle(ICS_NAMES), strict=False):
        patient.first_name, patient.last_name = first, last
        patient.first_name_key, patient.last_name_key = name_key(first), name_key(last)
    Patient.objects.bulk_update(renamed, ["first_name", "last_name", "first_name_key", "last_name_key"], batch_size=500)
    return patients


def ics_appointments(
    clinic: Clinic, practitioner: Practitioner, rng: random.Random, patients: list[Patient], actor: User
) -> list[str]:
    """4,600 live appointments in the window, 20 before it and 20 after it, 150 cancelled ones in it; the UIDs of
    those the feed must leave out."""
    starts, ends = feed_window(ICS_NOW)
    slots = list(
        Slot.objects.for_clinic(clinic)
        .filter(session__practitioner=practitioner, bookable=True)
        .select_related("session")
        .order_by("starts_at", "id")
    )
    inside = [slot for slot in slots if starts <= slot.starts_at < ends]
    before = [slot for slot in slots if slot.starts_at < starts and slot.capacity == 1]
    after = [slot for slot in slots if slot.starts_at >= ends and slot.capacity == 1]
    rng.shuffle(inside)
    targets: list[tuple[Slot, int]] = []
    remaining = ICS_APPOINTMENTS
    for slot in inside:
        if not remaining:
            break
        places = 1 if slot.capacity == 1 else min(rng.randint(2, 5), remaining)
        targets.append((slot, places))
        remaining -= places
    outside = rng.sample(before, ICS_APPOINTMENTS_OUTSIDE) + rng.sample(after, ICS_APPOINTMENTS_OUTSIDE)
    made = slots_book_to(clinic, targets + [(slot, 1) for slot in outside], rng, patients, actor)
    if remaining or made != ICS_APPOINTMENTS + 2 * ICS_APPOINTMENTS_OUTSIDE:
        raise RuntimeError(f"ics feed: {made} appointments made, expected {ICS_APPOINTMENTS} and the outside ones")
    cancelled = [
        appointment_in(
            clinic,
            (slot.pk, practitioner.pk, slot.slot_type_id, slot.capacity, slot.starts_at, slot.ends_at),
            rng.choice(patients),
            AppointmentStatus.CANCELLED,
            actor,
        )
        for slot in rng.sample(inside, ICS_CANCELLED)
    ]
    Appointment.objects.bulk_create(cancelled, batch_size=500)
    left_out = Appointment.objects.for_clinic(clinic).filter(
        models.Q(status=AppointmentStatus.CANCELLED) | models.Q(slot__in=outside)
    )
    return [f"appointment-{public_id}@{UID_DOMAIN}" for public_id in left_out.values_list("public_id", flat=True)]


def ics_other_events(clinic: Clinic, practitioner: Practitioner, rng: random.Random) -> list[str]:
    """300 timed (every third free) and 100 all-day other events in the window, the first all-day one beginning
    before it; 6 before and 6 after it. The UIDs of those the feed must leave out."""
    zone = ZoneInfo(CALENDAR_TIME_ZONE)
    starts, ends = feed_window(ICS_NOW)
    first_day, last_day = starts.date() + dt.timedelta(days=1), ends.date() - dt.timedelta(days=7)

    def timed(day: dt.date, number: int) -> OtherEvent:
        begins = dt.datetime.combine(day, dt.time(rng.choice((12, 13, 17)), rng.choice((0, 30))), tzinfo=zone)
        return OtherEvent(
            clinic=clinic,
            practitioner=practitioner,
            title=ICS_TITLES[number % len(ICS_TITLES)],
            starts_at=begins,
            ends_at=begins + dt.timedelta(minutes=rng.choice((30, 60, 90, 120))),
            busy=number % 3 != 0,
        )

    def all_day(day: dt.date, number: int, days: int | None = None) -> OtherEvent:
        return OtherEvent(
            clinic=clinic,
            practitioner=practitioner,
            title=ICS_ALL_DAY_TITLES[number % len(ICS_ALL_DAY_TITLES)],
            all_day=True,
            first_date=day,
            last_date=day + dt.timedelta(days=(rng.randint(1, 5) if days is None else days) - 1),
        )

    def day_between(first: dt.date, last: dt.date) -> dt.date:
        return dt.date.fromordinal(rng.randint(first.toordinal(), last.toordinal()))

    inside = [timed(day_between(first_day, last_day), n) for n in range(ICS_TIMED_EVENTS)]
    inside.append(all_day(starts.date() - dt.timedelta(days=3), 0, days=5))  # Annual leave across the start
    inside += [all_day(day_between(first_day, last_day), n) for n in range(1, ICS_ALL_DAY_EVENTS)]
    outside = [
        make(starts.date() - dt.timedelta(days=10 + n), n)
        for n in range(ICS_EVENTS_OUTSIDE // 2)
        for make in (timed, all_day)
    ]
    outside += [
        make(ends.date() + dt.timedelta(days=2 + n), n)
        for n in range(ICS_EVENTS_OUTSIDE // 2)
        for make in (timed, all_day)
    ]
    OtherEvent.objects.bulk_create(inside + outside)
    return [f"event-{event.public_id}@{UID_DOMAIN}" for event in outside]


def ics_check(state: IcsState, body: bytes) -> None:
    """Exactly the 5,000 events: none of the cancelled or outside ones, the blocked patients restricted, the
    renamed ones by their (non-ASCII) initials."""
    text = body.decode()
    problems = []
    if ics_vevents(body) != ICS_EVENTS:
        problems.append(f"{ics_vevents(body)} VEVENTs, expected {ICS_EVENTS}")
    if any(uid in text for uid in state.left_out):
        problems.append("a cancelled appointment or an event outside the window is in it")
    if "Restricted patient · " not in text or "ZØ · " not in text or "ŁW · " not in text:
        problems.append("the blocked patients or the renamed ones are not shown as they should be")
    if problems:
        raise RuntimeError("ics feed: " + "; ".join(problems))
    checked()


@functools.cache
def ics_setup() -> IcsState:
    """One practitioner's calendar over 90 weeks, 5,000 events in the feed's window, the subscription enabled
    (initials) and the feed built; built once per process, shared by the three ics cases."""
    clinics_clear([ICS_SLUG])
    rng = random.Random(ICS_SEED)
    clinic = Clinic.objects.create(
        name="Benchmark ICS feed", slug=ICS_SLUG, time_zone=CALENDAR_TIME_ZONE, internal_ids_enabled=True
    )
    user, _ = User.objects.get_or_create(username=ICS_ADMIN, defaults={"email": ICS_ADMIN})
    Membership.objects.create(clinic=clinic, user=user, role=Role.ADMIN)
    (practitioner,) = calendar_rota(clinic, CalendarSize(ICS_SLUG, ICS_ADMIN, 1, 0, 0, ICS_PATIENTS), weeks=ICS_WEEKS)
    with transaction.atomic():
        patients = ics_patients(clinic, rng)
        left_out = ics_appointments(clinic, practitioner, rng, patients, user)
        left_out += ics_other_events(clinic, practitioner, rng)
    subscription = subscription_get_or_create(clinic=clinic, practitioner=practitioner)
    # Enabling queues a build (eager here, at the real date); the forced build below is at ICS_NOW.
    subscription = subscription_save(
        clinic=clinic, actor=user, subscription=subscription, enabled=True, identifier_mode=ICS_MODE
    )
    analyze(Appointment, Slot, Session, Patient, OtherEvent, *ICS_FEED_TABLES)
    items = [
        source.item for source in feed_sources(clinic=clinic, practitioner=practitioner, mode=ICS_MODE, now=ICS_NOW)
    ]
    state = IcsState(
        clinic=clinic,
        practitioner=practitioner,
        subscription=subscription,
        name=f"{practitioner.name} · {clinic.name}",
        items=items,
        url=reverse("calendar_sync:feed", args=[feed_token(subscription)]),
        floor_url=reverse("healthz"),
        client=Client(headers={"user-agent": ICS_USER_AGENT, "accept-encoding": "gzip"}),
        left_out=left_out,
    )
    FeedDocument.objects.filter(subscription=subscription).delete()
    ics_build(state, force=True)
    body = ics_body(state)
    ics_check(state, body)
    if ics_blocks(body) != ics_blocks(ics_serializer(state)):
        # (the same VEVENTs, byte for byte; the build orders them by start)
        raise RuntimeError("ics feed: a build from nothing differs from the serializer on the same items")
    for floor in (ics_icalendar, ics_plain):
        found = floor(state)
        if ics_vevents(found) != ICS_EVENTS or any(item.uid.encode() not in found for item in items[::97]):
            raise RuntimeError(f"ics feed: {floor.__name__} did not build the same {ICS_EVENTS} events")
    return state


def ics_full_reset(state: IcsState) -> None:
    """Check the build just made (if any), then remove the stored feed, events and document: a build from nothing."""
    body = ics_body(state)
    if body:
        ics_check(state, body)
    FeedDocument.objects.filter(subscription=state.subscription).delete()
    analyze(*ICS_FEED_TABLES, vacuum=True)


def ics_full_figures(result: Result) -> Result:
    """The second floor (plain string formatting) and the app's serializer alone (no database), timed the same
    way, the icalendar floor's peak memory, and the feed's size."""
    state = ics_setup()
    return {
        "events": ICS_EVENTS,
        "feed_bytes": len(ics_serializer(state)),
        "icalendar_peak_mb": round(peak_memory_mb(functools.partial(ics_icalendar, state)), 4),
        **sub_case("plain", state, ics_plain, result),
        **sub_case("serializer", state, ics_serializer, result),
    }


register(
    Case(
        name="ics_full",
        setup=ics_setup,
        run=functools.partial(ics_build, force=True),
        floor=ics_icalendar,
        reset=ics_full_reset,
        warmup=2,
        extras=ics_full_figures,
    )
)


def ics_serve_setup() -> IcsState:
    """The feed stored and fresh; serving it takes the lookup and the bytes, and a 304 the lookup alone."""
    state = ics_setup()
    ics_build(state)  # missing after ics_full: built here, untimed
    ics_check(state, feed_bytes(get_ok(state.client, state.url)))
    document = ics_document(state)
    assert document is not None
    serve = functools.partial(get_ok, state.client, state.url)
    counts = (count_queries(serve), count_queries(functools.partial(ics_not_modified(document.etag), state)))
    if counts != (ICS_SERVE_QUERIES, ICS_SERVE_QUERIES - 1):
        raise RuntimeError(f"ics_serve: (200, 304) take {counts} queries, expected 2 and 1: is the feed stale?")
    checked()
    return state


def ics_not_modified(etag: str) -> Callable[[IcsState], None]:
    def get(state: IcsState) -> None:
        response = state.client.get(state.url, headers={"if-none-match": etag})
        if response.status_code != 304:
            raise RuntimeError(f"GET {state.url} with If-None-Match returned {response.status_code}, expected 304")

    return get


def ics_serve_figures(result: Result) -> Result:
    """The 304 answer to If-None-Match, timed the same way, and the size of the 200's body."""
    state = ics_setup()
    if result["queries"] != ICS_SERVE_QUERIES:
        raise RuntimeError(f"ics_serve: {result['queries']} queries, expected {ICS_SERVE_QUERIES}")
    checked()
    document = ics_document(state)
    assert document is not None
    return {
        "feed_bytes": len(bytes(document.body)),
        **sub_case("not_modified", state, ics_not_modified(document.etag), result),
    }


register(
    Case(
        name="ics_serve",
        setup=ics_serve_setup,
        run=lambda state: get_ok(state.client, state.url),
        floor=lambda state: get_ok(state.client, state.floor_url),
        runs=30,
        warmup=3,
        extras=ics_serve_figures,
    )
)


@dataclass
class IncrementalState:
    """The feed, and the one appointment that each reset moves by five minutes (and back the next time)."""

    feed: IcsState
    appointment: int  # pk
    key: str  # its FeedEvent key
    moved: bool = False
    pending: bool = False  # a change the feed has not been rebuilt for yet
    sequences: dict[str, int] = field(default_factory=dict)  # every FeedEvent's SEQUENCE before that change
    checked: int = 0  # rebuilds found to have raised exactly that one event's SEQUENCE


def ics_sequences(state: IcsState) -> dict[str, int]:
    return dict(FeedEvent.objects.filter(document__subscription=state.subscription).values_list("key", "sequence"))


@functools.cache
def ics_incremental_setup() -> IncrementalState:
    """The feed built and fresh; the appointment to move is one of the 4,600, half-way through the window."""
    feed = ics_setup()
    ics_build(feed)
    starts, ends = feed_window(ICS_NOW)
    middle = starts + (ends - starts) / 2
    appointment = (
        Appointment.objects.for_clinic(feed.clinic).live().filter(starts_at__gte=middle).order_by("starts_at", "id")
    ).first()
    assert appointment is not None
    return IncrementalState(feed=feed, appointment=appointment.pk, key=f"a{appointment.pk}")


def ics_incremental_reset(state: IncrementalState) -> None:
    """If the feed was rebuilt since the last change, check that exactly the moved appointment's SEQUENCE went
    up, then move it (or back) and count a change as feeds_changed does (without queueing the build). If not
    (the floor ran in between), the change is still pending: nothing to do."""
    feed = state.feed
    document = ics_document(feed)
    changes = FeedSubscription.objects.filter(pk=feed.subscription.pk).values_list("changes", flat=True).get()
    if state.pending:
        if document is None or document.built_changes < changes:
            return
        after = ics_sequences(feed)
        raised = {key for key, sequence in after.items() if sequence != state.sequences.get(key)}
        if raised != {state.key} or after[state.key] != state.sequences[state.key] + 1 or len(after) != ICS_EVENTS:
            raise RuntimeError(f"ics_incremental: SEQUENCE changed for {sorted(raised)[:5]}, expected {state.key}")
        state.checked += 1
        checked()
    state.sequences = ics_sequences(feed)
    shift = -ICS_MOVE if state.moved else ICS_MOVE
    Appointment.objects.filter(pk=state.appointment).update(
        starts_at=models.F("starts_at") + shift, ends_at=models.F("ends_at") + shift
    )
    feed_changes_record([feed.practitioner.pk], [state.key])
    state.moved, state.pending = not state.moved, True


def ics_incremental_floor(state: IncrementalState) -> None:
    """What any rebuild of a stored feed does: read the 5,000 stored VEVENTs, join them and write the body (in
    one transaction). The change stays pending: the next run builds it."""
    feed = state.feed
    with transaction.atomic():
        texts = (
            FeedEvent.objects.filter(document__subscription=feed.subscription)
            .order_by("sort_key", "key")
            .values_list("text", flat=True)
        )
        body = ics.calendar(feed.name, texts)
        FeedDocument.objects.filter(subscription=feed.subscription).update(
            body=gzip.compress(body, compresslevel=1, mtime=0)
        )


def ics_incremental_figures(result: Result) -> Result:
    """How many rebuilds were checked, and feed_sources alone (its two queries and the fingerprints) timed the
    same way."""
    state = ics_incremental_setup()
    feed = state.feed

    def sources(_: object) -> None:
        list(feed_sources(clinic=feed.clinic, practitioner=feed.practitioner, mode=ICS_MODE, now=ICS_NOW))

    return {"checked_rebuilds": state.checked, **sub_case("sources", state, sources, result)}


register(
    Case(
        name="ics_incremental",
        setup=ics_incremental_setup,
        run=lambda state: ics_build(state.feed),
        floor=ics_incremental_floor,
        reset=ics_incremental_reset,
        warmup=2,
        extras=ics_incremental_figures,
    )
)
