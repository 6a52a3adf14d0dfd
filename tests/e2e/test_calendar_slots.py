"""The grid's slots travel as data and calendar.js draws them (scheduling/grid_html.py): in Chromium, every slot
of a busy week is the link scheduling.grid_html.drawn says it is (the tests that read pages without a browser rely
on drawn), on the first load and after htmx swaps the grid."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

import pytest
from playwright.sync_api import Page, expect

from scheduling.grid_html import drawn
from tests.e2e.calendar_browser import WINTER_DAY, sign_in
from tests.e2e.realistic_clinic import build_clinic
from tests.factories import PatientFactory, SlotTypeFactory, allocate_session, book

pytestmark = pytest.mark.django_db(transaction=True)

# What a person and the popup's code see of each slot, in the order of the page.
BROWSER_SLOTS = """() => Array.from(document.querySelectorAll(".cal-col > a.slot"), a => [
  a.id, a.getAttribute("class"), a.getAttribute("href"), a.getAttribute("title"), a.textContent,
  Array.from(a.querySelectorAll("[role=img]"), icon => icon.getAttribute("aria-label")).join("|"),
])"""


class SlotLinks(HTMLParser):
    """The same of each slot link of an HTML page, attributes and text unescaped as a browser would."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.slots: list[list[str]] = []
        self.inside: list[str] | None = None
        self.icons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "a" and found.get("class", "").split(" ")[0] == "slot":
            self.inside = [found.get("id", ""), found["class"], found["href"], found.get("title", ""), ""]
            self.icons = []
        elif self.inside is not None and found.get("role") == "img":
            self.icons.append(found.get("aria-label", ""))

    def handle_data(self, data: str) -> None:
        if self.inside is not None:
            self.inside[4] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.inside is not None:
            self.slots.append([*self.inside, "|".join(self.icons)])
            self.inside = None


def slots_of(html: str) -> list[list[str]]:
    parser = SlotLinks()
    parser.feed(html)
    return parser.slots


def served_slots(page: Page, url: str) -> list[list[str]]:
    """The slots of the page the server sends for `url` (this browser's session), as drawn() writes them."""
    response = page.request.get(url)
    assert response.ok
    return slots_of(drawn(response.text()))


def test_the_browser_draws_every_slot_as_drawn_says_on_load_and_after_a_swap(
    page: Page, live_server, csp_violations, js_errors
):
    world = build_clinic()
    clinic = world.clinic
    # Beside the realistic clinic's week: a name to escape, a label that is not its kind's, a slot over midnight.
    late = SlotTypeFactory(clinic=clinic, name="Late & <quiet>", colour="teal", default_length_minutes=30)
    night = allocate_session(
        clinic, practitioner=world.okafor, day=WINTER_DAY, start=dt.time(23, 45), slot_types=[late]
    )
    book(night.slots.get(), PatientFactory(clinic=clinic, first_name="Zoë", last_name='O\'Brien "Jr"'))
    sign_in(page, live_server, world.members["admin"])
    url = f"{live_server.url}/calendar/?view=week&date={WINTER_DAY.isoformat()}&tab=all"
    page.goto(url)
    expect(page.locator(".cal-col > a.slot").first).to_be_visible()

    expected = served_slots(page, url)
    assert len(expected) >= 20 and len({slot[1] for slot in expected}) >= 5, expected  # many slots, many looks
    assert any('O\'Brien "Jr"' in slot[4] for slot in expected) and any(not slot[0] for slot in expected)
    assert page.evaluate(BROWSER_SLOTS) == expected
    assert page.locator("script[data-slots]").count() == 0  # each list is replaced by its links

    # The next week and back, through htmx (the shortcuts): drawn again, the same.
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(r"date=2027-01-18"))
    next_week = served_slots(page, page.url)
    assert page.evaluate(BROWSER_SLOTS) == next_week
    page.keyboard.press("p")
    expect(page).to_have_url(re.compile(rf"date={WINTER_DAY.isoformat()}"))
    expect(page.locator(".cal-col > a.slot")).to_have_count(len(expected))
    assert page.evaluate(BROWSER_SLOTS) == expected
    assert csp_violations == [] and js_errors == []
