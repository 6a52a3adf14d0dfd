"""Dialogs and the keyboard (issue 17, item 3): every dialog keeps the focus inside while it is open (Tab and
Shift+Tab cycle through its controls, also after htmx swaps its content) and gives it back when it closes
(Escape, its close button, a finished step) to what opened it: the slot, the key's target, the menu.
"""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.calendar_browser import WINTER_DAY, open_day, press_and_settle, sign_in, tip
from tests.factories import PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session, book

pytestmark = pytest.mark.django_db(transaction=True)

FOCUS_INSIDE = "el => el.contains(document.activeElement)"
FOCUSED = """() => {
    const el = document.activeElement;
    return el === document.body ? "body" : el.outerHTML.slice(0, 120);
}"""


def assert_tab_stays_inside(page: Page, dialog: Locator, presses: int = 12) -> list[str]:
    """Tab, then Shift+Tab, more times than the dialog has controls: the focus never leaves it, and it moves
    (when there is more than one control)."""
    seen = []
    for key in ["Tab"] * presses + ["Shift+Tab"] * presses:
        page.keyboard.press(key)
        where = page.evaluate(FOCUSED)
        assert dialog.evaluate(FOCUS_INSIDE), f"{key} took the focus out of the dialog, to {where}"
        seen.append(where)
    controls = dialog.evaluate("el => el.querySelectorAll('a[href], button, input, select, textarea').length")
    assert len(set(seen)) > 1 or controls == 1, "the focus moves between the dialog's controls"
    return seen


def day_with_slots(reception):
    clinic = reception.clinic
    doctor = PractitionerFactory(clinic=clinic, name="Dr Focus")
    normal = SlotTypeFactory(clinic=clinic, name="Normal")
    session = allocate_session(
        clinic, practitioner=doctor, day=WINTER_DAY, start=dt.time(9), slot_types=[normal, normal, normal]
    )
    slots = list(session.slots.order_by("starts_at"))
    book(slots[0], PatientFactory(clinic=clinic, first_name="Mary", last_name="Thornbury"))
    PatientFactory(clinic=clinic, first_name="Kit", last_name="Keyworth")
    return slots


def test_the_slot_popup_keeps_the_focus_and_gives_it_back_to_the_slot(
    page, live_server, reception_a, js_errors, csp_violations
):
    slots = day_with_slots(reception_a)
    sign_in(page, live_server, reception_a)
    open_day(page, live_server)
    dialog = tip(page)
    booked = page.locator(f"#slot-{slots[0].public_id}")
    free = page.locator(f"#slot-{slots[1].public_id}")

    # Opened from the keyboard (the grid's slots are links): Tab and Shift+Tab stay inside; Escape gives back.
    booked.focus()
    press_and_settle(page, "Enter")
    expect(dialog).to_be_visible()
    assert dialog.evaluate(FOCUS_INSIDE)
    assert_tab_stays_inside(page, dialog)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(booked).to_be_focused()

    # The close button gives the focus back too.
    free.focus()
    press_and_settle(page, "Enter")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Close").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(free).to_be_focused()

    # Content swapped in by htmx (Book Appointment, then a patient chosen) keeps the focus inside.
    press_and_settle(page, "Enter")
    book_link = dialog.get_by_role("link", name="Book Appointment", exact=True)
    book_link.focus()
    press_and_settle(page, "Enter")
    box = dialog.get_by_label("Find the patient")
    expect(box).to_be_visible()
    assert dialog.evaluate(FOCUS_INSIDE), "the focus is in the new step"
    assert_tab_stays_inside(page, dialog)
    box.focus()
    page.evaluate("() => { window.__settled = false; }")
    page.keyboard.type("keyw", delay=50)
    pick = dialog.locator("#booking-results").get_by_role("link", name="Keyworth, Kit")
    expect(pick).to_have_count(1)
    pick.focus()
    press_and_settle(page, "Enter")
    expect(dialog.get_by_role("region", name="Patient")).to_be_visible()
    assert_tab_stays_inside(page, dialog, presses=25)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(free).to_be_focused()

    # A finished booking closes the popup and refreshes the grid, replacing the slot that opened it: the
    # focus goes to the booked slot's new element (the same id), not to the page.
    press_and_settle(page, "Enter")
    dialog.get_by_role("link", name="Book Appointment", exact=True).focus()
    press_and_settle(page, "Enter")
    dialog.get_by_label("Find the patient").press_sequentially("keyw", delay=50)
    dialog.locator("#booking-results").get_by_role("link", name="Keyworth, Kit").focus()
    press_and_settle(page, "Enter")
    dialog.get_by_role("button", name="Review", exact=True).focus()
    press_and_settle(page, "Enter")
    dialog.get_by_role("button", name="Book appointment", exact=True).focus()
    press_and_settle(page, "Enter")  # settles the refreshed grid
    expect(dialog).to_be_hidden()
    expect(free).to_contain_text("Kit Keyworth")
    expect(free).to_be_focused()
    assert js_errors == []
    assert csp_violations == []


def test_the_shortcuts_dialog_keeps_the_focus_and_gives_it_back(
    page, live_server, reception_a, js_errors, csp_violations
):
    day_with_slots(reception_a)
    sign_in(page, live_server, reception_a)
    open_day(page, live_server)
    shortcuts = page.locator("dialog#shortcuts")
    today = page.get_by_role("link", name="Today")

    # "?" from a focused link: the dialog has the focus, keeps it, and Escape gives it back to the link.
    today.focus()
    page.keyboard.press("?")
    expect(shortcuts).to_be_visible()
    assert shortcuts.evaluate(FOCUS_INSIDE), "the open dialog has the focus"
    assert set(assert_tab_stays_inside(page, shortcuts, presses=3)) == {
        '<button type="button" class="tip-close" data-close="" aria-label="Close">×</button>'
    }, "its one control keeps the focus"
    page.keyboard.press("Escape")
    expect(shortcuts).to_be_hidden()
    expect(today).to_be_focused()

    # From the "More" menu: the menu closes behind the dialog, so its close button gives the focus back to
    # the menu's button.
    more = page.locator("details.more > summary")
    more.focus()
    page.keyboard.press("Enter")
    menu_item = page.get_by_role("button", name="Keyboard shortcuts")
    expect(menu_item).to_be_visible()
    menu_item.focus()
    page.keyboard.press("Enter")
    expect(shortcuts).to_be_visible()
    shortcuts.get_by_role("button", name="Close").focus()
    page.keyboard.press("Enter")
    expect(shortcuts).to_be_hidden()
    expect(more).to_be_focused()
    assert js_errors == []
    assert csp_violations == []
