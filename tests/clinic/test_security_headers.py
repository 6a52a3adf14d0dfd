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
    assert [item["label"] for item in admin_nav] == [
        "Calendar", "Patients", "Waiting list", "Messages", "Displaced patients", "Setup", "Sync", "Clinic"
    ]  # fmt: skip
    assert [item["label"] for item in reception_nav] == [
        "Calendar",
        "Patients",
        "Waiting list",
        "Messages",
        "Displaced patients",
    ]


def test_every_signed_in_page_and_fragment_is_kept_out_of_caches(clinic_a, admin_client_a):
    """Signed-in pages may hold patient data (lists, the calendar, booking, reports, the audit log): no-store."""
    from tests.clinic.test_bad_input import walked_urls

    checked = 0
    for route, url in walked_urls(clinic_a):
        for headers in ({}, {"HX-Request": "true"}):
            response = admin_client_a.get(url, headers=headers)
            assert "no-store" in response.get("Cache-Control", ""), (route.name, url, response.status_code)
            checked += 1
    assert checked > 100
    url, month = reverse("scheduling:appointments-report"), {"first_date": "2027-01-01", "last_date": "2027-01-31"}
    report = admin_client_a.get(url, month)
    csv = admin_client_a.get(url, {**month, "format": "csv"})
    assert csv["Content-Type"].startswith("text/csv")
    for response in (report, csv):
        assert response["Cache-Control"] == "no-store"


def test_the_feed_keeps_its_own_caching_and_304s_for_a_signed_in_browser_too(admin_client_a, clinic_a):
    from calendar_sync.feed.subscriptions import feed_token, subscription_get_or_create
    from calendar_sync.services import subscription_save
    from tests.factories import PractitionerFactory

    practitioner = PractitionerFactory(clinic=clinic_a)
    subscription = subscription_get_or_create(clinic=clinic_a, practitioner=practitioner)
    subscription_save(clinic=clinic_a, actor=None, subscription=subscription, enabled=True, identifier_mode="initials")
    url = reverse("calendar_sync:feed", args=[feed_token(subscription)])
    first = admin_client_a.get(url)
    assert first.status_code == 200
    assert first["Cache-Control"] == "private, max-age=300"
    again = admin_client_a.get(url, headers={"If-None-Match": first["ETag"]})
    assert again.status_code == 304
    assert again["Cache-Control"] == "private, max-age=300"
