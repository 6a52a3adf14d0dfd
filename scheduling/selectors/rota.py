"""Reads of the rota: allocations, the sessions of a day, and the booked slots that hold an allocation."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.db.models import Count, F, Q, QuerySet, Sum

from scheduling.models import (
    Allocation,
    Session,
    Slot,
)

if TYPE_CHECKING:
    from clinic.models import Clinic


def allocations_list(*, clinic: Clinic, today: dt.date) -> QuerySet[Allocation]:
    return (
        Allocation.objects.for_clinic(clinic)
        .select_related("template", "practitioner", "location")
        .annotate(
            session_count=Count("sessions", distinct=True),
            future_count=Count("sessions", filter=Q(sessions__date__gte=today), distinct=True),
        )
    )


def sessions_of_day(*, clinic: Clinic, date: dt.date) -> QuerySet[Session]:
    """Every session on a local date, with free and booked slot counts, in one query."""
    bookable = Q(slots__bookable=True)
    return (
        Session.objects.for_clinic(clinic)
        .filter(date=date)
        .select_related("practitioner", "location")
        .annotate(
            slot_count=Count("slots", filter=bookable),
            capacity_total=Sum("slots__capacity", filter=bookable, default=0),
            booked_total=Sum("slots__booked_count", filter=bookable, default=0),
        )
        .annotate(free_total=F("capacity_total") - F("booked_total"))
        .order_by("starts_at", "practitioner__name", "id")
    )


def booked_future_slots(*, clinic: Clinic, allocation: Allocation, from_date: dt.date) -> QuerySet[Slot]:
    """Slots of the allocation's sessions from `from_date` on that hold bookings (or held them)."""
    return (
        Slot.objects.for_clinic(clinic)
        .filter(session__allocation=allocation, session__date__gte=from_date)
        # Cancelled appointments keep their slot too: the history must not be deleted with it.
        .filter(Q(booked_count__gt=0) | Q(appointments__isnull=False))
        .distinct()
        .select_related("session", "session__practitioner", "slot_type")
        .order_by("starts_at")
    )
