"""Reads of scheduling, scoped to a clinic, one module per topic: rota, calendar, booking, series."""

# TEMPORARY (until the calendar_sync and benchmarks branches are merged): old import paths.
from scheduling.selectors.booking import next_available
from scheduling.selectors.calendar import free_times
from scheduling.selectors.series import series_preview

__all__ = ["free_times", "next_available", "series_preview"]
