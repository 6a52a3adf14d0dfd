"""What the tenant core tells its observers (calendar sync) about a change, inside the change's transaction.

The tenant core imports no domain app: a service sends a signal, and an app that cares connects a receiver
(see calendar_sync/apps.py) that only records its follow-up work as rows, which commit or roll back with
the change (as scheduling.signals does for calendars).
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the transaction that saved a clinic's settings, with clinic (the Clinic, saved) and fields (a
# frozenset of the names of the settings that changed).
clinic_settings_changed = Signal()
