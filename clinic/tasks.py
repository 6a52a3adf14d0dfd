"""Tasks of the tenant core."""

from __future__ import annotations

from celery import shared_task
from django.db import connection


@shared_task
def ping(token: str) -> dict[str, str]:
    """Round-trip check for the worker: answers with the token and the worker's database vendor."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"token": token, "database": connection.vendor}
