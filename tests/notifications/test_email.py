"""Email to patients through a real SMTP server (aiosmtpd in this process): what arrives for a booking, a move, a
cancellation and a series (a plain-text part and an .ics that calendar apps update in place), the one-click
unsubscribe of RFC 8058, and what the server's refusals do (550: failed for good; 451: tried again when due)."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import vobject
from django.test import Client
from django.utils import timezone
from icalendar import Calendar

from notifications.models import (
    Channel,
    Consent,
    ConsentSource,
    ContactPreference,
    Kind,
    Message,
    NotificationSettings,
    Status,
)
from notifications.sending import send_messages, tick
from scheduling.models import CancelCategory, Slot
from scheduling.recurrence import RecurrenceRule
from scheduling.services.booking import BookingRequest, appointment_book, appointment_cancel, appointment_reschedule
from scheduling.services.series import PlannedOccurrence, SeriesRequest, series_book
from tests.factories import PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_rota, allocate_session
from tests.smtp_server import SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db(transaction=True)
LONDON = ZoneInfo("Europe/London")


def open_slots(clinic, *, days=5, start=dt.time(10), practitioner=None, slot_type=None) -> list[Slot]:
    practitioner = practitioner or PractitionerFactory(clinic=clinic, name="Dr Ines Okafor")
    kind = slot_type or SlotTypeFactory(clinic=clinic, name="Couples therapy")
    day = timezone.localdate() + dt.timedelta(days=days)
    session = allocate_session(clinic, practitioner=practitioner, day=day, start=start, slot_types=[kind] * 3)
    return list(session.slots.order_by("starts_at"))


def book(membership, slot, patient):
    return appointment_book(
        clinic=membership.clinic,
        actor=membership.user,
        membership=membership,
        request=BookingRequest(slot=slot, patient=patient),
    )


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def ics_of(message: EmailMessage) -> bytes:
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in message.walk()]
    part = parts[0]
    assert part.get_filename() == "appointment.ics"
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def calendar_of(message: EmailMessage) -> Calendar:
    """The attachment as icalendar reads it, after vobject has read it too (two parsers, one truth)."""
    raw = ics_of(message)
    parsed = vobject.readOne(raw.decode())
    assert parsed.name == "VCALENDAR"
    calendar = Calendar.from_ical(raw)
    assert len(parsed.vevent_list) == len(calendar.walk("VEVENT"))
    assert parsed.method.value == str(calendar["METHOD"])
    return calendar


def events(calendar: Calendar) -> list:
    return list(calendar.walk("VEVENT"))


def emails(address: str) -> list[Message]:
    return list(Message.objects.filter(channel=Channel.EMAIL, patient__email=address).order_by("created_at", "id"))


def test_a_booking_sends_one_email_with_a_plain_text_part_and_an_invitation(smtp, clinic_a, admin_a):
    slots = open_slots(clinic_a)
    patient = PatientFactory(clinic=clinic_a, first_name="Nadia", email="nadia@example.org")
    appointment = book(admin_a, slots[0], patient)

    [received] = smtp.received
    assert received.rcpt_tos == ["nadia@example.org"]
    assert received.mail_from == "no-reply@localhost"
    message = received.message
    assert message.get_content_type() == "multipart/mixed"
    text = text_of(message)
    assert "Dear Nadia" in text and "Dr Ines Okafor" in text
    assert appointment.starts_at.astimezone(LONDON).strftime("%-d %b %Y, %H:%M") in text

    calendar = calendar_of(message)
    assert str(calendar["METHOD"]) == "REQUEST"
    [event] = events(calendar)
    assert str(event["UID"]) == f"appointment-{appointment.public_id}@127.0.0.1"
    assert int(event["SEQUENCE"]) == 0
    assert event.decoded("DTSTART") == appointment.starts_at
    assert event.decoded("DTEND") == appointment.ends_at
    assert str(event["STATUS"]) == "CONFIRMED"

    [sent] = emails("nadia@example.org")
    assert (sent.kind, sent.status, sent.attempts) == (Kind.CONFIRMATION, Status.SENT, 1)
    assert sent.provider_id == message["Message-ID"]


def test_a_move_sends_one_moved_email_and_a_cancellation_cancels_the_same_event(smtp, clinic_a, admin_a):
    slots = open_slots(clinic_a)
    patient = PatientFactory(clinic=clinic_a, email="omar@example.org")
    first = book(admin_a, slots[0], patient)
    uid = str(events(calendar_of(smtp.received[0].message))[0]["UID"])

    moved = appointment_reschedule(
        clinic=clinic_a, actor=admin_a.user, membership=admin_a, appointment=first, slot=slots[2]
    )
    assert len(smtp.received) == 2  # one "moved" email: not a cancellation and a confirmation
    message = smtp.received[1].message
    assert "has moved" in str(message["Subject"])
    text = text_of(message)
    old, new = (a.starts_at.astimezone(LONDON).strftime("%H:%M") for a in (first, moved))
    assert f"from {first.starts_at.astimezone(LONDON):%a %-d %b %Y}, {old}" in text and new in text
    calendar = calendar_of(message)
    assert str(calendar["METHOD"]) == "REQUEST"
    [event] = events(calendar)
    assert str(event["UID"]) == uid
    assert int(event["SEQUENCE"]) == 1
    assert event.decoded("DTSTART") == moved.starts_at

    appointment_cancel(
        clinic=clinic_a,
        actor=admin_a.user,
        appointment=moved,
        reason="Dr Okafor has flu; the patient's trauma work must not be rushed",
        category=CancelCategory.CLINICIAN,
    )
    assert len(smtp.received) == 3
    message = smtp.received[2].message
    calendar = calendar_of(message)
    assert str(calendar["METHOD"]) == "CANCEL"
    [event] = events(calendar)
    assert str(event["UID"]) == uid
    assert int(event["SEQUENCE"]) == 2
    assert str(event["STATUS"]) == "CANCELLED"
    assert event.decoded("DTSTART") == moved.starts_at
    text = text_of(message)
    assert "the clinician is unavailable" in text
    raw = message.as_string()
    for secret in ("flu", "trauma", "rushed"):
        assert secret not in raw
    assert [m.kind for m in emails("omar@example.org")] == [Kind.CONFIRMATION, Kind.MOVED, Kind.REBOOK]


def test_a_series_sends_one_confirmation_listing_every_date(smtp, clinic_a, admin_a):
    first_monday = timezone.localdate() + dt.timedelta(days=7 - timezone.localdate().weekday() + 7)
    therapist = PractitionerFactory(clinic=clinic_a, name="Dr Group")
    group = SlotTypeFactory(clinic=clinic_a, name="DBT skills group", capacity=8, default_length_minutes=60)
    allocate_rota(clinic_a, therapist, group, first_monday, first_monday + dt.timedelta(weeks=3), (1,))
    slots = list(Slot.objects.filter(session__practitioner=therapist).order_by("starts_at"))
    assert len(slots) == 4
    patient = PatientFactory(clinic=clinic_a, email="ida@example.org")
    rule = RecurrenceRule(frequency="weekly", start=first_monday, time=dt.time(18), weekdays=(1,), count=len(slots))
    series_book(
        clinic=clinic_a,
        actor=admin_a.user,
        membership=admin_a,
        request=SeriesRequest(
            booking=BookingRequest(slot=slots[0], patient=patient, self_pay=True),
            practitioner=therapist,
            rule=rule,
            time_zone="Europe/London",
            plan=[PlannedOccurrence(starts_at=s.starts_at, slot=s) for s in slots],
        ),
    )
    [received] = smtp.received
    text = text_of(received.message)
    for slot in slots:
        assert f"{slot.starts_at.astimezone(LONDON):%a %-d %b %Y, %H:%M}" in text
    calendar = calendar_of(received.message)
    assert str(calendar["METHOD"]) == "REQUEST"
    starts = [e.decoded("DTSTART") for e in events(calendar)]
    assert starts == [s.starts_at for s in slots]
    assert len({str(e["UID"]) for e in events(calendar)}) == len(slots)  # one event per date
    [message] = emails("ida@example.org")
    assert message.kind == Kind.SERIES and len(message.appointment_ids) == len(slots)


def test_the_appointment_type_is_named_only_when_the_clinic_says_so(smtp, clinic_a, admin_a):
    slots = open_slots(clinic_a)
    book(admin_a, slots[0], PatientFactory(clinic=clinic_a, email="a@example.org"))
    assert "Couples therapy" not in smtp.received[0].message.as_string()
    assert str(events(calendar_of(smtp.received[0].message))[0]["SUMMARY"]) == "Appointment at Clinic A"

    NotificationSettings.objects.for_clinic(clinic_a).update(name_appointment_type=True)
    book(admin_a, slots[1], PatientFactory(clinic=clinic_a, email="b@example.org"))
    message = smtp.to("b@example.org")[0].message
    assert "Type: Couples therapy" in text_of(message)
    assert str(events(calendar_of(message))[0]["SUMMARY"]) == "Couples therapy at Clinic A"


def test_one_click_unsubscribe_by_post_stops_the_next_email_and_a_get_changes_nothing(smtp, clinic_a, admin_a):
    slots = open_slots(clinic_a)
    patient = PatientFactory(clinic=clinic_a, email="leave@example.org")
    book(admin_a, slots[0], patient)
    message = smtp.received[0].message
    header = str(message["List-Unsubscribe"]).strip()  # folded after the colon when long (RFC 5322 2.2.3)
    assert header.startswith("<") and header.endswith(">")
    url = header[1:-1]
    assert urlsplit(url).scheme in ("https", "http") and urlsplit(url).netloc
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert url in text_of(message)  # a person can follow it too

    path = urlsplit(url).path
    client = Client(enforce_csrf_checks=True)  # a mail app: no session, no CSRF token
    page = client.get(path)
    assert page.status_code == 200
    assert not ContactPreference.objects.filter(patient=patient).exists()
    assert not Consent.objects.filter(patient=patient).exists()

    response = client.post(path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert ContactPreference.objects.get(patient=patient).email_ok is False
    assert ContactPreference.objects.get(patient=patient).sms_ok is True
    [consent] = Consent.objects.filter(patient=patient)
    assert (consent.channel, consent.granted, consent.source) == (Channel.EMAIL, False, ConsentSource.UNSUBSCRIBE)

    book(admin_a, slots[1], patient)
    assert len(smtp.received) == 1  # nothing more arrived
    latest = emails("leave@example.org")[-1]
    assert (latest.status, latest.detail) == (Status.SKIPPED, "The patient does not want emails.")


def test_a_permanent_refusal_fails_the_message_for_good(smtp, clinic_a, admin_a, settings):
    slots = open_slots(clinic_a)
    smtp.refuse("gone@example.org", 550)
    appointment = book(admin_a, slots[0], PatientFactory(clinic=clinic_a, email="gone@example.org"))
    assert smtp.received == []
    [message] = emails("gone@example.org")
    assert (message.status, message.attempts) == (Status.FAILED, 1)
    assert "550" in message.detail and "gone@example.org" not in message.detail

    smtp.accept("gone@example.org")  # even if the address worked again, a failed message is not retried
    later = appointment.starts_at - dt.timedelta(hours=1)
    tick(later, lambda ids: send_messages(ids, later))
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.FAILED, 1)
    assert smtp.received == [] and smtp.data_count == 0


def test_a_temporary_refusal_waits_and_sends_once_when_due(smtp, clinic_a, admin_a, settings):
    slots = open_slots(clinic_a)
    smtp.refuse("busy@example.org", 451)
    before = timezone.now()
    book(admin_a, slots[0], PatientFactory(clinic=clinic_a, email="busy@example.org"))
    [message] = emails("busy@example.org")
    assert (message.status, message.attempts) == (Status.WAITING, 1)
    assert "451" in message.detail
    assert message.due_at >= before + dt.timedelta(seconds=settings.MESSAGE_RETRY_SECONDS)
    assert smtp.received == []

    smtp.accept("busy@example.org")
    early = message.due_at - dt.timedelta(seconds=1)
    tick(early, lambda ids: send_messages(ids, early))
    message.refresh_from_db()
    assert message.status == Status.WAITING and smtp.received == []

    due = message.due_at
    tick(due, lambda ids: send_messages(ids, due))
    tick(due, lambda ids: send_messages(ids, due))
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.SENT, 2)
    assert len(smtp.to("busy@example.org")) == 1


def test_a_blocked_patient_is_still_told(smtp, clinic_a, admin_a):
    slots = open_slots(clinic_a)
    patient = PatientFactory(
        clinic=clinic_a, email="hidden@example.org", is_blocked=True, blocked_reason="A member of staff"
    )
    book(admin_a, slots[0], patient)
    [received] = smtp.received
    assert received.rcpt_tos == ["hidden@example.org"]
    assert "A member of staff" not in received.message.as_string()
    assert emails("hidden@example.org")[0].status == Status.SENT
