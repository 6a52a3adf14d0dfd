"""Reads behind the slot search and the directory resources (Schedule, Practitioner, PractitionerRole, Location,
Organization): only what the consumer may see, of its own clinic."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

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
    """The includes asked for that we serve, as _include, _include:recurse (GP Connect, STU3) or _include:iterate
    (FHIR R4's name for the same modifier, which R4 clients send); any is taken. Others are ignored, as GP Connect
    asks of unknown search filters. Schedule:actor:Practitioner brings each schedule's PractitionerRole too."""
    keys = ("_include", "_include:recurse", "_include:iterate")
    return {value for key in keys for value in params.getlist(key) if value in INCLUDES}


class SlotRow(NamedTuple):
    """A free slot as the search reads it: plain values (a 14-day search reads thousands)."""

    public_id: UUID
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    booked_count: int
    slot_type_id: int
    session_id: int


def free_slot_rows(
    *, consumer: Consumer, now: dt.datetime, first: dt.datetime, last: dt.datetime
) -> tuple[list[SlotRow], list[SlotType], dict[int, Session]]:
    """The search's free slots as plain rows, the consumer's types, and the slots' sessions (with practitioner and
    location): a fixed number of queries whatever the number of slots."""
    kinds = consumer_types(consumer)
    found = third_party_slots(clinic=consumer.clinic, slot_types=kinds, now=now, first=first, last=last)
    rows = [SlotRow(*row) for row in found.select_related(None).values_list(*SlotRow._fields)]
    sessions = (
        Session.objects.for_clinic(consumer.clinic)
        .filter(pk__in={row.session_id for row in rows})
        .select_related("practitioner", "location")
        if rows
        else []
    )
    return rows, kinds, {session.pk: session for session in sessions}


def session_clock(session: Session) -> dt.tzinfo:
    """The clock a session's slots are written on: its zone's offset when one offset holds from its start to its
    end (nearly always: a fixed offset is quicker to write thousands of times), else the zone itself (a session
    across a change of the clocks)."""
    zone = ZoneInfo(session.time_zone)
    offset = session.starts_at.astimezone(zone).utcoffset()
    if offset is not None and offset == session.ends_at.astimezone(zone).utcoffset():
        return dt.timezone(offset)
    return zone


def slot_search_bundle(
    *,
    consumer: Consumer,
    rows: list[SlotRow],
    kinds: list[SlotType],
    sessions: dict[int, Session],
    includes: set[str],
    base: str,
    self_url: str,
) -> dict[str, Any]:
    """The searchset Bundle of a free-slot search: the slots, then each included schedule, practitioner, role,
    location and the organisation once. What slots share (their type's serviceType and delivery channel, their
    session's clock and reference) is built once, and nothing empty is written (resources.py leaves out what it
    lacks), so the Bundle needs no pruning."""
    clinic = consumer.clinic
    by_type = {kind.pk: resources.slot_type_parts(kind) for kind in kinds}
    clocks = {pk: (session_clock(s), {"reference": f"Schedule/{s.public_id}"}) for pk, s in sessions.items()}
    match = {"mode": "match"}
    entries = []
    for row in rows:
        zone, schedule = clocks[row.session_id]
        public_id = str(row.public_id)
        resource = {
            "resourceType": "Slot",
            "id": public_id,
            **by_type[row.slot_type_id],
            "schedule": schedule,
            "status": "free",
            "start": row.starts_at.astimezone(zone).isoformat(timespec="seconds"),
            "end": row.ends_at.astimezone(zone).isoformat(timespec="seconds"),
        }
        if row.capacity > 1:
            resource["comment"] = resources.places_free(row.capacity, row.booked_count)
        entries.append({"fullUrl": f"{base}/Slot/{public_id}", "resource": resource, "search": match})
    included: list[dict[str, Any]] = []
    if "Slot:schedule" in includes and rows:
        practitioners: dict[int, Practitioner] = {}
        roles: set[tuple[int, str]] = set()
        locations: dict[int, Location] = {}
        for session in sessions.values():
            included.append(resources.schedule(session))
            if session.practitioner is not None:
                practitioners[session.practitioner.pk] = session.practitioner
                roles.add((session.practitioner.pk, session.practitioner_role))
            locations[session.location_id] = session.location
        if "Schedule:actor:Practitioner" in includes:
            included += [resources.practitioner(p) for p in practitioners.values()]
            included += [resources.practitioner_role(practitioners[pk], role, clinic) for pk, role in sorted(roles)]
        if "Schedule:actor:Location" in includes:
            included += [resources.location(location, clinic) for location in locations.values()]
        # GP Connect's known issue: the organisation comes with any slots found, asked for or not.
        included.append(resources.organization(clinic))
    entries += [
        {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "include"}}
        for r in included
    ]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(rows),
        "link": [{"relation": "self", "url": self_url}],
    }
    if entries:
        bundle["entry"] = entries
    return bundle


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def slot_of(consumer: Consumer, public_id: str, types: list[SlotType] | None = None) -> Slot | None:
    """A slot the consumer may see: in a GP Connect session, of one of its types (`types`, when the caller has
    read them already)."""
    pk = _uuid(public_id)
    if pk is None:
        return None
    kinds = consumer_types(consumer) if types is None else types
    return (
        Slot.objects.for_clinic(consumer.clinic)
        .select_related("slot_type", "session", "session__practitioner", "session__location")
        .filter(
            public_id=pk,
            session__gp_connect_bookable=True,
            slot_type__in=[kind.pk for kind in kinds],
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
