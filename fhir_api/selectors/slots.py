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


# The columns the Slot, Schedule, Practitioner, PractitionerRole and Location resources are built from (resources.py):
# a search reads thousands of rows of five models each, and building a model instance costs by the column.
RESOURCE_FIELDS = (
    "public_id",
    "session_id",
    "slot_type_id",
    "starts_at",
    "ends_at",
    "capacity",
    "booked_count",
    "slot_type__public_id",
    "slot_type__name",
    "slot_type__kind",
    "session__public_id",
    "session__practitioner_id",
    "session__location_id",
    "session__time_zone",
    "session__starts_at",
    "session__ends_at",
    "session__name",
    "session__description",
    "session__practitioner_role",
    "session__out_state",
    "session__practitioner__public_id",
    "session__practitioner__name",
    "session__practitioner__is_active",
    "session__location__public_id",
    "session__location__name",
    "session__location__is_active",
    "session__location__address",
    "session__location__postcode",
)


def free_slots(
    *, consumer: Consumer, now: dt.datetime, first: dt.datetime, last: dt.datetime, types: list[SlotType] | None = None
) -> list[Slot]:
    """The free slots the consumer may book, with what their resources need of them (RESOURCE_FIELDS)."""
    kinds = consumer_types(consumer) if types is None else types
    found = third_party_slots(clinic=consumer.clinic, slot_types=kinds, now=now, first=first, last=last)
    return list(found.only(*RESOURCE_FIELDS))


INCLUDES = {"Slot:schedule", "Schedule:actor:Practitioner", "Schedule:actor:Location", "Location:managingOrganization"}


def asked_includes(params: Any) -> set[str]:
    """The includes asked for that we serve, as _include or _include:recurse (GP Connect sends the schedule's
    actors and the location's organisation with :recurse; either is taken). Others are ignored, as GP Connect
    asks of unknown search filters. Schedule:actor:Practitioner brings each schedule's PractitionerRole too."""
    return {value for key in ("_include", "_include:recurse") for value in params.getlist(key) if value in INCLUDES}


def slot_search_bundle(
    *, consumer: Consumer, slots: list[Slot], includes: set[str], base: str, self_url: str
) -> dict[str, Any]:
    """The searchset Bundle of a free-slot search: the slots, then each included schedule, practitioner, role,
    location and the organisation once (built from the rows already read: no more queries)."""
    clinic = consumer.clinic
    matches = [resources.slot(row, free=True) for row in slots]
    included: dict[str, dict[str, Any]] = {}
    if "Slot:schedule" in includes:
        # Each resource is built the first time it is met only: a session's slots share it.
        for row in slots:
            session = row.session
            key = f"Schedule/{session.pk}"
            if key not in included:
                included[key] = resources.schedule(session)
            practitioner = session.practitioner
            if "Schedule:actor:Practitioner" in includes and practitioner is not None:
                key = f"Practitioner/{practitioner.pk}"
                if key not in included:
                    included[key] = resources.practitioner(practitioner)
                role = session.practitioner_role
                key = f"PractitionerRole/{practitioner.pk}-{role}"
                if key not in included:
                    included[key] = resources.practitioner_role(practitioner, role, clinic)
            if "Schedule:actor:Location" in includes:
                key = f"Location/{session.location_id}"
                if key not in included:
                    included[key] = resources.location(session.location, clinic)
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
