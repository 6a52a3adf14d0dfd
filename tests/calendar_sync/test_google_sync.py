"""Two-way sync with Google Calendar, end to end through Celery (in-process here; a real worker in
test_google_worker.py) against the fake Google: connecting, push, pull, every rule of the help page,
switching, revoked access, faults, notifications and tenancy."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from calendar_sync import tasks
from calendar_sync.crypto import unseal
from calendar_sync.google import connect as google_connect
from calendar_sync.google.events import OUR_EVENT_ID
from calendar_sync.models import (
    FeedSubscription,
    GoogleCalendar,
    GoogleChannel,
    GoogleConnection,
    GoogleEvent,
    GooglePending,
    GoogleState,
    SyncType,
)
from clinic.models import Location
from scheduling.grid_html import drawn
from scheduling.models import Appointment, AppointmentStatus, Availability, OtherEvent
from scheduling.selectors.calendar import free_times
from scheduling.services.booking import appointment_cancel
from scheduling.signals import announce_calendar_change
from tests.calendar_sync.google_helpers import (
    EMAIL,
    connect,
    future_appointment,
    google_events,
    sync_secondary,
    through_google,
)
from tests.conftest import logged_in_client
from tests.factories import MembershipFactory, OtherEventFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def ours(fake, connection):
    return {e["id"]: e for e in google_events(fake, connection) if OUR_EVENT_ID.match(e["id"])}


def at(days: int, hour: int) -> dt.datetime:
    day = timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def when(moment: dt.datetime) -> dict[str, str]:
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}


def pull(connection):
    return tasks.google_pull.delay(connection.pk).get()


# Connect ----------------------------------------------------------------------------------------------------


def test_the_option_is_hidden_until_google_is_configured(settings, clinician, clinician_client):
    settings.GOOGLE_CLIENT_ID = settings.GOOGLE_CLIENT_SECRET = ""
    body = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert "Two-way sync with Google Calendar" not in body
    settings.GOOGLE_CLIENT_ID, settings.GOOGLE_CLIENT_SECRET = "id", "secret"
    body = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert "Two-way sync with Google Calendar" in body


def test_connecting_makes_a_clinic_calendar_and_sends_the_calendar_there(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    appointment = future_appointment(clinic_a, practitioner)
    event = OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Team meeting", starts_at=at(2, 13))
    page = clinician_client.get(reverse("calendar_sync:index"))
    assert "Sync type" in page.content.decode()
    connection = connect(clinician_client, google, practitioner)

    assert connection.email == EMAIL and connection.state == GoogleState.CONNECTED
    assert connection.default_calendar_created and connection.default_calendar_id != EMAIL
    assert google.calendar(connection.default_calendar_id)["summary"] == f"{clinic_a.name} · Clinic Scheduler"
    # Tokens are sealed at rest.
    assert connection.refresh_token and not connection.refresh_token.startswith("1//")
    assert unseal(connection.refresh_token) != connection.refresh_token
    subscription = FeedSubscription.objects.get(practitioner=practitioner)
    assert subscription.enabled and subscription.sync_type == SyncType.TWO_WAY

    pushed = ours(google, connection)
    client_event = pushed["csa" + appointment.public_id.hex]
    # The clinic uses internal IDs, so that is the default mode: no name leaves the clinic.
    assert client_event["summary"] == f"🔒 {appointment.patient.internal_id} · {appointment.slot_type.name}"
    assert "Nadia" not in str(client_event) and "Quist" not in str(client_event)
    assert client_event["extendedProperties"]["private"]["clinicScheduler"] == f"appointment-{appointment.public_id}"
    assert client_event["start"]["dateTime"].startswith(appointment.starts_at.strftime("%Y-%m-%dT%H:%M"))
    other = pushed["cse" + event.public_id.hex]
    assert other["summary"] == "Team meeting" and other.get("transparency", "opaque") == "opaque"
    page = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert EMAIL in page and "Secondary Google calendars" in page


CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]")  # all but tab, newline, return


def strings_in(value) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    return [value] if isinstance(value, str) else []


def test_control_characters_never_reach_google(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    clinic_a.name = "Clinic\x0b A"
    clinic_a.save()
    patient = PatientFactory(clinic=clinic_a, first_name="Na\x1bdia", last_name="Qu\x85ist")
    appointment = future_appointment(clinic_a, practitioner, patient=patient)
    Location.objects.for_clinic(clinic_a).update(name="Main\x07 Surgery")
    event = OtherEventFactory(
        clinic=clinic_a, practitioner=practitioner, title="Staff\x0bmeeting\x0c\nRoom 2\x01", starts_at=at(2, 13)
    )
    save_settings(clinician_client, practitioner, sync_type="two_way", mode="full_name")
    connection = connect(clinician_client, google, practitioner)
    pushed = ours(google, connection)
    assert pushed["csa" + appointment.public_id.hex]["summary"] == f"🔒 Nadia Quist · {appointment.slot_type.name}"
    assert pushed["csa" + appointment.public_id.hex]["location"] == "Main Surgery"
    assert pushed["cse" + event.public_id.hex]["summary"] == "Staffmeeting\nRoom 2"
    assert google.calendar(connection.default_calendar_id)["summary"] == "Clinic A · Clinic Scheduler"
    for text in strings_in(list(pushed.values())):
        assert not CONTROL.search(text), repr(text)


def test_the_default_calendar_can_be_an_existing_one_with_a_warning_for_the_primary(
    google, clinician, clinician_client
):
    _, practitioner = clinician
    google.set_browser_user(EMAIL)
    work = google.user_create_calendar(EMAIL, "Work")
    response = clinician_client.post(
        reverse("calendar_sync:google-connect"), {"practitioner": str(practitioner.public_id)}
    )
    from tests.calendar_sync.google_helpers import visit_google

    back = visit_google(google, response["Location"])
    chooser = clinician_client.get(back.split("testserver", 1)[-1], follow=True).content.decode()
    assert "A new Google calendar for" in chooser and "Recommended" in chooser
    assert "Work" in chooser and "Not recommended." in chooser  # the primary calendar's warning
    # An existing calendar takes our events: Google is asked for its events then, and for nothing more.
    response = clinician_client.post(reverse("calendar_sync:google-default"), {"calendar": work})
    asked = parse_qs(urlsplit(response["Location"]).query)
    assert asked["scope"] == ["https://www.googleapis.com/auth/calendar.events"]
    assert asked["include_granted_scopes"] == ["true"] and asked["login_hint"] == [EMAIL]
    page = through_google(clinician_client, google, response)
    assert page["Location"] == reverse("calendar_sync:index") + f"?practitioner={practitioner.public_id}"
    connection = GoogleConnection.objects.get(practitioner=practitioner)
    assert connection.default_calendar_id == work and not connection.default_calendar_created
    assert "https://www.googleapis.com/auth/calendar.events" in connection.scopes.split()


def test_a_refused_consent_connects_nothing(google, clinician, clinician_client):
    _, practitioner = clinician
    google.set_browser_user(EMAIL)
    google.deny_next_consent()
    response = clinician_client.post(
        reverse("calendar_sync:google-connect"), {"practitioner": str(practitioner.public_id)}
    )
    from tests.calendar_sync.google_helpers import visit_google

    back = visit_google(google, response["Location"])
    assert "error=access_denied" in back
    page = clinician_client.get(back.split("testserver", 1)[-1], follow=True).content.decode()
    assert "Google access was not granted" in page
    assert not GoogleConnection.objects.exists()


def test_a_forged_callback_is_refused(google, clinician, clinician_client):
    page = clinician_client.get(reverse("calendar_sync:google-callback") + "?state=forged&code=x", follow=True)
    assert "was not started here" in page.content.decode()
    assert not GoogleConnection.objects.exists()


def test_only_the_practitioner_connects_their_own_google(google, clinic_a, clinician, admin_client_a):
    _, practitioner = clinician
    response = admin_client_a.post(
        reverse("calendar_sync:google-connect"), {"practitioner": str(practitioner.public_id)}
    )
    assert response.status_code == 403


# Push -------------------------------------------------------------------------------------------------------


def test_changes_are_pushed_after_commit_coalesced_and_never_twice(google, clinic_a, clinician, clinician_client):
    membership, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    google.clear_requests()
    first = future_appointment(clinic_a, practitioner, days=4)
    second = future_appointment(clinic_a, practitioner, days=5)
    assert {"csa" + first.public_id.hex, "csa" + second.public_id.hex} <= set(ours(google, connection))
    # A burst of changes in one transaction: one push, one batch request.
    from django.db import transaction

    google.clear_requests()
    with transaction.atomic():
        for n in range(3):
            OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title=f"Block {n}", starts_at=at(6, 9 + n))
        announce_calendar_change(
            [practitioner.pk], events=OtherEvent.objects.filter(practitioner=practitioner).values_list("pk", flat=True)
        )
    assert google.count_requests(path_contains="batch") == 1
    assert sorted(e["summary"] for e in ours(google, connection).values() if e["summary"].startswith("Block")) == [
        "Block 0",
        "Block 1",
        "Block 2",
    ]
    # Nothing changed: a second push sends nothing.
    google.clear_requests()
    announce_calendar_change([practitioner.pk], appointments=[first.pk])
    assert google.count_requests(path_contains="batch") == 0
    # Cancelled here: deleted in Google.
    appointment_cancel(clinic=clinic_a, actor=membership.user, appointment=first, reason="Patient unwell")
    assert "csa" + first.public_id.hex not in ours(google, connection)
    assert not GooglePending.objects.exists()


def test_a_title_changed_in_google_is_overwritten_at_the_next_sync(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    appointment = future_appointment(clinic_a, practitioner)
    event_id = "csa" + appointment.public_id.hex
    google.user_set_title(connection.default_calendar_id, event_id, "Renamed in Google")
    pull(connection)
    assert google.event(connection.default_calendar_id, event_id)["summary"].startswith(
        f"🔒 {appointment.patient.internal_id}"
    )
    assert Appointment.objects.get(pk=appointment.pk).status == AppointmentStatus.BOOKED


def test_our_other_event_changed_in_google_follows_google(google, clinic_a, clinician, clinician_client):
    membership, practitioner = clinician
    event = OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Supervision", starts_at=at(3, 10))
    connection = connect(clinician_client, google, practitioner)
    google.user_update_event(
        connection.default_calendar_id,
        "cse" + event.public_id.hex,
        {
            "summary": "Supervision (moved)",
            "start": when(at(3, 14)),
            "end": when(at(3, 15)),
            "transparency": "transparent",
        },
    )
    google.clear_requests()
    pull(connection)
    event.refresh_from_db()
    assert (event.title, event.starts_at, event.busy) == ("Supervision (moved)", at(3, 14), False)
    assert google.count_requests(path_contains="batch") == 0  # nothing pushed back


# Pull -------------------------------------------------------------------------------------------------------


def test_google_events_arrive_busy_blocks_availability_free_does_not_all_day_stays_dates(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    google.user_create_event(calendar, {"summary": "Dentist", "start": when(at(2, 10)), "end": when(at(2, 11))})
    google.user_create_event(
        calendar,
        {"summary": "Podcast", "start": when(at(2, 12)), "end": when(at(2, 13)), "transparency": "transparent"},
    )
    holiday = (timezone.now().date() + dt.timedelta(days=10)).isoformat()
    after = (timezone.now().date() + dt.timedelta(days=12)).isoformat()
    google.user_create_event(calendar, {"summary": "Holiday", "start": {"date": holiday}, "end": {"date": after}})
    pull(connection)
    pulled = {e.title: e for e in OtherEvent.objects.filter(practitioner=practitioner).exclude(google_event_id="")}
    assert set(pulled) == {"Dentist", "Podcast", "Holiday"}
    assert pulled["Dentist"].busy and not pulled["Podcast"].busy
    assert pulled["Holiday"].all_day and pulled["Holiday"].starts_at is None
    assert (pulled["Holiday"].first_date.isoformat(), pulled["Holiday"].last_date) == (
        holiday,
        dt.date.fromisoformat(after) - dt.timedelta(days=1),
    )
    assert all(e.google_calendar_id == calendar for e in pulled.values())
    Availability.objects.create(
        clinic=clinic_a,
        practitioner=practitioner,
        time_zone="UTC",
        weekly={str(d): [["09:00", "17:00"]] for d in range(1, 8)},
    )
    free = free_times(clinic=clinic_a, practitioners=[practitioner], starts_at=at(2, 0), ends_at=at(3, 0))[
        practitioner.pk
    ]
    assert free == [(at(2, 9), at(2, 10)), (at(2, 11), at(2, 17))]  # the busy hour out, the free one kept
    # Pulled events are not sent back to Google, nor into the ICS feed.
    assert set(ours(google, connection)) == set()


def test_incremental_pull_uses_the_sync_token_and_410_resyncs_without_deleting_first(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    kept = google.user_create_event(calendar, {"summary": "Kept", "start": when(at(2, 9)), "end": when(at(2, 10))})
    gone = google.user_create_event(calendar, {"summary": "Gone", "start": when(at(2, 11)), "end": when(at(2, 12))})
    pull(connection)
    kept_pk = OtherEvent.objects.get(google_event_id=kept["id"]).pk
    assert GoogleCalendar.objects.get(calendar_id=calendar).sync_token
    google.clear_requests()
    pull(connection)
    assert google.count_requests(path_contains="/events", method="GET") == 1  # incremental: one page, nothing new
    google.user_delete_event(calendar, gone["id"])
    google.user_create_event(calendar, {"summary": "New", "start": when(at(3, 9)), "end": when(at(3, 10))})
    google.expire_sync_tokens(calendar)
    pull(connection)
    titles = set(OtherEvent.objects.exclude(google_event_id="").values_list("title", flat=True))
    assert titles == {"Kept", "New"}
    assert OtherEvent.objects.get(google_event_id=kept["id"]).pk == kept_pk  # updated in place, not re-created


def test_deleting_in_google_follows_the_help_page(google, clinic_a, clinician, clinician_client):
    membership, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    noted = future_appointment(clinic_a, practitioner, days=2)
    Appointment.objects.filter(pk=noted.pk).update(status=AppointmentStatus.COMPLETED, notes_completed=True)
    plain = future_appointment(clinic_a, practitioner, days=3)
    event = OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Admin time", starts_at=at(4, 9))
    announce_calendar_change([practitioner.pk], events=[event.pk])
    for obj, kind in ((noted, "csa"), (plain, "csa"), (event, "cse")):
        google.user_delete_event(calendar, kind + obj.public_id.hex)
    pull(connection)
    # Completed notes: ignored here, and back in Google at its next sync trigger.
    assert Appointment.objects.get(pk=noted.pk).status == AppointmentStatus.COMPLETED
    assert GoogleEvent.objects.get(key=f"a{noted.pk}").deleted_in_google
    assert "csa" + noted.public_id.hex not in ours(google, connection)
    announce_calendar_change([practitioner.pk], appointments=[noted.pk])
    # Google refuses the deleted event's id for good: it comes back under a new one (test_google_refusals.py).
    back = GoogleEvent.objects.get(key=f"a{noted.pk}").event_id
    assert back != "csa" + noted.public_id.hex
    assert ours(google, connection)[back]["status"] == "confirmed"
    # Without completed notes the deletion is a cancellation; an other event is deleted.
    assert Appointment.objects.get(pk=plain.pk).status == AppointmentStatus.CANCELLED
    assert not OtherEvent.objects.filter(pk=event.pk).exists()
    assert "csa" + plain.public_id.hex not in ours(google, connection)


def test_secondary_calendars_recurring_forks_stay_tied_and_removal_keeps_events(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    google.set_browser_user(EMAIL)
    personal = google.user_create_calendar(EMAIL, "Personal")
    connection = connect(clinician_client, google, practitioner)
    secondary = GoogleCalendar.objects.get(calendar_id=personal)
    page = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert "Personal" in page and "Not synced · turn on" in page
    weekly = google.user_create_event(
        personal,
        {
            "summary": "Yoga",
            "start": {**when(at(1, 18)), "timeZone": "UTC"},
            "end": {**when(at(1, 19)), "timeZone": "UTC"},
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
        },
    )
    sync_secondary(clinician_client, google, practitioner, secondary, selected=True)
    yoga = OtherEvent.objects.filter(google_recurring_id=weekly["id"]).order_by("starts_at")
    assert yoga.count() == 4 and {e.google_calendar_id for e in yoga} == {personal}
    # "This event": the fork is still the secondary calendar's.
    second = yoga[1]
    google.user_update_event(
        personal, second.google_event_id, {"summary": "Yoga (late)", "start": when(at(8, 19)), "end": when(at(8, 20))}
    )
    # "This and future": a new series in the same calendar.
    google.user_create_event(
        personal,
        {
            "summary": "Yoga (new time)",
            "start": {**when(at(15, 7)), "timeZone": "UTC"},
            "end": {**when(at(15, 8)), "timeZone": "UTC"},
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=2"],
        },
    )
    pull(connection)
    forked = OtherEvent.objects.get(google_event_id=second.google_event_id)
    assert (forked.title, forked.google_calendar_id) == ("Yoga (late)", personal)
    assert OtherEvent.objects.filter(title="Yoga (new time)", google_calendar_id=personal).count() == 2
    # Turning it off keeps what was pulled, tied to it, and never sends it to another calendar.
    sync_secondary(clinician_client, google, practitioner, secondary, selected=False)
    assert OtherEvent.objects.filter(google_calendar_id=personal).count() == 6  # 4 of the series (one forked), 2 new
    google_connect.resync_all(connection)
    assert not any(e["summary"].startswith("Yoga") for e in google_events(google, connection))
    google.user_create_event(personal, {"summary": "After removal", "start": when(at(2, 7)), "end": when(at(2, 8))})
    pull(connection)
    assert not OtherEvent.objects.filter(title="After removal").exists()


# Switching and access ---------------------------------------------------------------------------------------


def save_settings(client, practitioner, *, sync_type: str, mode: str = "initials"):
    return client.post(
        reverse("calendar_sync:index"),
        {
            "action": "save",
            "practitioner": str(practitioner.public_id),
            "enabled": "on",
            "identifier_mode": mode,
            "sync_type": sync_type,
        },
    )


def test_one_way_clears_google_events_and_toggling_back_resyncs_with_the_new_mode(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    appointment = future_appointment(clinic_a, practitioner)
    google.user_create_event(
        connection.default_calendar_id, {"summary": "Gym", "start": when(at(2, 7)), "end": when(at(2, 8))}
    )
    pull(connection)
    assert OtherEvent.objects.filter(title="Gym").exists()
    assert save_settings(clinician_client, practitioner, sync_type="one_way", mode="first_name").status_code == 302
    assert not OtherEvent.objects.exclude(google_event_id="").exists()
    page = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert "Subscription URL" in page
    # The title in Google keeps the old mode until the sync type is toggled back.
    assert ours(google, connection)["csa" + appointment.public_id.hex]["summary"].startswith(
        f"🔒 {appointment.patient.internal_id}"
    )
    assert save_settings(clinician_client, practitioner, sync_type="two_way", mode="first_name").status_code == 302
    assert ours(google, connection)["csa" + appointment.public_id.hex]["summary"].startswith("🔒 Nadia")
    assert OtherEvent.objects.filter(title="Gym").exists()  # pulled again


def test_internal_ids_turned_off_reach_google_as_initials_and_come_back_when_on(
    google, clinic_a, clinician, clinician_client, admin_client_a
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    appointment = future_appointment(clinic_a, practitioner)
    event_id = "csa" + appointment.public_id.hex
    kind = appointment.slot_type.name
    assert ours(google, connection)[event_id]["summary"] == f"🔒 {appointment.patient.internal_id} · {kind}"

    def turn_internal_ids(on: bool):
        data = {"name": clinic_a.name, "time_zone": clinic_a.time_zone} | ({"internal_ids_enabled": "on"} if on else {})
        assert admin_client_a.post(reverse("clinic:settings"), data).status_code == 302

    turn_internal_ids(False)
    assert ours(google, connection)[event_id]["summary"] == f"🔒 NQ · {kind}"
    assert appointment.patient.internal_id not in str(google_events(google, connection))
    assert not GooglePending.objects.exists()
    turn_internal_ids(True)
    assert ours(google, connection)[event_id]["summary"] == f"🔒 {appointment.patient.internal_id} · {kind}"


def test_a_revoked_grant_breaks_the_connection_stops_retrying_and_says_so(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    google.revoke_all(EMAIL)
    google.expire_access_tokens(EMAIL)
    future_appointment(clinic_a, practitioner)
    connection.refresh_from_db()
    assert connection.state == GoogleState.BROKEN
    google.clear_requests()
    future_appointment(clinic_a, practitioner, days=6)
    pull(connection)
    assert google.count_requests() == 0  # no more tries
    page = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert "Two-way sync has stopped." in page and "Connect with Google again" in page


def test_disconnect_is_always_possible_and_revokes_the_grant(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    refresh = unseal(connection.refresh_token)
    google.user_create_event(
        connection.default_calendar_id, {"summary": "Gym", "start": when(at(2, 7)), "end": when(at(2, 8))}
    )
    pull(connection)
    ask = clinician_client.get(reverse("calendar_sync:index") + "?disconnect=ask").content.decode()
    assert "Disconnect from Google?" in ask
    response = clinician_client.post(
        reverse("calendar_sync:google-disconnect"), {"practitioner": str(practitioner.public_id)}
    )
    assert response.status_code == 302
    assert not GoogleConnection.objects.exists() and not OtherEvent.objects.exclude(google_event_id="").exists()
    assert FeedSubscription.objects.get(practitioner=practitioner).sync_type == SyncType.ONE_WAY
    assert not google.revoke(refresh)  # already revoked by us


# Faults -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 429},
        {"status": 403, "reason": "rateLimitExceeded"},
        {"status": 503},
    ],
)
def test_transient_refusals_retry_with_nothing_lost_or_duplicated(google, clinic_a, clinician, clinician_client, fault):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    google.fail_next(2, **fault)
    appointment = future_appointment(clinic_a, practitioner)
    events = [e for e in google_events(google, connection) if e["id"] == "csa" + appointment.public_id.hex]
    assert len(events) == 1
    assert not GooglePending.objects.exists()


def test_a_dropped_connection_or_a_replayed_insert_duplicates_nothing(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    google.drop_next(1)
    appointment = future_appointment(clinic_a, practitioner)
    # A crash after Google took the insert but before we wrote it down: the push runs again.
    GoogleEvent.objects.filter(key=f"a{appointment.pk}").delete()
    announce_calendar_change([practitioner.pk], appointments=[appointment.pk])
    matching = [e for e in google_events(google, connection) if e["id"] == "csa" + appointment.public_id.hex]
    assert len(matching) == 1
    assert GoogleEvent.objects.filter(key=f"a{appointment.pk}").count() == 1


def test_a_deleted_event_is_not_resurrected_by_a_replayed_push(google, clinic_a, clinician, clinician_client):
    membership, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    appointment = future_appointment(clinic_a, practitioner)
    appointment_cancel(clinic=clinic_a, actor=membership.user, appointment=appointment, reason="Moved away")
    announce_calendar_change([practitioner.pk], appointments=[appointment.pk])  # the replay
    tasks.google_push.delay(connection.pk).get()
    assert "csa" + appointment.public_id.hex not in ours(google, connection)


def test_quota_exceeded_backs_off_for_hours_and_keeps_the_changes(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    google.fail_next(1, status=403, reason="quotaExceeded")
    appointment = future_appointment(clinic_a, practitioner)
    connection.refresh_from_db()
    assert connection.backoff_until >= timezone.now() + dt.timedelta(hours=2)
    assert GooglePending.objects.filter(key=f"a{appointment.pk}").exists()
    google.clear_requests()
    tasks.google_push.delay(connection.pk).get()
    assert google.count_requests() == 0
    GoogleConnection.objects.filter(pk=connection.pk).update(backoff_until=timezone.now() - dt.timedelta(seconds=1))
    assert tasks.deliver_waiting.delay().get()["pushes"] == 1  # the per-minute sweep, once the wait is over
    assert "csa" + appointment.public_id.hex in ours(google, connection)
    assert not GooglePending.objects.exists()


# Notifications ----------------------------------------------------------------------------------------------


def test_channels_are_watched_renewed_and_a_notification_only_queues_a_pull(
    google, settings, clinic_a, clinician, clinician_client, client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    settings.GOOGLE_WEBHOOK_ORIGIN = "http://127.0.0.1:9"  # the fake delivers nowhere useful; we post by hand
    assert tasks.google_renew_channels.delay().get() == 1
    channel = GoogleChannel.objects.get()
    assert channel.expires_at > timezone.now() + dt.timedelta(days=6)
    assert tasks.google_renew_channels.delay().get() == 0  # still fresh
    google.user_create_event(
        connection.default_calendar_id, {"summary": "Call", "start": when(at(2, 7)), "end": when(at(2, 8))}
    )
    token = google.channels()[0]["token"]
    response = client.post(
        reverse("calendar_sync:google-webhook"),
        headers={
            "X-Goog-Channel-ID": channel.channel_id,
            "X-Goog-Channel-Token": token,
            "X-Goog-Resource-State": "exists",
        },
    )
    assert response.status_code == 204
    assert OtherEvent.objects.filter(title="Call").exists()
    forged = client.post(
        reverse("calendar_sync:google-webhook"),
        headers={"X-Goog-Channel-ID": channel.channel_id, "X-Goog-Channel-Token": "guess"},
    )
    assert forged.status_code == 404
    GoogleChannel.objects.update(expires_at=timezone.now() + dt.timedelta(hours=3))
    assert tasks.google_renew_channels.delay().get() == 1
    renewed = GoogleChannel.objects.get()
    assert renewed.channel_id != channel.channel_id
    assert [c["id"] for c in google.channels() if c["active"]] == [renewed.channel_id]  # the old one stopped


# Tenancy and queries ----------------------------------------------------------------------------------------


def test_another_clinic_cannot_reach_a_connection(google, clinic_a, clinic_b, clinician, clinician_client):
    _, practitioner = clinician
    own = OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Clinic A only", starts_at=at(2, 9))
    connection = connect(clinician_client, google, practitioner)
    calendar = GoogleCalendar.objects.filter(connection=connection).first()
    outsider = MembershipFactory(clinic=clinic_b, role="admin")
    outsider_practitioner = PractitionerFactory(clinic=clinic_b, user=outsider.user)
    other = logged_in_client(outsider)
    assert (
        other.post(
            reverse("calendar_sync:google-calendar"), {"calendar": str(calendar.public_id), "selected": "1"}
        ).status_code
        == 404
    )
    assert (
        other.post(
            reverse("calendar_sync:google-disconnect"), {"practitioner": str(practitioner.public_id)}
        ).status_code
        == 404
    )
    assert GoogleConnection.objects.filter(pk=connection.pk).exists()
    # Clinic B's pushes never touch clinic A's calendar: a change on clinic B's calendar sends nothing there,
    # and what is there is clinic A's own event, sent when connecting.
    theirs = OtherEventFactory(
        clinic=clinic_b, practitioner=outsider_practitioner, title="Clinic B only", starts_at=at(2, 9)
    )
    announce_calendar_change([outsider_practitioner.pk], events=[theirs.pk])
    assert [e["id"] for e in google_events(google, connection)] == ["cse" + own.public_id.hex]


def test_the_sync_page_reads_a_bounded_number_of_queries(
    google, clinic_a, clinician, clinician_client, django_assert_max_num_queries
):
    _, practitioner = clinician
    google.set_browser_user(EMAIL)
    google.user_create_calendar(EMAIL, "One")
    connection = connect(clinician_client, google, practitioner)
    url = reverse("calendar_sync:index")
    with django_assert_max_num_queries(12) as small:
        clinician_client.get(url)
    for n in range(20):
        GoogleCalendar.objects.create(clinic=clinic_a, connection=connection, calendar_id=f"c{n}", summary=f"Cal {n}")
    with django_assert_max_num_queries(12) as large:
        clinician_client.get(url)
    assert len(large.captured_queries) == len(small.captured_queries)


# Our calendar --------------------------------------------------------------------------------------------------


def test_the_calendar_marks_google_events_and_locks_synced_client_events(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    appointment = future_appointment(clinic_a, practitioner, days=2)
    google.user_create_event(
        connection.default_calendar_id, {"summary": "Dentist", "start": when(at(2, 7)), "end": when(at(2, 8))}
    )
    pull(connection)
    day = appointment.starts_at.date().isoformat()
    body = clinician_client.get(
        reverse("scheduling:calendar") + f"?view=day&date={day}&tab={practitioner.public_id}"
    ).content.decode()
    body = drawn(body)  # its slots as calendar.js draws them
    assert 'aria-label="From Google Calendar">G</span> Dentist' in body
    assert 'class="ico ico-lock" role="img" aria-label="Synced to Google"' in body
    pulled = OtherEvent.objects.get(title="Dentist")
    shown = clinician_client.get(reverse("scheduling:event-edit", args=[pulled.public_id]))
    assert shown.status_code == 200 and "changed or deleted in Google Calendar" in shown.content.decode()
    refused = clinician_client.post(
        reverse("scheduling:event-edit", args=[pulled.public_id]), {"title": "Mine now", "kind": "other"}
    )
    assert refused.status_code == 409 and "change or delete it there" in refused.content.decode()
    assert clinician_client.post(reverse("scheduling:event-delete", args=[pulled.public_id])).status_code == 409
    assert OtherEvent.objects.get(pk=pulled.pk).title == "Dentist"
    # Without two-way sync there is no lock.
    save_settings(clinician_client, practitioner, sync_type="one_way", mode="internal_id")
    body = clinician_client.get(
        reverse("scheduling:calendar") + f"?view=day&date={day}&tab={practitioner.public_id}"
    ).content.decode()
    body = drawn(body)  # its slots as calendar.js draws them
    assert "Synced to Google" not in body


@pytest.mark.django_db
def test_beat_sweeps_pulls_and_renews_channels_with_tasks_that_exist(settings):
    from clinic.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled == {
        "calendar_sync.tasks.deliver_waiting": settings.SWEEP_SECONDS,
        "calendar_sync.tasks.google_pull_all": settings.GOOGLE_PULL_MINUTES * 60.0,
        "calendar_sync.tasks.google_renew_channels": 3600.0,
        "notifications.tasks.tick": settings.SWEEP_SECONDS,
        "scheduling.tasks.holds_expire": settings.SWEEP_SECONDS,
        "scheduling.tasks.waitlist_sweep": settings.SWEEP_SECONDS,
        "scheduling.tasks.news_sweep": settings.SWEEP_SECONDS,
        "online.tasks.checks_purge": 3600.0,
        "privacy.tasks.break_glass_alerts_sweep": settings.SWEEP_SECONDS,
        "privacy.tasks.clinic_export_sweep": settings.SWEEP_SECONDS,
    }
    assert set(scheduled) <= set(app.tasks)
    assert settings.SWEEP_SECONDS == 60.0  # every minute, unless a test asks for less


def test_sync_now_pulls_google_and_pushes_what_differs(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    google.user_create_event(
        connection.default_calendar_id, {"summary": "Dentist", "start": when(at(2, 7)), "end": when(at(2, 8))}
    )
    appointment = future_appointment(clinic_a, practitioner)
    GoogleEvent.objects.filter(key=f"a{appointment.pk}").update(fingerprint="")  # as if it had changed here
    google.user_set_title(connection.default_calendar_id, "csa" + appointment.public_id.hex, "Edited in Google")
    response = clinician_client.post(
        reverse("calendar_sync:google-sync-now"), {"practitioner": str(practitioner.public_id)}, follow=True
    )
    assert "Sync started." in response.content.decode()
    assert OtherEvent.objects.filter(title="Dentist", google_calendar_id=connection.default_calendar_id).exists()
    assert ours(google, connection)["csa" + appointment.public_id.hex]["summary"].startswith("🔒 ")
    assert not GooglePending.objects.exists()
