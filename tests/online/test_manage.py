"""A patient's own appointment from the signed link in their email: view, cancel (asked first) or move, inside the
clinic's window; the link names one appointment of one patient, follows a move and expires; every change is
audited "by patient online" and shown on the appointment page."""

from __future__ import annotations

import re

import pytest
from django.core import mail, signing
from django.test import Client
from django.urls import resolve, reverse

from notifications.models import Kind, Message
from online.services import MANAGE_SALT, manage_token
from scheduling.models import Appointment, AppointmentStatus, CancelCategory
from tests.factories import PatientFactory
from tests.online.conftest import LONDON, book_online

# Transactional: messages are sent after the change commits (the nudge is an on_commit callback).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def booked(client: Client, clinic_a, online_on, consult, session) -> Appointment:
    book_online(client, clinic_a, consult, session.slots.first())
    return Appointment.objects.get()


def manage_url(appointment: Appointment) -> str:
    return reverse("online:manage", args=[appointment.clinic.slug, manage_token(appointment)])


def test_the_link_in_the_confirmation_opens_the_appointment(client: Client, booked):
    confirmation = next(m for m in mail.outbox if "Your appointment on" in m.subject)
    # The link is signed when the message is written, so its timestamp may be a second older than a token made now.
    link = re.search(r"https?://\S+(/book/[^/\s]+/manage/[^/\s]+/)", str(confirmation.body))
    assert link is not None, confirmation.body
    path = link.group(1)
    token = resolve(path).kwargs["token"]
    assert signing.loads(token, salt=MANAGE_SALT) == signing.loads(manage_token(booked), salt=MANAGE_SALT)
    assert path.startswith(manage_url(booked).rsplit("/", 2)[0] + "/")
    page = client.get(path)
    text = page.content.decode()
    assert page.status_code == 200 and "Routine consult" in text and "Dr Online" in text
    assert page["X-Robots-Tag"] == "noindex, nofollow"


def test_a_tampered_or_expired_link_is_a_404(client: Client, clinic_a, booked, settings):
    token = manage_token(booked)
    assert client.get(reverse("online:manage", args=[clinic_a.slug, token[:-2] + "xx"])).status_code == 404
    other = PatientFactory.create(clinic=clinic_a)
    forged = signing.dumps({"a": str(booked.public_id), "p": str(other.public_id)}, salt="wrong", compress=True)
    assert client.get(reverse("online:manage", args=[clinic_a.slug, forged])).status_code == 404
    # Someone else's appointment under a right signature but the wrong patient: not found either.
    wrong_patient = signing.dumps(
        {"a": str(booked.public_id), "p": str(other.public_id)}, salt=MANAGE_SALT, compress=True
    )
    assert client.get(reverse("online:manage", args=[clinic_a.slug, wrong_patient])).status_code == 404
    settings.ONLINE_LINK_DAYS = 0
    assert client.get(reverse("online:manage", args=[clinic_a.slug, token])).status_code == 404


def test_cancelling_asks_first_then_cancels_tells_the_patient_and_is_audited(
    client: Client, booked, admin_client_a: Client
):
    path = manage_url(booked)
    asked = client.post(path)
    assert "Cancel this appointment?" in asked.content.decode()
    booked.refresh_from_db()
    assert booked.status == AppointmentStatus.BOOKED
    done = client.post(path, {"confirm": "cancel"}, follow=True)
    assert "Your appointment is cancelled" in done.content.decode()
    booked.refresh_from_db()
    assert (booked.status, booked.cancel_category) == (AppointmentStatus.CANCELLED, CancelCategory.PATIENT)
    assert Message.objects.filter(kind=Kind.CANCELLED, channel="email", status="sent").exists()
    # Reception sees who did it on the appointment page.
    page = admin_client_a.get(reverse("scheduling:appointment", args=[booked.public_id])).content.decode()
    assert "Booked online" in page and "Cancelled by the patient online" in page and "Knee pain" in page


def test_inside_the_window_the_patient_is_asked_to_call(client: Client, clinic_a, online_on, booked):
    online_on.change_hours = 24 * 14
    online_on.save()
    page = client.get(manage_url(booked)).content.decode()
    assert "please call the clinic" in page and "Cancel appointment" not in page
    refused = client.post(manage_url(booked), {"confirm": "cancel"})
    assert refused.status_code == 400
    booked.refresh_from_db()
    assert booked.status == AppointmentStatus.BOOKED


def test_moving_offers_other_times_moves_and_the_old_link_follows(client: Client, clinic_a, consult, session, booked):
    later = list(session.slots.all())[2]
    path = manage_url(booked)
    offered = client.get(reverse("online:move", args=[clinic_a.slug, manage_token(booked)]))
    assert str(later.public_id) in offered.content.decode()
    assert str(booked.slot.public_id) not in offered.content.decode()  # not its own time
    moved = client.post(reverse("online:move", args=[clinic_a.slug, manage_token(booked)]), {"slot": later.public_id})
    assert moved.status_code == 302
    new = Appointment.objects.get(status=AppointmentStatus.BOOKED)
    assert new.slot == later and new.rescheduled_from == booked and new.source == "online"
    assert Message.objects.filter(kind=Kind.MOVED, appointment=new, channel="email").exists()
    # The first email's link now shows the moved appointment.
    page = client.get(path).content.decode()
    assert later.starts_at.astimezone(LONDON).strftime("%H:%M") in page  # the patient's zone: the clinic's here
    assert booked.starts_at.astimezone(LONDON).strftime("%H:%M") not in page
    assert "Cancel appointment" in page


def test_a_link_of_one_clinic_does_not_open_at_another(client: Client, clinic_b, booked):
    from online.models import OnlineSettings

    OnlineSettings.objects.create(clinic=clinic_b, enabled=True)
    assert client.get(reverse("online:manage", args=[clinic_b.slug, manage_token(booked)])).status_code == 404


def test_the_confirmation_page_tells_a_cancellation_and_a_type_no_longer_online_is_not_moved_online(
    client: Client, clinic_a, consult, booked
):
    from online.models import OnlineBooking
    from online.services import done_token

    done = reverse("online:done", args=[clinic_a.slug, done_token(OnlineBooking.objects.get())])
    assert "You are booked" in client.get(done).content.decode()
    consult.online_bookable = False
    consult.save()
    page = client.get(manage_url(booked)).content.decode()
    assert "Move to another time" not in page and "Cancel appointment" in page
    client.post(manage_url(booked), {"confirm": "cancel"})
    page = client.get(done).content.decode()
    assert "This appointment is cancelled" in page and "You are booked" not in page
