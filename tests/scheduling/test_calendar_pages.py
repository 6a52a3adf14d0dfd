"""The calendar pages: navigation and URLs, tabs and filters, time zones across DST, what a slot shows."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from clinic.models import AuditEvent, Role
from scheduling.grid import CalendarQuery, parse_query
from scheduling.grid_html import drawn
from scheduling.models import CalendarPreference
from tests.conftest import logged_in_client
from tests.factories import (
    LocationFactory,
    MembershipFactory,
    OtherEventFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    book,
)

pytestmark = pytest.mark.django_db
CALENDAR = reverse("scheduling:calendar")


def in_zone(client, zone):
    assert client.post(reverse("time-zone"), {"time_zone": zone}).status_code == 204
    return client


def slot_times(body):
    """The start times printed on the slots of a grid (as calendar.js draws them), in order."""
    return re.findall(r'class="slot[^"]*"[^>]*><b>(\d\d:\d\d)</b>', drawn(body))


# Navigation and URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("view", "date", "previous", "following", "title"),
    [
        ("day", "2027-03-01", "2027-02-28", "2027-03-02", "Monday 1 March 2027"),
        ("week", "2027-03-03", "2027-02-24", "2027-03-10", "1 – 7 March 2027"),
        ("week", "2027-03-31", "2027-03-24", "2027-04-07", "29 Mar – 4 Apr 2027"),
        ("month", "2027-01-31", "2026-12-01", "2027-02-01", "January 2027"),
    ],
)
def test_each_view_moves_by_its_own_period_and_names_it(view, date, previous, following, title):
    query, problems = parse_query({"view": view, "date": date}, {}, today=dt.date(2027, 1, 1))
    assert problems == []
    assert query.shifted(-1).isoformat() == previous
    assert query.shifted(1).isoformat() == following
    assert query.title == title


def test_the_week_runs_monday_to_sunday_and_the_month_covers_whole_weeks():
    week = CalendarQuery("week", dt.date(2027, 3, 3))
    assert (week.first_date, week.last_date) == (dt.date(2027, 3, 1), dt.date(2027, 3, 7))
    month = CalendarQuery("month", dt.date(2027, 2, 14))
    assert month.first_date == dt.date(2027, 2, 1)  # a Monday
    assert month.last_date == dt.date(2027, 2, 28)  # a Sunday
    assert month.first_date.weekday() == 0 and month.last_date.weekday() == 6


def test_the_page_links_keep_view_date_tab_and_filters(clinic_a, admin_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    url = f"{CALENDAR}?view=day&date=2027-03-01&tab={practitioner.public_id}&p={practitioner.public_id}"
    body = admin_client_a.get(url).content.decode()
    tab_and_filter = f"tab={practitioner.public_id}&amp;p={practitioner.public_id}"
    assert f'href="{CALENDAR}?view=day&amp;date=2027-02-28&amp;{tab_and_filter}"' in body  # previous
    assert f'href="{CALENDAR}?view=day&amp;date=2027-03-02&amp;{tab_and_filter}"' in body  # next
    assert f'href="{CALENDAR}?view=week&amp;date=2027-03-01&amp;{tab_and_filter}"' not in body  # views: a select
    assert 'value="week"' in body and 'value="month"' in body


def test_an_htmx_request_gets_only_the_calendar_and_a_history_restore_the_whole_page(clinic_a, admin_client_a):
    url = f"{CALENDAR}?view=week&date=2027-03-01"
    fragment = admin_client_a.get(url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    text = fragment.content.decode()
    assert text.lstrip().startswith('<div id="calendar"') and "<html" not in text
    assert "HX-Request" in fragment["Vary"]
    restored = admin_client_a.get(url, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restored.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("view=year", "That calendar view does not exist"),
        ("date=2027-02-30", "That date was not understood"),
        ("date=0001-01-01", "That date is out of range"),
        ("tab=not-a-uuid&p=nonsense&loc=%2F..%2F", None),
    ],
)
def test_garbage_in_the_url_shows_the_calendar_with_a_message(admin_client_a, query, message):
    response = admin_client_a.get(f"{CALENDAR}?{query}")
    assert response.status_code == 200
    if message:
        assert message in response.content.decode()


def test_a_nul_in_the_calendars_url_is_a_bad_request(admin_client_a):
    # As everywhere (clinic.middleware.RefuseNulMiddleware): PostgreSQL takes no NUL in text.
    assert admin_client_a.get(f"{CALENDAR}?tab=not-a-uuid&p=nonsense&loc=%00").status_code == 400


def test_today_keeps_the_view(clinic_a, admin_client_a):
    body = admin_client_a.get(f"{CALENDAR}?view=month&date=2020-05-05").content.decode()
    today = clinic_a.today().isoformat()
    assert f'data-today-url="{CALENDAR}?view=month&amp;date={today}"' in body


# Time zones --------------------------------------------------------------------------------------


def test_the_zone_label_names_the_browsers_zone_once_it_is_known(clinic_a, admin_client_a):
    body = admin_client_a.get(CALENDAR).content.decode()
    assert "Times shown in <strong>Europe/London</strong>" in body
    assert "until your browser’s is known" in body
    in_zone(admin_client_a, "America/New_York")
    body = admin_client_a.get(CALENDAR).content.decode()
    assert "Times shown in <strong>America/New_York</strong>" in body
    assert "until your browser" not in body


def test_an_unknown_zone_is_refused_and_changes_nothing(admin_client_a):
    response = admin_client_a.post(reverse("time-zone"), {"time_zone": "Mars/Olympus_Mons"})
    assert response.status_code == 400
    assert "Times shown in <strong>Europe/London</strong>" in admin_client_a.get(CALENDAR).content.decode()
    assert admin_client_a.get(reverse("time-zone")).status_code == 405


def test_a_central_practitioner_looking_from_new_york_sees_eastern_times(clinic_a):
    """The seed's example: default zone Central, in New York, times in Eastern."""
    location = LocationFactory(clinic=clinic_a, time_zone="America/Chicago")
    membership = MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN)
    practitioner = PractitionerFactory(
        clinic=clinic_a, default_location=location, time_zone="America/Chicago", user=membership.user
    )
    allocate_session(clinic_a, practitioner=practitioner, location=location, day=dt.date(2027, 1, 12), start=dt.time(9))
    client = in_zone(logged_in_client(membership), "America/New_York")
    body = client.get(f"{CALENDAR}?view=day&date=2027-01-12").content.decode()
    body = drawn(body)  # its slots as calendar.js draws them
    assert "Times shown in <strong>America/New_York</strong>" in body
    assert slot_times(body)[0] == "10:00"  # 09:00 Central is 10:00 Eastern


@pytest.mark.parametrize(
    ("monday", "days", "viewer", "expected"),
    [
        # UK clocks go forward on Sunday 28 March 2027: a 09:00 session stays 09:00 on both sides.
        ("2027-03-22", (4, 7), "Europe/London", ["09:00", "09:00"]),
        # Seen from New York (already on summer time since 14 March): 05:00 before, 04:00 after.
        ("2027-03-22", (4, 7), "America/New_York", ["05:00", "04:00"]),
        # UK clocks go back on Sunday 31 October 2027; US clocks a week later.
        ("2027-10-25", (4, 7), "Europe/London", ["09:00", "09:00"]),
        ("2027-10-25", (4, 7), "America/New_York", ["04:00", "05:00"]),
        ("2027-10-25", (4, 7), "Asia/Tokyo", ["17:00", "18:00"]),
    ],
)
def test_dst_weeks_show_the_right_local_times(clinic_a, admin_client_a, monday, days, viewer, expected):
    practitioner = PractitionerFactory(clinic=clinic_a)
    first = dt.date.fromisoformat(monday)
    for offset in days:  # a Friday before the change and the Monday after it
        allocate_session(clinic_a, practitioner=practitioner, day=first + dt.timedelta(days=offset), start=dt.time(9))
    in_zone(admin_client_a, viewer)
    times = []
    for offset in days:
        day = (first + dt.timedelta(days=offset)).isoformat()
        times.append(slot_times(admin_client_a.get(f"{CALENDAR}?view=day&date={day}").content.decode())[0])
    assert times == expected


def test_the_week_grid_places_a_session_on_the_viewers_date(clinic_a, admin_client_a):
    """00:30 on a Tuesday in London is 16:30 on the Monday in Los Angeles: the slot sits in Monday's column."""
    practitioner = PractitionerFactory(clinic=clinic_a)
    allocate_session(clinic_a, practitioner=practitioner, day=dt.date(2027, 1, 12), start=dt.time(0, 30))
    in_zone(admin_client_a, "America/Los_Angeles")  # 00:30 London is 16:30 the day before
    body = admin_client_a.get(
        f"{CALENDAR}?view=week&date=2027-01-11&tab={practitioner.public_id}", headers={"HX-Request": "true"}
    ).content.decode()
    body = drawn(body)  # its slots as calendar.js draws them
    monday = body.index('class="cal-col ev0" data-date="2027-01-11"')
    tuesday = body.index('class="cal-col ev0" data-date="2027-01-12"')
    first_slot = body.index('class="slot')
    assert monday < first_slot < tuesday
    assert slot_times(body)[0] == "16:30"


# Practitioner tabs and filters ------------------------------------------------------------------------


def test_tabs_show_one_practitioner_or_all_side_by_side(clinic_a, admin_client_a):
    ann = PractitionerFactory(clinic=clinic_a, name="Dr Ann")
    bob = PractitionerFactory(clinic=clinic_a, name="Dr Bob")
    day = dt.date(2027, 6, 7)
    allocate_session(clinic_a, practitioner=ann, day=day, name="Ann AM")
    allocate_session(clinic_a, practitioner=bob, day=day, name="Bob AM")
    every = admin_client_a.get(f"{CALENDAR}?view=day&date=2027-06-07&tab=all").content.decode()
    assert '<h3 class="cal-col-head" title="Dr Ann">' in every and '<h3 class="cal-col-head" title="Dr Bob">' in every
    assert "Ann AM" in every and "Bob AM" in every
    only_ann = admin_client_a.get(f"{CALENDAR}?view=day&date=2027-06-07&tab={ann.public_id}").content.decode()
    assert "Ann AM" in only_ann and "Bob AM" not in only_ann
    assert 'aria-current="page">Dr Ann</a>' in only_ann


def test_a_clinician_opens_on_their_own_tab(clinic_a):
    membership = MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN)
    mine = PractitionerFactory(clinic=clinic_a, name="Dr Mine", user=membership.user)
    PractitionerFactory(clinic=clinic_a, name="Dr Other")
    body = logged_in_client(membership).get(CALENDAR).content.decode()
    assert 'aria-current="page">Dr Mine</a>' in body
    assert f"tab={mine.public_id}" in body


@pytest.fixture
def two_sites(clinic_a):
    """North and South on 7 June 2027: Dr Ann (based North) runs Ann North and, at 14:00, Ann South; Dr Bob
    (based South) runs Bob South."""
    north = LocationFactory(clinic=clinic_a, name="North")
    south = LocationFactory(clinic=clinic_a, name="South")
    ann = PractitionerFactory(clinic=clinic_a, name="Dr Ann", default_location=north)
    bob = PractitionerFactory(clinic=clinic_a, name="Dr Bob", default_location=south)
    day = dt.date(2027, 6, 7)
    allocate_session(clinic_a, practitioner=ann, location=north, day=day, name="Ann North")
    allocate_session(clinic_a, practitioner=ann, location=south, day=day, start=dt.time(14), name="Ann South")
    allocate_session(clinic_a, practitioner=bob, location=south, day=day, name="Bob South")
    return north, south, ann, bob


def test_filters_by_practitioner_and_location_persist_per_user(clinic_a, admin_a, reception_a, two_sites):
    north, _, _, bob = two_sites
    admin = logged_in_client(admin_a)
    response = admin.post(
        reverse("scheduling:calendar-filters"),
        {"view": "day", "date": "2027-06-07", "loc": [str(north.public_id)]},
    )
    assert response.status_code == 302
    assert f"loc={north.public_id}" in response["Location"]
    # Remembered: the plain calendar URL now applies the filter.
    body = admin.get(f"{CALENDAR}?view=day&date=2027-06-07").content.decode()
    assert "Ann North" in body and "Ann South" not in body and "Bob South" not in body
    assert "Filter (on)" in body
    # Another user's calendar is not affected.
    other = logged_in_client(reception_a).get(f"{CALENDAR}?view=day&date=2027-06-07").content.decode()
    assert "Bob South" in other
    # By practitioner, through htmx: the grid comes back with the new URL pushed.
    response = admin.post(
        reverse("scheduling:calendar-filters"),
        {"view": "day", "date": "2027-06-07", "p": [str(bob.public_id)]},
        headers={"HX-Request": "true"},
    )
    assert response["HX-Push-Url"].endswith(f"p={bob.public_id}")
    assert "Bob South" in response.content.decode() and "Ann North" not in response.content.decode()
    assert CalendarPreference.objects.get(membership=admin_a).practitioners == [str(bob.public_id)]
    # "Show everyone" clears it.
    admin.post(reverse("scheduling:calendar-filters"), {"view": "day", "date": "2027-06-07", "clear": "1"})
    assert "Ann South" in admin.get(f"{CALENDAR}?view=day&date=2027-06-07").content.decode()


def test_the_location_filter_follows_where_sessions_run_not_the_home_site(clinic_a, admin_client_a, two_sites):
    north, south, _, _ = two_sites
    cat = PractitionerFactory(clinic=clinic_a, name="Dr Cat", default_location=south)
    allocate_session(clinic_a, practitioner=cat, location=north, day=dt.date(2027, 6, 7), name="Cat North")
    body = admin_client_a.get(f"{CALENDAR}?view=day&date=2027-06-07&loc={south.public_id}").content.decode()
    # Ann (based North) runs a session at South that day: her column and that session show.
    assert "Ann South" in body and "Bob South" in body
    assert "Ann North" not in body and "Cat North" not in body
    assert 'title="Dr Cat"' not in body  # based South, but not running anything there that day


def test_a_filter_naming_another_clinics_practitioner_shows_nothing_of_theirs(clinic_a, clinic_b, admin_client_a):
    theirs = PractitionerFactory(clinic=clinic_b, name="Dr Theirs")
    allocate_session(clinic_b, practitioner=theirs, day=dt.date(2027, 6, 7), name="Their AM")
    response = admin_client_a.post(
        reverse("scheduling:calendar-filters"), {"view": "day", "date": "2027-06-07", "p": [str(theirs.public_id)]}
    )
    assert response.status_code == 302  # an unknown choice is refused by the form...
    body = admin_client_a.get(f"{CALENDAR}?view=day&date=2027-06-07&p={theirs.public_id}").content.decode()
    assert "Dr Theirs" not in body and "Their AM" not in body  # ...and ignored in a URL


# What the grid shows ------------------------------------------------------------------------------------


def test_slots_show_type_colour_group_counts_bookings_and_the_closed_icon(clinic_a, reception_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    single = SlotTypeFactory(clinic=clinic_a, name="Routine", colour="teal")
    group = SlotTypeFactory(clinic=clinic_a, name="Group therapy", colour="purple", capacity=10)
    session = allocate_session(
        clinic_a,
        practitioner=practitioner,
        day=dt.date(2027, 6, 7),
        slot_types=[single, group, None],
        name="Wellbeing",
        description="Mood and anxiety group",
        colour="navy",
        closed_session=True,
    )
    routine, group_slot, _blank = session.slots.order_by("position")
    book(routine, PatientFactory(clinic=clinic_a, first_name="Nia", last_name="Okoro", internal_id="P000042"))
    for _ in range(3):
        book(group_slot, PatientFactory(clinic=clinic_a))
    body = reception_client_a.get(f"{CALENDAR}?view=day&date=2027-06-07").content.decode()
    body = drawn(body)  # its slots as calendar.js draws them
    assert 'class="sess r' in body and "c-navy" in body and 'title="Wellbeing: Mood and anxiety group' in body
    assert 'aria-label="Closed session"' in body
    # The icon is in each bookable slot of the closed session, where the help page puts it (not the blank).
    slots = re.findall(r'<a id="slot-[^"]*" class="slot[^"]*".*?</a>', body)
    assert len(slots) == 3
    assert [('aria-label="Closed session"' in chip) for chip in slots] == [True, True, False]
    assert "Nia Okoro · P000042" in body  # the clinic uses internal IDs
    assert "c-teal" in body and "booked st-booked" in body
    assert 'aria-label="Group"></span>3/10' in body
    assert "slot blank" in body


def test_the_slots_go_as_data_that_share_their_looks_and_a_browser_without_javascript_is_told_why_none_show(
    clinic_a, reception_client_a
):
    """The browser draws the slots (calendar.js); the page carries each slot's own words once and the looks slots
    share once for the page. Without JavaScript there would be none to see, and the page says so."""
    practitioner = PractitionerFactory(clinic=clinic_a)
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine", colour="teal")
    session = allocate_session(clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), slot_types=[routine] * 6)
    first = session.slots.order_by("starts_at").first()
    book(first, PatientFactory(clinic=clinic_a, first_name="Nia", last_name="Okoro", internal_id="P000042"))
    body = reception_client_a.get(f"{CALENDAR}?view=day&date=2027-06-07").content.decode()
    assert 'class="slot' not in body and "<noscript>" in body and "turn it on to see and book them" in body
    assert body.count("Nia Okoro · P000042") == 1  # in the data once: its link and tooltip are drawn from it
    # Two looks, the booked and the free (each with the type's name once), for six slots; each id in short.
    kinds = json.loads(re.search(r'id="cal-slot-kinds">(.*?)</script>', body).group(1))["kinds"]
    assert len(kinds) == 2 and body.count("Routine") == 2 and str(first.public_id) not in body
    links = re.findall(r'<a id="slot-([^"]*)" class="slot c-teal[^"]*" href="([^"]*)" title="([^"]*)"', drawn(body))
    assert [key for key, _, _ in links] == [str(slot.public_id) for slot in session.slots.order_by("starts_at")]
    assert links[0][1] == reverse("scheduling:slot", args=[first.public_id])
    assert links[0][2] == "09:00–09:10 · Routine · Nia Okoro · P000042 (Booked)"
    assert links[1][2] == "09:10–09:20 · Routine · free"


def test_a_displaced_booking_is_drawn_beside_the_slot_that_took_its_time_else_at_full_width(
    clinic_a, admin_a, reception_client_a
):
    from scheduling.models import OutReason, SessionOut
    from scheduling.services.changes import SessionEdit, TakeOut, session_edit, sessions_take_out

    day = dt.date(2027, 6, 7)
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine", colour="teal")
    edited = allocate_session(clinic_a, practitioner=PractitionerFactory(clinic=clinic_a), day=day,
                              slot_types=[routine] * 4)  # fmt: skip
    first, _, _, last = edited.slots.order_by("starts_at")
    book(first, PatientFactory(clinic=clinic_a, first_name="Ann", last_name="Cleared"))
    book(last, PatientFactory(clinic=clinic_a, first_name="Bea", last_name="Removed"))
    # The first slot made blank (Ann keeps her time on a retired twin beside it), the last one removed.
    session_edit(clinic=clinic_a, actor=admin_a.user, session=edited, edit=SessionEdit({first.pk: None}, keep=3))
    off = PractitionerFactory(clinic=clinic_a)
    cancelled = allocate_session(clinic_a, practitioner=off, day=day, start=dt.time(14), slot_types=[routine])
    book(cancelled.slots.get(), PatientFactory(clinic=clinic_a, first_name="Cas", last_name="Cancelled"))
    take = TakeOut(off, None, day, day, SessionOut.CANCELLED, OutReason.SICKNESS)
    sessions_take_out(clinic=clinic_a, actor=admin_a.user, take=take)

    body = reception_client_a.get(f"{CALENDAR}?view=day&date={day.isoformat()}").content.decode()
    body = drawn(body)  # its slots as calendar.js draws them
    classes = {
        name: re.search(rf'class="(slot [^"]*)"[^>]*>(?:(?!</a>).)*{name}', body).group(1).split()
        for name in ("Ann Cleared", "Bea Removed", "Cas Cancelled")
    }
    assert "displaced" in classes["Ann Cleared"] and "beside" in classes["Ann Cleared"]
    assert "displaced" in classes["Bea Removed"] and "beside" not in classes["Bea Removed"]
    assert "displaced" in classes["Cas Cancelled"] and "beside" not in classes["Cas Cancelled"]
    assert "· Cancelled (sickness)" in body


def test_a_blocked_patient_is_restricted_on_the_grid_without_the_permission(
    clinic_a, admin_client_a, reception_client_a
):
    practitioner = PractitionerFactory(clinic=clinic_a)
    session = allocate_session(clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7))
    book(
        session.slots.first(),
        PatientFactory(
            clinic=clinic_a, first_name="Secret", last_name="Person", is_blocked=True, blocked_reason="Staff member"
        ),
    )
    url = f"{CALENDAR}?view=day&date=2027-06-07"
    assert "Secret Person" not in reception_client_a.get(url).content.decode()
    assert "Restricted patient" in reception_client_a.get(url).content.decode()
    assert "Secret Person" in admin_client_a.get(url).content.decode()  # the admin has the permission


def test_the_slot_tooltip_gives_the_details(clinic_a, reception_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Tip")
    group = SlotTypeFactory(clinic=clinic_a, name="Group therapy", capacity=10)
    session = allocate_session(
        clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), slot_types=[group], closed_session=True
    )
    slot = session.slots.get()
    book(slot, PatientFactory(clinic=clinic_a, first_name="Ola", last_name="Nordmann"))
    book(slot, PatientFactory(clinic=clinic_a), status="cancelled")
    url = reverse("scheduling:slot", args=[slot.public_id])
    tip = reception_client_a.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in tip
    assert "Group therapy" in tip and "1/10" in tip and "Dr Tip" in tip
    assert "Ola Nordmann" in tip and tip.count("<li>") == 1  # the cancelled booking is not listed
    assert "Closed session." in tip and "Booking stays possible." in tip
    assert "<html" in reception_client_a.get(url).content.decode()  # without JavaScript: a page


def test_month_view_sums_sessions_booked_and_free_per_day(clinic_a, admin_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    types = [SlotTypeFactory(clinic=clinic_a)] * 4
    first = allocate_session(clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), slot_types=types)
    allocate_session(clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), start=dt.time(14), slot_types=types)
    book(first.slots.first(), PatientFactory(clinic=clinic_a))
    body = admin_client_a.get(f"{CALENDAR}?view=month&date=2027-06-15").content.decode()
    assert "Monday 7 June: 2 sessions, 1 booked, 7 free" in body
    assert 'class="slot' not in body  # a summary, not every slot


def test_month_view_all_day_chips_say_whose_event_it_is(clinic_a, admin_client_a):
    smith = PractitionerFactory(clinic=clinic_a, name="Dr Smith")
    leave = {"all_day": True, "starts_at": None, "ends_at": None, "first_date": dt.date(2027, 6, 7)}
    OtherEventFactory(clinic=clinic_a, practitioner=smith, title="Annual leave", **leave, last_date=dt.date(2027, 6, 7))
    jones = PractitionerFactory(clinic=clinic_a, name="Dr Jones")
    OtherEventFactory(clinic=clinic_a, practitioner=jones, title="Training", **leave, last_date=dt.date(2027, 6, 7))
    body = admin_client_a.get(f"{CALENDAR}?view=month&date=2027-06-15").content.decode()
    assert '<span class="allday-chip"><b>Dr Smith:</b> Annual leave</span>' in body
    assert '<span class="allday-chip"><b>Dr Jones:</b> Training</span>' in body
    # The day's link is named by its aria-label: it says them too.
    assert re.search(
        r'aria-label="Monday 7 June: [^"]*Dr Smith: Annual leave[^"]*Dr Jones: Training|'
        r'aria-label="Monday 7 June: [^"]*Dr Jones: Training[^"]*Dr Smith: Annual leave',
        body,
    )


def test_travel_clinic_sessions_are_marked_in_the_calendar_and_the_sessions_of_the_day(clinic_a, admin_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Abroad")
    kind = SlotTypeFactory(clinic=clinic_a)
    allocate_session(
        clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), slot_types=[kind], travel_clinic=True
    )
    allocate_session(clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), start=dt.time(14), slot_types=[kind])
    week = admin_client_a.get(f"{CALENDAR}?view=week&date=2027-06-07").content.decode()
    assert week.count('role="img" aria-label="Travel clinic"') == 1  # the travel clinic, not the other session
    day = admin_client_a.get(reverse("scheduling:day-sessions"), {"date": "2027-06-07"}).content.decode()
    assert day.count("</span> Travel clinic</span>") == 1


def test_the_zone_report_leaves_the_session_alone_so_a_clinic_switch_made_meanwhile_stays(clinic_a, clinic_b):
    """The browser reports its zone as a page loads; were it kept in the session, that write could
    carry a stale session over a clinic switch made at the same moment."""
    membership = MembershipFactory(clinic=clinic_a, role=Role.ADMIN)
    MembershipFactory(clinic=clinic_b, role=Role.RECEPTION, user=membership.user)
    client = Client()
    client.force_login(membership.user)
    client.get(reverse("home"))
    before = dict(client.session.items())
    response = client.post(reverse("time-zone"), {"time_zone": "Asia/Tokyo"})
    assert response.status_code == 204
    assert response["X-Zone-Changed"] == "1"
    assert dict(client.session.items()) == before
    assert response.cookies["viewer_tz"].value == "Asia/Tokyo"
    assert response.cookies["viewer_tz"]["httponly"]
    client.post(reverse("clinic:switch"), {"clinic": str(clinic_b.public_id)})
    assert client.post(reverse("time-zone"), {"time_zone": "Asia/Tokyo"})["X-Zone-Changed"] == "0"
    body = client.get(CALENDAR).content.decode()
    assert "Times shown in <strong>Asia/Tokyo</strong>" in body
    assert client.get(reverse("home")).context["request"].clinic == clinic_b


def test_a_booking_not_made_by_reception_carries_its_source_badge_in_the_grid_and_tooltip(
    clinic_a, reception_a, reception_client_a
):
    from scheduling.models import AppointmentSource
    from scheduling.services.booking import BookingRequest, appointment_book, appointment_reschedule

    practitioner = PractitionerFactory(clinic=clinic_a)
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine")
    group = SlotTypeFactory(clinic=clinic_a, name="Group therapy", capacity=4)
    session = allocate_session(
        clinic_a, practitioner=practitioner, day=dt.date(2027, 6, 7), slot_types=[routine] * 3 + [group]
    )
    first, second, third, group_slot = session.slots.order_by("position")
    actor = reception_a.user

    def booked(slot, source, **names):
        patient = PatientFactory(clinic=clinic_a, **names)
        request = BookingRequest(slot=slot, patient=patient, source=source)
        return appointment_book(clinic=clinic_a, actor=actor, membership=reception_a, request=request)

    online = booked(first, AppointmentSource.ONLINE, first_name="Ola", last_name="Web")
    by_phone = booked(second, AppointmentSource.RECEPTION, first_name="Rae", last_name="Desk")
    booked(group_slot, AppointmentSource.ONLINE)
    booked(group_slot, AppointmentSource.RECEPTION)
    assert (online.source, by_phone.source) == ("online", "reception")
    assert AuditEvent.objects.filter(action="appointment.booked", detail__source="online").count() == 2

    body = reception_client_a.get(f"{CALENDAR}?view=day&date=2027-06-07").content.decode()
    body = drawn(body)  # its slots as calendar.js draws them
    chips = dict(re.findall(r'<a id="slot-([^"]*)" class="slot[^"]*" href="[^"]*" title="([^"]*)".*?</a>', body))
    assert chips[str(first.public_id)].endswith("(Booked) · booked online")
    assert "booked online" not in chips[str(second.public_id)]
    assert chips[str(group_slot.public_id)].endswith("2 of 4 places booked, 1 not by reception")
    assert 'class="ico ico-online" role="img" aria-label="Booked online"' in _chip(body, first.public_id)
    assert "ico-online" not in _chip(body, second.public_id) + _chip(body, group_slot.public_id)

    # A move keeps where the booking came from; the appointment page says it.
    moved = appointment_reschedule(clinic=clinic_a, actor=actor, membership=reception_a, appointment=online, slot=third)
    assert moved.source == AppointmentSource.ONLINE
    page = reception_client_a.get(reverse("scheduling:appointment", args=[moved.public_id])).content.decode()
    assert "Booked online" in page and 'aria-label="Not booked by reception"' in page
    page = reception_client_a.get(reverse("scheduling:appointment", args=[by_phone.public_id])).content.decode()
    assert "<dt>Source</dt><dd>Reception</dd>" in page


def _chip(body: str, key: object) -> str:
    match = re.search(rf'<a id="slot-{key}"[^>]*>.*?</a>', body)
    assert match, key
    return match.group(0)
