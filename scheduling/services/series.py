"""Writes of a patient's recurring series: book every matched occurrence at once (drafts for the rest),
place a draft later, and cancel one occurrence, it and the following ones, or the whole series."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils import timezone

from clinic.services import audit_record
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    CancelCategory,
    DraftOccurrence,
    Series,
    Slot,
)
from scheduling.recurrence import RecurrenceRule
from scheduling.services.booking import (
    BookingError,
    BookingRequest,
    appointment_book,
    appointment_cancel,
    booking_like,
    may_book,
)
from scheduling.signals import PatientNews, tell_patient

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic, Membership, Practitioner


@dataclass(frozen=True)
class PlannedOccurrence:
    """One occurrence the user kept in the preview: the slot it takes, or None to save it as a draft."""

    starts_at: dt.datetime
    slot: Slot | None


@dataclass(frozen=True)
class SeriesRequest:
    booking: BookingRequest  # what every occurrence is booked with; its slot is the one the flow began from
    practitioner: Practitioner
    rule: RecurrenceRule
    time_zone: str  # the wall clock of the rule
    plan: Sequence[PlannedOccurrence]


class SeriesBookingError(BookingError):
    """An occurrence that could not be booked, so nothing of the series was; `starts_at` names its card."""

    def __init__(self, message: str, starts_at: dt.datetime) -> None:
        super().__init__(message)
        self.starts_at = starts_at


def series_book(*, clinic: Clinic, actor: User, membership: Membership, request: SeriesRequest) -> Series:
    """Book every planned occurrence that has a slot and keep the others as drafts: all or nothing."""
    booking = request.booking
    slot_type = booking.slot_type or booking.slot.slot_type
    if slot_type is None:
        raise BookingError("Choose the appointment type of the series.")
    if not request.plan:
        raise BookingError("Every occurrence was removed: there is nothing to book.")
    grant = may_book(membership, booking.patient)
    request.rule.check()
    zone = ZoneInfo(request.time_zone)
    to_book = sorted((o for o in request.plan if o.slot is not None), key=lambda o: o.starts_at)
    with transaction.atomic():
        if to_book:
            # Every slot's lock first, in time order (as every series takes them): a booking of one of these
            # slots then never waits for us while we wait for it.
            list(
                Slot.objects.for_clinic(clinic)
                .select_for_update(no_key=connection.features.has_select_for_no_key_update)
                .filter(pk__in=[o.slot.pk for o in to_book if o.slot is not None])
                .order_by("starts_at", "id")
                .values_list("pk", flat=True)
            )
        rule = request.rule
        series = Series.objects.create(
            clinic=clinic,
            patient=booking.patient,
            practitioner=request.practitioner,
            slot_type=slot_type,
            frequency=rule.frequency,
            interval=rule.interval,
            weekdays=",".join(str(d) for d in rule.weekdays),
            month_day=rule.month_day,
            nth=rule.nth_weekday[0] if rule.nth_weekday else None,
            nth_weekday=rule.nth_weekday[1] if rule.nth_weekday else None,
            count=rule.count,
            until=rule.until,
            start_date=rule.start,
            start_time=rule.time,
            time_zone=request.time_zone,
            department=booking.department,
            coverage=None if booking.self_pay else booking.coverage,
            secondary_coverage=None if booking.self_pay else booking.secondary_coverage,
            self_pay=booking.self_pay,
            created_by=actor,
        )
        resources = [r for r in booking.resources if r.pk != request.practitioner.pk]
        if resources:
            series.resources.set(resources)
        booked: list[int] = []
        for occurrence in to_book:
            assert occurrence.slot is not None
            try:
                booked.append(
                    appointment_book(
                        clinic=clinic,
                        actor=actor,
                        membership=membership,
                        request=replace(booking, slot=occurrence.slot, slot_type=slot_type, series=series),
                        tell=False,
                    ).pk
                )
            except BookingError as error:
                when = occurrence.starts_at.astimezone(zone)
                raise SeriesBookingError(
                    f"{when:%a %-d %b %Y, %H:%M}: {error.messages[0]} Nothing of the series was booked.",
                    occurrence.starts_at,
                ) from error
        drafts = [o for o in request.plan if o.slot is None]
        DraftOccurrence.objects.bulk_create(
            DraftOccurrence(clinic=clinic, series=series, starts_at=o.starts_at) for o in drafts
        )
        audit_record(
            clinic=clinic,
            actor=actor,
            action="series.booked",
            target=series,
            detail={
                "patient": str(booking.patient.public_id),
                "booked": len(to_book),
                "drafts": len(drafts),
                **({"break_glass": grant} if grant else {}),
            },
        )
        # One confirmation listing every booked date.
        tell_patient(clinic.pk, PatientNews.SERIES, booked)
    return series


def draft_place(
    *, clinic: Clinic, actor: User, membership: Membership, draft: DraftOccurrence, slot: Slot
) -> Appointment:
    """Place a draft into a slot of the series' appointment type: it becomes a booked appointment."""
    with transaction.atomic():
        locked = DraftOccurrence.objects.for_clinic(clinic).select_for_update().get(pk=draft.pk)
        if not locked.is_open:
            raise BookingError("This draft has already been placed or cancelled.")
        series = Series.objects.for_clinic(clinic).select_related("patient").get(pk=locked.series_id)
        if slot.slot_type_id != series.slot_type_id:
            raise BookingError("Choose a slot of the appointment type of the series.")
        appointment = appointment_book(
            clinic=clinic,
            actor=actor,
            membership=membership,
            request=booking_like(series, slot=slot, slot_type=series.slot_type),
        )
        locked.appointment = appointment
        locked.save(update_fields=["appointment"])
        audit_record(
            clinic=clinic,
            actor=actor,
            action="series.draft_placed",
            target=appointment,
            detail={"draft": str(locked.public_id)},
        )
    return appointment


def draft_cancel(*, clinic: Clinic, actor: User, draft: DraftOccurrence) -> None:
    """Give up a draft occurrence (it is kept, marked cancelled, with the series)."""
    with transaction.atomic():
        locked = DraftOccurrence.objects.for_clinic(clinic).select_for_update().get(pk=draft.pk)
        if not locked.is_open:
            raise BookingError("This draft has already been placed or cancelled.")
        locked.cancelled_at = timezone.now()
        locked.save(update_fields=["cancelled_at"])
        audit_record(clinic=clinic, actor=actor, action="series.draft_cancelled", target=locked, detail={})


class CancelScope:
    THIS = "this"
    FOLLOWING = "following"
    ALL = "all"
    CHOICES = (
        (THIS, "This appointment only"),
        (FOLLOWING, "This and the following ones"),
        (ALL, "The whole series"),
    )


@dataclass(frozen=True)
class SeriesCancelled:
    appointments: int  # appointments cancelled
    drafts: int  # drafts given up
    kept: int  # appointments of the scope left alone because they have begun (arrived, completed...)


def series_cancel(
    *,
    clinic: Clinic,
    actor: User,
    appointment: Appointment,
    scope: str,
    reason: str,
    now: dt.datetime,
    category: str = CancelCategory.OTHER,
) -> SeriesCancelled:
    """Cancel an occurrence, it and the following ones, or the whole series (from now on): one transaction.

    Only appointments still "booked" are cancelled; those under way or done keep their history.
    """
    if scope == CancelScope.THIS or appointment.series_id is None:
        appointment_cancel(clinic=clinic, actor=actor, appointment=appointment, reason=reason, category=category)
        return SeriesCancelled(appointments=1, drafts=0, kept=0)
    if scope not in (CancelScope.FOLLOWING, CancelScope.ALL):
        raise BookingError("Choose which appointments of the series to cancel.")
    if not reason.strip():
        raise BookingError("Give a reason for the cancellation.")
    since = appointment.starts_at if scope == CancelScope.FOLLOWING else now
    with transaction.atomic():
        series = Series.objects.for_clinic(clinic).select_for_update().get(pk=appointment.series_id)
        members = list(
            Appointment.objects.for_clinic(clinic)
            .live()
            .filter(series=series, starts_at__gte=since)
            .order_by("starts_at", "id")
        )
        cancelled: list[int] = []
        kept = 0
        for member in members:
            if member.status == AppointmentStatus.BOOKED:
                appointment_cancel(
                    clinic=clinic, actor=actor, appointment=member, reason=reason, category=category, tell=False
                )
                cancelled.append(member.pk)
            else:
                kept += 1
        drafts = DraftOccurrence.objects.for_clinic(clinic).open().filter(series=series, starts_at__gte=since)
        if scope == CancelScope.ALL:
            drafts = DraftOccurrence.objects.for_clinic(clinic).open().filter(series=series)
            series.cancelled_at = now
            series.save(update_fields=["cancelled_at"])
        given_up = drafts.update(cancelled_at=now)
        audit_record(
            clinic=clinic,
            actor=actor,
            action="series.cancelled",
            target=series,
            detail={"scope": scope, "appointments": len(cancelled), "drafts": given_up},
        )
        # One message listing every cancelled date.
        tell_patient(clinic.pk, PatientNews.CANCELLED, cancelled, category=category)
    return SeriesCancelled(appointments=len(cancelled), drafts=given_up, kept=kept)


def series_plan_from_review(
    *,
    occurrences: Sequence[tuple[str, dt.datetime]],
    reviewed: Mapping[str, str],
    slots: Mapping[str, Slot],
    drafts_ok: bool,
) -> list[PlannedOccurrence]:
    """What Book Appointment books: each kept occurrence (its key, its instant) in the slot the review named for
    it (``reviewed``: key to slot public id; ``slots``: those slots by public id), or a draft where it named none.

    Exactly what was reviewed is booked, even where the calendar changed since; a named slot that no longer
    fits means the preview is out of date. Occurrences without a slot need "Continue anyway" (``drafts_ok``).
    """
    plan = []
    for key, starts_at in occurrences:
        chosen = slots.get(reviewed.get(key, ""))
        if key in reviewed and (chosen is None or chosen.starts_at != starts_at):
            raise BookingError("The preview is out of date: preview the recurrence again.")
        plan.append(PlannedOccurrence(starts_at=starts_at, slot=chosen))
    if not drafts_ok and any(p.slot is None for p in plan):
        raise BookingError("Some occurrences have no session: remove them or continue anyway.")
    return plan
