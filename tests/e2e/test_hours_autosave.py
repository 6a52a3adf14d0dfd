"""Office hours save on every change; a change the server refuses shows why, beside the day, and never
"Saved". Before, the 422 answer was ignored off the calendar page (only calendar.js swapped it), so
"✓ Saved automatically." stayed on screen over hours that were not saved."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from scheduling.models import OfficeHours
from tests.e2e.calendar_browser import sign_in
from tests.factories import PractitionerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_refused_autosave_says_so_beside_the_day(page, live_server, reception_a, js_errors):
    practitioner = PractitionerFactory(clinic=reception_a.clinic, name="Dr Hours")
    sign_in(page, live_server, reception_a)
    page.goto(live_server.url + reverse("scheduling:office-hours-edit", args=[practitioner.public_id]))
    status = page.locator(".save-status")
    page.get_by_role("button", name="Add hours on Monday").click()
    start, end = page.get_by_label("Monday range 1 start"), page.get_by_label("Monday range 1 end")
    start.fill("09:00")
    end.fill("17:00")
    end.blur()
    expect(status).to_have_text("✓ Saved automatically.")
    assert OfficeHours.objects.get(practitioner=practitioner).weekly == {"1": [["09:00", "17:00"]]}

    page.get_by_label("Monday range 1 end").fill("08:00")  # before the start: refused
    page.get_by_label("Monday range 1 end").blur()
    expect(status).to_have_text("Not saved: correct the hours marked above.")
    monday = page.get_by_role("row", name="Monday")
    expect(monday.get_by_role("alert")).to_be_visible()
    assert OfficeHours.objects.get(practitioner=practitioner).weekly == {"1": [["09:00", "17:00"]]}  # kept

    page.get_by_label("Monday range 1 end").fill("16:00")
    page.get_by_label("Monday range 1 end").blur()
    expect(status).to_have_text("✓ Saved automatically.")
    assert OfficeHours.objects.get(practitioner=practitioner).weekly == {"1": [["09:00", "16:00"]]}
    assert js_errors == []
