"""seed_demo: idempotent, two clinics, one login per role, each seeing only its own clinic."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import F
from django.test import Client
from django.urls import reverse

from clinic.management.commands.seed_demo import DEMO_PASSWORD
from clinic.models import AuditEvent, Clinic, Department, Location, Membership, Practitioner, Role
from patients.models import Coverage, Patient
from scheduling.demo import seed_series
from scheduling.models import Allocation, Appointment, Series, Session, Slot, WaitlistEntry
from scheduling.services.booking import BookingRequest, appointment_book
from sessions_setup.models import SessionTemplate, SlotType, TemplateSlot

pytestmark = pytest.mark.django_db

MODELS: list[Any] = [
    Clinic,
    Location,
    Department,
    Practitioner,
    Membership,
    get_user_model(),
    AuditEvent,
    SlotType,
    SessionTemplate,
    TemplateSlot,
    Allocation,
    Session,
    Slot,
]


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def test_seed_demo_is_idempotent(capsys):
    call_command("seed_demo")
    first = counts()
    printed = capsys.readouterr().out
    call_command("seed_demo")
    assert counts() == first
    assert first["Clinic"] == 2
    assert first["SlotType"] >= 10 and first["Session"] > 50 and first["Slot"] > 500
    assert "admin@riverside.example" in printed and DEMO_PASSWORD in printed


def test_seed_demo_is_idempotent_once_the_closed_group_has_begun():
    # A Friday afternoon in UTC: Lakeview's enforced closed group began on Wednesday and a place in it has to be
    # filled before its waiting list can start. The seed used to close the group first, so the booking was refused,
    # no one was listed, and every later run applied the template again (one more audit event each time).
    with time_machine.travel(dt.datetime(2026, 12, 4, 16, 51, tzinfo=dt.UTC), tick=True):
        call_command("seed_demo", quiet=True)
        first = counts()
        call_command("seed_demo", quiet=True)
        assert counts() == first
    listed = set(WaitlistEntry.objects.values_list("clinic__slug", flat=True))
    assert listed == {"riverside", "lakeview"}
    assert SessionTemplate.objects.get(clinic__slug="lakeview", name="Evening group").closed_enforced


def test_seed_demo_repairs_what_a_user_changed():
    call_command("seed_demo", quiet=True)
    Location.objects.filter(name="Hillside Branch").update(postcode="CHANGED")
    call_command("seed_demo", quiet=True)
    assert Location.objects.get(name="Hillside Branch").postcode == "BS8 1TH"


def test_every_role_has_a_login_in_each_clinic():
    call_command("seed_demo", quiet=True)
    for clinic in Clinic.objects.all():
        roles = set(Membership.objects.for_clinic(clinic).values_list("role", flat=True))
        assert roles == {Role.ADMIN, Role.RECEPTION, Role.CLINICIAN}


@pytest.mark.parametrize("slug", ["riverside", "lakeview"])
@pytest.mark.parametrize("role", ["admin", "reception", "clinician"])
def test_each_demo_login_sees_only_its_own_clinic(slug, role):
    call_command("seed_demo", quiet=True)
    own = Clinic.objects.get(slug=slug)
    other = Clinic.objects.exclude(slug=slug).get()
    client = Client()
    response = client.post(
        reverse("login"), {"username": f"{role}@{slug}.example", "password": DEMO_PASSWORD}, follow=True
    )
    assert response.context["request"].clinic == own
    pages = [response.content.decode(), client.get(reverse("scheduling:calendar")).content.decode()]
    own_practitioner = Practitioner.objects.for_clinic(own).first()
    other_practitioner = Practitioner.objects.for_clinic(other).first()
    assert own_practitioner.name in pages[1]
    for html in pages:
        assert other.name not in html
        assert other_practitioner.name not in html


def test_the_demo_series_goes_to_a_patient_not_already_booked_in_its_places():
    """The demo calendar books patients at random, so on some days the first patient by name was already in
    one of the group places the series wants: seeding then failed ("already booked in this slot")."""
    call_command("seed_demo", verbosity=0)
    clinic = Clinic.objects.get(slug="lakeview")
    admin = Membership.objects.for_clinic(clinic).filter(role=Role.ADMIN).select_related("user").first()
    series = Series.objects.for_clinic(clinic).get()
    appointments = Appointment.objects.for_clinic(clinic).filter(series=series)
    places = list(appointments.values_list("slot_id", flat=True))
    # Start again without the series, the first patients by name already booked in its last place.
    appointments.delete()
    Slot.objects.for_clinic(clinic).filter(pk__in=places).update(booked_count=F("booked_count") - 1)
    series.delete()
    eligible = Patient.objects.for_clinic(clinic).filter(is_archived=False, is_blocked=False)
    firsts = list(eligible.filter(last_name=eligible.order_by("last_name")[0].last_name))
    for patient in firsts:
        appointment_book(
            clinic=clinic,
            actor=admin.user,
            membership=admin,
            request=BookingRequest(slot=Slot.objects.get(pk=places[-1]), patient=patient, self_pay=True),
        )
    seed_series(clinic, admin)
    again = Series.objects.for_clinic(clinic).get()
    assert again.patient not in firsts
    assert sorted(again.appointments.values_list("slot_id", flat=True)) == sorted(places)


def test_demo_titles_and_sex_agree_with_the_names_which_stay_where_they_were():
    call_command("seed_demo", verbosity=0)
    patients = list(Patient.objects.all().values_list("title", "first_name", "last_name", "sex", "clinic__slug"))
    assert len(patients) == 81  # 40 per clinic, and privacy's Riverside patient to export and erase
    mismatched = [
        p for p in patients if (p[0] == "Mr" and p[3] != "male") or (p[0] in {"Mrs", "Ms"} and p[3] != "female")
    ]
    assert mismatched == []
    for first in ("Jack", "Oliver", "Mohammed"):
        assert {sex for _, name, _, sex, _ in patients if name == first} <= {"male"}
    for first in ("Olivia", "Freya", "Aisha"):
        assert {sex for _, name, _, sex, _ in patients if name == first} <= {"female"}
    assert ("Jack", "Brown", "lakeview") in {(p[1], p[2], p[4]) for p in patients}  # the README's demo patient


def test_the_demo_us_clinic_bills_insurance_and_the_uk_one_does_not():
    call_command("seed_demo", verbosity=0)
    riverside, lakeview = Clinic.objects.get(slug="riverside"), Clinic.objects.get(slug="lakeview")
    assert (riverside.bills_insurance, lakeview.bills_insurance) == (False, True)
    assert not Coverage.objects.filter(clinic=riverside).exists()
    assert Coverage.objects.filter(clinic=lakeview).count() == Patient.objects.filter(clinic=lakeview).count()
