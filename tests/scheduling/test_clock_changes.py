"""Clock-change nights and midnight: every slot and event drawn, the repeated hour told apart, gap times
refused (never shifted silently), events over midnight on both days, "today" on the viewer's clock, release
rules on the slot's clock, and previews that name the dates where a time falls in a gap or repeats."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from scheduling.grid_html import drawn
from scheduling.models import OtherEvent
from tests.factories import (
    LocationFactory,
    OtherEventFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
)

pytestmark = pytest.mark.django_db
CALENDAR = reverse("scheduling:calendar")
LONDON = ZoneInfo("Europe/London")
FALL_BACK = dt.date(2027, 10, 31)  # UK clocks go back: 02:00 BST becomes 01:00 GMT
SPRING_FORWARD = dt.date(2027, 3, 28)  # UK clocks go forward: 01:00 GMT becomes 02:00 BST


def in_zone(client, zone):
    assert client.post(reverse("time-zone"), {"time_zone": zone}).status_code == 204
    return client


def slot_titles(body):
    return re.findall(r'<a(?: id="[^"]*")? class="slot[^"]*"[^>]*title="([^"]*)"', body)


def test_the_night_the_clocks_go_back_draws_every_slot_and_names_the_two_one_oclocks(clinic_a, admin_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    ten = SlotTypeFactory(clinic=clinic_a, name="Night", default_length_minutes=10)
    # 00:30 BST for 12 slots of 10 minutes (two real hours): the wall clock shows 00:30–01:30 twice over.
    session = allocate_session(
        clinic_a, practitioner=practitioner, day=FALL_BACK, start=dt.time(0, 30), slot_types=[ten] * 12
    )
    assert session.slots.count() == 12
    in_zone(admin_client_a, "Europe/London")
    body = admin_client_a.get(f"{CALENDAR}?view=day&date={FALL_BACK}&tab={practitioner.public_id}").content.decode()
    body = drawn(body)  # its slots as calendar.js draws them
    titles = slot_titles(body)
    assert len(titles) == 12, titles  # the slot 01:50 BST–01:00 GMT (its wall-clock end before its start) too
    assert "01:50 BST–01:00 GMT · Night · free" in titles
    assert "01:00 BST–01:10 BST · Night · free" in titles and "01:00 GMT–01:10 GMT · Night · free" in titles
    assert "00:30–00:40 · Night · free" in titles  # a time that happens once needs no zone name
    printed = re.findall(r'class="slot[^"]*"[^>]*><b>([^<]*)</b>', body)
    assert printed.count("01:00 BST") == 1 and printed.count("01:00 GMT") == 1
    # The two passes of the repeated hour sit side by side, not on top of each other.
    # The slot's popup names its pass too.
    second = session.slots.order_by("starts_at")[9]  # 01:00 UTC: 01:00 GMT
    tip = admin_client_a.get(reverse("scheduling:slot", args=[second.public_id])).content.decode()
    assert "01:00 GMT" in tip and "01:10 GMT" in tip and "BST" not in tip
    passes = re.findall(r'class="slot [^"]*(pass\d)', body)
    assert (passes.count("pass1"), passes.count("pass2")) == (6, 3)  # 01:00–01:50 BST, then 01:00–01:20 GMT


def test_book_on_the_day_slots_are_released_on_the_day_of_the_slots_own_clock(clinic_a):
    from scheduling.selectors.booking import next_available

    on_the_day = SlotTypeFactory(clinic=clinic_a, name="On the day", release_rule="on_the_day")
    chicago = LocationFactory(clinic=clinic_a, name="Chicago", time_zone="America/Chicago")
    tokyo = LocationFactory(clinic=clinic_a, name="Tokyo", time_zone="Asia/Tokyo")
    practitioner = PractitionerFactory(clinic=clinic_a)

    def session(location, day, start):
        allocate_session(
            clinic_a, practitioner=practitioner, location=location, day=day, start=start, slot_types=[on_the_day]
        )

    session(chicago, dt.date(2027, 6, 7), dt.time(20))  # 01:00 UTC on the 8th: still the 7th in Chicago
    session(chicago, dt.date(2027, 6, 8), dt.time(9))  # tomorrow in Chicago
    session(tokyo, dt.date(2027, 6, 8), dt.time(9))  # 00:00 UTC on the 8th

    def released(now):
        found = next_available(clinic=clinic_a, now=now, slot_type=on_the_day)
        return [(s.session.location.name, s.session.date.isoformat()) for s in found]

    today_there = [("Tokyo", "2027-06-08"), ("Chicago", "2027-06-07")]
    # 23:30 UTC on the 7th: the clinic (London) is on the 8th, but Chicago's 8th is tomorrow there.
    assert released(dt.datetime(2027, 6, 7, 23, 30, tzinfo=dt.UTC)) == today_there
    # 16:00 UTC on the 7th: London is on the 7th, Tokyo already on the 8th (09:00 there is today).
    assert released(dt.datetime(2027, 6, 7, 16, tzinfo=dt.UTC)) == today_there


def test_an_event_over_midnight_shows_on_both_days_even_from_the_day_before_the_view(clinic_a, admin_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    # Sunday 22:00 to Monday 02:00 in London (winter: London is UTC).
    OtherEventFactory(
        clinic=clinic_a,
        practitioner=practitioner,
        title="Night cover",
        starts_at=dt.datetime(2027, 1, 10, 22, tzinfo=dt.UTC),
        ends_at=dt.datetime(2027, 1, 11, 2, tzinfo=dt.UTC),
    )
    in_zone(admin_client_a, "Europe/London")
    tab = f"&tab={practitioner.public_id}"
    # The week of Monday 11 January starts after the event did: its Monday part still shows.
    week = admin_client_a.get(f"{CALENDAR}?view=week&date=2027-01-11{tab}").content.decode()
    monday = week[week.index('data-date="2027-01-11"') : week.index('data-date="2027-01-12"')]
    assert "Night cover" in monday and "22:00–02:00" in monday
    assert re.search(r'class="ev r1 h\d+[^"]* cont', monday)  # it continues from the day before, from 00:00
    # The Sunday before shows it from 22:00 to midnight.
    sunday = admin_client_a.get(f"{CALENDAR}?view=day&date=2027-01-10{tab}").content.decode()
    assert "Night cover" in sunday


def test_today_is_the_viewers_date(clinic_a, admin_a):
    import time_machine

    from tests.conftest import logged_in_client

    # 00:30 on 8 June in London (the clinic's zone) is still 19:30 on 7 June in New York.
    with time_machine.travel(dt.datetime(2027, 6, 7, 23, 30, tzinfo=dt.UTC), tick=False):
        client = in_zone(logged_in_client(admin_a), "America/New_York")
        body = client.get(f"{CALENDAR}?view=day").content.decode()
        new_event = client.get(reverse("scheduling:event-new")).content.decode()
    assert "Monday 7 June 2027" in body
    assert 'value="2027-06-07"' in new_event


def event_form(practitioner, **fields):  # the New event / edit form's fields
    data = {"kind": "other", "practitioner": str(practitioner.public_id), "title": "Cover", "show_as": "busy"}
    return {**data, **fields}


def test_a_new_event_in_the_spring_forward_gap_is_refused_with_a_message_not_moved(clinic_a, admin_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    in_zone(admin_client_a, "Europe/London")
    url = reverse("scheduling:event-new")
    fields = {"date": str(SPRING_FORWARD), "start_time": "01:30", "end_time": "02:00"}
    response = admin_client_a.post(url, event_form(practitioner, **fields), headers={"HX-Request": "true"})
    assert response.status_code == 422
    text = response.content.decode()
    assert "There is no 01:30 on Sun 28 Mar 2027 in Europe/London: the clocks go forward that night" in text
    assert "01:30 would be 02:30 BST" in text
    assert not OtherEvent.objects.exists()
    # An end in the gap too; and Create New Slot refuses a start there the same way.
    fields = {"date": str(SPRING_FORWARD), "start_time": "00:30", "end_time": "01:15"}
    late = admin_client_a.post(url, event_form(practitioner, **fields), headers={"HX-Request": "true"})
    assert late.status_code == 422 and "There is no 01:15" in late.content.decode()
    location = LocationFactory(clinic=clinic_a, time_zone="Europe/London")
    slot = admin_client_a.post(
        reverse("scheduling:slot-new"),
        {
            "practitioner": str(practitioner.public_id),
            "location": str(location.public_id),
            "date": str(SPRING_FORWARD),
            "start_time": "01:10",
            "length_minutes": "10",
            "slot_type": str(SlotTypeFactory(clinic=clinic_a).public_id),
        },
    )
    assert slot.status_code == 422 and "There is no 01:10 on Sun 28 Mar 2027 in Europe/London" in slot.content.decode()
    # Just outside the jump is fine.
    fields = {"date": str(SPRING_FORWARD), "start_time": "02:00", "end_time": "02:30"}
    assert admin_client_a.post(url, event_form(practitioner, **fields)).status_code == 302
    assert OtherEvent.objects.get().starts_at == dt.datetime(2027, 3, 28, 1, tzinfo=dt.UTC)


def test_editing_only_the_title_of_an_event_in_the_repeated_hour_keeps_its_instant(clinic_a, admin_client_a):
    practitioner = PractitionerFactory(clinic=clinic_a)
    second_pass = dt.datetime(2027, 10, 31, 1, 30, tzinfo=dt.UTC)  # 01:30 GMT, after the clocks went back
    event = OtherEventFactory(
        clinic=clinic_a,
        practitioner=practitioner,
        title="Night round",
        starts_at=second_pass,
        ends_at=second_pass + dt.timedelta(minutes=20),
    )
    in_zone(admin_client_a, "Europe/London")
    url = reverse("scheduling:event-edit", args=[event.public_id])
    form = admin_client_a.get(url).content.decode()
    assert 'value="01:30"' in form and 'value="01:50"' in form
    fields = {"date": str(FALL_BACK), "start_time": "01:30", "end_time": "01:50"}
    assert (
        admin_client_a.post(url, event_form(practitioner, title="Night round (renamed)", **fields)).status_code == 302
    )
    event.refresh_from_db()
    assert event.title == "Night round (renamed)"
    assert (event.starts_at, event.ends_at) == (second_pass, second_pass + dt.timedelta(minutes=20))
    # A changed end is read on the kept start's pass of the hour: 01:40 GMT, not the earlier 01:40 BST.
    fields = {"date": str(FALL_BACK), "start_time": "01:30", "end_time": "01:40"}
    assert admin_client_a.post(url, event_form(practitioner, **fields)).status_code == 302
    event.refresh_from_db()
    assert (event.starts_at, event.ends_at) == (second_pass, second_pass + dt.timedelta(minutes=10))
    # A new event at 01:30 that night is the first 01:30 (BST), and the grid names it so.
    fields = {"date": str(FALL_BACK), "start_time": "01:30", "end_time": "01:45", "title": "First pass"}
    assert admin_client_a.post(reverse("scheduling:event-new"), event_form(practitioner, **fields)).status_code == 302
    assert OtherEvent.objects.get(title="First pass").starts_at == dt.datetime(2027, 10, 31, 0, 30, tzinfo=dt.UTC)
    day = admin_client_a.get(f"{CALENDAR}?view=day&date={FALL_BACK}&tab={practitioner.public_id}").content.decode()
    assert "01:30 BST–01:45 BST" in day and "01:30 GMT–01:40 GMT" in day


def test_the_rota_preview_names_the_dates_where_the_clocks_change_and_what_happens(clinic_a, admin_client_a):
    from tests.factories import template_with_slots

    location = LocationFactory(clinic=clinic_a, name="Night clinic", time_zone="Europe/London")
    template = template_with_slots(clinic_a, [SlotTypeFactory(clinic=clinic_a, default_length_minutes=30)] * 4)
    practitioner = PractitionerFactory(clinic=clinic_a, default_location=location)
    data = {
        "template": template.pk,
        "practitioner": practitioner.pk,
        "location": location.pk,
        "first_date": "2027-03-21",
        "repeat": "on",
        "weekdays": ["7"],  # Sundays, through both changes of 2027
        "every_weeks": "1",
        "last_date": "2027-11-07",
        "action": "preview",
    }
    page = admin_client_a.post(reverse("scheduling:allocate"), {**data, "start_time": "01:30"}).content.decode()
    assert "The clocks change on 2 of these dates." in page
    assert "Sun 28 Mar 2027: 01:30 does not exist (the clocks go forward), so it starts at 02:30 BST." in page
    assert "Sun 31 Oct 2027: 01:30 happens twice (the clocks go back); it starts at the first, 01:30 BST." in page
    # A two-hour session from 00:30 runs over the change: it ends earlier (or later) on the wall clock.
    spans = admin_client_a.post(reverse("scheduling:allocate"), {**data, "start_time": "00:30"}).content.decode()
    assert "Sun 28 Mar 2027: the clocks change during it; it runs 120 minutes and ends at 03:30 BST." in spans
    assert "Sun 31 Oct 2027: the clocks change during it; it runs 120 minutes and ends at 01:30 GMT." in spans
    # A daytime rota meets no change: nothing is said.
    day = admin_client_a.post(reverse("scheduling:allocate"), {**data, "start_time": "09:00"}).content.decode()
    assert "The clocks change" not in day
