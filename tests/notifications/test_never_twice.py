"""Never twice, with real Celery workers on Redis sending to a real SMTP server (aiosmtpd in this process).

Two ticks, a task run twice and two workers send each message once. A worker killed (SIGKILL) inside the SMTP
conversation, before or after the server accepted the message, leaves it "sending"; no later worker or tick
sends it again, and after SENDING_STALE_SECONDS the tick shows it as "delivery unknown", for reception to send
again by hand. A reminder recorded before its appointment moved sends the new time, never the old one.

The workers run the project's own tasks; their default queue is the test's own (so the tick's nudges reach them
and nothing else does), and they read every knob from their environment, as in production.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import Celery
from django.utils import timezone
from icalendar import Calendar

from clinic.models import Role
from notifications.models import Channel, Kind, Message, NotificationSettings, Status
from notifications.recording import reminders_find
from notifications.services import message_resend
from scheduling.models import Appointment, Slot
from scheduling.services.booking import appointment_reschedule
from tests.celery_worker import BASE_DIR, REDIS_URL, eventually, redis_or_skip, worker_database_url
from tests.conftest import ALL_PERMISSIONS, process_stopped, subprocess_env
from tests.factories import MembershipFactory, PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session
from tests.factories import book as put_in
from tests.smtp_server import SmtpServer, smtp_environment, smtp_fixture  # noqa: F401 (smtp)

# The workers of these tests share nothing with other tests' (a queue of their own), but each test starts up to two
# workers: one xdist worker runs them all, one after another.
pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("notify-workers")]

STALE_SECONDS = 1.0
WORKER = """
import os
from clinic.celery import app
queue = os.environ["NOTIFY_TEST_QUEUE"]
app.conf.task_default_queue = queue  # the worker's own nudges (the tick's batches) come back to it
app.worker_main(["worker", "--pool=solo", "--concurrency=1", "-Q", queue, "--without-heartbeat",
                 "--without-gossip", "--without-mingle", "--loglevel=WARNING"])
"""


class Workers:
    """Celery workers on one queue of the test's own, and a producer that sends them the project's tasks."""

    def __init__(self, server: SmtpServer) -> None:
        redis_or_skip()
        self.queue = f"notify-{uuid.uuid4().hex[:12]}"
        self.env = subprocess_env(
            drop=("DJANGO_ENV",),
            REDIS_URL=REDIS_URL,
            DATABASE_URL=worker_database_url(),
            NOTIFY_TEST_QUEUE=self.queue,
            **smtp_environment(server),
        )
        # Not the current app: the project's shared tasks in this process stay bound to its own.
        self.producer = Celery("notify-test-producer", broker=REDIS_URL, backend=REDIS_URL, set_as_current=False)
        self.running: list[tuple[subprocess.Popen[bytes], str]] = []
        self.outputs: list[str] = []

    def start(self, **settings: str) -> subprocess.Popen[bytes]:
        """A worker (settings: more of its environment), once it is consuming."""
        log = tempfile.NamedTemporaryFile(prefix="notify-worker-", suffix=".log", delete=False)  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            cwd=BASE_DIR,
            env={**self.env, **settings},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.running.append((process, log.name))
        self.barrier()  # it is up and consuming
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no cleanup, no goodbye to the SMTP server, no ack to the broker."""
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
        self._forget(process, killed=True)

    def _forget(self, process: subprocess.Popen[bytes], *, killed: bool) -> None:
        for entry in list(self.running):
            if entry[0] is process:
                self.running.remove(entry)
                with open(entry[1]) as log:
                    text = log.read()
                os.unlink(entry[1])
                if not killed:
                    self.outputs.append(text)

    def stop_all(self) -> None:
        for process, _ in list(self.running):
            assert process.poll() is None, "a worker died"
            process_stopped(process)
            self._forget(process, killed=False)

    def send(self, task: str, *args: object) -> None:
        self.producer.send_task(task, args=list(args), queue=self.queue)

    def tick(self) -> None:
        self.send("notifications.tasks.tick")

    def send_messages(self, ids: list[int]) -> None:
        self.send("notifications.tasks.send_messages", ids)

    def barrier(self) -> None:
        """Wait until a worker has taken everything queued before now (a built-in task whose result we read)."""
        result = self.producer.send_task("celery.accumulate", args=[1], queue=self.queue)
        result.get(timeout=60)
        result.forget()

    def settle(self) -> None:
        """With one worker: what was queued before now has run, and so have the nudges it queued."""
        self.barrier()
        self.barrier()

    def clean(self) -> None:
        """Leave nothing of ours in Redis: the queue, and the unacknowledged task of a killed worker."""
        client = redis.Redis.from_url(REDIS_URL)
        client.delete(self.queue, f"_kombu.binding.{self.queue}", f"_kombu.binding_permanent.{self.queue}")
        for tag, raw in client.hscan_iter("unacked"):
            try:
                routing_key = json.loads(raw)[2]
            except (ValueError, IndexError, TypeError):
                continue
            if routing_key == self.queue:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        self.producer.close()


@contextmanager
def workers(server: SmtpServer) -> Iterator[Workers]:
    pool = Workers(server)
    try:
        yield pool
        pool.stop_all()
    finally:
        for process, _ in list(pool.running):
            process.kill()
            process.wait()
            pool._forget(process, killed=True)
        pool.clean()
    assert "Traceback" not in "".join(pool.outputs), "".join(pool.outputs)


def due_reminders(clinic, count: int, *, minutes_to_spare: int = 3) -> list[Appointment]:
    """`count` patients booked a week ago into a group slot starting 48 hours from now less a few minutes: their
    email reminders are due now. Quiet hours are off, so the time of day of the run does not matter."""
    NotificationSettings.objects.for_clinic(clinic).update(quiet_from=dt.time(0), quiet_until=dt.time(0))
    zone = ZoneInfo(clinic.time_zone)
    local = (timezone.now() + dt.timedelta(hours=48, minutes=-minutes_to_spare)).astimezone(zone)
    group = SlotTypeFactory(clinic=clinic, capacity=count, default_length_minutes=30)
    session = allocate_session(
        clinic,
        practitioner=PractitionerFactory(clinic=clinic),
        day=local.date(),
        start=dt.time(local.hour, local.minute),
        slot_types=[group],
    )
    slot = session.slots.get()
    booked = [
        put_in(slot, PatientFactory(clinic=clinic, email=f"patient{i}-{uuid.uuid4().hex[:6]}@example.org"))
        for i in range(count)
    ]
    Appointment.objects.filter(pk__in=[a.pk for a in booked]).update(created_at=timezone.now() - dt.timedelta(days=7))
    return booked


def recorded_reminders(appointments: list[Appointment]) -> list[Message]:
    assert reminders_find(timezone.now()) >= len(appointments)
    found = list(
        Message.objects.filter(
            appointment__in=appointments, kind=Kind.REMINDER, channel=Channel.EMAIL, status=Status.WAITING
        ).order_by("pk")
    )
    assert len(found) == len(appointments)
    return found


def statuses(messages: list[Message]) -> list[str]:
    return [m.status for m in Message.objects.filter(pk__in=[m.pk for m in messages]).order_by("pk")]


def test_two_ticks_a_task_run_twice_and_two_workers_send_each_message_once(smtp, clinic_a):
    appointments = due_reminders(clinic_a, 6)
    messages = recorded_reminders(appointments)
    ids = [m.pk for m in messages]
    with workers(smtp) as pool:
        pool.start()
        pool.start()
        # Everything at once, on two workers: two ticks (each finds the reminders again and hands out the due
        # ones) and the same send task twice.
        pool.tick()
        pool.send_messages(ids)
        pool.send_messages(ids)
        pool.tick()
        eventually(lambda: statuses(messages) == [Status.SENT] * len(ids), "send every reminder")
        for _ in range(4):
            pool.barrier()
        pool.tick()
        pool.send_messages(ids)
        for _ in range(4):
            pool.barrier()
        time.sleep(0.5)
    for appointment in appointments:
        assert len(smtp.to(appointment.patient.email)) == 1, appointment.patient.email
    assert smtp.data_count == len(ids) and len(smtp.received) == len(ids)
    assert all(m.attempts == 1 for m in Message.objects.filter(pk__in=ids))
    assert Message.objects.filter(kind=Kind.REMINDER).count() == len(ids)  # the ticks recorded nothing twice


def kill_inside_the_smtp_call(smtp, pool: Workers, message: Message, *, accepted_first: bool) -> None:
    pause = smtp.pause_data(accepted_first=accepted_first)
    worker = pool.start()
    pool.send_messages([message.pk])
    assert pause.entered.wait(timeout=60), "the worker never reached DATA"
    pool.kill(worker)
    pause.release.set()
    smtp.pause = None
    time.sleep(0.3)  # the server sees the connection go
    message.refresh_from_db()
    assert message.status == Status.SENDING and message.attempts == 1


def a_worker_after_the_crash_sends_nothing_and_the_tick_calls_it_unknown(smtp, pool, message, *, arrived):
    # A worker whose claims go stale only after an hour: the message stays "sending", and is not sent again by
    # a redelivered task or by the tick.
    pool.start(SENDING_STALE_SECONDS="3600")
    pool.send_messages([message.pk])  # what a redelivery of the killed task would do
    pool.tick()
    pool.settle()
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.SENDING, 1)
    assert len(smtp.to(message.patient.email)) == arrived
    pool.stop_all()

    # Past SENDING_STALE_SECONDS, the tick shows it as "delivery unknown", and still sends nothing.
    pool.start(SENDING_STALE_SECONDS=str(STALE_SECONDS))
    stale_at = message.claimed_at + dt.timedelta(seconds=STALE_SECONDS)
    time.sleep(max(0.0, (stale_at - timezone.now()).total_seconds()) + 0.1)
    pool.tick()
    pool.settle()
    message.refresh_from_db()
    assert message.status == Status.UNKNOWN
    assert message.get_status_display() == "Delivery unknown"
    assert message.attempts == 1
    pool.tick()
    pool.send_messages([message.pk])
    pool.settle()
    message.refresh_from_db()
    assert message.status == Status.UNKNOWN
    assert len(smtp.to(message.patient.email)) == arrived


def test_a_worker_killed_before_the_server_accepted_never_sends_it_and_it_shows_unknown(smtp, clinic_a):
    [message] = recorded_reminders(due_reminders(clinic_a, 1))
    with workers(smtp) as pool:
        kill_inside_the_smtp_call(smtp, pool, message, accepted_first=False)
        assert smtp.received == [] and smtp.data_count == 1
        a_worker_after_the_crash_sends_nothing_and_the_tick_calls_it_unknown(smtp, pool, message, arrived=0)
    assert smtp.data_count == 1  # nobody tried again


def test_a_worker_killed_after_the_server_accepted_leaves_one_email_and_unknown_then_reception_resends(smtp, clinic_a):
    [message] = recorded_reminders(due_reminders(clinic_a, 1))
    address = message.patient.email
    with workers(smtp) as pool:
        kill_inside_the_smtp_call(smtp, pool, message, accepted_first=True)
        assert len(smtp.to(address)) == 1
        a_worker_after_the_crash_sends_nothing_and_the_tick_calls_it_unknown(smtp, pool, message, arrived=1)

        # Reception decides: send it again. Exactly one more arrives, and no tick adds another.
        reception = MembershipFactory(clinic=clinic_a, role=Role.RECEPTION, **ALL_PERMISSIONS)
        message_resend(clinic=clinic_a, actor=reception.user, message=message)
        message.refresh_from_db()
        assert len(smtp.to(address)) == 2, (message.status, message.detail)
        message.refresh_from_db()
        assert (message.status, message.attempts) == (Status.SENT, 2)
        pool.tick()
        pool.send_messages([message.pk])
        pool.settle()
    assert len(smtp.to(address)) == 2 and smtp.data_count == 2


def dtstart(received) -> dt.datetime:
    [part] = [p for p in received.message.walk() if p.get_content_type() == "text/calendar"]
    [event] = Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")
    return event.decoded("DTSTART")


def test_a_move_after_the_reminder_was_recorded_sends_the_new_time_never_the_old(smtp, clinic_a, admin_a):
    [old] = due_reminders(clinic_a, 1)
    [stale] = recorded_reminders([old])  # the old time's reminder is waiting, due now
    # The new time: 48 hours and a few seconds from now, so its own reminder falls due a moment after the move.
    new_start = timezone.now() + dt.timedelta(hours=48, seconds=6)
    local = new_start.astimezone(ZoneInfo(clinic_a.time_zone))
    session = allocate_session(
        clinic_a,
        practitioner=PractitionerFactory(clinic=clinic_a),
        day=local.date(),
        start=dt.time(local.hour, local.minute, local.second),
        slot_types=[SlotTypeFactory(clinic=clinic_a)],
    )
    slot: Slot = session.slots.get()
    moved = appointment_reschedule(clinic=clinic_a, actor=admin_a.user, membership=admin_a, appointment=old, slot=slot)
    assert moved.starts_at == slot.starts_at
    time.sleep(max(0.0, (moved.starts_at - dt.timedelta(hours=48) - timezone.now()).total_seconds()) + 0.2)
    with workers(smtp) as pool:
        pool.start()
        pool.tick()
        pool.settle()
        pool.tick()
        pool.settle()
    reminders = [r for r in smtp.received if r.subject.startswith("Reminder:")]
    assert len(reminders) == 1
    assert dtstart(reminders[0]) == moved.starts_at != old.starts_at
    old_time = f"{old.starts_at.astimezone(ZoneInfo(clinic_a.time_zone)):%H:%M}"
    assert old_time not in reminders[0].message.get_body(preferencelist=("plain",)).get_content()
    stale.refresh_from_db()
    assert stale.status == Status.SKIPPED
    fresh = Message.objects.get(appointment=moved, kind=Kind.REMINDER, channel=Channel.EMAIL)
    assert fresh.status == Status.SENT
    others = [r.subject for r in smtp.received if not r.subject.startswith("Reminder:")]
    assert len(others) == 1 and "has moved" in others[0]  # the move's own message, sent at once
