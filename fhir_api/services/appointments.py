"""Writes of the FHIR API: a consumer books a patient into a free slot, amends what it said about the booking, or
cancels it. Bookings go through scheduling's booking service (capacity, double booking, closed groups and holds
hold as for reception), with the source "fhir"; the consumer's own row (FhirBooking) is written in the same
transaction."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from clinic.services import audit_record
from fhir_api.models import Consumer, FhirBooking
from fhir_api.resources import version_of
from patients.models import Patient
from scheduling.models import Appointment, AppointmentSource, AppointmentStatus, CancelCategory, Slot
from scheduling.services.booking import BookingError, BookingRequest, appointment_book, appointment_cancel


@dataclass(frozen=True)
class Booked:
    """What the consumer says of a booking: GP Connect's description, comment and booking organisation, and the
    practitioner who asked."""

    description: str
    comment: str = ""
    organisation: str = ""
    organisation_ods: str = ""
    requesting_practitioner: str = ""


def fhir_book(*, consumer: Consumer, slot: Slot, patient: Patient, said: Booked) -> FhirBooking:
    """Book the patient into the slot for the consumer, all or nothing. BookingError when scheduling refuses (full,
    taken meanwhile, already booked, a closed group)."""
    clinic = consumer.clinic
    with transaction.atomic():
        appointment = appointment_book(
            clinic=clinic,
            actor=None,
            membership=None,
            request=BookingRequest(slot=slot, patient=patient, source=AppointmentSource.FHIR),
        )
        booking = FhirBooking.objects.create(
            clinic=clinic,
            appointment=appointment,
            consumer=consumer,
            description=said.description[:500],
            comment=said.comment[:1000],
            booking_organisation=said.organisation[:120],
            booking_organisation_ods=said.organisation_ods[:10],
            requesting_practitioner=said.requesting_practitioner[:120],
        )
    return booking


def _locked_at(consumer: Consumer, booking: FhirBooking, version: str) -> tuple[FhirBooking, Appointment]:
    """The booking and its appointment, locked, if still at the version the consumer read (else VersionConflict:
    someone changed it since); a cancelled one cannot change."""
    locked = FhirBooking.objects.for_clinic(consumer.clinic).select_for_update().get(pk=booking.pk)
    appointment = Appointment.objects.for_clinic(consumer.clinic).select_for_update().get(pk=locked.appointment_id)
    if version_of(appointment, locked) != version:
        raise VersionConflict
    if appointment.status == AppointmentStatus.CANCELLED:
        raise BookingError("This appointment is cancelled: it cannot change.")
    return locked, appointment


def fhir_amend(
    *, consumer: Consumer, booking: FhirBooking, expected_version: str, description: str, comment: str
) -> FhirBooking:
    """Change the description and comment of the consumer's booking, if it is still at the version the consumer
    read (else VersionConflict: someone changed it since)."""
    with transaction.atomic():
        locked, appointment = _locked_at(consumer, booking, expected_version)
        locked.description = description[:500]
        locked.comment = comment[:1000]
        locked.save(update_fields=["description", "comment", "updated_at"])
        audit_record(
            clinic=consumer.clinic,
            actor=None,
            action="appointment.amended",
            target=appointment,
            detail={"by": f"FHIR consumer {consumer.name}", "consumer": str(consumer.public_id)},
        )
    return locked


def fhir_cancel(*, consumer: Consumer, booking: FhirBooking, expected_version: str, reason: str) -> FhirBooking:
    """Cancel the consumer's booking (the place frees for others, and the waiting list), with the consumer's
    reason, if it is still at the version the consumer read."""
    reason = reason.strip()
    if not reason:
        raise BookingError("Give the reason for the cancellation (cancelationReason).")
    with transaction.atomic():
        locked, appointment = _locked_at(consumer, booking, expected_version)
        if appointment.starts_at <= timezone.now():
            raise BookingError("An appointment that has started cannot be cancelled through the API.")
        appointment_cancel(
            clinic=consumer.clinic,
            actor=None,
            appointment=appointment,
            reason=reason[:200],
            category=CancelCategory.PATIENT,
            by=f"FHIR consumer {consumer.name}",
        )
        locked.cancelled_by_consumer = True
        locked.save(update_fields=["cancelled_by_consumer", "updated_at"])
    return locked


class VersionConflict(Exception):
    """The booking changed since the version the consumer sent (If-Match): a 412."""
