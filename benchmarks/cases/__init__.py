"""The benchmark cases, one module per family. ``from benchmarks.cases import CASES`` gives them all.

Add one with ``register(Case(name, setup, run, floor, check=...))`` (``benchmarks.cases.common``) or, for a page,
``page_case``. A case's checks call ``benchmarks.harness.checked()``: the harness counts them, and fails a case that
ran none. Each family takes its sizes from one frozen dataclass with a FULL and a TINY instance
(``benchmarks.harness.sized``).

Imported by the harness only after it has pointed DATABASE_URL at the benchmarks' own database, chosen the size
and loaded the apps, and set up only after migrate and seed_demo: setups may rely on the demo clinics (logins like
admin@riverside.example).
"""

from __future__ import annotations

import importlib

from benchmarks.cases.common import CASES, register

# One module per family, imported (and so registered) in the order the cases run: ics before google, whose case
# builds on the ics cases' feed; changes last, as the year of rota and bookings it builds stays in the database.
FAMILIES = (
    "pages",
    "rota",
    "patients",
    "calendar",
    "booking",
    "booking_bound",
    "next_available",
    "series",
    "ics",
    "google",
    "reminders",
    "online",
    "waitlist",
    "fhir",
    "changes",
)
for family in FAMILIES:
    importlib.import_module(f"{__name__}.{family}")

__all__ = ["CASES", "FAMILIES", "register"]
