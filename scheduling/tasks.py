"""Celery tasks of scheduling (thin: the work is in services)."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def holds_expire() -> int:
    """Every minute: holds past their time end, freeing their places (their callers tell the patients)."""
    from scheduling.services.booking import holds_expire as expire

    return expire()
