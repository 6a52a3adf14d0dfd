"""After booking: status steps, notes completed, reschedule with history, Create New Slot, next available, reports."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditEvent, Role
from scheduling.models import Appointment, AppointmentStatus, Slot
from scheduling.selectors.booking import next_available
from scheduling.services.booking import BookingError, BookingRequest, appointment_book
from tests.conftest import logged_in_client
from tests.factories import (
    LocationFactory,
    MembershipFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    book,
    draft_of_new_series,
)

pytestmark = pytest.mark.django_db
DAY = dt.date(2027, 6, 7)


def booked(clinic, **session_fields):
    session = allocate_session(clinic, practitioner=PractitionerFactory(clinic=clinic), day=DAY, **session_fields)
    return book(session.slots.first(), PatientFactory(clinic=clinic, first_name="Ines", last_name="Aubert"))


def test_an_appointment_moves_through_its_statuses_and_each_step_is_audited(clinic_a, reception_client_a):
    appointment = booked(clinic_a)
    url = reverse("scheduling:appointment", args=[appointment.public_id])
    page = reception_client_a.get(url).content.decode()
    assert "Ines Aubert" in page and ">Arrived</button>" in page and ">Did not attend</button>" in page
    for status in ("arrived", "in_consultation", "completed"):
        assert reception_client_a.post(url, {"status": status}).status_code == 302
        appointment.refresh_from_db()
        assert appointment.status == status
    # Completed: the notes can be marked (the Google sync relies on it).
    assert "Mark notes completed" in reception_client_a.get(url).content.decode()
    reception_client_a.post(url, {"notes_completed": "1"})
    appointment.refresh_from_db()
    assert appointment.notes_completed
    assert AuditEvent.objects.filter(action="appointment.status", object_id=str(appointment.public_id)).count() == 3
    # A step that does not follow is refused with a message, and changes nothing.
    response = reception_client_a.post(url, {"status": "booked"})
    assert response.status_code == 422 and "cannot become “Booked”" in response.content.decode()
    response = reception_client_a.post(url, {"status": "nonsense"})
    assert response.status_code == 422 and "That is not an appointment status." in response.content.decode()
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.COMPLETED


def test_notes_can_only_be_completed_on_a_completed_appointment(clinic_a, reception_client_a):
    appointment = booked(clinic_a)
    response = reception_client_a.post(
        reverse("scheduling:appointment", args=[appointment.public_id]), {"notes_completed": "1"}
    )
    assert response.status_code == 422 and "Only a completed appointment" in response.content.decode()


def test_did_not_attend_keeps_the_place_and_a_status_change_through_htmx_refreshes_the_grid(
    clinic_a, reception_client_a
):
    appointment = booked(clinic_a)
    response = reception_client_a.post(
        reverse("scheduling:appointment", args=[appointment.public_id]),
        {"status": "did_not_attend"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200 and "calendar:refresh" in response["HX-Trigger"]
    assert "Did not attend" in response.content.decode()
    appointment.slot.refresh_from_db()
    assert appointment.slot.booked_count == 1


def test_rescheduling_moves_the_booking_and_keeps_the_history(clinic_a, reception_a, reception_client_a):
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine")
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Move")
    session = allocate_session(clinic_a, practitioner=practitioner, day=DAY, slot_types=[routine] * 3)
    first, _, third = session.slots.order_by("position")
    appointment = book(first, PatientFactory(clinic=clinic_a, first_name="Ines", last_name="Aubert"))
    Appointment.objects.filter(pk=appointment.pk).update(slot_type=routine)
    url = reverse("scheduling:appointment-reschedule", args=[appointment.public_id])
    with time_machine.travel(dt.datetime(2027, 6, 1, tzinfo=dt.UTC), tick=False):
        client = logged_in_client(reception_a)  # signed in "then": today's session has expired by June 2027
        choices = client.get(url).content.decode()
        assert str(third.public_id) in choices and str(first.public_id) not in choices
        response = client.post(url, {"slot": str(third.public_id)})
    assert response.status_code == 302
    old = Appointment.objects.get(pk=appointment.pk)
    new = Appointment.objects.get(rescheduled_from=old)
    assert (old.status, old.cancel_reason) == ("cancelled", "Rescheduled")
    assert (new.slot, new.patient, new.status) == (third, old.patient, "booked")
    first.refresh_from_db()
    third.refresh_from_db()
    assert (first.booked_count, third.booked_count) == (0, 1)
    page = reception_client_a.get(reverse("scheduling:appointment", args=[new.public_id])).content.decode()
    assert "Moved from" in page
    assert AuditEvent.objects.filter(action="appointment.rescheduled").count() == 1
    # Only a booked appointment moves; a slot of nothing is refused.
    again = reception_client_a.post(url, {"slot": str(first.public_id)})
    assert again.status_code == 422 and "Only a booked appointment" in again.content.decode()
    assert (
        reception_client_a.post(
            reverse("scheduling:appointment-reschedule", args=[new.public_id]), {"slot": "nonsense"}
        ).status_code
        == 422
    )


def test_a_full_target_leaves_the_old_booking_in_place(clinic_a, reception_a, reception_client_a):
    routine = SlotTypeFactory(clinic=clinic_a)
    session = allocate_session(
        clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=DAY, slot_types=[routine] * 2
    )
    first, second = session.slots.order_by("position")
    appointment = book(first, PatientFactory(clinic=clinic_a))
    book(second, PatientFactory(clinic=clinic_a))
    response = reception_client_a.post(
        reverse("scheduling:appointment-reschedule", args=[appointment.public_id]), {"slot": str(second.public_id)}
    )
    assert response.status_code == 422 and "This slot is full." in response.content.decode()
    appointment.refresh_from_db()
    first.refresh_from_db()
    assert appointment.status == "booked" and first.booked_count == 1  # nothing half-done


def test_create_new_slot_needs_the_manage_appointments_permission(clinic_a, reception_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Adhoc")
    location = LocationFactory(clinic=clinic_a, time_zone="Europe/London")
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine", default_length_minutes=15)
    data = {
        "practitioner": str(practitioner.public_id),
        "location": str(location.public_id),
        "date": "2027-06-08",
        "start_time": "17:45",
        "length_minutes": "15",
        "slot_type": str(routine.public_id),
    }
    without = MembershipFactory(clinic=clinic_a, role=Role.RECEPTION)  # no "Manage Appointments"
    client = logged_in_client(without)
    assert client.get(reverse("scheduling:slot-new")).status_code == 403
    assert client.post(reverse("scheduling:slot-new"), data).status_code == 403
    slot_page = reverse("scheduling:book", args=[allocate_session(clinic_a, day=DAY).slots.first().public_id])
    assert "Create New Slot" not in client.get(slot_page).content.decode()
    assert "Create New Slot" in reception_client_a.get(slot_page).content.decode()
    response = reception_client_a.post(reverse("scheduling:slot-new"), data)
    slot = Slot.objects.get(session__practitioner=practitioner)
    assert response.status_code == 302 and str(slot.public_id) in response["Location"]
    assert slot.starts_at == dt.datetime(2027, 6, 8, 16, 45, tzinfo=dt.UTC)  # 17:45 BST
    assert slot.session.allocation is None and slot.capacity == 1 and slot.bookable
    assert AuditEvent.objects.filter(action="slot.created_adhoc").exists()
    bad = reception_client_a.post(reverse("scheduling:slot-new"), {**data, "length_minutes": "0"})
    assert bad.status_code == 422 and "greater than or equal to 5" in bad.content.decode()


def test_create_new_slot_starts_from_the_usual_location_and_the_types_length_and_keeps_the_patient(
    clinic_a, reception_client_a
):
    home = LocationFactory(clinic=clinic_a, name="Hillside", time_zone="Europe/London")
    LocationFactory(clinic=clinic_a, name="Alpha Branch", time_zone="Europe/London")  # first by name
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Usual", default_location=home)
    long = SlotTypeFactory(clinic=clinic_a, name="Long review", default_length_minutes=40)
    url = reverse("scheduling:slot-new")
    form = reception_client_a.get(url, {"practitioner": str(practitioner.public_id), "slot_type": str(long.public_id)})
    fields = form.context["form"]
    assert fields["location"].value() == home.public_id  # the practitioner's usual site
    assert fields["length_minutes"].value() == 40  # the slot type's length, not 10
    page = form.content.decode()
    assert f'value="{practitioner.public_id}" selected data-location="{home.public_id}"' in page  # for the script
    assert f'value="{long.public_id}" selected data-length="40"' in page
    # Reachable after a patient is chosen: the patient card offers it, and the booking continues with them.
    slot = allocate_session(clinic_a, practitioner=practitioner, day=DAY, slot_types=[long]).slots.get()
    patient = PatientFactory(clinic=clinic_a, first_name="Ola", last_name="Nordmann")
    card = reception_client_a.get(
        reverse("scheduling:book", args=[slot.public_id]), {"patient": str(patient.public_id)}
    )
    assert (
        f"patient={patient.public_id}" in card.content.decode()
        and "Create New Slot for Ola Nordmann" in card.content.decode()
    )
    data = {
        "practitioner": str(practitioner.public_id),
        "location": str(home.public_id),
        "date": "2027-06-09",
        "start_time": "12:00",
        "length_minutes": "40",
        "slot_type": str(long.public_id),
        "patient": str(patient.public_id),
    }
    made = reception_client_a.post(url, data, follow=True)
    created = Slot.objects.get(session__practitioner=practitioner, session__allocation=None)
    assert (
        made.redirect_chain[-1][0]
        == reverse("scheduling:book", args=[created.public_id]) + f"?patient={patient.public_id}"
    )
    assert made.context["patient"] == patient and made.context["step"] == "form"  # straight on to the booking


def test_next_available_honours_release_rules(clinic_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    any_time = SlotTypeFactory(clinic=clinic_a, name="Any time")
    on_the_day = SlotTypeFactory(clinic=clinic_a, name="On the day", release_rule="on_the_day")
    two_days = SlotTypeFactory(clinic=clinic_a, name="Two days", release_rule="days_before", release_days_before=2)
    for offset in (0, 1, 3):
        allocate_session(
            clinic_a,
            practitioner=practitioner,
            day=DAY + dt.timedelta(days=offset),
            slot_types=[any_time, on_the_day, two_days],
        )
    now = dt.datetime(2027, 6, 7, 6, tzinfo=dt.UTC)  # 07:00 in London, before the sessions

    def names(**filters):
        return [
            (s.starts_at.date().isoformat(), s.slot_type.name)
            for s in next_available(clinic=clinic_a, now=now, **filters)
        ]

    assert names() == [
        ("2027-06-07", "Any time"),
        ("2027-06-07", "On the day"),
        ("2027-06-07", "Two days"),
        ("2027-06-08", "Any time"),
        ("2027-06-08", "Two days"),  # tomorrow is within two days; on-the-day is not released yet
        ("2027-06-10", "Any time"),  # three days ahead: only any-time
    ]
    assert names(slot_type=on_the_day) == [("2027-06-07", "On the day")]
    full = Slot.objects.filter(slot_type=any_time, session__date=DAY).get()
    book(full, PatientFactory(clinic=clinic_a))
    assert ("2027-06-07", "Any time") not in names()
    assert names(practitioner=PractitionerFactory(clinic=clinic_a)) == []


def test_next_available_takes_a_fixed_number_of_queries(clinic_a, django_assert_num_queries):
    types = [SlotTypeFactory(clinic=clinic_a), SlotTypeFactory(clinic=clinic_a, release_rule="on_the_day")]
    for _ in range(3):
        allocate_session(clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=DAY, slot_types=types * 4)
    now = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)
    with django_assert_num_queries(3):  # slot types, the zones of the release rules, the slots
        assert len(next_available(clinic=clinic_a, now=now)) == 10


def test_the_next_available_page_lists_free_slots_to_book(clinic_a, reception_a):
    appointment = booked(clinic_a)
    with time_machine.travel(dt.datetime(2027, 6, 1, tzinfo=dt.UTC), tick=False):
        page = logged_in_client(reception_a).get(reverse("scheduling:next-available")).content.decode()
    assert reverse("scheduling:book", args=[appointment.slot.session.slots.last().public_id]) in page
    assert reverse("scheduling:book", args=[appointment.slot.public_id]) not in page  # booked: not free


def test_the_report_counts_by_category_and_status_and_exports_csv(clinic_a, admin_client_a, reception_a):
    vaccine = SlotTypeFactory(clinic=clinic_a, name="Vaccine", reporting_category="covid_vacs")
    session = allocate_session(
        clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=DAY, slot_types=[vaccine] * 3
    )
    slots = list(session.slots.order_by("position"))
    book(slots[0], PatientFactory(clinic=clinic_a))
    book(slots[1], PatientFactory(clinic=clinic_a), status="did_not_attend")
    book(slots[2], PatientFactory(clinic=clinic_a), status="cancelled")
    url = reverse("scheduling:appointments-report") + "?first_date=2027-06-01&last_date=2027-06-30"
    page = admin_client_a.get(url).content.decode()
    assert "COVID" in page.upper()
    export = admin_client_a.get(url + "&format=csv")
    assert export["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    header, row = rows[0], rows[1]
    assert header[0] == "Reporting category" and header[-1] == "Total"
    counts = dict(zip(header[1:-1], row[1:-1], strict=True))
    assert (counts["Booked"], counts["Did not attend"], counts["Cancelled"], row[-1]) == ("1", "1", "1", "3")
    assert (
        "The end is before the start."
        in admin_client_a.get(
            reverse("scheduling:appointments-report") + "?first_date=2027-06-30&last_date=2027-06-01"
        ).content.decode()
    )
    without = MembershipFactory(clinic=clinic_a, role=Role.RECEPTION)
    assert logged_in_client(without).get(url).status_code == 403


def test_the_quickview_lists_upcoming_and_past_appointments(clinic_a, reception_a, reception_client_a):
    appointment = booked(clinic_a)
    patient = appointment.patient
    quickview = reception_client_a.get(reverse("patients:quickview", args=[patient.public_id])).content.decode()
    listing = reverse("scheduling:patient-appointments", args=[patient.public_id])
    assert f'hx-get="{listing}"' in quickview
    with time_machine.travel(dt.datetime(2027, 6, 1, tzinfo=dt.UTC), tick=False):
        upcoming = logged_in_client(reception_a).get(listing, headers={"HX-Request": "true"}).content.decode()
    assert upcoming.index("Upcoming") < upcoming.index("Mon 7 Jun 2027") < upcoming.index("Past")
    with time_machine.travel(dt.datetime(2027, 7, 1, tzinfo=dt.UTC), tick=False):
        past = logged_in_client(reception_a).get(listing, headers={"HX-Request": "true"}).content.decode()
    assert past.index("Past") < past.index("Mon 7 Jun 2027")


def test_a_blocked_patients_appointment_is_hidden_without_the_permission(clinic_a, reception_client_a, admin_client_a):
    session = allocate_session(clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=DAY)
    secret = PatientFactory(clinic=clinic_a, is_blocked=True, blocked_reason="Staff")
    appointment = book(session.slots.first(), secret)
    for name in ("scheduling:appointment", "scheduling:appointment-reschedule", "scheduling:appointment-cancel"):
        assert reception_client_a.get(reverse(name, args=[appointment.public_id])).status_code == 404
        assert admin_client_a.get(reverse(name, args=[appointment.public_id])).status_code == 200
    assert (
        reception_client_a.get(reverse("scheduling:patient-appointments", args=[secret.public_id])).status_code == 404
    )


def test_the_database_refuses_two_overlapping_single_appointments_of_one_practitioner(clinic_a, reception_a):
    """PostgreSQL holds it with an exclusion constraint; SQLite relies on the service's serialised writes."""
    membership = reception_a
    practitioner = PractitionerFactory(clinic=clinic_a)
    session = allocate_session(clinic_a, practitioner=practitioner, day=DAY)
    first, second, _ = session.slots.order_by("position")
    one = book(first, PatientFactory(clinic=clinic_a))
    two = book(second, PatientFactory(clinic=clinic_a))
    Appointment.objects.filter(pk__in=[one.pk, two.pk]).update(exclusive=True)
    overlap = Appointment.objects.filter(pk=two.pk)
    if connection.vendor == "postgresql":
        with pytest.raises(IntegrityError), transaction.atomic():
            overlap.update(starts_at=one.starts_at, ends_at=one.ends_at)
        # Group places (not exclusive) and cancelled ones may overlap.
        overlap.update(exclusive=False, starts_at=one.starts_at, ends_at=one.ends_at)
        Appointment.objects.filter(pk=two.pk).update(exclusive=True, status="cancelled")
        assert Appointment.objects.filter(practitioner=practitioner).count() == 2
    else:
        # No exclusion constraints here: the booking service's practitioner check is what refuses it.
        Appointment.objects.filter(pk=two.pk).delete()
        Slot.objects.filter(pk=second.pk).update(starts_at=first.starts_at, ends_at=first.ends_at, booked_count=0)
        second.refresh_from_db()
        with pytest.raises(BookingError, match="already has an appointment at that time"):
            appointment_book(
                clinic=clinic_a,
                actor=membership.user,
                membership=membership,
                request=BookingRequest(second, PatientFactory(clinic=clinic_a)),
            )


def test_reschedule_and_draft_placement_do_not_offer_a_group_the_patient_is_already_in(clinic_a, reception_client_a):
    therapist = PractitionerFactory(clinic=clinic_a, name="Dr Group")
    group = SlotTypeFactory(clinic=clinic_a, name="Skills group", capacity=8)
    first_day = timezone.localdate() + dt.timedelta(days=1)
    second_day = first_day + dt.timedelta(days=1)
    monday, tuesday = (
        allocate_session(clinic_a, practitioner=therapist, day=day, slot_types=[group]).slots.get()
        for day in (first_day, second_day)
    )
    patient, newcomer = PatientFactory(clinic=clinic_a), PatientFactory(clinic=clinic_a)
    first = book(monday, patient)
    book(tuesday, patient)  # already in Tuesday's group too
    other = book(tuesday, newcomer)

    def offered(appointment):
        url = reverse("scheduling:appointment-reschedule", args=[appointment.public_id])
        return reception_client_a.get(url).context["slots"]

    assert tuesday not in offered(first)  # the patient is in it already
    assert monday in offered(other) and tuesday not in offered(other)

    def draft_slots(who):
        draft = draft_of_new_series(clinic_a, patient=who, practitioner=therapist, slot_type=group)
        url = reverse("scheduling:draft", args=[draft.public_id])
        return reception_client_a.get(url, {"date": second_day.isoformat()}).context["slots"]

    assert draft_slots(patient) == []  # Tuesday's group is the only one that day, and the patient is in it
    assert draft_slots(PatientFactory(clinic=clinic_a)) == [tuesday]
