"""Create New Slot follows the choices in Chromium: a practitioner brings their usual location, a slot type its
length, until the length is typed by hand."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.e2e.calendar_browser import sign_in
from tests.factories import LocationFactory, PractitionerFactory, SlotTypeFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_location_and_length_follow_the_practitioner_and_type(page, live_server, reception_a, js_errors):
    clinic = reception_a.clinic
    north, south = LocationFactory(clinic=clinic, name="North"), LocationFactory(clinic=clinic, name="South")
    ann = PractitionerFactory(clinic=clinic, name="Dr Ann", default_location=north)
    PractitionerFactory(clinic=clinic, name="Dr Bob", default_location=south)
    SlotTypeFactory(clinic=clinic, name="Brief", default_length_minutes=10)
    SlotTypeFactory(clinic=clinic, name="Long review", default_length_minutes=40)
    sign_in(page, live_server, reception_a)
    page.goto(live_server.url + reverse("scheduling:slot-new") + f"?practitioner={ann.public_id}")
    location, length = page.get_by_label("Location"), page.get_by_label("Length (minutes)")
    expect(location).to_have_value(str(north.public_id))
    page.get_by_label("Practitioner").select_option(label="Dr Bob")
    expect(location).to_have_value(str(south.public_id))
    page.get_by_label("Slot type").select_option(label="Long review")
    expect(length).to_have_value("40")
    length.fill("25")  # typed by hand: a later type change keeps it
    page.get_by_label("Slot type").select_option(label="Brief")
    expect(length).to_have_value("25")
    assert js_errors == []
