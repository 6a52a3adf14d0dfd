"""Sending messages, never twice: each is claimed (waiting → sending, in a short transaction of its own), then
sent with no transaction open, then marked (sent, failed, or waiting again for a retry).

Neither SMTP nor Twilio takes an idempotency key, so a message is never sent again once it may have reached
the provider: a worker that dies between the claim and the mark leaves it "sending", and beat's tick turns it
into "delivery unknown" after SENDING_STALE_SECONDS, for reception to decide (sent again by hand, or not).
A redelivered task (acks_late) finds it claimed and leaves it alone.

What a message says is worded when it is sent, from the appointment as it is then: a reminder of an
appointment that moved is not sent (the moved one has its own, with the new time).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from notifications import channels, ics
from notifications.consent import consent_record
from notifications.models import Channel, ConsentSource, ContactPreference, Kind, Message, NotificationSettings, Status
from notifications.recording import channels_on, clinic_settings, kind_on, refusal, reminders_find
from notifications.signals import booking_url, manage_url, offer_url
from notifications.wording import DECLINE_REASONS, Facts, Visit, Worded, when_text, word
from patients.models import Patient
from scheduling.models import Appointment, AppointmentStatus, CancelCategory, Slot, WaitlistOffer

if TYPE_CHECKING:
    from clinic.models import Practitioner
    from sessions_setup.models import SlotType

log = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "notifications.unsubscribe"
CANCELLING = frozenset({Kind.CANCELLED, Kind.REBOOK})
QUIET_FOR_EVERY_CHANNEL = frozenset({Kind.REMINDER, Kind.OFFER})  # besides every SMS
ABOUT_A_SLOT = frozenset({Kind.OFFER, Kind.REQUESTED, Kind.DECLINED})  # no appointment (yet): a place in a slot
NO_INVITATION = frozenset({Kind.REQUESTED, Kind.DECLINED})  # nothing is booked: no calendar attachment


def unsubscribe_token(patient_public_id: str, channel: str) -> str:
    return signing.dumps({"p": patient_public_id, "c": channel}, salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_url(patient_public_id: str, channel: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse(
        "notifications:unsubscribe", args=[unsubscribe_token(patient_public_id, channel)]
    )


def status_callback_url(message_public_id: str) -> str:
    """Where Twilio reports a text's fate; the URL names the message, so a report that overtakes Twilio's answer
    to the send (or comes after a send that had none) still finds it."""
    return settings.SITE_URL.rstrip("/") + reverse("notifications:twilio-status") + f"?m={message_public_id}"


def quiet_end(chosen: NotificationSettings, zone: ZoneInfo, now: dt.datetime) -> dt.datetime | None:
    """When quiet hours end, if `now` is inside them on the zone's clock (None when it is not)."""
    start, end = chosen.quiet_from, chosen.quiet_until
    if start == end:
        return None
    local = now.astimezone(zone)
    moment = local.time().replace(tzinfo=None)
    inside = start <= moment < end if start < end else (moment >= start or moment < end)
    if not inside:
        return None
    day = local.date() if moment < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, end, tzinfo=zone).astimezone(dt.UTC)


@dataclass(frozen=True)
class Outcome:
    status: str
    detail: str = ""
    provider_id: str = ""
    due_at: dt.datetime | None = None
    tried: bool = True  # False: held back before any provider call (quiet hours), so not counted as a try


def due_ids(now: dt.datetime, limit: int) -> list[int]:
    """Waiting messages whose moment has come, oldest first (the partial index on due_at)."""
    # Across clinics: beat's sweep (the tenancy test's allow-list names it).
    return list(
        Message.objects.filter(status=Status.WAITING, due_at__lte=now)
        .order_by("due_at")
        .values_list("pk", flat=True)[:limit]
    )


def claim(ids: Sequence[int], now: dt.datetime) -> list[tuple[int, int]]:
    """Take these messages for sending (waiting → sending) in one short transaction; those another worker took
    first, or that are not due, are left out. On PostgreSQL rows locked by another claim are skipped.
    Returns (message, clinic) primary keys: everything after the claim goes through for_clinic."""
    with transaction.atomic():
        # Across clinics: a task claiming the rows it was given.
        mine = list(
            Message.objects.filter(pk__in=ids, status=Status.WAITING, due_at__lte=now)
            .select_for_update(skip_locked=True)
            .values_list("pk", "clinic_id")
        )
        for clinic_id in {clinic for _, clinic in mine}:
            Message.objects.for_clinic(clinic_id).filter(
                pk__in=[pk for pk, clinic in mine if clinic == clinic_id]
            ).update(status=Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    return mine


def send_messages(ids: Sequence[int], now: dt.datetime | None = None) -> dict[str, int]:
    """Claim, send and mark these messages one at a time (each is claimed just before its provider call, so a
    long batch never leaves later ones looking stale); returns how many ended in each status."""
    counts: dict[str, int] = {}
    for pk in ids:
        moment = now or timezone.now()
        for claimed, clinic_id in claim([pk], moment):
            outcome = _send_one(claimed, clinic_id, moment)
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


def _mark(pk: int, clinic_id: int, outcome: Outcome) -> None:
    fields: dict[str, object] = {"status": outcome.status, "detail": outcome.detail[:200]}
    if outcome.status == Status.SENT:
        fields.update(sent_at=timezone.now(), provider_id=outcome.provider_id)
    if outcome.due_at is not None:
        fields["due_at"] = outcome.due_at
    if outcome.status == Status.WAITING:
        fields["claimed_at"] = None
    if not outcome.tried:
        fields["attempts"] = F("attempts") - 1
    # Twilio's delivery report may have come while we were sending (its callback can overtake its answer, or
    # come after a send that had none): what it said is kept.
    mine = Message.objects.for_clinic(clinic_id).filter(pk=pk)
    if not mine.filter(status__in=[Status.SENDING, Status.UNKNOWN]).update(**fields) and outcome.status == Status.SENT:
        mine.update(sent_at=fields["sent_at"])


def _retry_or_give_up(tries: int, detail: str, now: dt.datetime) -> Outcome:
    if tries >= settings.MESSAGE_MAX_ATTEMPTS:
        return Outcome(Status.FAILED, detail=f"Gave up after {tries} tries: {detail}")
    wait = min(settings.MESSAGE_RETRY_SECONDS * 2 ** (tries - 1), 3600)
    return Outcome(Status.WAITING, detail=f"Will try again: {detail}", due_at=now + dt.timedelta(seconds=wait))


def _send_one(pk: int, clinic_id: int, now: dt.datetime) -> Outcome:
    message = Message.objects.for_clinic(clinic_id).select_related("patient", "clinic").get(pk=pk)
    tries = message.attempts  # this one included (the claim counted it)
    try:
        prepared = _prepare(message, now)
    except Exception as error:  # noqa: BLE001 - nothing was sent: the message waits for another try
        log.exception("message %s could not be prepared", message.public_id)
        prepared = _retry_or_give_up(tries, f"it could not be prepared ({type(error).__name__}).", now)
    if isinstance(prepared, Outcome):
        outcome = prepared
    else:
        # What is being sent is kept before the provider call: a message whose fate is unknown shows it.
        Message.objects.for_clinic(clinic_id).filter(pk=pk).update(
            recipient=prepared.to, subject=prepared.worded.subject[:200], body=prepared.worded.text
        )
        try:
            outcome = Outcome(Status.SENT, provider_id=prepared.send())
        except channels.Refused as refused:
            outcome = Outcome(Status.FAILED, detail=refused.detail)
            if refused.opted_out:
                # The patient told the provider to stop (a STOP whose webhook never reached us): their choice here
                # too, so the next texts are "not sent" with the reason instead of failing one by one.
                with transaction.atomic():
                    consent_record(
                        patient=message.patient,
                        channel=message.channel,
                        granted=False,
                        source=ConsentSource.SMS_STOP,
                        actor=None,
                        now=timezone.now(),
                    )
        except channels.Trouble as trouble:
            outcome = _retry_or_give_up(tries, trouble.detail, now)
        except channels.Unknown as unknown:
            outcome = Outcome(Status.UNKNOWN, detail=unknown.detail)
        except Exception as error:  # noqa: BLE001 - it may have reached the provider: never sent again by itself
            log.exception("message %s: the provider call failed unexpectedly", message.public_id)
            outcome = Outcome(
                Status.UNKNOWN,
                detail=f"The send stopped unexpectedly ({type(error).__name__}): it may or may not have arrived.",
            )
    _mark(pk, clinic_id, outcome)
    log.info("message %s (%s by %s): %s", message.public_id, message.kind, message.channel, outcome.status)
    return outcome


@dataclass(frozen=True)
class Prepared:
    to: str
    worded: Worded
    send: Callable[[], str]


def _prepare(message: Message, now: dt.datetime) -> Prepared | Outcome:
    """Everything up to the provider call: is it still to be sent, now, to whom, in what words?"""
    chosen = clinic_settings(message.clinic_id)
    if not kind_on(chosen, message.kind) or message.channel not in channels_on(chosen):
        return Outcome(Status.SKIPPED, "The clinic has turned these messages off.")
    patient = message.patient
    preference = ContactPreference.objects.for_clinic(message.clinic_id).filter(patient=patient).first()
    why_not = refusal(patient, preference, message.channel)
    if why_not:
        return Outcome(Status.SKIPPED, why_not)
    gathered = _facts(message, chosen)
    if isinstance(gathered, str):
        return Outcome(Status.SKIPPED, gathered)
    facts, zone = gathered
    if message.channel == Channel.SMS or message.kind in QUIET_FOR_EVERY_CHANNEL:
        end = quiet_end(chosen, zone, now)
        if end is not None:
            if end >= facts.visits[0].starts_at:
                return Outcome(Status.SKIPPED, "Quiet hours last until after the appointment.")
            return Outcome(Status.WAITING, "Held back by quiet hours.", due_at=end, tried=False)
    sender = sender_of(chosen, message.clinic.name)
    to = patient.email if message.channel == Channel.EMAIL else patient.mobile_phone
    leave = unsubscribe_url(str(patient.public_id), message.channel)
    manage = ""
    if message.kind not in ABOUT_A_SLOT and message.kind not in CANCELLING and message.appointment_id:
        manage = manage_url(message.appointment)
    rebook = booking_url(message.clinic_id) if message.kind == Kind.REBOOK else ""
    offered = offer_url(gathered_offer) if (gathered_offer := _offer_of(message)) is not None else ""
    worded = word(
        facts,
        chosen,
        message.channel,
        sender=sender,
        unsubscribe_url=leave,
        manage_url=manage,
        rebook_url=rebook,
        offer_url=offered,
    )
    if message.channel == Channel.SMS:
        return Prepared(
            to,
            worded,
            lambda: channels.send_sms(
                to=to, body=worded.text, status_callback=status_callback_url(str(message.public_id))
            ),
        )
    cancel = message.kind in CANCELLING
    attachment = (
        None
        if message.kind in NO_INVITATION
        else ics.invitation(
            facts.visits,
            cancel=cancel,
            summary=f"{facts.visits[0].appointment_type or 'Appointment'} at {facts.clinic}",
            organizer_email=channels.sender_address(),
            organizer_name=sender,
            attendee_email=to,
            now=now,
        )
    )
    email = channels.Email(
        to=to,
        subject=worded.subject,
        text=worded.text,
        from_name=sender,
        reply_to=chosen.reply_to,
        unsubscribe_url=leave,
        ics=attachment,
        ics_method="CANCEL" if cancel else "REQUEST",
    )
    return Prepared(to, worded, lambda: channels.send_email(email))


def _facts(message: Message, chosen: NotificationSettings) -> tuple[Facts, ZoneInfo] | str:
    """The facts the message tells, from the appointments as they are now; or why it is no longer to be sent."""
    patient = message.patient
    first_name = first_name_of(patient)
    clinic = message.clinic.name
    if message.kind in ABOUT_A_SLOT:
        slot = (
            Slot.objects.for_clinic(message.clinic_id)
            .select_related("session__location", "session__practitioner", "slot_type")
            .filter(pk=message.slot_id)
            .first()
        )
        if slot is None:
            return "The offered place no longer exists."
        visit = _visit_of_slot(slot, chosen, uid=f"offer-{message.public_id}", sequence=0)
        reason = DECLINE_REASONS.get(message.category, "") if message.kind == Kind.DECLINED else ""
        until = ""
        offer = _offer_of(message)
        if offer is not None:
            if offer.hold.ended_at is not None:
                return f"The offer ended before this message went ({offer.hold.get_outcome_display().lower()})."
            until = when_text(offer.hold.expires_at, visit.zone)
        facts = Facts(
            kind=message.kind, clinic=clinic, first_name=first_name, visits=[visit], reason=reason, until=until
        )
        return facts, visit.zone
    ids = message.appointment_ids or [message.appointment_id]
    appointments = list(
        Appointment.objects.for_clinic(message.clinic_id)
        .filter(pk__in=ids)
        .select_related("slot__session__location", "slot__session__practitioner", "slot_type", "practitioner")
        .order_by("starts_at", "id")
    )
    if not appointments:
        return "The appointment no longer exists."
    if message.kind == Kind.REMINDER:
        current = appointments[0]
        if current.status != AppointmentStatus.BOOKED:
            return "The appointment is no longer booked."
        if current.starts_at != message.version:
            return "The appointment moved; its new time has a reminder of its own."
    elif message.kind not in CANCELLING:
        appointments = [a for a in appointments if a.status != AppointmentStatus.CANCELLED]
        if not appointments:
            return "Cancelled before this message went; the cancellation tells the patient."
    visits = [_visit(a, chosen) for a in appointments]
    old_when = ""
    if message.kind == Kind.MOVED and message.ref.isdigit():
        previous = Appointment.objects.for_clinic(message.clinic_id).filter(pk=int(message.ref)).first()
        if previous is not None:
            old_when = when_text(previous.starts_at, visits[0].zone)
    reason = reason_words(message.category) if message.kind in CANCELLING else ""
    facts = Facts(
        kind=message.kind, clinic=clinic, first_name=first_name, visits=visits, old_when=old_when, reason=reason
    )
    return facts, visits[0].zone


def _offer_of(message: Message) -> WaitlistOffer | None:
    """The waitlist offer an offer message tells of (its ref), with its hold."""
    if message.kind != Kind.OFFER or not message.ref:
        return None
    try:
        return WaitlistOffer.objects.for_clinic(message.clinic_id).select_related("hold").get(public_id=message.ref)
    except (WaitlistOffer.DoesNotExist, ValidationError):
        return None


def reason_words(category: str) -> str:
    """Why an appointment was cancelled, as the patient reads it (the category, never the clinic's own reason)."""
    if not category or category == CancelCategory.OTHER:
        return "by the clinic"
    return CancelCategory(category).label.lower()


def sender_of(chosen: NotificationSettings, clinic_name: str) -> str:
    """The name messages are sent in: the clinic's chosen sender name, or the clinic's name."""
    return chosen.sender_name or clinic_name


def first_name_of(patient: Patient) -> str:
    """How a message greets the patient: their preferred name, or their first name."""
    return patient.preferred_name or patient.first_name


def preview_for(appointment: Appointment, chosen: NotificationSettings, kind: str) -> Facts:
    """What a message of `kind` about this appointment would tell, with these (perhaps unsaved) settings: the
    settings page's preview. A move's earlier time is the one it came from, or a week before as an example."""
    visit = _visit(appointment, chosen)
    old_when, reason = "", ""
    if kind == Kind.MOVED:
        previous = appointment.rescheduled_from
        moment = previous.starts_at if previous is not None else appointment.starts_at - dt.timedelta(days=7)
        old_when = when_text(moment, visit.zone)
    if kind in CANCELLING:
        reason = reason_words(CancelCategory.OTHER)
    return Facts(
        kind=kind,
        clinic=appointment.clinic.name,
        first_name=first_name_of(appointment.patient),
        visits=[visit],
        old_when=old_when,
        reason=reason,
    )


def _chain(appointment: Appointment) -> tuple[str, int]:
    """The public id of the first appointment of a reschedule chain, and how many moves led here."""
    root_id, root_public, depth = appointment.rescheduled_from_id, appointment.public_id, 0
    while root_id is not None and depth < 100:
        row = (
            Appointment.objects.for_clinic(appointment.clinic_id)
            .filter(pk=root_id)
            .values_list("rescheduled_from_id", "public_id")
            .first()
        )
        if row is None:
            break
        root_id, root_public = row
        depth += 1
    return str(root_public), depth


def _visit(appointment: Appointment, chosen: NotificationSettings) -> Visit:
    """An appointment as a message tells it: its own times, type and practitioner, in its reschedule chain's event."""
    root, depth = _chain(appointment)
    return _visit_of_slot(
        appointment.slot,
        chosen,
        uid=ics.event_uid(root),
        sequence=depth,
        times=(appointment.starts_at, appointment.ends_at),
        practitioner=appointment.practitioner,
        slot_type=appointment.slot_type,
    )


def _visit_of_slot(
    slot: Slot,
    chosen: NotificationSettings,
    *,
    uid: str,
    sequence: int,
    times: tuple[dt.datetime, dt.datetime] | None = None,
    practitioner: Practitioner | None = None,
    slot_type: SlotType | None = None,
) -> Visit:
    """A place in a slot as a message tells it (an appointment's own times, practitioner and type when given)."""
    session = slot.session
    practitioner = practitioner or session.practitioner
    slot_type = slot_type or slot.slot_type
    starts_at, ends_at = times or (slot.starts_at, slot.ends_at)
    return Visit(
        starts_at=starts_at,
        ends_at=ends_at,
        zone=ZoneInfo(session.time_zone),
        practitioner=practitioner.name if practitioner else "",
        location=session.location.name,
        address=session.location.address,
        appointment_type=slot_type.name if chosen.name_appointment_type and slot_type else "",
        uid=uid,
        sequence=sequence,
    )


def stale_to_unknown(now: dt.datetime) -> int:
    """Messages left "sending" by a worker that died: their delivery is unknown (never re-sent by itself)."""
    # Across clinics: beat's sweep.
    return Message.objects.filter(
        status=Status.SENDING, claimed_at__lt=now - dt.timedelta(seconds=settings.SENDING_STALE_SECONDS)
    ).update(status=Status.UNKNOWN, detail="The sender stopped while sending: it may or may not have arrived.")


def tick(now: dt.datetime, enqueue: Callable[[list[int]], object]) -> dict[str, int]:
    """Beat's minute: stale claims become "delivery unknown", due reminders are recorded, and every waiting
    message whose moment has come is handed out in batches (`enqueue`, a nudge of send_messages)."""
    unknown = stale_to_unknown(now)
    found = reminders_find(now)
    ids = due_ids(now, settings.MESSAGES_PER_TICK)
    batch = settings.MESSAGE_BATCH
    for start in range(0, len(ids), batch):
        enqueue(ids[start : start + batch])
    return {"unknown": unknown, "reminders": found, "due": len(ids)}
