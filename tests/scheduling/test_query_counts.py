"""Setup and rota pages: a bounded number of queries whatever the amount of data."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from scheduling.grid_html import drawn
from scheduling.services.rota import AllocationRequest, allocation_create
from tests.factories import LocationFactory, PractitionerFactory, SlotTypeFactory, template_with_slots

pytestmark = pytest.mark.django_db
DAY = dt.date(2027, 6, 7)


def add_slot_types(clinic, n):
    SlotTypeFactory.create_batch(n, clinic=clinic)


def add_templates(clinic, n):
    slot_type = SlotTypeFactory(clinic=clinic)
    for _ in range(n):
        template_with_slots(clinic, [slot_type] * 4, name=f"T{slot_type.pk}-{_}")


def add_sessions(clinic, n):
    slot_type = SlotTypeFactory(clinic=clinic)
    template = template_with_slots(clinic, [slot_type] * 6, name=f"S{n}")
    location = LocationFactory(clinic=clinic)
    for _ in range(n):
        practitioner = PractitionerFactory(clinic=clinic, default_location=location)
        allocation_create(
            clinic=clinic,
            actor=None,
            request=AllocationRequest(template, practitioner, location, dt.time(9), DAY, DAY, (), 1),
        )


@pytest.mark.parametrize(
    ("url", "make"),
    [
        ("sessions_setup:slot-types", add_slot_types),
        ("sessions_setup:templates", add_templates),
        ("sessions_setup:template-add", add_slot_types),
        ("scheduling:rota", add_sessions),
        ("scheduling:allocate", add_templates),
        ("scheduling:day-sessions", add_sessions),
    ],
)
def test_setup_and_rota_pages_use_a_bounded_number_of_queries(
    url, make, admin_client_a, clinic_a, django_assert_max_num_queries
):
    path = reverse(url) + ("?date=2027-06-07" if url == "scheduling:day-sessions" else "")
    admin_client_a.get(path)  # warm the session
    make(clinic_a, 2)
    with django_assert_max_num_queries(14) as small:
        assert admin_client_a.get(path).status_code == 200
    make(clinic_a, 25)
    with django_assert_max_num_queries(14) as large:
        assert admin_client_a.get(path).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)


def test_the_builder_of_a_long_session_uses_a_bounded_number_of_queries(
    admin_client_a, clinic_a, django_assert_max_num_queries
):
    slot_types = SlotTypeFactory.create_batch(5, clinic=clinic_a)
    short = template_with_slots(clinic_a, slot_types[:2], name="Short")
    long = template_with_slots(clinic_a, slot_types * 20, name="Long")
    admin_client_a.get(reverse("home"))  # warm the session
    counts = []
    for template in (short, long):
        with django_assert_max_num_queries(14) as captured:
            admin_client_a.get(reverse("sessions_setup:template-edit", args=[template.public_id]))
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


def fill_calendar(clinic, practitioners, *, day, sessions_each, bookings_each, first_hour=8):
    """Practitioners with sessions on `day`, some slots booked, events and their own office hours."""
    from scheduling.models import OfficeHours
    from tests.factories import OtherEventFactory, PatientFactory, allocate_session, book

    slot_type = SlotTypeFactory(clinic=clinic)
    group = SlotTypeFactory(clinic=clinic, capacity=5)
    patients = PatientFactory.create_batch(3, clinic=clinic)
    for practitioner in practitioners:
        OfficeHours.objects.update_or_create(
            clinic=clinic,
            practitioner=practitioner,
            defaults={"time_zone": "Europe/London", "weekly": {"1": [["08:00", "18:00"]]}},
        )
        for n in range(sessions_each):
            session = allocate_session(
                clinic,
                practitioner=practitioner,
                day=day,
                start=dt.time(first_hour + 2 * n),
                slot_types=[slot_type, group] * 3,
            )
            for slot, patient in zip(session.slots.all()[:bookings_each], patients * bookings_each, strict=False):
                book(slot, patient)
        OtherEventFactory(clinic=clinic, practitioner=practitioner)
        OtherEventFactory(
            clinic=clinic,
            practitioner=practitioner,
            all_day=True,
            starts_at=None,
            ends_at=None,
            first_date=day,
            last_date=day,
        )


@pytest.mark.parametrize("view", ["day", "week", "month"])
@pytest.mark.parametrize("tab", ["all", "one"])
def test_the_calendar_uses_a_fixed_number_of_queries(
    view, tab, clinic_a, admin_client_a, django_assert_num_queries, django_assert_max_num_queries
):
    from tests.factories import PractitionerFactory

    first = PractitionerFactory(clinic=clinic_a)
    tab_value = "all" if tab == "all" else str(first.public_id)
    path = reverse("scheduling:calendar") + f"?view={view}&date=2027-06-07&tab={tab_value}"
    admin_client_a.get(path)  # warm the session
    fill_calendar(clinic_a, [first, PractitionerFactory(clinic=clinic_a)], day=DAY, sessions_each=1, bookings_each=1)
    admin_client_a.get(path)
    with django_assert_max_num_queries(12) as small:
        assert admin_client_a.get(path).status_code == 200
    more = PractitionerFactory.create_batch(6, clinic=clinic_a)
    fill_calendar(clinic_a, [first, *more], day=DAY, sessions_each=2, bookings_each=5, first_hour=12)
    with django_assert_num_queries(len(small)):
        body = admin_client_a.get(path).content.decode()
    assert "booked" in body


@pytest.mark.parametrize("page", ["next-available", "patient-appointments", "appointments-report"])
def test_booking_lists_use_a_fixed_number_of_queries(
    page, clinic_a, admin_a, django_assert_num_queries, django_assert_max_num_queries
):
    import time_machine

    from tests.conftest import logged_in_client
    from tests.factories import PatientFactory, PractitionerFactory, allocate_session, book

    patient = PatientFactory(clinic=clinic_a)

    def grow(n):
        for _ in range(n):
            session = allocate_session(clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=DAY)
            for slot in session.slots.all()[:2]:
                book(slot, patient)

    path = {
        "next-available": reverse("scheduling:next-available"),
        "patient-appointments": reverse("scheduling:patient-appointments", args=[patient.public_id]),
        "appointments-report": reverse("scheduling:appointments-report")
        + "?first_date=2027-06-01&last_date=2027-06-30",
    }[page]
    with time_machine.travel(dt.datetime(2027, 6, 1, tzinfo=dt.UTC), tick=False):
        client = logged_in_client(admin_a)  # signed in "then", so the session is fresh
        client.get(path)
        grow(1)
        with django_assert_max_num_queries(10) as small:
            assert client.get(path).status_code == 200
        grow(6)
        with django_assert_num_queries(len(small)):
            assert client.get(path).status_code == 200


# What the week (All tab) may send per slot shown, its sessions and events counted in: a slot is one entry of its
# column's data (scheduling.grid_html), its looks shared with the slots like it; anything repeated per slot (ids,
# classes, tooltips' words) multiplies by thousands on a busy week. (It was 305 bytes here with each slot written
# as its link; as data it is about 90.)
WEEK_BYTES_PER_SLOT = 100


def names_of_fixed_width(clinic) -> None:
    """The factories number their names from counters that run on through the whole test run ("Slot type 7" early,
    "Slot type 12345" late): names of one width, so the bytes counted are the page's, not the counters' digits."""
    from clinic.models import Practitioner
    from patients.models import Patient
    from scheduling.models import OtherEvent, SlotType

    for model, field, label in (
        (Practitioner, "name", "Dr P"),
        (SlotType, "name", "Type"),
        (Patient, "last_name", "Patient"),
        (OtherEvent, "title", "Event"),
    ):
        for n, pk in enumerate(model.objects.filter(clinic=clinic).order_by("pk").values_list("pk", flat=True)):
            model.objects.filter(pk=pk).update(**{field: f"{label} {n:03d}"})
    Patient.objects.filter(clinic=clinic).update(first_name="Sam")


def test_the_week_page_grows_by_a_bounded_number_of_bytes_per_slot(clinic_a, admin_client_a):
    from scheduling.models import Slot

    practitioners = PractitionerFactory.create_batch(2, clinic=clinic_a)
    path = reverse("scheduling:calendar") + "?view=week&date=2027-06-07&tab=all"
    admin_client_a.get(path)  # the session's first request stores the clinic
    sizes = []
    for day in (DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)):
        fill_calendar(clinic_a, practitioners, day=day, sessions_each=3, bookings_each=4)
        names_of_fixed_width(clinic_a)
        body = admin_client_a.get(path).content
        slots = Slot.objects.filter(clinic=clinic_a).count()
        assert drawn(body.decode()).count(' class="slot ') == slots  # every slot is on the page, as its data
        sizes.append((slots, len(body)))
    (few, small), _, (many, large) = sizes
    assert (large - small) / (many - few) <= WEEK_BYTES_PER_SLOT, sizes
    assert large / many <= WEEK_BYTES_PER_SLOT + 180, sizes  # the page around the grid: ~18 KB at 108 slots
