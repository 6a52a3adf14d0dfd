"""fhir_api observes scheduling: it names the consumer of each appointment booked through the API wherever reception
sees the appointment (the calendar, the slot's tooltip, the appointment's page)."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from fhir_api.models import FhirBooking


def source_names(*, clinic_id: int, appointments: list[int], **_: Any) -> dict[int, str]:
    """ "Booked through the FHIR API by <consumer>" for each of these appointments that came through the API."""
    rows = (
        FhirBooking.objects.for_clinic(clinic_id)
        .filter(appointment_id__in=appointments)
        .values_list("appointment_id", "consumer__name")
    )
    return {pk: f"Booked through the FHIR API by {name}" for pk, name in rows}


def appointment_section(*, request: Any, appointment: Any, **_: Any) -> SafeString | None:
    """The appointment page's "Booked through the FHIR API" section: the consumer, the organisation and
    practitioner it booked for, and what it said (description, comment)."""
    if appointment.source != "fhir":
        return None
    booking = (
        FhirBooking.objects.for_clinic(request.clinic)
        .select_related("consumer")
        .filter(appointment_id=appointment.pk)
        .first()
    )
    if booking is None:
        return None
    return render_to_string("fhir_api/_appointment_section.html", {"booking": booking}, request=request)
