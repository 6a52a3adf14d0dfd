"""The public site answers garbage with a message or a 4xx, never a 500, and never shows another clinic's
objects under this clinic's address."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from django.urls import reverse

from online.services import done_token, manage_token
from tests.clinic.test_bad_input import GARBAGE
from tests.factories import SlotTypeFactory, allocate_session
from tests.online.conftest import book_online, next_week_day
from tests.url_walk import all_routes

pytestmark = pytest.mark.django_db(transaction=True)


def public_urls(clinic, slot_type, slot, appointment, booking) -> dict[str, str]:
    keys = {
        "slug": clinic.slug,
        "slot_type": slot_type.public_id,
        "slot": slot.public_id,
        "token": "x",
    }
    tokens = {
        "online:check": "not-a-token",
        "online:done": done_token(booking),
        "online:manage": manage_token(appointment),
        "online:move": manage_token(appointment),
        "online:offer": "not-a-token",  # a real offer's page meets garbage in tests/online/test_offer_page.py
    }
    urls = {}
    for route in all_routes():
        if route.name.startswith("online:") and "slug" in route.converters:
            kwargs = {key: keys[key] for key in route.converters}
            if "token" in kwargs:
                kwargs["token"] = tokens[route.name]
            urls[route.name] = reverse(route.name, kwargs=kwargs)
    return urls


def test_every_public_page_answers_garbage_without_a_server_error(
    client: Client, clinic_a, online_on, consult, session
):
    from online.models import OnlineBooking

    book_online(client, clinic_a, consult, session.slots.first())
    booking = OnlineBooking.objects.get()
    urls = public_urls(clinic_a, consult, session.slots.last(), booking.appointment, booking)
    assert set(urls) == {"online:landing", "online:times", "online:details", "online:check", "online:done",
                         "online:manage", "online:move", "online:offer"}  # fmt: skip
    client.raise_request_exception = True
    for url in urls.values():
        for payload in [*GARBAGE, {"tz": "Not/AZone", "day": "2027-02-30", "location": "x", "practitioner": "-1"},
                        {"code": "x" * 5000, "slot": "not-a-uuid", "confirm": "cancel"}]:  # fmt: skip
            assert client.get(url, payload).status_code < 500, (url, payload)
            assert client.post(url, payload).status_code < 500, (url, payload)


def test_another_clinics_slot_types_and_slots_are_not_found_here(
    client: Client, clinic_a, clinic_b, online_on, consult, session
):
    theirs = SlotTypeFactory.create(clinic=clinic_b, online_bookable=True)
    their_slot = allocate_session(clinic_b, day=next_week_day(clinic_b), slot_types=[theirs]).slots.get()
    assert client.get(reverse("online:times", args=[clinic_a.slug, theirs.public_id])).status_code == 404
    assert (
        client.get(reverse("online:details", args=[clinic_a.slug, consult.public_id, their_slot.public_id])).status_code
        == 410
    )
    assert client.get(reverse("online:times", args=[clinic_a.slug, uuid.uuid4()])).status_code == 404
    assert client.get(reverse("online:done", args=[clinic_a.slug, "forged"])).status_code == 404
