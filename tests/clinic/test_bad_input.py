"""Bad input never gets a 500: every page answers garbage with a message or a 4xx."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.clinic.test_tenancy import GENERIC_MAKERS, OBJECT_MAKERS, ROUTE_MAKERS
from tests.url_walk import all_routes

pytestmark = pytest.mark.django_db

GARBAGE = [
    {},
    {"name": "x" * 5000, "kind": "nonsense", "time_zone": "Nowhere/City", "role": "emperor"},
    {"email": "not-an-email", "default_location": "abc", "user": "-1", "clinic": "../../etc"},
    {"name": "\x00", "is_active": "maybe", "page": "-3"},
]


def walked_urls(clinic):
    """The URL of every named route, its objects made in `clinic` (logout and the token pages aside)."""
    for route in all_routes():
        if route.name in {"logout"}:
            continue  # would end the session for the routes after it
        if any(conv != "UUIDConverter" for conv in route.converters.values()):
            continue  # password-reset token pages and the feed: covered on their own
        kwargs = ROUTE_MAKERS[route.name](clinic) if route.name in ROUTE_MAKERS else {}
        for key in route.converters:
            if key in kwargs:
                continue
            maker = OBJECT_MAKERS.get(key) or GENERIC_MAKERS[route.name]
            kwargs[key] = maker(clinic).public_id
        yield route, reverse(route.name, kwargs=kwargs)


def test_no_page_answers_garbage_with_a_server_error(clinic_a, admin_client_a):
    admin_client_a.raise_request_exception = True  # a 500 would raise here with its traceback
    for _route, url in walked_urls(clinic_a):
        for payload in GARBAGE:
            assert admin_client_a.get(url, payload).status_code < 500, (url, payload)
            assert admin_client_a.post(url, payload).status_code < 500, (url, payload)


# PostgreSQL refuses NUL in text: a value that reached a query would be a 500 there. Every page refuses it
# first, in a query string or a form field, as a value or a key.
WITH_NUL = [
    {"q": "smith\x00"},
    {"date": "2026-03-02\x00", "view": "week"},
    {"name\x00": "x"},
    {"name": "\x00", "action": "save", "practitioner": "\x00", "page": "2"},
]


def test_a_nul_character_in_any_query_or_form_field_is_a_400_on_every_page(clinic_a, admin_client_a, client):
    admin_client_a.raise_request_exception = True
    client.raise_request_exception = True
    walked = list(walked_urls(clinic_a))
    assert len(walked) > 50
    public = {"login", "password_reset", "password_reset_done", "password_reset_complete", "healthz"}
    for route, url in walked:
        members = client if route.name in public else admin_client_a
        for payload in WITH_NUL:
            for method in (members.get, members.post):
                response = method(url, payload)
                assert response.status_code == 400, (method.__name__, url, payload, response.status_code)
                assert b"NUL character" in response.content
    # The feed's token and the password-reset link are in the path: a NUL there is refused the same way.
    for url in ("/sync/feeds/abc%00def.ics", "/accounts/password/reset/MQ%00/set-password/"):
        assert client.get(url).status_code == 400, url


def test_the_patient_search_with_a_nul_is_refused_before_it_reaches_the_database(admin_client_a):
    admin_client_a.raise_request_exception = True
    response = admin_client_a.get(reverse("patients:list"), {"q": "Smi\x00th"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400


def test_a_csv_file_with_nul_characters_is_refused_with_a_message(reception_client_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("p.csv", b"last_name,first_name,date_of_birth\nSm\x00ith,John,1980-03-12\n")
    response = reception_client_a.post(reverse("patients:import"), {"file": upload, "action": "check"})
    assert response.status_code == 200
    assert "The file is not CSV text" in response.content.decode()
