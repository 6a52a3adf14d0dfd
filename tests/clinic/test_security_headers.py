"""Content-Security-Policy: only our own scripts and styles, and nothing inline."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_pages_carry_a_strict_csp(admin_client_a):
    response = admin_client_a.get(reverse("home"))
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response["X-Frame-Options"] == "DENY"


def test_the_layout_has_no_inline_script_or_style_and_turns_off_htmx_inline_styles(admin_client_a):
    html = admin_client_a.get(reverse("home")).content.decode()
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag, tag
    assert "<style" not in html
    assert " style=" not in html
    assert '"includeIndicatorStyles": false' in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert "/static/vendor/htmx-2.0.11.min.js" in html


def test_the_vendored_htmx_is_served_by_our_server(client):
    response = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert response.status_code == 200
    assert b"htmx" in b"".join(response.streaming_content)


def test_navigation_depends_on_role(admin_client_a, reception_client_a):
    admin_nav = admin_client_a.get(reverse("home")).context["nav_items"]
    reception_nav = reception_client_a.get(reverse("home")).context["nav_items"]
    assert [item["label"] for item in admin_nav] == ["Calendar", "Patients", "Setup", "Sync", "Clinic"]
    assert [item["label"] for item in reception_nav] == ["Calendar", "Patients"]
