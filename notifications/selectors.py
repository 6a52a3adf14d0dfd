"""Reads of notifications for the pages: the Messages log, an appointment's messages, a patient's choices and
consent history, and the settings page's preview (a real upcoming appointment, worded as it would be sent)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet

from notifications.models import Channel, Consent, ContactPreference, Kind, Message, NotificationSettings, Status
from notifications.sending import preview_for, sender_of
from notifications.wording import Worded, word
from patients.models import visible_patients
from scheduling.models import Appointment, AppointmentStatus

if TYPE_CHECKING:
    from clinic.models import Clinic, Membership
    from patients.models import Patient

# The Messages log's status filter: a status, or a group of them.
PROBLEMS = "problems"
RETRYING = "retrying"
STATUS_FILTERS: dict[str, tuple[str, Q]] = {
    PROBLEMS: ("Failed or delivery unknown", Q(status__in=[Status.FAILED, Status.UNKNOWN])),
    Status.UNKNOWN: ("Delivery unknown", Q(status=Status.UNKNOWN)),
    Status.FAILED: ("Failed", Q(status=Status.FAILED)),
    RETRYING: ("Retrying", Q(status=Status.WAITING, attempts__gt=0)),
    Status.WAITING: ("Waiting", Q(status=Status.WAITING)),
    Status.SENDING: ("Sending", Q(status=Status.SENDING)),
    Status.SENT: ("Sent or delivered", Q(status__in=[Status.SENT, Status.DELIVERED])),
    Status.DELIVERED: ("Delivered", Q(status=Status.DELIVERED)),
    Status.SKIPPED: ("Not sent", Q(status=Status.SKIPPED)),
}
RESENDABLE = frozenset({Status.FAILED, Status.UNKNOWN})


@dataclass(frozen=True)
class MessageFilter:
    """What the Messages log shows: a status (a key of STATUS_FILTERS), patients, and days on the viewer's clock."""

    status: str = ""
    patient_ids: list[int] | None = None  # None: every patient
    since: dt.date | None = None
    until: dt.date | None = None


def messages_list(
    *, clinic: Clinic, membership: Membership, chosen: MessageFilter, zone: ZoneInfo
) -> QuerySet[Message]:
    """The clinic's messages, newest first, about patients this member may see (one query per page)."""
    messages = (
        Message.objects.for_clinic(clinic)
        .filter(visible_patients(membership, through="patient"))
        .select_related("patient")
        .order_by("-created_at", "-id")
    )
    if chosen.status in STATUS_FILTERS:
        messages = messages.filter(STATUS_FILTERS[chosen.status][1])
    if chosen.patient_ids is not None:
        messages = messages.filter(patient_id__in=chosen.patient_ids)
    # A day is the viewer's day; a message is on the day it was (or is to be) sent.
    if chosen.since is not None:
        messages = messages.filter(due_at__gte=dt.datetime.combine(chosen.since, dt.time.min, tzinfo=zone))
    if chosen.until is not None:
        end = dt.datetime.combine(chosen.until + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
        messages = messages.filter(due_at__lt=end)
    return messages


def appointment_messages(*, clinic: Clinic, appointment: Appointment) -> list[Message]:
    """The messages about an appointment, newest first: its own, and its series' confirmation (which names the
    series' first appointment)."""
    about = Q(appointment_id=appointment.pk)
    if appointment.series_id:
        about |= Q(kind=Kind.SERIES, appointment__series_id=appointment.series_id)
    return list(Message.objects.for_clinic(clinic).filter(about).order_by("-created_at", "-id"))


def contact_preference(*, clinic: Clinic, patient: Patient) -> ContactPreference:
    """The patient's choices (a row not yet saved where none was recorded: by email and SMS)."""
    found = ContactPreference.objects.for_clinic(clinic).filter(patient=patient).first()
    return found or ContactPreference(clinic=clinic, patient=patient)


def consent_history(*, clinic: Clinic, patient: Patient, limit: int = 50) -> list[Consent]:
    """The patient's yes and no per channel, newest first, with who recorded each."""
    return list(
        Consent.objects.for_clinic(clinic).filter(patient=patient).select_related("recorded_by").order_by("-at")[:limit]
    )


def preview_appointment(*, clinic: Clinic, membership: Membership, now: dt.datetime) -> Appointment | None:
    """The clinic's next booked appointment of a patient this member may see (the preview's example)."""
    return (
        Appointment.objects.for_clinic(clinic)
        .filter(visible_patients(membership, through="patient"), status=AppointmentStatus.BOOKED, starts_at__gt=now)
        .select_related(
            "clinic",
            "patient",
            "practitioner",
            "slot_type",
            "slot__session__location",
            "slot__session__practitioner",
            "rescheduled_from",
        )
        .order_by("starts_at", "id")
        .first()
    )


@dataclass(frozen=True)
class Preview:
    appointment: Appointment
    email: Worded
    sms: Worded


PREVIEW_UNSUBSCRIBE = "(the patient's own unsubscribe link)"


def preview(*, appointment: Appointment, chosen: NotificationSettings, kind: str) -> Preview:
    """A message of `kind` about `appointment` as the email and the SMS would say it with these settings."""
    facts = preview_for(appointment, chosen, kind)
    sender = sender_of(chosen, appointment.clinic.name)
    return Preview(
        appointment=appointment,
        email=word(facts, chosen, Channel.EMAIL, sender=sender, unsubscribe_url=PREVIEW_UNSUBSCRIBE),
        sms=word(facts, chosen, Channel.SMS, sender=sender, unsubscribe_url=PREVIEW_UNSUBSCRIBE),
    )
