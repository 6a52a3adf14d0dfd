"""The waiting list's pages as reception uses them: the slot popup's "Full · N waiting", adding a patient, the list in
offer order (moved up and down), an entry's free places (offer by hand, book now), removal after a confirmation, the
rules, the roster (attendance, CSV) and Book Appointment's closed-group reason; who may; bounded queries."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from clinic.models import AuditEvent, Role
from scheduling.models import (
    AppointmentSource,
    AppointmentStatus,
    WaitlistEntry,
    WaitlistKind,
    WaitlistSettings,
    WaitlistState,
)
from scheduling.services.booking import BookingRequest, appointment_book, appointment_cancel
from scheduling.services.waitlist import EntryData, waitlist_add
from tests.conftest import logged_in_client, tasks_in_process
from tests.factories import (
    LocationFactory,
    MembershipFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_rota,
)

pytestmark = pytest.mark.django_db

FIRST = dt.date(2027, 6, 2)  # a Wednesday
NOW = dt.datetime(2027, 6, 10, 10, tzinfo=dt.UTC)  # Thursday 11:00 in London, between the 2nd and 3rd sessions


@pytest.fixture(autouse=True)
def in_process():
    with tasks_in_process(), time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def dbt(clinic_a):
    """A weekly DBT skills group of three, Wednesdays 18:00 London for five weeks; next week's is full."""
    main = LocationFactory(clinic=clinic_a, name="Main", time_zone="Europe/London")
    kind = SlotTypeFactory(clinic=clinic_a, name="DBT skills", capacity=3, default_length_minutes=90)
    therapist = PractitionerFactory(clinic=clinic_a, name="Sam Reid", role="therapist", default_location=main)
    allocation = allocate_rota(clinic_a, therapist, kind, FIRST, FIRST + dt.timedelta(weeks=4), weekdays=(3,))
    slots = list(allocation.sessions.order_by("date").values_list("slots", flat=True))
    from scheduling.models import Slot

    occurrences = list(Slot.objects.filter(pk__in=slots).order_by("starts_at").select_related("session"))
    members = [PatientFactory(clinic=clinic_a, first_name=f"Member{i}") for i in range(3)]
    for slot in occurrences:
        for patient in members:
            request = BookingRequest(slot=slot, patient=patient)
            appointment_book(clinic=clinic_a, actor=None, membership=None, request=request, tell=False)
    for slot in occurrences:
        slot.refresh_from_db()
    return {"allocation": allocation, "slots": occurrences, "members": members, "kind": kind, "therapist": therapist}


def waiting(clinic, membership, slot, count):
    return [
        waitlist_add(
            clinic=clinic,
            actor=membership.user,
            membership=membership,
            data=EntryData(
                patient=PatientFactory(clinic=clinic, first_name=f"Wait{i}"), kind=WaitlistKind.SLOT, slot=slot
            ),
        )
        for i in range(count)
    ]


def test_the_slot_popup_says_full_and_how_many_wait_and_links_to_add_and_the_roster(
    clinic_a, admin_a, reception_client_a, dbt
):
    slot = dbt["slots"][2]
    waiting(clinic_a, admin_a, slot, 2)
    page = reception_client_a.get(reverse("scheduling:slot", args=[slot.public_id])).content.decode()
    assert "Full · 2 waiting" in page
    assert reverse("scheduling:waitlist-add") + f"?slot={slot.public_id}" in page
    assert reverse("scheduling:roster", args=[slot.public_id]) in page


def test_reception_adds_a_patient_to_a_group_series_from_the_slot(clinic_a, reception_a, reception_client_a, dbt):
    slot = dbt["slots"][2]
    patient = PatientFactory(clinic=clinic_a, first_name="Nadia", last_name="Quist")
    url = reverse("scheduling:waitlist-add")
    found = reception_client_a.get(url, {"slot": slot.public_id, "q": "Quist"}).content.decode()
    assert "Quist, Nadia" in found
    form = reception_client_a.get(url, {"slot": slot.public_id, "patient": patient.public_id}).content.decode()
    assert "Any occurrence of this group" in form and "This slot only" in form
    response = reception_client_a.post(
        url,
        {"slot": slot.public_id, "patient": patient.public_id, "kind": "series_any", "note": "Referred by GP"},
    )
    entry = WaitlistEntry.objects.get()
    assert response.status_code == 302 and response.url == reverse("scheduling:waitlist-entry", args=[entry.public_id])
    assert (entry.kind, entry.allocation_id, entry.slot_type_id) == (
        WaitlistKind.SERIES,
        dbt["allocation"].pk,
        dbt["kind"].pk,
    )
    assert entry.added_by == reception_a.user and entry.note == "Referred by GP"
    again = reception_client_a.post(url, {"slot": slot.public_id, "patient": patient.public_id, "kind": "series_any"})
    assert again.status_code == 422 and "already on this waiting list" in again.content.decode()


def test_a_preference_needs_a_practitioner_or_type_and_times_in_order(clinic_a, reception_client_a, dbt):
    patient = PatientFactory(clinic=clinic_a)
    url = reverse("scheduling:waitlist-add")
    bad = reception_client_a.post(url, {"patient": patient.public_id, "kind": "preference"})
    assert bad.status_code == 422 and "Choose a practitioner, a type of appointment, or both." in bad.content.decode()
    late = reception_client_a.post(
        url,
        {
            "patient": patient.public_id,
            "kind": "preference",
            "practitioner": dbt["therapist"].public_id,
            "time_from": "17:00",
            "time_until": "09:00",
        },
    )
    assert late.status_code == 422 and "must come after" in late.content.decode()
    good = reception_client_a.post(
        url,
        {
            "patient": patient.public_id,
            "kind": "preference",
            "practitioner": dbt["therapist"].public_id,
            "weekdays": ["2", "4"],
            "time_from": "13:00",
        },
    )
    assert good.status_code == 302
    entry = WaitlistEntry.objects.get()
    assert (entry.weekdays, entry.time_from) == ("2,4", dt.time(13))


def test_the_list_is_in_offer_order_and_reception_moves_people_up(clinic_a, admin_a, reception_client_a, dbt):
    first, second, third = waiting(clinic_a, admin_a, dbt["slots"][2], 3)
    page = reception_client_a.get(reverse("scheduling:waitlist")).content.decode()
    assert page.index("Wait0") < page.index("Wait1") < page.index("Wait2")
    reception_client_a.post(reverse("scheduling:waitlist-entry", args=[third.public_id]), {"action": "up"})
    page = reception_client_a.get(reverse("scheduling:waitlist")).content.decode()
    assert page.index("Wait0") < page.index("Wait2") < page.index("Wait1")


def test_an_entry_offers_or_books_a_free_place_by_hand(clinic_a, admin_a, reception_client_a, dbt):
    WaitlistSettings.objects.create(clinic=clinic_a, offers_on=False)
    slot = dbt["slots"][2]
    first, second = waiting(clinic_a, admin_a, slot, 2)
    appointment_cancel(clinic=clinic_a, actor=None, appointment=slot.appointments.first(), reason="Away")
    url = reverse("scheduling:waitlist-entry", args=[second.public_id])
    page = reception_client_a.get(url).content.decode()
    assert "Free places that fit" in page and "1 free of 3" in page
    offered = reception_client_a.post(url, {"action": "offer", "slot": slot.public_id})
    assert offered.status_code == 302
    second.refresh_from_db()
    assert second.state == WaitlistState.OFFERED
    assert "waiting for an answer" in reception_client_a.get(url).content.decode()
    refused = reception_client_a.post(
        reverse("scheduling:waitlist-entry", args=[first.public_id]), {"action": "offer", "slot": slot.public_id}
    )
    assert refused.status_code == 422 and "just been taken" in refused.content.decode()
    booked = reception_client_a.post(url, {"action": "book", "slot": slot.public_id})
    assert booked.status_code == 302
    second.refresh_from_db()
    assert second.state == WaitlistState.BOOKED and second.appointment.source == AppointmentSource.WAITLIST


def test_removing_asks_first_and_withdraws_an_offer(
    clinic_a, admin_a, reception_client_a, dbt, django_capture_on_commit_callbacks
):
    slot = dbt["slots"][2]
    (entry,) = waiting(clinic_a, admin_a, slot, 1)
    with django_capture_on_commit_callbacks(execute=True):  # the offer run, nudged after the cancellation commits
        appointment_cancel(clinic=clinic_a, actor=None, appointment=slot.appointments.first(), reason="Away")
    entry.refresh_from_db()
    assert entry.state == WaitlistState.OFFERED
    url = reverse("scheduling:waitlist-remove", args=[entry.public_id])
    assert "it will be withdrawn" in reception_client_a.get(url).content.decode()
    assert reception_client_a.post(url).status_code == 302
    entry.refresh_from_db()
    slot.refresh_from_db()
    assert entry.state == WaitlistState.REMOVED and slot.held_count == 0


def test_the_rules_are_for_admins_and_checked(clinic_a, admin_client_a, reception_client_a):
    url = reverse("scheduling:waitlist-settings")
    assert reception_client_a.get(url).status_code == 403
    bad = admin_client_a.post(url, {"hold_minutes": "1", "shortest_hold_minutes": "30", "lead_minutes": "60"})
    assert bad.status_code == 422
    good = admin_client_a.post(
        url, {"offers_on": "on", "hold_minutes": "90", "shortest_hold_minutes": "20", "lead_minutes": "30"}
    )
    assert good.status_code == 302
    assert WaitlistSettings.objects.get(clinic=clinic_a).hold_minutes == 90


def test_clinicians_do_not_keep_the_waiting_list(clinic_a, dbt):
    clinician = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN))
    assert clinician.get(reverse("scheduling:waitlist")).status_code == 403
    assert clinician.get(reverse("scheduling:roster", args=[dbt["slots"][0].public_id])).status_code == 403


def test_the_roster_shows_who_comes_when_marks_attendance_and_exports(clinic_a, admin_a, reception_client_a, dbt):
    past, upcoming = dbt["slots"][1], dbt["slots"][2]
    waiting(clinic_a, admin_a, upcoming, 1)
    url = reverse("scheduling:roster", args=[upcoming.public_id])
    page = reception_client_a.get(url).content.decode()
    assert all(f"Member{i}" in page for i in range(3))
    assert "Wed 2 Jun" in page and "Wed 30 Jun" in page
    appointment = past.appointments.order_by("id").first()
    answer = reception_client_a.post(
        reverse("scheduling:roster-attendance", args=[upcoming.public_id]),
        {"appointment": appointment.public_id, "status": "did_not_attend"},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200 and 'id="roster-grid"' in answer.content.decode()
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.DID_NOT_ATTEND
    nonsense = reception_client_a.post(
        reverse("scheduling:roster-attendance", args=[upcoming.public_id]),
        {"appointment": appointment.public_id, "status": "completed"},
    )
    assert nonsense.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.DID_NOT_ATTEND
    table = reception_client_a.get(reverse("scheduling:roster-csv", args=[upcoming.public_id])).content.decode()
    lines = table.strip().splitlines()
    assert lines[0].startswith("Patient,2027-06-02 18:00,2027-06-09 18:00")
    assert any("Did not attend" in line for line in lines)
    assert lines[-1].startswith("Places booked,3/3")


def test_a_name_that_looks_like_a_formula_is_text_in_the_csv(clinic_a, reception_client_a, dbt):
    slot = dbt["slots"][3]
    appointment_cancel(clinic=clinic_a, actor=None, appointment=slot.appointments.first(), reason="Away")
    patient = PatientFactory(clinic=clinic_a, first_name="=HYPERLINK(1)", last_name="Evil")
    appointment_book(clinic=clinic_a, actor=None, membership=None, request=BookingRequest(slot=slot, patient=patient))
    table = reception_client_a.get(reverse("scheduling:roster-csv", args=[slot.public_id])).content.decode()
    assert "'=HYPERLINK(1) Evil" in table


@pytest.mark.parametrize("waiting_count", [2, 12])
def test_the_list_and_the_roster_read_a_bounded_number_of_queries(
    clinic_a, admin_a, reception_client_a, dbt, django_assert_max_num_queries, waiting_count
):
    waiting(clinic_a, admin_a, dbt["slots"][2], waiting_count)
    with django_assert_max_num_queries(12):
        reception_client_a.get(reverse("scheduling:waitlist"))
    with django_assert_max_num_queries(25):
        reception_client_a.get(reverse("scheduling:roster", args=[dbt["slots"][2].public_id]))


def test_the_list_reads_the_same_queries_at_two_sizes(
    clinic_a, admin_a, reception_client_a, dbt, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    slot = dbt["slots"][2]
    reception_client_a.get(reverse("scheduling:waitlist"))  # the session's first request reads a little more
    counts = []
    for more in (2, 20):
        waiting(clinic_a, admin_a, slot, more)
        for url in (reverse("scheduling:waitlist"), reverse("scheduling:roster", args=[slot.public_id])):
            with CaptureQueriesContext(connection) as seen:
                assert reception_client_a.get(url).status_code == 200
            counts.append(len(seen))
    assert counts[:2] == counts[2:]


def test_book_appointment_refuses_a_new_patient_in_an_enforced_closed_group_without_a_reason(
    clinic_a, admin_a, admin_client_a, dbt
):
    from scheduling.models import Session

    Session.objects.filter(allocation=dbt["allocation"]).update(closed_session=True, closed_enforced=True)
    slot = dbt["slots"][3]
    appointment_cancel(clinic=clinic_a, actor=None, appointment=slot.appointments.first(), reason="Away")
    newcomer = PatientFactory(clinic=clinic_a, first_name="New")
    url = reverse("scheduling:book", args=[slot.public_id])
    form = admin_client_a.get(url, {"patient": newcomer.public_id}).content.decode()
    assert "This group is closed: it began on Wed 2 Jun 2027" in form
    assert "Reason to add a new patient to this closed group" in form
    data = {"patient": newcomer.public_id, "slot_type": dbt["kind"].public_id, "coverage": "self", "action": "book"}
    refused = admin_client_a.post(url, data)
    assert refused.status_code == 422  # the reason is required on the form
    booked = admin_client_a.post(url, {**data, "closed_override": "Agreed with the therapist"})
    assert booked.status_code in (200, 204, 302), booked.content.decode()[-3000:]
    event = AuditEvent.objects.filter(action="appointment.booked").order_by("-id").first()
    assert event.detail["closed_override"] == "Agreed with the therapist"
    # Reception without the permission is told who can, and has no reason field.
    reception = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.RECEPTION))
    other = PatientFactory(clinic=clinic_a, first_name="Other")
    page = reception.get(reverse("scheduling:book", args=[dbt["slots"][4].public_id]), {"patient": other.public_id})
    text = page.content.decode()
    assert "Only a member with" in text and "Reason to add a new patient" not in text


def test_an_enforced_closed_group_that_has_begun_is_not_offered_online(clinic_a, dbt):
    from scheduling.models import Availability, Session
    from scheduling.selectors.booking import online_places

    evenings = {str(d): [["17:00", "21:00"]] for d in range(1, 8)}
    Availability.objects.create(
        clinic=clinic_a, practitioner=dbt["therapist"], time_zone="Europe/London", weekly=evenings
    )
    slot = dbt["slots"][3]
    appointment_cancel(clinic=clinic_a, actor=None, appointment=slot.appointments.first(), reason="Away")
    until = NOW + dt.timedelta(days=30)

    def offered() -> list:
        return [p.slot for p in online_places(clinic=clinic_a, slot_type=dbt["kind"], now=NOW, until=until)]

    dbt["kind"].online_bookable = True
    dbt["kind"].save()
    assert slot.public_id in offered()  # a warning-only closed session (or an open one) is offered
    Session.objects.filter(allocation=dbt["allocation"]).update(closed_session=True, closed_enforced=True)
    assert slot.public_id not in offered()


def test_the_list_says_when_a_place_freed_at_night_will_be_offered(
    clinic_a, admin_a, reception_a, dbt, django_capture_on_commit_callbacks
):
    slot = dbt["slots"][2]
    (entry,) = waiting(clinic_a, admin_a, slot, 1)
    with time_machine.travel(dt.datetime(2027, 6, 10, 22, tzinfo=dt.UTC), tick=False):  # 23:00 in London
        with django_capture_on_commit_callbacks(execute=True):
            appointment_cancel(clinic=clinic_a, actor=None, appointment=slot.appointments.first(), reason="Away")
        entry.refresh_from_db()
        assert entry.state == WaitlistState.WAITING
        answer = logged_in_client(reception_a).get(reverse("scheduling:waitlist"))  # signed in at night
        assert answer.status_code == 200, answer
        page = answer.content.decode()
    assert "1 freed place will be offered when quiet hours end" in page
