"""Reads of the consumers page: each consumer with its client id, slot types, bookings and last call."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F, Max

from clinic.models import AuditEvent, Clinic
from fhir_api.models import Consumer

CALLS_SHOWN = 20


def consumer_list_rows(clinic: Clinic) -> list[Consumer]:
    """Every consumer of the clinic (live ones first), with its client, slot types, bookings made and last call
    (`last_call`): four queries whatever the number."""
    consumers = list(
        Consumer.objects.for_clinic(clinic)
        .select_related("application")
        .prefetch_related("slot_types")
        .annotate(booked=Count("bookings"))
        .order_by(F("revoked_at").asc(nulls_first=True), "name", "id")
    )
    last = dict(
        AuditEvent.objects.filter(
            clinic=clinic,
            object_type="fhir_api.consumer",
            object_id__in=[str(c.public_id) for c in consumers],
            action__startswith="fhir.",
        )
        .exclude(action__startswith="fhir.consumer.")
        .order_by()
        .values("object_id")
        .annotate(last=Max("created_at"))
        .values_list("object_id", "last")
    )
    for consumer in consumers:
        consumer.last_call = last.get(str(consumer.public_id))
    return consumers


def recent_calls(clinic: Clinic, consumer: Consumer) -> list[dict[str, Any]]:
    """The consumer's last calls (newest first): when, what, the answer, and who it named."""
    rows = (
        AuditEvent.objects.filter(
            clinic=clinic,
            object_type="fhir_api.consumer",
            object_id=str(consumer.public_id),
            action__startswith="fhir.",
        )
        .exclude(action__startswith="fhir.consumer.")
        .order_by("-created_at", "-id")[:CALLS_SHOWN]
    )
    return [
        {
            "at": row.created_at,
            "interaction": row.action.removeprefix("fhir."),
            "status": row.detail.get("status"),
            "practitioner": row.detail.get("requesting_practitioner", ""),
            "organisation": row.detail.get("requesting_organisation", ""),
        }
        for row in rows
    ]
