"""Celery tasks of online booking (thin: the work is in services)."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def checks_purge() -> int:
    """Hourly: email checks nobody finished are deleted with the details typed into them."""
    from online.services import checks_purge as purge

    return purge()
