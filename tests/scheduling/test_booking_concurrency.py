"""A storm of bookings: no slot ever holds more than its capacity, and nothing half-written."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connection
from django.test.testcases import LiveServerThread, _StaticFilesHandler

from scheduling.models import Appointment, PendingNews, Slot
from scheduling.services.booking import BookingRequest, appointment_book
from tests.concurrent import all_at_once, room_for
from tests.factories import PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session

# Each storm holds about fifty database connections at once; PostgreSQL allows a hundred by default.
# One xdist worker runs them all, one after another (the suite runs with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("fifty-connection-storms")


def booking(clinic, membership, slot, patient):
    """A job that books the patient into the slot."""

    def run():
        appointment_book(
            clinic=clinic, actor=membership.user, membership=membership, request=BookingRequest(slot, patient)
        )
        return "booked"

    return run


def ten_places_and_fifty_patients(clinic):
    """A group slot of ten places, and fifty patients who all want one."""
    group = SlotTypeFactory(clinic=clinic, name="Group", capacity=10)
    session = allocate_session(
        clinic, practitioner=PractitionerFactory(clinic=clinic), day=dt.date(2027, 6, 7), slot_types=[group]
    )
    return session.slots.get(), PatientFactory.create_batch(50, clinic=clinic)


def storm(clinic, membership, slot, patients):
    """Book every patient into the slot at the same moment, each in its own thread and connection."""
    return all_at_once([booking(clinic, membership, slot, p) for p in patients])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_fifty_concurrent_bookings_into_ten_places_book_exactly_ten(clinic_a, reception_a, round_):
    slot, patients = ten_places_and_fifty_patients(clinic_a)
    outcomes = storm(clinic_a, reception_a, slot, patients)
    assert outcomes.count("booked") == 10
    assert outcomes.count("This group is full (10 places).") == 40
    slot.refresh_from_db()
    assert slot.booked_count == 10
    assert Appointment.objects.filter(slot=slot).count() == 10


@pytest.mark.django_db(transaction=True)
def test_two_overlapping_single_slots_of_one_practitioner_are_never_both_booked(clinic_a, reception_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    routine = SlotTypeFactory(clinic=clinic_a)
    # Two sessions cannot overlap on the rota, so make the overlap the way an ad-hoc slot would.
    first = allocate_session(clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), slot_types=[routine])
    second = allocate_session(
        clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), start=dt.time(11), slot_types=[routine]
    )
    a, b = first.slots.get(), second.slots.get()
    Slot.objects.filter(pk=b.pk).update(starts_at=a.starts_at, ends_at=a.ends_at)
    patients = PatientFactory.create_batch(2, clinic=clinic_a)
    pairs = [(a, patients[0]), (b, patients[1])]
    outcomes = all_at_once([booking(clinic_a, reception_a, slot, patient) for slot, patient in pairs])
    assert sorted(outcomes) == ["The practitioner already has an appointment at that time.", "booked"]
    assert Appointment.objects.filter(practitioner=practitioner).count() == 1


class RoomyWSGIServer(ThreadedWSGIServer):
    # Django's test server queues 10 connections; a storm of 50 at once would be refused at the door.
    request_queue_size = 128


class RoomyServerThread(LiveServerThread):
    server_class = RoomyWSGIServer


@pytest.fixture
def roomy_server(transactional_db):
    """A threaded live server (one thread and database connection per request) that accepts a crowd."""
    thread = RoomyServerThread("127.0.0.1", _StaticFilesHandler)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield f"http://127.0.0.1:{thread.port}"
    thread.terminate()


def http_bookings_at_once(server: str, membership, bookings, refusal: str, refused: str) -> list[str]:
    """Reception (signed in as the membership) posts each (slot, patient) booking at the same moment, each in its
    own thread and HTTP connection: per booking "booked", ``refused`` when the answer says ``refusal``, or the
    status code."""
    import concurrent.futures

    import requests
    from django.test import Client
    from django.urls import reverse

    signed_in = Client()
    signed_in.force_login(membership.user, backend="django.contrib.auth.backends.ModelBackend")
    cookies = {"sessionid": signed_in.cookies["sessionid"].value, "csrftoken": "t" * 32}
    room_for(len(bookings) + 2)  # the server's request threads, one connection each
    barrier = threading.Barrier(len(bookings))

    def post(booking):
        slot, patient = booking
        data = {
            "patient": str(patient.public_id),
            "coverage": "self",
            "slot_type": str(slot.slot_type.public_id),
            "action": "book",
        }
        url = server + reverse("scheduling:book", args=[slot.public_id])
        with requests.Session() as http:
            http.cookies.update(cookies)
            barrier.wait(timeout=30)
            response = http.post(url, data=data, headers={"X-CSRFToken": "t" * 32}, allow_redirects=False, timeout=60)
        if response.status_code == 302:
            return "booked"
        return refused if refusal in response.text else f"{response.status_code}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(bookings)) as pool:
        return list(pool.map(post, bookings))


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_http_bookings_into_ten_places(clinic_a, reception_a, roomy_server):
    """The same storm through real HTTP requests to a threaded server: 10 booked, 40 told it is full."""
    slot, patients = ten_places_and_fifty_patients(clinic_a)
    bookings = [(slot, patient) for patient in patients]
    outcomes = http_bookings_at_once(roomy_server, reception_a, bookings, "This group is full (10 places).", "full")
    assert outcomes.count("booked") == 10, outcomes
    assert outcomes.count("full") == 40, outcomes
    slot.refresh_from_db()
    assert slot.booked_count == 10 == Appointment.objects.filter(slot=slot).count()
    # On PostgreSQL each was booked in one call (its news waits for a worker); on SQLite by appointment_book.
    assert PendingNews.objects.count() == (10 if connection.vendor == "postgresql" else 0)


@pytest.mark.django_db(transaction=True)
def test_concurrent_http_bookings_of_two_overlapping_single_slots_book_one(clinic_a, reception_a, roomy_server):
    """Reception posts two overlapping single slots of one practitioner at the same moment, many times over: each
    pair books one (on PostgreSQL in one call each, the practitioner's lock between them) and refuses the other."""
    practitioner = PractitionerFactory(clinic=clinic_a)
    routine = SlotTypeFactory(clinic=clinic_a)
    pairs = []
    for hour in (8, 10, 12, 14, 16):
        first = allocate_session(
            clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), start=dt.time(hour), slot_types=[routine]
        ).slots.get()
        second = allocate_session(
            clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), start=dt.time(hour, 30), slot_types=[routine]
        ).slots.get()
        Slot.objects.filter(pk=second.pk).update(starts_at=first.starts_at, ends_at=first.ends_at)
        pairs += [first, second]
    patients = PatientFactory.create_batch(len(pairs), clinic=clinic_a)
    busy = "The practitioner already has an appointment at that time."
    outcomes = http_bookings_at_once(roomy_server, reception_a, list(zip(pairs, patients, strict=True)), busy, "busy")
    assert sorted(outcomes) == ["booked"] * 5 + ["busy"] * 5, outcomes
    for first, second in zip(pairs[::2], pairs[1::2], strict=True):
        assert Appointment.objects.filter(slot__in=[first, second]).count() == 1
    assert sum(Slot.objects.filter(pk__in=[s.pk for s in pairs]).values_list("booked_count", flat=True)) == 5
