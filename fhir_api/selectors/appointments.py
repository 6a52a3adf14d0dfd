"""Reads of appointments and patients for the FHIR API. A consumer finds a patient only by an identifier it already
knows (NHS number, or the clinic's internal ID), and never sees a blocked patient, their appointments, or another
clinic's anything."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from django.db.models import QuerySet

from fhir_api import resources
from fhir_api.models import Consumer, FhirBooking
from patients.models import Patient
from scheduling.models import Appointment

APPOINTMENT_RELATED = (
    "slot",
    "slot__session",
    "slot__session__location",
    "practitioner",
    "patient",
    "slot_type",
    "fhir_booking",
    "fhir_booking__consumer",
)


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def visible_patients(consumer: Consumer) -> QuerySet[Patient]:
    return Patient.objects.for_clinic(consumer.clinic).filter(is_blocked=False)


def patient_of(consumer: Consumer, public_id: str) -> Patient | None:
    pk = _uuid(public_id)
    return visible_patients(consumer).filter(public_id=pk).first() if pk else None


def patient_by_identifier(consumer: Consumer, system: str, value: str) -> Patient | None:
    """The patient with this identifier (system|value): an NHS number, or the clinic's internal ID when the clinic
    uses them. None when nobody (visible) has it."""
    value = value.strip()
    if not value:
        return None
    patients = visible_patients(consumer).filter(is_archived=False)
    if system == resources.NHS_NUMBER:
        return patients.filter(national_id_kind="nhs", national_id=value.replace(" ", "")).first()
    clinic = consumer.clinic
    if system == resources.internal_id_system(clinic) and clinic.internal_ids_enabled:
        return patients.filter(internal_id=value).first()
    return None


def appointments(consumer: Consumer) -> QuerySet[Appointment]:
    return (
        Appointment.objects.for_clinic(consumer.clinic)
        .filter(patient__is_blocked=False)
        .select_related(*APPOINTMENT_RELATED)
    )


def appointment_of(consumer: Consumer, public_id: str) -> Appointment | None:
    pk = _uuid(public_id)
    if pk is None:
        return None
    return appointments(consumer).filter(public_id=pk).first()


def patient_appointments(
    consumer: Consumer, patient: Patient, first: dt.datetime | None, last: dt.datetime | None
) -> list[Appointment]:
    """The patient's appointments (cancelled ones too, as GP Connect lists them) starting in the range, soonest
    first."""
    rows = appointments(consumer).filter(patient=patient)
    if first is not None:
        rows = rows.filter(starts_at__gte=first)
    if last is not None:
        rows = rows.filter(starts_at__lt=last)
    return list(rows.order_by("starts_at", "id"))


def booking_of(appointment: Appointment) -> FhirBooking | None:
    try:
        return appointment.fhir_booking
    except FhirBooking.DoesNotExist:
        return None
