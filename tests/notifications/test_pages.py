"""The pages reception and admins use: Messages to patients (settings and preview), the Messages log, one
message and "Send again", a patient's choices, and the sections on the appointment and patient pages."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditEvent, Role
from notifications.models import Channel, Consent, ContactPreference, Kind, Message, NotificationSettings, Status
from scheduling.services.booking import BookingRequest, appointment_book
from tests.conftest import logged_in_client
from tests.factories import MembershipFactory, PatientFactory, PractitionerFactory, allocate_session

pytestmark = pytest.mark.django_db


def booked(clinic, actor, *, patient=None, days=5, start=dt.time(10)):
    """A patient booked through the booking service (its confirmation recorded, and sent in the test run)."""
    practitioner = PractitionerFactory(clinic=clinic, name="Dr Rivers")
    session = allocate_session(
        clinic, practitioner=practitioner, day=timezone.now().date() + dt.timedelta(days=days), start=start
    )
    slot = session.slots.order_by("starts_at").first()
    patient = patient or PatientFactory(
        clinic=clinic, first_name="Nadia", email="nadia@example.org", mobile_phone="07700 900123"
    )
    with TestCase.captureOnCommitCallbacks(execute=True):  # the nudge after commit: sent in the test run
        return appointment_book(
            clinic=clinic, actor=actor.user, membership=actor, request=BookingRequest(slot=slot, patient=patient)
        )


def message(clinic, patient, *, status=Status.SENT, kind=Kind.CONFIRMATION, channel=Channel.EMAIL, **fields):
    now = timezone.now()
    return Message.objects.create(
        clinic=clinic,
        patient=patient,
        ref=fields.pop("ref", f"test-{Message.objects.count()}"),
        kind=kind,
        channel=channel,
        status=status,
        due_at=fields.pop("due_at", now),
        created_at=fields.pop("created_at", now),
        **fields,
    )


# --- Messages to patients (settings) -----------------------------------------------------------------------------


def settings_data(**overrides):
    data = {
        "action": "save",
        "confirmations_on": "on",
        "reminders_on": "on",
        "changes_on": "on",
        "email_on": "on",
        "sms_on": "on",
        "email_reminder_hours": "48",
        "sms_reminder_hours": "",
        "quiet_from": "21:00",
        "quiet_until": "08:00",
        "sender_name": "Harbour Surgery",
        "reply_to": "front@harbour.example",
        f"wording_{Kind.CONFIRMATION}": "Hello {first_name}! See you on {when} with {practitioner}.",
    }
    return data | overrides


def test_an_admin_saves_the_settings_audited(clinic_a, admin_client_a):
    response = admin_client_a.post(reverse("notifications:settings"), settings_data())
    assert response.status_code == 302
    saved = NotificationSettings.objects.get(clinic=clinic_a)
    assert (saved.sms_reminder_hours, saved.email_reminder_hours, saved.offers_on) == (None, 48, False)
    assert saved.sender_name == "Harbour Surgery"
    assert saved.wording == {Kind.CONFIRMATION: "Hello {first_name}! See you on {when} with {practitioner}."}
    event = AuditEvent.objects.get(action="notifications.settings")
    assert f"wording_{Kind.CONFIRMATION}" in event.detail["fields"]


def test_an_unknown_placeholder_is_refused_on_the_form_and_nothing_is_saved(clinic_a, admin_client_a):
    data = settings_data(**{f"wording_{Kind.REMINDER}": "Hi {first_name}, {doctor} waits at {when}."})
    response = admin_client_a.post(reverse("notifications:settings"), data)
    assert response.status_code == 422
    body = response.content.decode()
    assert "Unknown placeholder {doctor}" in body
    assert "{first_name}" in body  # the placeholders it may use are named
    assert NotificationSettings.objects.get(clinic=clinic_a).sender_name == ""
    assert not AuditEvent.objects.filter(action="notifications.settings").exists()


@pytest.mark.parametrize("hours", ["0", "337", "-2", "abc"])
def test_reminder_hours_are_bounded(clinic_a, admin_client_a, hours):
    response = admin_client_a.post(reverse("notifications:settings"), settings_data(email_reminder_hours=hours))
    assert response.status_code == 422
    assert NotificationSettings.objects.get(clinic=clinic_a).sender_name == ""


def test_only_admins_open_the_settings(reception_client_a, clinic_a):
    clinician = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN))
    for client in (reception_client_a, clinician):
        assert client.get(reverse("notifications:settings")).status_code == 403
        assert client.post(reverse("notifications:settings"), settings_data()).status_code == 403


def test_the_preview_shows_a_real_appointment_with_unsaved_words(clinic_a, admin_a, admin_client_a):
    appointment = booked(clinic_a, admin_a)
    data = settings_data(action="preview", **{f"wording_{Kind.CONFIRMATION}": "Hi {first_name}, it is {when}."})
    response = admin_client_a.post(reverse("notifications:settings"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="preview"' in body and "<form" not in body  # the fragment only
    from zoneinfo import ZoneInfo

    local = appointment.starts_at.astimezone(ZoneInfo(appointment.slot.session.time_zone))
    assert f"Hi Nadia, it is {local:%a %-d %b %Y, %H:%M}" in body
    assert "Dr Rivers" in body  # the email's details
    assert "Reply STOP" in body  # the SMS
    # Nothing was saved by a preview.
    assert NotificationSettings.objects.get(clinic=clinic_a).wording == {}


def test_the_preview_without_javascript_and_without_appointments(clinic_a, admin_client_a):
    response = admin_client_a.post(reverse("notifications:settings"), settings_data(action="preview"))
    assert response.status_code == 200
    assert "No upcoming booked appointment to preview yet" in response.content.decode()
    assert admin_client_a.get(reverse("notifications:settings")).status_code == 200


def test_the_preview_never_shows_a_blocked_patient_to_a_member_who_may_not_see_them(clinic_a, admin_a):
    hidden = PatientFactory(clinic=clinic_a, first_name="Secret", is_blocked=True, blocked_reason="Staff")
    booked(clinic_a, admin_a, patient=hidden)
    admin_without = MembershipFactory(clinic=clinic_a, role=Role.ADMIN)
    body = logged_in_client(admin_without).get(reverse("notifications:settings")).content.decode()
    assert "Secret" not in body
    assert "No upcoming booked appointment" in body


# --- A patient's choices -----------------------------------------------------------------------------------------


def test_reception_records_a_patients_choices_as_consent_rows(clinic_a, reception_a, reception_client_a):
    patient = PatientFactory(clinic=clinic_a, email="ann@example.org", mobile_phone="")
    page = reception_client_a.get(reverse("patients:detail", args=[patient.public_id])).content.decode()
    assert "ann@example.org" in page and "No mobile number on record" in page
    url = reverse("notifications:patient-preferences", args=[patient.public_id])
    response = reception_client_a.post(url, {"email_ok": "on"})
    assert response.status_code == 302
    preference = ContactPreference.objects.get(patient=patient)
    assert (preference.email_ok, preference.sms_ok) == (True, False)
    rows = list(Consent.objects.filter(patient=patient).values_list("channel", "granted", "source", "recorded_by"))
    assert sorted(rows) == [
        ("email", True, "reception", reception_a.user_id),
        ("sms", False, "reception", reception_a.user_id),
    ]
    # Saving the same choices again records nothing new; the history shows who recorded them.
    reception_client_a.post(url, {"email_ok": "on"})
    assert Consent.objects.filter(patient=patient).count() == 2
    page = reception_client_a.get(reverse("patients:detail", args=[patient.public_id])).content.decode()
    assert "Recorded by reception" in page


def test_a_clinician_reads_the_choices_but_cannot_change_them(clinic_a):
    patient = PatientFactory(clinic=clinic_a)
    clinician = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN))
    page = clinician.get(reverse("patients:detail", args=[patient.public_id])).content.decode()
    assert "Consent history" in page and "Save choices" not in page
    url = reverse("notifications:patient-preferences", args=[patient.public_id])
    assert clinician.post(url, {"email_ok": "on"}).status_code == 403
    assert not Consent.objects.exists()


def test_a_blocked_patients_choices_are_a_404_without_the_permission(clinic_a, reception_client_a, admin_client_a):
    hidden = PatientFactory(clinic=clinic_a, is_blocked=True, blocked_reason="Staff")
    url = reverse("notifications:patient-preferences", args=[hidden.public_id])
    assert reception_client_a.get(url).status_code == 404
    assert reception_client_a.post(url, {"email_ok": "on"}).status_code == 404
    assert admin_client_a.get(url).status_code == 200


# --- The Messages log --------------------------------------------------------------------------------------------


def test_the_log_lists_newest_first_with_status_words(clinic_a, reception_client_a):
    patient = PatientFactory(clinic=clinic_a, first_name="Olive", last_name="Oyl")
    now = timezone.now()
    message(clinic_a, patient, status=Status.SENT, created_at=now - dt.timedelta(hours=2))
    message(clinic_a, patient, status=Status.UNKNOWN, created_at=now - dt.timedelta(hours=1))
    message(clinic_a, patient, status=Status.WAITING, attempts=2, detail="Will try again: timeout", created_at=now)
    response = reception_client_a.get(reverse("notifications:list"))
    body = response.content.decode()
    rows = body[body.index("<tbody") :]
    assert rows.index("Retrying") < rows.index("Delivery unknown") < rows.index(">Sent<")
    assert "Will try again: timeout" in body
    assert f"Times in {response.context['zone']}" in body


def test_the_log_filters_by_status_patient_and_days(clinic_a, reception_client_a):
    olive = PatientFactory(clinic=clinic_a, first_name="Olive", last_name="Quist")
    bruno = PatientFactory(clinic=clinic_a, first_name="Bruno", last_name="Zeller")
    day = dt.datetime(2027, 3, 10, 12, tzinfo=dt.UTC)
    failed = message(clinic_a, olive, status=Status.FAILED, due_at=day, detail="550 refused")
    unknown = message(clinic_a, bruno, status=Status.UNKNOWN, due_at=day + dt.timedelta(days=2))
    sent = message(clinic_a, olive, status=Status.DELIVERED, due_at=day + dt.timedelta(days=5))
    url = reverse("notifications:list")

    def listed(**query):
        response = reception_client_a.get(url, query)
        assert response.status_code == 200
        return {m.pk for m in response.context["page_obj"]}

    assert listed() == {failed.pk, unknown.pk, sent.pk}
    assert listed(status="problems") == {failed.pk, unknown.pk}
    assert listed(status="unknown") == {unknown.pk}
    assert listed(status="sent") == {sent.pk}
    assert listed(q="quist") == {failed.pk, sent.pk}
    assert listed(patient=str(bruno.public_id)) == {unknown.pk}
    assert listed(since="2027-03-11", until="2027-03-12") == {unknown.pk}
    assert listed(since="2027-03-11", status="problems") == {unknown.pk}
    # Bad filters are ignored, never an error.
    assert listed(status="nonsense", since="not-a-date", patient="xyz", page="-3") == {failed.pk, unknown.pk, sent.pk}
    # htmx asks for the results only.
    fragment = reception_client_a.get(url, {"status": "failed"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="message-results"' in fragment and "<form" not in fragment and "550 refused" in fragment


def test_the_log_hides_blocked_patients_messages_from_members_who_may_not_see_them(
    clinic_a, reception_client_a, admin_client_a
):
    hidden = PatientFactory(clinic=clinic_a, first_name="Hidden", is_blocked=True, blocked_reason="Staff")
    shown = PatientFactory(clinic=clinic_a, first_name="Shown")
    secret = message(clinic_a, hidden, status=Status.FAILED)
    message(clinic_a, shown)
    body = reception_client_a.get(reverse("notifications:list")).content.decode()
    assert "Shown" in body and "Hidden" not in body
    assert (
        reception_client_a.get(reverse("notifications:list"), {"patient": str(hidden.public_id)})
        .context["page_obj"]
        .paginator.count
        == 0
    )
    assert reception_client_a.get(reverse("notifications:detail", args=[secret.public_id])).status_code == 404
    assert reception_client_a.get(reverse("notifications:resend", args=[secret.public_id])).status_code == 404
    assert "Hidden" in admin_client_a.get(reverse("notifications:list")).content.decode()


def test_clinicians_have_no_messages_log(clinic_a):
    clinician = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN))
    assert clinician.get(reverse("notifications:list")).status_code == 403


def test_reception_has_the_messages_nav_item(reception_client_a):
    response = reception_client_a.get(reverse("notifications:list"))
    active = [item["label"] for item in response.context["nav_items"] if item["active"]]
    assert active == ["Messages"]


@pytest.mark.parametrize("status_filter", [None, "problems"])
def test_the_log_takes_the_same_number_of_queries_for_3_and_30_messages(
    clinic_a, reception_client_a, django_assert_num_queries, status_filter
):
    patients = [PatientFactory(clinic=clinic_a) for _ in range(30)]
    query = {"status": status_filter} if status_filter else {}
    url = reverse("notifications:list")
    counts = []
    for size in (3, 30):
        Message.objects.all().delete()
        for i in range(size):
            message(clinic_a, patients[i], status=Status.FAILED if i % 2 else Status.UNKNOWN)
        reception_client_a.get(url, query)  # warm the session and the viewer's zone
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            response = reception_client_a.get(url, query)
        assert response.status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1]
    with django_assert_num_queries(counts[1]):
        reception_client_a.get(url, query)


# --- One message, Send again --------------------------------------------------------------------------------------


def test_the_detail_shows_what_the_message_said(clinic_a, admin_a, reception_client_a):
    appointment = booked(clinic_a, admin_a)
    confirmation = Message.objects.get(appointment=appointment, channel=Channel.EMAIL, kind=Kind.CONFIRMATION)
    assert confirmation.status == Status.SENT
    body = reception_client_a.get(reverse("notifications:detail", args=[confirmation.public_id])).content.decode()
    assert "Dear Nadia" in body and "nadia@example.org" in body
    assert "Send again" not in body


@pytest.mark.parametrize("status", [Status.FAILED, Status.UNKNOWN])
def test_send_again_after_a_confirmation_step_audited(clinic_a, reception_client_a, status):
    patient = PatientFactory(clinic=clinic_a, email="p@example.org")
    failed = message(clinic_a, patient, status=status, detail="The sender stopped")
    url = reverse("notifications:resend", args=[failed.public_id])
    detail = reverse("notifications:detail", args=[failed.public_id])
    assert "Send again" in reception_client_a.get(detail).content.decode()
    confirm = reception_client_a.get(url)
    assert confirm.status_code == 200 and "Send again" in confirm.content.decode()
    failed.refresh_from_db()
    assert failed.status == status  # the GET changed nothing
    response = reception_client_a.post(url, {"next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == detail  # never to another site
    assert AuditEvent.objects.filter(action="notifications.resend").count() == 1
    failed.refresh_from_db()
    assert failed.status != status  # waiting again (or sent already, in the eager test run)


@pytest.mark.parametrize("status", [Status.SENT, Status.DELIVERED, Status.WAITING, Status.SKIPPED])
def test_send_again_is_refused_for_a_message_that_did_not_fail(clinic_a, reception_client_a, status):
    patient = PatientFactory(clinic=clinic_a, email="p@example.org")
    fine = message(clinic_a, patient, status=status)
    url = reverse("notifications:resend", args=[fine.public_id])
    assert "Only a message that failed" in reception_client_a.get(url).content.decode()
    response = reception_client_a.post(url)
    assert response.status_code == 422
    fine.refresh_from_db()
    assert fine.status == status
    assert not AuditEvent.objects.filter(action="notifications.resend").exists()


def test_another_clinics_message_is_a_404(clinic_a, clinic_b, reception_client_a, outsider_client):
    theirs = message(clinic_b, PatientFactory(clinic=clinic_b), status=Status.FAILED)
    for name in ("notifications:detail", "notifications:resend"):
        url = reverse(name, args=[theirs.public_id])
        assert reception_client_a.get(url).status_code == 404
        assert reception_client_a.post(url).status_code in (404, 405)  # the detail is read-only
    ours = message(clinic_a, PatientFactory(clinic=clinic_a), status=Status.FAILED)
    assert outsider_client.get(reverse("notifications:detail", args=[ours.public_id])).status_code == 404
    assert outsider_client.post(reverse("notifications:resend", args=[ours.public_id])).status_code == 404
    patient = PatientFactory(clinic=clinic_a)
    url = reverse("notifications:patient-preferences", args=[patient.public_id])
    assert outsider_client.post(url, {"email_ok": "on"}).status_code == 404
    assert not Consent.objects.exists()


# --- The appointment page's section --------------------------------------------------------------------------------


def test_the_appointment_page_lists_its_messages_and_calls_out_failures(clinic_a, admin_a, reception_client_a):
    appointment = booked(clinic_a, admin_a)
    text = Message.objects.get(appointment=appointment, channel=Channel.SMS)
    Message.objects.filter(pk=text.pk).update(status=Status.FAILED, detail="Twilio reports the text undelivered.")
    url = reverse("scheduling:appointment", args=[appointment.public_id])
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        body = reception_client_a.get(url, **headers).content.decode()
        assert "Messages to the patient" in body
        assert "Booking confirmation" in body and "Twilio reports the text undelivered." in body
        resend = reverse("notifications:resend", args=[text.public_id])
        assert f'href="{resend}?next=' in body  # the failed one only
        email = Message.objects.get(appointment=appointment, channel=Channel.EMAIL)
        assert reverse("notifications:resend", args=[email.public_id]) not in body


def test_send_again_from_the_appointment_page_goes_back_there(clinic_a, admin_a, reception_client_a):
    appointment = booked(clinic_a, admin_a)
    text = Message.objects.get(appointment=appointment, channel=Channel.SMS)
    Message.objects.filter(pk=text.pk).update(status=Status.UNKNOWN)
    back = reverse("scheduling:appointment", args=[appointment.public_id])
    response = reception_client_a.post(reverse("notifications:resend", args=[text.public_id]), {"next": back})
    assert response.status_code == 302 and response["Location"] == back
