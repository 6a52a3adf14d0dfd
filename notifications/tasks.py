"""Celery tasks of notifications (thin: the work is in sending.py and recording.py).

send_messages is safe to run twice or after a crash: it sends only what it claims (waiting → sending), so a
redelivered task, a second worker or an overlapping beat never sends a message again.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone


@shared_task(acks_late=True, ignore_result=True)
def send_messages(ids: list[int]) -> dict[str, int]:
    from notifications.sending import send_messages as send

    return send(ids)


@shared_task(acks_late=True, ignore_result=True)
def tick() -> dict[str, int]:
    """Every minute: reminders found, stale sends marked "delivery unknown", due messages handed out."""
    from clinic.nudges import nudge
    from notifications.sending import tick as run

    return run(timezone.now(), lambda ids: nudge(send_messages, ids))
