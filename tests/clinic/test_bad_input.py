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


# str.isdigit() takes "²" and int() does not; int() takes Arabic-Indic digits; 5,000 digits is past int()'s limit.
ODD_NUMBERS = ["²", "١٢٣", "9" * 5000]
# Every query or form field that carries a number, a date, a page, an index or an identifier somewhere.
NUMBER_FIELDS = [
    "q", "page", "date", "start", "length", "all_day", "tab", "p", "loc", "view", "selected", "duration",
    "extend_count", "bulk_type", "slots", "order", "national_id", "mobile_phone", "home_phone", "date_of_birth",
    "first_date", "last_date", "interval", "count", "month_day", "nth", "nth_weekday", "weekdays", "every_weeks",
    "capacity", "default_length_minutes", "length_minutes", "release_days_before", "dates", "h_start", "h_end",
    "d1_start", "d1_end", "start_time", "end_time", "until", "slot", "patient", "practitioner", "removed", "taken",
]  # fmt: skip


def test_odd_digits_and_huge_numbers_in_any_field_are_never_a_server_error(clinic_a, admin_client_a):
    admin_client_a.raise_request_exception = True
    for _route, url in walked_urls(clinic_a):
        for odd in ODD_NUMBERS:
            payload = dict.fromkeys(NUMBER_FIELDS, odd)
            assert admin_client_a.get(url, payload).status_code < 500, (url, odd[:5])
            assert admin_client_a.post(url, payload).status_code < 500, (url, odd[:5])


# The buttons that carry an index or a count in their value: the hours editors, the overrides' dates, the builder.
ODD_ACTIONS = ["add-{}", "remove-1-{}", "remove-{}-0", "remove-date-{}", "set:{}:1", "clear:{}", "duration", "extend"]


def test_buttons_with_odd_numbers_are_a_message_or_nothing(clinic_a, admin_client_a):
    from tests.factories import PractitionerFactory

    admin_client_a.raise_request_exception = True
    practitioner = PractitionerFactory(clinic=clinic_a)
    urls = [
        reverse("sessions_setup:template-add"),
        reverse("scheduling:office-hours-default"),
        reverse("scheduling:office-hours-edit", args=[practitioner.public_id]),
        reverse("scheduling:availability-edit", args=[practitioner.public_id]),
    ]
    for url in urls:
        for odd in ODD_NUMBERS:
            for action in ODD_ACTIONS:
                for part in ("weekly", "override"):
                    data = {
                        "action": action.format(odd),
                        "part": part,
                        "dates": ["2027-06-07", "2027-06-08"],
                        "h_start": "09:00",
                        "h_end": "12:00",
                        "d1_start": "09:00",
                        "d1_end": "12:00",
                        "time_zone": "Europe/London",
                        "name": "Odd",
                        "nominal_start": "09:00",
                        "slots": "",
                        "selected": [odd, "0"],
                        "duration": odd,
                        "extend_count": odd,
                        "bulk_type": odd,
                    }
                    response = admin_client_a.post(url, data)
                    assert response.status_code < 500, (url, action, odd[:5])


def test_the_builder_answers_odd_numbers_with_its_messages(clinic_a, admin_client_a):
    from tests.factories import SlotTypeFactory

    admin_client_a.raise_request_exception = True
    kind = SlotTypeFactory(clinic=clinic_a, default_length_minutes=10)
    url = reverse("sessions_setup:template-add")
    base = {"name": "Odd", "nominal_start": "09:00", "slots": f"{kind.pk}:10"}
    for odd in ODD_NUMBERS:
        for action, field in (("duration", "duration"), ("extend", "extend_count")):
            response = admin_client_a.post(url, {**base, "action": action, field: odd, "selected": [odd, "0"]})
            assert response.status_code < 500
            assert response.context["error"].startswith("Enter a whole number for the")
            assert response.context["state"] == f"{kind.pk}:10"
        odd_slots = admin_client_a.post(url, {**base, "action": "extend_pattern", "slots": f"{kind.pk}:{odd}"})
        assert odd_slots.context["error"] == "The slot list was not understood; reload the page."
    # A count of ASCII digits that would build a billion slots is refused before any is made.
    huge = admin_client_a.post(url, {**base, "action": "extend", "extend_count": "999999999"})
    assert huge.context["error"] == "A session holds at most 288 slots."


def test_a_national_id_or_phone_in_other_digits_is_refused_with_a_message(reception_client_a, clinic_a):
    from patients.models import Patient

    arabic_nhs = "٩٤٣٤٧٦٥٩١٩"  # 9434765919, a valid NHS number, in Arabic-Indic digits
    data = {"first_name": "Ann", "last_name": "Odd", "date_of_birth": "1980-03-12", "sex": "female"}
    for field, value in (("national_id", arabic_nhs), ("mobile_phone", "٠٧٧٠٠ ٩٠٠١٢٣"), ("home_phone", "²07700900")):
        extra = {"national_id_kind": "nhs"} if field == "national_id" else {}
        response = reception_client_a.post(reverse("patients:add"), {**data, **extra, field: value})
        assert response.status_code == 200, field
        assert response.context["form"].errors[field] == ["Type the number with the digits 0–9."]
    assert not Patient.objects.for_clinic(clinic_a).exists()


def test_the_patient_search_takes_no_odd_or_endless_number_for_an_identifier(reception_client_a, clinic_a):
    from tests.factories import PatientFactory

    # Its phone's search key is the last ten digits, "9999999999": a 5,000-digit entry must not find it.
    PatientFactory(clinic=clinic_a, last_name="Nines", mobile_phone="+4499999999999")
    for query in ("٩٩٩٩٩٩٩٩٩٩", "²", "9" * 5000, "P" + "0" * 5000 + "1"):
        response = reception_client_a.get(reverse("patients:list"), {"q": query})
        assert response.status_code == 200
        assert list(response.context["patients"]) == [], query[:5]
    assert [
        p.last_name for p in reception_client_a.get(reverse("patients:list"), {"q": "9999999999"}).context["patients"]
    ] == ["Nines"]
