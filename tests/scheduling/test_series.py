"""Recurring series: Recurrence Settings, Preview Recurrence with Remove, the Review gate and continue anyway,
atomic booking, drafts placed from Edit Appointment and from the patient's appointments, and series cancels."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.models import AuditEvent
from scheduling.models import Appointment, AppointmentStatus, DraftOccurrence, Series, Slot
from tests.factories import (
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_rota,
    book,
)

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")
MONDAY = dt.date(2027, 3, 1)  # Europe/London moves its clocks on Sunday 28 March 2027


def slot_at(practitioner, day, hour=18):
    moment = dt.datetime.combine(day, dt.time(hour), tzinfo=LONDON)
    return Slot.objects.get(session__practitioner=practitioner, starts_at=moment)


def key(day, hour=18):
    return dt.datetime.combine(day, dt.time(hour), tzinfo=LONDON).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


@pytest.fixture
def group(clinic_a):
    return SlotTypeFactory(clinic=clinic_a, name="DBT skills group", capacity=8, default_length_minutes=60)


@pytest.fixture
def therapist(clinic_a):
    return PractitionerFactory(clinic=clinic_a, name="Dr Group")


@pytest.fixture
def rota(clinic_a, therapist, group):
    """Mon, Wed and Fri 18:00 groups for two weeks, except Wednesday 10 March (no session that day)."""
    allocate_rota(clinic_a, therapist, group, MONDAY, dt.date(2027, 3, 8))
    allocate_rota(clinic_a, therapist, group, dt.date(2027, 3, 12), dt.date(2027, 3, 12), weekdays=())
    return slot_at(therapist, MONDAY)


def form(patient, group, action, **changes):
    data = {
        "patient": str(patient.public_id),
        "coverage": "self",
        "slot_type": str(group.public_id),
        "action": action,
        "r-frequency": "weekly",
        "r-interval": "1",
        "r-weekdays": ["1", "3", "5"],
        "r-monthly_by": "day",
        "r-ends": "count",
        "r-count": "6",
    }
    data.update(changes)
    return data


def post(client, slot, data, **kwargs):
    return client.post(reverse("scheduling:series-new", args=[slot.public_id]), data, **kwargs)


def taken(response):
    return [f"{c.key}={c.match.slot.public_id}" for c in response.context["cards"] if c.match.bookable]


def test_create_recurring_series_is_offered_in_the_booking_form(clinic_a, reception_client_a, rota, group):
    patient = PatientFactory(clinic=clinic_a)
    page = reception_client_a.get(reverse("scheduling:book", args=[rota.public_id]), {"patient": patient.public_id})
    assert "Create Recurring Series" in page.content.decode()
    settings = post(reception_client_a, rota, form(patient, group, "settings"))
    text = settings.content.decode()
    assert settings.status_code == 200
    assert "Recurrence Settings" in text and "Preview Recurrence" in text and "End after a number of sessions" in text
    # The settings start from the slot: weekly on its own weekday.
    assert settings.context["recurrence"]["weekdays"].value() == [1]
    assert not Appointment.objects.exists()


def test_preview_remove_review_and_book_a_monday_wednesday_friday_series(
    clinic_a, reception_client_a, rota, group, therapist
):
    patient = PatientFactory(clinic=clinic_a, first_name="Rosa", last_name="Vale")
    preview = post(reception_client_a, rota, form(patient, group, "preview"))
    assert preview.status_code == 200
    cards = preview.context["cards"]
    wanted = [dt.date(2027, 3, d) for d in (1, 3, 5, 8, 10, 12)]
    assert [c.match.starts_at.astimezone(LONDON).date() for c in cards] == wanted
    assert [c.match.bookable for c in cards] == [True, True, True, True, False, True]
    text = preview.content.decode()
    assert "No session at this time" in text and text.count('aria-label="Warning"') >= 2
    assert 'value="review" disabled' in text and "Continue anyway" in text  # Review is inactive
    # Remove the Wednesday without a session: Review becomes active.
    removed = post(reception_client_a, rota, form(patient, group, f"remove:{key(dt.date(2027, 3, 10))}"))
    assert len(removed.context["cards"]) == 5 and removed.context["unmatched"] == 0
    text = removed.content.decode()
    assert 'value="review" disabled' not in text and "1 occurrence removed" in text
    keep = {"removed": [key(dt.date(2027, 3, 10))]}
    review = post(reception_client_a, rota, form(patient, group, "review", **keep))
    text = review.content.decode()
    assert "Review Recurring Series" in text and "Book Appointment" in text
    assert "Every week on Monday, Wednesday and Friday at 18:00" in text and "5 appointments" in text
    assert not Appointment.objects.exists()
    booked = post(reception_client_a, rota, form(patient, group, "book", taken=taken(review), **keep))
    assert booked.status_code == 302
    series = Series.objects.get()
    assert (series.patient, series.practitioner, series.slot_type) == (patient, therapist, group)
    assert series.rule.weekdays == (1, 3, 5) and series.rule.count == 6 and series.time_zone == "Europe/London"
    appointments = list(series.appointments.order_by("starts_at"))
    assert [a.starts_at.astimezone(LONDON).date().day for a in appointments] == [1, 3, 5, 8, 12]
    assert all(a.patient == patient and a.self_pay and a.status == AppointmentStatus.BOOKED for a in appointments)
    assert not DraftOccurrence.objects.exists()
    assert all(a.slot.booked_count == 1 for a in appointments)
    assert AuditEvent.objects.filter(action="series.booked").count() == 1


def test_continue_anyway_books_the_matched_and_saves_the_rest_as_drafts(clinic_a, reception_client_a, rota, group):
    patient = PatientFactory(clinic=clinic_a)
    review = post(reception_client_a, rota, form(patient, group, "continue"))
    text = review.content.decode()
    assert "Review Recurring Series" in text and "saved as a draft" in text
    assert review.context["matched"] == 5 and review.context["unmatched"] == 1
    booked = post(
        reception_client_a,
        rota,
        form(patient, group, "book", drafts="1", taken=taken(review)),
        headers={"HX-Request": "true"},
    )
    assert booked.status_code == 204 and "1 saved as draft" in booked["HX-Trigger"]
    series = Series.objects.get()
    assert series.appointments.count() == 5
    draft = series.drafts.get()
    assert draft.starts_at == dt.datetime(2027, 3, 10, 18, tzinfo=LONDON) and draft.is_open
    # The patient's appointments list shows the series and the draft.
    listing = reception_client_a.get(reverse("scheduling:patient-appointments", args=[patient.public_id]))
    text = listing.content.decode()
    assert "Drafts to place" in text and "↻ series draft" in text and text.count("↻ series</span>") == 5
    assert reverse("scheduling:draft", args=[draft.public_id]) in text


def test_booking_without_continue_anyway_refuses_a_plan_with_drafts(clinic_a, reception_client_a, rota, group):
    patient = PatientFactory(clinic=clinic_a)
    review = post(reception_client_a, rota, form(patient, group, "review"))
    assert review.context["step"] == "preview"  # the gate holds even when Review is posted by hand
    response = post(reception_client_a, rota, form(patient, group, "book"))
    assert response.status_code == 422 and response.context["step"] == "preview"
    assert "remove them or continue anyway" in response.content.decode()
    assert not Series.objects.exists() and not Appointment.objects.exists()


def test_a_place_taken_meanwhile_books_nothing_and_names_the_card(clinic_a, reception_client_a, rota, group, therapist):
    patient = PatientFactory(clinic=clinic_a)
    changes = {"r-count": "3", "r-weekdays": ["1", "3", "5"]}
    review = post(reception_client_a, rota, form(patient, group, "review", **changes))
    assert review.context["matched"] == 3
    wednesday = slot_at(therapist, dt.date(2027, 3, 3))
    for other in PatientFactory.create_batch(8, clinic=clinic_a):  # the group fills up meanwhile
        book(wednesday, other)
    response = post(reception_client_a, rota, form(patient, group, "book", taken=taken(review), **changes))
    text = response.content.decode()
    assert response.status_code == 422
    assert "Wed 3 Mar 2027, 18:00: This group is full (8 places). Nothing of the series was booked." in text
    failed = [c for c in response.context["cards"] if c.failed]
    assert [c.key for c in failed] == [key(dt.date(2027, 3, 3))] and "taken meanwhile" in text
    assert not Series.objects.exists()
    assert not Appointment.objects.filter(patient=patient).exists()
    assert slot_at(therapist, MONDAY).booked_count == 0


def test_a_tampered_plan_is_refused(clinic_a, reception_client_a, rota, group):
    patient = PatientFactory(clinic=clinic_a)
    elsewhere = PractitionerFactory(clinic=clinic_a)
    allocate_rota(clinic_a, elsewhere, group, MONDAY, MONDAY, weekdays=())
    foreign = slot_at(elsewhere, MONDAY)
    changes = {"r-count": "1", "taken": [f"{key(MONDAY)}={foreign.public_id}"]}
    response = post(reception_client_a, rota, form(patient, group, "book", **changes))
    assert "The preview is out of date" in response.content.decode()
    bad = post(reception_client_a, rota, form(patient, group, "book", **{"r-count": "1", "taken": ["x=not-a-uuid"]}))
    assert bad.status_code == 422 and not Appointment.objects.exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"r-weekdays": []}, "Choose at least one weekday."),
        ({"r-count": ""}, "How many sessions?"),
        ({"r-count": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"r-ends": "until", "r-until": ""}, "Choose the last date."),
        ({"r-ends": "until", "r-until": "2027-02-01"}, "The end date is before the first date."),
        ({"r-ends": "until", "r-until": "2035-01-01"}, "more than 366 sessions"),
        ({"r-frequency": "hourly"}, "Select a valid choice."),
        ({"r-interval": "abc"}, "Enter a whole number."),
        ({"r-frequency": "monthly", "r-monthly_by": "day", "r-month_day": ""}, "Choose the day of the month."),
        ({"r-frequency": "monthly", "r-monthly_by": "weekday", "r-nth": "9"}, "Select a valid choice."),
    ],
)
def test_bad_settings_get_a_message_and_write_nothing(clinic_a, reception_client_a, rota, group, changes, message):
    patient = PatientFactory(clinic=clinic_a)
    response = post(reception_client_a, rota, form(patient, group, "preview", **changes))
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Series.objects.exists()


def test_a_weekly_1800_series_stays_at_1800_local_across_the_clock_change(
    clinic_a, reception_client_a, group, therapist
):
    allocate_rota(clinic_a, therapist, group, dt.date(2027, 3, 22), dt.date(2027, 4, 5), weekdays=(1,))
    first = slot_at(therapist, dt.date(2027, 3, 22))
    patient = PatientFactory(clinic=clinic_a)
    changes = {"r-weekdays": ["1"], "r-count": "3"}
    review = post(reception_client_a, first, form(patient, group, "review", **changes))
    cards = review.context["cards"]
    assert all(c.match.bookable for c in cards)
    assert [c.match.starts_at.astimezone(dt.UTC).hour for c in cards] == [18, 17, 17]  # GMT, then BST
    assert {c.match.starts_at.astimezone(LONDON).time() for c in cards} == {dt.time(18)}
    post(reception_client_a, first, form(patient, group, "book", taken=taken(review), **changes))
    assert [a.starts_at.astimezone(LONDON).hour for a in Appointment.objects.all()] == [18, 18, 18]


def test_a_monthly_series_on_the_31st_says_which_months_are_skipped(clinic_a, reception_client_a, group, therapist):
    allocate_rota(clinic_a, therapist, group, dt.date(2027, 1, 31), dt.date(2027, 1, 31), weekdays=())
    first = slot_at(therapist, dt.date(2027, 1, 31))
    patient = PatientFactory(clinic=clinic_a)
    changes = {"r-frequency": "monthly", "r-monthly_by": "day", "r-month_day": "31", "r-count": "3"}
    preview = post(reception_client_a, first, form(patient, group, "preview", **changes))
    days = [c.match.starts_at.astimezone(LONDON).date() for c in preview.context["cards"]]
    assert days == [dt.date(2027, 1, 31), dt.date(2027, 3, 31), dt.date(2027, 5, 31)]
    assert "No day 31 in Feb 2027, Apr 2027: those months are skipped." in preview.content.decode()


def test_the_nth_weekday_of_the_month(clinic_a, reception_client_a, group, therapist):
    allocate_rota(clinic_a, therapist, group, MONDAY, MONDAY, weekdays=())
    first = slot_at(therapist, MONDAY)
    patient = PatientFactory(clinic=clinic_a)
    changes = {"r-frequency": "monthly", "r-monthly_by": "weekday", "r-nth": "-1", "r-nth_weekday": "1"}
    preview = post(reception_client_a, first, form(patient, group, "preview", **{**changes, "r-count": "2"}))
    days = [c.match.starts_at.astimezone(LONDON).date() for c in preview.context["cards"]]
    assert days == [dt.date(2027, 3, 29), dt.date(2027, 4, 26)]  # the last Monday of each month
    assert "on the last Monday" in preview.content.decode()


# Drafts ---------------------------------------------------------------------------------------------------


@pytest.fixture
def with_draft(clinic_a, reception_client_a, rota, group):
    patient = PatientFactory(clinic=clinic_a)
    review = post(reception_client_a, rota, form(patient, group, "continue"))
    post(reception_client_a, rota, form(patient, group, "book", drafts="1", taken=taken(review)))
    series = Series.objects.get()
    return series, series.drafts.get()


def test_a_draft_is_placed_from_edit_appointment(clinic_a, reception_client_a, group, therapist, with_draft):
    series, draft = with_draft
    allocate_rota(clinic_a, therapist, group, dt.date(2027, 3, 11), dt.date(2027, 3, 11), weekdays=())
    thursday = slot_at(therapist, dt.date(2027, 3, 11))
    member = series.appointments.first()
    edit = reception_client_a.get(reverse("scheduling:appointment-reschedule", args=[member.public_id]))
    text = edit.content.decode()
    assert "Edit Appointment" in text and "Draft occurrences of this series" in text and "Wed 10 Mar 2027" in text
    url = reverse("scheduling:draft", args=[draft.public_id])
    assert url in text
    on_wednesday = reception_client_a.get(url, {"date": "2027-03-10"})
    assert "has no free DBT skills group slot on Wed 10 Mar 2027" in on_wednesday.content.decode()
    on_thursday = reception_client_a.get(url, {"date": "2027-03-11"})
    assert on_thursday.context["slots"] == [thursday] and "Use this slot" in on_thursday.content.decode()
    review = reception_client_a.post(url, {"action": "use", "slot": str(thursday.public_id)})
    assert "Confirm edits" in review.content.decode() and not Appointment.objects.filter(slot=thursday).exists()
    confirmed = reception_client_a.post(url, {"action": "confirm", "slot": str(thursday.public_id)})
    assert confirmed.status_code == 302
    draft.refresh_from_db()
    placed = draft.appointment
    assert placed is not None and placed.slot == thursday and placed.series == series
    assert placed.patient == series.patient and placed.self_pay
    assert not draft.is_open and series.appointments.count() == 6
    # A placed draft cannot be placed twice.
    again = reception_client_a.post(url, {"action": "confirm", "slot": str(thursday.public_id)})
    assert "already been placed or cancelled" in again.content.decode() and series.appointments.count() == 6


def test_a_draft_is_placed_from_the_patients_quickview(clinic_a, reception_client_a, group, therapist, with_draft):
    series, draft = with_draft
    patient = series.patient
    quickview = reception_client_a.get(reverse("patients:quickview", args=[patient.public_id])).content.decode()
    assert reverse("scheduling:patient-appointments", args=[patient.public_id]) in quickview
    listing = reception_client_a.get(reverse("scheduling:patient-appointments", args=[patient.public_id]))
    text = listing.content.decode()
    member = series.appointments.first()
    # The action menu of each appointment leads to Edit Appointment, which lists the drafts.
    assert reverse("scheduling:appointment-reschedule", args=[member.public_id]) in text
    assert "Edit Appointment (series drafts)" in text
    url = reverse("scheduling:draft", args=[draft.public_id])
    assert url in text
    allocate_rota(clinic_a, therapist, group, dt.date(2027, 3, 17), dt.date(2027, 3, 17), weekdays=())
    later = slot_at(therapist, dt.date(2027, 3, 17))
    reception_client_a.post(url, {"action": "use", "slot": str(later.public_id)})
    reception_client_a.post(url, {"action": "confirm", "slot": str(later.public_id)})
    draft.refresh_from_db()
    assert draft.appointment.slot == later
    text = reception_client_a.get(reverse("scheduling:patient-appointments", args=[patient.public_id])).content.decode()
    assert "Drafts to place" not in text


def test_a_slot_of_another_type_cannot_take_a_draft(clinic_a, reception_client_a, therapist, with_draft):
    _, draft = with_draft
    other_type = SlotTypeFactory(clinic=clinic_a, capacity=4)
    allocate_rota(clinic_a, therapist, other_type, dt.date(2027, 3, 18), dt.date(2027, 3, 18), weekdays=())
    wrong = slot_at(therapist, dt.date(2027, 3, 18))
    url = reverse("scheduling:draft", args=[draft.public_id])
    response = reception_client_a.post(url, {"action": "confirm", "slot": str(wrong.public_id)})
    assert response.status_code == 422 and "the appointment type of the series" in response.content.decode()
    missing = reception_client_a.post(url, {"action": "use", "slot": "nonsense"})
    assert missing.status_code == 422 and "Choose a slot" in missing.content.decode()
    draft.refresh_from_db()
    assert draft.is_open


def test_a_draft_can_be_cancelled_after_confirmation(clinic_a, reception_client_a, with_draft):
    _, draft = with_draft
    url = reverse("scheduling:draft", args=[draft.public_id])
    ask = reception_client_a.post(url, {"action": "cancel-ask"})
    assert "Cancel this draft?" in ask.content.decode()
    draft.refresh_from_db()
    assert draft.is_open
    reception_client_a.post(url, {"action": "cancel"})
    draft.refresh_from_db()
    assert draft.cancelled_at is not None and not draft.is_open


# Series operations -------------------------------------------------------------------------------------------


def cancel(client, appointment, scope):
    url = reverse("scheduling:appointment-cancel", args=[appointment.public_id])
    return client.post(url, {"scope": scope, "reason": "Patient moved away"})


def test_cancel_this_occurrence_only(clinic_a, reception_client_a, with_draft):
    series, draft = with_draft
    members = list(series.appointments.order_by("starts_at"))
    page = reception_client_a.get(reverse("scheduling:appointment-cancel", args=[members[1].public_id]))
    assert "This and the following ones" in page.content.decode()
    cancel(reception_client_a, members[1], "this")
    statuses = [a.status for a in series.appointments.order_by("starts_at")]
    assert statuses.count(AppointmentStatus.CANCELLED) == 1 and statuses[1] == AppointmentStatus.CANCELLED
    draft.refresh_from_db()
    assert draft.is_open


def test_cancel_this_and_the_following_ones(clinic_a, reception_client_a, with_draft):
    series, draft = with_draft
    members = list(series.appointments.order_by("starts_at"))  # 1, 3, 5, 8 and 12 March; the draft is the 10th
    response = cancel(reception_client_a, members[3], "following")
    assert response.status_code == 302
    statuses = [a.status for a in series.appointments.order_by("starts_at")]
    assert statuses == ["booked", "booked", "booked", "cancelled", "cancelled"]
    draft.refresh_from_db()
    assert draft.cancelled_at is not None
    assert all(a.slot.booked_count == 0 for a in series.appointments.filter(status="cancelled"))


def test_cancel_the_whole_series_keeps_what_has_begun(clinic_a, reception_client_a, with_draft):
    series, draft = with_draft
    members = list(series.appointments.order_by("starts_at"))
    Appointment.objects.filter(pk=members[0].pk).update(status=AppointmentStatus.ARRIVED)
    response = cancel(reception_client_a, members[2], "all")
    assert response.status_code == 302
    statuses = [a.status for a in series.appointments.order_by("starts_at")]
    assert statuses == ["arrived", "cancelled", "cancelled", "cancelled", "cancelled"]
    series.refresh_from_db()
    draft.refresh_from_db()
    assert series.cancelled_at is not None and draft.cancelled_at is not None


def test_a_cancel_of_the_series_needs_a_reason_and_a_scope(clinic_a, reception_client_a, with_draft):
    series, _ = with_draft
    member = series.appointments.first()
    url = reverse("scheduling:appointment-cancel", args=[member.public_id])
    assert reception_client_a.post(url, {"scope": "all", "reason": " "}).status_code == 422
    assert reception_client_a.post(url, {"scope": "everything", "reason": "x"}).status_code == 422
    assert not Appointment.objects.filter(status="cancelled").exists()


def test_a_rescheduled_occurrence_stays_in_its_series(clinic_a, reception_client_a, group, therapist, with_draft):
    series, _ = with_draft
    member = series.appointments.order_by("starts_at").first()
    allocate_rota(clinic_a, therapist, group, dt.date(2027, 3, 2), dt.date(2027, 3, 2), weekdays=())
    tuesday = slot_at(therapist, dt.date(2027, 3, 2))
    reception_client_a.post(
        reverse("scheduling:appointment-reschedule", args=[member.public_id]), {"slot": str(tuesday.public_id)}
    )
    moved = Appointment.objects.get(slot=tuesday)
    assert moved.series == series and moved.rescheduled_from == member


# Permissions and tenancy -------------------------------------------------------------------------------


def test_a_blocked_patient_needs_the_permission(clinic_a, reception_client_a, admin_client_a, rota, group):
    patient = PatientFactory(clinic=clinic_a, is_blocked=True, blocked_reason="Staff member")
    assert post(reception_client_a, rota, form(patient, group, "preview")).status_code == 404
    review = post(admin_client_a, rota, form(patient, group, "continue"))
    assert review.status_code == 200
    post(admin_client_a, rota, form(patient, group, "book", drafts="1", taken=taken(review)))
    draft = Series.objects.get().drafts.get()
    assert reception_client_a.get(reverse("scheduling:draft", args=[draft.public_id])).status_code == 404
    assert admin_client_a.get(reverse("scheduling:draft", args=[draft.public_id])).status_code == 200


def test_another_clinics_patient_slot_and_draft_are_404(clinic_a, outsider_client, outsider_b, rota, group, with_draft):
    _, draft = with_draft
    theirs = PatientFactory(clinic=outsider_b.clinic)
    assert post(outsider_client, rota, form(theirs, group, "preview")).status_code == 404
    assert outsider_client.get(reverse("scheduling:draft", args=[draft.public_id])).status_code == 404
    assert (
        outsider_client.post(reverse("scheduling:draft", args=[draft.public_id]), {"action": "cancel"}).status_code
        == 404
    )
    draft.refresh_from_db()
    assert draft.is_open


def test_the_preview_query_count_does_not_grow_with_the_occurrences(
    clinic_a, reception_client_a, group, therapist, django_assert_num_queries
):
    allocate_rota(clinic_a, therapist, group, MONDAY, MONDAY + dt.timedelta(weeks=52), weekdays=(1, 3, 5))
    patient = PatientFactory(clinic=clinic_a)
    first = slot_at(therapist, MONDAY)
    post(reception_client_a, first, form(patient, group, "settings"))  # the session's first request is dearer
    counts = []
    for count in ("6", "156"):
        with CaptureQueriesContext(connection) as queries:
            response = post(reception_client_a, first, form(patient, group, "preview", **{"r-count": count}))
        assert len(response.context["cards"]) == int(count)
        assert all(c.match.bookable for c in response.context["cards"])
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 16
    with django_assert_num_queries(counts[0]):
        post(reception_client_a, first, form(patient, group, "preview", **{"r-count": "60"}))


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_lists_of_series_and_drafts_cost_the_same_queries_at_two_sizes(clinic_a, reception_client_a, group, therapist):
    """The patient's appointments and Edit Appointment, with a small and a large series (and their drafts)."""
    counts = []
    for weeks in (2, 12):
        patient = PatientFactory(clinic=clinic_a)
        first_day = MONDAY + dt.timedelta(weeks=20 * len(counts))
        allocate_rota(clinic_a, therapist, group, first_day, first_day + dt.timedelta(weeks=weeks), weekdays=(1,))
        first = slot_at(therapist, first_day)
        changes = {"r-weekdays": ["1", "3"], "r-count": str(2 * weeks)}
        review = post(reception_client_a, first, form(patient, group, "continue", **changes))
        post(reception_client_a, first, form(patient, group, "book", drafts="1", taken=taken(review), **changes))
        series = Series.objects.get(patient=patient)
        assert series.appointments.count() == weeks and series.drafts.count() == weeks
        member = series.appointments.first()
        counts.append(
            (
                count_queries(reception_client_a, reverse("scheduling:patient-appointments", args=[patient.public_id])),
                count_queries(
                    reception_client_a, reverse("scheduling:appointment-reschedule", args=[member.public_id])
                ),
                count_queries(reception_client_a, reverse("scheduling:appointment", args=[member.public_id])),
            )
        )
    assert counts[0] == counts[1], counts


def test_the_series_preview_names_the_dates_where_its_time_falls_in_a_jump_or_repeats(
    clinic_a, reception_client_a, group, therapist
):
    # A late-night Sunday group at 01:30, weekly from 21 March 2027 (UK clocks go forward on the 28th).
    allocate_rota(
        clinic_a, therapist, group, dt.date(2027, 3, 21), dt.date(2027, 3, 21), weekdays=(), start=dt.time(1, 30)
    )
    first = Slot.objects.get(session__practitioner=therapist, session__date=dt.date(2027, 3, 21))
    patient = PatientFactory(clinic=clinic_a)
    changes = {"r-weekdays": ["7"], "r-count": "3"}
    preview = post(reception_client_a, first, form(patient, group, "preview", **changes)).content.decode()
    assert "The clocks change on 1 of these dates (Europe/London):" in preview
    assert "Sun 28 Mar 2027: 01:30 does not exist (the clocks go forward), so it starts at 02:30 BST." in preview
    # Removing that occurrence removes its note.
    spring = dt.datetime(2027, 3, 28, 1, 30, tzinfo=dt.UTC)  # 01:30 read as GMT: the occurrence's instant
    removed = form(patient, group, "remove:" + spring.strftime("%Y%m%dT%H%M%SZ"), **changes)
    assert "The clocks change" not in post(reception_client_a, first, removed).content.decode()
