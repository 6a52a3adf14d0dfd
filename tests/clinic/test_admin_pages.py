"""The clinic admin pages: locations, departments, practitioners, members, settings, audit."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from clinic.models import AuditEvent, Department, Location, Membership, Practitioner, Role
from tests.conftest import logged_in_client
from tests.factories import (
    DepartmentFactory,
    LocationFactory,
    MembershipFactory,
    PractitionerFactory,
)

pytestmark = pytest.mark.django_db


def test_it_adds_a_location_and_audits_it(admin_client_a, admin_a, clinic_a):
    response = admin_client_a.post(
        reverse("clinic:location-add"),
        {
            "name": "Main Surgery",
            "kind": "main",
            "address": "1 High St",
            "postcode": "AB1 2CD",
            "time_zone": "Europe/London",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    location = Location.objects.get(clinic=clinic_a, name="Main Surgery")
    event = AuditEvent.objects.get(clinic=clinic_a, action="location.created")
    assert event.actor == admin_a.user
    assert event.object_id == str(location.public_id)


def test_a_second_main_surgery_is_refused_on_the_form(admin_client_a, clinic_a):
    LocationFactory(clinic=clinic_a, name="Main", kind="main")
    response = admin_client_a.post(
        reverse("clinic:location-add"), {"name": "Other", "kind": "main", "time_zone": "Europe/London"}
    )
    assert response.status_code == 200
    assert "already the main surgery" in response.content.decode()
    assert Location.objects.for_clinic(clinic_a).count() == 1


def test_bad_input_gets_messages_not_a_500(admin_client_a, clinic_a):
    LocationFactory(clinic=clinic_a, name="Taken")
    response = admin_client_a.post(
        reverse("clinic:location-add"), {"name": "Taken", "kind": "branch", "time_zone": "Mars/Olympus"}
    )
    assert response.status_code == 200
    assert "time_zone" in response.context["form"].errors
    duplicate = admin_client_a.post(
        reverse("clinic:location-add"), {"name": "Taken", "kind": "branch", "time_zone": "Europe/London"}
    )
    assert duplicate.status_code == 200
    assert "A location with this name already exists in this clinic." in duplicate.content.decode()
    assert Location.objects.for_clinic(clinic_a).count() == 1


def test_names_may_repeat_across_clinics(admin_client_a, clinic_a, clinic_b):
    DepartmentFactory(clinic=clinic_b, name="Nursing")
    response = admin_client_a.post(reverse("clinic:department-add"), {"name": "Nursing", "is_active": "on"})
    assert response.status_code == 302
    assert Department.objects.filter(name="Nursing").count() == 2


def test_it_edits_and_archives_a_department(admin_client_a, clinic_a):
    department = DepartmentFactory(clinic=clinic_a, name="Old")
    url = reverse("clinic:department-edit", args=[department.public_id])
    assert admin_client_a.post(url, {"name": "Renamed"}).status_code == 302
    department.refresh_from_db()
    assert department.name == "Renamed"
    assert department.is_active is False
    assert "Archived" in admin_client_a.get(reverse("clinic:departments")).content.decode()


def test_a_practitioner_cannot_be_placed_at_another_clinics_location(admin_client_a, clinic_a, clinic_b):
    foreign = LocationFactory(clinic=clinic_b)
    response = admin_client_a.post(
        reverse("clinic:practitioner-add"), {"name": "Dr X", "role": "gp", "default_location": foreign.pk}
    )
    assert response.status_code == 200
    assert "default_location" in response.context["form"].errors
    assert not Practitioner.objects.filter(name="Dr X").exists()


def test_a_practitioner_login_must_be_a_member_of_the_clinic(admin_client_a, clinic_a, outsider_b):
    location = LocationFactory(clinic=clinic_a)
    response = admin_client_a.post(
        reverse("clinic:practitioner-add"),
        {"name": "Dr Y", "role": "gp", "default_location": location.pk, "user": outsider_b.user.pk},
    )
    assert "user" in response.context["form"].errors


def test_it_adds_a_practitioner_with_a_login(admin_client_a, clinic_a, reception_a):
    location = LocationFactory(clinic=clinic_a)
    response = admin_client_a.post(
        reverse("clinic:practitioner-add"),
        {
            "name": "Dr Z",
            "role": "nurse",
            "default_location": location.pk,
            "user": reception_a.user.pk,
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    practitioner = Practitioner.objects.get(clinic=clinic_a, name="Dr Z")
    assert practitioner.user == reception_a.user


def test_adding_a_new_person_creates_an_account_and_emails_a_set_password_link(admin_client_a, clinic_a):
    response = admin_client_a.post(
        reverse("clinic:member-add"),
        {
            "email": "New.Nurse@Example.com",
            "first_name": "New",
            "last_name": "Nurse",
            "role": "clinician",
            "perm_manage_sessions": "on",
        },
    )
    assert response.status_code == 302
    membership = Membership.objects.get(clinic=clinic_a, user__email="new.nurse@example.com")
    assert membership.role == Role.CLINICIAN
    assert membership.perm_manage_sessions and not membership.perm_access_blocked_patients
    assert len(mail.outbox) == 1
    assert "Clinic A" in mail.outbox[0].subject
    assert re.search(r"/accounts/password/reset/\S+/", mail.outbox[0].body)
    assert AuditEvent.objects.filter(clinic=clinic_a, action="membership.created").exists()


def test_adding_an_existing_user_of_another_clinic_gives_them_a_second_clinic(admin_client_a, clinic_a, outsider_b):
    response = admin_client_a.post(
        reverse("clinic:member-add"),
        {"email": outsider_b.user.email, "first_name": "x", "last_name": "y", "role": "reception"},
    )
    assert response.status_code == 302
    assert len(mail.outbox) == 0
    assert Membership.objects.filter(user=outsider_b.user).count() == 2


def test_adding_an_existing_member_again_is_refused(admin_client_a, reception_a):
    response = admin_client_a.post(
        reverse("clinic:member-add"),
        {"email": reception_a.user.email, "first_name": "x", "last_name": "y", "role": "reception"},
    )
    assert response.status_code == 200
    assert "already a member" in response.content.decode()


def test_an_admin_grants_named_permissions(admin_client_a, reception_a):
    url = reverse("clinic:member-edit", args=[reception_a.public_id])
    response = admin_client_a.post(url, {"role": "reception", "perm_access_blocked_patients": "on", "is_active": "on"})
    assert response.status_code == 302
    reception_a.refresh_from_db()
    assert reception_a.perm_access_blocked_patients
    assert not reception_a.perm_manage_appointments
    assert "Privacy: Access Blocked Patients" in admin_client_a.get(reverse("clinic:members")).content.decode()


def test_the_last_admin_cannot_demote_or_remove_themselves(admin_client_a, admin_a):
    edit = admin_client_a.post(
        reverse("clinic:member-edit", args=[admin_a.public_id]), {"role": "reception", "is_active": "on"}
    )
    assert edit.status_code == 200
    assert "at least one admin" in edit.content.decode()
    remove = admin_client_a.post(reverse("clinic:member-remove", args=[admin_a.public_id]))
    assert remove.status_code == 200
    assert "at least one admin" in remove.content.decode()
    admin_a.refresh_from_db()
    assert admin_a.role == Role.ADMIN


def test_removing_a_member_asks_first_then_removes(admin_client_a, reception_a, clinic_a):
    url = reverse("clinic:member-remove", args=[reception_a.public_id])
    confirm = admin_client_a.get(url)
    assert "Remove access" in confirm.content.decode()
    assert Membership.objects.filter(pk=reception_a.pk).exists()
    assert admin_client_a.post(url).status_code == 302
    assert not Membership.objects.filter(pk=reception_a.pk).exists()
    assert logged_in_client(reception_a).get(reverse("home")).status_code == 403
    assert AuditEvent.objects.filter(clinic=clinic_a, action="membership.removed").exists()


def test_clinic_settings_turn_internal_ids_on(admin_client_a, clinic_a):
    response = admin_client_a.post(
        reverse("clinic:settings"), {"name": "Clinic A Renamed", "time_zone": "Europe/Dublin"}
    )
    assert response.status_code == 302
    clinic_a.refresh_from_db()
    assert clinic_a.name == "Clinic A Renamed"
    assert clinic_a.internal_ids_enabled is False
    assert clinic_a.time_zone == "Europe/Dublin"


def test_clinic_settings_say_whether_the_clinic_bills_insurance(admin_client_a, clinic_a):
    page = admin_client_a.get(reverse("clinic:settings")).content.decode()
    box = re.search(r'<input type="checkbox" name="bills_insurance"[^>]*>', page)
    assert "Bills insurance" in page and box is not None and " checked" in box.group(0)
    admin_client_a.post(reverse("clinic:settings"), {"name": clinic_a.name, "time_zone": clinic_a.time_zone})
    clinic_a.refresh_from_db()
    assert clinic_a.bills_insurance is False
    data = {"name": clinic_a.name, "time_zone": clinic_a.time_zone, "bills_insurance": "on"}
    admin_client_a.post(reverse("clinic:settings"), data)
    clinic_a.refresh_from_db()
    assert clinic_a.bills_insurance is True


def test_the_audit_log_lists_the_clinics_events_only(admin_client_a, clinic_a, clinic_b, outsider_client):
    admin_client_a.post(reverse("clinic:department-add"), {"name": "Ours"})
    outsider_client.post(reverse("clinic:department-add"), {"name": "Theirs"})
    body = admin_client_a.get(reverse("clinic:audit")).content.decode()
    assert body.count("department.created") == 1


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("clinic:locations", lambda clinic, n: LocationFactory.create_batch(n, clinic=clinic)),
        ("clinic:departments", lambda clinic, n: DepartmentFactory.create_batch(n, clinic=clinic)),
        ("clinic:practitioners", lambda clinic, n: PractitionerFactory.create_batch(n, clinic=clinic)),
        ("clinic:members", lambda clinic, n: MembershipFactory.create_batch(n, clinic=clinic)),
        ("clinic:audit", lambda clinic, n: [AuditEvent.objects.create(clinic=clinic, action="x") for _ in range(n)]),
        ("scheduling:calendar", lambda clinic, n: PractitionerFactory.create_batch(n, clinic=clinic)),
        ("home", lambda clinic, n: PractitionerFactory.create_batch(n, clinic=clinic)),
    ],
)
def test_list_pages_use_a_bounded_number_of_queries(
    name, make, admin_client_a, clinic_a, django_assert_max_num_queries
):
    admin_client_a.get(reverse(name))  # warm the session
    make(clinic_a, 2)
    with django_assert_max_num_queries(12) as small:
        assert admin_client_a.get(reverse(name)).status_code == 200
    make(clinic_a, 30)
    with django_assert_max_num_queries(12) as large:
        assert admin_client_a.get(reverse(name)).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)


def test_the_audit_log_pages_by_htmx_fragment_or_whole_page(admin_client_a, clinic_a):
    for n in range(60):
        AuditEvent.objects.create(clinic=clinic_a, action=f"test.event{n:02d}")
    url = reverse("clinic:audit") + "?page=2"
    whole = admin_client_a.get(url).content.decode()
    fragment = admin_client_a.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" in whole and "<html" not in fragment
    assert fragment.strip().startswith('<div id="audit-table">')
    assert "Page 2 of 2" in fragment and "test.event00" in fragment
    assert "test.event59" not in fragment
