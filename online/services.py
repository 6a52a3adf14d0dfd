"""Writes of the public booking site: the email check (a one-time code) and the booking it makes, a patient's
own cancellation or move, reception's answer to a request, and the settings.

Every booking goes through scheduling's services (the same capacity and double-booking rules as reception):
an instant booking is appointment_book, a request is hold_take and later appointment_book with the hold or
hold_end. Nobody is looked up before the code is verified, so until then the site behaves the same for a
patient and a stranger.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from clinic.nudges import cache_quietly
from clinic.services import audit_record
from notifications import channels
from notifications.models import Kind
from notifications.recording import slot_news_record
from notifications.wording import DECLINE_REASONS
from online.models import BookingMode, EmailCheck, OnlineBooking, OnlineSettings, OnlineStatus, PractitionerOnline
from online.selectors import place_offered
from patients.selectors import patient_matching_online
from patients.services import patient_register_online
from scheduling.models import (
    Appointment,
    AppointmentSource,
    AppointmentStatus,
    CancelCategory,
    HoldKind,
    HoldOutcome,
    WaitlistOffer,
)
from scheduling.services.booking import (
    BookingError,
    BookingRequest,
    appointment_book,
    appointment_cancel,
    appointment_reschedule,
    hold_end,
    hold_take,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic, Membership, Practitioner
    from sessions_setup.models import SlotType

log = logging.getLogger(__name__)

CODE_MINUTES = 15
CODE_TRIES = 5
BY_PATIENT = "patient online"
MANAGE_SALT = "online.manage"
DONE_SALT = "online.done"
OFFER_SALT = "online.offer"


class CheckError(BookingError):
    """The code could not be checked (wrong, expired, used, too many tries); the message says what to do."""


def _code_hash(token: str, code: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"{token}:{code}".encode(), hashlib.sha256).hexdigest()


def check_start(
    *, clinic: Clinic, online: OnlineSettings, slot_type: SlotType, slot_public_id: str, details: dict[str, str]
) -> tuple[EmailCheck, str]:
    """Keep what the patient typed and send a one-time code to their email; (the check, the code). Nothing is
    booked and nobody is looked up. Refused (BookingError) when the time is no longer offered or the code
    cannot be sent."""
    now = timezone.now()
    if place_offered(clinic=clinic, online=online, slot_type=slot_type, slot_public_id=slot_public_id, now=now) is None:
        raise BookingError("Sorry, that time has just gone. Please choose another.")
    code = f"{secrets.randbelow(1_000_000):06d}"
    token = secrets.token_urlsafe(24)
    check = EmailCheck.objects.create(
        clinic=clinic,
        token=token,
        code_hash=_code_hash(token, code),
        email=details["email"],
        details={**details, "slot": str(slot_public_id), "slot_type": str(slot_type.public_id)},
        expires_at=now + dt.timedelta(minutes=CODE_MINUTES),
    )
    try:
        channels.send_email(
            channels.Email(
                to=details["email"],
                subject=f"Your code for booking at {clinic.name}: {code}",
                text=(
                    f"Your code is {code}.\n\nType it on the booking page to finish booking at {clinic.name}. It "
                    f"works for {CODE_MINUTES} minutes.\n\nIf you did not ask for it, you can ignore this email: "
                    "nothing is booked without the code.\n"
                ),
                from_name=clinic.name,
                reply_to="",
                unsubscribe_url="",
            )
        )
    except channels.Refused as error:
        log.warning("online booking code refused by the mail server")
        check.delete()
        raise BookingError("We could not send email to that address. Please check it.") from error
    except (channels.Trouble, channels.Unknown) as error:
        log.warning("online booking code not sent: %s", type(error).__name__)
        check.delete()
        raise BookingError("We could not send the code just now. Please try again in a minute.") from error
    return check, code


def check_verify(*, clinic: Clinic, online: OnlineSettings, token: str, code: str) -> OnlineBooking:
    """Check the code; when right, book (or request) the time the check was for. Every try takes one of the
    check's CODE_TRIES first, in one conditional write of its own, so tries sent all at once cannot get past the
    limit."""
    now = timezone.now()
    check = EmailCheck.objects.for_clinic(clinic).filter(token=token).first()
    if check is None or check.used_at is not None or check.expires_at <= now:
        raise CheckError("This code has expired or has been used. Please start again to get a new one.")
    counted = (
        EmailCheck.objects.for_clinic(clinic)
        .filter(pk=check.pk, attempts__lt=CODE_TRIES, used_at__isnull=True)
        .update(attempts=F("attempts") + 1)
    )
    if not counted:
        raise CheckError("Too many wrong codes. Please start again to get a new one.")
    if not hmac.compare_digest(check.code_hash, _code_hash(token, (code or "").strip())):
        left = (
            CODE_TRIES
            - EmailCheck.objects.for_clinic(clinic).filter(pk=check.pk).values_list("attempts", flat=True).get()
        )
        raise CheckError(
            f"That code is not right. {left} {'try' if left == 1 else 'tries'} left."
            if left > 0
            else "Too many wrong codes. Please start again to get a new one."
        )
    with transaction.atomic():
        # Used once, even by two tabs at the same moment: the second finds it used.
        if not EmailCheck.objects.for_clinic(clinic).filter(pk=check.pk, used_at__isnull=True).update(used_at=now):
            raise CheckError("This code has expired or has been used. Please start again to get a new one.")
        booking = _book(clinic=clinic, online=online, email=check.email, details=check.details, now=now)
        # What the patient typed now lives in their record and the booking: the check goes with the booking.
        EmailCheck.objects.for_clinic(clinic).filter(pk=check.pk).delete()
        return booking


CHECKS_KEPT = dt.timedelta(hours=1)


def checks_purge(now: dt.datetime | None = None) -> int:
    """Delete the email checks nobody finished (their details with them) an hour after their code expired."""
    cutoff = (now or timezone.now()) - CHECKS_KEPT
    deleted, _ = EmailCheck.objects.filter(expires_at__lt=cutoff).delete()
    return deleted


def _book(
    *, clinic: Clinic, online: OnlineSettings, email: str, details: dict[str, Any], now: dt.datetime
) -> OnlineBooking:
    from sessions_setup.models import SlotType

    slot_type = SlotType.objects.for_clinic(clinic).filter(public_id=details["slot_type"]).first()
    offered = (
        place_offered(clinic=clinic, online=online, slot_type=slot_type, slot_public_id=details["slot"], now=now)
        if slot_type is not None
        else None
    )
    if slot_type is None or offered is None:
        raise BookingError("Sorry, that time has just gone. Please choose another.")
    slot, mode = offered.slot, offered.mode
    date_of_birth = dt.date.fromisoformat(details["date_of_birth"])
    patient = patient_matching_online(
        clinic=clinic, date_of_birth=date_of_birth, first_name=details["first_name"], email=email
    ) or patient_register_online(
        clinic=clinic,
        first_name=details["first_name"],
        last_name=details["last_name"],
        date_of_birth=date_of_birth,
        email=email,
        mobile_phone=details.get("mobile", ""),
    )
    why = ""
    if patient.is_blocked and mode == BookingMode.INSTANT:
        mode, why = BookingMode.REQUEST, "Restricted record: never booked online without reception."
    booking = OnlineBooking(
        clinic=clinic, patient=patient, slot=slot, slot_type=slot_type, mode=mode, reason=details.get("reason", "")
    )
    booking.request_why = why
    if mode == BookingMode.INSTANT:
        booking.appointment = appointment_book(
            clinic=clinic,
            actor=None,
            membership=None,
            request=BookingRequest(slot=slot, patient=patient, slot_type=slot_type, source=AppointmentSource.ONLINE),
        )
        booking.status = OnlineStatus.BOOKED
        booking.save()
    else:
        if Appointment.objects.for_clinic(clinic).live().filter(slot=slot, patient=patient).exists():
            raise BookingError("You are already booked at this time.")
        if (
            OnlineBooking.objects.for_clinic(clinic)
            .filter(slot=slot, patient=patient, status=OnlineStatus.PENDING)
            .exists()
        ):
            raise BookingError("You have already asked for this time: the clinic will email you its answer.")
        booking.hold = hold_take(
            clinic=clinic,
            actor=None,
            slot=slot,
            kind=HoldKind.ONLINE_REQUEST,
            expires_at=now + dt.timedelta(hours=online.hold_hours),
        )
        booking.status = OnlineStatus.PENDING
        booking.save()
        slot_news_record(
            clinic_id=clinic.pk, patient=patient, slot=slot, ref=f"hold-{booking.hold.public_id}", kind=Kind.REQUESTED
        )
        _requests_changed(clinic.pk)
    audit_record(
        clinic=clinic,
        actor=None,
        action="online.booked" if mode == BookingMode.INSTANT else "online.requested",
        target=booking,
        detail={"by": BY_PATIENT, "patient": str(patient.public_id), "matched": not patient.registered_online},
    )
    return booking


# --- Signed links ----------------------------------------------------------------------------------------------


def manage_token(appointment: Appointment) -> str:
    """The signed, single-patient key of an appointment's manage page (it expires: ONLINE_LINK_DAYS)."""
    return signing.dumps(
        {"a": str(appointment.public_id), "p": str(appointment.patient.public_id)}, salt=MANAGE_SALT, compress=True
    )


def manage_url(clinic: Clinic, appointment: Appointment) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("online:manage", args=[clinic.slug, manage_token(appointment)])


def offer_token(offer: WaitlistOffer) -> str:
    """The signed key of a waitlist offer's page (it names the offer only; the offer itself runs out)."""
    return signing.dumps(str(offer.public_id), salt=OFFER_SALT)


def offer_url(offer: WaitlistOffer) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("online:offer", args=[offer.clinic.slug, offer_token(offer)])


def done_token(booking: OnlineBooking) -> str:
    return signing.dumps(str(booking.public_id), salt=DONE_SALT)


# --- The patient's own changes -------------------------------------------------------------------------------


def _may_change(online: OnlineSettings, appointment: Appointment, now: dt.datetime) -> None:
    if appointment.status != AppointmentStatus.BOOKED:
        raise BookingError("This appointment can no longer be changed online.")
    if appointment.starts_at - now < dt.timedelta(hours=online.change_hours):
        phone = f" on {online.phone}" if online.phone else ""
        raise BookingError(
            f"It is less than {online.change_hours} hours before your appointment: please call the clinic{phone}."
        )


def patient_cancel(*, clinic: Clinic, online: OnlineSettings, appointment: Appointment) -> Appointment:
    """The patient cancels their own appointment from the link in their email, inside the window."""
    _may_change(online, appointment, timezone.now())
    return appointment_cancel(
        clinic=clinic,
        actor=None,
        appointment=appointment,
        reason="Cancelled by the patient online",
        category=CancelCategory.PATIENT,
        by=BY_PATIENT,
    )


def patient_move(
    *, clinic: Clinic, online: OnlineSettings, appointment: Appointment, slot_public_id: str
) -> Appointment:
    """The patient moves their appointment to another free time of the same type (of a practitioner who books
    online at once), inside the window."""
    now = timezone.now()
    _may_change(online, appointment, now)
    if appointment.patient.is_blocked:
        raise BookingError("Please call the clinic to move this appointment.")
    slot_type = appointment.slot_type
    offered = (
        place_offered(clinic=clinic, online=online, slot_type=slot_type, slot_public_id=slot_public_id, now=now)
        if slot_type is not None
        else None
    )
    if offered is None:
        raise BookingError("Sorry, that time has just gone. Please choose another.")
    if offered.mode != BookingMode.INSTANT:
        raise BookingError("That time needs the clinic's approval: please call to move to it.")
    return appointment_reschedule(
        clinic=clinic, actor=None, membership=None, appointment=appointment, slot=offered.slot, by=BY_PATIENT
    )


# --- Reception's answers -------------------------------------------------------------------------------------


def _pending(clinic: Clinic, booking: OnlineBooking) -> OnlineBooking:
    locked = (
        OnlineBooking.objects.for_clinic(clinic)
        .select_for_update(of=("self",))
        .select_related("hold")
        .get(pk=booking.pk)
    )
    if locked.status != OnlineStatus.PENDING:
        raise BookingError(f"This request has already been answered ({locked.get_status_display().lower()}).")
    return locked


def request_accept(*, clinic: Clinic, actor: User, membership: Membership, booking: OnlineBooking) -> OnlineBooking:
    """Accept an online request: its held place becomes the appointment, and the patient gets the confirmation."""
    with transaction.atomic():
        locked = _pending(clinic, booking)
        locked.appointment = appointment_book(
            clinic=clinic,
            actor=actor,
            membership=membership,
            request=BookingRequest(
                slot=locked.slot,
                patient=locked.patient,
                slot_type=locked.slot_type,
                source=AppointmentSource.ONLINE,
                hold=locked.hold,
            ),
        )
        locked.status = OnlineStatus.ACCEPTED
        locked.decided_by = actor
        locked.decided_at = timezone.now()
        locked.save(update_fields=["appointment", "status", "decided_by", "decided_at"])
        audit_record(clinic=clinic, actor=actor, action="online.accepted", target=locked)
        _requests_changed(clinic.pk)
    return locked


def request_decline(*, clinic: Clinic, actor: User, booking: OnlineBooking, reason: str) -> OnlineBooking:
    """Decline an online request with a reason the patient reads (one of DECLINE_REASONS): the held place is free
    again and the patient is told."""
    if reason not in DECLINE_REASONS or reason == "expired":
        raise BookingError("Choose a reason to give the patient.")
    with transaction.atomic():
        locked = _pending(clinic, booking)
        locked.status = OnlineStatus.DECLINED
        locked.decline_reason = reason
        locked.decided_by = actor
        locked.decided_at = timezone.now()
        locked.save(update_fields=["status", "decline_reason", "decided_by", "decided_at"])
        if locked.hold is not None:
            hold_end(clinic=clinic, actor=actor, hold=locked.hold, outcome=HoldOutcome.DECLINED)
        _tell_declined(locked, reason)
        audit_record(clinic=clinic, actor=actor, action="online.declined", target=locked, detail={"reason": reason})
        _requests_changed(clinic.pk)
    return locked


def request_ended(*, clinic_id: int, hold_id: int, outcome: str) -> None:
    """A request's hold ended without reception's answer, inside that transaction: it ran out (scheduling's sweep),
    or a change to the rota took the time away (withdrawn: the patient is told the time is no longer there)."""
    booking = (
        OnlineBooking.objects.for_clinic(clinic_id)
        .select_for_update(of=("self",))
        .select_related("hold", "patient", "slot")
        .filter(hold_id=hold_id, status=OnlineStatus.PENDING)
        .first()
    )
    if booking is None:
        return
    expired = outcome == HoldOutcome.EXPIRED
    booking.status = OnlineStatus.EXPIRED if expired else OnlineStatus.DECLINED
    booking.decline_reason = "expired" if expired else "taken"
    booking.decided_at = timezone.now()
    booking.save(update_fields=["status", "decline_reason", "decided_at"])
    _tell_declined(booking, booking.decline_reason)
    _requests_changed(clinic_id)


def _tell_declined(booking: OnlineBooking, reason: str) -> None:
    assert booking.hold is not None
    slot_news_record(
        clinic_id=booking.clinic_id,
        patient=booking.patient,
        slot=booking.slot,
        ref=f"hold-{booking.hold.public_id}",
        kind=Kind.DECLINED,
        category=reason,
    )


REQUESTS_VERSION = "online-requests-version:{}"


def _requests_changed(clinic_id: int) -> None:
    """The header's count of requests is cached per clinic under a version; once this change commits, the
    version moves on, so a count read before the commit (and stored after it) is never read again."""
    from django.core.cache import cache

    def bump() -> None:
        key = REQUESTS_VERSION.format(clinic_id)
        if not cache.add(key, 1, timeout=None):
            cache.incr(key)

    transaction.on_commit(lambda: cache_quietly(bump, None))


# --- Settings ------------------------------------------------------------------------------------------------


def practitioner_online_set(
    *, clinic: Clinic, actor: User, practitioner: Practitioner, accepts: bool, mode: str
) -> PractitionerOnline:
    if mode not in BookingMode.values:
        raise BookingError("Choose instant bookings or requests.")
    with transaction.atomic():
        row, _ = PractitionerOnline.objects.for_clinic(clinic).update_or_create(
            clinic=clinic, practitioner=practitioner, defaults={"accepts": accepts, "mode": mode}
        )
        audit_record(
            clinic=clinic,
            actor=actor,
            action="online.practitioner",
            target=practitioner,
            detail={"accepts": accepts, "mode": mode},
        )
    return row
