"""The session builder and the session list, driven in Chromium.

Drag to extend (pointer and keyboard), Set duration, the slot menu and the bulk toolbar,
Reset, row selection by mouse and keyboard, and the list's Save / Reset / Sort (A–Z).
Each test checks what the user sees and, after Save, what is stored.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from clinic.models import Role
from sessions_setup.models import SessionTemplate, TemplateSlot
from tests.e2e.calendar_browser import ARM_SETTLE
from tests.factories import TEST_PASSWORD, MembershipFactory, SlotTypeFactory, template_with_slots

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = "#slot-list .slot-row:not(.ghost)"
GHOSTS = "#slot-list .slot-row.ghost"


@pytest.fixture
def builder_posts(page):
    """The bodies of the builder's POST requests, to tell which actions reached the server."""
    found: list[str] = []
    page.on(
        "request",
        lambda r: found.append(r.post_data or "") if r.method == "POST" and "/setup/sessions/" in r.url else None,
    )
    return found


@pytest.fixture
def admin():
    return MembershipFactory(role=Role.ADMIN, perm_manage_sessions=True)


@pytest.fixture
def types(admin):
    clinic = admin.clinic
    return {
        "normal": SlotTypeFactory(clinic=clinic, name="Normal", default_length_minutes=10, colour="blue"),
        "phone": SlotTypeFactory(clinic=clinic, name="Telephone", default_length_minutes=10, colour="green"),
        "botd": SlotTypeFactory(clinic=clinic, name="Book on the day", default_length_minutes=10, colour="amber"),
        "long": SlotTypeFactory(clinic=clinic, name="Long", default_length_minutes=20, colour="purple"),
    }


def sign_in(page: Page, live_server, membership) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(membership.user.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(membership.clinic.name)


def open_builder(page: Page, live_server, membership, template) -> None:
    sign_in(page, live_server, membership)
    page.goto(f"{live_server.url}/setup/sessions/{template.public_id}/")
    expect(page.locator(ROWS).first).to_be_visible()


def rows(page: Page):
    return page.locator(ROWS)


def expect_slots(page: Page, names: list[str], *, lengths: list[int] | None = None, start: str = "08:00") -> None:
    """The real slot rows show these type names, lengths and back-to-back start times."""
    lengths = lengths or [10] * len(names)
    expect(rows(page)).to_have_count(len(names))
    expect(rows(page).locator(".slot-name")).to_have_text(names)
    expect(rows(page).locator(".slot-length")).to_have_text([f"{n} min" for n in lengths])
    hours, minutes = map(int, start.split(":"))
    clock = hours * 60 + minutes
    times = []
    for length in lengths:
        times.append(f"{clock // 60 % 24:02d}:{clock % 60:02d}")
        clock += length
    expect(rows(page).locator(".slot-time")).to_have_text(times)
    total = sum(lengths)
    expect(page.locator("#duration-live")).to_have_text(
        f"{total} minutes · {len(names)} slot{'' if len(names) == 1 else 's'}"
    )


def stored_slots(template) -> list[tuple[str | None, int]]:
    return [
        (s.slot_type.name if s.slot_type else None, s.length_minutes)
        for s in TemplateSlot.objects.filter(template=template).select_related("slot_type").order_by("position")
    ]


def save(page: Page) -> None:
    page.locator("#builder").get_by_role("button", name="Save", exact=True).click()
    expect(page).to_have_url(re.compile(r"/setup/sessions/$"))
    expect(page.get_by_text(re.compile(r"Session “.*” saved\."))).to_be_visible()


# --- 1. Drag to extend --------------------------------------------------------------------


def test_dragging_the_handle_repeats_the_selected_pattern(page, live_server, admin, types, csp_violations, js_errors):
    template = template_with_slots(admin.clinic, [types["normal"], types["normal"], types["phone"], types["botd"]])
    open_builder(page, live_server, admin, template)
    pattern = ["Normal", "Normal", "Telephone", "Book on the day"]
    expect_slots(page, pattern)

    rows(page).first.locator(".slot-name").click()
    rows(page).last.locator(".slot-name").click(modifiers=["Shift"])
    expect(rows(page).locator("input[name=selected]:checked")).to_have_count(4)
    expect(page.locator("#slot-list .slot-row.selected")).to_have_count(4)

    step = rows(page).first.bounding_box()["height"]
    handle = page.locator("#drag-handle").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 17):
        page.mouse.move(x, y + k * step / 2)
    # Before the release: eight ghost rows in the pattern, and the live duration of 12 slots.
    expect(page.locator(GHOSTS)).to_have_count(8)
    expect(page.locator(GHOSTS)).to_have_text([re.compile(rf"\+ {name} · 10 min") for name in pattern * 2])
    expect(page.locator("#duration-live")).to_have_text("120 minutes · 12 slots (+8, release to apply)")
    expect(rows(page)).to_have_count(4)
    page.mouse.up()

    expect_slots(page, pattern * 3)
    expect(page.locator(GHOSTS)).to_have_count(0)
    expect(page.get_by_label("Nominal start")).to_have_value("08:00")
    expect(rows(page).locator(".slot-time").last).to_have_text("09:50")
    expect(page.locator("#id_duration")).to_have_value("120")
    # Nothing is stored before Save.
    assert len(stored_slots(template)) == 4

    save(page)
    assert stored_slots(template) == [(name, 10) for name in pattern * 3]
    assert csp_violations == []
    assert js_errors == []


# --- 2. The keyboard equivalent of the drag --------------------------------------------------


def focus_handle(page: Page) -> None:
    page.locator("#drag-handle").focus()
    expect(page.locator("#drag-handle")).to_be_focused()


def test_the_drag_handle_works_from_the_keyboard(
    page, live_server, admin, types, csp_violations, js_errors, builder_posts
):
    template = template_with_slots(admin.clinic, [types["normal"], types["phone"]])
    open_builder(page, live_server, admin, template)
    expect_slots(page, ["Normal", "Telephone"])
    live = page.locator("#duration-live")

    # Nothing selected: ArrowDown ×3 previews three more of the last slot; Enter applies them.
    focus_handle(page)
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    expect(page.locator(GHOSTS)).to_have_count(3)
    expect(page.locator(GHOSTS)).to_have_text([re.compile(r"Telephone · 10 min")] * 3)
    expect(live).to_contain_text("50 minutes · 5 slots (+3")
    expect(rows(page)).to_have_count(2)
    page.keyboard.press("Enter")
    expect_slots(page, ["Normal"] + ["Telephone"] * 4)
    expect(page.locator(GHOSTS)).to_have_count(0)

    # A two-slot selection: PageDown previews the whole pattern once.
    rows(page).nth(0).locator(".slot-name").click()
    rows(page).nth(1).locator(".slot-name").click(modifiers=["Shift"])
    expect(page.locator("#slot-list .slot-row.selected")).to_have_count(2)
    focus_handle(page)
    page.keyboard.press("PageDown")
    expect(page.locator(GHOSTS)).to_have_text([re.compile(r"Normal · 10 min"), re.compile(r"Telephone · 10 min")])
    expect(live).to_contain_text("70 minutes · 7 slots (+2")
    page.keyboard.press("Enter")
    expect_slots(page, ["Normal"] + ["Telephone"] * 4 + ["Normal", "Telephone"])
    expect(page.locator("#slot-list .slot-row.selected")).to_have_count(2)

    # Escape cancels a preview; Enter afterwards applies nothing.
    focus_handle(page)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(page.locator(GHOSTS)).to_have_count(2)
    page.keyboard.press("Escape")
    expect(page.locator(GHOSTS)).to_have_count(0)
    expect(live).to_have_text("70 minutes · 7 slots")
    page.keyboard.press("Enter")

    # ArrowUp previews removing the last slot (struck through); Enter removes it.
    page.keyboard.press("ArrowUp")
    expect(page.locator("#slot-list .slot-row.removing")).to_have_count(1)
    expect(rows(page).last).to_have_class(re.compile(r"\bremoving\b"))
    expect(live).to_contain_text("60 minutes · 6 slots (-1")
    page.keyboard.press("Enter")
    expect_slots(page, ["Normal"] + ["Telephone"] * 4 + ["Normal"])
    expect(page.locator("#slot-list .slot-row.removing")).to_have_count(0)
    # Three extends reached the server (+3, +2, -1), none from the cancelled preview.
    extends = [body for body in builder_posts if "action=extend" in body]
    assert [re.search(r"extend_count=(-?\d+)", body).group(1) for body in extends] == ["3", "2", "-1"]

    save(page)
    assert stored_slots(template) == [("Normal", 10)] + [("Telephone", 10)] * 4 + [("Normal", 10)]
    assert csp_violations == []
    assert js_errors == []


# --- 3. Duration --------------------------------------------------------------------------


def test_set_duration_extends_and_shortens_the_session(page, live_server, admin, types, csp_violations, js_errors):
    template = template_with_slots(admin.clinic, [types["normal"], types["phone"]])
    open_builder(page, live_server, admin, template)
    duration = page.get_by_label("Duration (minutes)")
    expect(duration).to_have_value("20")

    duration.fill("60")
    page.get_by_role("button", name="Set duration").click()
    # Nothing selected: the last slot repeats.
    expect_slots(page, ["Normal"] + ["Telephone"] * 5)
    expect(duration).to_have_value("60")

    # Enter in the field applies the duration too; a shorter one drops slots from the end.
    duration.fill("30")
    duration.press("Enter")
    expect_slots(page, ["Normal", "Telephone", "Telephone"])
    expect(duration).to_have_value("30")
    assert stored_slots(template) == [("Normal", 10), ("Telephone", 10)]

    save(page)
    assert stored_slots(template) == [("Normal", 10), ("Telephone", 10), ("Telephone", 10)]
    assert csp_violations == []
    assert js_errors == []


# --- 4. The slot menu and the bulk toolbar ------------------------------------------------------


def test_slot_menu_and_toolbar_change_slot_types(page, live_server, admin, types, csp_violations, js_errors):
    template = template_with_slots(admin.clinic, [types["normal"]] * 4)
    open_builder(page, live_server, admin, template)
    expect_slots(page, ["Normal"] * 4)

    # Slot 2's menu: Clear slot type leaves a blank catch-up slot of the same length.
    rows(page).nth(1).get_by_label("Menu for the slot at 08:10").click()
    menu = rows(page).nth(1).get_by_role("menu")
    expect(menu).to_be_visible()
    menu.get_by_role("menuitem", name="Clear slot type").click()
    expect_slots(page, ["Normal", "Blank (catch-up)", "Normal", "Normal"])
    expect(rows(page).nth(1)).to_have_class(re.compile(r"\bblank\b"))

    # Slot 4's menu: choosing a type takes its name, colour and default length.
    rows(page).nth(3).locator("summary").click()
    rows(page).nth(3).get_by_role("menuitem", name="Long").click()
    expect_slots(page, ["Normal", "Blank (catch-up)", "Normal", "Long"], lengths=[10, 10, 10, 20])
    expect(rows(page).nth(3)).to_have_class(re.compile(r"\bc-purple\b"))

    # Ctrl+click two rows, then change both with the toolbar.
    rows(page).nth(0).locator(".slot-name").click(modifiers=["Control"])
    rows(page).nth(2).locator(".slot-name").click(modifiers=["Control"])
    expect(rows(page).locator("input[name=selected]:checked")).to_have_count(2)
    expect(rows(page).nth(0)).to_have_class(re.compile(r"\bselected\b"))
    expect(rows(page).nth(2)).to_have_class(re.compile(r"\bselected\b"))
    toolbar = page.locator(".slot-toolbar")
    toolbar.get_by_label("Change selected slots to").select_option(label="Telephone")
    toolbar.get_by_role("button", name="Apply").click()
    expect_slots(page, ["Telephone", "Blank (catch-up)", "Telephone", "Long"], lengths=[10, 10, 10, 20])
    expect(rows(page).nth(0)).to_have_class(re.compile(r"\bc-green\b"))

    # Ctrl+click toggles a row off again; the toolbar's Clear then blanks only the other one.
    rows(page).nth(0).locator(".slot-name").click(modifiers=["Control"])
    expect(rows(page).locator("input[name=selected]:checked")).to_have_count(1)
    toolbar = page.locator(".slot-toolbar")
    toolbar.get_by_role("button", name="Clear slot type").click()
    expect_slots(page, ["Telephone", "Blank (catch-up)", "Blank (catch-up)", "Long"], lengths=[10, 10, 10, 20])

    save(page)
    assert stored_slots(template) == [("Telephone", 10), (None, 10), (None, 10), ("Long", 20)]
    assert csp_violations == []
    assert js_errors == []


# --- 5. Reset, on the builder and on the list ------------------------------------------------------


def test_reset_on_the_builder_discards_unsaved_changes(page, live_server, admin, types, csp_violations, js_errors):
    template = template_with_slots(admin.clinic, [types["normal"], types["phone"]])
    open_builder(page, live_server, admin, template)
    focus_handle(page)
    page.keyboard.press("PageDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect_slots(page, ["Normal", "Telephone", "Telephone", "Telephone"])
    page.get_by_role("button", name="Repeat pattern once").click()
    expect_slots(page, ["Normal"] + ["Telephone"] * 4)

    page.locator("#builder").get_by_role("link", name="Reset").click()
    expect_slots(page, ["Normal", "Telephone"])
    expect(page.get_by_label("Duration (minutes)")).to_have_value("20")
    assert stored_slots(template) == [("Normal", 10), ("Telephone", 10)]
    assert csp_violations == []
    assert js_errors == []


def list_names(page: Page):
    return page.locator("#template-list tbody tr .session-chip")


def stored_order(clinic) -> list[str]:
    return list(SessionTemplate.objects.filter(clinic=clinic).order_by("position").values_list("name", flat=True))


def test_the_session_list_reorders_resets_sorts_and_saves(page, live_server, admin, types, csp_violations, js_errors):
    clinic = admin.clinic
    for position, name in enumerate(["Charlie", "Alpha", "Bravo"], start=1):
        template_with_slots(clinic, [types["normal"]], name=name, position=position)
    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/setup/sessions/")
    notice = page.get_by_text("The order has unsaved changes")
    expect(list_names(page)).to_have_text(["Charlie", "Alpha", "Bravo"])
    expect(notice).to_have_count(0)
    expect(page.get_by_role("button", name="Move Charlie up")).to_be_disabled()
    expect(page.get_by_role("button", name="Move Bravo down")).to_be_disabled()

    page.get_by_role("button", name="Move Charlie down").click()
    expect(list_names(page)).to_have_text(["Alpha", "Charlie", "Bravo"])
    expect(notice).to_be_visible()
    page.get_by_role("button", name="Move Charlie down").click()
    expect(list_names(page)).to_have_text(["Alpha", "Bravo", "Charlie"])
    page.get_by_role("button", name="Move Alpha down").click()
    expect(list_names(page)).to_have_text(["Bravo", "Alpha", "Charlie"])
    assert stored_order(clinic) == ["Charlie", "Alpha", "Bravo"]

    page.locator("#template-list").get_by_role("link", name="Reset").click()
    expect(list_names(page)).to_have_text(["Charlie", "Alpha", "Bravo"])
    expect(notice).to_have_count(0)

    page.get_by_role("button", name="Sort (A–Z)").click()
    expect(list_names(page)).to_have_text(["Alpha", "Bravo", "Charlie"])
    expect(notice).to_be_visible()
    assert stored_order(clinic) == ["Charlie", "Alpha", "Bravo"]
    page.locator("#template-list").get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("The session order is saved.")).to_be_visible()
    expect(notice).to_have_count(0)
    positions = dict(SessionTemplate.objects.filter(clinic=clinic).values_list("name", "position"))
    assert positions == {"Alpha": 1, "Bravo": 2, "Charlie": 3}
    # (That the reloaded list then shows the stored order is the next test's subject.)
    assert csp_violations == []
    assert js_errors == []


def test_the_session_list_shows_the_stored_order(page, live_server, admin, types):
    clinic = admin.clinic
    # Created (ids) in one order, stored positions in another.
    for name, position in [("Alpha", 3), ("Bravo", 1), ("Charlie", 2)]:
        template_with_slots(clinic, [types["normal"]], name=name, position=position)
    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/setup/sessions/")
    expect(list_names(page)).to_have_text(["Bravo", "Charlie", "Alpha"], timeout=2000)
    expect(page.get_by_text("The order has unsaved changes")).to_have_count(0)


# --- 6. Selection from the keyboard ------------------------------------------------------------


def test_rows_are_selected_from_the_keyboard(page, live_server, admin, types, csp_violations, js_errors):
    template = template_with_slots(admin.clinic, [types["normal"]] * 5)
    open_builder(page, live_server, admin, template)
    boxes = rows(page).locator("input[name=selected]")

    boxes.first.focus()
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Shift+ArrowDown")
    expect(boxes.nth(2)).to_be_focused()
    expect(rows(page).locator("input[name=selected]:checked")).to_have_count(3)
    expect(page.locator("#slot-list .slot-row.selected")).to_have_count(3)
    for i in range(3):
        expect(boxes.nth(i)).to_be_checked()

    # Plain arrows move without selecting; Space toggles the focused row.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(boxes.nth(4)).to_be_focused()
    expect(boxes.nth(4)).not_to_be_checked()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    expect(boxes.nth(1)).to_be_focused()
    page.keyboard.press("Space")
    expect(boxes.nth(1)).not_to_be_checked()
    expect(rows(page).nth(1)).not_to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    expect(boxes.nth(4)).to_be_checked()
    expect(rows(page).locator("input[name=selected]:checked")).to_have_count(3)

    # The server acts on exactly that selection.
    page.locator(".slot-toolbar").get_by_label("Change selected slots to").select_option(label="Telephone")
    page.locator(".slot-toolbar").get_by_role("button", name="Apply").click()
    expect_slots(page, ["Telephone", "Normal", "Telephone", "Normal", "Telephone"])

    save(page)
    assert [name for name, _ in stored_slots(template)] == ["Telephone", "Normal", "Telephone", "Normal", "Telephone"]
    assert csp_violations == []
    assert js_errors == []


# --- 7. Tablet portrait: a long drag and its swap stay inside the CSP ---------------------


def test_a_long_drag_on_a_tablet_swaps_without_inline_styles(page, live_server, admin, types, csp_violations):
    # Ten ghost rows, then the swap of the whole builder: nothing may need an inline style.
    page.set_viewport_size({"width": 1024, "height": 1366})
    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/setup/sessions/add/")
    box = page.locator("#drag-handle").bounding_box()
    step = rows(page).first.bounding_box()["height"]
    page.mouse.move(box["x"] + 20, box["y"] + 10)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(box["x"] + 20, box["y"] + 10 + i * step)
    page.evaluate(ARM_SETTLE)
    page.mouse.up()
    expect(rows(page)).to_have_count(11)
    page.wait_for_function("() => window.__settled === true")  # the settle step runs after the swap
    assert csp_violations == []


def test_the_header_follows_the_typing_and_leaving_unsaved_asks_first(page, live_server, admin, types, js_errors):
    template = template_with_slots(admin.clinic, [types["normal"]] * 3, name="Dr Smith AM", colour="navy")
    open_builder(page, live_server, admin, template)
    header = page.locator(".session-header")
    expect(header.locator(".session-header-name")).to_have_text("Dr Smith AM")

    page.get_by_label(re.compile("^Session name")).fill("Dr Jones PM")
    expect(header.locator(".session-header-name")).to_have_text("Dr Jones PM")  # as typed, no round trip
    page.locator(".palette-picker label.swatch.c-green").click()
    expect(page.locator(".palette-picker input[value=green]")).to_be_checked()
    expect(header).to_have_class(re.compile(r"\bc-green\b"))
    expect(header).not_to_have_class(re.compile(r"\bc-navy\b"))

    asked: list[str] = []

    def dismiss(dialog) -> None:
        asked.append(dialog.type)
        dialog.dismiss()  # "Stay on page"

    page.on("dialog", dismiss)
    page.get_by_role("navigation", name="Appointments setup").get_by_role("link", name="Slot types").click()
    expect(page.get_by_label(re.compile("^Session name"))).to_have_value("Dr Jones PM")  # still here, edits kept
    assert asked == ["beforeunload"]
    assert SessionTemplate.objects.get(pk=template.pk).name == "Dr Smith AM"  # nothing saved yet

    page.remove_listener("dialog", dismiss)
    page.get_by_role("button", name="Save", exact=True).click()  # saving leaves without asking
    expect(page).to_have_url(re.compile(r"/setup/sessions/$"))
    assert SessionTemplate.objects.get(pk=template.pk).name == "Dr Jones PM"
    assert js_errors == []
