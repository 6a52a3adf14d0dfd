"""The public booking flow through the views: find, details, the emailed code, booked (instant) or requested;
nothing booked before the code; the patient matched or registered; the time gone when taken."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from notifications.models import Kind, Message
from online.models import BookingMode, EmailCheck, OnlineBooking, OnlineStatus, PractitionerOnline
from patients.models import Patient
from scheduling.models import Appointment, AppointmentSource, Slot
from tests.factories import PatientFactory
from tests.online.conftest import ask_for_code, book_online, details, last_code

# Transactional: messages are sent after the booking commits (the nudge is an on_commit callback).
pytestmark = pytest.mark.django_db(transaction=True)


def test_the_landing_page_lists_what_can_be_booked_and_is_the_only_indexable_page(
    client: Client, clinic_a, online_on, consult, session
):
    response = client.get(reverse("online:landing", args=[clinic_a.slug]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Routine consult" in page and "15 minutes" in page and "A 15-minute appointment with a GP." in page
    assert "noindex" not in page and not response.has_header("X-Robots-Tag")
    times = client.get(reverse("online:times", args=[clinic_a.slug, consult.public_id]))
    assert times.status_code == 200
    assert times["X-Robots-Tag"] == "noindex, nofollow"
    assert '<meta name="robots" content="noindex, nofollow">' in times.content.decode()


def test_a_clinic_without_online_booking_has_no_site(client: Client, clinic_a, clinic_b, online_on):
    assert client.get(reverse("online:landing", args=[clinic_b.slug])).status_code == 404
    online_on.enabled = False
    online_on.save()
    assert client.get(reverse("online:landing", args=[clinic_a.slug])).status_code == 404


def test_the_times_page_lists_the_free_times_of_the_first_day_in_the_patients_zone(
    client: Client, clinic_a, online_on, consult, session
):
    response = client.get(reverse("online:times", args=[clinic_a.slug, consult.public_id]), {"tz": "Europe/London"})
    page = response.content.decode()
    assert [t in page for t in ("10:00", "10:15", "10:30", "10:45")] == [True] * 4
    assert "Dr Online" in page and "High Street Surgery" in page
    # In Paris, the same times an hour later, with the clinic's beside them.
    paris = client.get(reverse("online:times", args=[clinic_a.slug, consult.public_id]), {"tz": "Europe/Paris"})
    page = paris.content.decode()
    assert "11:00" in page and "(10:00 clinic time)" in page and "Europe/Paris" in page


def test_no_times_says_so_and_gives_the_phone(client: Client, clinic_a, online_on, consult):
    page = client.get(reverse("online:times", args=[clinic_a.slug, consult.public_id])).content.decode()
    assert "No online times in the next 60 days" in page and "01632 960000" in page


def test_instant_booking_books_after_the_code_and_confirms_by_email_with_an_invitation(
    client: Client, clinic_a, online_on, consult, session
):
    slot = session.slots.first()
    response = ask_for_code(client, clinic_a, consult, slot)
    assert response.status_code == 302
    # Nothing booked and nobody created before the code is typed.
    assert not Appointment.objects.exists() and not Patient.objects.exists()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.org"]
    code = last_code()
    wrong = client.post(response["Location"], {"code": "000000" if code != "000000" else "111111"})
    assert wrong.status_code == 400 and "That code is not right. 4 tries left." in wrong.content.decode()
    done = client.post(response["Location"], {"code": code}, follow=True)
    assert done.status_code == 200 and "You are booked" in done.content.decode()
    appointment = Appointment.objects.get()
    assert appointment.slot == slot and appointment.source == AppointmentSource.ONLINE
    assert appointment.created_by is None
    patient = appointment.patient
    assert (patient.first_name, patient.registered_online, patient.email) == ("Ada", True, "ada@example.org")
    booking = OnlineBooking.objects.get()
    assert (booking.status, booking.mode, booking.reason) == (OnlineStatus.BOOKED, BookingMode.INSTANT, "Knee pain")
    confirmation = Message.objects.get(kind=Kind.CONFIRMATION, channel="email")
    assert confirmation.status == "sent"
    email = mail.outbox[-1]
    assert email.to == ["ada@example.org"]
    assert "/book/" in email.body and "/manage/" in email.body  # the signed link to view, cancel or move
    assert any(a[2].startswith("text/calendar") for a in email.attachments)
    # The code works once.
    again = client.post(response["Location"], {"code": code})
    assert again.status_code == 400 and Appointment.objects.count() == 1


def test_an_existing_patient_is_matched_by_birth_date_first_name_and_the_verified_email(
    client: Client, clinic_a, online_on, consult, session
):
    known = PatientFactory(
        clinic=clinic_a, first_name="Ada", last_name="Lovelace", date_of_birth="1985-12-10", email="ADA@example.org"
    )
    book_online(client, clinic_a, consult, session.slots.first(), first_name=" ada ")
    assert Appointment.objects.get().patient == known
    assert Patient.objects.count() == 1


def test_two_patients_alike_are_never_guessed_between(client: Client, clinic_a, online_on, consult, session):
    for last in ("Lovelace", "Byron"):
        PatientFactory(
            clinic=clinic_a, first_name="Ada", last_name=last, date_of_birth="1985-12-10", email="ada@example.org"
        )
    book_online(client, clinic_a, consult, session.slots.first())
    patient = Appointment.objects.get().patient
    assert patient.registered_online and Patient.objects.count() == 3


def test_a_request_holds_the_place_until_reception_answers(client: Client, clinic_a, online_on, consult, gp, session):
    PractitionerOnline.objects.create(clinic=clinic_a, practitioner=gp, accepts=True, mode=BookingMode.REQUEST)
    slot = session.slots.first()
    done = book_online(client, clinic_a, consult, slot)
    assert "Request sent" in done.content.decode()
    assert not Appointment.objects.exists()
    slot.refresh_from_db()
    assert (slot.booked_count, slot.held_count) == (1, 1)
    booking = OnlineBooking.objects.get()
    assert booking.status == OnlineStatus.PENDING and booking.hold is not None and booking.hold.slot == slot
    assert Message.objects.filter(kind=Kind.REQUESTED, channel="email", status="sent").exists()
    # The held time is no longer offered.
    page = client.get(reverse("online:times", args=[clinic_a.slug, consult.public_id]), {"tz": "Europe/London"})
    assert str(slot.public_id) not in page.content.decode()


def test_a_blocked_patient_is_never_booked_instantly(client: Client, clinic_a, online_on, consult, session):
    PatientFactory(
        clinic=clinic_a,
        first_name="Ada",
        date_of_birth="1985-12-10",
        email="ada@example.org",
        is_blocked=True,
        blocked_reason="Staff member",
    )
    book_online(client, clinic_a, consult, session.slots.first())
    booking = OnlineBooking.objects.get()
    assert booking.status == OnlineStatus.PENDING and booking.mode == BookingMode.REQUEST
    assert "Restricted" in booking.request_why
    assert not Appointment.objects.exists()


def test_a_time_taken_before_the_code_is_typed_is_refused_and_nothing_is_booked(
    client: Client, clinic_a, online_on, consult, session
):
    slot = session.slots.first()
    response = ask_for_code(client, clinic_a, consult, slot)
    code = last_code()
    Slot.objects.filter(pk=slot.pk).update(booked_count=1)  # reception took it meanwhile
    refused = client.post(response["Location"], {"code": code})
    assert refused.status_code == 400 and "that time has just gone" in refused.content.decode()
    assert not Appointment.objects.exists() and not Patient.objects.exists()


def test_the_honeypot_sends_nothing_and_looks_the_same(client: Client, clinic_a, online_on, consult, session):
    response = ask_for_code(client, clinic_a, consult, session.slots.first(), website="http://spam.example")
    assert response.status_code == 302 and "/check/" in response["Location"]
    assert mail.outbox == [] and not EmailCheck.objects.exists()


def test_bad_details_are_shown_on_the_form(client: Client, clinic_a, online_on, consult, session):
    url = reverse("online:details", args=[clinic_a.slug, consult.public_id, session.slots.first().public_id])
    response = client.post(url, details(email="not an email", date_of_birth="2999-01-01", mobile="12"))
    page = response.content.decode()
    assert response.status_code == 400
    assert "Enter a valid email address." in page and "cannot be in the future" in page and "Enter a mobile" in page
    assert mail.outbox == []


def test_too_many_codes_for_one_email_are_refused(client: Client, clinic_a, online_on, consult, session, settings):
    settings.ONLINE_CODE_LIMIT_EACH = 2
    slot = session.slots.first()
    assert [ask_for_code(client, clinic_a, consult, slot).status_code for _ in range(3)] == [302, 302, 429]
    assert len(mail.outbox) == 2


def test_a_finished_check_is_deleted_with_the_booking_and_unfinished_ones_are_purged(
    client: Client, clinic_a, online_on, consult, session
):
    import datetime as dt

    from django.utils import timezone

    from online.services import checks_purge

    book_online(client, clinic_a, consult, session.slots.first())
    assert not EmailCheck.objects.exists()  # what was typed lives in the record and the booking now
    ask_for_code(client, clinic_a, consult, session.slots.last(), email="someone@example.org")
    assert checks_purge() == 0  # still usable
    assert checks_purge(now=timezone.now() + dt.timedelta(hours=2)) == 1
    assert not EmailCheck.objects.exists()


def test_a_requests_times_say_so_before_the_patient_books(client: Client, clinic_a, online_on, consult, gp, session):
    PractitionerOnline.objects.create(clinic=clinic_a, practitioner=gp, accepts=True, mode=BookingMode.REQUEST)
    times = client.get(reverse("online:times", args=[clinic_a.slug, consult.public_id])).content.decode()
    assert "a request the clinic confirms" in times
    slot = session.slots.first()
    page = client.get(reverse("online:details", args=[clinic_a.slug, consult.public_id, slot.public_id]))
    assert "This time is a request" in page.content.decode()


def test_wrong_codes_sent_all_at_once_never_get_past_five_tries(clinic_a, online_on, consult, session):
    from online.services import CODE_TRIES, check_verify
    from tests.concurrent import all_at_once
    from tests.online.conftest import pending_check

    token, code = pending_check(clinic_a, consult, session.slots.first(), first_name="Ada", email="ada@example.org")
    wrong = "000000" if code != "000000" else "111111"

    def guess():
        check_verify(clinic=clinic_a, online=online_on, token=token, code=wrong)
        return "booked"

    outcomes = all_at_once([guess for _ in range(12)])
    assert not any(o == "booked" or o.startswith("ERROR") for o in outcomes), outcomes
    assert EmailCheck.objects.get(token=token).attempts == CODE_TRIES
    assert sum("Too many wrong codes" in o for o in outcomes) >= 12 - CODE_TRIES
    right = None  # the right code no longer works either: the check is spent
    try:
        check_verify(clinic=clinic_a, online=online_on, token=token, code=code)
    except Exception as error:  # noqa: BLE001 - the refusal is what is tested
        right = str(error)
    assert right is not None and "Too many wrong codes" in right
    assert not Appointment.objects.exists()
