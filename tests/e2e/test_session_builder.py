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
from tests.factories import TEST_PASSWORD, MembershipFactory, SlotTypeFactory, template_with_slots

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = "#slot-list .slot-row:not(.ghost)"
GHOSTS = "#slot-list .slot-row.ghost"


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
    page.get_by_label("Username").fill(membership.user.username)
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


def test_dragging_the_handle_repeats_the_selected_pattern(page, live_server, admin, types, csp_violations):
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
    page.on("request", lambda r: print("REQ", r.method, r.url, r.post_data))
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
