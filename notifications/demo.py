"""Demo messages for `manage.py seed_demo` (seeded once per clinic): the clinic's settings row, and a few
confirmations recorded and sent by the real functions, then left in the states reception meets: sent,
delivered, failed (Twilio's report), delivery unknown (a sender that stopped mid-send), and waiting reminders."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clinic.models import Clinic
from notifications import services
from notifications.models import Channel, Kind, Message, NotificationSettings, Status
from notifications.recording import news_record
from notifications.sending import send_messages, stale_to_unknown
from scheduling.models import Appointment, AppointmentStatus
from scheduling.signals import PatientNews

DEMO_APPOINTMENTS = 4


@transaction.atomic
def seed_clinic(clinic: Clinic) -> None:
    NotificationSettings.objects.for_clinic(clinic).get_or_create(clinic=clinic)
    if Message.objects.for_clinic(clinic).filter(kind=Kind.CONFIRMATION).exists():
        return
    now = timezone.now()
    upcoming = (
        Appointment.objects.for_clinic(clinic)
        .filter(status=AppointmentStatus.BOOKED, starts_at__gt=now + dt.timedelta(days=3), patient__is_blocked=False)
        .exclude(patient__email="")
        .order_by("starts_at", "id")
    )
    chosen: list[Appointment] = []
    for appointment in upcoming[:200]:
        if appointment.patient_id not in {a.patient_id for a in chosen}:
            chosen.append(appointment)
        if len(chosen) == DEMO_APPOINTMENTS:
            break
    if not chosen:
        return
    # Confirmations, as a booking records them, sent at once (the console prints them in `make run`).
    for appointment in chosen:
        news_record(clinic_id=clinic.pk, news=PatientNews.BOOKED, appointments=[appointment.pk])
    mine = Message.objects.for_clinic(clinic).filter(kind=Kind.CONFIRMATION)
    send_messages(list(mine.filter(status=Status.WAITING).values_list("pk", flat=True)))
    now = timezone.now()

    def sent(appointment: Appointment, channel: str) -> Message | None:
        return mine.filter(appointment=appointment, channel=channel, status=Status.SENT).first()

    # Twilio's status callbacks: one text delivered, one undelivered (30003: the handset was unreachable). Texts
    # held back by quiet hours (a seed at night) are not sent yet: then an email shows the failure instead.
    if (text := sent(chosen[0], Channel.SMS)) is not None:
        services.sms_status(sid=text.provider_id, status="delivered")
    if len(chosen) > 1:
        if (text := sent(chosen[1], Channel.SMS)) is not None:
            services.sms_status(sid=text.provider_id, status="undelivered", error_code="30003")
        elif (email := sent(chosen[1], Channel.EMAIL)) is not None:
            detail = "The mail server refused the address (550 5.1.1): the demo's example of a failure."
            mine.filter(pk=email.pk).update(status=Status.FAILED, detail=detail)
    # A sender that stopped between the claim and the mark: after SENDING_STALE_SECONDS, "delivery unknown".
    if len(chosen) > 2 and (email := sent(chosen[2], Channel.EMAIL)) is not None:
        claimed = now - dt.timedelta(seconds=settings.SENDING_STALE_SECONDS + 60)
        mine.filter(pk=email.pk).update(status=Status.SENDING, claimed_at=claimed, sent_at=None, provider_id="")
        stale_to_unknown(now)
    # The last one's reminders, as beat records them (reminders_find's rows): waiting until they are due.
    last, chosen_settings = chosen[-1], NotificationSettings.objects.for_clinic(clinic).get()
    for channel in (Channel.EMAIL, Channel.SMS):
        hours = chosen_settings.reminder_hours(channel)
        if hours:
            Message.objects.for_clinic(clinic).get_or_create(
                clinic=clinic,
                appointment=last,
                kind=Kind.REMINDER,
                channel=channel,
                offset_hours=hours,
                version=last.starts_at,
                defaults={
                    "patient_id": last.patient_id,
                    "due_at": last.starts_at - dt.timedelta(hours=hours),
                    "created_at": now,
                },
            )
