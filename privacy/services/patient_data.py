"""Writes of a patient's data rights: the export (a subject access request: one zip, audited) and the erasure (the
identity removed everywhere in one transaction, with durable rows for what must happen outside: Google's deletes).

What erasure does to each app's rows (docs/architecture.md, "A patient's data"):

- patients: the Patient row stays as a stub (so appointments still count in reports): names, date of birth,
  national and internal ID, phones, email, address, postcode, notes and the blocked reason are replaced or
  emptied, the record archived and marked erased. Insurance plans keep their payer and plan (reports by plan),
  lose the member ID and group number.
- scheduling: appointments stay as rows (status, times, type, practitioner: the counts), their free-text
  cancellation reason is emptied; waitlist notes and displaced-worklist notes are emptied (free text that may
  name the patient).
- notifications: each message keeps its kind, channel, status and times; its recipient, subject and body are
  emptied; one still waiting is not sent. Consent and contact preferences (yes/no, when) stay.
- online: the online bookings' reason is emptied; email checks for the patient's address are deleted.
- fhir_api: the FHIR bookings' description and comment (the consumer's free text) are replaced.
- calendar_sync: feeds that hold one of the patient's appointments are rebuilt in the same transaction (enabled
  ones; a disabled subscription's stored feed is dropped, built again when it is enabled) and their change
  recorded; each Google event of the patient's appointments gets a pending change, pushed by the worker as a
  delete (feeds and Google leave an erased patient's appointments out for good).
- clinic: the audit holds ids and flags, never patient data; "patient.erased" names the patient's public id.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from typing import TYPE_CHECKING

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from calendar_sync.feed.build import feed_build, feed_changes_record
from calendar_sync.google.changes import queue_push_on_commit
from calendar_sync.keys import ItemKey
from calendar_sync.models import FeedDocument, FeedEvent, GoogleEvent, GooglePending
from clinic.services import audit_record
from fhir_api.models import FhirBooking
from notifications.models import Message, Status
from online.models import EmailCheck, OnlineBooking
from patients.models import Coverage, Patient
from privacy.models import BreakGlass
from privacy.selectors.patient_data import erasure_refusal, patient_export_contents
from scheduling.models import Appointment, Displacement, WaitlistEntry

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from clinic.models import Clinic

ERASED_FIRST_NAME = "Erased"
ERASED_LAST_NAME = "record"
ERASED_BIRTH_DATE = dt.date(1900, 1, 1)  # the column takes no NULL; a date nobody alive was born on


class ErasureRefused(Exception):
    """The patient cannot be erased now; the message says why (and when it becomes possible)."""


def patient_export(*, clinic: Clinic, actor: User, patient: Patient) -> tuple[str, bytes]:
    """The subject access request's file: a zip of patient.json (machine-readable) and patient.html (readable,
    self-contained, printable). Audited ("patient.exported", with counts). Returns the file name and bytes."""
    contents = patient_export_contents(clinic=clinic, patient=patient)
    data = json.dumps(contents.as_json(), indent=2, ensure_ascii=False, default=str)
    page = render_to_string("privacy/patient_export_file.html", {"export": contents})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("patient.json", data)
        archive.writestr("patient.html", page)
    audit_record(
        clinic=clinic,
        actor=actor,
        action="patient.exported",
        target=patient,
        detail={
            "appointments": len(contents.appointments),
            "tables": {table.label: len(table.rows) for table in contents.tables if table.rows},
            "audit_events": len(contents.audit),
        },
    )
    # Named by public id and date: never the patient's name (it would show in download lists and logs).
    return f"patient-{patient.public_id}-{contents.exported_at:%Y%m%d}.zip", buffer.getvalue()


def patient_erase(*, clinic: Clinic, actor: User, patient: Patient, now: dt.datetime | None = None) -> Patient:
    """Remove the patient's identity everywhere, in one transaction, keeping the rows reports count. Refused
    (ErasureRefused) within the retention period and while they wait for a place. Feeds holding their appointments
    are rebuilt here; Google's deletes are recorded as pending changes (durable) and pushed after commit."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Patient.objects.for_clinic(clinic).select_for_update().get(pk=patient.pk)
        refusal = erasure_refusal(clinic=clinic, patient=locked, now=now)
        if refusal is not None:
            raise ErasureRefused(refusal.reason)
        appointments = Appointment.objects.for_clinic(clinic).filter(patient=locked)
        appointment_pks = list(appointments.values_list("pk", flat=True))
        keys = [ItemKey.appointment(pk).text for pk in appointment_pks]

        # Online: the email checks for this address go (before the address does); requests lose their words.
        if locked.email:
            EmailCheck.objects.for_clinic(clinic).filter(email__iexact=locked.email).delete()
        OnlineBooking.objects.for_clinic(clinic).filter(patient=locked).update(reason="", request_why="")
        # Notifications: what was sent, to whom, goes; kind, channel, status and times stay.
        messages = Message.objects.for_clinic(clinic).filter(patient=locked)
        messages.filter(status__in=(Status.WAITING, Status.SENDING)).update(
            status=Status.SKIPPED, detail="Not sent: the patient's record was erased."
        )
        messages.update(recipient="", subject="", body="")
        # Scheduling: free text that may name the patient.
        appointments.update(cancel_reason="")
        WaitlistEntry.objects.for_clinic(clinic).filter(patient=locked).update(note="")
        Displacement.objects.for_clinic(clinic).filter(appointment__patient=locked).update(note="")
        FhirBooking.objects.for_clinic(clinic).filter(appointment__patient=locked).update(
            description="Erased", comment=""
        )
        Coverage.objects.for_clinic(clinic).filter(patient=locked).update(member_id="", group_number="")
        # Break-glass: who opened the record, when and why stays for the privacy officers; the words may name them.
        BreakGlass.objects.for_clinic(clinic).filter(patient=locked).update(
            reason="Erased with the patient's record.", review_note=""
        )

        locked.title = locked.preferred_name = ""
        locked.first_name, locked.last_name = ERASED_FIRST_NAME, ERASED_LAST_NAME
        locked.date_of_birth = ERASED_BIRTH_DATE
        locked.sex = Patient.Sex.UNKNOWN
        locked.internal_id = f"X{locked.pk}"  # unique in the clinic, and not the patient's number
        locked.national_id, locked.national_id_kind = None, ""
        locked.mobile_phone = locked.home_phone = locked.email = ""
        locked.address = locked.postcode = locked.notes = ""
        locked.is_blocked, locked.blocked_reason = False, ""
        locked.is_archived, locked.registered_online = True, False
        locked.erased_at = now
        locked.save()

        feeds = _feeds_rebuilt(clinic, keys, now)
        google_deletes = _google_deletes_recorded(clinic, keys)
        audit_record(
            clinic=clinic,
            actor=actor,
            action="patient.erased",
            target=locked,
            detail={"appointments": len(appointment_pks), "feeds_rebuilt": feeds, "google_deletes": google_deletes},
        )
    return locked


def _feeds_rebuilt(clinic: Clinic, keys: list[str], now: dt.datetime) -> int:
    """Every stored feed holding one of these appointments, rebuilt now (they leave an erased patient's
    appointments out), its change recorded; a disabled subscription's stored feed is dropped instead (the feed
    view builds a missing one when it is enabled again)."""
    if not keys:
        return 0
    documents = list(
        FeedDocument.objects.for_clinic(clinic)
        .filter(pk__in=FeedEvent.objects.for_clinic(clinic).filter(key__in=keys).values("document_id"))
        .select_related("subscription")
    )
    for document in documents:
        subscription = document.subscription
        if subscription.enabled:
            feed_changes_record([subscription.practitioner_id], keys)
            feed_build(subscription=subscription, now=now, force=True)
        else:
            FeedDocument.objects.for_clinic(clinic).filter(pk=document.pk).delete()
    return len(documents)


def _google_deletes_recorded(clinic: Clinic, keys: list[str]) -> int:
    """A pending change for each Google event of these appointments, on every connection that pushed one (the
    push deletes it: an erased patient's appointment is no longer ours to show), and the push nudged after commit.
    A connection not syncing now keeps its pending rows until it does."""
    if not keys:
        return 0
    pushed = list(
        GoogleEvent.objects.for_clinic(clinic)
        .filter(key__in=keys)
        .values_list("connection_id", "key")
        .order_by("connection_id", "key")
    )
    GooglePending.objects.for_clinic(clinic).bulk_create(
        [GooglePending(clinic=clinic, connection_id=connection_id, key=key) for connection_id, key in pushed]
    )
    for connection_id in sorted({connection_id for connection_id, _ in pushed}):
        queue_push_on_commit(clinic.pk, connection_id)
    return len(pushed)
