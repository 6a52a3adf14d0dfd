"""Online and reception bookings into one group's last places at the same moment, through real HTTP requests to a
threaded server on the test's database: exactly the places there are, whoever asks, and the rest told it is gone."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading

import pytest
import requests
from django.test import Client
from django.urls import reverse

from online.models import OnlineBooking
from patients.models import Patient
from scheduling.models import Appointment, AppointmentSource
from tests.concurrent import room_for
from tests.factories import PatientFactory, SlotTypeFactory, allocate_session
from tests.online.conftest import next_week_day, pending_check
from tests.scheduling.test_booking_concurrency import roomy_server  # noqa: F401 - the fixture

pytestmark = [pytest.mark.xdist_group("fifty-connection-storms"), pytest.mark.django_db(transaction=True)]

CSRF = "t" * 32


def test_online_and_reception_bookings_race_for_four_places_and_exactly_four_win(
    clinic_a,
    reception_a,
    online_on,
    gp,
    surgery,
    roomy_server,  # noqa: F811
):
    group = SlotTypeFactory(
        clinic=clinic_a, name="Group class", capacity=4, online_bookable=True, default_length_minutes=60
    )
    session = allocate_session(
        clinic_a, practitioner=gp, location=surgery, day=next_week_day(clinic_a), start=dt.time(10), slot_types=[group]
    )
    slot = session.slots.get()
    online = [
        pending_check(clinic_a, group, slot, first_name=f"Online{n}", email=f"online{n}@example.org") for n in range(6)
    ]
    patients = PatientFactory.create_batch(6, clinic=clinic_a)
    staff = Client()
    staff.force_login(reception_a.user, backend="django.contrib.auth.backends.ModelBackend")
    staff_cookies = {"sessionid": staff.cookies["sessionid"].value, "csrftoken": CSRF}
    jobs = [("online", token, code) for token, code in online] + [("reception", p, None) for p in patients]
    room_for(len(jobs) + 2)  # the server's request threads, one connection each
    barrier = threading.Barrier(len(jobs))

    def post(job):
        who, first, second = job
        with requests.Session() as http:
            http.cookies.update({"csrftoken": CSRF} if who == "online" else staff_cookies)
            if who == "online":
                url = roomy_server + reverse("online:check", args=[clinic_a.slug, first])
                data = {"code": second}
            else:
                url = roomy_server + reverse("scheduling:book", args=[slot.public_id])
                data = {
                    "patient": str(first.public_id),
                    "coverage": "self",
                    "slot_type": str(group.public_id),
                    "action": "book",
                }
            barrier.wait(timeout=30)
            response = http.post(url, data=data, headers={"X-CSRFToken": CSRF}, allow_redirects=False, timeout=60)
        if response.status_code == 302:
            return f"{who} booked"
        gone = "that time has just gone" in response.text or "This group is full (4 places)." in response.text
        return f"{who} refused" if gone else f"{who} {response.status_code}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        outcomes = list(pool.map(post, jobs))
    booked = [o for o in outcomes if o.endswith("booked")]
    assert len(booked) == 4, outcomes
    assert all(o.endswith("booked") or o.endswith("refused") for o in outcomes), outcomes
    slot.refresh_from_db()
    assert slot.booked_count == 4 == Appointment.objects.filter(slot=slot).count()
    online_won = sum(o == "online booked" for o in outcomes)
    assert Appointment.objects.filter(slot=slot, source=AppointmentSource.ONLINE).count() == online_won
    # A refused online booking leaves nothing behind: no booking row, no patient registered for it.
    assert OnlineBooking.objects.count() == online_won
    assert Patient.objects.count() == len(patients) + online_won
