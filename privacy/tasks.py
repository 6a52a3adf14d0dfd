"""Celery tasks of privacy (thin: each imports the service it runs inside its body)."""

from __future__ import annotations

from celery import shared_task


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
