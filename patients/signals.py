"""What patients asks its observers, without importing them (they import patients)."""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

# Asked while drawing a patient's page, with request and patient (one the member may see): observers add a
# section of their own (notifications: how the patient wants to hear from the clinic). A receiver returns
# rendered HTML (a SafeString) or None; the page shows the sections in the order of the answers.
patient_sections = Signal()


def patient_page_sections(request: object, patient: object) -> list[str]:
    answers = patient_sections.send(sender=None, request=request, patient=patient)
    return [html for _receiver, html in answers if html]


# Asked when a member without "Privacy: Access Blocked Patients" opens or books a blocked patient, with membership
# and patient: does something let this member in to this patient now? An observer (privacy: a break-glass grant)
# answers with the id of what lets them in (a str, for the audit), or None. No observer, or no answer: nobody is.
blocked_access_query = Signal()

# Asked when a search by an exact identifier (internal ID, national identifier) finds a blocked patient this member
# may not see, with request, patient and next_url (where the member meant to go: the record, or Book Appointment
# with the patient chosen). An observer (privacy) answers with {"url": ..., "label": ...}: how to break glass, or
# where to go while a grant lets them in. No observer: the search shows nothing of the patient.
restricted_match = Signal()


def blocked_access_grant(*, membership: object, patient: object) -> str | None:
    """The id of what lets this member in to this blocked patient now (a break-glass grant), or None."""
    for _receiver, answer in blocked_access_query.send(sender=None, membership=membership, patient=patient):
        if answer:
            return str(answer)
    return None


def restricted_match_action(*, request: object, patient: object, next_url: str) -> dict[str, Any] | None:
    """How a search offers a blocked patient it found by an exact identifier (None: it shows nothing)."""
    for _receiver, answer in restricted_match.send(sender=None, request=request, patient=patient, next_url=next_url):
        if isinstance(answer, dict) and answer:
            return answer
    return None
