"""Reads of break-glass: the grant check, the officers to alert, the review list and one use with what was done."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clinic.models import AuditEvent, Membership
from privacy.models import AlertStatus, BreakGlass, BreakGlassAlert

if TYPE_CHECKING:
    from clinic.models import Clinic
    from patients.models import Patient

LIST_LIMIT = 100
# What the audit records of a member's actions under a grant (patients.services, scheduling.services.booking):
# each carries the grant's id in detail["break_glass"].
ACTIONS = {"patient.blocked_viewed": "Opened", "appointment.booked": "Booked"}


def live_grant(*, membership: Membership, patient: Patient, now: dt.datetime) -> BreakGlass | None:
    """This member's grant for this patient that has not expired (one query)."""
    return (
        BreakGlass.objects.for_clinic(patient.clinic_id)
        .filter(membership=membership, patient=patient, expires_at__gt=now)
        .order_by("-expires_at")
        .first()
    )


def officers_to_alert(*, clinic: Clinic, breaker: Membership) -> list[Membership]:
    """The clinic's active privacy officers with an email address, but not the member who broke glass."""
    return list(
        Membership.objects.for_clinic(clinic)
        .filter(perm_privacy_officer=True, is_active=True, user__is_active=True)
        .exclude(user__email="")
        .exclude(pk=breaker.pk)
        .select_related("user")
        .order_by("pk")
    )


def open_reviews_count(*, clinic_id: int) -> int:
    return BreakGlass.objects.for_clinic(clinic_id).filter(reviewed_at__isnull=True).count()


@dataclass
class Done:
    """What the member did under a grant, from the audit."""

    what: str
    view: str
    at: dt.datetime


@dataclass
class ReviewRow:
    use: BreakGlass
    done: list[Done] = field(default_factory=list)

    @property
    def opened(self) -> int:
        return sum(1 for d in self.done if d.what == "Opened")

    @property
    def booked(self) -> int:
        return sum(1 for d in self.done if d.what == "Booked")


def _done_under(clinic: Clinic, uses: list[BreakGlass]) -> dict[str, list[Done]]:
    """What was done under these grants, by grant id (one query)."""
    if not uses:
        return {}
    ids = [str(use.public_id) for use in uses]
    events = (
        AuditEvent.objects.for_clinic(clinic)
        .filter(
            action__in=list(ACTIONS),
            created_at__gte=min(use.started_at for use in uses),
            detail__break_glass__in=ids,
        )
        .order_by("created_at", "id")
        .values_list("action", "detail", "created_at")
    )
    found: dict[str, list[Done]] = defaultdict(list)
    for action, detail, at in events:
        found[str(detail.get("break_glass"))].append(Done(ACTIONS[action], str(detail.get("view", "")), at))
    return found


def reviews(*, clinic: Clinic, state: str) -> list[ReviewRow]:
    """The uses of break-glass, open ones (oldest first: the queue) or closed ones (latest first), each with what
    was done under it (two queries, whatever the number)."""
    uses = BreakGlass.objects.for_clinic(clinic).select_related("membership__user", "patient", "reviewed_by")
    if state == "closed":
        uses = uses.filter(reviewed_at__isnull=False).order_by("-reviewed_at", "-id")
    else:
        uses = uses.filter(reviewed_at__isnull=True).order_by("started_at", "id")
    found = list(uses[:LIST_LIMIT])
    done = _done_under(clinic, found)
    return [ReviewRow(use, done.get(str(use.public_id), [])) for use in found]


@dataclass
class ReviewDetail:
    row: ReviewRow
    alerts: list[BreakGlassAlert]

    @property
    def alerts_sent(self) -> int:
        return sum(1 for alert in self.alerts if alert.status == AlertStatus.SENT)


def review_detail(*, clinic: Clinic, use: BreakGlass) -> ReviewDetail:
    alerts = list(BreakGlassAlert.objects.for_clinic(clinic).filter(use=use).select_related("officer__user"))
    return ReviewDetail(ReviewRow(use, _done_under(clinic, [use]).get(str(use.public_id), [])), alerts)


def alerts_waiting(now: dt.datetime, limit: int = 500) -> list[int]:
    """Alerts waiting to be sent whose moment has come, in every clinic (beat's sweep)."""
    # Across clinics: beat's sweep (the tenancy test's allow-list names it).
    return list(
        BreakGlassAlert.objects.filter(status=AlertStatus.WAITING, due_at__lte=now)
        .order_by("due_at")
        .values_list("pk", flat=True)[:limit]
    )
