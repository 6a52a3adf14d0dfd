"""Booking in one database call: the reception form's plain case on PostgreSQL, and the news it leaves for a worker.

A booking through the form and `appointment_book` makes about fifteen round trips and spends most of its time in
Python building them. The plain case (a patient who is neither blocked nor archived, the slot's own type and
practitioner, a free place, no closed group, no hold) is instead one call of `scheduling_quick_book`, a PL/pgSQL
function made by migration 0013: the same checks under the same locks, the same appointment, count and audit row.
Whatever it does not book it leaves untouched, with a word for why, and the caller books through the form and
`appointment_book` as before, which gives the reason in words. SQLite (the embedded default) always does.

The observers (calendar sync, notifications) hear of such a booking after commit: the call writes a PendingNews row
in the booking's transaction, and `news_tell` (a worker, nudged after commit, or beat's sweep) sends them the same
calendar_changed and patient_news that appointment_book sends inside its transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction

from clinic.nudges import cache_quietly, nudge
from scheduling.models import PendingNews
from scheduling.signals import announce_calendar_change, tell_patient

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic
    from scheduling.forms import PlainBooking

log = logging.getLogger(__name__)

BOOKED = "booked"
NOT_HERE = "sqlite"  # the database has no booking function: Python books


@dataclass(frozen=True)
class QuickBooking:
    """What the call did: `outcome` is BOOKED, or why it left the booking to Python (see migration 0013)."""

    outcome: str
    appointment: UUID | None = None
    starts_at: dt.datetime | None = None
    title: str = ""
    first_name: str = ""
    preferred_name: str = ""
    last_name: str = ""

    @property
    def booked(self) -> bool:
        return self.outcome == BOOKED


CALL = "SELECT * FROM scheduling_quick_book(%s, %s, %s, %s, %s, %s, %s::uuid[], %s, %s, %s)"


def quick_book(*, clinic: Clinic, actor: User, slot: UUID, booking: PlainBooking) -> QuickBooking:
    """Book the plain case in one call, or leave everything as it was and say why (then book through Python)."""
    if connection.vendor != "postgresql":
        return QuickBooking(NOT_HERE)
    arguments: list[Any] = [
        clinic.pk,
        actor.pk,
        slot,
        booking.patient,
        booking.slot_type,
        booking.department,
        list(booking.resources),
        booking.self_pay,
        booking.coverage,
        booking.secondary_coverage,
    ]
    try:
        if connection.in_atomic_block:
            # Inside a caller's transaction: a savepoint, so that an error leaves that transaction usable.
            with transaction.atomic():
                row = _call(arguments)
        else:
            # One statement in autocommit is its own transaction (no BEGIN and COMMIT round trips).
            row = _call(arguments)
    except IntegrityError:
        # The database's last guard (the exclusion constraint on a practitioner's single appointments): the locks
        # should leave nothing for it; Python books or refuses in words.
        return QuickBooking("overlap")
    outcome, appointment, starts_at, *names = row
    if outcome != BOOKED:
        return QuickBooking(str(outcome))
    from scheduling import tasks

    # After commit (at once outside a transaction); a burst of bookings makes one nudge, and the task tells all the
    # news waiting then (it lowers the flag before it reads).
    nudge(tasks.news_tell, once_per=NEWS_FLAG, once_seconds=NEWS_FLAG_SECONDS)
    title, first_name, preferred_name, last_name = (str(name or "") for name in names)
    return QuickBooking(
        BOOKED,
        appointment=appointment,
        starts_at=starts_at,
        title=title,
        first_name=first_name,
        preferred_name=preferred_name,
        last_name=last_name,
    )


def _call(arguments: list[Any]) -> tuple[Any, ...]:
    with connection.cursor() as cursor:
        cursor.execute(CALL, arguments)
        return cursor.fetchone()


NEWS_FLAG = "scheduling:news-nudged"
NEWS_FLAG_SECONDS = 10  # a nudge the broker lost holds back the next ones at most this long (then beat's sweep)
NEWS_PER_RUN = 500


def news_tell_waiting() -> int:
    """The nudged run: lower the burst's flag (a booking committed after this nudges again), then tell the news
    waiting, oldest first, until none is left."""
    cache_quietly(lambda: cache.delete(NEWS_FLAG), None)
    told = 0
    while True:
        # Across clinics: the worker's run over every clinic's news.
        waiting = list(PendingNews.objects.order_by("id").values_list("pk", flat=True)[:NEWS_PER_RUN])
        now_told = news_tell(waiting)
        told += now_told
        if len(waiting) < NEWS_PER_RUN or not now_told:  # the rest failed or is another worker's: the next run's
            return told


def news_tell(news_ids: Iterable[int]) -> int:
    """Tell the observers the news in these rows, each in its own transaction with the row's removal, so that a
    crash tells nothing twice; rows another worker is telling are left to it. How many were told."""
    told = 0
    for pk in sorted(set(news_ids)):
        try:
            told += _told(pk)
        except Exception as error:  # noqa: BLE001 - one row's failure must not hold back the rows after it
            # The class only (a message may quote patient data); the row stays for the next run.
            log.error("news %s not told (%s); it waits for the next run", pk, type(error).__name__)
    return told


def _told(pk: int) -> int:
    with transaction.atomic():
        # Across clinics: a task given these rows by id (each names its clinic).
        row = PendingNews.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
        if row is None:
            return 0
        _row_told(row)
    return 1


def _row_told(row: PendingNews) -> None:
    announce_calendar_change(row.practitioners, appointments=row.appointments)
    tell_patient(row.clinic_id, row.news, row.appointments)
    row.delete()


def news_told_first(clinic_id: int, appointment: int) -> None:
    """Before a change to an appointment booked in one call is told (its cancellation, its move), the booking's
    own news if it still waits, in the caller's transaction: the patient never hears of the change before the
    booking. A worker telling it at this moment is waited for (the row's lock); once it has, nothing is left.
    The caller holds the appointment's lock and has told no observer yet, so nothing the worker then needs is
    held here."""
    waiting = PendingNews.objects.for_clinic(clinic_id).select_for_update().order_by("id")
    if connection.vendor == "postgresql":
        rows = list(waiting.filter(appointments__contains=[appointment]))
    else:  # no JSON containment on SQLite, where the call never books and the table stays empty but for tests
        rows = [row for row in waiting if appointment in row.appointments]
    for row in rows:
        _row_told(row)


def news_sweep() -> int:
    """Beat's minute: news whose nudge was lost is told."""
    # Across clinics: beat's sweep.
    return news_tell(PendingNews.objects.order_by("id").values_list("pk", flat=True)[:NEWS_PER_RUN])
