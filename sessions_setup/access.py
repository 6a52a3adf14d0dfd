"""Which slot type or session template a URL names: the object of this clinic, or a 404.

The pages themselves need "Schedule Admin: Manage Sessions" (checked by the views' decorator).
"""

from __future__ import annotations

from uuid import UUID

from clinic.access import ClinicRequest, scoped_get_or_404
from sessions_setup import selectors
from sessions_setup.models import SessionTemplate, SlotType


def slot_type_for_manager(request: ClinicRequest, slot_type_id: UUID) -> SlotType:
    return scoped_get_or_404(SlotType, request.clinic, public_id=slot_type_id)


def template_for_manager(request: ClinicRequest, template_id: UUID) -> SessionTemplate:
    """A session template with its slots (for the builder)."""
    return scoped_get_or_404(
        selectors.session_template_with_slots(clinic=request.clinic), request.clinic, public_id=template_id
    )
