"""How a patient is named outside their record: on the calendar, and in external calendars."""

from __future__ import annotations

from django.db import models


class IdentifierMode(models.TextChoices):
    """What an external calendar may show of a patient (the ICS and Google issues use these)."""

    INTERNAL_ID = "internal_id", "Internal ID"
    INITIALS = "initials", "Initials"
    FIRST_NAME = "first_name", "First name"
    FULL_NAME = "full_name", "Full name"


RESTRICTED_LABEL = "Restricted patient"


def mode_in_use(mode: str, *, internal_ids_enabled: bool) -> str:
    """The identifier mode an external calendar gets now: a chosen Internal ID falls back to initials while
    the clinic has internal IDs off (and comes back when they are on again)."""
    if mode == IdentifierMode.INTERNAL_ID and not internal_ids_enabled:
        return IdentifierMode.INITIALS
    return mode


def patient_identifier(
    *, first_name: str, last_name: str, internal_id: str, mode: str, preferred_name: str = ""
) -> str:
    """The patient as the identifier mode allows, and no more."""
    first = preferred_name or first_name
    if mode == IdentifierMode.FULL_NAME:
        return f"{first} {last_name}".strip()
    if mode == IdentifierMode.FIRST_NAME:
        return first
    if mode == IdentifierMode.INITIALS:
        return "".join(part[:1].upper() for part in (first, last_name) if part)
    return internal_id


def staff_label(
    *,
    first_name: str,
    last_name: str,
    preferred_name: str,
    internal_id: str,
    is_blocked: bool,
    may_see_blocked: bool,
    internal_ids_enabled: bool,
) -> str:
    """The patient on the practice's own calendar: the name (with the internal ID when the clinic
    uses them); a blocked patient is only "Restricted patient" to staff without the permission."""
    if is_blocked and not may_see_blocked:
        return RESTRICTED_LABEL
    name = patient_identifier(
        first_name=first_name,
        last_name=last_name,
        preferred_name=preferred_name,
        internal_id=internal_id,
        mode=IdentifierMode.FULL_NAME,
    )
    return f"{name} · {internal_id}" if internal_ids_enabled else name
