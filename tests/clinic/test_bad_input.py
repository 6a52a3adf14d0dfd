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


def test_no_page_answers_garbage_with_a_server_error(clinic_a, admin_client_a):
    admin_client_a.raise_request_exception = True  # a 500 would raise here with its traceback
    for route in all_routes():
        if route.name in {"logout"}:
            continue  # would end the session for the routes after it
        if any(conv != "UUIDConverter" for conv in route.converters.values()):
            continue  # password-reset token pages: covered by the accounts tests
        kwargs = ROUTE_MAKERS[route.name](clinic_a) if route.name in ROUTE_MAKERS else {}
        for key in route.converters:
            if key in kwargs:
                continue
            maker = OBJECT_MAKERS.get(key) or GENERIC_MAKERS[route.name]
            kwargs[key] = maker(clinic_a).public_id
        url = reverse(route.name, kwargs=kwargs)
        for payload in GARBAGE:
            assert admin_client_a.get(url, payload).status_code < 500, (url, payload)
            assert admin_client_a.post(url, payload).status_code < 500, (url, payload)
