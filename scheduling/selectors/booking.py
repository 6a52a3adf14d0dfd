"""Reads of booking: a slot and who is in it, the next available places, the places open to online booking, the
appointments report and a patient's appointments."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from clinic.models import Location
from scheduling.hours import (
    local_day,
)
from scheduling.models import (
    Appointment,
    AppointmentStatus,
    OtherEvent,
    Session,
    SessionOut,
    Slot,
)
from scheduling.selectors.calendar import open_for_online_booking
from sessions_setup.models import ReleaseRule, ReportingCategory, SlotType

if TYPE_CHECKING:
    from clinic.models import Clinic, Practitioner
    from patients.models import Patient


def slot_details(*, clinic: Clinic, slot_public_id: Any) -> Slot | None:
    """The slot with its session, practitioner, location and type; None when there is none (or no valid id)."""
    try:
        UUID(str(slot_public_id))
    except ValueError:
        return None
    return (
        Slot.objects.for_clinic(clinic)
        .select_related("session", "session__practitioner", "session__location", "slot_type")
        .filter(public_id=slot_public_id)
        .first()
    )


def slot_appointments(*, clinic: Clinic, slot: Slot) -> QuerySet[Appointment]:
    return (
        Appointment.objects.for_clinic(clinic)
        .live()
        .filter(slot=slot)
        .select_related("patient", "slot_type")
        .order_by("created_at", "id")
    )


NEXT_AVAILABLE_LIMIT = 10


def next_available(
    *,
    clinic: Clinic,
    now: dt.datetime,
    slot_type: SlotType | None = None,
    practitioner: Practitioner | None = None,
    location: Location | None = None,
    after: dt.datetime | None = None,
    limit: int = NEXT_AVAILABLE_LIMIT,
    not_booked: Patient | None = None,
) -> list[Slot]:
    """The next free places from `after` (default now), soonest first, honouring each slot type's release
    rule: book-on-the-day slots only on the day, "N days before" slots only from N days before.

    "The day" is the slot's, on its location's clock (the session keeps that zone): at 23:30 in London a
    Chicago slot's day is still today there.

    Three queries: the clinic's slot types and its locations' zones (to turn release rules into time limits
    per zone), then the slots.
    """
    kinds = list(
        SlotType.objects.for_clinic(clinic).filter(bookable=True).only("pk", "release_rule", "release_days_before")
    )
    released = released_of_types(clinic=clinic, kinds=kinds, now=now)
    if not released:
        return []
    slots = Slot.objects.for_clinic(clinic).filter(
        released,
        bookable=True,
        booked_count__lt=F("capacity"),
        starts_at__gte=max(after or now, now),
        # Says nothing new (a session's location is its clinic's), but lets the planner read only this clinic's
        # locations: misjudging how many slots pass the filters, it joined every clinic's by a scan (scale findings).
        session__location__clinic=clinic,
    )
    if slot_type is not None:
        slots = slots.filter(slot_type=slot_type)
    if practitioner is not None:
        slots = slots.filter(session__practitioner=practitioner)
    if location is not None:
        slots = slots.filter(session__location=location)
    if not_booked is not None:
        slots = slots.exclude(pk__in=slots_booked_by(clinic=clinic, patient=not_booked))
    return list(
        slots.select_related("slot_type", "session", "session__practitioner", "session__location").order_by(
            "starts_at", "id"
        )[:limit]
    )


def released_of_types(*, clinic: Clinic, kinds: Sequence[SlotType], now: dt.datetime) -> Q:
    """Slots of these types released for booking now, each by its type's release rule (an empty Q: no types).
    One query (the locations' zones) when a type has a rule other than "any time"."""
    released = Q()
    zones: list[str] = []
    if any(kind.release_rule != ReleaseRule.ANY_TIME for kind in kinds):
        zones = release_zones(clinic=clinic)
    for kind in kinds:
        if kind.release_rule == ReleaseRule.ANY_TIME:
            released |= Q(slot_type=kind.pk)
            continue
        days = 0 if kind.release_rule == ReleaseRule.ON_THE_DAY else kind.release_days_before or 0
        released |= Q(slot_type=kind.pk) & released_by(now=now, zones=zones, days_ahead=days)
    return released


def open_to_new_patients(clinic: Clinic, now: dt.datetime) -> Q:
    """Slots a new patient may join: not in an enforced closed group that has begun (its allocation's first
    session, or the session itself when it has no allocation, started before now)."""
    began = (
        Session.objects.for_clinic(clinic)
        .filter(allocation_id=OuterRef("session__allocation_id"), starts_at__lte=now)
        .exclude(out_state=SessionOut.CANCELLED)
    )
    return ~(
        Q(session__closed_enforced=True)
        & (Exists(began) | Q(session__allocation__isnull=True, session__starts_at__lte=now))
    )


def third_party_slots(
    *, clinic: Clinic, slot_types: Sequence[SlotType], now: dt.datetime, first: dt.datetime, last: dt.datetime
) -> QuerySet[Slot]:
    """The free places a third party (the FHIR API) may book: slots of these types that start from `first` (and
    not before now) and end by `last`, in sessions on the rota released for GP Connect (the template's flag, with
    the practitioner role and location the seed makes mandatory), honouring each type's release rule, never held
    or full, never a session taken out, a retired slot or an enforced closed group that has begun. With their
    session, practitioner, location and type, soonest first."""
    released = released_of_types(clinic=clinic, kinds=slot_types, now=now)
    if not released:
        return Slot.objects.none()
    return (
        Slot.objects.for_clinic(clinic)
        .filter(
            released,
            open_to_new_patients(clinic, now),
            Q(session__practitioner__isnull=True) | Q(session__practitioner__is_active=True),
            bookable=True,
            retired=False,
            booked_count__lt=F("capacity"),
            starts_at__gte=max(first, now),
            ends_at__lte=last,
            session__gp_connect_bookable=True,
            session__out_state="",
            session__location__clinic=clinic,  # only this clinic's locations joined, as in next_available
        )
        .exclude(session__practitioner_role="")
        .select_related("slot_type", "session", "session__practitioner", "session__location")
        .order_by("starts_at", "id")
    )


def release_zones(*, clinic: Clinic) -> list[str]:
    """The zones a clinic's slots run on: its own first, then its locations' (one query)."""
    own = str(clinic.time_zone)
    found = set(Location.objects.for_clinic(clinic).order_by().values_list("time_zone", flat=True).distinct())
    return [own, *sorted(found - {own})]


def released_by(*, now: dt.datetime, zones: Sequence[str], days_ahead: int) -> Q:
    """Slots starting before the end of the day `days_ahead` after today, today being the slot's own date on
    its session's clock (a session in a zone not listed, of a location whose zone changed, uses the clinic's)."""
    limits = {}
    for name in zones:
        zone = ZoneInfo(name)
        limits[name] = local_day(now.astimezone(zone).date() + dt.timedelta(days=days_ahead), zone)[1]
    condition = Q(~Q(session__time_zone__in=list(zones)), starts_at__lt=limits[zones[0]])
    for name, limit in limits.items():
        condition |= Q(session__time_zone=name, starts_at__lt=limit)
    return condition


class OnlinePlace(NamedTuple):
    """A time a patient may book online: plain values of the slot, its session's practitioner and location (rows,
    not model instances: a month of places for ten practitioners is read in milliseconds)."""

    slot: UUID  # the slot's public id
    starts_at: dt.datetime
    ends_at: dt.datetime
    places_left: int
    practitioner_id: int
    practitioner: str
    location_id: int
    location: str
    travel_clinic: bool


def online_places(
    *,
    clinic: Clinic,
    slot_type: SlotType,
    now: dt.datetime,
    until: dt.datetime,
    practitioners: Sequence[Practitioner] | None = None,
    location: Location | None = None,
    notice: dt.timedelta = dt.timedelta(0),
    horizon: dt.timedelta | None = None,
    starting_from: dt.datetime | None = None,
) -> list[OnlinePlace]:
    """The free places of one online slot type from now + notice to `until` (and no further than now + horizon),
    soonest first (none starting before `starting_from`, when given: one place checked again): bookable places
    left in sessions on the rota of these practitioners (None: anyone), inside
    each practitioner's online-booking availability (weekly windows, date overrides) less busy events (timed
    and all-day, Google's included), honouring the type's release rule on the slot's clock. A slot must lie
    wholly inside one open window. Clinic-wide sessions have no availability, so none is offered.

    A fixed number of queries whatever the number of practitioners, days or places: the locations' zones (for a
    release rule), the slots, then availability, its overrides and the busy events.
    """
    if not (slot_type.bookable and slot_type.online_bookable and slot_type.is_active):
        return []
    first = max(now + notice, starting_from) if starting_from is not None else now + notice
    last = min(until, now + horizon) if horizon is not None else until
    if last <= first:
        return []
    slots = Slot.objects.for_clinic(clinic).filter(
        slot_type=slot_type,
        bookable=True,
        booked_count__lt=F("capacity"),
        starts_at__gte=first,
        starts_at__lt=last,
        session__practitioner__isnull=False,
        session__practitioner__is_active=True,
    )
    if slot_type.release_rule != ReleaseRule.ANY_TIME:
        days = 0 if slot_type.release_rule == ReleaseRule.ON_THE_DAY else slot_type.release_days_before or 0
        slots = slots.filter(released_by(now=now, zones=release_zones(clinic=clinic), days_ahead=days))
    if practitioners is not None:
        slots = slots.filter(session__practitioner__in=[p.pk for p in practitioners])
    if location is not None:
        slots = slots.filter(session__location=location)
    # An enforced closed group that has begun takes no new patients: never offered online (a member of the group is
    # booked by reception, or through the waiting list).
    slots = slots.filter(open_to_new_patients(clinic, now))
    found = [
        OnlinePlace(public_id, starts_at, ends_at, capacity - booked, *rest)
        for public_id, starts_at, ends_at, capacity, booked, *rest in slots.order_by("starts_at", "id").values_list(
            "public_id",
            "starts_at",
            "ends_at",
            "capacity",
            "booked_count",
            "session__practitioner_id",
            "session__practitioner__name",
            "session__location_id",
            "session__location__name",
            "session__travel_clinic",
        )
    ]
    if not found:
        return []
    windows = open_for_online_booking(
        clinic=clinic,
        practitioner_ids=sorted({place.practitioner_id for place in found}),
        starts_at=found[0].starts_at,
        ends_at=max(place.ends_at for place in found),
        less_appointments=False,
    )
    return [
        place
        for place in found
        if any(start <= place.starts_at and place.ends_at <= end for start, end in windows[place.practitioner_id])
    ]


class ReportRow(NamedTuple):
    category: str  # the reporting category's label, or "Uncategorised"
    counts: list[int]  # per appointment status, in AppointmentStatus order
    total: int


def appointments_report(
    *, clinic: Clinic, first_date: dt.date, last_date: dt.date, category: str = ""
) -> list[ReportRow]:
    """Appointments by the reporting category of their type and by status, over local dates (one query)."""
    zone = ZoneInfo(clinic.time_zone)
    rows = Appointment.objects.for_clinic(clinic).filter(
        starts_at__gte=local_day(first_date, zone)[0], starts_at__lt=local_day(last_date, zone)[1]
    )
    if category:
        rows = rows.filter(slot_type__reporting_category=category)
    labels = dict(ReportingCategory.choices)
    table: dict[str, dict[str, int]] = {}
    for reporting_category, status, count in (
        rows.values_list("slot_type__reporting_category", "status")
        .annotate(count=Count("id"))
        .order_by("slot_type__reporting_category", "status")
    ):
        name = labels.get(reporting_category or "", "Uncategorised")
        table.setdefault(name, {})[status] = count
    statuses = list(AppointmentStatus.values)
    return [
        ReportRow(name, [counts.get(s, 0) for s in statuses], sum(counts.values()))
        for name, counts in sorted(table.items())
    ]


def report_table(rows: Sequence[ReportRow]) -> list[list[str | int]]:
    """The report as the CSV export writes it: a header, then a line per category."""
    table: list[list[str | int]] = [["Reporting category", *AppointmentStatus.labels, "Total"]]
    for row in rows:
        table.append([row.category, *row.counts, row.total])
    return table


def rescheduled_to(*, clinic: Clinic, appointment: Appointment) -> Appointment | None:
    """The appointment this one was moved to, if it was rescheduled."""
    return Appointment.objects.for_clinic(clinic).filter(rescheduled_from=appointment).first()


def patient_appointments(*, clinic: Clinic, patient: Any) -> QuerySet[Appointment]:
    """A patient's appointments, newest first, with what a list shows (and the series each belongs to)."""
    return (
        Appointment.objects.for_clinic(clinic)
        .filter(patient=patient)
        .select_related("slot_type", "practitioner", "slot__session__location", "series")
        .order_by("-starts_at", "-id")
    )


def busy_events_during(*, clinic: Clinic, slot: Slot) -> list[OtherEvent]:
    """The practitioner's busy events at the slot's time (leave, training): timed ones overlapping it,
    all-day ones on its local date. Booking stays possible; reception is warned (one query)."""
    return list(_busy_during(clinic, slot))


def busy_event_ids_during(*, clinic: Clinic, slot: Slot) -> list[UUID]:
    """The public ids of busy_events_during, in the same order (for the booking's audit: one query, no more)."""
    return list(_busy_during(clinic, slot).values_list("public_id", flat=True))


def _busy_during(clinic: Clinic, slot: Slot) -> QuerySet[OtherEvent]:
    """The practitioner's busy events at the slot's time, in order (none for a clinic-wide session: no query)."""
    practitioner_id = slot.session.practitioner_id
    if practitioner_id is None:
        return OtherEvent.objects.none()
    day = slot.starts_at.astimezone(ZoneInfo(str(slot.session.time_zone))).date()
    return (
        OtherEvent.objects.for_clinic(clinic)
        .filter(
            Q(all_day=False, starts_at__lt=slot.ends_at, ends_at__gt=slot.starts_at)
            | Q(all_day=True, first_date__lte=day, last_date__gte=day),
            practitioner_id=practitioner_id,
            busy=True,
        )
        .order_by("all_day", "starts_at", "title")
    )


def free_slot_during(
    *, clinic: Clinic, practitioner: Practitioner, starts: dt.datetime, ends: dt.datetime
) -> Slot | None:
    """The practitioner's first bookable slot with a free place at [starts, ends) (at the moment `starts`
    when the two are equal): where a client appointment chosen on the calendar is booked (one query)."""
    return (
        Slot.objects.for_clinic(clinic)
        .filter(
            session__practitioner=practitioner,
            bookable=True,
            booked_count__lt=F("capacity"),
            starts_at__lt=max(ends, starts + dt.timedelta(microseconds=1)),
            ends_at__gt=starts,
        )
        .order_by("starts_at", "id")
        .first()
    )


def slots_booked_by(*, clinic: Clinic, patient: Patient) -> QuerySet[Appointment, dict[str, Any]]:
    """The slots a patient holds a live place in (a subquery: a group they are in is not offered again)."""
    return Appointment.objects.for_clinic(clinic).live().filter(patient=patient).values("slot_id")


def slots_on_date(
    *,
    clinic: Clinic,
    practitioner: Practitioner,
    slot_type: SlotType,
    day: dt.date,
    zone: ZoneInfo,
    not_booked: Patient | None = None,
) -> list[Slot]:
    """The practitioner's slots of a type with a free place on a local date, leaving out those `not_booked`
    is already in (one query)."""
    starts, ends = local_day(day, zone)
    slots = Slot.objects.for_clinic(clinic).filter(
        session__practitioner=practitioner,
        slot_type=slot_type,
        bookable=True,
        booked_count__lt=F("capacity"),
        starts_at__gte=starts,
        starts_at__lt=ends,
    )
    if not_booked is not None:
        slots = slots.exclude(pk__in=slots_booked_by(clinic=clinic, patient=not_booked))
    return list(
        slots.select_related("slot_type", "session", "session__practitioner", "session__location").order_by(
            "starts_at", "id"
        )
    )
