"""Patient search: every kind of value, ranking, accents, tenancy and blocked patients."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from patients.identifiers import nhs_number_is_valid, phone_key
from patients.selectors import patient_search
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

NHS = "9434765919"  # a valid NHS number (check digit 9)


def names(patients):
    return [f"{p.last_name}, {p.first_name}" for p in patients]


@pytest.fixture
def people(clinic_a):
    return {
        "smith": PatientFactory(
            clinic=clinic_a,
            last_name="Smith",
            first_name="John",
            national_id_kind="nhs",
            national_id=NHS,
            mobile_phone="+447700900123",
        ),  # fmt: skip
        "smithson": PatientFactory(clinic=clinic_a, last_name="Smithson", first_name="Anna"),
        "smyth": PatientFactory(clinic=clinic_a, last_name="Smyth", first_name="Jo"),
        "zoe": PatientFactory(clinic=clinic_a, last_name="Zoë-Adams", first_name="Chloé"),
        "muller": PatientFactory(
            clinic=clinic_a, last_name="Müller", first_name="Hans", date_of_birth=dt.date(1975, 11, 5)
        ),  # fmt: skip
        "jsmith": PatientFactory(
            clinic=clinic_a,
            last_name="Smith",
            first_name="Jane",
            home_phone="(212) 555-0100",
            national_id_kind="ssn",
            national_id="123456789",
        ),  # fmt: skip
    }


def search(clinic, membership, query):
    return patient_search(clinic=clinic, membership=membership, query=query)


def test_last_name_prefix_is_case_and_accent_insensitive(clinic_a, reception_a, people):
    assert names(search(clinic_a, reception_a, "smi")) == ["Smith, Jane", "Smith, John", "Smithson, Anna"]
    assert names(search(clinic_a, reception_a, "SMITH")) == ["Smith, Jane", "Smith, John", "Smithson, Anna"]
    assert names(search(clinic_a, reception_a, "muller")) == ["Müller, Hans"]
    assert names(search(clinic_a, reception_a, "Mül")) == ["Müller, Hans"]
    assert names(search(clinic_a, reception_a, "zoe")) == ["Zoë-Adams, Chloé"]


def test_last_comma_first(clinic_a, reception_a, people):
    assert names(search(clinic_a, reception_a, "smith, ja")) == ["Smith, Jane"]
    assert names(search(clinic_a, reception_a, "Smith,J")) == ["Smith, Jane", "Smith, John"]


@pytest.mark.parametrize("typed", ["943 476 5919", "943-476-5919", "9434765919", " 9434 765 919 "])
def test_national_id_in_any_spacing_finds_the_patient_first(clinic_a, reception_a, people, typed):
    assert names(search(clinic_a, reception_a, typed))[0] == "Smith, John"


@pytest.mark.parametrize("typed", ["07700 900123", "+44 7700 900123", "0044 (7700) 900-123", "7700900123"])
def test_phone_in_any_formatting(clinic_a, reception_a, people, typed):
    assert names(search(clinic_a, reception_a, typed)) == ["Smith, John"]


def test_home_phone_and_ssn(clinic_a, reception_a, people):
    assert names(search(clinic_a, reception_a, "212-555-0100")) == ["Smith, Jane"]
    assert names(search(clinic_a, reception_a, "123-45-6789")) == ["Smith, Jane"]


def test_internal_id_with_or_without_prefix_and_zeros(clinic_a, reception_a, people):
    internal = people["smyth"].internal_id
    number = str(int(internal[1:]))
    for typed in (internal, internal.lower(), number, f"P{number}"):
        assert names(search(clinic_a, reception_a, typed)) == ["Smyth, Jo"], typed


@pytest.mark.parametrize("typed", ["05/11/1975", "5/11/1975", "1975-11-05", "05-11-1975", "5 Nov 1975", "05.11.1975"])
def test_date_of_birth_in_common_formats(clinic_a, reception_a, people, typed):
    assert names(search(clinic_a, reception_a, typed)) == ["Müller, Hans"]


def test_a_number_finds_every_patient_it_identifies_by_any_identifier(clinic_a, reception_a):
    by_phone = PatientFactory(clinic=clinic_a, last_name="Phone", mobile_phone="9434765919")
    by_nhs = PatientFactory(clinic=clinic_a, last_name="Nhs", national_id_kind="nhs", national_id=NHS)
    assert set(search(clinic_a, reception_a, "943 476 5919")) == {by_phone, by_nhs}


def test_other_clinics_patients_are_never_found(clinic_a, clinic_b, reception_a, outsider_b, people):
    PatientFactory(clinic=clinic_b, last_name="Smith", first_name="Other", national_id_kind="nhs", national_id=NHS)
    assert "Smith, Other" not in names(search(clinic_a, reception_a, "smith"))
    assert names(search(clinic_b, outsider_b, NHS)) == ["Smith, Other"]


def test_blocked_patients_need_the_permission(clinic_a, reception_a, admin_a, people):
    PatientFactory(clinic=clinic_a, last_name="Smithers", is_blocked=True, blocked_reason="VIP")
    assert "Smithers, Ann" not in names(search(clinic_a, reception_a, "smith"))
    assert "Smithers, Ann" in names(search(clinic_a, admin_a, "smith"))


def test_archived_patients_are_not_found(clinic_a, reception_a):
    PatientFactory(clinic=clinic_a, last_name="Gone", is_archived=True)
    assert search(clinic_a, reception_a, "gone") == []


def test_helpers():
    assert nhs_number_is_valid(NHS) and not nhs_number_is_valid("9434765918")
    assert phone_key("+44 7700 900123") == phone_key("07700 900123") == "7700900123"


def test_the_search_box_answers_htmx_with_the_results_only(reception_client_a, people):
    response = reception_client_a.get(reverse("patients:list"), {"q": "smy"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"') and "<html" not in html
    assert "SMYTH, Jo" in html


def test_search_uses_a_bounded_number_of_queries(reception_client_a, clinic_a, django_assert_max_num_queries):
    reception_client_a.get(reverse("home"))
    PatientFactory.create_batch(3, clinic=clinic_a, last_name="Jones")
    with django_assert_max_num_queries(8) as small:
        reception_client_a.get(reverse("patients:list"), {"q": "jon"})
    PatientFactory.create_batch(40, clinic=clinic_a, last_name="Jones")
    with django_assert_max_num_queries(8) as large:
        reception_client_a.get(reverse("patients:list"), {"q": "jon"})
    assert len(small.captured_queries) == len(large.captured_queries)


def test_clinics_in_the_americas_read_dates_month_first(clinic_b, outsider_b):
    patient = PatientFactory(clinic=clinic_b, last_name="Lopez", date_of_birth=dt.date(1980, 3, 12))
    assert search(clinic_b, outsider_b, "03/12/1980") == [patient]
    assert search(clinic_b, outsider_b, "1980-03-12") == [patient]


def test_name_keys_compare_byte_wise_so_the_prefix_range_is_a_prefix_match():
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT column_name, collation_name FROM information_schema.columns "
                "WHERE table_name = 'patients_patient' AND column_name IN ('last_name_key', 'first_name_key')"
            )
            assert dict(cursor.fetchall()) == {"last_name_key": "C", "first_name_key": "C"}
        else:  # SQLite compares text with BINARY unless a column says otherwise
            cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'patients_patient'")
            assert "COLLATE" not in cursor.fetchone()[0].upper()
