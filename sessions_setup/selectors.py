"""Reads of slot types and session templates, scoped to a clinic."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db.models import Count, Prefetch, QuerySet, Sum

from sessions_setup.models import SessionTemplate, SlotType, TemplateSlot

if TYPE_CHECKING:
    from clinic.models import Clinic


def slot_types_list(*, clinic: Clinic, active_only: bool = False) -> QuerySet[SlotType]:
    qs = SlotType.objects.for_clinic(clinic)
    return qs.filter(is_active=True) if active_only else qs


def default_slot_type(slot_types: Iterable[SlotType]) -> SlotType | None:
    """The default slot type: the first active one in the list order."""
    return next((t for t in slot_types if t.is_active), None)


def used_colours(*, clinic: Clinic) -> set[str]:
    """Colours already used by the clinic's slot types and session headers."""
    return set(SlotType.objects.for_clinic(clinic).values_list("colour", flat=True)) | set(
        SessionTemplate.objects.for_clinic(clinic).values_list("colour", flat=True)
    )


def session_templates_list(*, clinic: Clinic) -> QuerySet[SessionTemplate]:
    return (
        SessionTemplate.objects.for_clinic(clinic)
        .select_related("location")
        .annotate(slot_count=Count("slots"), duration_minutes=Sum("slots__length_minutes"))
        # A GROUP BY query drops Meta.ordering, so the list order is said again here.
        .order_by("position", "name", "id")
    )


def session_template_with_slots(*, clinic: Clinic) -> QuerySet[SessionTemplate]:
    """Templates with their slots (and slot types) prefetched in order."""
    return SessionTemplate.objects.for_clinic(clinic).prefetch_related(
        Prefetch(
            "slots", queryset=TemplateSlot.objects.for_clinic(clinic).select_related("slot_type").order_by("position")
        )
    )
