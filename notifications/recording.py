"""Recording messages: rows written in the change's transaction (confirmations, moves, cancellations), or found
by beat (reminders). Nothing here sends; sending.py claims, sends and marks.

A message's key is unique in the database (the appointment, kind, channel, offset and version: see
models.Message), so a reminder found by two beats, or by one beat twice, is one row.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

from django.conf import settings
from django.db import connection
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, Value
from django.utils import timezone

from clinic.db import DbValues
from clinic.nudges import nudge
from notifications.models import Channel, ContactPreference, Kind, Message, NotificationSettings, Status
from patients.models import Patient
from scheduling.models import Appointment, AppointmentStatus, CancelCategory, Slot
from scheduling.signals import PatientNews


def clinic_settings(clinic_id: int) -> NotificationSettings:
    """The clinic's settings (its row, or the defaults for a clinic made before there were any)."""
    return NotificationSettings.objects.for_clinic(clinic_id).first() or NotificationSettings(clinic_id=clinic_id)


def channels_on(notification_settings: NotificationSettings) -> list[str]:
    return [
        channel
        for channel, on in (
            (Channel.EMAIL, notification_settings.email_on),
            (Channel.SMS, notification_settings.sms_on),
        )
        if on
    ]


def kind_on(notification_settings: NotificationSettings, kind: str) -> bool:
    if kind in (Kind.CONFIRMATION, Kind.SERIES):
        return notification_settings.confirmations_on
    if kind == Kind.REMINDER:
        return notification_settings.reminders_on
    if kind == Kind.OFFER:
        return notification_settings.offers_on
    if kind in (Kind.REQUESTED, Kind.DECLINED):
        # The answer to something the patient has just asked for on the site: always sent.
        return True
    return notification_settings.changes_on


def address_of(patient: Patient, channel: str) -> str:
    return patient.email if channel == Channel.EMAIL else patient.mobile_phone


def preference_of(patient: Patient) -> ContactPreference | None:
    """The patient's contact preference as read with them (select_related), None without one."""
    try:
        return patient.contact_preference
    except ContactPreference.DoesNotExist:
        return None


def refusal(patient: Patient, preference: ContactPreference | None, channel: str) -> str:
    """Why this patient is not to be told by this channel ("" when they may be)."""
    if not address_of(patient, channel):
        return "No email address." if channel == Channel.EMAIL else "No mobile number."
    if preference is not None and not (preference.email_ok if channel == Channel.EMAIL else preference.sms_ok):
        return "The patient does not want emails." if channel == Channel.EMAIL else "The patient does not want texts."
    return ""


NEWS_KINDS = {
    PatientNews.BOOKED: Kind.CONFIRMATION,
    PatientNews.SERIES: Kind.SERIES,
    PatientNews.MOVED: Kind.MOVED,
    PatientNews.CANCELLED: Kind.CANCELLED,
}


def news_record(
    *, clinic_id: int, news: str, appointments: Sequence[int], previous: int | None = None, category: str = ""
) -> list[int]:
    """Messages about a change, in its transaction, to be sent at once (nudged after commit)."""
    kind = NEWS_KINDS[news]
    if kind == Kind.CANCELLED and category == CancelCategory.RESCHEDULED:
        return []
    if kind == Kind.CANCELLED and category in CancelCategory.session_cancelled():
        kind = Kind.REBOOK
    chosen = clinic_settings(clinic_id)
    channels = channels_on(chosen)
    if not kind_on(chosen, kind) or not channels:
        return []
    # The appointments with their patients' addresses and contact preferences (one query; a preference is its
    # patient's, so of the same clinic), only what the messages need.
    rows = list(
        Appointment.objects.for_clinic(clinic_id)
        .filter(pk__in=appointments)
        .select_related("patient__contact_preference")
        .only(
            "clinic_id",
            "patient_id",
            "starts_at",
            "patient__email",
            "patient__mobile_phone",
            "patient__contact_preference__patient_id",
            "patient__contact_preference__email_ok",
            "patient__contact_preference__sms_ok",
        )
        .order_by("starts_at", "id")
    )
    by_patient: dict[int, list[Appointment]] = defaultdict(list)
    for appointment in rows:
        by_patient[appointment.patient_id].append(appointment)
    preferences = {patient_id: preference_of(group[0].patient) for patient_id, group in by_patient.items()}
    now = timezone.now()
    messages = []
    for patient_id, group in by_patient.items():
        first = group[0]
        for channel in channels:
            why_not = refusal(first.patient, preferences.get(patient_id), channel)
            messages.append(
                Message(
                    clinic_id=clinic_id,
                    patient_id=patient_id,
                    appointment=first,
                    appointment_ids=[a.pk for a in group],
                    ref=str(previous or ""),
                    kind=kind,
                    channel=channel,
                    version=first.starts_at,
                    category=category,
                    due_at=now,
                    status=Status.SKIPPED if why_not else Status.WAITING,
                    detail=why_not,
                    created_at=now,
                )
            )
    created = Message.objects.bulk_create(messages)
    waiting = [m.pk for m in created if m.status == Status.WAITING]
    if waiting:
        from notifications import tasks

        nudge(tasks.send_messages, waiting)
    return waiting


def offer_record(
    *, clinic_id: int, patient: Patient, slot: Slot, ref: str, due_at: dt.datetime | None = None
) -> list[int]:
    """A generic offer of a place in a slot (for waitlists and holds): one message per channel, keyed by `ref`
    (the hold's key), so an offer is recorded once however often it is made. Call inside the offer's
    transaction."""
    return slot_news_record(clinic_id=clinic_id, patient=patient, slot=slot, ref=ref, kind=Kind.OFFER, due_at=due_at)


def slot_news_record(
    *,
    clinic_id: int,
    patient: Patient,
    slot: Slot,
    ref: str,
    kind: str,
    category: str = "",
    due_at: dt.datetime | None = None,
) -> list[int]:
    """A message about a place in a slot rather than an appointment (an offer; an online request received or
    declined): one per channel, keyed by `ref` and the kind, so it is recorded once however often it is asked
    for. Call inside the transaction of the change it tells."""
    chosen = clinic_settings(clinic_id)
    if not kind_on(chosen, kind):
        return []
    preference = ContactPreference.objects.for_clinic(clinic_id).filter(patient=patient).first()
    now = timezone.now()
    waiting: list[int] = []
    for channel in channels_on(chosen):
        why_not = refusal(patient, preference, channel)
        message, created = Message.objects.for_clinic(clinic_id).get_or_create(
            clinic_id=clinic_id,
            appointment=None,
            ref=ref,
            kind=kind,
            channel=channel,
            defaults={
                "patient": patient,
                "slot": slot,
                "category": category,
                "version": slot.starts_at,
                "due_at": due_at or now,
                "status": Status.SKIPPED if why_not else Status.WAITING,
                "detail": why_not,
                "created_at": now,
            },
        )
        if created and message.status == Status.WAITING:
            waiting.append(message.pk)
    if waiting:
        from notifications import tasks

        nudge(tasks.send_messages, waiting)
    return waiting


def _new_uuid_sql() -> str:
    if connection.vendor == "postgresql":
        return "gen_random_uuid()"
    return "lower(hex(randomblob(16)))"  # 32 hex digits: how Django keeps a UUID where there is no uuid type


def reminders_find(now: dt.datetime) -> int:
    """Record every reminder due now (within the look-back), across clinics: one INSERT ... SELECT per channel and
    distinct offset, whatever the number of reminders; rows already recorded are left alone (the key).

    A reminder is due `hours` elapsed hours before the start (an instant: clock changes in between do not move
    it). An appointment booked after its reminder's moment gets none (its confirmation was just sent); one
    whose reminder moment passed while nothing ran (beat down) is still found for REMINDER_LOOKBACK_HOURS.
    """
    lookback = dt.timedelta(hours=settings.REMINDER_LOOKBACK_HOURS)
    values = DbValues()
    found = 0
    for channel in (Channel.EMAIL, Channel.SMS):
        hours_field = f"{channel}_reminder_hours"
        # Across clinics: beat's sweep (the tenancy test's allow-list names it).
        chosen = NotificationSettings.objects.filter(reminders_on=True, **{f"{channel}_on": True}).exclude(
            **{f"{hours_field}__isnull": True}
        )
        for hours in sorted(set(chosen.values_list(hours_field, flat=True))):
            offset = dt.timedelta(hours=hours)
            address = Q(patient__email="") if channel == Channel.EMAIL else Q(patient__mobile_phone="")
            refused = Q(**{f"patient__contact_preference__{channel}_ok": False})
            due = (
                Appointment.objects.filter(
                    status=AppointmentStatus.BOOKED,
                    starts_at__gt=now + offset - lookback,
                    starts_at__lte=now + offset,
                    created_at__lte=F("starts_at") - Value(offset),
                    clinic_id__in=chosen.filter(**{hours_field: hours}).values("clinic_id"),
                )
                .exclude(address)
                .exclude(refused)
                .annotate(due=ExpressionWrapper(F("starts_at") - Value(offset), output_field=DateTimeField()))
                .values_list("clinic_id", "patient_id", "id", "starts_at", "due")
                .order_by()  # no sort: the rows go straight into the INSERT
            )
            select_sql, params = due.query.sql_with_params()
            table = Message._meta.db_table
            sql = (
                f"INSERT INTO {table} (clinic_id, public_id, patient_id, appointment_id, appointment_ids, ref, kind,"
                " channel, offset_hours, version, category, due_at, status, attempts, recipient, subject, body,"
                " provider_id, detail, created_at)"
                f" SELECT found.clinic_id, {_new_uuid_sql()}, found.patient_id, found.id, '[]', '', %s, %s, %s,"
                " found.starts_at, '', found.due, %s, 0, '', '', '', '', '', %s"
                f" FROM ({select_sql}) AS found WHERE 1 = 1 ON CONFLICT DO NOTHING"
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, [Kind.REMINDER, channel, hours, Status.WAITING, values.datetime(now), *params])
                found += max(cursor.rowcount, 0)
    return found
