"""Seed 000's GP Connect fields reach the dated sessions: a session allocated from a "GP Connect bookable" template
keeps the flag and its practitioner role, a template change applied to the rota carries them, and sessions that were
on the rota before the fields existed take them from their template (the data migration)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from scheduling.models import Session
from scheduling.services.changes import template_apply
from scheduling.services.rota import AllocationRequest, allocation_create
from tests.factories import LocationFactory, PractitionerFactory, SlotTypeFactory, template_with_slots

DAY = dt.date(2027, 6, 8)


@pytest.mark.django_db
def test_allocation_copies_the_flag_and_the_role_and_a_template_change_carries_them(clinic_a, admin_a):
    main = LocationFactory(clinic=clinic_a)
    nurse = PractitionerFactory(clinic=clinic_a, role="nurse", default_location=main)
    template = template_with_slots(
        clinic_a,
        [SlotTypeFactory(clinic=clinic_a)] * 2,
        name="Nurse GPC",
        gp_connect_bookable=True,
        practitioner_role="nurse",
        location=main,
    )
    request = AllocationRequest(template, nurse, main, dt.time(9), DAY, DAY, (), 1)
    session = allocation_create(clinic=clinic_a, actor=None, request=request).sessions.get()
    assert (session.gp_connect_bookable, session.practitioner_role) == (True, "nurse")
    template.practitioner_role = "hca"
    template.save()
    template_apply(clinic=clinic_a, actor=admin_a.user, template=template, first_date=clinic_a.today())
    session.refresh_from_db()
    assert (session.gp_connect_bookable, session.practitioner_role) == (True, "hca")


@pytest.mark.django_db(transaction=True)
def test_sessions_on_the_rota_before_the_fields_take_them_from_their_template():
    executor = MigrationExecutor(connection)
    before = [("scheduling", "0011_waitlists"), ("sessions_setup", "0004_closed_enforced")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Clinic = old.get_model("clinic", "Clinic")
    Location = old.get_model("clinic", "Location")
    Template = old.get_model("sessions_setup", "SessionTemplate")
    OldSession = old.get_model("scheduling", "Session")
    clinic = Clinic.objects.create(name="Old", slug="old-rota", time_zone="Europe/London")
    location = Location.objects.create(clinic=clinic, name="Main", time_zone="Europe/London")
    bookable = Template.objects.create(
        clinic=clinic, name="GP Connect AM", gp_connect_bookable=True, practitioner_role="gp", location=location
    )
    plain = Template.objects.create(clinic=clinic, name="In-house AM")
    starts = dt.datetime(2027, 6, 8, 8, tzinfo=dt.UTC)
    common = {"clinic": clinic, "location": location, "date": DAY, "time_zone": "Europe/London", "colour": "navy",
              "session_type": "timed", "starts_at": starts, "ends_at": starts + dt.timedelta(hours=3)}  # fmt: skip
    OldSession.objects.create(template=bookable, name="A", **common)
    OldSession.objects.create(template=plain, name="B", **common)
    OldSession.objects.create(template=None, name="Ad-hoc slot", **common)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    found = dict(Session.objects.filter(clinic__slug="old-rota").values_list("name", "practitioner_role"))
    assert found == {"A": "gp", "B": "", "Ad-hoc slot": ""}
    flagged = set(
        Session.objects.filter(clinic__slug="old-rota", gp_connect_bookable=True).values_list("name", flat=True)
    )
    assert flagged == {"A"}
