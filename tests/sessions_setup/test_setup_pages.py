"""The setup screens over HTTP: slot types, the session list, and the builder without JavaScript."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions_setup import builder
from sessions_setup.models import SessionTemplate, SlotType, TemplateSlot
from tests.factories import LocationFactory, SessionTemplateFactory, SlotTypeFactory, template_with_slots

pytestmark = pytest.mark.django_db


def slot_type_data(**overrides):
    data = {
        "name": "Telephone",
        "colour": "teal",
        "default_length_minutes": "10",
        "kind": "telephone",
        "bookable": "on",
        "capacity": "1",
        "release_rule": "any_time",
        "reporting_category": "general",
        "order": "1",
        "is_active": "on",
    }
    data.update(overrides)
    return data


# --- Slot types -----------------------------------------------------------------------


def test_it_adds_a_slot_type(admin_client_a, clinic_a):
    response = admin_client_a.post(reverse("sessions_setup:slot-type-add"), slot_type_data())
    assert response.status_code == 302
    slot_type = SlotType.objects.get(clinic=clinic_a, name="Telephone")
    assert (slot_type.colour, slot_type.kind, slot_type.capacity) == ("teal", "telephone", 1)


def test_from_n_days_before_needs_the_number_of_days(admin_client_a, clinic_a):
    response = admin_client_a.post(reverse("sessions_setup:slot-type-add"), slot_type_data(release_rule="days_before"))
    assert response.status_code == 200
    assert "Give the number of days before the slot." in response.content.decode()
    ok = admin_client_a.post(
        reverse("sessions_setup:slot-type-add"), slot_type_data(release_rule="days_before", release_days_before="14")
    )
    assert ok.status_code == 302
    assert SlotType.objects.get(clinic=clinic_a).release_days_before == 14


@pytest.mark.parametrize(
    ("field", "value"),
    [("capacity", "0"), ("default_length_minutes", "0"), ("default_length_minutes", "481"), ("colour", "mauve")],
)
def test_out_of_range_slot_types_are_refused_on_the_form(admin_client_a, clinic_a, field, value):
    response = admin_client_a.post(reverse("sessions_setup:slot-type-add"), slot_type_data(**{field: value}))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not SlotType.objects.filter(clinic=clinic_a).exists()


def test_the_first_active_slot_type_is_the_default_and_groups_show_their_capacity(admin_client_a, clinic_a):
    SlotTypeFactory(clinic=clinic_a, name="Archived first", order=0, is_active=False)
    SlotTypeFactory(clinic=clinic_a, name="Normal", order=1)
    SlotTypeFactory(clinic=clinic_a, name="Group class", order=2, capacity=10)
    response = admin_client_a.get(reverse("sessions_setup:slot-types"))
    assert response.context["default"].name == "Normal"
    html = response.content.decode()
    assert "Group of 10" in html
    assert "COVID VACS" in dict(SlotType._meta.get_field("reporting_category").choices).values()


def test_the_palette_marks_colours_in_use_for_show_unused_only(admin_client_a, clinic_a):
    SlotTypeFactory(clinic=clinic_a, colour="red")
    SessionTemplateFactory(clinic=clinic_a, colour="green")
    html = admin_client_a.get(reverse("sessions_setup:slot-type-add")).content.decode()
    assert "Show unused colours only" in html
    assert 'class="swatch c-red used"' in html
    assert 'class="swatch c-green used"' in html
    assert 'class="swatch c-blue"' in html


def test_palette_css_matches_the_palette():
    from pathlib import Path

    from django.conf import settings

    from sessions_setup.palette import PALETTE

    css = (Path(settings.BASE_DIR) / "static/css/palette.css").read_text()
    for colour in PALETTE:
        assert f".c-{colour.key} {{ background-color: {colour.hex}; color: {colour.ink}; }}" in css


def contrast(one: str, two: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""

    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(one), luminance(two)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_contrast_formula():
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


def test_every_palette_colour_is_readable_with_its_ink():
    """Slot and session names are small text on these colours (the grid, the rota, the session lists):
    WCAG AA asks 4.5:1."""
    from sessions_setup.palette import PALETTE

    too_faint = {c.key: round(contrast(c.hex, c.ink), 2) for c in PALETTE if contrast(c.hex, c.ink) < 4.5}
    assert too_faint == {}


# --- The session list: Save, Reset, Sort ----------------------------------------------


def test_sort_and_move_are_unsaved_until_save(admin_client_a, clinic_a):
    c = SessionTemplateFactory(clinic=clinic_a, name="Charlie", position=1)
    a = SessionTemplateFactory(clinic=clinic_a, name="alpha", position=2)
    b = SessionTemplateFactory(clinic=clinic_a, name="Bravo", position=3)
    url = reverse("sessions_setup:templates")
    order = [str(t.public_id) for t in (c, a, b)]
    sorted_page = admin_client_a.post(url, {"order": order, "action": "sort"})
    assert [t.name for t in sorted_page.context["templates"]] == ["alpha", "Bravo", "Charlie"]
    assert sorted_page.context["unsaved"]
    assert list(SessionTemplate.objects.for_clinic(clinic_a).values_list("name", flat=True)) == [
        "Charlie", "alpha", "Bravo",
    ]  # fmt: skip
    # Reset is a plain reload of the saved order.
    assert [t.name for t in admin_client_a.get(url).context["templates"]] == ["Charlie", "alpha", "Bravo"]
    moved = admin_client_a.post(url, {"order": order, "action": f"down:{c.public_id}"})
    assert [t.name for t in moved.context["templates"]] == ["alpha", "Charlie", "Bravo"]
    saved = admin_client_a.post(url, {"order": [str(t.public_id) for t in (a, b, c)], "action": "save"})
    assert saved.status_code == 302
    assert list(SessionTemplate.objects.for_clinic(clinic_a).values_list("name", flat=True)) == [
        "alpha", "Bravo", "Charlie",
    ]  # fmt: skip


def test_the_list_answers_htmx_with_its_fragment(admin_client_a, clinic_a):
    SessionTemplateFactory(clinic=clinic_a, name="Only")
    response = admin_client_a.post(
        reverse("sessions_setup:templates"),
        {"order": [str(SessionTemplate.objects.get().public_id)], "action": "sort"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="template-list"') and "<html" not in html


def test_a_stale_list_is_reloaded_not_half_saved(admin_client_a, clinic_a):
    SessionTemplateFactory(clinic=clinic_a, name="One")
    response = admin_client_a.post(reverse("sessions_setup:templates"), {"order": [], "action": "save"})
    assert response.status_code == 302


# --- The builder without JavaScript ----------------------------------------------------


@pytest.fixture
def types(clinic_a):
    return {
        "normal": SlotTypeFactory(clinic=clinic_a, name="Normal", default_length_minutes=10, order=1),
        "phone": SlotTypeFactory(clinic=clinic_a, name="Telephone", default_length_minutes=5, order=2),
        "otd": SlotTypeFactory(clinic=clinic_a, name="Book on the day", default_length_minutes=10, order=3),
    }


def builder_post(client, url, slots, action, **extra):
    data = {
        "name": "Dr Smith AM",
        "colour": "navy",
        "session_type": "timed",
        "nominal_start": "08:00",
        "slots": builder.encode(slots),
        "action": action,
    }
    data.update(extra)
    return client.post(url, data)


def test_a_duration_that_is_not_whole_slots_says_what_the_session_became(admin_client_a, types):
    normal = builder.BuilderSlot(types["normal"].pk, types["normal"].default_length_minutes)
    assert normal.length_minutes == 10
    url = reverse("sessions_setup:template-add")
    response = builder_post(admin_client_a, url, (normal,), "duration", selected=["0"], duration="183")
    assert response.context["duration"] == 180
    assert "183 minutes is not a whole number of these slots: the session is 180 minutes." in response.content.decode()
    exact = builder_post(admin_client_a, url, (normal,), "duration", selected=["0"], duration="180")
    assert "not a whole number" not in exact.content.decode()


def test_editing_a_template_says_its_changes_reach_the_rota_only_when_applied(admin_client_a, clinic_a, types):
    template = template_with_slots(clinic_a, [types["normal"]], name="Dr Smith AM")
    page = admin_client_a.get(reverse("sessions_setup:template-edit", args=[template.public_id])).content.decode()
    assert "Saving changes sessions allocated from now on. Sessions already on the rota keep their slots until" in page
    apply = reverse("scheduling:template-apply", args=[template.public_id])
    assert f'<a href="{apply}">apply this session to allocated sessions</a>' in page
    new = admin_client_a.get(reverse("sessions_setup:template-add")).content.decode()
    assert "already on the rota" not in new


def test_a_new_session_starts_with_one_slot_of_the_default_type(admin_client_a, types):
    response = admin_client_a.get(reverse("sessions_setup:template-add"))
    rows = response.context["rows"]
    assert len(rows) == 1 and rows[0]["type"] == types["normal"]


def test_build_dr_smith_am_from_a_pattern_and_save(admin_client_a, clinic_a, types):
    url = reverse("sessions_setup:template-add")
    n, p, o = (builder.BuilderSlot(types[k].pk, types[k].default_length_minutes) for k in ("normal", "phone", "otd"))
    start = (n, n, p, o)
    response = builder_post(admin_client_a, url, start, "duration", selected=["0", "1", "2", "3"], duration="105")
    rows = response.context["rows"]
    assert [r["slot"] for r in rows] == list(start * 3)
    assert [r["start"].strftime("%H:%M") for r in rows[:5]] == ["08:00", "08:10", "08:20", "08:25", "08:35"]
    assert response.context["duration"] == 105
    saved = builder_post(admin_client_a, url, start * 3, "save")
    assert saved.status_code == 302
    template = SessionTemplate.objects.get(clinic=clinic_a, name="Dr Smith AM")
    stored = list(TemplateSlot.objects.filter(template=template).values_list("slot_type_id", "length_minutes"))
    assert stored == [(s.slot_type_id, s.length_minutes) for s in start * 3]


def test_builder_actions_change_clear_and_extend(admin_client_a, types):
    url = reverse("sessions_setup:template-add")
    n = builder.BuilderSlot(types["normal"].pk, 10)
    cleared = builder_post(admin_client_a, url, (n, n, n), "clear:1").context["rows"]
    assert cleared[1]["type"] is None and cleared[1]["slot"].length_minutes == 10
    changed = builder_post(admin_client_a, url, (n, n, n), "set_selected", selected=["0", "2"],
                           bulk_type=str(types["phone"].pk)).context["rows"]  # fmt: skip
    assert [r["type"].name for r in changed] == ["Telephone", "Normal", "Telephone"]
    assert [r["slot"].length_minutes for r in changed] == [5, 10, 5]
    extended = builder_post(admin_client_a, url, (n,), "extend", extend_count="4").context["rows"]
    assert len(extended) == 5


def test_session_name_and_description_limits_and_required_fields(admin_client_a, clinic_a, types):
    url = reverse("sessions_setup:template-add")
    n = builder.BuilderSlot(types["normal"].pk, 10)
    too_long = builder_post(admin_client_a, url, (n,), "save", name="x" * 21, description="y" * 31)
    errors = too_long.context["form"].errors
    assert "name" in errors and "description" in errors
    missing = builder_post(admin_client_a, url, (n,), "save", name="")
    assert "name" in missing.context["form"].errors
    gp_connect = builder_post(admin_client_a, url, (n,), "save", gp_connect_bookable="on")
    html = gp_connect.content.decode()
    assert html.count("Required when the session is GP Connect bookable.") == 2
    location = LocationFactory(clinic=clinic_a)
    ok = builder_post(admin_client_a, url, (n,), "save", gp_connect_bookable="on", practitioner_role="gp",
                      location=str(location.pk))  # fmt: skip
    assert ok.status_code == 302
    assert not SessionTemplate.objects.exclude(name="Dr Smith AM").exists()


def test_errors_are_held_back_until_save(admin_client_a, types):
    n = builder.BuilderSlot(types["normal"].pk, 10)
    html = builder_post(admin_client_a, reverse("sessions_setup:template-add"), (n,), "extend_pattern", name="").content
    assert b"This field is required" not in html


def test_editing_loads_the_slots_and_reset_is_a_plain_reload(admin_client_a, clinic_a, types):
    template = template_with_slots(clinic_a, [types["normal"], None, types["phone"]])
    url = reverse("sessions_setup:template-edit", args=[template.public_id])
    rows = admin_client_a.get(url).context["rows"]
    assert [r["type"] and r["type"].name for r in rows] == ["Normal", None, "Telephone"]


@pytest.mark.parametrize("state", ["1:10,x", "999999:10", ""])
def test_tampered_or_foreign_slot_lists_get_a_message(admin_client_a, clinic_b, types, state):
    foreign = SlotTypeFactory(clinic=clinic_b)
    url = reverse("sessions_setup:template-add")
    data = {"name": "X", "colour": "navy", "session_type": "timed", "nominal_start": "08:00", "action": "save",
            "slots": state.replace("999999", str(foreign.pk))}  # fmt: skip
    response = admin_client_a.post(url, data)
    assert response.status_code == 200
    assert response.context["error"]
    assert not SessionTemplate.objects.exists()


def test_another_clinics_slot_type_cannot_be_chosen(admin_client_a, clinic_b, types):
    foreign = SlotTypeFactory(clinic=clinic_b)
    n = builder.BuilderSlot(types["normal"].pk, 10)
    response = builder_post(admin_client_a, reverse("sessions_setup:template-add"), (n,), f"set:0:{foreign.pk}")
    assert response.context["error"] == "That slot type is not available; choose another."


def test_setup_needs_the_manage_sessions_permission(reception_client_a):
    for name in ("sessions_setup:slot-types", "sessions_setup:templates", "sessions_setup:template-add"):
        assert reception_client_a.get(reverse(name)).status_code == 403


def test_slot_types_and_templates_stay_in_their_clinic(admin_client_a, clinic_b):
    SlotTypeFactory(clinic=clinic_b, name="Theirs type")
    SessionTemplateFactory(clinic=clinic_b, name="Theirs session")
    html = admin_client_a.get(reverse("sessions_setup:slot-types")).content.decode()
    html += admin_client_a.get(reverse("sessions_setup:templates")).content.decode()
    html += admin_client_a.get(reverse("sessions_setup:template-add")).content.decode()
    assert "Theirs" not in html


def test_saving_a_template_on_the_rota_leads_to_applying_it(admin_client_a, clinic_a, types):
    """After saving, a session already allocated goes on to "Apply to allocated sessions"; one that is not does not."""
    import datetime as dt

    from tests.factories import allocate_session

    session = allocate_session(clinic_a, day=dt.date(2027, 6, 7), slot_types=[types["normal"]] * 2, name="On rota")
    n = builder.BuilderSlot(types["normal"].pk, types["normal"].default_length_minutes)
    url = reverse("sessions_setup:template-edit", args=[session.template.public_id])
    saved = builder_post(admin_client_a, url, (n, n, n), "save", name="On rota")
    assert saved.status_code == 302
    assert saved["Location"] == reverse("scheduling:template-apply", args=[session.template.public_id])
    fresh = builder_post(admin_client_a, reverse("sessions_setup:template-add"), (n,), "save", name="New one")
    assert fresh["Location"] == reverse("sessions_setup:templates")
