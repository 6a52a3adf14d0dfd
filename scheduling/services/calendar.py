"""Writes of the calendar: other events, office hours, online-booking availability and its date
overrides, and each member's remembered calendar filters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from django.core.exceptions import ValidationError
from django.db import transaction

from clinic.models import Membership, Practitioner
from clinic.services import audit_record
from scheduling.hours import TimeRange, ranges_to_json, weekly_to_json
from scheduling.models import (
    Availability,
    AvailabilityOverride,
    CalendarPreference,
    OfficeHours,
    OtherEvent,
)
from scheduling.signals import announce_calendar_change

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic


@dataclass(frozen=True)
class EventData:
    practitioner: Practitioner
    title: str
    all_day: bool
    busy: bool
    notes: str
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    first_date: dt.date | None = None
    last_date: dt.date | None = None


def other_event_save(*, clinic: Clinic, actor: User, data: EventData, event: OtherEvent | None = None) -> OtherEvent:
    """Create or change an other event. A timed event keeps UTC instants, an all-day one dates."""
    creating = event is None
    previous_practitioner = None if event is None else event.practitioner_id
    event = event or OtherEvent(clinic=clinic, created_by=actor)
    event.practitioner = data.practitioner
    event.title = data.title
    event.all_day = data.all_day
    event.busy = data.busy
    event.notes = data.notes
    if data.all_day:
        event.starts_at = event.ends_at = None
        event.first_date, event.last_date = data.first_date, data.last_date
    else:
        event.first_date = event.last_date = None
        event.starts_at, event.ends_at = data.starts_at, data.ends_at
    with transaction.atomic():
        event.save()
        audit_record(
            clinic=clinic,
            actor=actor,
            action="event.created" if creating else "event.changed",
            target=event,
            detail={"practitioner": str(data.practitioner.public_id), "all_day": data.all_day, "busy": data.busy},
        )
        announce_calendar_change([previous_practitioner, event.practitioner_id], events=[event.pk])
    return event


def other_event_delete(*, clinic: Clinic, actor: User, event: OtherEvent) -> None:
    with transaction.atomic():
        audit_record(clinic=clinic, actor=actor, action="event.deleted", target=event)
        announce_calendar_change([event.practitioner_id], events=[event.pk])
        event.delete()


WeeklyHours = TypeVar("WeeklyHours", OfficeHours, Availability)


def weekly_hours_save(
    model: type[WeeklyHours],
    *,
    action: str,
    clinic: Clinic,
    actor: User,
    practitioner: Practitioner | None,
    time_zone: str,
    weekly: Mapping[int, Sequence[TimeRange]],
) -> WeeklyHours:
    """Create or replace the weekly hours row (office hours or availability) of a practitioner."""
    with transaction.atomic():
        row, _ = (
            model.objects.for_clinic(clinic)
            .select_for_update()
            .get_or_create(clinic=clinic, practitioner=practitioner, defaults={"time_zone": time_zone})
        )
        row.time_zone = time_zone
        row.weekly = weekly_to_json(weekly)
        row.save()
        audit_record(
            clinic=clinic,
            actor=actor,
            action=action,
            target=row,
            detail={"practitioner": str(practitioner.public_id) if practitioner else "practice default"},
        )
    return row


def office_hours_save(
    *,
    clinic: Clinic,
    actor: User,
    practitioner: Practitioner | None,
    time_zone: str,
    weekly: Mapping[int, Sequence[TimeRange]],
) -> OfficeHours:
    """Set a practitioner's office hours, or the practice default (practitioner None)."""
    return weekly_hours_save(
        OfficeHours,
        action="office_hours.saved",
        clinic=clinic,
        actor=actor,
        practitioner=practitioner,
        time_zone=time_zone,
        weekly=weekly,
    )


def office_hours_clear(*, clinic: Clinic, actor: User, practitioner: Practitioner | None) -> None:
    """Remove office hours: a practitioner falls back to the practice default, the practice to none."""
    with transaction.atomic():
        for hours in OfficeHours.objects.for_clinic(clinic).filter(practitioner=practitioner):
            audit_record(clinic=clinic, actor=actor, action="office_hours.cleared", target=hours)
            hours.delete()


def availability_save(
    *,
    clinic: Clinic,
    actor: User,
    practitioner: Practitioner,
    time_zone: str,
    weekly: Mapping[int, Sequence[TimeRange]],
) -> Availability:
    """Set a practitioner's weekly online-booking windows."""
    return weekly_hours_save(
        Availability,
        action="availability.saved",
        clinic=clinic,
        actor=actor,
        practitioner=practitioner,
        time_zone=time_zone,
        weekly=weekly,
    )


def availability_overrides_set(
    *,
    clinic: Clinic,
    actor: User,
    practitioner: Practitioner,
    dates: Sequence[dt.date],
    hours: Sequence[TimeRange],
) -> list[AvailabilityOverride]:
    """Give each date these hours instead of the weekly windows (no hours: unavailable that date).

    Refused until the practitioner has weekly availability: an override changes the weekly windows of a date.
    """
    stored = ranges_to_json(hours)
    with transaction.atomic():
        if not Availability.objects.for_clinic(clinic).filter(practitioner=practitioner).exists():
            raise ValidationError("Set the weekly availability first.")
        overrides = []
        for date in sorted(set(dates)):
            override, _ = AvailabilityOverride.objects.for_clinic(clinic).update_or_create(
                clinic=clinic, practitioner=practitioner, date=date, defaults={"hours": stored}
            )
            overrides.append(override)
        audit_record(
            clinic=clinic,
            actor=actor,
            action="availability.overrides_set",
            target=practitioner,
            detail={"dates": [d.isoformat() for d in sorted(set(dates))], "hours": stored},
        )
    return overrides


def availability_override_delete(*, clinic: Clinic, actor: User, override: AvailabilityOverride) -> None:
    with transaction.atomic():
        audit_record(
            clinic=clinic,
            actor=actor,
            action="availability.override_removed",
            target=override,
            detail={"date": override.date.isoformat()},
        )
        override.delete()


def calendar_preference_save(
    *, clinic: Clinic, membership: Membership, practitioners: Sequence[str], locations: Sequence[str]
) -> CalendarPreference:
    preference, _ = CalendarPreference.objects.for_clinic(clinic).update_or_create(
        clinic=clinic,
        membership=membership,
        defaults={"practitioners": list(practitioners), "locations": list(locations)},
    )
    return preference
