"""Two-way sync with Google Calendar through a real Celery worker on Redis, against the fake Google.

The connect flow runs in this process (in-process tasks, as in test_google_sync.py). Then the web side
runs in a fresh process, as the web would: it books and announces, and the receiver's push goes through
Redis to the worker, which reads the tokens this process sealed and sends the event to the fake Google.
Google's own events come back through the worker's pull; a Google that refuses twice is retried by the
worker with backoff, and the event arrives once.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from calendar_sync.models import GoogleEvent, GooglePending
from scheduling.models import Appointment, OtherEvent
from tests.calendar_sync.google_helpers import connect, google_events, worker_settings
from tests.celery_worker import celery_worker, eventually, produce, redis_or_skip, worker_database_url
from tests.factories import PatientFactory, SlotTypeFactory, allocate_session


def web(env: dict[str, str], queue: str, code: str) -> str:
    """Run code as the web process would (tasks go through Redis), with its tasks on the test's queue."""
    routed = f"from clinic.celery import app\napp.conf.task_routes = {{'*': {{'queue': {queue!r}}}}}\n"
    return produce(env, routed + code)


def book_on_the_web(env: dict[str, str], queue: str, slot, patient) -> Appointment:
    """Book as the booking service does: the appointment, then the announcement after commit."""
    pk = web(
        env,
        queue,
        "from patients.models import Patient\n"
        "from scheduling.models import Slot\n"
        "from scheduling.signals import announce_calendar_change\n"
        "from tests.factories import book\n"
        f"slot = Slot.objects.select_related('session').get(pk={slot.pk})\n"
        f"appointment = book(slot, Patient.objects.get(pk={patient.pk}))\n"
        "announce_calendar_change([slot.session.practitioner_id], appointments=[appointment.pk])\n"
        "print(appointment.pk)\n",
    )
    return Appointment.objects.get(pk=int(pk))


def at(days: int, hour: int) -> dt.datetime:
    day = timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def when(moment: dt.datetime) -> dict[str, str]:
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}


def open_slot(clinic, practitioner, days: int):
    day = timezone.localdate() + dt.timedelta(days=days)
    session = allocate_session(clinic, practitioner=practitioner, day=day, slot_types=[SlotTypeFactory(clinic=clinic)])
    return session.slots.order_by("starts_at").first()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_worker_pushes_pulls_and_retries_a_refusing_google_without_duplicates(
    google, clinic_a, clinician, clinician_client
):
    redis_or_skip()  # before any set-up, as celery_worker() would (a failure in CI)
    _, practitioner = clinician
    first_slot, second_slot = open_slot(clinic_a, practitioner, 3), open_slot(clinic_a, practitioner, 4)
    first_patient = PatientFactory(clinic=clinic_a, first_name="Nadia", last_name="Quist")
    second_patient = PatientFactory(clinic=clinic_a, first_name="Omar", last_name="Reyes")
    link = connect(clinician_client, google, practitioner)  # in this process, tasks in-process
    calendar = link.default_calendar_id
    assert google_events(google, link) == [] and not GooglePending.objects.exists()

    with celery_worker(worker_database_url(), **worker_settings(google)) as (queue, env, _):
        # Push: booked on the web, pending recorded there, pushed by the worker.
        first = book_on_the_web(env, queue, first_slot, first_patient)
        first_id = "csa" + first.public_id.hex
        pushed = eventually(lambda: google.event(calendar, first_id), "push the booking to Google")
        assert pushed["summary"] == f"🔒 {first_patient.internal_id} · {first.slot_type.name}"
        assert "Nadia" not in str(pushed) and "Quist" not in str(pushed)
        eventually(
            lambda: (
                GoogleEvent.objects.filter(key=f"a{first.pk}", event_id=first_id).exists()
                and not GooglePending.objects.exists()
            ),
            "record what it pushed",
        )

        # Pull: an event made in Google arrives here through the worker.
        dentist = google.user_create_event(
            calendar, {"summary": "Dentist", "start": when(at(2, 10)), "end": when(at(2, 11))}
        )
        report = web(
            env,
            queue,
            "from calendar_sync.tasks import google_pull\n"
            f"print(google_pull.apply_async(args=[{link.pk}], queue={queue!r}).get(timeout=60))\n",
        )
        assert "created=1" in report, report
        pulled = eventually(lambda: OtherEvent.objects.filter(google_event_id=dentist["id"]).first(), "pull")
        assert (pulled.title, pulled.starts_at, pulled.busy) == ("Dentist", at(2, 10), True)
        assert pulled.practitioner_id == practitioner.pk and pulled.google_calendar_id == calendar
        assert not GooglePending.objects.exists()  # our own event came back unchanged: nothing to send again

        # Faults: Google refuses the next two requests; the worker retries with backoff, the event arrives once.
        google.clear_requests()
        google.fail_next(2, status=503)
        started = time.monotonic()
        second = book_on_the_web(env, queue, second_slot, second_patient)
        second_id = "csa" + second.public_id.hex
        eventually(lambda: google.event(calendar, second_id), "push the booking after two refusals")
        waited = time.monotonic() - started
        eventually(
            lambda: GoogleEvent.objects.filter(key=f"a{second.pk}").exists() and not GooglePending.objects.exists(),
            "record what it pushed after the refusals",
        )

    batches = [r.status for r in google.requests if not r.batched and r.path.startswith("/batch")]
    assert batches == [503, 503, 200]  # refused twice, then sent by the worker's second retry
    # The retries waited: backoff(0) is 2 s, backoff(1) 2 to 4 s (in-process tasks would retry at once).
    assert waited >= 4.0, waited
    assert google.count_requests(batched=True, method="POST", path_contains="/events") == 1  # one insert
    ids = [e["id"] for e in google_events(google, link)]
    assert sorted(ids) == sorted([first_id, second_id, dentist["id"]])  # each once, nothing duplicated
    assert GoogleEvent.objects.filter(connection=link).count() == 2
    assert OtherEvent.objects.filter(practitioner=practitioner).count() == 1  # only the Dentist
    assert not GooglePending.objects.exists()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_worker_paces_a_large_push_requeuing_it_without_counting_retries(
    google, settings, clinic_a, clinician, clinician_client
):
    """500 events at 50 a window (0.5 s for Google's minute) and a worker that sleeps at most 0.05 s for quota:
    the push stops nine times and is queued again after each wait, more often than MAX_RETRIES allows retries,
    and every event lands with Google refusing nothing."""
    from calendar_sync.keys import EVERYTHING
    from calendar_sync.tasks import MAX_RETRIES
    from tests.calendar_sync.google_helpers import quota_scaled
    from tests.factories import OtherEventFactory

    redis_or_skip()
    _, practitioner = clinician
    link = connect(clinician_client, google, practitioner)
    quota_scaled(settings, google, user=60, project=1_000, window=0.5, headroom=10)
    for k in range(500):
        OtherEventFactory(
            clinic=clinic_a, practitioner=practitioner, title=f"Block {k}", starts_at=at(1 + k // 8, 8 + k % 8)
        )
    GooglePending.objects.create(clinic=clinic_a, connection=link, key=EVERYTHING)
    google.clear_requests()
    scaled = {
        "GOOGLE_RATE_LIMIT_USER": "60",
        "GOOGLE_RATE_LIMIT_PROJECT": "1000",
        "GOOGLE_RATE_WINDOW_SECONDS": "0.5",
        "GOOGLE_PULL_HEADROOM": "10",
        "GOOGLE_PACE_WAIT_SECONDS": "0.05",
    }
    with celery_worker(worker_database_url(), **worker_settings(google), **scaled) as (queue, env, _):
        web(
            env,
            queue,
            "from calendar_sync.tasks import google_push\n"
            f"google_push.apply_async(args=[{link.pk}], queue={queue!r})\n"
            "print('queued')\n",
        )
        eventually(
            lambda: GoogleEvent.objects.filter(connection=link).count() == 500 and not GooglePending.objects.exists(),
            "push the 500 events in paced slices",
            timeout=60,
        )
    batches = [r for r in google.requests if not r.batched and r.path.startswith("/batch")]
    assert len(batches) == 10 > MAX_RETRIES + 1  # one batch a window: more stops than retries would allow
    assert google.rate_refusals == []
    assert len([e for e in google_events(google, link) if e["summary"].startswith("Block")]) == 500
