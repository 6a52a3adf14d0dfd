"""Writes of scheduling, one module per topic: rota, calendar, booking, series."""

# TEMPORARY (until the calendar_sync and benchmarks branches are merged): old import paths.
from scheduling.services.booking import BookingError, BookingRequest, appointment_book, appointment_cancel
from scheduling.services.calendar import EventData, other_event_delete, other_event_save
from scheduling.services.rota import SLOT_INSERT_COLUMNS, AllocationRequest, allocation_create

__all__ = [
    "SLOT_INSERT_COLUMNS",
    "AllocationRequest",
    "BookingError",
    "BookingRequest",
    "EventData",
    "allocation_create",
    "appointment_book",
    "appointment_cancel",
    "other_event_delete",
    "other_event_save",
]
