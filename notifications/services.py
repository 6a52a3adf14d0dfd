"""Writes of notifications that people make: the clinic's settings, a patient's contact choices (and the consent
behind them), an unsubscribe, an SMS STOP, Twilio's delivery reports, and sending again a message whose fate
is unknown."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clinic.nudges import nudge
from clinic.services import audit_record
from notifications.consent import consent_record
from notifications.models import (
    Channel,
    ConsentSource,
    ContactPreference,
    Message,
    NotificationSettings,
    Status,
)
from notifications.sending import UNSUBSCRIBE_SALT
from patients.identifiers import phone_key
from patients.models import Patient

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.forms import ModelForm

    from clinic.models import Clinic


class NotificationError(Exception):
    """A change that cannot be made; the message is shown to the user."""


def settings_save(*, clinic: Clinic, actor: User, form: ModelForm) -> NotificationSettings:
    with transaction.atomic():
        saved = form.save(commit=False)
        saved.clinic = clinic
        saved.save()
        audit_record(
            clinic=clinic,
            actor=actor,
            action="notifications.settings",
            target=saved,
            detail={"fields": form.changed_data},
        )
    return saved


def preference_set(
    *,
    clinic: Clinic,
    actor: User,
    patient: Patient,
    email_ok: bool,
    sms_ok: bool,
    source: str = ConsentSource.RECEPTION,
) -> ContactPreference:
    """Record how a patient wants to hear from the clinic, with a consent row per channel that changed."""
    now = timezone.now()
    with transaction.atomic():
        for channel, granted in ((Channel.EMAIL, email_ok), (Channel.SMS, sms_ok)):
            consent_record(patient=patient, channel=channel, granted=granted, source=source, actor=actor, now=now)
        audit_record(
            clinic=clinic,
            actor=actor,
            action="notifications.preference",
            target=patient,
            detail={"email": email_ok, "sms": sms_ok, "source": source},
        )
    return ContactPreference.objects.for_clinic(clinic).get(patient=patient)


def unsubscribe_patient(token: str) -> Patient | None:
    """One-click unsubscribe (RFC 8058) from a signed link: emails stop for that patient. None for a bad link."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    channel = data.get("c") if isinstance(data, dict) else None
    if channel not in Channel.values:
        return None
    # Across clinics: the signed link names the patient (its signature is the permission).
    patient = Patient.objects.filter(public_id=data.get("p")).first()
    if patient is None:
        return None
    with transaction.atomic():
        consent_record(
            patient=patient,
            channel=channel,
            granted=False,
            source=ConsentSource.UNSUBSCRIBE,
            actor=None,
            now=timezone.now(),
        )
    return patient


# Twilio's opt-out keywords (https://help.twilio.com/articles/223134027): after one of these, as the whole message,
# Twilio itself stops sending to the number from the clinic's sender, answering 21610 to any later send, so we
# record the patient's choice too. A reply that only begins with one ("Cancel my appointment, I'm ill", "Yes see you
# then") is not a keyword to Twilio, which keeps sending: nor is it to us.
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})


def _keyword(body: str, opt_out_type: str) -> str:
    """STOP, START or "" for a patient's text. With Advanced Opt-Out Twilio says which in OptOutType (the clinic
    may have keywords of its own, in other languages); without it, the whole body is matched as Twilio matches
    it, case and surrounding spaces aside (a trailing full stop too: reading "Stop." as STOP errs on the side of
    the patient's wish)."""
    kind = opt_out_type.strip().upper()
    if kind in ("STOP", "START"):
        return kind
    if kind:
        return ""  # HELP, or a type we do not know: no change of consent
    word = body.strip().rstrip(".!").strip().upper()
    if word in OPT_OUT:
        return "STOP"
    if word in OPT_IN:
        return "START"
    return ""


def sms_reply(*, from_number: str, body: str, opt_out_type: str = "") -> int:
    """An SMS from a patient (Twilio's inbound webhook): STOP turns texts off, START back on, for every patient
    with that mobile number (one number may serve several clinics, and Twilio's block covers them all: they send
    from one account). Returns how many patients changed."""
    keyword = _keyword(body, opt_out_type)
    if not keyword:
        return 0
    granted, source = (False, ConsentSource.SMS_STOP) if keyword == "STOP" else (True, ConsentSource.SMS_START)
    key = phone_key(from_number)
    if not key:
        return 0
    now = timezone.now()
    with transaction.atomic():
        # Across clinics: the number is the only thing the reply names.
        patients = list(Patient.objects.filter(mobile_key=key))
        for patient in patients:
            consent_record(patient=patient, channel=Channel.SMS, granted=granted, source=source, actor=None, now=now)
    return len(patients)


# Twilio's message statuses (https://www.twilio.com/docs/messaging/api/message-resource#message-status-values).
TWILIO_FINAL_FAILURES = frozenset({"failed", "undelivered"})


def sms_status(*, sid: str, status: str, error_code: str = "", message: str = "") -> bool:
    """Twilio's status callback for a text we sent: delivered, or failed/undelivered (shown to reception).

    `message` is our message's public id, carried in the callback's URL (which Twilio signs): the callback may
    overtake Twilio's answer to the send, before the SID is stored, and it tells the fate of a text whose send had
    no answer. A SID once stored must match. Without `message`, the SID alone names the message."""
    if not sid:
        return False
    now = timezone.now()
    # Across clinics: Twilio names the message by its SID (and our public id, in the URL it signed).
    found = Message.objects.filter(channel=Channel.SMS)
    if message:
        try:
            public_id = uuid.UUID(message)
        except ValueError:
            return False
        found = found.filter(public_id=public_id).filter(Q(provider_id=sid) | Q(provider_id=""))
    else:
        found = found.filter(provider_id=sid)
    if status == "delivered":
        return bool(found.update(status=Status.DELIVERED, delivered_at=now, provider_id=sid))
    if status in TWILIO_FINAL_FAILURES:
        code = f" (code {error_code})" if error_code.isdigit() else ""
        return bool(
            found.update(status=Status.FAILED, provider_id=sid, detail=f"Twilio reports the text {status}{code}.")
        )
    return found.exists()


def message_resend(*, clinic: Clinic, actor: User, message: Message) -> Message:
    """Reception's decision on a message whose delivery is unknown (or that failed): send it again."""
    with transaction.atomic():
        locked = Message.objects.for_clinic(clinic).select_for_update().get(pk=message.pk)
        if locked.status not in (Status.UNKNOWN, Status.FAILED):
            raise NotificationError("Only a message that failed or whose delivery is unknown can be sent again.")
        locked.status = Status.WAITING
        locked.due_at = timezone.now()
        locked.detail = "Sent again by reception."
        locked.claimed_at = None
        locked.save(update_fields=["status", "due_at", "detail", "claimed_at"])
        audit_record(clinic=clinic, actor=actor, action="notifications.resend", target=locked, detail={})
        from notifications import tasks

        nudge(tasks.send_messages, [locked.pk])
    return locked
