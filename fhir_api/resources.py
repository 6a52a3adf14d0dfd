"""Our rows as FHIR R4 resources (plain dicts, serialised as application/fhir+json), after GP Connect Appointment
Management: Slot, Schedule, Practitioner, PractitionerRole, Location, Organization, Patient, Appointment, and the
OperationOutcome of every error. Times carry the offset of the session's own clock (a DST day keeps local times).

Ids are our public ids (UUIDs). A PractitionerRole is a practitioner in one role: its id is the practitioner's id
and the role's code, so a session's role (which may differ from the practitioner's usual one) has a resource of
its own without a table.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from clinic.models import PractitionerRole as Role
from scheduling.models import AppointmentStatus, CancelCategory
from sessions_setup.models import SlotKind

if TYPE_CHECKING:
    from clinic.models import Clinic, Location, Practitioner
    from fhir_api.models import FhirBooking
    from patients.models import Patient
    from scheduling.models import Appointment, Session, Slot

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_CODE = "https://fhir.nhs.uk/Id/ods-organization-code"
ORGANISATION_TYPE = "https://fhir.nhs.uk/STU3/CodeSystem/GPConnect-OrganisationType-1"
DELIVERY_CHANNEL = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2"
PRACTITIONER_ROLE_EXTENSION = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-PractitionerRole-1"
BOOKING_ORGANISATION = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-BookingOrganisation-1"
SPINE_ERROR = "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1"
# Our own code systems and identifiers (URNs: nothing to resolve).
ROLE_CODES = "urn:clinic-scheduler:practitioner-role"
SLOT_TYPES = "urn:clinic-scheduler:slot-type"
CLINIC_IDENTIFIER = "urn:clinic-scheduler:clinic"


def internal_id_system(clinic: Clinic) -> str:
    """The identifier system of a clinic's internal patient IDs (each clinic numbers its own)."""
    return f"urn:clinic-scheduler:internal-id:{clinic.public_id}"


def instant(moment: dt.datetime, zone: str) -> str:
    """An instant on the given clock, with its offset: 2026-03-29T09:00:00+01:00."""
    return moment.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")


def role_id(practitioner: Practitioner, role: str) -> str:
    return f"{practitioner.public_id}-{role}"


DELIVERY = {
    SlotKind.FACE_TO_FACE: "In-person",
    SlotKind.HOME_VISIT: "In-person",
    SlotKind.TELEPHONE: "Telephone",
    SlotKind.VIDEO: "Video",
}


def _service_type(slot_type: Any) -> list[dict[str, Any]]:
    if slot_type is None:
        return []
    return [
        {
            "coding": [{"system": SLOT_TYPES, "code": str(slot_type.public_id), "display": slot_type.name}],
            "text": slot_type.name,
        }
    ]


def slot_type_parts(slot_type: Any) -> dict[str, Any]:
    """What a Slot says of its type: the delivery channel (GP Connect's extension) and the serviceType."""
    if slot_type is None:
        return {}
    return {
        "extension": [{"url": DELIVERY_CHANNEL, "valueCode": DELIVERY[SlotKind(slot_type.kind)]}],
        "serviceType": _service_type(slot_type),
    }


def places_free(capacity: int, booked: int) -> str:
    return f"Group: {capacity - booked} of {capacity} places free"


def _role_concept(role: str) -> dict[str, Any]:
    return {"coding": [{"system": ROLE_CODES, "code": role, "display": Role(role).label}], "text": Role(role).label}


def slot(row: Slot, *, free: bool) -> dict[str, Any]:
    session = row.session
    resource: dict[str, Any] = {
        "resourceType": "Slot",
        "id": str(row.public_id),
        **slot_type_parts(row.slot_type),
        "schedule": {"reference": f"Schedule/{session.public_id}"},
        "status": "free" if free else "busy",
        "start": instant(row.starts_at, session.time_zone),
        "end": instant(row.ends_at, session.time_zone),
    }
    if row.capacity > 1:
        resource["comment"] = places_free(row.capacity, row.booked_count)
    return resource


def schedule(session: Session) -> dict[str, Any]:
    actors = []
    if session.practitioner is not None:
        actors.append({"reference": f"Practitioner/{session.practitioner.public_id}"})
        if session.practitioner_role:
            actors.append({"reference": f"PractitionerRole/{role_id(session.practitioner, session.practitioner_role)}"})
    actors.append({"reference": f"Location/{session.location.public_id}"})
    resource: dict[str, Any] = {
        "resourceType": "Schedule",
        "id": str(session.public_id),
        "active": not session.out_state,
        "actor": actors,
        "planningHorizon": {
            "start": instant(session.starts_at, session.time_zone),
            "end": instant(session.ends_at, session.time_zone),
        },
        "comment": session.description or session.name,
    }
    if session.practitioner_role:
        resource["extension"] = [
            {"url": PRACTITIONER_ROLE_EXTENSION, "valueCodeableConcept": _role_concept(session.practitioner_role)}
        ]
        resource["serviceCategory"] = [_role_concept(session.practitioner_role)]
    return resource


def practitioner(row: Practitioner) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": str(row.public_id),
        "active": row.is_active,
        "name": [{"text": row.name}],
    }


def practitioner_role(row: Practitioner, role: str, clinic: Clinic) -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole",
        "id": role_id(row, role),
        "active": row.is_active,
        "practitioner": {"reference": f"Practitioner/{row.public_id}", "display": row.name},
        "organization": {"reference": f"Organization/{clinic.public_id}", "display": clinic.name},
        "code": [_role_concept(role)],
    }


def location(row: Location, clinic: Clinic) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": str(row.public_id),
        "status": "active" if row.is_active else "inactive",
        "name": row.name,
        "managingOrganization": {"reference": f"Organization/{clinic.public_id}", "display": clinic.name},
    }
    address = {k: v for k, v in {"text": row.address.strip(), "postalCode": row.postcode.strip()}.items() if v}
    if address:
        resource["address"] = address
    return resource


def organization(clinic: Clinic) -> dict[str, Any]:
    identifiers = [{"system": CLINIC_IDENTIFIER, "value": clinic.slug}]
    if clinic.ods_code:
        identifiers.insert(0, {"system": ODS_CODE, "value": clinic.ods_code})
    return {
        "resourceType": "Organization",
        "id": str(clinic.public_id),
        "active": True,
        "identifier": identifiers,
        "name": clinic.name,
        "type": [{"coding": [{"system": ORGANISATION_TYPE, "code": "gp-practice", "display": "GP Practice"}]}],
    }


def patient_identifiers(row: Patient, clinic: Clinic) -> list[dict[str, str]]:
    found = []
    if row.national_id and row.national_id_kind == "nhs":
        found.append({"system": NHS_NUMBER, "value": row.national_id})
    if clinic.internal_ids_enabled and row.internal_id:
        found.append({"system": internal_id_system(clinic), "value": row.internal_id})
    return found


def patient(row: Patient, clinic: Clinic) -> dict[str, Any]:
    """Only what booking needs: identifiers, name, sex and date of birth (no contact details, no notes)."""
    name: dict[str, Any] = {"use": "official", "family": row.last_name, "given": [row.first_name]}
    if row.title:
        name["prefix"] = [row.title]
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(row.public_id),
        "active": not row.is_archived,
        "name": [name],
        "gender": row.sex if row.sex in {"male", "female", "other", "unknown"} else "unknown",
        "birthDate": row.date_of_birth.isoformat(),
    }
    identifiers = patient_identifiers(row, clinic)
    if identifiers:
        resource["identifier"] = identifiers
    return resource


APPOINTMENT_STATUS = {
    AppointmentStatus.BOOKED: "booked",
    AppointmentStatus.ARRIVED: "arrived",
    AppointmentStatus.IN_CONSULTATION: "arrived",
    AppointmentStatus.COMPLETED: "fulfilled",
    AppointmentStatus.DID_NOT_ATTEND: "noshow",
    AppointmentStatus.CANCELLED: "cancelled",
}


def version_of(appointment: Appointment, booking: FhirBooking | None) -> str:
    """The appointment's version (meta.versionId and the ETag): it changes whenever reception or the consumer
    changes the appointment."""
    moments = [appointment.updated_at] + ([booking.updated_at] if booking is not None else [])
    return str(int(max(moments).timestamp() * 1_000_000))


def appointment(row: Appointment, booking: FhirBooking | None, consumer_id: int | None) -> dict[str, Any]:
    """An appointment as a consumer reads it. Reception's cancellation reason may be clinical: a consumer reads
    only the category, unless it cancelled the appointment itself."""
    session = row.slot.session
    zone = session.time_zone
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(row.public_id),
        "meta": {"versionId": version_of(row, booking), "lastUpdated": row.updated_at.isoformat(timespec="seconds")},
        "status": APPOINTMENT_STATUS[AppointmentStatus(row.status)],
        "serviceType": _service_type(row.slot_type),
        "description": booking.description if booking is not None else (row.slot_type.name if row.slot_type else ""),
        "start": instant(row.starts_at, zone),
        "end": instant(row.ends_at, zone),
        "minutesDuration": max(1, int((row.ends_at - row.starts_at).total_seconds() // 60)),
        "slot": [{"reference": f"Slot/{row.slot.public_id}"}],
        "created": instant(row.created_at, zone),
        "participant": [
            {"actor": {"reference": f"Patient/{row.patient.public_id}"}, "status": "accepted"},
            {"actor": {"reference": f"Location/{session.location.public_id}"}, "status": "accepted"},
        ],
    }
    if not resource["description"]:
        del resource["description"]
    if row.practitioner is not None:
        resource["participant"].insert(
            1,
            {
                "actor": {"reference": f"Practitioner/{row.practitioner.public_id}", "display": row.practitioner.name},
                "status": "accepted",
            },
        )
    if booking is not None:
        if booking.comment:
            resource["comment"] = booking.comment
        org: dict[str, Any] = {"resourceType": "Organization", "id": "booking-organisation"}
        if booking.booking_organisation_ods:
            org["identifier"] = [{"system": ODS_CODE, "value": booking.booking_organisation_ods}]
        org["name"] = booking.booking_organisation or booking.consumer.name
        resource["contained"] = [org]
        resource["extension"] = [
            {"url": BOOKING_ORGANISATION, "valueReference": {"reference": "#booking-organisation"}}
        ]
    if row.status == AppointmentStatus.CANCELLED:
        own = booking is not None and booking.cancelled_by_consumer and booking.consumer_id == consumer_id
        text = row.cancel_reason if own else CancelCategory(row.cancel_category or CancelCategory.OTHER).label
        resource["cancelationReason"] = {"text": text}
    return resource


# Spine error codes GP Connect answers with, by HTTP status where the status alone says which.
OUTCOME_CODES = {
    400: ("BAD_REQUEST", "invalid"),
    401: ("NO_RELATIONSHIP", "security"),
    403: ("ACCESS_DENIED", "forbidden"),
    404: ("NO_RECORD_FOUND", "not-found"),
    405: ("NOT_IMPLEMENTED", "not-supported"),
    406: ("BAD_REQUEST", "not-supported"),
    409: ("DUPLICATE_REJECTED", "conflict"),
    412: ("CONFLICTING_VALUES", "conflict"),
    415: ("BAD_REQUEST", "not-supported"),
    422: ("INVALID_RESOURCE", "invalid"),
    428: ("PRECONDITION_FAILED", "conflict"),
    429: ("TOO_MANY_REQUESTS", "throttled"),
}


def operation_outcome(status: int, diagnostics: str, spine_code: str = "") -> dict[str, Any]:
    default_code, issue_code = OUTCOME_CODES.get(status, ("INTERNAL_SERVER_ERROR", "exception"))
    code = spine_code or default_code
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": issue_code,
                "details": {"coding": [{"system": SPINE_ERROR, "code": code, "display": code.replace("_", " ")}]},
                "diagnostics": diagnostics,
            }
        ],
    }


def bundle(
    matches: list[dict[str, Any]], includes: list[dict[str, Any]], *, base: str, self_url: str
) -> dict[str, Any]:
    """A searchset Bundle: the matches, then what they include (each once)."""
    entries = [
        {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in matches
    ]
    entries += [
        {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "include"}}
        for r in includes
    ]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(matches),
        "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    }
