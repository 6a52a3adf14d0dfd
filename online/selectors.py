"""Reads of the public booking site: a clinic's online settings, what it offers (types, locations,
practitioners) and the free times, grouped by the patient's day; and reception's queue of online requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import QuerySet

from clinic.models import Clinic, Location, Practitioner
from online.models import BookingMode, OnlineBooking, OnlineSettings, OnlineStatus, PractitionerOnline
from patients.models import visible_patients
from scheduling.models import Availability, Slot, WaitlistOffer
from scheduling.selectors.booking import OnlinePlace, online_places, slot_details
from sessions_setup.models import SlotType

if TYPE_CHECKING:
    from clinic.models import Membership


def settings_of(clinic: Clinic) -> OnlineSettings:
    """The clinic's online settings (defaults, unsaved, until an admin saves them)."""
    return OnlineSettings.objects.for_clinic(clinic).first() or OnlineSettings(clinic=clinic)


def clinic_taking_bookings(slug: str) -> tuple[Clinic, OnlineSettings] | None:
    """The clinic at /book/<slug>/ and its settings, when it has online booking on (else None: a 404)."""
    found = (
        OnlineSettings.objects.select_related("clinic").filter(clinic__slug=slug, enabled=True).first()
        if slug
        else None
    )
    return (found.clinic, found) if found is not None else None


def offer_at(slug: str, offer_id: str) -> tuple[Clinic, OnlineSettings | None, WaitlistOffer] | None:
    """A waitlist offer of the clinic at `slug` (its signed link names it), with what the page shows; the clinic's
    online settings when it has them. Offers need no online booking: every clinic's patients may answer one."""
    found = (
        WaitlistOffer.objects.select_related(
            "clinic",
            "hold",
            "entry__patient",
            "slot__slot_type",
            "slot__session__practitioner",
            "slot__session__location",
        )
        .filter(clinic__slug=slug, public_id=offer_id)
        .first()
    )
    if found is None:
        return None
    return found.clinic, OnlineSettings.objects.for_clinic(found.clinic).first(), found


def online_types(clinic: Clinic) -> list[SlotType]:
    """What a patient may book online: the clinic's active, bookable slot types flagged Online."""
    return list(SlotType.objects.for_clinic(clinic).filter(online_bookable=True, bookable=True, is_active=True))


def online_type(clinic: Clinic, public_id: str) -> SlotType | None:
    try:
        UUID(str(public_id))
    except ValueError:
        return None
    return (
        SlotType.objects.for_clinic(clinic)
        .filter(public_id=public_id, online_bookable=True, bookable=True, is_active=True)
        .first()
    )


def online_practitioners(clinic: Clinic) -> list[Practitioner]:
    """Practitioners a patient may choose: active, with online availability set, and not turned off for online
    booking."""
    off = set(
        PractitionerOnline.objects.for_clinic(clinic).filter(accepts=False).values_list("practitioner_id", flat=True)
    )
    with_hours = set(Availability.objects.for_clinic(clinic).values_list("practitioner_id", flat=True))
    return list(Practitioner.objects.for_clinic(clinic).filter(is_active=True, pk__in=with_hours - off))


def requests_only(clinic: Clinic) -> set[int]:
    """The practitioners whose online bookings are requests reception accepts (primary keys)."""
    return set(
        PractitionerOnline.objects.for_clinic(clinic)
        .filter(mode=BookingMode.REQUEST)
        .values_list("practitioner_id", flat=True)
    )


def mode_of(clinic: Clinic, practitioner_id: int) -> tuple[bool, str]:
    """(accepts online bookings, instant or request) of one practitioner."""
    return online_modes(clinic, [practitioner_id])[practitioner_id]


def online_modes(clinic: Clinic, practitioner_ids: Sequence[int]) -> dict[int, tuple[bool, str]]:
    """(accepts online bookings, instant or request) of each practitioner: a practitioner without a row of their
    own takes instant bookings."""
    rows = PractitionerOnline.objects.for_clinic(clinic).filter(practitioner_id__in=practitioner_ids)
    found = {row.practitioner_id: (row.accepts, row.mode) for row in rows}
    return {pk: found.get(pk, (True, BookingMode.INSTANT)) for pk in practitioner_ids}


def online_locations(clinic: Clinic) -> list[Location]:
    return list(Location.objects.for_clinic(clinic).filter(is_active=True))


@dataclass(frozen=True)
class Times:
    """The free times of one search, by the patient's day."""

    days: list[dt.date]  # the day strip: every day from the first bookable day to the horizon
    by_day: dict[dt.date, list[OnlinePlace]]
    zone: ZoneInfo  # the patient's

    @property
    def any(self) -> bool:
        return bool(self.by_day)

    def first_day(self) -> dt.date | None:
        return min(self.by_day) if self.by_day else None


def free_times(
    *,
    clinic: Clinic,
    online: OnlineSettings,
    slot_type: SlotType,
    practitioners: Sequence[Practitioner],
    location: Location | None,
    zone: ZoneInfo,
    now: dt.datetime,
) -> Times:
    """Every free time of the type from now + notice to the horizon, for these practitioners (those who take
    online bookings: "anyone" is all of them), grouped by the patient's day."""
    horizon = dt.timedelta(days=online.horizon_days)
    places = (
        online_places(
            clinic=clinic,
            slot_type=slot_type,
            now=now,
            until=now + horizon,
            practitioners=practitioners,
            location=location,
            notice=dt.timedelta(hours=online.notice_hours),
            horizon=horizon,
        )
        if practitioners
        else []
    )
    by_day: dict[dt.date, list[OnlinePlace]] = {}
    for place in places:
        by_day.setdefault(place.starts_at.astimezone(zone).date(), []).append(place)
    today = now.astimezone(zone).date()
    last = (now + horizon).astimezone(zone).date()
    days = [today + dt.timedelta(days=n) for n in range((last - today).days + 1)]
    return Times(days=days, by_day=by_day, zone=zone)


class Offered(NamedTuple):
    """A time a patient may book online now: the place as listed, its slot (locked and booked by the caller) and
    whether the practitioner's online bookings are instant or requests."""

    place: OnlinePlace
    slot: Slot
    mode: str


def place_offered(
    *, clinic: Clinic, online: OnlineSettings, slot_type: SlotType, slot_public_id: str, now: dt.datetime
) -> Offered | None:
    """This slot's free time, if a patient may still book it online now (every rule of free_times), with the slot
    and the practitioner's mode, read once for the page or the booking that asks."""
    slot = slot_details(clinic=clinic, slot_public_id=slot_public_id)
    practitioner = slot.session.practitioner if slot is not None else None
    if slot is None or practitioner is None or slot.slot_type_id != slot_type.pk:
        return None
    accepts, mode = mode_of(clinic, practitioner.pk)
    if not accepts:
        return None
    horizon = dt.timedelta(days=online.horizon_days)
    for place in online_places(
        clinic=clinic,
        slot_type=slot_type,
        now=now,
        until=slot.ends_at,
        starting_from=slot.starts_at,
        practitioners=[practitioner],
        location=slot.session.location,
        notice=dt.timedelta(hours=online.notice_hours),
        horizon=horizon,
    ):
        if place.slot == slot.public_id:
            return Offered(place, slot, mode)
    return None


def pending_requests(*, clinic: Clinic, membership: Membership | None) -> QuerySet[OnlineBooking]:
    """Reception's queue: online requests waiting for an answer, oldest first (a blocked patient's only for
    members who may see them)."""
    return (
        OnlineBooking.objects.for_clinic(clinic)
        .filter(visible_patients(membership, through="patient"), status=OnlineStatus.PENDING)
        .select_related("patient", "slot_type", "slot__session__practitioner", "slot__session__location", "hold")
        .order_by("created_at", "id")
    )


def pending_count(*, clinic: Clinic, membership: Membership | None) -> int:
    return pending_requests(clinic=clinic, membership=membership).count()


def recent_decisions(*, clinic: Clinic, membership: Membership | None, limit: int = 20) -> list[OnlineBooking]:
    return list(
        OnlineBooking.objects.for_clinic(clinic)
        .filter(visible_patients(membership, through="patient"), mode=BookingMode.REQUEST)
        .exclude(status=OnlineStatus.PENDING)
        .select_related("patient", "slot_type", "slot__session__practitioner", "decided_by")
        .order_by("-decided_at", "-id")[:limit]
    )


@dataclass(frozen=True)
class OnlineStory:
    booking: OnlineBooking | None  # the online booking the appointment (or the one it was moved from) came from
    changes: list[tuple[dt.datetime, str]]  # what the patient did online, oldest first


MOVES_FOLLOWED = 20


def online_story(*, clinic: Clinic, appointment: Any) -> OnlineStory | None:
    """The online side of an appointment: its online booking and the changes the patient made on the site (the
    audit's "by patient online" rows of its reschedule chain). None when it has none. Two queries, and one more
    for each move back along the chain."""
    from clinic.models import AuditEvent
    from scheduling.models import Appointment

    chain = [appointment]
    current = appointment
    while current.rescheduled_from_id and len(chain) < MOVES_FOLLOWED:
        previous = Appointment.objects.for_clinic(clinic).filter(pk=current.rescheduled_from_id).first()
        if previous is None:
            break
        chain.append(previous)
        current = previous
    ids = [a.pk for a in chain]
    booking = (
        OnlineBooking.objects.for_clinic(clinic).filter(appointment_id__in=ids).select_related("decided_by").first()
    )
    words = {
        "appointment.cancelled": "Cancelled by the patient online",
        "appointment.rescheduled": "Moved by the patient online",
    }
    changes = [
        (at, words.get(action, action))
        for at, action in AuditEvent.objects.for_clinic(clinic)
        .filter(
            object_type="scheduling.appointment",
            object_id__in=[str(a.public_id) for a in chain],
            detail__by="patient online",
            action__in=list(words),
        )
        .order_by("created_at", "id")
        .values_list("created_at", "action")
    ]
    if booking is None and not changes and appointment.source != "online":
        return None
    return OnlineStory(booking=booking, changes=changes)
