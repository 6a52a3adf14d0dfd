"""`make run` has no beat process: the development server runs beat's schedule in a thread, so a reminder due
in the demo goes out (tested with a real runserver process on the test's database, tasks in-process)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from django.utils import timezone

from notifications.models import Kind, Message, NotificationSettings, Status
from scheduling.models import Appointment
from tests.celery_worker import BASE_DIR, eventually, free_port, worker_database_url
from tests.conftest import subprocess_env
from tests.factories import PatientFactory, PractitionerFactory, allocate_session, book

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_development_server_sends_a_due_reminder_once(clinic_a):
    # Whatever the hour the suite runs at: a reminder due in quiet hours would wait for the morning.
    NotificationSettings.objects.filter(clinic=clinic_a).update(quiet_from=dt.time(0), quiet_until=dt.time(0))
    practitioner = PractitionerFactory(clinic=clinic_a)
    starts = timezone.now() + dt.timedelta(hours=47)
    session = allocate_session(
        clinic_a,
        practitioner=practitioner,
        day=starts.astimezone(dt.UTC).date(),
        start=starts.astimezone(dt.UTC).time().replace(second=0, microsecond=0),
    )
    patient = PatientFactory(clinic=clinic_a, email="nadia@example.org")
    appointment = book(session.slots.order_by("starts_at").first(), patient)
    # Booked last week: its 48-hour email reminder was due an hour ago (within the look-back).
    Appointment.objects.filter(pk=appointment.pk).update(created_at=timezone.now() - dt.timedelta(days=7))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=BASE_DIR,
        env=subprocess_env(
            drop=("REDIS_URL", "DJANGO_ENV"),
            DATABASE_URL=worker_database_url(),
            SWEEP_SECONDS="1",
            EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        sent = eventually(
            lambda: Message.objects.filter(appointment=appointment, kind=Kind.REMINDER, status=Status.SENT).first(),
            "send the due reminder from the development server",
            timeout=60,
        )
        # Several more ticks: still one reminder.
        eventually(lambda: server.poll() is None and _ticks_after(sent.sent_at, 3), "tick again", timeout=30)
        assert Message.objects.filter(appointment=appointment, kind=Kind.REMINDER).count() == 1
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert output.count("Subject: Reminder: your appointment") == 1, output[-3000:]
    assert "Traceback" not in output


def _ticks_after(moment: dt.datetime | None, seconds: float) -> bool:
    return moment is not None and timezone.now() - moment > dt.timedelta(seconds=seconds)
