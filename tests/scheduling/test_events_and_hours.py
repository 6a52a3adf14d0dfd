"""Other events (timed and all-day), office hours and their greying, and who may set them."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from clinic.models import AuditEvent, Role
from scheduling.grid import TimeRange, off_hours
from scheduling.hours import hours_intervals
from scheduling.models import OfficeHours, OtherEvent
from tests.conftest import logged_in_client
from tests.factories import (
    LocationFactory,
    MembershipFactory,
    OtherEventFactory,
    PatientFactory,
    PractitionerFactory,
    allocate_session,
    book,
)

pytestmark = pytest.mark.django_db
CALENDAR = reverse("scheduling:calendar")
LONDON = ZoneInfo("Europe/London")


def event_post(who, **fields):
    data = {
        "kind": "other",
        "practitioner": str(who.public_id),
        "title": "Team meeting",
        "date": "2027-06-07",
        "start_time": "12:00",
        "end_time": "13:00",
        "show_as": "busy",
    }
    data.update(fields)
    return data


# Other events ----------------------------------------------------------------------------------------


def test_a_timed_event_is_stored_in_utc_from_the_viewers_clock(clinic_a, reception_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    reception_client_a.post(reverse("time-zone"), {"time_zone": "America/New_York"})
    response = reception_client_a.post(reverse("scheduling:event-new"), event_post(practitioner))
    assert response.status_code == 302
    event = OtherEvent.objects.get()
    assert event.starts_at == dt.datetime(2027, 6, 7, 16, tzinfo=dt.UTC)  # 12:00 EDT
    assert (event.all_day, event.busy, event.first_date) == (False, True, None)
    assert AuditEvent.objects.filter(action="event.created", object_id=str(event.public_id)).exists()
    body = reception_client_a.get(f"{CALENDAR}?view=day&date=2027-06-07").content.decode()
    assert "<b>12:00–13:00</b> Team meeting" in body


def test_an_all_day_event_sits_in_the_all_day_row_of_each_of_its_days(clinic_a, reception_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    response = reception_client_a.post(
        reverse("scheduling:event-new"),
        event_post(practitioner, title="Conference", all_day="on", last_date="2027-06-09", start_time="", end_time=""),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 204
    assert "calendar:changed" in response["HX-Trigger"]
    event = OtherEvent.objects.get()
    assert (event.first_date, event.last_date, event.starts_at) == (dt.date(2027, 6, 7), dt.date(2027, 6, 9), None)
    body = reception_client_a.get(f"{CALENDAR}?view=week&date=2027-06-07&tab={practitioner.public_id}").content.decode()
    assert body.count(">Conference</a>") == 3
    assert 'class="cal-grid ad1' in body


def client_post(practitioner, start="09:12", end="09:42", **fields):
    data = {"kind": "client", "practitioner": str(practitioner.public_id), "date": "2027-06-07"}
    return {**data, "start_time": start, "end_time": end, "title": "", "show_as": "busy", **fields}


def test_a_client_appointment_opens_booking_in_the_free_slot_at_that_time(clinic_a, reception_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Client")
    session = allocate_session(clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), start=dt.time(9))
    first, second, third = session.slots.order_by("starts_at")
    book(first, PatientFactory(clinic=clinic_a))  # 09:00 is taken: the first free place from 09:12 is 09:10
    url = reverse("scheduling:event-new")
    response = reception_client_a.post(url, client_post(practitioner, start="09:05"), headers={"HX-Request": "true"})
    assert response.status_code == 302
    assert response["Location"] == reverse("scheduling:book", args=[second.public_id])
    page = reception_client_a.get(response["Location"], headers={"HX-Request": "true"}).content.decode()
    assert "Find the patient" in page and "Dr Client" in page
    # On the form's own page (not the calendar's popup) the browser goes there, so its address is the step's.
    on_page = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{url}"}
    response = reception_client_a.post(url, client_post(practitioner, start="09:05"), headers=on_page)
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("scheduling:book", args=[second.public_id])
    # Without JavaScript the same: the form posts, the browser lands on Book Appointment.
    plain = reception_client_a.post(url, client_post(practitioner, start="09:25", end="09:26"), follow=True)
    assert plain.redirect_chain[-1][0] == reverse("scheduling:book", args=[third.public_id])
    assert "Find the patient" in plain.content.decode()
    assert not OtherEvent.objects.exists()  # a client appointment is never saved as an event


def test_a_client_appointment_where_no_slot_is_free_opens_create_new_slot(clinic_a, reception_client_a):
    home = LocationFactory(clinic=clinic_a, name="Harbour Clinic", time_zone="America/New_York")
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Travel", default_location=home)
    full = allocate_session(clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), start=dt.time(10)).slots
    for slot in full.all():
        book(slot, PatientFactory(clinic=clinic_a))
    # The viewer is in London; the practitioner's location runs on New York's clock (5 hours behind).
    response = reception_client_a.post(
        reverse("scheduling:event-new"), client_post(practitioner, start="15:05", end="15:35")
    )
    assert response.status_code == 302
    link = response["Location"]
    assert link.startswith(reverse("scheduling:slot-new") + "?")
    page = reception_client_a.get(link).content.decode()
    assert "There is no free slot at that time" in page
    assert re.search(rf'<option value="{practitioner.public_id}"[^>]*selected', page)
    assert re.search(rf'<option value="{home.public_id}"[^>]*selected', page)
    assert 'value="2027-06-07"' in page and 'value="10:05"' in page  # 15:05 in London is 10:05 in New York
    assert re.search(r'name="length_minutes" value="30"', page)


def test_a_client_appointment_needs_a_time_and_a_member_who_may_create_the_slot(clinic_a):
    membership = MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN)
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Own", user=membership.user)
    client = logged_in_client(membership)
    url = reverse("scheduling:event-new")
    # From the all-day row: no time, so nothing to book at.
    no_time = client.post(
        url, client_post(practitioner, start="", end="", all_day="on"), headers={"HX-Request": "true"}
    )
    assert no_time.status_code == 422 and "Give the time of the appointment." in no_time.content.decode()
    # No free slot, and creating one needs "Schedule Admin: Manage Appointments".
    refused = client.post(url, client_post(practitioner), headers={"HX-Request": "true"})
    assert refused.status_code == 422
    assert "Dr Own has no free slot at this time" in refused.content.decode()
    assert not OtherEvent.objects.exists()
    # Editing an event never turns it into a client appointment.
    event = OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Admin time")
    edit = client.post(reverse("scheduling:event-edit", args=[event.public_id]), client_post(practitioner, title="X"))
    assert edit.status_code == 302
    event.refresh_from_db()
    assert event.title == "X" and OtherEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"end_time": "11:00"}, "The end must be after the start."),
        ({"start_time": ""}, "Give a start time, or tick All day."),
        ({"title": ""}, "Give the event a title."),
        ({"all_day": "on", "last_date": "2027-06-01"}, "The last day is before the first."),
        ({"date": "2027-02-30"}, "Enter a valid date."),
        ({"practitioner": "00000000-0000-0000-0000-000000000000"}, "Select a valid choice."),
    ],
)
def test_bad_events_are_refused_with_a_message(clinic_a, reception_client_a, fields, message):
    practitioner = PractitionerFactory(clinic=clinic_a)
    response = reception_client_a.post(reverse("scheduling:event-new"), event_post(practitioner, **fields))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not OtherEvent.objects.exists()


def test_the_new_event_form_starts_at_the_clicked_time(clinic_a, reception_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    url = reverse("scheduling:event-new") + f"?practitioner={practitioner.public_id}&date=2027-06-07&start=10:15"
    body = reception_client_a.get(url).content.decode()
    assert 'value="10:15"' in body and 'value="10:45"' in body and 'value="2027-06-07"' in body
    assert f'value="{practitioner.public_id}" selected' in body
    garbage = reverse("scheduling:event-new") + "?date=nope&start=25:99&practitioner=x"
    assert reception_client_a.get(garbage).status_code == 200


def test_an_event_can_be_changed_and_deleted_after_confirmation(clinic_a, reception_client_a):
    event = OtherEventFactory(clinic=clinic_a, title="Old title")
    url = reverse("scheduling:event-edit", args=[event.public_id])
    assert "Old title" in reception_client_a.get(url).content.decode()
    reception_client_a.post(url, event_post(event.practitioner, title="New title", show_as="free"))
    event.refresh_from_db()
    assert (event.title, event.busy) == ("New title", False)
    delete = reverse("scheduling:event-delete", args=[event.public_id])
    assert "This cannot be undone." in reception_client_a.get(delete).content.decode()
    assert OtherEvent.objects.filter(pk=event.pk).exists()  # asking is not deleting
    reception_client_a.post(delete)
    assert not OtherEvent.objects.filter(pk=event.pk).exists()
    assert AuditEvent.objects.filter(action="event.deleted").count() == 1


def test_a_clinician_manages_only_their_own_events(clinic_a):
    membership = MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN)
    mine = PractitionerFactory(clinic=clinic_a, user=membership.user)
    theirs = PractitionerFactory(clinic=clinic_a)
    client = logged_in_client(membership)
    assert client.post(reverse("scheduling:event-new"), event_post(theirs)).status_code == 200  # not a choice
    assert not OtherEvent.objects.exists()
    assert client.post(reverse("scheduling:event-new"), event_post(mine)).status_code == 302
    other = OtherEventFactory(clinic=clinic_a, practitioner=theirs)
    assert client.get(reverse("scheduling:event-edit", args=[other.public_id])).status_code == 403
    assert client.post(reverse("scheduling:event-delete", args=[other.public_id])).status_code == 403
    assert OtherEvent.objects.filter(pk=other.pk).exists()


# Office hours --------------------------------------------------------------------------------------


def weekly_post(zone="Europe/London", **days):
    data = {"part": "weekly", "time_zone": zone}
    for day, ranges in days.items():
        data[f"{day}_start"] = [r[0] for r in ranges]
        data[f"{day}_end"] = [r[1] for r in ranges]
    return data


def test_office_hours_save_on_each_change_and_refuse_bad_ranges(clinic_a, reception_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    url = reverse("scheduling:office-hours-edit", args=[practitioner.public_id])
    assert "Set the days and times" in reception_client_a.get(url).content.decode()
    response = reception_client_a.post(
        url, weekly_post("America/Chicago", d1=[("09:00", "12:30"), ("13:30", "17:00")]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert "Saved automatically" in response.content.decode()
    assert "<html" not in response.content.decode()
    hours = OfficeHours.objects.get(practitioner=practitioner)
    assert hours.time_zone == "America/Chicago"
    assert hours.weekly == {"1": [["09:00", "12:30"], ["13:30", "17:00"]]}
    # Overlapping ranges, an end before its start, a half-filled range, an unknown zone: nothing saved.
    for bad, message in [
        (weekly_post(d2=[("09:00", "12:00"), ("11:00", "13:00")]), "Ranges overlap"),
        (weekly_post(d2=[("17:00", "09:00")]), "the end must be after the start"),
        (weekly_post(d2=[("09:00", "")]), "Give both a start and an end time."),
        (weekly_post("Nowhere/Special", d2=[("09:00", "17:00")]), "is not a known time zone"),
        (weekly_post(d2=[("9 o'clock", "17:00")]), "is not a time"),
    ]:
        response = reception_client_a.post(url, bad, headers={"HX-Request": "true"})
        assert response.status_code == 422
        assert message in response.content.decode()
        assert "Not saved" in response.content.decode()
    hours.refresh_from_db()
    assert hours.weekly == {"1": [["09:00", "12:30"], ["13:30", "17:00"]]}


def test_add_and_remove_buttons_change_the_ranges(clinic_a, reception_client_a):
    url = reverse("scheduling:office-hours-default")
    reception_client_a.post(url, {**weekly_post(d3=[("08:00", "12:00")]), "action": "add-3"})
    assert OfficeHours.objects.get(practitioner=None).weekly == {"3": [["08:00", "12:00"], ["13:00", "14:00"]]}
    reception_client_a.post(url, {**weekly_post(d3=[("08:00", "12:00"), ("13:00", "14:00")]), "action": "remove-3-0"})
    assert OfficeHours.objects.get(practitioner=None).weekly == {"3": [["13:00", "14:00"]]}
    response = reception_client_a.post(url, {**weekly_post(), "action": "remove-9-9"})  # stale button: harmless
    assert response.status_code == 200


def test_who_may_set_office_hours(clinic_a, reception_client_a):
    membership = MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN)
    mine = PractitionerFactory(clinic=clinic_a, user=membership.user)
    theirs = PractitionerFactory(clinic=clinic_a)
    clinician = logged_in_client(membership)
    assert clinician.get(reverse("scheduling:office-hours-edit", args=[mine.public_id])).status_code == 200
    assert clinician.get(reverse("scheduling:office-hours-edit", args=[theirs.public_id])).status_code == 403
    assert (
        clinician.post(reverse("scheduling:office-hours-default"), weekly_post(d1=[("09:00", "17:00")])).status_code
        == 403
    )
    assert not OfficeHours.objects.exists()
    listing = clinician.get(reverse("scheduling:office-hours")).content.decode()
    assert mine.name in listing and theirs.name not in listing and "Practice default" not in listing
    # Schedulers set the default and anyone's.
    assert reception_client_a.post(
        reverse("scheduling:office-hours-edit", args=[theirs.public_id]), weekly_post(d1=[("09:00", "17:00")])
    ).status_code in (200, 302)
    assert OfficeHours.objects.filter(practitioner=theirs).exists()


def test_removing_own_hours_falls_back_to_the_practice_default(clinic_a, reception_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    url = reverse("scheduling:office-hours-edit", args=[practitioner.public_id])
    reception_client_a.post(url, weekly_post(d1=[("09:00", "17:00")]))
    response = reception_client_a.post(url, {"action": "clear"})
    assert response.status_code == 302
    assert not OfficeHours.objects.filter(practitioner=practitioner).exists()


def greyed(body, date):
    """The greyed bands of the column of `date` as (first row, rows)."""
    column = body[body.index(f'class="cal-col ev0" data-date="{date}"') :]
    column = column[: column.index("</div>")]
    return [(int(a), int(b)) for a, b in re.findall(r'class="off r(\d+) h(\d+)"', column)]


def test_time_outside_office_hours_is_greyed(clinic_a, admin_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    OfficeHours.objects.create(
        clinic=clinic_a, practitioner=None, time_zone="Europe/London", weekly={"1": [["09:00", "17:00"]]}
    )
    own = PractitionerFactory(clinic=clinic_a)
    OfficeHours.objects.create(
        clinic=clinic_a, practitioner=own, time_zone="Europe/London", weekly={"1": [["10:00", "12:00"]]}
    )
    url = f"{CALENDAR}?view=day&date=2027-06-07&tab="
    # The visible day is 07:00-19:00 in 5-minute rows: 07:00-09:00 is rows 1-24, 17:00-19:00 rows 121-144.
    assert greyed(admin_client_a.get(url + str(practitioner.public_id)).content.decode(), "2027-06-07") == [
        (1, 24),
        (121, 24),
    ]
    assert greyed(admin_client_a.get(url + str(own.public_id)).content.decode(), "2027-06-07") == [(1, 36), (61, 84)]
    # Tuesday has no hours: the whole day is greyed.
    tuesday = admin_client_a.get(f"{CALENDAR}?view=day&date=2027-06-08&tab={practitioner.public_id}").content.decode()
    assert greyed(tuesday, "2027-06-08") == [(1, 144)]


def test_without_any_office_hours_nothing_is_greyed(clinic_a, admin_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    body = admin_client_a.get(f"{CALENDAR}?view=day&date=2027-06-07&tab={practitioner.public_id}").content.decode()
    assert greyed(body, "2027-06-07") == []


@pytest.mark.parametrize(("date", "hours_in_view"), [(dt.date(2027, 3, 28), 9), (dt.date(2027, 10, 31), 9)])
def test_office_hours_keep_their_wall_clock_on_dst_days(date, hours_in_view):
    """09:00-18:00 London on the Sundays the clocks change: still 09:00-18:00 on the London grid."""
    intervals = hours_intervals(weekly={7: [(dt.time(9), dt.time(18))]}, zone=LONDON, first_date=date, last_date=date)
    assert [(s.astimezone(LONDON).time(), e.astimezone(LONDON).time()) for s, e in intervals] == [
        (dt.time(9), dt.time(18))
    ]
    bands = off_hours(column_date=date, hours=intervals, zone=LONDON, time_range=TimeRange(7 * 60, 19 * 60))
    assert [(b.row, b.span) for b in bands] == [(1, 24), (133, 12)]
    assert (intervals[0][1] - intervals[0][0]) == dt.timedelta(hours=hours_in_view)
