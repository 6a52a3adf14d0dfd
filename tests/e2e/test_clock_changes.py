"""The night the clocks go back, in Chromium: both passes of the repeated hour are drawn side by side and
named, and an event over midnight shows on both days."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from tests.e2e.calendar_browser import BROWSER_ZONE, sign_in
from tests.factories import OtherEventFactory, PractitionerFactory, SlotTypeFactory, allocate_session

pytestmark = pytest.mark.django_db(transaction=True)
FALL_BACK = dt.date(2027, 10, 31)


def overlap(a, b) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and (b["y"] < a["y"] + a["height"])
    )


def test_both_one_oclocks_are_drawn_side_by_side_and_named(page, live_server, admin_a, js_errors):
    clinic = admin_a.clinic
    doctor = PractitionerFactory(clinic=clinic, name="Dr Night")
    night = SlotTypeFactory(clinic=clinic, name="Night", default_length_minutes=10)
    allocate_session(clinic, practitioner=doctor, day=FALL_BACK, start=dt.time(0, 30), slot_types=[night] * 12)
    OtherEventFactory(
        clinic=clinic,
        practitioner=doctor,
        title="Handover",
        starts_at=dt.datetime(2027, 10, 30, 22, 30, tzinfo=dt.UTC),  # 23:30 BST on Saturday
        ends_at=dt.datetime(2027, 10, 30, 23, 15, tzinfo=dt.UTC),  # 00:15 BST on Sunday
    )
    sign_in(page, live_server, admin_a)
    page.goto(f"{live_server.url}/calendar/?view=day&date={FALL_BACK}&tab={doctor.public_id}")
    expect(page.locator("body")).to_have_attribute("data-viewer-zone", BROWSER_ZONE)
    slots = page.locator("a.slot")
    expect(slots).to_have_count(12)
    first, second = page.locator("a.slot", has_text="01:00 BST"), page.locator("a.slot", has_text="01:00 GMT")
    expect(first).to_be_visible()
    expect(second).to_be_visible()
    one, two = first.bounding_box(), second.bounding_box()
    assert one is not None and two is not None
    assert not overlap(one, two), (one, two)  # side by side, both clickable
    second.click()
    expect(page.locator("dialog#tip")).to_contain_text("01:00 GMT–01:10 GMT")
    # The event from Saturday 23:30 continues on Sunday until 00:15.
    page.keyboard.press("Escape")
    expect(page.locator("a.ev", has_text="Handover")).to_contain_text("23:30–00:15")
    assert js_errors == []
