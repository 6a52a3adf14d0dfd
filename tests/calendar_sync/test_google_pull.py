"""Pulling from Google as Google is (issue 18, items 3 and 4): only real busy time blocks booking (declined
invitations and the special event types do not), and pulls are bounded to the product's window, re-listed in
full when it moves a week, and leave no phantom instance of a deleted or cut series."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from googleapiclient.errors import HttpError

from calendar_sync.feed.sources import WINDOW_AHEAD, WINDOW_BACK
from calendar_sync.google import pull as google_pull
from calendar_sync.models import GoogleCalendar, GoogleConnection
from clinic.models import AuditEvent, Role
from scheduling.models import Availability, OtherEvent
from scheduling.selectors.calendar import free_times
from tests.calendar_sync.google_helpers import EMAIL, connect
from tests.conftest import logged_in_client
from tests.factories import MembershipFactory, OtherEventFactory
from tests.google_fake import calendar_service, credentials_for
from tests.google_fake.server import TOMBSTONE_HORIZON

pytestmark = pytest.mark.django_db(transaction=True)

SERIES = "RRULE:FREQ=WEEKLY"


def at(days: int, hour: int) -> dt.datetime:
    day = timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def when(moment: dt.datetime, **extra: str) -> dict[str, str]:
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), **extra}


def day(days: int) -> dict[str, str]:
    return {"date": (timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=days)).isoformat()}


def pull(connection: GoogleConnection, now: dt.datetime | None = None) -> google_pull.PullReport:
    return google_pull.pull(connection.pk, now=now)


def available_all_week(clinic, practitioner) -> None:
    Availability.objects.create(
        clinic=clinic,
        practitioner=practitioner,
        time_zone="UTC",
        weekly={str(d): [["09:00", "17:00"]] for d in range(1, 8)},
    )


def free_on(clinic, practitioner, days: int) -> list[tuple[dt.datetime, dt.datetime]]:
    return free_times(clinic=clinic, practitioners=[practitioner], starts_at=at(days, 0), ends_at=at(days + 1, 0))[
        practitioner.pk
    ]


def weekly(start: dt.datetime, summary: str = "Clinic round", rule: str = SERIES) -> dict:
    return {
        "summary": summary,
        "start": when(start, timeZone="UTC"),
        "end": when(start + dt.timedelta(hours=1), timeZone="UTC"),
        "recurrence": [rule],
    }


def rows_of(series_id: str):
    return OtherEvent.objects.filter(google_recurring_id=series_id)


# Only real busy time blocks booking ---------------------------------------------------------------------------


def test_a_declined_invitation_does_not_block_booking_an_accepted_one_does(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    declined = google.user_invited(
        calendar,
        {"summary": "Board meeting", "start": when(at(2, 10)), "end": when(at(2, 11))},
        organizer="chair@example.org",
        response="declined",
    )
    google.user_invited(
        calendar,
        {"summary": "Audit", "start": when(at(2, 14)), "end": when(at(2, 15))},
        organizer="chair@example.org",
        response="accepted",
    )
    shown = google.event(calendar, declined["id"])
    assert shown is not None and shown["organizer"] == {"email": "chair@example.org"}
    assert [a.get("self", False) for a in shown["attendees"]] == [False, True]
    pull(connection)
    available_all_week(clinic_a, practitioner)
    assert free_on(clinic_a, practitioner, 2) == [(at(2, 9), at(2, 14)), (at(2, 15), at(2, 17))]
    # Still shown on the calendar, as free time.
    assert not OtherEvent.objects.get(google_event_id=declined["id"]).busy
    # Accepting it later blocks the time at the next pull.
    google.user_respond(calendar, declined["id"], "accepted")
    pull(connection)
    assert OtherEvent.objects.get(google_event_id=declined["id"]).busy


def test_only_out_of_office_among_googles_special_event_types_blocks_booking(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner, default=EMAIL)  # status events live on primaries
    google.user_create_event(
        EMAIL,
        {
            "summary": "Out of office",
            "eventType": "outOfOffice",
            "start": when(at(2, 9)),
            "end": when(at(2, 10)),
            "outOfOfficeProperties": {"autoDeclineMode": "declineNone"},
        },
    )
    google.user_create_event(
        EMAIL,
        {
            "summary": "Focus time",
            "eventType": "focusTime",
            "start": when(at(2, 11)),
            "end": when(at(2, 12)),
            "focusTimeProperties": {"chatStatus": "doNotDisturb"},
        },
    )
    google.user_create_event(
        EMAIL,
        {
            "summary": "Home",
            "eventType": "workingLocation",
            "start": day(2),
            "end": day(3),
            "transparency": "transparent",
            "visibility": "public",
            "workingLocationProperties": {"type": "homeOffice", "homeOffice": {}},
        },
    )
    birthday = google.user_create_event(
        EMAIL,
        {
            "summary": "Sam's birthday",
            "eventType": "birthday",
            "start": day(2),
            "end": day(3),
            "recurrence": ["RRULE:FREQ=YEARLY"],
            "transparency": "transparent",
            "visibility": "private",
            "birthdayProperties": {"type": "birthday"},
        },
    )
    google.user_gmail_event(EMAIL, {"summary": "Flight to Oslo", "start": when(at(2, 13)), "end": when(at(2, 14))})
    google.user_create_event(EMAIL, {"summary": "Dentist", "start": when(at(2, 15)), "end": when(at(2, 16))})
    this_year = f"{birthday['id']}_{day(2)['date'].replace('-', '')}"
    assert google.user_update_event(EMAIL, this_year, {"summary": "Sam's birthday"})["eventType"] == "birthday"
    pull(connection)
    available_all_week(clinic_a, practitioner)
    # Out of office and the plain event block; focus time (not wanted), working location, birthday and the
    # event Gmail made do not.
    assert free_on(clinic_a, practitioner, 2) == [(at(2, 10), at(2, 15)), (at(2, 16), at(2, 17))]
    pulled = {e.title: e.busy for e in OtherEvent.objects.exclude(google_event_id="")}
    assert pulled == {
        "Out of office": True,
        "Focus time": False,
        "Home": False,
        "Sam's birthday": False,
        "Flight to Oslo": False,
        "Dentist": True,
    }


def test_the_fake_keeps_googles_rules_for_special_event_types(google):
    service = calendar_service(google, credentials_for(google, EMAIL))
    other = google.user_create_calendar(EMAIL, "Team")
    focus = {"eventType": "focusTime", "start": when(at(2, 9)), "end": when(at(2, 10)), "focusTimeProperties": {}}
    with pytest.raises(HttpError) as refused:
        service.events().insert(calendarId=other, body=focus).execute()
    assert refused.value.status_code == 400  # only on primary calendars
    made = service.events().insert(calendarId="primary", body=focus).execute()
    assert made["eventType"] == "focusTime"
    with pytest.raises(HttpError):  # Gmail makes these, not the API
        service.events().insert(
            calendarId="primary", body={"eventType": "fromGmail", "start": when(at(2, 9)), "end": when(at(2, 10))}
        ).execute()
    with pytest.raises(HttpError):  # a working location is transparent and public
        service.events().insert(
            calendarId="primary",
            body={"eventType": "workingLocation", "start": day(2), "end": day(3), "workingLocationProperties": {}},
        ).execute()
    with pytest.raises(HttpError):  # and its type never changes
        service.events().patch(calendarId="primary", eventId=made["id"], body={"eventType": "default"}).execute()


def test_focus_time_blocks_booking_only_when_wanted_and_opaque(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner, default=EMAIL)
    for hour, transparency in ((11, "opaque"), (13, "transparent")):
        google.user_create_event(
            EMAIL,
            {
                "summary": f"Focus {transparency}",
                "eventType": "focusTime",
                "start": when(at(2, hour)),
                "end": when(at(2, hour + 1)),
                "transparency": transparency,
                "focusTimeProperties": {},
            },
        )
    pull(connection)
    available_all_week(clinic_a, practitioner)
    assert free_on(clinic_a, practitioner, 2) == [(at(2, 9), at(2, 17))]
    page = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert "Focus time blocks booking" in page
    google.clear_requests()
    response = clinician_client.post(
        reverse("calendar_sync:google-focus-time"), {"practitioner": str(practitioner.public_id), "busy": "1"}
    )
    assert response.status_code == 302
    assert GoogleConnection.objects.get(pk=connection.pk).focus_time_busy
    # The calendars are read again in full (the rows follow the new rule), through the queued pull.
    listed = [r for r in google.requests if r.operation == "calendar.events.list"]
    assert listed and all("syncToken" not in r.query for r in listed)
    assert free_on(clinic_a, practitioner, 2) == [(at(2, 9), at(2, 11)), (at(2, 12), at(2, 17))]
    audit = AuditEvent.objects.filter(action="google.focus_time").get()
    assert audit.detail == {"busy": True}
    clinician_client.post(
        reverse("calendar_sync:google-focus-time"), {"practitioner": str(practitioner.public_id), "busy": "0"}
    )
    assert free_on(clinic_a, practitioner, 2) == [(at(2, 9), at(2, 17))]


def test_the_focus_time_control_is_for_those_who_manage_the_calendar(
    google, clinic_a, clinician, clinician_client, outsider_client
):
    _, practitioner = clinician
    connect(clinician_client, google, practitioner)
    sent = {"practitioner": str(practitioner.public_id), "busy": "1"}
    assert outsider_client.post(reverse("calendar_sync:google-focus-time"), sent).status_code == 404
    colleague = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN))
    assert colleague.post(reverse("calendar_sync:google-focus-time"), sent).status_code == 404
    assert not GoogleConnection.objects.get(practitioner=practitioner).focus_time_busy


# Series tails and the window ----------------------------------------------------------------------------------


def in_window(start: dt.datetime, now: dt.datetime, *, weeks: int = 200) -> list[dt.datetime]:
    """The weekly occurrences (an hour long) from ``start`` that overlap the product's window at ``now``."""
    found = []
    for n in range(weeks):
        begins = start + dt.timedelta(weeks=n)
        if begins + dt.timedelta(hours=1) > now - WINDOW_BACK and begins < now + WINDOW_AHEAD:
            found.append(begins)
    return found


def test_a_full_pull_asks_for_the_window_and_stores_nothing_beyond_it(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    start = at(-100, 9)
    series = google.user_create_event(calendar, weekly(start))
    GoogleCalendar.objects.update(sync_token="")
    google.clear_requests()
    now = timezone.now()
    pull(connection, now)
    listed = [r for r in google.requests if r.operation == "calendar.events.list"]
    assert listed and {"timeMin", "timeMax"} <= set(listed[0].query)
    assert dt.datetime.fromisoformat(listed[0].query["timeMax"][0]) > now + WINDOW_AHEAD - dt.timedelta(minutes=1)
    stored = sorted(rows_of(series["id"]).values_list("starts_at", flat=True))
    assert stored == in_window(start, now)
    assert GoogleCalendar.objects.get(calendar_id=calendar).window_start == now - WINDOW_BACK


def test_rows_outside_the_window_are_pruned(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    kept = google.user_create_event(calendar, {"summary": "Kept", "start": when(at(5, 9)), "end": when(at(5, 10))})
    pull(connection)
    for name, starts_at in (("Long ago", at(-90, 9)), ("Far ahead", at(600, 9))):
        OtherEventFactory(
            clinic=clinic_a,
            practitioner=practitioner,
            title=name,
            starts_at=starts_at,
            google_calendar_id=calendar,
            google_event_id=name.lower().replace(" ", ""),
        )
    OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Ours long ago", starts_at=at(-90, 9))
    pull(connection)
    assert set(OtherEvent.objects.values_list("title", flat=True)) == {"Kept", "Ours long ago"}
    # A week later the event that was five days ahead is still in the window; 70 days later it is not.
    pull(connection, timezone.now() + dt.timedelta(days=70))
    assert not OtherEvent.objects.filter(google_event_id=kept["id"]).exists()


def test_when_the_window_has_moved_a_week_the_pull_lists_in_full_and_new_instances_appear(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    start = at(1, 9)
    series = google.user_create_event(calendar, weekly(start))
    now = timezone.now()
    pull(connection, now)
    assert sorted(rows_of(series["id"]).values_list("starts_at", flat=True)) == in_window(start, now)
    google.clear_requests()
    pull(connection, now + dt.timedelta(days=6))  # less than a week: incremental
    listed = [r for r in google.requests if r.operation == "calendar.events.list"]
    assert listed and all("syncToken" in r.query for r in listed)
    google.clear_requests()
    later = now + dt.timedelta(days=8)
    report = pull(connection, later)
    listed = [r for r in google.requests if r.operation == "calendar.events.list"]
    assert report.full and listed and all("syncToken" not in r.query for r in listed)
    assert sorted(rows_of(series["id"]).values_list("starts_at", flat=True)) == in_window(start, later)
    assert GoogleCalendar.objects.get(calendar_id=calendar).window_start == later - WINDOW_BACK


def test_the_fake_sends_instance_tombstones_of_a_deleted_series_within_a_horizon(google):
    service = calendar_service(google, credentials_for(google, EMAIL))
    series = google.user_create_event(EMAIL, weekly(at(1, 9)))
    first = service.events().list(calendarId="primary", singleEvents=True, timeMax=when(at(400, 0))["dateTime"])
    token = first.execute()["nextSyncToken"]
    google.user_delete_event(EMAIL, series["id"])
    changed = service.events().list(calendarId="primary", singleEvents=True, syncToken=token).execute()["items"]
    assert changed and all(i["status"] == "cancelled" and i["recurringEventId"] == series["id"] for i in changed)
    assert series["id"] not in {i["id"] for i in changed}  # no tombstone of the series itself
    latest = max(dt.datetime.fromisoformat(i["originalStartTime"]["dateTime"]) for i in changed)
    assert latest <= timezone.now() + TOMBSTONE_HORIZON


def test_a_deleted_infinite_series_leaves_no_busy_instance_in_the_window(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    series = google.user_create_event(calendar, weekly(at(1, 9)))
    pull(connection)
    assert rows_of(series["id"]).filter(starts_at__gt=timezone.now() + TOMBSTONE_HORIZON).exists()
    google.user_delete_event(calendar, series["id"])
    google.clear_requests()
    pull(connection)
    assert not rows_of(series["id"]).exists()  # also beyond the fake's tombstone horizon
    assert google.count_requests(path_contains="/instances") == 1  # one request for the series


def test_a_series_cut_this_and_following_leaves_no_instance_after_the_cut(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    series = google.user_create_event(calendar, weekly(at(1, 9)))
    ended = google.user_create_event(calendar, weekly(at(2, 9), "Teaching"))
    pull(connection)
    cut = at(29, 9)
    moved = google.user_this_and_following(
        calendar,
        series["id"],
        when(cut, timeZone="UTC"),
        {"summary": "Clinic round (new time)", "start": when(at(29, 11), timeZone="UTC")},
    )
    google.user_this_and_following(calendar, ended["id"], when(at(30, 9), timeZone="UTC"))
    pull(connection)
    assert moved is not None
    assert not rows_of(series["id"]).filter(starts_at__gte=cut).exists()
    assert rows_of(series["id"]).filter(starts_at__lt=cut).count() == 4
    assert not rows_of(ended["id"]).filter(starts_at__gte=at(30, 9)).exists()
    assert rows_of(moved["id"]).filter(starts_at__gt=timezone.now() + TOMBSTONE_HORIZON).exists()
    available_all_week(clinic_a, practitioner)
    far = 29 + 7 * 40  # well past the fake's tombstone horizon
    assert free_on(clinic_a, practitioner, far) == [(at(far, 9), at(far, 11)), (at(far, 12), at(far, 17))]
