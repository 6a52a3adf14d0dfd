"""Writes of scheduling, one module per topic: rota, calendar, booking, series (import the topic module)."""
