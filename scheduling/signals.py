"""What scheduling tells its observers (calendar sync, notifications) about a change, inside the
change's transaction.

Scheduling never imports calendar_sync: its services announce which practitioners' calendars changed,
and calendar_sync connects a receiver (see calendar_sync/apps.py). Receivers only write rows (a feed
change, a pending Google change), so the follow-up work commits or rolls back with the change itself;
they nudge workers after commit (clinic/nudges.py), and nothing here waits on the broker.

One exception: a booking made in one database call (scheduling.services.quick, the reception form's plain case on
PostgreSQL) writes a PendingNews row instead, and a worker sends these same signals after commit.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.dispatch import Signal

# Sent inside the change's transaction with practitioner_ids (a frozenset of the primary keys whose
# calendars changed) and keys: the changed items, "a<pk>" for an appointment and "e<pk>" for an other
# event, or None when the change may touch anything on those calendars.
calendar_changed = Signal()


def announce_calendar_change(
    practitioner_ids: Iterable[int | None], *, appointments: Iterable[int] = (), events: Iterable[int] = ()
) -> None:
    """Send calendar_changed now, in the caller's transaction: the receivers' rows commit with the change, and
    a rollback leaves none. A receiver's error fails the change (all or nothing)."""
    ids = frozenset(pk for pk in practitioner_ids if pk is not None)
    keys = frozenset([*(f"a{pk}" for pk in appointments), *(f"e{pk}" for pk in events)]) or None
    if ids:
        # Outside a transaction, the receivers' rows still go in as one (savepoint=False: no extra queries
        # inside the caller's transaction, whose rollback takes them anyway).
        with transaction.atomic(savepoint=False):
            calendar_changed.send(sender=None, practitioner_ids=ids, keys=keys)


# Asked while drawing a calendar: which of these practitioners (practitioner_ids, a list of primary keys)
# send their client events to Google two ways? A receiver returns a set of those keys. Their booked
# appointments show a lock: the title in Google is set here.
google_synced_query = Signal()


def practitioners_synced_to_google(practitioner_ids: list[int]) -> set[int]:
    if not practitioner_ids:
        return set()
    synced: set[int] = set()
    for _receiver, answer in google_synced_query.send(sender=None, practitioner_ids=practitioner_ids):
        synced.update(int(pk) for pk in (answer or ()))
    return synced


# Sent inside the change's transaction when a patient should hear of it (notifications observes it), with:
#   clinic_id; news, one of PatientNews; appointments, the primary keys concerned in time order (a series'
#   booked occurrences, or the appointments one cancellation took); previous, the appointment a move left (its
#   primary key, for MOVED); category, the CancelCategory of a cancellation.
# A reschedule is one MOVED, never a cancellation plus a booking; a series is one SERIES.
patient_news = Signal()


class PatientNews:
    BOOKED = "booked"
    SERIES = "series"
    MOVED = "moved"
    CANCELLED = "cancelled"


def tell_patient(
    clinic_id: int, news: str, appointments: Iterable[int], *, previous: int | None = None, category: str = ""
) -> None:
    """Send patient_news now, in the caller's transaction (its receivers only write rows)."""
    pks = tuple(appointments)
    if pks:
        with transaction.atomic(savepoint=False):
            patient_news.send(
                sender=None, clinic_id=clinic_id, news=news, appointments=pks, previous=previous, category=category
            )


# Sent inside the change's transaction when a hold ends without becoming an appointment (declined, withdrawn or
# expired), with clinic_id, hold (its primary key) and outcome (a HoldOutcome): the caller that took it (online,
# waitlist) tells its patient. An accepted hold is a booking, told as one.
hold_ended = Signal()


# Asked while drawing an appointment's page (or its popup step), with request and appointment (one the member
# may see): observers add a section of their own (notifications: the messages about it). A receiver returns
# rendered HTML (a SafeString) or None; the page shows the sections in the order of the answers.
appointment_sections = Signal()


def appointment_page_sections(request: object, appointment: object) -> list[str]:
    answers = appointment_sections.send(sender=None, request=request, appointment=appointment)
    return [html for _receiver, html in answers if html]


# Sent inside the offer's transaction when a freed place is offered to a waitlist entry, with clinic_id and offer
# (the WaitlistOffer's primary key): notifications records the offer's messages (with its link) in that transaction.
waitlist_offered = Signal()


def tell_offer(clinic_id: int, offer: int) -> None:
    with transaction.atomic(savepoint=False):
        waitlist_offered.send(sender=None, clinic_id=clinic_id, offer=offer)


# Asked before a freed place is offered, with clinic_id, zone (a ZoneInfo: the slot's location) and now: when the
# clinic's quiet hours end, if now is inside them (notifications answers with a datetime), else None. Offers never
# go out in quiet hours: the freed place waits until they end.
quiet_hours_query = Signal()


def quiet_hours_end(clinic_id: int, zone: object, now: object) -> object:
    for _receiver, answer in quiet_hours_query.send(sender=None, clinic_id=clinic_id, zone=zone, now=now):
        if answer is not None:
            return answer
    return None


# Asked while drawing a calendar, a slot's tooltip or an appointment's page, with clinic_id and appointments (the
# primary keys of appointments whose source is not reception): an observer that knows more of where some came from
# answers {pk: words}, e.g. fhir_api names the consumer ("Booked through the FHIR API by NHS 111"). One question per
# page, asked only when such appointments are on it.
source_names_query = Signal()


def source_names(clinic_id: int, appointment_ids: Iterable[int]) -> dict[int, str]:
    pks = sorted(set(appointment_ids))
    names: dict[int, str] = {}
    if pks:
        for _receiver, answer in source_names_query.send(sender=None, clinic_id=clinic_id, appointments=pks):
            if isinstance(answer, dict):
                names.update(answer)
    return names
