"""Two-way sync with Google Calendar, against the fake Google of the tests.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``), chosen by the harness."""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from benchmarks.cases.common import CALENDAR_TIME_ZONE, register, sub_case
from benchmarks.cases.ics import ICS_APPOINTMENTS, ICS_EVENTS, ICS_MODE, ICS_MOVE, ICS_NOW, IcsState, analyze, ics_setup
from benchmarks.harness import Case, Result, checked, sized
from calendar_sync.crypto import seal
from calendar_sync.feed.sources import WINDOW_AHEAD, WINDOW_BACK, feed_sources, feed_window
from calendar_sync.google import client as google_client
from calendar_sync.google import events as google_events
from calendar_sync.google import pull as google_pull
from calendar_sync.google import push as google_push
from calendar_sync.google.pull import PullReport
from calendar_sync.google.push import PushReport
from calendar_sync.models import (
    FeedSubscription,
    GoogleCalendar,
    GoogleConnection,
    GoogleEvent,
    GooglePending,
    SyncType,
)
from clinic.models import Practitioner
from scheduling.models import Appointment, OtherEvent

if TYPE_CHECKING:
    from tests.google_fake.server import FakeGoogle

# --- Two-way sync with Google Calendar, against the fake Google -------------------------------------------------
#
# google_sync: the ics cases' practitioner (5,000 events in the window) connected to the fake Google of the tests
# (tests/google_fake, started in this process: its own work is in the wall times), push and pull called
# directly with now=ICS_NOW (no Celery; a push is kept marked as queued so that nothing queues an eager one).
#
# - The case's own median: the first full push, 5,000 events into an empty default calendar (made again before each
#   run, nothing remembered as sent, everything pending): 100 batch requests of 50 inserts, paced under Google's
#   per-user limit (600 calls a minute, less the pull headroom) with the minute scaled down to GOOGLE_QUOTA_WINDOW
#   seconds for pacer and fake alike. Its wall time is then set by the limit, not by our code: the check asserts
#   the fake refused nothing, and the extras compute the time to converge against Google (push_converge_minutes:
#   the median with each window waited for lasting a real minute; 9 windows at 550 calls, about 9.1 minutes, where
#   the bare limit would give 8.3) and push_calls_per_minute. Unpaced, the push took 3.2 to 3.7 s; paced, about
#   12 to 15 s (9 windows of 1.2 s and our own work, which does not overlap the waits).
# - pull_*: the first full pull of a calendar made in Google with 5,000 events (3,000 timed busy, 1,000 timed free,
#   1,000 all-day) into external OtherEvents: 2 pages of 2,500. Target ≤ 3 s.
# - incremental_*: a default calendar in sync both ways (ours and Google's 5,000) after 50 changes, 25 events edited
#   in Google and 25 appointments moved here (pending): one pull (1 page) and one push (1 batch request). Target
#   ≤ 0.5 s.
# - first_sync_*: the one first sync both ways that put that calendar in sync (timed once): 100 batch requests,
#   then 4 pages listing ours and Google's 10,000.
# - series_*: the full pull of a calendar with 20 infinite weekly series (no end): the rows stored stay bounded by
#   the window (60 days back, 548 ahead: about 87 an hour-long series), one page. Without timeMax a listing
#   expands each series two years ahead (the fake), and the rows would follow.
#
# Each run is checked in the reset after it (what Google holds, what is here, the reports and the requests the
# fake saw), so a wrong sync fails the benchmark instead of being timed. Medians measured on a shared machine with 2
# CPUs, SQLite and PostgreSQL alike: push 3.2 to 3.7 s, pull 0.8 to 1.5 s, incremental 0.08 to 0.23 s. Of the push,
# about a third is the fake answering and most of the rest googleapiclient writing and reading the multipart batches
# (the email package); the database takes about 0.6 s (planning from feed_sources, then remembering what was sent).

GOOGLE_EMAIL = "dr.bench@example.com"
GOOGLE_SEED = 20_270_504
GOOGLE_RUNS = 3  # the full push (about ten seconds: set by the scaled quota) and the full pull
GOOGLE_QUOTA_WINDOW = 1.2  # seconds standing for Google's quota minute (the pacer's and the fake's window)
GOOGLE_QUOTA_SCALE = 60.0 / GOOGLE_QUOTA_WINDOW  # real seconds per benchmark second while the quota sets the pace
GOOGLE_INCREMENTAL_RUNS = 3  # times the case's runs: the incremental sync is fast
GOOGLE_SERIES = 20  # infinite weekly series in the series sub-case, at both sizes (under 2,000 rows)
GOOGLE_SERIES_LENGTH = dt.timedelta(minutes=45)


@dataclass(frozen=True)
class GoogleSizes:
    events: int  # made in Google: 3/5 timed busy, 1/5 timed free, 1/5 all-day (a third of them busy)
    timed_edits: int  # incremental: timed events renamed and moved in Google
    all_day_edits: int  # incremental: all-day events renamed in Google
    moves: int  # incremental: appointments moved here (by ICS_MOVE, and back the next time)


FULL = GoogleSizes(events=5_000, timed_edits=20, all_day_edits=5, moves=25)
TINY = GoogleSizes(events=50, timed_edits=2, all_day_edits=1, moves=2)
SIZE = sized(FULL, TINY)

GOOGLE_EVENTS = SIZE.events
GOOGLE_EDITS = SIZE.timed_edits + SIZE.all_day_edits  # incremental: events changed in Google (25)
GOOGLE_MOVES = SIZE.moves
GOOGLE_EDIT_MOVE = dt.timedelta(minutes=15)  # a timed event edited in Google moves by this every other round
GOOGLE_TOKEN_TTL = 86_400  # the fake's access tokens outlive the benchmark: no refresh inside the timings
GOOGLE_PUSH_REQUESTS = -(-ICS_EVENTS // google_client.BATCH_SIZE)  # 100 batch requests of 50 inserts
GOOGLE_PULL_REQUESTS = -(-GOOGLE_EVENTS // google_pull.PAGE_SIZE)  # 2 pages of 2,500
GOOGLE_FIRST_SYNC_PAGES = -(-(ICS_EVENTS + GOOGLE_EVENTS) // google_pull.PAGE_SIZE)  # ours and theirs: 4 pages
GOOGLE_TITLES = (
    "Dentist",
    "School run",
    "Lunch with Zoë",
    "Gym",
    "Call the bank",
    "Parents' evening — Year 6",
    "Board meeting (Østerbro office)",
)
GOOGLE_ALL_DAY_TITLES = ("Holiday", "Out of office", "Birthday: Siobhán", "Bank holiday")
GOOGLE_API = "/calendar/v3"  # in the path of every Calendar request, batch (/batch/calendar/v3) or not


def google_bodies(rng: random.Random) -> list[dict[str, Any]]:
    """5,000 events as a person makes them in Google, from 50 days before ICS_NOW to 500 days after it (all in
    a full listing's window): every fifth all-day (1 to 3 days; free, but every third busy), every fifth timed
    and free, the rest timed and busy, in the clinic's zone."""
    zone = ZoneInfo(CALENDAR_TIME_ZONE)
    first = (ICS_NOW - dt.timedelta(days=50)).date()
    bodies: list[dict[str, Any]] = []
    for number in range(GOOGLE_EVENTS):
        day = first + dt.timedelta(days=rng.randrange(550))
        if number % 5 == 4:
            last = day + dt.timedelta(days=rng.randint(1, 3))
            bodies.append(
                {
                    "summary": GOOGLE_ALL_DAY_TITLES[number % len(GOOGLE_ALL_DAY_TITLES)],
                    "start": {"date": day.isoformat()},
                    "end": {"date": last.isoformat()},
                    "transparency": "opaque" if number % 3 == 0 else "transparent",
                }
            )
            continue
        begins = dt.datetime.combine(day, dt.time(rng.randint(7, 19), rng.choice((0, 15, 30, 45))), tzinfo=zone)
        ends = begins + dt.timedelta(minutes=rng.choice((15, 30, 45, 60, 90)))
        body: dict[str, Any] = {
            "summary": GOOGLE_TITLES[number % len(GOOGLE_TITLES)],
            "start": {"dateTime": begins.isoformat(), "timeZone": CALENDAR_TIME_ZONE},
            "end": {"dateTime": ends.isoformat(), "timeZone": CALENDAR_TIME_ZONE},
        }
        if number % 5 == 3:
            body["transparency"] = "transparent"
        bodies.append(body)
    return bodies


def google_made(fake: FakeGoogle, calendar_id: str, bodies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The bodies made in the calendar (as the user, not timed, not over HTTP), by the id Google gave them."""
    return {str(fake.user_create_event(calendar_id, body)["id"]): body for body in bodies}


def google_shown(body: dict[str, Any]) -> tuple[str, bool, dt.datetime | dt.date]:
    """What an external OtherEvent must show of a Google event: its title, busy, and its start (or first day)."""
    start = body["start"]
    when = dt.date.fromisoformat(start["date"]) if "date" in start else google_events.instant(start["dateTime"])
    return body["summary"], body.get("transparency", "opaque") != "transparent", when


def google_pulled(practitioner: Practitioner, calendar_id: str) -> dict[str, tuple[str, bool, dt.datetime | dt.date]]:
    """The external OtherEvents pulled from a calendar, by Google's id, as google_shown puts them."""
    rows = OtherEvent.objects.filter(practitioner=practitioner, google_calendar_id=calendar_id).values_list(
        "google_event_id", "title", "busy", "all_day", "starts_at", "first_date"
    )
    return {
        event_id: (title, busy, first_date if all_day else starts_at)
        for event_id, title, busy, all_day, starts_at, first_date in rows
    }


def google_requests(fake: FakeGoogle) -> tuple[int, int]:
    """The HTTP requests to the Calendar API since the fake's log was cleared, and the calls batched in them."""
    return fake.count_requests(path_contains=GOOGLE_API), fake.count_requests(path_contains=GOOGLE_API, batched=True)


@dataclass
class GoogleSyncState:
    """The ics cases' practitioner (5,000 events in the window) connected to the fake Google for two-way sync.

    The push writes to a default calendar made empty before each run; the pull reads ``pull_calendar``, made in
    Google with 5,000 events of its own, as the default calendar, with its sync token cleared before each run.
    """

    feed: IcsState
    fake: FakeGoogle
    connection: int  # pk
    ours: frozenset[str]  # Google's ids of our 5,000 events
    push_row: int  # the GoogleCalendar of the default calendar the push writes to (made again before each run)
    pull_row: int
    pull_calendar: str
    pull_made: dict[str, dict[str, Any]]  # Google's id → the body it was made from
    push_calendar: str = ""
    push_report: PushReport | None = None
    pull_report: PullReport | None = None
    observed: dict[str, int] = field(default_factory=dict)  # request counts and checked runs, for the extras


def google_fail(case: str, problems: list[str]) -> None:
    """Raise if there are problems; else record that the check passed."""
    if problems:
        raise RuntimeError(f"google_sync ({case}): " + "; ".join(problems))
    checked()


def google_connection_set(state: GoogleSyncState, calendar_id: str, *, pending: Iterable[str] = ()) -> None:
    """The connection's default calendar, its pending changes exactly ``pending``, and a push marked as queued, so
    that nothing a change commits queues one (eager, in this process) behind the measured calls."""
    with transaction.atomic():
        GooglePending.objects.filter(connection_id=state.connection).delete()
        GooglePending.objects.bulk_create(
            [GooglePending(clinic=state.feed.clinic, connection_id=state.connection, key=key) for key in pending]
        )
        GoogleConnection.objects.filter(pk=state.connection).update(default_calendar_id=calendar_id, push_queued=True)


@functools.cache
def google_setup() -> GoogleSyncState:
    """The fake Google started (settings pointed at it), its account holding a calendar with 5,000 events, and the
    ics practitioner connected to it as the OAuth flow leaves a connection (sealed tokens, two-way enabled)."""
    from tests.google_fake.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeGoogle  # test code: lazily

    feed = ics_setup()
    # Google's limits per user and per project, over a window scaled down: the same for our pacer and the fake.
    settings.GOOGLE_RATE_WINDOW_SECONDS = GOOGLE_QUOTA_WINDOW
    fake = FakeGoogle(
        access_token_ttl=GOOGLE_TOKEN_TTL,
        rate_limit_user=settings.GOOGLE_RATE_LIMIT_USER,
        rate_limit_project=settings.GOOGLE_RATE_LIMIT_PROJECT,
        rate_window=GOOGLE_QUOTA_WINDOW,
    ).start()
    atexit.register(fake.stop)
    settings.GOOGLE_CLIENT_ID, settings.GOOGLE_CLIENT_SECRET = DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
    settings.GOOGLE_AUTH_URI, settings.GOOGLE_TOKEN_URI = fake.auth_uri, fake.token_uri
    settings.GOOGLE_REVOKE_URI = fake.revoke_uri
    settings.GOOGLE_API_ROOT = fake.url + "/"
    settings.GOOGLE_WEBHOOK_ORIGIN = ""
    tokens = fake.issue_tokens(GOOGLE_EMAIL)
    pull_calendar = fake.user_create_calendar(GOOGLE_EMAIL, "Family")
    pull_made = google_made(fake, pull_calendar, google_bodies(random.Random(GOOGLE_SEED)))
    with transaction.atomic():
        GoogleConnection.objects.filter(practitioner=feed.practitioner).delete()
        connection = GoogleConnection.objects.create(
            clinic=feed.clinic,
            practitioner=feed.practitioner,
            email=GOOGLE_EMAIL,
            refresh_token=seal(tokens["refresh_token"]),
            access_token=seal(tokens["access_token"]),
            access_expires_at=timezone.now() + dt.timedelta(seconds=int(tokens["expires_in"])),
            default_calendar_created=True,
            push_queued=True,
        )
        push_row = GoogleCalendar.objects.create(clinic=feed.clinic, connection=connection, calendar_id="")
        pull_row = GoogleCalendar.objects.create(
            clinic=feed.clinic, connection=connection, calendar_id=pull_calendar, summary="Family"
        )
        FeedSubscription.objects.filter(pk=feed.subscription.pk).update(sync_type=SyncType.TWO_WAY, enabled=True)
    sources = feed_sources(clinic=feed.clinic, practitioner=feed.practitioner, mode=ICS_MODE, now=ICS_NOW)
    ours = frozenset(google_events.our_event_id(source) for source in sources)
    google_fail("setup", [f"{len(ours)} of our events, expected {ICS_EVENTS}"] if len(ours) != ICS_EVENTS else [])
    return GoogleSyncState(
        feed=feed,
        fake=fake,
        connection=connection.pk,
        ours=ours,
        push_row=push_row.pk,
        pull_row=pull_row.pk,
        pull_calendar=pull_calendar,
        pull_made=pull_made,
    )


def google_push_check(state: GoogleSyncState) -> None:
    """The push just made: exactly our 5,000 events in the calendar (4,600 of them client events, locked), each
    remembered, nothing left pending, in 100 batch requests of 50 inserts."""
    fake, report = state.fake, state.push_report
    held = fake.events(state.push_calendar)
    ids = {event["id"] for event in held}
    locked = sum(1 for event in held if event["summary"].startswith(google_events.LOCK))
    requests, calls = google_requests(fake)
    problems = []
    if len(held) != ICS_EVENTS or ids != state.ours:
        problems.append(f"Google holds {len(held)} events, {len(ids - state.ours)} not ours, expected our {ICS_EVENTS}")
    if locked != ICS_APPOINTMENTS:
        problems.append(f"{locked} client events, expected {ICS_APPOINTMENTS}")
    if report != PushReport(sent=ICS_EVENTS, requests=GOOGLE_PUSH_REQUESTS):
        problems.append(f"{report}, expected {ICS_EVENTS} sent in {GOOGLE_PUSH_REQUESTS} requests")
    if (requests, calls) != (GOOGLE_PUSH_REQUESTS, ICS_EVENTS):
        problems.append(f"{requests} requests carrying {calls} calls, expected {GOOGLE_PUSH_REQUESTS} and {ICS_EVENTS}")
    if GoogleEvent.objects.filter(connection_id=state.connection).count() != ICS_EVENTS:
        problems.append("not every event sent is remembered")
    if GooglePending.objects.filter(connection_id=state.connection).exists():
        problems.append("changes left pending")
    if fake.rate_refusals:
        problems.append(f"Google refused {len(fake.rate_refusals)} calls for quota")
    problems += fake.internal_errors
    google_fail("full push", problems)
    state.observed |= {
        "push_requests": requests,
        "push_batched_calls": calls,
        "checked_pushes": state.observed.get("checked_pushes", 0) + 1,
    }


def google_push_reset(state: GoogleSyncState) -> None:
    """Check the push just made (if any); then a new, empty default calendar (the last one deleted in Google),
    nothing remembered as sent, and everything pending, as resync_all leaves it."""
    fake = state.fake
    if state.push_report is not None:
        google_push_check(state)
        state.push_report = None
    if state.push_calendar:
        fake.user_delete_calendar(state.push_calendar)
    state.push_calendar = fake.user_create_calendar(GOOGLE_EMAIL, f"{state.feed.clinic.name} · Clinic Scheduler")
    GoogleEvent.objects.filter(connection_id=state.connection).delete()
    GoogleCalendar.objects.filter(pk=state.push_row).update(calendar_id=state.push_calendar, sync_token="")
    google_connection_set(state, state.push_calendar, pending=[""])
    analyze(GoogleEvent, GooglePending, vacuum=True)
    fake.clear_requests()


def google_push_run(state: GoogleSyncState) -> None:
    state.push_report = google_push.push(state.connection, now=ICS_NOW)


def google_pull_check(state: GoogleSyncState) -> None:
    """The full pull just made: the 5,000 events as external OtherEvents (titles, busy/free, starts), in two
    pages."""
    fake, report = state.fake, state.pull_report
    pulled = google_pulled(state.feed.practitioner, state.pull_calendar)
    expected = {event_id: google_shown(body) for event_id, body in state.pull_made.items()}
    requests, calls = google_requests(fake)
    problems = []
    if pulled != expected:
        wrong = sum(1 for event_id, shown in expected.items() if pulled.get(event_id) != shown)
        problems.append(f"{len(pulled)} external events, {wrong} of the {GOOGLE_EVENTS} missing or different")
    if report != PullReport(listed=GOOGLE_EVENTS, created=GOOGLE_EVENTS, full=True, requests=GOOGLE_PULL_REQUESTS) or (
        requests,
        calls,
    ) != (GOOGLE_PULL_REQUESTS, 0):
        problems.append(f"{report} in {requests} requests, expected {GOOGLE_PULL_REQUESTS} pages")
    problems += fake.internal_errors
    google_fail("full pull", problems)
    state.observed |= {"pull_requests": requests, "checked_pulls": state.observed.get("checked_pulls", 0) + 1}


def google_pull_reset(state: GoogleSyncState) -> None:
    """Check the pull just made (if any); then no event of that calendar here, its sync token cleared, and it the
    default calendar: the next pull lists it in full."""
    if state.pull_report is not None:
        google_pull_check(state)
        state.pull_report = None
    OtherEvent.objects.filter(practitioner=state.feed.practitioner, google_calendar_id=state.pull_calendar).delete()
    GoogleCalendar.objects.filter(pk=state.pull_row).update(sync_token="")
    google_connection_set(state, state.pull_calendar)
    analyze(OtherEvent, vacuum=True)
    state.fake.clear_requests()


def google_pull_run(state: GoogleSyncState) -> None:
    state.pull_report = google_pull.pull(state.connection, now=ICS_NOW)


@dataclass
class GoogleIncrementalState:
    """A default calendar in sync both ways (our 5,000 events and Google's 5,000), and the 50 changes made before
    each run: 25 appointments moved here (pending) and 25 events edited in Google."""

    sync: GoogleSyncState
    calendar: str
    made: dict[str, dict[str, Any]]  # Google's id → the body it was made from
    edited: list[str]  # Google's ids of the events edited before each run
    moved: dict[int, str]  # the appointments moved before each run: pk → Google's id
    first_sync: Result  # the one first sync both ways that put it in sync
    round: int = 0
    pull_report: PullReport | None = None
    push_report: PushReport | None = None


def google_edit(body: dict[str, Any], round_: int) -> dict[str, Any]:
    """What the person changes in Google in a round: the title, and a timed event's times every other round."""
    changes: dict[str, Any] = {"summary": f"{body['summary']} (edited {round_})"}
    if "dateTime" in body["start"]:
        shift = GOOGLE_EDIT_MOVE * (round_ % 2)
        for end in ("start", "end"):
            moved = dt.datetime.fromisoformat(body[end]["dateTime"]) + shift
            changes[end] = {"dateTime": moved.isoformat(), "timeZone": CALENDAR_TIME_ZONE}
    return changes


@functools.cache
def google_incremental_setup() -> GoogleIncrementalState:
    """A calendar made in Google with 5,000 events of its own, chosen as the default one, and the first sync both
    ways into it, timed once: everything pushed (100 batch requests), then the calendar listed in full (our
    5,000 and Google's 5,000: 4 pages), Google's events created here and ours found unchanged."""
    sync = google_setup()
    fake, feed = sync.fake, sync.feed
    calendar = fake.user_create_calendar(GOOGLE_EMAIL, "Dr Bench (work)")
    made = google_made(fake, calendar, google_bodies(random.Random(GOOGLE_SEED + 1)))
    GoogleCalendar.objects.create(clinic=feed.clinic, connection_id=sync.connection, calendar_id=calendar)
    GoogleEvent.objects.filter(connection_id=sync.connection).delete()
    google_connection_set(sync, calendar, pending=[""])
    fake.clear_requests()
    started = time.perf_counter()
    pushed = google_push.push(sync.connection, now=ICS_NOW)
    push_s = time.perf_counter() - started
    GoogleConnection.objects.filter(pk=sync.connection).update(push_queued=True)
    started = time.perf_counter()
    pulled = google_pull.pull(sync.connection, now=ICS_NOW)
    pull_s = time.perf_counter() - started
    requests, _ = google_requests(fake)
    listed = ICS_EVENTS + GOOGLE_EVENTS
    problems = []
    if pushed != PushReport(sent=ICS_EVENTS, requests=GOOGLE_PUSH_REQUESTS):
        problems.append(f"push: {pushed}")
    if pulled != PullReport(listed=listed, created=GOOGLE_EVENTS, full=True, requests=GOOGLE_FIRST_SYNC_PAGES):
        problems.append(f"pull: {pulled}")
    if requests != GOOGLE_PUSH_REQUESTS + GOOGLE_FIRST_SYNC_PAGES:
        problems.append(f"{requests} requests")
    if GooglePending.objects.filter(connection_id=sync.connection).exists():
        problems.append("our events came back changed from Google (pending again)")
    if google_pulled(feed.practitioner, calendar) != {event_id: google_shown(body) for event_id, body in made.items()}:
        problems.append("Google's events are not all here as made")
    google_fail("first sync both ways", problems + fake.internal_errors)
    _, ends = feed_window(ICS_NOW)
    candidates = list(
        Appointment.objects.for_clinic(feed.clinic)
        .live()
        .filter(practitioner=feed.practitioner, starts_at__gte=ICS_NOW, starts_at__lt=ends - dt.timedelta(days=30))
        .order_by("starts_at", "id")
        .values_list("pk", "public_id")
    )
    moved = {
        pk: "csa" + public_id.hex for pk, public_id in candidates[:: len(candidates) // GOOGLE_MOVES][:GOOGLE_MOVES]
    }
    timed = [event_id for event_id, body in made.items() if "dateTime" in body["start"]]
    all_day = [event_id for event_id, body in made.items() if "date" in body["start"]]
    timed_edits, all_day_edits = SIZE.timed_edits, SIZE.all_day_edits
    edited = (
        timed[:: len(timed) // timed_edits][:timed_edits] + all_day[:: len(all_day) // all_day_edits][:all_day_edits]
    )
    return GoogleIncrementalState(
        sync=sync,
        calendar=calendar,
        made=made,
        edited=edited,
        moved=moved,
        first_sync={
            "first_sync_push_s": round(push_s, 4),
            "first_sync_pull_s": round(pull_s, 4),
            "first_sync_s": round(push_s + pull_s, 4),
            "first_sync_requests": requests,
            "first_sync_listed": pulled.listed,
        },
    )


def google_incremental_check(state: GoogleIncrementalState) -> None:
    """The run just made: the 25 edits here (titles and times), the 25 moved appointments in Google at their new
    times, in one listing page and one batch request."""
    sync = state.sync
    fake = sync.fake
    requests, calls = google_requests(fake)
    problems = []
    if state.pull_report != PullReport(listed=GOOGLE_EDITS, updated=GOOGLE_EDITS, requests=1):
        problems.append(f"pull: {state.pull_report}, expected {GOOGLE_EDITS} updated from one page")
    if state.push_report != PushReport(sent=GOOGLE_MOVES, requests=1):
        problems.append(f"push: {state.push_report}, expected {GOOGLE_MOVES} sent in one batch")
    if (requests, calls) != (2, GOOGLE_MOVES):
        problems.append(f"{requests} requests carrying {calls} calls, expected 2 and {GOOGLE_MOVES}")
    pulled = google_pulled(sync.feed.practitioner, state.calendar)
    for event_id in state.edited:
        body = {**state.made[event_id], **google_edit(state.made[event_id], state.round)}
        if pulled.get(event_id) != google_shown(body):
            problems.append(f"Google's edit of {event_id} is not here")
            break
    starts = dict(Appointment.objects.filter(pk__in=state.moved).values_list("pk", "starts_at"))
    for pk, event_id in state.moved.items():
        event = fake.event(state.calendar, event_id)
        if event is None or google_events.instant(event["start"]["dateTime"]) != starts[pk]:
            problems.append(f"the move of appointment {pk} is not in Google")
            break
    if GooglePending.objects.filter(connection_id=sync.connection).exists():
        problems.append("changes left pending")
    google_fail("incremental", problems + fake.internal_errors)
    sync.observed |= {
        "incremental_pull_requests": state.pull_report.requests if state.pull_report else 0,
        "incremental_push_requests": state.push_report.requests if state.push_report else 0,
        "checked_incrementals": sync.observed.get("checked_incrementals", 0) + 1,
    }


def google_incremental_reset(state: GoogleIncrementalState) -> None:
    """Check the run just made (if any); pull the echo of its push (our own updates, listed again: untimed, and
    checked to change nothing here); then the next round's 50 changes: 25 events edited in Google, 25
    appointments moved here by five minutes (or back) and recorded as pending (no push queued: the run pushes)."""
    sync = state.sync
    fake = sync.fake
    if state.pull_report is not None:
        google_incremental_check(state)
        state.pull_report = state.push_report = None
    google_connection_set(sync, state.calendar)
    echo = google_pull.pull(sync.connection, now=ICS_NOW)
    if (
        echo != PullReport(listed=GOOGLE_MOVES if state.round else 0, requests=1)
        or GooglePending.objects.filter(connection_id=sync.connection).exists()
    ):
        google_fail("incremental", [f"the echo of our own updates changed something here: {echo}"])
    state.round += 1
    for event_id in state.edited:
        fake.user_update_event(state.calendar, event_id, google_edit(state.made[event_id], state.round))
    shift = ICS_MOVE if state.round % 2 else -ICS_MOVE
    Appointment.objects.filter(pk__in=state.moved).update(
        starts_at=models.F("starts_at") + shift, ends_at=models.F("ends_at") + shift
    )
    google_connection_set(sync, state.calendar, pending=[f"a{pk}" for pk in state.moved])
    analyze(OtherEvent, GoogleEvent, GooglePending, Appointment)
    fake.clear_requests()


def google_incremental_run(state: GoogleIncrementalState) -> None:
    """What the pull and the push tasks do after the 50 changes (in the order the periodic pull and a pending
    change would run them)."""
    state.pull_report = google_pull.pull(state.sync.connection, now=ICS_NOW)
    state.push_report = google_push.push(state.sync.connection, now=ICS_NOW)


@dataclass
class GoogleSeriesState:
    """A calendar made in Google with GOOGLE_SERIES infinite weekly series, started before the window (some
    long before), pulled in full as the default calendar before each check."""

    sync: GoogleSyncState
    row: int  # its GoogleCalendar
    calendar: str
    expected: dict[str, int]  # Google's id of each series → its instances in the window
    report: PullReport | None = None


def google_series_instances(begins: dt.datetime) -> int:
    """How many weekly occurrences (wall-clock, in the clinic's zone) from ``begins`` overlap ICS_NOW's window."""
    window_start, window_end = ICS_NOW - WINDOW_BACK, ICS_NOW + WINDOW_AHEAD
    count, week = 0, 0
    while (start := begins + dt.timedelta(weeks=week)) < window_end:
        count += start + GOOGLE_SERIES_LENGTH > window_start
        week += 1
    return count


@functools.cache
def google_series_setup() -> GoogleSeriesState:
    sync = google_setup()
    fake, feed = sync.fake, sync.feed
    calendar = fake.user_create_calendar(GOOGLE_EMAIL, "Rota (weekly)")
    zone = ZoneInfo(CALENDAR_TIME_ZONE)
    expected: dict[str, int] = {}
    for number in range(GOOGLE_SERIES):
        day = (ICS_NOW - dt.timedelta(days=400 - 17 * number)).date()
        begins = dt.datetime.combine(day, dt.time(8 + number % 9, 15 * (number % 4)), tzinfo=zone)
        body = {
            "summary": f"Weekly round {number + 1}",
            "start": {"dateTime": begins.isoformat(), "timeZone": CALENDAR_TIME_ZONE},
            "end": {"dateTime": (begins + GOOGLE_SERIES_LENGTH).isoformat(), "timeZone": CALENDAR_TIME_ZONE},
            "recurrence": ["RRULE:FREQ=WEEKLY"],
        }
        expected[str(fake.user_create_event(calendar, body)["id"])] = google_series_instances(begins)
    row = GoogleCalendar.objects.create(clinic=feed.clinic, connection_id=sync.connection, calendar_id=calendar)
    return GoogleSeriesState(sync=sync, row=row.pk, calendar=calendar, expected=expected)


def google_series_check(state: GoogleSeriesState) -> None:
    """The full pull just made: each series' instances in the window here, and none outside it, in one page."""
    sync = state.sync
    rows = OtherEvent.objects.filter(practitioner=sync.feed.practitioner, google_calendar_id=state.calendar)
    stored = dict(
        rows.values("google_recurring_id").annotate(n=models.Count("id")).values_list("google_recurring_id", "n")
    )
    problems = []
    if stored != state.expected:
        problems.append(
            f"{sum(stored.values())} rows stored, expected the {sum(state.expected.values())} in the window"
        )
    outside = rows.filter(
        models.Q(ends_at__lte=ICS_NOW - WINDOW_BACK) | models.Q(starts_at__gte=ICS_NOW + WINDOW_AHEAD)
    )
    if outside.exists():
        problems.append(f"{outside.count()} rows outside the window")
    total = sum(state.expected.values())
    pages = -(-total // google_pull.PAGE_SIZE)
    if state.report != PullReport(listed=total, created=total, full=True, requests=pages):
        problems.append(f"pull: {state.report}")
    google_fail("series", problems + sync.fake.internal_errors)
    sync.observed |= {
        "series_rows": sum(stored.values()),
        "series_requests": state.report.requests if state.report else 0,
    }


def google_series_reset(state: GoogleSeriesState) -> None:
    """Check the pull just made (if any); then none of the calendar's rows here, and it listed in full next."""
    if state.report is not None:
        google_series_check(state)
        state.report = None
    sync = state.sync
    OtherEvent.objects.filter(practitioner=sync.feed.practitioner, google_calendar_id=state.calendar).delete()
    GoogleCalendar.objects.filter(pk=state.row).update(sync_token="", window_start=None)
    google_connection_set(sync, state.calendar)
    analyze(OtherEvent)


def google_series_run(state: GoogleSeriesState) -> None:
    state.report = google_pull.pull(state.sync.connection, now=ICS_NOW)


def google_quota_figures(median_s: float) -> Result:
    """The paced push against Google, computed from the run: every window it waited for would last a real minute
    instead of GOOGLE_QUOTA_WINDOW, and the rest of its time (our work, the fake's answers) stays as it was. (Scaling
    the whole median by GOOGLE_QUOTA_SCALE would count our own work fifty times over.)"""
    allowance = settings.GOOGLE_RATE_LIMIT_USER - settings.GOOGLE_PULL_HEADROOM  # a push's calls per window
    windows = -(-ICS_EVENTS // allowance) - 1  # windows waited for after the first burst
    real_s = median_s + windows * (60.0 - GOOGLE_QUOTA_WINDOW)
    return {
        "quota_window_s": GOOGLE_QUOTA_WINDOW,
        "quota_scale": GOOGLE_QUOTA_SCALE,
        "quota_user_limit": settings.GOOGLE_RATE_LIMIT_USER,
        "quota_pull_headroom": settings.GOOGLE_PULL_HEADROOM,
        "push_windows_waited": windows,
        "push_converge_minutes": round(real_s / 60.0, 2),
        "push_calls_per_minute": round(ICS_EVENTS / (real_s / 60.0), 1),
        "push_converge_minutes_at_full_limit": round(ICS_EVENTS / settings.GOOGLE_RATE_LIMIT_USER, 2),  # 8.33
    }


def google_sync_figures(result: Result) -> Result:
    """The full pull and the incremental sync, timed the same way (each with its own reset and checks); the
    request counts seen, events per second, and the one first sync both ways."""
    sync = google_setup()
    pull = sub_case("pull", sync, google_pull_run, result, reset=google_pull_reset)
    incremental_state = google_incremental_setup()
    incremental = sub_case(
        "incremental",
        incremental_state,
        google_incremental_run,
        result,
        reset=google_incremental_reset,
        runs=GOOGLE_INCREMENTAL_RUNS * int(result["runs"]),
    )
    series_state = google_series_setup()
    series = sub_case("series", series_state, google_series_run, result, reset=google_series_reset)
    seen = sync.observed
    return {
        "events": ICS_EVENTS,
        "push_requests": seen["push_requests"],
        "push_batched_calls": seen["push_batched_calls"],
        "push_events_per_s": round(ICS_EVENTS / float(result["median_s"]), 1),
        **google_quota_figures(float(result["median_s"])),
        "push_refused": len(sync.fake.rate_refusals),
        **pull,
        "pull_events": GOOGLE_EVENTS,
        "pull_requests": seen["pull_requests"],
        "pull_events_per_s": round(GOOGLE_EVENTS / float(pull["pull_median_s"]), 1),
        **incremental,
        "incremental_changes": GOOGLE_EDITS + GOOGLE_MOVES,
        "incremental_requests": seen["incremental_pull_requests"] + seen["incremental_push_requests"],
        "incremental_pull_requests": seen["incremental_pull_requests"],
        "incremental_push_requests": seen["incremental_push_requests"],
        "incremental_changes_per_s": round(
            (GOOGLE_EDITS + GOOGLE_MOVES) / float(incremental["incremental_median_s"]), 1
        ),
        **incremental_state.first_sync,
        **series,
        "series_count": GOOGLE_SERIES,
        "series_rows": seen["series_rows"],
        "series_rows_expected": sum(series_state.expected.values()),
        "series_requests": seen["series_requests"],
        "checked_pushes": seen["checked_pushes"],
        "checked_pulls": seen["checked_pulls"],
        "checked_incrementals": seen["checked_incrementals"],
    }


register(
    Case(
        name="google_sync",
        setup=google_setup,
        run=google_push_run,
        reset=google_push_reset,
        runs=GOOGLE_RUNS,
        warmup=1,
        extras=google_sync_figures,
    )
)
