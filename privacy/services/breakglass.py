"""Writes of break-glass: a member breaks glass for one blocked patient (the grant, its audit and the officers'
alerts, in one transaction); the alerts are emailed after commit, each at most once; an officer closes a review.

The grant is read by patients.access and scheduling's booking through patients.signals.blocked_access_query (answered
in privacy.receivers): patients and scheduling never import privacy.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Sequence
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from clinic.nudges import cache_quietly, nudge
from clinic.services import audit_record
from patients.models import may_see_blocked
from privacy.models import BREAK_GLASS_MINUTES, AlertStatus, BreakGlass, BreakGlassAlert, BreakGlassCategory
from privacy.selectors import breakglass as selectors

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic, Membership
    from patients.models import Patient

log = logging.getLogger(__name__)

ALERT_MAX_ATTEMPTS = 5
# The header's count of open reviews is cached per clinic under this version (moved by every change).
REVIEWS_VERSION = "breakglass-version:{}"


def reviews_changed(clinic: Clinic) -> None:
    """After commit: the header's open-review count is read afresh."""
    key = REVIEWS_VERSION.format(clinic.public_id)
    transaction.on_commit(lambda: cache_quietly(lambda: cache.set(key, timezone.now().timestamp(), None), None))


def break_glass(
    *,
    clinic: Clinic,
    actor: User,
    membership: Membership,
    patient: Patient,
    category: str,
    reason: str,
    now: dt.datetime | None = None,
) -> BreakGlass:
    """Let this member in to this blocked patient for BREAK_GLASS_MINUTES, with their reason. One transaction: the
    grant, its audit ("privacy.break_glass"; the reason stays on the grant, out of the audit) and one alert row per
    privacy officer, emailed after commit."""
    if not patient.is_blocked or may_see_blocked(membership):
        raise ValidationError("This record is open to you without breaking glass.")
    if category not in BreakGlassCategory.values:
        raise ValidationError("Choose why you need the record.")
    now = now or timezone.now()
    with transaction.atomic():
        use = BreakGlass.objects.create(
            clinic=clinic,
            membership=membership,
            patient=patient,
            category=category,
            reason=reason.strip(),
            started_at=now,
            expires_at=now + dt.timedelta(minutes=BREAK_GLASS_MINUTES),
        )
        audit_record(
            clinic=clinic,
            actor=actor,
            action="privacy.break_glass",
            target=patient,
            detail={"break_glass": str(use.public_id), "category": category, "minutes": BREAK_GLASS_MINUTES},
        )
        officers = selectors.officers_to_alert(clinic=clinic, breaker=membership)
        alerts = BreakGlassAlert.objects.bulk_create(
            BreakGlassAlert(clinic=clinic, use=use, officer=officer, due_at=now) for officer in officers
        )
        if alerts:
            from privacy.tasks import send_break_glass_alerts

            nudge(send_break_glass_alerts, [alert.pk for alert in alerts])
        reviews_changed(clinic)
    return use


def review_close(
    *, clinic: Clinic, actor: User, membership: Membership, use: BreakGlass, outcome: str, note: str
) -> BreakGlass:
    """Close a use's review with its outcome and a note, audited. An officer never reviews their own use."""
    if use.membership_id == membership.pk:
        raise ValidationError("Another privacy officer must review your own use of break-glass.")
    with transaction.atomic():
        locked = BreakGlass.objects.for_clinic(clinic).select_for_update().get(pk=use.pk)
        if locked.reviewed_at is not None:
            raise ValidationError("This use has been reviewed already.")
        locked.reviewed_at, locked.reviewed_by = timezone.now(), actor
        locked.outcome, locked.review_note = outcome, note.strip()
        locked.save(update_fields=["reviewed_at", "reviewed_by", "outcome", "review_note"])
        audit_record(
            clinic=clinic,
            actor=actor,
            action="privacy.break_glass_reviewed",
            target=locked,
            detail={"outcome": outcome, "patient": str(use.patient.public_id)},
        )
        reviews_changed(clinic)
    return locked


# --- The alerts: claimed, sent, marked -------------------------------------------------------------------


def _claim(pk: int, now: dt.datetime) -> tuple[int, int] | None:
    """Take one alert for sending (waiting → sending) in a short transaction; None if another send took it first."""
    with transaction.atomic():
        # Across clinics: a task claiming the row it was given; all after the claim goes through for_clinic.
        mine = (
            BreakGlassAlert.objects.filter(pk=pk, status=AlertStatus.WAITING, due_at__lte=now)
            .select_for_update(skip_locked=True)
            .values_list("pk", "clinic_id")
            .first()
        )
        if mine is None:
            return None
        BreakGlassAlert.objects.for_clinic(mine[1]).filter(pk=pk).update(
            status=AlertStatus.SENDING, attempts=F("attempts") + 1
        )
    return mine


def alert_words(alert: BreakGlassAlert) -> tuple[str, str]:
    """The subject and text of an alert: who broke glass, when, why (the category) and the review's address. Not
    the patient, nor the reason's words: email leaves the clinic's systems, the review page shows them."""
    use = alert.use
    clinic = alert.clinic
    when = use.started_at.astimezone(ZoneInfo(clinic.time_zone))
    who = use.membership.user.get_full_name() or use.membership.user.email
    link = settings.SITE_URL.rstrip("/") + reverse("privacy:review", args=[use.public_id])
    subject = f"Break-glass access at {clinic.name}: review needed"
    text = (
        f"{who} broke glass to open a restricted patient record at {clinic.name}.\n\n"
        f"When: {when:%a %-d %b %Y, %H:%M} ({when.tzname()})\n"
        f"Why: {use.get_category_display()}\n"
        f"Access lasts until {use.expires_at.astimezone(when.tzinfo):%H:%M}.\n\n"
        f"Review it (privacy officers; you will be asked to sign in): {link}\n"
    )
    return subject, text


def _send_one(pk: int, clinic_id: int, now: dt.datetime) -> str:
    alert = (
        BreakGlassAlert.objects.for_clinic(clinic_id)
        .select_related("clinic", "use__membership__user", "officer__user")
        .get(pk=pk)
    )
    mine = BreakGlassAlert.objects.for_clinic(clinic_id).filter(pk=pk, status=AlertStatus.SENDING)
    try:
        subject, text = alert_words(alert)
        send_mail(subject, text, None, [alert.officer.user.email])
    except (smtplib.SMTPConnectError, smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, OSError) as error:
        # Refused before the message was handed over: nothing arrived, so it may be tried again.
        if alert.attempts >= ALERT_MAX_ATTEMPTS:
            mine.update(status=AlertStatus.FAILED, detail=f"Gave up after {alert.attempts} tries.")
            return AlertStatus.FAILED
        wait = dt.timedelta(minutes=2 ** (alert.attempts - 1))
        mine.update(status=AlertStatus.WAITING, due_at=now + wait, detail=f"Will try again ({type(error).__name__}).")
        return AlertStatus.WAITING
    except Exception as error:  # noqa: BLE001 - it may have reached the server: never sent again by itself
        log.warning("break-glass alert %s: the send stopped (%s)", alert.public_id, type(error).__name__)
        mine.update(
            status=AlertStatus.FAILED, detail=f"The send stopped ({type(error).__name__}); it may have arrived."
        )
        return AlertStatus.FAILED
    mine.update(status=AlertStatus.SENT, sent_at=timezone.now(), detail="")
    return AlertStatus.SENT


def alerts_send(ids: Sequence[int], now: dt.datetime | None = None) -> dict[str, int]:
    """Claim, send and mark these alerts one at a time; an alert another send took, or already sent, is skipped."""
    counts: dict[str, int] = {}
    for pk in ids:
        moment = now or timezone.now()
        claimed = _claim(pk, moment)
        if claimed is not None:
            status = _send_one(*claimed, moment)
            counts[status] = counts.get(status, 0) + 1
    return counts
