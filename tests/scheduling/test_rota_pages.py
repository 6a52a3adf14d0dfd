"""The rota and the sessions of the day over HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from scheduling.models import Allocation, Session, Slot
from scheduling.services.rota import AllocationRequest, allocation_create
from tests.factories import LocationFactory, PractitionerFactory, SlotTypeFactory, template_with_slots

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup_a(clinic_a):
    normal = SlotTypeFactory(clinic=clinic_a, name="Normal", default_length_minutes=15)
    group = SlotTypeFactory(clinic=clinic_a, name="Group", default_length_minutes=60, capacity=10)
    location = LocationFactory(clinic=clinic_a, name="Riverside", time_zone="Europe/London")
    return {
        "template": template_with_slots(clinic_a, [normal] * 16, name="Dr Smith AM", description="Routine"),
        "group": template_with_slots(clinic_a, [group], name="Group PM"),
        "location": location,
        "smith": PractitionerFactory(clinic=clinic_a, name="Dr Smith", default_location=location),
    }


def allocation_data(setup, **overrides):
    data = {
        "template": setup["template"].pk,
        "practitioner": setup["smith"].pk,
        "location": setup["location"].pk,
        "start_time": "08:00",
        "first_date": "2027-03-22",
        "repeat": "on",
        "weekdays": ["1", "3"],
        "every_weeks": "1",
        "last_date": "2027-04-04",
    }
    data.update(overrides)
    return data


def test_preview_lists_what_will_be_created_in_local_time(admin_client_a, setup_a):
    response = admin_client_a.post(reverse("scheduling:allocate"), allocation_data(setup_a, action="preview"))
    html = response.content.decode()
    assert response.context["plan"].slot_count == 4 * 16
    # 29 March 2027 is the first Monday of British Summer Time: still 08:00-12:00 local.
    assert "Mon 22 Mar 2027, 08:00–12:00" in html and "Mon 29 Mar 2027, 08:00–12:00" in html
    assert "Allocate 4 sessions" in html
    assert not Session.objects.exists()


def test_allocate_creates_sessions_and_says_so(admin_client_a, clinic_a, setup_a):
    response = admin_client_a.post(
        reverse("scheduling:allocate"), allocation_data(setup_a, action="allocate"), follow=True
    )
    assert "Allocated “Dr Smith AM”: 4 sessions." in response.content.decode()
    assert Session.objects.for_clinic(clinic_a).count() == 4
    assert Slot.objects.for_clinic(clinic_a).count() == 64


def test_a_clash_is_refused_with_a_clear_message_and_allocate_is_disabled(admin_client_a, clinic_a, setup_a):
    admin_client_a.post(reverse("scheduling:allocate"), allocation_data(setup_a, action="allocate"))
    response = admin_client_a.post(
        reverse("scheduling:allocate"),
        allocation_data(
            setup_a,
            action="allocate",
            template=setup_a["group"].pk,
            start_time="11:30",
            weekdays=["3"],
            first_date="2027-03-24",
            last_date="2027-03-24",
        ),  # fmt: skip
    )
    html = response.content.decode()
    assert (
        "1 date(s) clash with sessions already on the rota, first Wed 24 Mar 2027: “Dr Smith AM” at Riverside." in html
    )
    assert 'value="allocate" disabled' in html
    assert Allocation.objects.for_clinic(clinic_a).count() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"weekdays": []}, "weekdays"),
        ({"last_date": ""}, "last_date"),
        ({"start_time": "25:00"}, "start_time"),
        ({"every_weeks": "0"}, "every_weeks"),
    ],
)
def test_bad_allocation_input_gets_form_errors(admin_client_a, setup_a, overrides, field):
    response = admin_client_a.post(reverse("scheduling:allocate"), allocation_data(setup_a, **overrides))
    assert field in response.context["form"].errors
    assert not Session.objects.exists()


def test_a_range_without_matching_weekdays_is_explained(admin_client_a, setup_a):
    response = admin_client_a.post(
        reverse("scheduling:allocate"),
        allocation_data(setup_a, weekdays=["6"], first_date="2027-03-22", last_date="2027-03-26"),
    )
    assert "No date between the first and last date falls on the chosen weekdays." in response.content.decode()


def test_another_clinics_template_or_practitioner_cannot_be_allocated(admin_client_a, clinic_b, setup_a):
    foreign_template = template_with_slots(clinic_b, [SlotTypeFactory(clinic=clinic_b)])
    foreign_practitioner = PractitionerFactory(clinic=clinic_b)
    for overrides in ({"template": foreign_template.pk}, {"practitioner": foreign_practitioner.pk}):
        response = admin_client_a.post(reverse("scheduling:allocate"), allocation_data(setup_a, **overrides))
        assert response.status_code == 200
        assert response.context["form"].errors
    assert not Session.objects.exists()


def test_removing_future_sessions_with_bookings_lists_them_and_removes_nothing(admin_client_a, clinic_a, setup_a):
    today = clinic_a.today()
    allocation = allocation_create(
        clinic=clinic_a,
        actor=None,
        request=AllocationRequest(
            setup_a["template"],
            setup_a["smith"],
            setup_a["location"],
            dt.time(8),
            today + dt.timedelta(days=1),
            today + dt.timedelta(days=14),
            (1, 2, 3, 4, 5),
            1,
        ),  # fmt: skip
    )
    slot = Slot.objects.for_clinic(clinic_a).order_by("starts_at").first()
    Slot.objects.filter(pk=slot.pk).update(booked_count=1)
    url = reverse("scheduling:allocation-remove", args=[allocation.public_id])
    sessions = Session.objects.for_clinic(clinic_a).count()
    confirm = admin_client_a.get(url).content.decode()
    assert f"Remove {sessions} future sessions" in confirm
    refused = admin_client_a.post(url).content.decode()
    assert "cannot be removed: 1 slot holds bookings" in refused
    assert slot.session.date.strftime("%a %-d %b %Y") in refused
    assert Session.objects.for_clinic(clinic_a).count() == sessions
    Slot.objects.filter(pk=slot.pk).update(booked_count=0)
    assert admin_client_a.post(url).status_code == 302
    assert not Session.objects.for_clinic(clinic_a).exists()


def test_sessions_of_the_day_show_times_colours_tooltips_and_counts(admin_client_a, clinic_a, setup_a):
    day = dt.date(2027, 7, 5)
    allocation_create(
        clinic=clinic_a,
        actor=None,
        request=AllocationRequest(
            setup_a["template"], setup_a["smith"], setup_a["location"], dt.time(8), day, day, (), 1
        ),  # fmt: skip
    )
    allocation_create(
        clinic=clinic_a,
        actor=None,
        request=AllocationRequest(setup_a["group"], None, setup_a["location"], dt.time(14), day, day, (), 1),
    )
    Slot.objects.filter(session__name="Group PM").update(booked_count=3)
    response = admin_client_a.get(reverse("scheduling:day-sessions"), {"date": "2027-07-05"})
    rows = {s.name: s for s in response.context["sessions"]}
    assert (rows["Dr Smith AM"].free_total, rows["Dr Smith AM"].booked_total) == (16, 0)
    assert (rows["Group PM"].free_total, rows["Group PM"].booked_total) == (7, 3)
    html = response.content.decode()
    assert 'title="Routine"' in html
    assert "08:00–12:00" in html and "14:00–15:00" in html  # local BST, stored 07:00 UTC
    assert "Whole clinic" in html


def test_sessions_of_the_day_answer_a_bad_date_with_today(admin_client_a, clinic_a):
    response = admin_client_a.get(reverse("scheduling:day-sessions"), {"date": "31/02/2027"})
    assert response.status_code == 200
    assert response.context["day"] == clinic_a.today()


def test_reception_sees_sessions_of_the_day_but_not_the_rota(reception_client_a):
    assert reception_client_a.get(reverse("scheduling:day-sessions")).status_code == 200
    assert reception_client_a.get(reverse("scheduling:rota")).status_code == 403
    assert reception_client_a.get(reverse("scheduling:allocate")).status_code == 403


def test_the_allocate_form_offers_next_monday_in_the_date_inputs_format(admin_client_a, clinic_a):
    html = admin_client_a.get(reverse("scheduling:allocate")).content.decode()
    today = clinic_a.today()
    next_monday = today + dt.timedelta(days=(7 - today.weekday()) % 7 or 7)
    assert f'type="date" name="first_date" value="{next_monday.isoformat()}"' in html
