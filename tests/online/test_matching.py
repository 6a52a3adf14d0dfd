"""Matching an online booking to a patient never merges two different people: it names a patient only when
exactly one live patient of the clinic has the same date of birth, the same first name (normalised, or as their
preferred name) and the verified email; anything less, or more than one such patient, is a new record."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patients.identifiers import name_key
from patients.selectors import patient_matching_online
from tests.factories import ClinicFactory, PatientFactory

pytestmark = pytest.mark.django_db

NAMES = ["Ada", "ada", " ADA ", "Adà", "Grace", "Zoë", "Zoe", "Adam"]
BIRTHS = [dt.date(1985, 12, 10), dt.date(1985, 10, 12)]
EMAILS = ["ada@example.org", "ADA@Example.org", "grace@example.org"]
person = st.tuples(st.sampled_from(NAMES), st.sampled_from(BIRTHS), st.sampled_from(EMAILS), st.booleans())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(on_file=st.lists(person, max_size=4), booker=person)
def test_a_match_is_one_person_with_the_same_birth_date_first_name_and_email(on_file, booker):
    clinic = ClinicFactory()
    other_clinic = ClinicFactory()
    patients = [
        PatientFactory(clinic=clinic, first_name=name, date_of_birth=born, email=email, is_archived=archived)
        for name, born, email, archived in on_file
    ]
    name, born, email, _ = booker
    # The same person at another clinic is never found here.
    PatientFactory(clinic=other_clinic, first_name=name, date_of_birth=born, email=email)
    same = [
        p
        for p in patients
        if not p.is_archived
        and p.date_of_birth == born
        and p.email.casefold() == email.casefold()
        and name_key(p.first_name) == name_key(name)
    ]
    found = patient_matching_online(clinic=clinic, date_of_birth=born, first_name=name, email=email)
    assert found == (same[0] if len(same) == 1 else None)
    if found is not None:
        assert found.clinic_id == clinic.pk and found.date_of_birth == born
        assert found.email.casefold() == email.casefold()


def test_the_mobile_never_matches_anyone(clinic_a):
    PatientFactory(clinic=clinic_a, first_name="Ada", date_of_birth=BIRTHS[0], email="", mobile_phone="07700 900123")
    assert patient_matching_online(clinic=clinic_a, date_of_birth=BIRTHS[0], first_name="Ada", email="") is None
