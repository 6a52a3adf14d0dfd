"""Celery tasks of calendar sync (thin: the work is in services)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from calendar_sync.models import FeedSubscription
from calendar_sync.services import feed_build


@shared_task(acks_late=True)
def build_feed(subscription_id: int) -> str:
    """Bring a subscription's stored feed up to date. Idempotent: a fresh feed is left as it is."""
    subscription = FeedSubscription.objects.filter(pk=subscription_id, enabled=True).first()
    if subscription is None:
        return "gone"
    document = feed_build(subscription=subscription, now=timezone.now())
    return document.etag
