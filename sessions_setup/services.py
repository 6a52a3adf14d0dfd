"""Writes of slot types and session templates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction

from clinic.services import audit_record
from sessions_setup.builder import BuilderSlot
from sessions_setup.models import SessionTemplate, SlotType, TemplateSlot

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic
    from sessions_setup.forms import SessionTemplateForm


def session_template_save(
    *, clinic: Clinic, actor: User, form: SessionTemplateForm, slots: Sequence[BuilderSlot]
) -> SessionTemplate:
    """Save a template and replace its slot list, in one transaction."""
    if not slots:
        raise ValidationError("A session needs at least one slot.")
    type_ids = {s.slot_type_id for s in slots if s.slot_type_id is not None}
    known = set(SlotType.objects.for_clinic(clinic).filter(pk__in=type_ids).values_list("pk", flat=True))
    if type_ids - known:
        raise ValidationError("A slot type in this session no longer exists; reload the page.")
    created = form.instance._state.adding
    with transaction.atomic():
        if created:
            form.instance.clinic = clinic
            last = SessionTemplate.objects.for_clinic(clinic).order_by("-position").values_list("position", flat=True)
            form.instance.position = (last.first() or 0) + 1
        template = form.save()
        template_slots_replace(clinic=clinic, template=template, slots=slots)
        audit_record(
            clinic=clinic,
            actor=actor,
            action=f"sessiontemplate.{'created' if created else 'updated'}",
            target=template,
            detail={"slots": len(slots), "fields": sorted(form.changed_data)},
        )
    return template


def template_slots_replace(*, clinic: Clinic, template: SessionTemplate, slots: Sequence[BuilderSlot]) -> None:
    """Store `slots` as the template's slot list, in order (inside the caller's transaction)."""
    TemplateSlot.objects.for_clinic(clinic).filter(template=template).delete()
    TemplateSlot.objects.bulk_create(
        TemplateSlot(
            clinic=clinic, template=template, position=i, slot_type_id=s.slot_type_id, length_minutes=s.length_minutes
        )
        for i, s in enumerate(slots)
    )


def session_templates_reorder(*, clinic: Clinic, actor: User, ordered_ids: Sequence[str]) -> None:
    """Store the list order of the clinic's templates (public ids, first to last)."""
    templates = {str(t.public_id): t for t in SessionTemplate.objects.for_clinic(clinic)}
    if set(ordered_ids) != set(templates) or len(ordered_ids) != len(templates):
        raise ValidationError("The list changed while you were sorting it; reload the page and try again.")
    with transaction.atomic():
        for position, public_id in enumerate(ordered_ids, start=1):
            templates[public_id].position = position
        SessionTemplate.objects.bulk_update(templates.values(), ["position"])
        audit_record(clinic=clinic, actor=actor, action="sessiontemplate.reordered", detail={"count": len(templates)})


class TemplateListChanged(ValidationError):
    """The order posted does not name the templates there are: one was added or removed meanwhile."""


def session_templates_arrange(
    *, saved: Sequence[SessionTemplate], posted: Sequence[str] | None, action: str
) -> list[SessionTemplate]:
    """The session list's order on screen: the unsaved order posted (public ids; None: the saved order) after
    "sort" (A–Z) or "up:<id>" / "down:<id>" (a swap with the neighbour). Nothing is stored here."""
    by_id = {str(t.public_id): t for t in saved}
    order = list(saved) if posted is None else [t for t in (by_id.get(i) for i in posted) if t]
    if len(order) != len(saved):
        raise TemplateListChanged("The list changed while you were sorting it; it has been reloaded.")
    if action == "sort":
        return sorted(order, key=lambda t: t.name.casefold())
    if action.startswith(("up:", "down:")):
        move, _, public_id = action.partition(":")
        index = next((i for i, t in enumerate(order) if str(t.public_id) == public_id), None)
        target = None if index is None else index + (-1 if move == "up" else 1)
        if index is not None and target is not None and 0 <= target < len(order):
            order[index], order[target] = order[target], order[index]
    return order
