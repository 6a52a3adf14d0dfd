"""The staff calendar and online bookings: a held place shows as held (not free), and the "Online bookings only"
filter keeps the slots booked or requested online."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from scheduling.grid_html import drawn
from scheduling.models import AppointmentSource, HoldKind
from scheduling.services.booking import BookingRequest, appointment_book, hold_take
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def test_held_and_online_slots_in_the_grid_and_the_online_filter(
    admin_client_a: Client, admin_a, clinic_a, consult, gp, session
):
    online_slot, reception_slot, held_slot, free_slot = session.slots.all()
    appointment_book(
        clinic=clinic_a, actor=None, membership=None,
        request=BookingRequest(slot=online_slot, patient=PatientFactory.create(clinic=clinic_a, last_name="Webb"),
                               source=AppointmentSource.ONLINE),
    )  # fmt: skip
    appointment_book(
        clinic=clinic_a, actor=admin_a.user, membership=admin_a,
        request=BookingRequest(slot=reception_slot, patient=PatientFactory.create(clinic=clinic_a, last_name="Desk")),
    )  # fmt: skip
    hold_take(
        clinic=clinic_a, actor=None, slot=held_slot, kind=HoldKind.ONLINE_REQUEST,
        expires_at=timezone.now() + dt.timedelta(hours=2),
    )  # fmt: skip
    day = session.date.isoformat()
    url = reverse("scheduling:calendar")
    page = admin_client_a.get(url, {"view": "day", "date": day}).content.decode()
    page = drawn(page)  # its slots as calendar.js draws them
    for slot in (online_slot, reception_slot, held_slot, free_slot):
        assert f'id="slot-{slot.public_id}"' in page
    assert "held for an online request" in page
    only = admin_client_a.get(url, {"view": "day", "date": day, "only": "online"}).content.decode()
    only = drawn(only)  # its slots as calendar.js draws them
    assert "Showing only times booked or requested online" in only
    assert f'id="slot-{online_slot.public_id}"' in only and f'id="slot-{held_slot.public_id}"' in only
    assert f'id="slot-{reception_slot.public_id}"' not in only and f'id="slot-{free_slot.public_id}"' not in only
    assert "only=online" in only  # the view switch and the arrows keep the filter
