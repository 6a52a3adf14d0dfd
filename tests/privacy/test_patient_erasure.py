"""Erase a patient's record: refused within the clinic's retention period (saying when it becomes possible),
allowed after it; afterwards nothing of the patient's identity is anywhere in the database (every column of every
table, the decompressed stored feeds), the appointments still count in reports, Google's copies are deleted and
never sent again, and the page says "Erased record". Audited without patient data."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from calendar_sync import tasks
from calendar_sync.feed.build import feed_build
from calendar_sync.feed.subscriptions import subscription_get_or_create
from calendar_sync.google.changes import changes_record
from calendar_sync.models import FeedDocument, FeedSubscription, GoogleEvent, GooglePending, SyncType
from clinic.models import AuditEvent, Membership, Role
from patients.display import IdentifierMode
from patients.models import Patient
from privacy.services.patient_data import ErasureRefused, patient_erase
from scheduling.models import Appointment
from scheduling.selectors.booking import appointments_report
from tests.calendar_sync.google_helpers import connect, future_appointment, google_events
from tests.conftest import logged_in_client, tasks_in_process
from tests.factories import MembershipFactory, PatientFactory
from tests.privacy.patient_data import BIRTH, EMAIL, FIRST, IDENTITY, LAST, MOBILE, identity_found, rich_patient

NOW = dt.datetime(2027, 3, 1, 9, tzinfo=dt.UTC)
LAST_VISIT = dt.datetime(2027, 3, 5, 9, tzinfo=dt.UTC)  # the completed appointment, the latest of the three


@pytest.fixture
def rich(clinic_a, admin_a):
    """The patient, and Dr Erasmus's feed (full names) built while their appointments were in it."""
    with time_machine.travel(NOW, tick=False), tasks_in_process():
        made = rich_patient(clinic_a, admin_a, day=NOW.date() + dt.timedelta(days=2))
        # No longer blocked (its reason kept), so the feed names the patient: "Restricted patient" otherwise.
        Patient.objects.filter(pk=made.patient.pk).update(is_blocked=False)
        made.patient.refresh_from_db()
        subscription = subscription_get_or_create(clinic=clinic_a, practitioner=made.practitioner)
        FeedSubscription.objects.filter(pk=subscription.pk).update(
            enabled=True, identifier_mode=IdentifierMode.FULL_NAME
        )
        subscription.refresh_from_db()
        feed_build(subscription=subscription, now=timezone.now(), force=True)
    return made


def erase_page(patient):
    return reverse("privacy:patient-erase", args=[patient.public_id])


@pytest.mark.django_db
def test_erasure_is_refused_within_the_retention_period_with_the_date_it_becomes_possible(clinic_a, admin_a, rich):
    with time_machine.travel(LAST_VISIT + dt.timedelta(days=365 * 8 - 3), tick=False):
        admin_client_a = logged_in_client(admin_a)  # signed in then (a session from 2027 has long expired)
        page = admin_client_a.get(erase_page(rich.patient))
        assert page.status_code == 200
        text = page.content.decode()
        assert "cannot be erased now" in text
        assert "last appointment is on 5 March 2027" in text and "from 5 March 2035" in text
        assert 'name="confirm_name"' not in text
        refused = admin_client_a.post(erase_page(rich.patient), {"confirm_name": f"{FIRST} {LAST}"})
        assert refused.status_code == 409
        with pytest.raises(ErasureRefused):
            patient_erase(clinic=clinic_a, actor=None, patient=rich.patient)
    rich.patient.refresh_from_db()
    assert rich.patient.erased_at is None and rich.patient.last_name == LAST
    assert not AuditEvent.objects.filter(action="patient.erased").exists()


@pytest.mark.django_db
def test_a_shorter_retention_set_on_the_data_retention_page_allows_it_sooner(clinic_a, admin_a, admin_client_a, rich):
    response = admin_client_a.post(reverse("privacy:retention"), {"retention_years": "2"})
    assert response.status_code == 302
    clinic_a.refresh_from_db()
    assert clinic_a.retention_years == 2
    with time_machine.travel(LAST_VISIT + dt.timedelta(days=365 * 2 + 2), tick=False):
        assert "Type the patient" in logged_in_client(admin_a).get(erase_page(rich.patient)).content.decode()
    assert admin_client_a.post(reverse("privacy:retention"), {"retention_years": "0"}).status_code == 422


@pytest.mark.django_db
def test_after_erasure_no_name_birth_date_phone_or_email_is_anywhere_and_counts_stay(clinic_a, admin_a, rich):
    before = identity_found(IDENTITY)
    # The search finds the identity where it lives today (so its silence afterwards means something).
    assert any(hit.startswith("patients_patient.first_name") for hit in before)
    assert any(hit.startswith("notifications_message.body") for hit in before)
    assert any(hit.startswith("feed of subscription") and LAST in hit for hit in before)
    assert any(hit.startswith("online_emailcheck.details") for hit in before)
    march = {"clinic": clinic_a, "first_date": dt.date(2027, 3, 1), "last_date": dt.date(2027, 3, 31)}
    report_before = appointments_report(**march)
    appointments_before = Appointment.objects.filter(patient=rich.patient).count()

    with time_machine.travel(dt.datetime(2035, 3, 6, 9, tzinfo=dt.UTC), tick=False), tasks_in_process():
        admin_client_a = logged_in_client(admin_a)
        page = admin_client_a.get(erase_page(rich.patient)).content.decode()
        assert "Type the patient" in page and "cannot be erased" not in page
        wrong = admin_client_a.post(erase_page(rich.patient), {"confirm_name": "Someone Else"})
        assert wrong.status_code == 422 and "not the patient" in wrong.content.decode()
        assert Patient.objects.get(pk=rich.patient.pk).erased_at is None
        done = admin_client_a.post(erase_page(rich.patient), {"confirm_name": f"  {FIRST.lower()}  {LAST} "})
        assert done.status_code == 302
        assert done["Location"] == reverse("patients:detail", args=[rich.patient.public_id])
        shown = admin_client_a.get(done["Location"]).content.decode()
        again = admin_client_a.get(erase_page(rich.patient)).content.decode()

    assert "Erased record" in shown and FIRST not in shown and LAST not in shown
    assert identity_found(IDENTITY) == []
    assert appointments_report(**march) == report_before
    assert Appointment.objects.filter(patient=rich.patient).count() == appointments_before == 3
    # The feed no longer holds the appointments; its change was recorded and consumed by the rebuild.
    document = FeedDocument.objects.get(subscription__practitioner=rich.practitioner)
    assert not document.events.filter(key__in=[f"a{a.pk}" for a in rich.appointments]).exists()
    event = AuditEvent.objects.get(action="patient.erased")
    assert event.actor == admin_a.user and event.object_id == str(rich.patient.public_id)
    assert event.detail["appointments"] == 3 and event.detail["feeds_rebuilt"] == 1
    assert not any(needle.lower() in json.dumps(event.detail).lower() for needle in IDENTITY)
    # An erased record is not erased twice, and offers no Edit.
    assert "already erased" in again
    assert reverse("patients:edit", args=[rich.patient.public_id]) not in shown


@pytest.mark.django_db
def test_a_disabled_feed_that_held_the_patient_is_dropped_not_kept(clinic_a, admin_a, rich):
    FeedSubscription.objects.filter(practitioner=rich.practitioner).update(enabled=False)
    with time_machine.travel(dt.datetime(2035, 3, 6, 9, tzinfo=dt.UTC), tick=False), tasks_in_process():
        patient_erase(clinic=clinic_a, actor=admin_a.user, patient=rich.patient)
    assert not FeedDocument.objects.filter(subscription__practitioner=rich.practitioner).exists()
    assert not any(hit.startswith("feed of") for hit in identity_found([FIRST, LAST]))


@pytest.mark.django_db
def test_a_patient_still_waiting_for_a_place_is_not_erased(clinic_a, admin_client_a):
    from scheduling.models import WaitlistEntry, WaitlistKind

    patient = PatientFactory(clinic=clinic_a, first_name="Wanda", last_name="Waiting")
    WaitlistEntry.objects.create(clinic=clinic_a, patient=patient, kind=WaitlistKind.PREFERENCE, position=1)
    page = admin_client_a.get(erase_page(patient)).content.decode()
    assert "on the waiting list" in page


@pytest.mark.django_db
def test_only_admins_erase(clinic_a, reception_client_a, admin_client_a):
    patient = PatientFactory(clinic=clinic_a, first_name="Rory", last_name="Reception")
    officer = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.RECEPTION, perm_privacy_officer=True))
    detail = reverse("patients:detail", args=[patient.public_id])
    assert erase_page(patient) in admin_client_a.get(detail).content.decode()
    for client in (reception_client_a, officer):
        assert erase_page(patient) not in client.get(detail).content.decode()
        assert client.get(erase_page(patient)).status_code == 403
        assert client.post(erase_page(patient), {"confirm_name": "Rory Reception"}).status_code == 403
    assert Patient.objects.get(pk=patient.pk).erased_at is None
    assert reception_client_a.get(reverse("privacy:retention")).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_the_patients_events_are_deleted_from_google_and_never_sent_again(
    google, clinic_a, admin_a, clinician, clinician_client
):
    _, practitioner = clinician
    patient = PatientFactory(
        clinic=clinic_a, first_name=FIRST, last_name=LAST, date_of_birth=BIRTH, email=EMAIL, mobile_phone=MOBILE
    )
    with tasks_in_process():
        appointment = future_appointment(clinic_a, practitioner, patient=patient)
        other = future_appointment(clinic_a, practitioner, days=4)
        connection = connect(clinician_client, google, practitioner)
        FeedSubscription.objects.filter(practitioner=practitioner).update(identifier_mode=IdentifierMode.FULL_NAME)
        changes_record([practitioner.pk], None)
        tasks.google_push.delay(connection.pk).get()
        ours = GoogleEvent.objects.get(connection=connection, key=f"a{appointment.pk}")
        summaries = {e["id"]: e.get("summary", "") for e in google_events(google, connection)}
        assert LAST in summaries[ours.event_id]
        theirs = GoogleEvent.objects.get(connection=connection, key=f"a{other.pk}").event_id

        with time_machine.travel(timezone.now() + dt.timedelta(days=365 * 9), tick=True):
            patient_erase(clinic=clinic_a, actor=admin_a.user, patient=patient)
            left = {e["id"]: e for e in google_events(google, connection) if e.get("status") != "cancelled"}
            assert ours.event_id not in left and theirs in left  # deleted at Google; the other patient's stays
            assert not GoogleEvent.objects.filter(connection=connection, key=f"a{appointment.pk}").exists()
            assert not GooglePending.objects.filter(connection=connection).exists()
            # A later full sync sends everything again, but never the erased patient's appointment.
            changes_record([practitioner.pk], None)
            tasks.google_push.delay(connection.pk).get()
            again = [e for e in google_events(google, connection) if e.get("status") != "cancelled"]
            assert ours.event_id not in {e["id"] for e in again}
            assert not any(LAST in e.get("summary", "") for e in again)
    assert FeedSubscription.objects.get(practitioner=practitioner).sync_type == SyncType.TWO_WAY
    assert identity_found([FIRST, LAST, EMAIL]) == []


@pytest.mark.django_db
def test_the_demo_has_a_riverside_patient_to_export_and_erase(capsys):
    from django.core.management import call_command

    from clinic.models import Clinic

    call_command("seed_demo", "--quiet")
    call_command("seed_demo", "--quiet")  # converges: one demo patient, however many runs
    riverside = Clinic.objects.get(slug="riverside")
    edith = Patient.objects.get(clinic=riverside, first_name="Edith", last_name="Longago")
    assert Appointment.objects.filter(patient=edith, status="completed").count() == 2
    admin = Membership.objects.filter(clinic=riverside, role=Role.ADMIN).first()
    client = logged_in_client(admin)
    assert "Type the patient" in client.get(erase_page(edith)).content.decode()
    assert client.post(erase_page(edith), {"confirm_name": "Edith Longago"}).status_code == 302
    assert identity_found(["Longago", "edith.longago@example.com", "1931-05-17"]) == []


@pytest.mark.django_db
def test_googles_deletes_are_rows_written_with_the_erasure_and_the_push_waits_for_commit(
    clinic_a, admin_a, rich, django_capture_on_commit_callbacks
):
    from calendar_sync.models import GoogleConnection

    connection = GoogleConnection.objects.create(
        clinic=clinic_a, practitioner=rich.practitioner, email="dr@example.com", refresh_token="sealed"
    )
    keys = [f"a{a.pk}" for a in rich.appointments]
    GoogleEvent.objects.bulk_create(
        GoogleEvent(clinic=clinic_a, connection=connection, key=key, event_id=f"ev{i}") for i, key in enumerate(keys)
    )
    with time_machine.travel(dt.datetime(2035, 3, 6, 9, tzinfo=dt.UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            patient_erase(clinic=clinic_a, actor=admin_a.user, patient=rich.patient)
            # Inside the erasure's transaction: the deletes are durable rows, whatever becomes of the broker.
            assert sorted(GooglePending.objects.filter(connection=connection).values_list("key", flat=True)) == sorted(
                keys
            )
            assert GoogleConnection.objects.get(pk=connection.pk).push_queued
        assert callbacks  # the push is only nudged once the erasure has committed
    assert AuditEvent.objects.get(action="patient.erased").detail["google_deletes"] == 3
