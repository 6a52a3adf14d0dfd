"""Celery tasks of privacy (thin: the work is in privacy/services).

send_break_glass_alerts is safe to run twice or after a crash: it sends only what it claims (waiting → sending), so
a redelivered task, a second worker or the sweep never emails an officer twice about one use. Each task imports
the service it runs inside its body.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone


@shared_task(acks_late=True, ignore_result=True)
def send_break_glass_alerts(ids: list[int]) -> dict[str, int]:
    from privacy.services.breakglass import alerts_send

    return alerts_send(ids)


@shared_task(acks_late=True, ignore_result=True)
def break_glass_alerts_sweep() -> int:
    """Beat, every minute: alerts whose nudge was lost (or whose retry is due) are handed out again."""
    from clinic.nudges import nudge
    from privacy.selectors.breakglass import alerts_waiting

    ids = alerts_waiting(timezone.now())
    if ids:
        nudge(send_break_glass_alerts, ids)
    return len(ids)


@shared_task(ignore_result=True)
def clinic_export_run(export_id: int) -> str:
    """Write a queued clinic export's zip (the row was written with the request)."""
    from privacy.services.clinic_export import clinic_export_run as run

    return run(export_id)


@shared_task(ignore_result=True)
def clinic_export_sweep() -> int:
    """Every minute: exports whose nudge was lost are run, stopped ones failed, expired files deleted."""
    from privacy.services.clinic_export import clinic_export_sweep as sweep

    return sweep()
