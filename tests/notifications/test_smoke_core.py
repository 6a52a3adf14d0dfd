import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from notifications.models import Message, Status
from notifications.sending import tick
from scheduling.services.booking import BookingRequest, appointment_book, appointment_cancel, appointment_reschedule
from tests.factories import PatientFactory, PractitionerFactory, allocate_session

pytestmark = pytest.mark.django_db(transaction=True)


def test_booking_sends_a_confirmation_with_ics(clinic_a, admin_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    day = timezone.now().date() + dt.timedelta(days=5)
    session = allocate_session(clinic_a, practitioner=practitioner, day=day)
    slots = list(session.slots.order_by("starts_at"))
    patient = PatientFactory(clinic=clinic_a, email="nadia@example.org", mobile_phone="07700 900123")
    appointment = appointment_book(
        clinic=clinic_a, actor=admin_a.user, membership=admin_a, request=BookingRequest(slot=slots[0], patient=patient)
    )
    assert len(mail.outbox) == 1, [m.status for m in Message.objects.all()]
    print(mail.outbox[0].message().as_string())
    moved = appointment_reschedule(
        clinic=clinic_a, actor=admin_a.user, membership=admin_a, appointment=appointment, slot=slots[1]
    )
    assert len(mail.outbox) == 2
    print(mail.outbox[1].message().as_string()[-1500:])
    appointment_cancel(clinic=clinic_a, actor=admin_a.user, appointment=moved, reason="flu", category="clinician")
    print(mail.outbox[2].message().as_string()[-1200:])
    print(list(Message.objects.values_list("kind", "channel", "status", "detail")))
    now = moved.starts_at - dt.timedelta(hours=47)
    print(tick(now, lambda ids: None))


def test_reminder_found_once(clinic_a, admin_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    day = timezone.now().date() + dt.timedelta(days=5)
    session = allocate_session(clinic_a, practitioner=practitioner, day=day, start=dt.time(14))
    slot = session.slots.order_by("starts_at").first()
    patient = PatientFactory(clinic=clinic_a, email="nadia@example.org", mobile_phone="07700 900123")
    appointment = appointment_book(
        clinic=clinic_a, actor=admin_a.user, membership=admin_a, request=BookingRequest(slot=slot, patient=patient)
    )
    now = appointment.starts_at - dt.timedelta(hours=48)
    batches = []
    print(tick(now, batches.append), batches)
    print(tick(now, batches.append), batches)
    print(list(Message.objects.values_list("kind", "channel", "status", "due_at", "offset_hours", "version")))
    from notifications.sending import send_messages

    print(send_messages(batches[0], now))
    print(mail.outbox[-1].subject)
