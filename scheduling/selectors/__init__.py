"""Reads of scheduling, scoped to a clinic, one module per topic: rota, calendar, booking, series (import the
topic module)."""
