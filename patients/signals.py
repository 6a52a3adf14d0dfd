"""What patients asks its observers, without importing them (they import patients)."""

from __future__ import annotations

from django.dispatch import Signal

# Asked while drawing a patient's page, with request and patient (one the member may see): observers add a
# section of their own (notifications: how the patient wants to hear from the clinic). A receiver returns
# rendered HTML (a SafeString) or None; the page shows the sections in the order of the answers.
patient_sections = Signal()


def patient_page_sections(request: object, patient: object) -> list[str]:
    answers = patient_sections.send(sender=None, request=request, patient=patient)
    return [html for _receiver, html in answers if html]
