"""Reminders: due a number of elapsed hours before the appointment's instant (clock changes in between move nothing),
held by quiet hours on the location's clock, and not recorded at all when there is nothing to remind of."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from icalendar import Calendar

from clinic.models import Role
from notifications.models import Channel, Kind, Message, NotificationSettings, Status
from notifications.recording import reminders_find
from notifications.sending import send_messages, tick
from notifications.services import preference_set
from scheduling.models import Appointment, CancelCategory, Slot
from scheduling.services.booking import BookingRequest, appointment_book, appointment_cancel
from tests.conftest import ALL_PERMISSIONS
from tests.factories import (
    ClinicFactory,
    MembershipFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
)
from tests.smtp_server import SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)
UTC = dt.UTC


def book_at(zone, day, hour, minute=0, *, booked_on, mobile=""):
    """A patient booked, at `booked_on`, into a 10-minute slot at hour:minute on the location's clock."""
    clinic = ClinicFactory(time_zone=zone, name=f"Clinic in {zone}")
    admin = MembershipFactory(clinic=clinic, role=Role.ADMIN, **ALL_PERMISSIONS)
    practitioner = PractitionerFactory(clinic=clinic)
    session = allocate_session(clinic, practitioner=practitioner, day=day, start=dt.time(hour, minute))
    slot = session.slots.order_by("starts_at").first()
    patient = PatientFactory(clinic=clinic, email=f"patient-{clinic.pk}@example.org", mobile_phone=mobile)
    with time_machine.travel(booked_on, tick=False):
        return appointment_book(
            clinic=clinic, actor=admin.user, membership=admin, request=BookingRequest(slot=slot, patient=patient)
        )


def run_tick(now: dt.datetime) -> dict[str, int]:
    """Beat's tick at `now`, its batches sent at once (as a worker would, at that moment)."""
    return tick(now, lambda ids: send_messages(ids, now))


def reminders(appointment: Appointment, channel: str = Channel.EMAIL) -> list[Message]:
    return list(Message.objects.filter(appointment=appointment, kind=Kind.REMINDER, channel=channel))


def reminder_emails(smtp) -> list:
    return [r for r in smtp.received if r.subject.startswith("Reminder:")]


def dtstart(received) -> dt.datetime:
    [part] = [p for p in received.message.walk() if p.get_content_type() == "text/calendar"]
    [event] = Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")
    return event.decoded("DTSTART")


@pytest.mark.parametrize(
    ("zone", "monday", "starts_utc", "due_utc"),
    [
        # Clocks go forward on Sunday 28 March 2027: 10:00 BST is 09:00 UTC; 48 hours before is 09:00 GMT on
        # Saturday (the wall clock's "same time two days before", 10:00 GMT, would be an hour late).
        ("Europe/London", dt.date(2027, 3, 29), dt.datetime(2027, 3, 29, 9, tzinfo=UTC), dt.datetime(2027, 3, 27, 9)),
        # Clocks go forward on Sunday 14 March 2027 in New York: 10:00 EDT is 14:00 UTC; due at 09:00 EST Saturday.
        (
            "America/New_York",
            dt.date(2027, 3, 15),
            dt.datetime(2027, 3, 15, 14, tzinfo=UTC),
            dt.datetime(2027, 3, 13, 14),
        ),
        # Clocks go back on Sunday 31 October 2027: 10:00 GMT is 10:00 UTC; due at 11:00 BST on Saturday.
        (
            "Europe/London",
            dt.date(2027, 11, 1),
            dt.datetime(2027, 11, 1, 10, tzinfo=UTC),
            dt.datetime(2027, 10, 30, 10),
        ),
    ],
)
def test_a_reminder_after_a_clock_change_goes_48_elapsed_hours_before(
    smtp: SmtpServer, zone, monday, starts_utc, due_utc
):
    due = due_utc.replace(tzinfo=UTC)
    appointment = book_at(zone, monday, 10, booked_on=due - dt.timedelta(days=7))
    assert appointment.starts_at == starts_utc
    assert appointment.starts_at.astimezone(ZoneInfo(zone)).time() == dt.time(10)
    smtp.clear()  # the confirmation

    early = due - dt.timedelta(minutes=1)
    run_tick(early)
    assert reminders(appointment) == [] and reminder_emails(smtp) == []

    run_tick(due)
    [reminder] = reminders(appointment)
    assert reminder.due_at == appointment.starts_at - dt.timedelta(hours=48) == due
    assert (reminder.status, reminder.sent_at is not None) == (Status.SENT, True)
    [received] = reminder_emails(smtp)
    assert dtstart(received) == appointment.starts_at
    assert f"{appointment.starts_at.astimezone(ZoneInfo(zone)):%a %-d %b %Y}, 10:00" in received.message.as_string()

    run_tick(due + dt.timedelta(minutes=1))  # the next minute's tick finds it again and sends nothing
    assert len(reminder_emails(smtp)) == 1 and len(reminders(appointment)) == 1


def test_a_reminder_due_in_quiet_hours_waits_for_their_end_on_the_location_clock(smtp):
    # A 7-hour email reminder of a 10:00 appointment in New York is due at 03:00 EDT, inside quiet hours
    # (21:00 to 08:00): found at 03:00, held until 08:00 EDT, sent then.
    ny = ZoneInfo("America/New_York")
    appointment = book_at("America/New_York", dt.date(2027, 6, 16), 10, booked_on=dt.datetime(2027, 6, 1, tzinfo=UTC))
    NotificationSettings.objects.for_clinic(appointment.clinic_id).update(email_reminder_hours=7)
    smtp.clear()
    three = dt.datetime(2027, 6, 16, 3, tzinfo=ny)
    eight = dt.datetime(2027, 6, 16, 8, tzinfo=ny)

    assert appointment.starts_at - dt.timedelta(hours=7) == three
    run_tick(three - dt.timedelta(minutes=1))
    assert reminders(appointment) == []

    run_tick(three)  # found, and held: its due moment becomes the end of quiet hours
    [reminder] = reminders(appointment)
    assert (reminder.status, reminder.due_at, reminder.detail) == (Status.WAITING, eight, "Held back by quiet hours.")
    assert reminder.claimed_at is None
    assert reminder_emails(smtp) == []

    run_tick(eight - dt.timedelta(minutes=1))
    reminder.refresh_from_db()
    assert reminder.status == Status.WAITING and reminder_emails(smtp) == []

    run_tick(eight)
    reminder.refresh_from_db()
    assert reminder.status == Status.SENT
    assert len(reminder_emails(smtp)) == 1


def test_an_sms_reminder_whose_quiet_hours_outlast_the_appointment_is_not_sent(smtp):
    # A 2-hour SMS reminder of a 07:30 appointment is due at 05:30; quiet hours end at 08:00, after the start.
    london = ZoneInfo("Europe/London")
    appointment = book_at(
        "Europe/London",
        dt.date(2027, 6, 16),
        7,
        30,
        booked_on=dt.datetime(2027, 6, 1, 12, tzinfo=UTC),
        mobile="07700 900123",
    )
    half_past_five = dt.datetime(2027, 6, 16, 5, 30, tzinfo=london)
    run_tick(half_past_five)
    [text] = reminders(appointment, Channel.SMS)
    assert text.due_at == half_past_five
    assert (text.status, text.detail) == (Status.SKIPPED, "Quiet hours last until after the appointment.")
    assert text.sent_at is None
    run_tick(dt.datetime(2027, 6, 16, 8, tzinfo=london))
    text.refresh_from_db()
    assert text.status == Status.SKIPPED


def test_no_reminder_for_a_booking_made_after_its_moment(smtp):
    starts = dt.datetime(2027, 6, 16, 9, tzinfo=UTC)
    appointment = book_at("Europe/London", dt.date(2027, 6, 16), 10, booked_on=starts - dt.timedelta(hours=24))
    assert appointment.starts_at == starts
    for hours in (24, 23, 12, 1):
        run_tick(starts - dt.timedelta(hours=hours) + dt.timedelta(minutes=1))
    assert reminders(appointment) == [] and reminder_emails(smtp) == []


def test_no_email_reminder_for_a_patient_who_opted_out_of_email(smtp):
    starts = dt.datetime(2027, 6, 16, 9, tzinfo=UTC)
    appointment = book_at(
        "Europe/London",
        dt.date(2027, 6, 16),
        10,
        booked_on=starts - dt.timedelta(days=7),
        mobile="07700 900123",
    )
    admin = MembershipFactory(clinic=appointment.clinic, role=Role.ADMIN, **ALL_PERMISSIONS)
    preference_set(
        clinic=appointment.clinic, actor=admin.user, patient=appointment.patient, email_ok=False, sms_ok=True
    )
    run_tick(starts - dt.timedelta(hours=48))
    run_tick(starts - dt.timedelta(hours=2))
    assert reminders(appointment, Channel.EMAIL) == []
    [text] = reminders(appointment, Channel.SMS)  # the other channel still reminds
    assert text.status == Status.SENT


def test_no_reminder_for_a_cancelled_appointment(smtp):
    starts = dt.datetime(2027, 6, 16, 9, tzinfo=UTC)
    appointment = book_at("Europe/London", dt.date(2027, 6, 16), 10, booked_on=starts - dt.timedelta(days=7))
    admin = MembershipFactory(clinic=appointment.clinic, role=Role.ADMIN, **ALL_PERMISSIONS)
    appointment_cancel(
        clinic=appointment.clinic,
        actor=admin.user,
        appointment=appointment,
        reason="Patient rang",
        category=CancelCategory.PATIENT,
    )
    run_tick(starts - dt.timedelta(hours=48))
    assert reminders(appointment) == [] and reminder_emails(smtp) == []


def clinics_with_reminders(count, per_clinic, starts, tag):
    """`count` clinics (each with its settings row, quiet hours off), each with `per_clinic` patients booked now
    into one group slot at `starts`; returns the patients' addresses."""
    addresses: list[str] = []
    for n in range(count):
        clinic = ClinicFactory(name=f"Clinic {tag}{n}")
        NotificationSettings.objects.for_clinic(clinic).update(quiet_from=dt.time(0), quiet_until=dt.time(0))
        local = starts.astimezone(ZoneInfo(clinic.time_zone))
        group = SlotTypeFactory(clinic=clinic, capacity=per_clinic, default_length_minutes=30)
        session = allocate_session(
            clinic,
            practitioner=PractitionerFactory(clinic=clinic),
            day=local.date(),
            start=local.time(),
            slot_types=[group],
        )
        slot = session.slots.get()
        patients = [PatientFactory(clinic=clinic, email=f"{tag}{n}-{i}@example.org") for i in range(per_clinic)]
        Appointment.objects.bulk_create(
            Appointment(
                clinic=clinic,
                slot=slot,
                practitioner=slot.session.practitioner,
                patient=patient,
                slot_type=group,
                status="booked",
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
            )
            for patient in patients
        )
        Slot.objects.for_clinic(clinic).filter(pk=slot.pk).update(booked_count=per_clinic)
        addresses += [p.email for p in patients]
    return addresses


@contextmanager
def no_transaction_open_at_data(smtp) -> Iterator[list[str]]:
    """At every DATA, from the SMTP server's thread: is a transaction of ours open while the client waits?
    PostgreSQL: no session of the test database idle in a transaction; SQLite: the write lock is free at once.
    Yields the problems seen (empty when none)."""
    problems: list[str] = []
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        import psycopg

        watcher = psycopg.connect(
            host=db["HOST"] or "localhost",
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"] or None,
            dbname=db["NAME"],
            autocommit=True,
        )

        def check() -> None:
            rows = watcher.execute(
                "SELECT pid, state, left(query, 120) FROM pg_stat_activity"
                " WHERE datname = %s AND state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()",
                [db["NAME"]],
            ).fetchall()
            if rows:
                problems.append(repr(rows))

        close = watcher.close
    else:
        name = db["NAME"]

        def check() -> None:
            probe = sqlite3.connect(name, timeout=0, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            except sqlite3.OperationalError as error:
                problems.append(str(error))
            finally:
                probe.close()

        def close() -> None:
            pass

    smtp.data_checks.append(check)
    try:
        yield problems
    finally:
        smtp.data_checks.remove(check)
        close()


def test_a_tick_of_a_thousand_reminders_across_a_hundred_clinics_holds_no_transaction_during_sends(
    smtp,
):
    # Two moments a day apart (each outside the other's look-back): ten reminders due at the first, a thousand
    # at the second. Set up now, so every booking was made before its reminder's moment.
    first = (timezone.now() + dt.timedelta(days=10)).replace(hour=12, minute=0, second=0, microsecond=0)
    second = first + dt.timedelta(days=1)
    few = clinics_with_reminders(10, 1, first + dt.timedelta(hours=48), "few")
    many = clinics_with_reminders(100, 10, second + dt.timedelta(hours=48), "many")
    assert len(many) == 1000

    rounds = []
    with no_transaction_open_at_data(smtp) as problems:
        for now, addresses in ((first, few), (second, many)):
            with CaptureQueriesContext(connection) as found_queries:
                found = reminders_find(now)
            assert found == len(addresses)
            batches: list[list[int]] = []
            report = tick(now, batches.append)
            assert report["reminders"] == 0 and report["due"] == len(addresses)  # found once: the key holds
            assert max(len(b) for b in batches) <= settings.MESSAGE_BATCH
            for batch in batches:
                send_messages(batch, now)
            rounds.append(len(found_queries))
    assert problems == []
    assert rounds[0] == rounds[1], rounds  # the same queries for ten reminders as for a thousand
    assert smtp.data_count == len(few) + len(many)
    arrived = Counter(address for r in smtp.received for address in r.rcpt_tos)
    assert arrived == Counter(few + many)  # each exactly once
    assert set(Message.objects.filter(kind=Kind.REMINDER).values_list("status", flat=True)) == {Status.SENT}
