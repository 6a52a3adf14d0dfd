"""The least a booking can cost on this stack: bookings with no rules, served by gunicorn beside the real form, for
``booking_bound`` (benchmarks/cases/booking_bound.py). Never part of the product: only the benchmark's own server
loads these settings, and nothing in clinic/ or the apps imports this package."""
