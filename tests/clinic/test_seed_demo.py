"""seed_demo: idempotent, two clinics, one login per role, each seeing only its own clinic."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from clinic.management.commands.seed_demo import DEMO_PASSWORD
from clinic.models import AuditEvent, Clinic, Department, Location, Membership, Practitioner, Role
from scheduling.models import Allocation, Session, Slot
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
