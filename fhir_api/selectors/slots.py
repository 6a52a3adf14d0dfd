"""Reads behind the slot search and the directory resources (Schedule, Practitioner, PractitionerRole, Location,
Organization): only what the consumer may see, of its own clinic."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from clinic.models import Location, Practitioner, PractitionerRole
from fhir_api import resources
from fhir_api.models import Consumer
from scheduling.models import Session, Slot
from scheduling.selectors.booking import third_party_slots
from sessions_setup.models import SlotType


def consumer_types(consumer: Consumer) -> list[SlotType]:
    """The slot types this consumer may see and book (active and bookable ones of those its admin chose)."""
    return list(consumer.slot_types.filter(is_active=True, bookable=True, clinic=consumer.clinic_id))


def free_slots(
    *, consumer: Consumer, now: dt.datetime, first: dt.datetime, last: dt.datetime, types: list[SlotType] | None = None
) -> list[Slot]:
    kinds = consumer_types(consumer) if types is None else types
    return list(third_party_slots(clinic=consumer.clinic, slot_types=kinds, now=now, first=first, last=last))


RECURSIVE_INCLUDES = {"Schedule:actor:Practitioner", "Schedule:actor:Location", "Location:managingOrganization"}
INCLUDES = {
    "_include": {"Slot:schedule"},
    # GP Connect (STU3) says :recurse; FHIR R4 renamed the modifier :iterate, which R4 clients send.
    "_include:recurse": RECURSIVE_INCLUDES,
    "_include:iterate": RECURSIVE_INCLUDES,
}


def asked_includes(params: Any) -> set[str]:
    """The _include and _include:recurse values asked for that we serve (others are ignored, as GP Connect
    asks of unknown search filters). Schedule:actor:Practitioner brings each schedule's PractitionerRole too."""
    asked: set[str] = set()
    for key, known in INCLUDES.items():
        asked |= {value for value in params.getlist(key) if value in known}
    return asked


def slot_search_bundle(
    *, consumer: Consumer, slots: list[Slot], includes: set[str], base: str, self_url: str
) -> dict[str, Any]:
    """The searchset Bundle of a free-slot search: the slots, then each included schedule, practitioner, role,
    location and the organisation once (built from the rows already read: no more queries)."""
    clinic = consumer.clinic
    matches = [resources.slot(row, free=True) for row in slots]
    included: dict[str, dict[str, Any]] = {}
    if "Slot:schedule" in includes:
        for row in slots:
            session = row.session
            included.setdefault(f"Schedule/{session.pk}", resources.schedule(session))
            practitioner = session.practitioner
            if "Schedule:actor:Practitioner" in includes and practitioner is not None:
                included.setdefault(f"Practitioner/{practitioner.pk}", resources.practitioner(practitioner))
                role = session.practitioner_role
                included.setdefault(
                    f"PractitionerRole/{practitioner.pk}-{role}",
                    resources.practitioner_role(practitioner, role, clinic),
                )
            if "Schedule:actor:Location" in includes:
                included.setdefault(f"Location/{session.location_id}", resources.location(session.location, clinic))
        # GP Connect's known issue: the organisation comes with any slots found, asked for or not.
        if slots:
            included.setdefault("Organization", resources.organization(clinic))
    return resources.bundle(matches, list(included.values()), base=base, self_url=self_url)


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def slot_of(consumer: Consumer, public_id: str) -> Slot | None:
    """A slot the consumer may see: in a GP Connect session, of one of its types."""
    pk = _uuid(public_id)
    if pk is None:
        return None
    return (
        Slot.objects.for_clinic(consumer.clinic)
        .select_related("slot_type", "session", "session__practitioner", "session__location")
        .filter(
            public_id=pk,
            session__gp_connect_bookable=True,
            slot_type__in=[kind.pk for kind in consumer_types(consumer)],
        )
        .first()
    )


def schedule_of(consumer: Consumer, public_id: str) -> Session | None:
    pk = _uuid(public_id)
    if pk is None:
        return None
    return (
        Session.objects.for_clinic(consumer.clinic)
        .select_related("practitioner", "location")
        .filter(public_id=pk, gp_connect_bookable=True)
        .first()
    )


def practitioner_of(consumer: Consumer, public_id: str) -> Practitioner | None:
    pk = _uuid(public_id)
    return Practitioner.objects.for_clinic(consumer.clinic).filter(public_id=pk).first() if pk else None


def practitioner_role_of(consumer: Consumer, role_id: str) -> tuple[Practitioner, str] | None:
    """A PractitionerRole id is the practitioner's id and the role's code."""
    practitioner_id, _, role = role_id.rpartition("-")
    if role not in PractitionerRole.values:
        return None
    found = practitioner_of(consumer, practitioner_id)
    return (found, role) if found is not None else None


def location_of(consumer: Consumer, public_id: str) -> Location | None:
    pk = _uuid(public_id)
    return Location.objects.for_clinic(consumer.clinic).filter(public_id=pk).first() if pk else None
