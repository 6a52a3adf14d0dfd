"""Celery tasks of scheduling (thin: the work is in services)."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def holds_expire() -> int:
    """Every minute: holds past their time end, freeing their places (their callers tell the patients)."""
    from scheduling.services.booking import holds_expire as expire

    return expire()


@shared_task(ignore_result=True)
def waitlist_offer(freed_ids: list[int]) -> int:
    """Offer the places these rows freed to the first people waiting (the rows were written with the change)."""
    from scheduling.services.waitlist import freed_offer

    return freed_offer(freed_ids)


@shared_task(ignore_result=True)
def waitlist_sweep() -> int:
    """Every minute: freed places whose nudge was lost, or that waited out quiet hours, are offered."""
    from scheduling.services.waitlist import freed_sweep

    return freed_sweep()


@shared_task(ignore_result=True)
def news_tell() -> int:
    """Tell calendar sync and notifications of the bookings made in one database call (rows written with them)."""
    from scheduling.services.quick import news_tell_waiting

    return news_tell_waiting()


@shared_task(ignore_result=True)
def news_sweep() -> int:
    """Every minute: news whose nudge was lost is told."""
    from scheduling.services.quick import news_sweep as sweep

    return sweep()
