"""The FHIR R4 interface (GP Connect Appointment Management's interactions): search free slots with their
schedules, practitioners, roles, locations and organisation; read those; find a patient by identifier; book, read,
list, amend and cancel appointments. Thin: reads in selectors, writes in services, resources in resources.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from clinic.access import public
from clinic.models import Clinic
from fhir_api import resources
from fhir_api.access import Caller, fhir_endpoint
from fhir_api.capability import capability_statement
from fhir_api.http import (
    FhirError,
    body_of,
    etag,
    fhir_error_response,
    fhir_response,
    if_match_version,
    moment_param,
    negotiate,
    slot_window,
)
from fhir_api.models import Consumer, Scope
from fhir_api.selectors import appointments as appointment_selectors
from fhir_api.selectors import slots as slot_selectors
from fhir_api.services.appointments import Booked, VersionConflict, fhir_amend, fhir_book, fhir_cancel
from scheduling.services.booking import BookingError

READ_DIRECTORY = (Scope.SLOT_READ, Scope.APPOINTMENT_READ, Scope.APPOINTMENT_WRITE)
READ_APPOINTMENTS = (Scope.APPOINTMENT_READ, Scope.APPOINTMENT_WRITE)


def _base(request: HttpRequest) -> str:
    return request.build_absolute_uri("/fhir").rstrip("/")


def _not_found(kind: str, public_id: str) -> FhirError:
    return FhirError(404, f"No {kind} with id {public_id[:64]} here.")


def _method(request: HttpRequest, *allowed: str) -> None:
    if request.method not in allowed:
        raise FhirError(405, f"{request.method} is not supported here (use {' or '.join(allowed)}).")


@public
@csrf_exempt
def metadata(request: HttpRequest) -> HttpResponse:
    """The CapabilityStatement: what this server does (no token needed, as FHIR asks)."""
    try:
        negotiate(request)
        _method(request, "GET")
    except FhirError as error:
        return fhir_error_response(error)
    return fhir_response(capability_statement(_base(request)))


@fhir_endpoint(*READ_DIRECTORY, interaction="unknown")
def unknown(request: HttpRequest, caller: Caller, rest: str = "") -> HttpResponse:
    raise FhirError(404, "No such resource type or interaction here (see /fhir/metadata).", "NOT_IMPLEMENTED")


# Slots and the directory --------------------------------------------------------------------------------------


@fhir_endpoint(Scope.SLOT_READ, interaction="slot.search")
def slot_search(request: HttpRequest, caller: Caller) -> HttpResponse:
    _method(request, "GET")
    zone = ZoneInfo(caller.clinic.time_zone)
    first, last = slot_window(request, zone, settings.FHIR_SEARCH_DAYS)
    rows, kinds, sessions = slot_selectors.free_slot_rows(
        consumer=caller.consumer, now=timezone.now(), first=first, last=last
    )
    caller.audit.update({"start": first.isoformat(), "end": last.isoformat(), "found": len(rows)})
    bundle = slot_selectors.slot_search_bundle(
        consumer=caller.consumer,
        rows=rows,
        kinds=kinds,
        sessions=sessions,
        includes=slot_selectors.asked_includes(request.GET),
        base=_base(request),
        self_url=request.build_absolute_uri(),
    )
    return fhir_response(bundle, prune=False)


@fhir_endpoint(*READ_DIRECTORY, interaction="slot.read")
def slot_read(request: HttpRequest, caller: Caller, public_id: str) -> HttpResponse:
    _method(request, "GET")
    found = slot_selectors.slot_of(caller.consumer, public_id)
    if found is None:
        raise _not_found("Slot", public_id)
    free = bool(
        slot_selectors.free_slots(
            consumer=caller.consumer, now=timezone.now(), first=found.starts_at, last=found.ends_at
        )
    )
    return fhir_response(resources.slot(found, free=free))


# The directory: how to find each kind of resource the consumer may read, and how to show it.
DIRECTORY: dict[str, tuple[Callable[[Consumer, str], Any], Callable[[Any, Clinic], dict[str, Any]]]] = {
    "Schedule": (slot_selectors.schedule_of, lambda row, clinic: resources.schedule(row)),
    "Practitioner": (slot_selectors.practitioner_of, lambda row, clinic: resources.practitioner(row)),
    "PractitionerRole": (
        slot_selectors.practitioner_role_of,
        lambda found, clinic: resources.practitioner_role(found[0], found[1], clinic),
    ),
    "Location": (slot_selectors.location_of, resources.location),
}


@fhir_endpoint(*READ_DIRECTORY, interaction="{kind}.read")
def directory_read(request: HttpRequest, caller: Caller, kind: str, public_id: str) -> HttpResponse:
    """A Schedule, Practitioner, PractitionerRole or Location the slots point at."""
    _method(request, "GET")
    find, show = DIRECTORY[kind]
    found = find(caller.consumer, public_id)
    if found is None:
        raise _not_found(kind, public_id)
    return fhir_response(show(found, caller.clinic))


@fhir_endpoint(*READ_DIRECTORY, interaction="organization.read")
def organization_read(request: HttpRequest, caller: Caller, public_id: str) -> HttpResponse:
    _method(request, "GET")
    if public_id != str(caller.clinic.public_id):
        raise _not_found("Organization", public_id)
    return fhir_response(resources.organization(caller.clinic))


# Patients -----------------------------------------------------------------------------------------------------


@fhir_endpoint(*READ_APPOINTMENTS, interaction="patient.search")
def patient_search(request: HttpRequest, caller: Caller) -> HttpResponse:
    _method(request, "GET")
    given = request.GET.getlist("identifier")
    if len(given) != 1 or "|" not in given[0]:
        raise FhirError(
            422,
            f"Search by identifier=system|value, once: the NHS number ({resources.NHS_NUMBER}|…) or the practice's "
            "internal ID.",
            "INVALID_PARAMETER",
        )
    system, _, value = given[0].partition("|")
    found = appointment_selectors.patient_by_identifier(caller.consumer, system, value)
    caller.audit["found"] = 0 if found is None else 1
    matches = [resources.patient(found, caller.clinic)] if found is not None else []
    return fhir_response(resources.bundle(matches, [], base=_base(request), self_url=request.build_absolute_uri()))


@fhir_endpoint(*READ_APPOINTMENTS, interaction="patient.read")
def patient_read(request: HttpRequest, caller: Caller, public_id: str) -> HttpResponse:
    _method(request, "GET")
    found = appointment_selectors.patient_of(caller.consumer, public_id)
    if found is None:
        raise _not_found("Patient", public_id)
    return fhir_response(resources.patient(found, caller.clinic))


def _start_range(request: HttpRequest, zone: ZoneInfo) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A patient's appointments' range: start=ge… (required) and optionally start=le… (or end=le…)."""
    first = last = None
    for value in request.GET.getlist("start"):
        if value.startswith("ge"):
            first = moment_param(value, "start", zone, prefix="ge", end_of_day=False)
        else:
            last = moment_param(value, "start", zone, prefix="le", end_of_day=True)
    for value in request.GET.getlist("end"):
        last = moment_param(value, "end", zone, prefix="le", end_of_day=True)
    if first is None:
        raise FhirError(422, "Give start=ge… (the first date of the appointments wanted).", "INVALID_PARAMETER")
    if last is not None and last <= first:
        raise FhirError(422, "The range's end must come after its start.", "INVALID_PARAMETER")
    return first, last


@fhir_endpoint(*READ_APPOINTMENTS, interaction="patient.appointments")
def patient_appointments(request: HttpRequest, caller: Caller, public_id: str) -> HttpResponse:
    _method(request, "GET")
    patient = appointment_selectors.patient_of(caller.consumer, public_id)
    if patient is None:
        raise _not_found("Patient", public_id)
    first, last = _start_range(request, ZoneInfo(caller.clinic.time_zone))
    rows = appointment_selectors.patient_appointments(caller.consumer, patient, first, last)
    caller.audit.update({"patient": str(patient.public_id), "found": len(rows)})
    matches = [resources.appointment(row, appointment_selectors.booking_of(row), caller.consumer.pk) for row in rows]
    return fhir_response(resources.bundle(matches, [], base=_base(request), self_url=request.build_absolute_uri()))


# Appointments -------------------------------------------------------------------------------------------------


def _reference(value: Any, kind: str) -> str | None:
    """The id of a reference to a resource of this kind ("Slot/<id>", or a full URL ending so)."""
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return None
    head, _, public_id = value["reference"].rstrip("/").rpartition("/")
    return public_id if head.rpartition("/")[2] == kind and public_id else None


def _patient_reference(data: dict[str, Any]) -> str | None:
    for participant in data.get("participant") or []:
        found = _reference(participant.get("actor") if isinstance(participant, dict) else None, "Patient")
        if found:
            return found
    return None


def _text(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise FhirError(422, f"{key} must be a string.", "INVALID_RESOURCE")
    if len(value) > limit:
        raise FhirError(422, f"{key} may be at most {limit} characters.", "INVALID_RESOURCE")
    return value.strip()


def _booking_organisation(data: dict[str, Any]) -> tuple[str, str]:
    """The booking organisation (name, ODS code) the extension points at, among the contained resources."""
    wanted = ""
    for extension in data.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == resources.BOOKING_ORGANISATION:
            wanted = str((extension.get("valueReference") or {}).get("reference", "")).lstrip("#")
    for contained in data.get("contained") or []:
        if isinstance(contained, dict) and contained.get("resourceType") == "Organization":
            if wanted and contained.get("id") != wanted:
                continue
            ods = next(
                (
                    str(i.get("value", ""))
                    for i in contained.get("identifier") or []
                    if isinstance(i, dict) and i.get("system") == resources.ODS_CODE
                ),
                "",
            )
            return str(contained.get("name", ""))[:120], ods[:10]
    return "", ""


def _same_instant(given: Any, moment: dt.datetime) -> bool:
    try:
        parsed = dt.datetime.fromisoformat(str(given).replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None and parsed == moment


def _appointment_response(request: HttpRequest, caller: Caller, public_id: str, status: int = 200) -> HttpResponse:
    row = appointment_selectors.appointment_of(caller.consumer, public_id)
    if row is None:
        raise _not_found("Appointment", public_id)
    booking = appointment_selectors.booking_of(row)
    resource = resources.appointment(row, booking, caller.consumer.pk)
    headers = {"ETag": etag(resource["meta"]["versionId"])}
    if status == 201:
        headers["Location"] = f"{_base(request)}/Appointment/{row.public_id}/_history/{resource['meta']['versionId']}"
    return fhir_response(resource, status, headers)


@fhir_endpoint(Scope.APPOINTMENT_WRITE, interaction="appointment.create", names_requester=True)
def appointment_create(request: HttpRequest, caller: Caller) -> HttpResponse:
    _method(request, "POST")
    data = body_of(request, "Appointment")
    if data.get("status") != "booked":
        raise FhirError(422, 'A new appointment\'s status must be "booked".', "INVALID_RESOURCE")
    slots = data.get("slot") or []
    slot_ids = [_reference(ref, "Slot") for ref in slots] if isinstance(slots, list) else [None]
    if len(slot_ids) != 1 or not slot_ids[0]:
        raise FhirError(422, "Name exactly one slot (slot: [{reference: Slot/<id>}]).", "INVALID_RESOURCE")
    patient_id = _patient_reference(data)
    if not patient_id:
        raise FhirError(422, "Name the patient as a participant (actor: Patient/<id>).", "INVALID_RESOURCE")
    description = _text(data, "description", 500)
    if not description:
        raise FhirError(422, "Give a description of the appointment.", "INVALID_RESOURCE")
    comment = _text(data, "comment", 1000)
    kinds = slot_selectors.consumer_types(caller.consumer)
    slot = slot_selectors.slot_of(caller.consumer, str(slot_ids[0]), kinds)
    if slot is None:
        raise FhirError(422, "No such slot is offered to this client.", "INVALID_RESOURCE")
    for key, moment in (("start", slot.starts_at), ("end", slot.ends_at)):
        if key in data and not _same_instant(data[key], moment):
            raise FhirError(422, f"The appointment's {key} is not the slot's.", "INVALID_RESOURCE")
    patient = appointment_selectors.patient_of(caller.consumer, patient_id)
    if patient is None or patient.is_archived:
        raise FhirError(422, "No such patient here (find one with Patient?identifier=…).", "INVALID_RESOURCE")
    caller.audit.update({"slot": str(slot.public_id), "patient": str(patient.public_id)})
    offered = slot_selectors.free_slots(
        consumer=caller.consumer, now=timezone.now(), first=slot.starts_at, last=slot.ends_at, types=kinds
    )
    if slot not in offered:
        raise FhirError(409, "This slot is no longer free.", "DUPLICATE_REJECTED")
    organisation, ods = _booking_organisation(data)
    said = Booked(
        description=description,
        comment=comment,
        organisation=organisation or caller.organisation,
        organisation_ods=ods or caller.consumer.ods_code,
        requesting_practitioner=caller.practitioner,
    )
    try:
        booking = fhir_book(consumer=caller.consumer, slot=slot, patient=patient, said=said)
    except BookingError as error:
        raise FhirError(409, " ".join(error.messages), "DUPLICATE_REJECTED") from None
    caller.audit["appointment"] = str(booking.appointment.public_id)
    return _appointment_response(request, caller, str(booking.appointment.public_id), status=201)


@fhir_endpoint(*READ_APPOINTMENTS, interaction="appointment.read")
def appointment_read(request: HttpRequest, caller: Caller, public_id: str) -> HttpResponse:
    _method(request, "GET", "PUT")
    caller.audit["appointment"] = public_id[:64]
    return _appointment_response(request, caller, public_id)


@fhir_endpoint(Scope.APPOINTMENT_WRITE, interaction="appointment.update", names_requester=True)
def appointment_update(request: HttpRequest, caller: Caller, public_id: str) -> HttpResponse:
    caller.audit["appointment"] = public_id[:64]
    row = appointment_selectors.appointment_of(caller.consumer, public_id)
    if row is None:
        raise _not_found("Appointment", public_id)
    booking = appointment_selectors.booking_of(row)
    if booking is None or booking.consumer_id != caller.consumer.pk:
        raise FhirError(403, "Only the consumer that booked an appointment may amend or cancel it.")
    expected = if_match_version(request)
    if expected is None:
        raise FhirError(428, "Send If-Match with the version you read (its ETag).", "PRECONDITION_FAILED")
    data = body_of(request, "Appointment")
    if data.get("id") not in (None, str(row.public_id)):
        raise FhirError(400, "The resource's id is not the one in the address.", "BAD_REQUEST")
    current = resources.appointment(row, booking, caller.consumer.pk)
    slot_ids = [_reference(ref, "Slot") for ref in data.get("slot") or []]
    if (
        slot_ids != [str(row.slot.public_id)]
        or _patient_reference(data) != str(row.patient.public_id)
        or ("start" in data and not _same_instant(data["start"], row.starts_at))
        or ("end" in data and not _same_instant(data["end"], row.ends_at))
    ):
        raise FhirError(
            422,
            "Only the description, the comment and the status (cancelled, with a reason) can change; to move an "
            "appointment, cancel it and book another slot.",
            "INVALID_RESOURCE",
        )
    status = data.get("status")
    try:
        if status == "cancelled" and current["status"] != "cancelled":
            reason = data.get("cancelationReason") or {}
            text = reason.get("text") if isinstance(reason, dict) else None
            if not text and isinstance(reason, dict):
                text = next((c.get("display") for c in reason.get("coding") or [] if isinstance(c, dict)), None)
            if not isinstance(text, str) or not text.strip():
                raise FhirError(422, "Give a cancelationReason (its text).", "INVALID_RESOURCE")
            fhir_cancel(consumer=caller.consumer, booking=booking, expected_version=expected, reason=text)
        elif status == current["status"]:
            fhir_amend(
                consumer=caller.consumer,
                booking=booking,
                expected_version=expected,
                description=_text(data, "description", 500) or booking.description,
                comment=_text(data, "comment", 1000),
            )
        else:
            raise FhirError(
                422, f"The status can change only to cancelled (it is {current['status']}).", "INVALID_RESOURCE"
            )
    except VersionConflict:
        raise FhirError(
            412, "The appointment changed since that version: read it again.", "CONFLICTING_VALUES"
        ) from None
    except BookingError as error:
        raise FhirError(422, " ".join(error.messages), "INVALID_RESOURCE") from None
    return _appointment_response(request, caller, public_id)


@public
@csrf_exempt
def appointment(request: HttpRequest, public_id: str) -> HttpResponse:
    """/fhir/Appointment/<id>: GET reads, PUT amends or cancels (each with its own scope)."""
    if request.method == "PUT":
        return appointment_update(request, public_id)
    return appointment_read(request, public_id)


@public
@csrf_exempt
def appointments(request: HttpRequest) -> HttpResponse:
    """/fhir/Appointment: POST books (searching appointments is by patient: Patient/<id>/Appointment)."""
    return appointment_create(request)
