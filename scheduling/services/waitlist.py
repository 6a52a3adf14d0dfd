"""Writes of the waitlist: adding and removing entries, offering freed places (automatically, in order, or by
hand), a patient taking or letting go of an offer, booking straight from the list, and the clinic's rules.

An offer is a hold (scheduling's one hold mechanism): it counts against the slot's capacity, so no other booking
(reception, online, a third party) can take the place while it is out. Taking it books through appointment_book
with the hold and the source "waitlist"; letting it go, or its running out, ends the hold, which frees the place
again (services.freed) and so offers it to the next person waiting.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from clinic.services import audit_record
from scheduling.models import (
    Appointment,
    AppointmentSource,
    FreedPlace,
    Hold,
    HoldKind,
    HoldOutcome,
    SeriesScope,
    Slot,
    WaitlistEntry,
    WaitlistKind,
    WaitlistOffer,
    WaitlistSettings,
    WaitlistState,
)
from scheduling.selectors import waitlist as selectors
from scheduling.services.booking import (
    BookingError,
    BookingRequest,
    appointment_book,
    closed_group_refusal,
    hold_end,
    hold_take,
    may_book,
    slot_locked,
)
from scheduling.signals import quiet_hours_end, tell_offer

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic, Membership, Practitioner
    from patients.models import Patient
    from scheduling.models import Allocation
    from sessions_setup.models import SlotType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EntryData:
    """What reception asks for when adding a patient to the waitlist."""

    patient: Patient
    kind: str
    slot: Slot | None = None
    allocation: Allocation | None = None
    scope: str = ""
    from_date: dt.date | None = None
    practitioner: Practitioner | None = None
    slot_type: SlotType | None = None
    weekdays: Sequence[int] = ()
    time_from: dt.time | None = None
    time_until: dt.time | None = None
    note: str = ""


def waitlist_add(*, clinic: Clinic, actor: User, membership: Membership, data: EntryData) -> WaitlistEntry:
    """Put a patient at the end of the waitlist for a slot, a group series or a preference. Refused for a patient
    the member may not book, a slot that is past or has a free place (book it instead), and a patient already
    waiting for the same thing."""
    grant = may_book(membership, data.patient)
    fields: dict[str, Any] = {"kind": data.kind, "patient": data.patient}
    if data.kind == WaitlistKind.SLOT:
        slot = data.slot
        if slot is None:
            raise BookingError("Choose the slot to wait for.")
        if slot.starts_at <= timezone.now():
            raise BookingError("This slot has already started.")
        if slot.bookable and slot.booked_count < slot.capacity:
            raise BookingError("This slot has a free place: book it instead.")
        if Appointment.objects.for_clinic(clinic).live().filter(slot=slot, patient=data.patient).exists():
            raise BookingError("This patient is already booked in this slot.")
        fields["slot"] = slot
    elif data.kind == WaitlistKind.SERIES:
        if data.allocation is None or data.slot_type is None:
            raise BookingError("Choose the group series to wait for.")
        if data.scope not in SeriesScope.values or (data.scope == SeriesScope.FROM_DATE and data.from_date is None):
            raise BookingError("Choose any occurrence, or a date to start from.")
        fields |= {
            "allocation": data.allocation,
            "slot_type": data.slot_type,
            "scope": data.scope,
            "from_date": data.from_date if data.scope == SeriesScope.FROM_DATE else None,
        }
    elif data.kind == WaitlistKind.PREFERENCE:
        if data.practitioner is None and data.slot_type is None:
            raise BookingError("Choose a practitioner, a type of appointment, or both.")
        if data.time_from and data.time_until and data.time_until <= data.time_from:
            raise BookingError("The latest time must come after the earliest.")
        fields |= {
            "practitioner": data.practitioner,
            "slot_type": data.slot_type,
            "weekdays": ",".join(str(d) for d in sorted(set(data.weekdays))),
            "time_from": data.time_from,
            "time_until": data.time_until,
        }
    else:
        raise BookingError("Choose what the patient waits for.")
    with transaction.atomic():
        same = {k: v for k, v in fields.items() if k not in ("weekdays", "time_from", "time_until", "from_date")}
        if WaitlistEntry.objects.for_clinic(clinic).open().filter(**same).exists():
            raise BookingError("This patient is already on this waiting list.")
        last = WaitlistEntry.objects.for_clinic(clinic).aggregate(last=Max("position"))["last"] or 0
        entry = WaitlistEntry.objects.create(
            clinic=clinic, position=last + 1, note=data.note.strip()[:200], added_by=actor, **fields
        )
        audit_record(
            clinic=clinic,
            actor=actor,
            action="waitlist.added",
            target=entry,
            detail={
                "kind": data.kind,
                "patient": str(data.patient.public_id),
                "blocked": data.patient.is_blocked,
                **({"break_glass": grant} if grant else {}),
            },
        )
    return entry


def waitlist_remove(*, clinic: Clinic, actor: User | None, entry: WaitlistEntry, by: str = "") -> WaitlistEntry:
    """Take an entry off the list; an offer it has out is withdrawn (its place is offered to the next)."""
    with transaction.atomic():
        locked = _entry_locked(clinic, entry)
        if locked.state not in (WaitlistState.WAITING, WaitlistState.OFFERED):
            raise BookingError(f"This entry is no longer waiting ({locked.get_state_display().lower()}).")
        for offer in _live_offers(clinic, locked):
            hold_end(clinic=clinic, actor=actor, hold=offer.hold, outcome=HoldOutcome.WITHDRAWN)
        locked.state = WaitlistState.REMOVED
        locked.ended_at = timezone.now()
        locked.save(update_fields=["state", "ended_at"])
        audit_record(
            clinic=clinic, actor=actor, action="waitlist.removed", target=locked, detail={"by": by} if by else {}
        )
    return locked


def waitlist_move(*, clinic: Clinic, actor: User, entry: WaitlistEntry, up: bool) -> None:
    """Swap an open entry with the one before (or after) it in the order offers follow."""
    with transaction.atomic():
        locked = WaitlistEntry.objects.for_clinic(clinic).select_for_update().get(pk=entry.pk)
        others = WaitlistEntry.objects.for_clinic(clinic).open().select_for_update().exclude(pk=locked.pk)
        if up:
            other = others.filter(position__lte=locked.position).order_by("-position", "-id").first()
        else:
            other = others.filter(position__gte=locked.position).order_by("position", "id").first()
        if other is None:
            return
        if other.position == locked.position:  # added at the same moment: make room
            other.position += -1 if up else 1
        locked.position, other.position = other.position, locked.position
        WaitlistEntry.objects.bulk_update([locked, other], ["position"])
        audit_record(clinic=clinic, actor=actor, action="waitlist.moved", target=locked, detail={"up": up})


def rules_save(*, clinic: Clinic, actor: User, rules: WaitlistSettings) -> WaitlistSettings:
    with transaction.atomic():
        rules.clinic = clinic
        existing = WaitlistSettings.objects.for_clinic(clinic).first()
        if existing is not None:
            rules.pk, rules.public_id = existing.pk, existing.public_id
        rules.save()
        audit_record(clinic=clinic, actor=actor, action="waitlist.settings", target=rules)
    return rules


# Offers ----------------------------------------------------------------------------------------------------


def _entry_locked(clinic: Clinic, entry: WaitlistEntry, also: int | None = None) -> WaitlistEntry:
    """The entry, locked, after the slots of its live offers (and `also`), in id order: the order every writer takes
    them (a slot, then its holds, then the entry), so reception's removal or booking never deadlocks with the
    patient taking or letting go of an offer, or with the offer's expiry."""
    slots = {offer.slot_id for offer in _live_offers(clinic, entry)} | ({also} if also is not None else set())
    for slot_id in sorted(slots):
        slot_locked(clinic, slot_id)
    return WaitlistEntry.objects.for_clinic(clinic).select_for_update().select_related("patient").get(pk=entry.pk)


def _live_offers(clinic: Clinic, entry: WaitlistEntry) -> list[WaitlistOffer]:
    return list(
        WaitlistOffer.objects.for_clinic(clinic).filter(entry=entry, hold__ended_at__isnull=True).select_related("hold")
    )


def _offer_make(
    clinic: Clinic, actor: User | None, entry: WaitlistEntry, slot: Slot, expires_at: dt.datetime
) -> WaitlistOffer:
    """Hold the place and record the offer; the patient is told (notifications records the messages, with the
    link, in this transaction). The slot and the entry are locked by the caller."""
    hold = hold_take(clinic=clinic, actor=actor, slot=slot, kind=HoldKind.WAITLIST_OFFER, expires_at=expires_at)
    offer = WaitlistOffer.objects.create(clinic=clinic, entry=entry, slot=slot, hold=hold, offered_by=actor)
    WaitlistEntry.objects.for_clinic(clinic).filter(pk=entry.pk).update(state=WaitlistState.OFFERED)
    audit_record(
        clinic=clinic,
        actor=actor,
        action="waitlist.offered",
        target=offer,
        detail={
            "entry": str(entry.public_id),
            "slot": str(slot.public_id),
            "expires_at": expires_at.isoformat(),
            "by_hand": actor is not None,
        },
    )
    tell_offer(clinic.pk, offer.pk)
    return offer


def _quiet_until(clinic: Clinic, slot: Slot, now: dt.datetime) -> dt.datetime | None:
    end = quiet_hours_end(clinic.pk, ZoneInfo(slot.session.time_zone), now)
    return end if isinstance(end, dt.datetime) else None


def offers_for_slot(*, clinic: Clinic, slot_id: int, now: dt.datetime) -> list[WaitlistOffer]:
    """Offer every free place of a slot to the first people waiting, in order, in one transaction under the slot's
    lock (so a cancellation meanwhile waits, and its own run finds the places already held: each place is offered
    once). In quiet hours nothing is offered: the freed place waits until they end."""
    rules = selectors.rules_for(clinic.pk)
    with transaction.atomic():
        try:
            slot = slot_locked(clinic, slot_id)
        except BookingError:
            return []  # the slot was removed by a change meanwhile (its freed rows went with it)
        FreedPlace.objects.for_clinic(clinic).filter(slot_id=slot.pk, due_at__lte=now).delete()
        free = slot.capacity - slot.booked_count
        if not rules.offers_on or not slot.bookable or free <= 0 or slot.starts_at <= now:
            return []
        quiet = _quiet_until(clinic, slot, now)
        if quiet is not None:
            FreedPlace.objects.create(clinic=clinic, slot=slot, due_at=quiet)
            return []
        members_only = selectors.group_closed_to_new(clinic, slot.session, now) is not None
        offers: list[WaitlistOffer] = []
        for _ in range(free):
            expires_at = selectors.offer_expiry(rules, slot.starts_at, now)
            if expires_at is None:
                break
            # Locked, skipping entries another run is offering a place right now (two freed slots, one patient).
            entry = (
                selectors.first_in_line(clinic, slot, members_only=members_only)
                .select_for_update(skip_locked=True, of=("self",))
                .first()
            )
            if entry is None:
                break
            offers.append(_offer_make(clinic, None, entry, slot, expires_at))
    return offers


def freed_offer(freed_ids: Sequence[int], now: dt.datetime | None = None) -> int:
    """The offer run for freed-place rows (the nudge after the change's commit): one transaction per slot. Rows
    another run has taken, or that wait for quiet hours to end, are left alone."""
    now = now or timezone.now()
    # Across clinics: a task loading the rows it was given.
    rows = set(FreedPlace.objects.filter(pk__in=freed_ids, due_at__lte=now).values_list("clinic_id", "slot_id"))
    return _offer_rows(rows, now)


FREED_PER_SWEEP = 500


def freed_sweep(now: dt.datetime | None = None) -> int:
    """Beat's minute: freed places whose nudge was lost, or whose quiet hours have ended, are offered."""
    now = now or timezone.now()
    # Across clinics: beat's sweep.
    rows = set(
        FreedPlace.objects.filter(due_at__lte=now).values_list("clinic_id", "slot_id").order_by()[:FREED_PER_SWEEP]
    )
    return _offer_rows(rows, now)


def _offer_rows(rows: set[tuple[int, int]], now: dt.datetime) -> int:
    from clinic.models import Clinic

    clinics = {c.pk: c for c in Clinic.objects.filter(pk__in={clinic for clinic, _ in rows})}
    made = 0
    for clinic_id, slot_id in sorted(rows):
        made += len(offers_for_slot(clinic=clinics[clinic_id], slot_id=slot_id, now=now))
    return made


def offer_by_hand(
    *, clinic: Clinic, actor: User, membership: Membership, entry: WaitlistEntry, slot: Slot, now: dt.datetime
) -> WaitlistOffer:
    """Reception offers a free place to an entry out of turn: the same hold and message as an automatic offer."""
    may_book(membership, entry.patient)
    rules = selectors.rules_for(clinic.pk)
    with transaction.atomic():
        locked_slot = slot_locked(clinic, slot.pk)
        locked = WaitlistEntry.objects.for_clinic(clinic).select_for_update().get(pk=entry.pk)
        if locked.state != WaitlistState.WAITING:
            raise BookingError(
                "This patient already has an offer out; wait for their answer or withdraw it."
                if locked.state == WaitlistState.OFFERED
                else f"This entry is no longer waiting ({locked.get_state_display().lower()})."
            )
        if not locked_slot.bookable or locked_slot.booked_count >= locked_slot.capacity:
            raise BookingError("This place has just been taken.")
        if WaitlistOffer.objects.for_clinic(clinic).filter(entry=locked, slot=locked_slot).exists():
            raise BookingError("This place has already been offered to this patient.")
        if Appointment.objects.for_clinic(clinic).live().filter(slot=locked_slot, patient=locked.patient).exists():
            raise BookingError("This patient is already booked in this slot.")
        refusal = closed_group_refusal(clinic, locked_slot, locked.patient_id, now=now)
        if refusal:
            raise BookingError(f"{refusal} Book them from the list with a reason instead.")
        quiet = _quiet_until(clinic, locked_slot, now)
        if quiet is not None:
            local = quiet.astimezone(ZoneInfo(locked_slot.session.time_zone))
            raise BookingError(
                f"Offers are not sent in quiet hours (until {local:%H:%M}). Offer it then, or book it by phone."
            )
        expires_at = selectors.offer_expiry(rules, locked_slot.starts_at, now)
        if expires_at is None:
            raise BookingError("This place starts too soon to offer; book it straight from the list instead.")
        return _offer_make(clinic, actor, locked, locked_slot, expires_at)


class OfferEnded(BookingError):
    """The offer can no longer be taken: it was taken already, let go, withdrawn, or ran out."""


def _ended_words(hold: Hold, zone: ZoneInfo) -> str:
    if hold.outcome == HoldOutcome.ACCEPTED:
        return "You have already taken this place: it is booked for you."
    if hold.outcome == HoldOutcome.DECLINED:
        return "You let this place go, so it has been offered to the next person waiting."
    if hold.outcome == HoldOutcome.EXPIRED:
        local = hold.expires_at.astimezone(zone)
        return (
            f"Sorry: this offer ran out at {local:%H:%M on %a %-d %b}, and the place has been offered to the next "
            "person waiting. You are still on the waiting list."
        )
    return "Sorry: this place is no longer available (the clinic changed the session). You are still on the list."


def offer_accept(*, clinic: Clinic, offer: WaitlistOffer, now: dt.datetime | None = None) -> Appointment:
    """The patient takes the offered place: booked through appointment_book with the offer's hold (its place was
    already counted) and the source "waitlist". Refused kindly when the offer has ended; one taken after its time
    but before the sweep ended it is ended now as expired (and the place offered to the next)."""
    now = now or timezone.now()
    zone = ZoneInfo(offer.slot.session.time_zone)
    ran_out = False
    with transaction.atomic():
        slot = slot_locked(clinic, offer.slot_id)
        hold = Hold.objects.for_clinic(clinic).select_for_update().get(pk=offer.hold_id)
        if hold.ended_at is not None:
            raise OfferEnded(_ended_words(hold, zone))
        if hold.expires_at <= now:
            hold_end(clinic=clinic, actor=None, hold=hold, outcome=HoldOutcome.EXPIRED)
            hold.outcome = HoldOutcome.EXPIRED
            ran_out = True
        else:
            entry = (
                WaitlistEntry.objects.for_clinic(clinic)
                .select_for_update()
                .select_related("patient")
                .get(pk=offer.entry_id)
            )
            appointment = appointment_book(
                clinic=clinic,
                actor=None,
                membership=None,
                request=BookingRequest(slot=slot, patient=entry.patient, source=AppointmentSource.WAITLIST, hold=hold),
            )
            entry.state = WaitlistState.BOOKED
            entry.appointment = appointment
            entry.ended_at = now
            entry.save(update_fields=["state", "appointment", "ended_at"])
            audit_record(clinic=clinic, actor=None, action="waitlist.accepted", target=offer, detail={"by": "patient"})
    if ran_out:
        raise OfferEnded(_ended_words(hold, zone))
    return appointment


def offer_decline(*, clinic: Clinic, offer: WaitlistOffer, leave_list: bool = False) -> None:
    """The patient lets the place go (it is offered to the next); they stay on the list unless they ask to leave."""
    zone = ZoneInfo(offer.slot.session.time_zone)
    with transaction.atomic():
        hold = Hold.objects.for_clinic(clinic).get(pk=offer.hold_id)
        if hold.ended_at is not None:
            raise OfferEnded(_ended_words(hold, zone))
        hold_end(clinic=clinic, actor=None, hold=hold, outcome=HoldOutcome.DECLINED)
        audit_record(
            clinic=clinic, actor=None, action="waitlist.declined", target=offer, detail={"left_list": leave_list}
        )
        if leave_list:
            waitlist_remove(clinic=clinic, actor=None, entry=offer.entry, by="patient")


def waitlist_book(
    *,
    clinic: Clinic,
    actor: User,
    membership: Membership,
    entry: WaitlistEntry,
    slot: Slot,
    closed_override: str = "",
) -> Appointment:
    """Reception books the entry's patient straight into a place (source "waitlist"): with the entry's own offer of
    that place when it has one out; another offer it has out is withdrawn. The entry is done."""
    with transaction.atomic():
        locked = _entry_locked(clinic, entry, also=slot.pk)
        if locked.state not in (WaitlistState.WAITING, WaitlistState.OFFERED):
            raise BookingError(f"This entry is no longer waiting ({locked.get_state_display().lower()}).")
        own_hold = None
        for offer in _live_offers(clinic, locked):
            if offer.slot_id == slot.pk:
                own_hold = offer.hold
            else:
                hold_end(clinic=clinic, actor=actor, hold=offer.hold, outcome=HoldOutcome.WITHDRAWN)
        appointment = appointment_book(
            clinic=clinic,
            actor=actor,
            membership=membership,
            request=BookingRequest(
                slot=slot,
                patient=locked.patient,
                source=AppointmentSource.WAITLIST,
                hold=own_hold,
                closed_override=closed_override,
            ),
        )
        locked.state = WaitlistState.BOOKED
        locked.appointment = appointment
        locked.ended_at = timezone.now()
        locked.save(update_fields=["state", "appointment", "ended_at"])
        audit_record(clinic=clinic, actor=actor, action="waitlist.booked", target=locked)
    return appointment


def on_hold_ended(sender: Any, clinic_id: int, hold: int, outcome: str, **kwargs: Any) -> None:
    """An offer's hold ended without a booking (let go, ran out, withdrawn by a change): its entry waits again (the
    place itself was recorded as freed by the hold's end)."""
    WaitlistEntry.objects.for_clinic(clinic_id).filter(state=WaitlistState.OFFERED, offers__hold_id=hold).update(
        state=WaitlistState.WAITING
    )
