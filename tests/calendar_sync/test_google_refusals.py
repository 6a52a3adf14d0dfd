"""Google as Google is (issue 18): events deleted in Google's web UI come back under a new id, refusals that are
not retried show on the Sync page until Sync now, edits made in both places (If-Match, patch, guests), and
calendars that refuse push notifications. Each runs against the fake Google, which answers as the real one is
documented or reported to (see tests/google_fake)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from calendar_sync import tasks
from calendar_sync.google.events import OUR_EVENT_ID
from calendar_sync.models import GoogleCalendar, GoogleChannel, GoogleEvent, GooglePending, GoogleRefusal
from scheduling.models import Appointment, AppointmentStatus, OtherEvent
from scheduling.signals import announce_calendar_change
from tests.calendar_sync.google_helpers import EMAIL, connect, future_appointment, sync_secondary
from tests.factories import OtherEventFactory, PatientFactory

pytestmark = pytest.mark.django_db(transaction=True)


def at(days: int, hour: int) -> dt.datetime:
    day = timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def pull(connection):
    return tasks.google_pull.delay(connection.pk).get()


def mapped_id(key: str) -> str:
    return GoogleEvent.objects.get(key=key).event_id


def moved(appointment: Appointment, minutes: int = 30) -> None:
    """The appointment moved here, announced as the booking services announce a change."""
    shift = dt.timedelta(minutes=minutes)
    Appointment.objects.filter(pk=appointment.pk).update(starts_at=F("starts_at") + shift, ends_at=F("ends_at") + shift)
    announce_calendar_change([appointment.practitioner_id], appointments=[appointment.pk])


# 1. An event deleted in Google comes back at the next change ---------------------------------------------------


def test_a_client_event_deleted_in_google_comes_back_under_a_new_id_at_its_next_change(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    noted = future_appointment(clinic_a, practitioner, days=2)
    Appointment.objects.filter(pk=noted.pk).update(status=AppointmentStatus.COMPLETED, notes_completed=True)
    first_id = mapped_id(f"a{noted.pk}")
    google.user_delete_event(calendar, first_id)
    pull(connection)
    assert GoogleEvent.objects.get(key=f"a{noted.pk}").deleted_in_google  # the help page: ignored here

    moved(noted)

    new_id = mapped_id(f"a{noted.pk}")
    assert new_id != first_id and OUR_EVENT_ID.match(new_id)
    back = google.event(calendar, new_id)
    assert back["status"] == "confirmed" and back["summary"].startswith("🔒 ")
    assert google.event(calendar, first_id)["status"] == "cancelled"  # the old id stays Google's
    row = GoogleEvent.objects.get(key=f"a{noted.pk}")
    assert not row.deleted_in_google and row.fingerprint
    assert not GooglePending.objects.exists() and not GoogleRefusal.objects.exists()
    # Ours under its new id: a pull finds nothing changed, and a title changed in Google is ours again.
    google.user_set_title(calendar, new_id, "Renamed in Google")
    pull(connection)
    assert google.event(calendar, new_id)["summary"].startswith("🔒 ")


def test_an_event_deleted_and_purged_in_google_before_we_noticed_comes_back_with_a_log(
    google, clinic_a, clinician, clinician_client, caplog
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    appointment = future_appointment(clinic_a, practitioner, days=3)
    first_id = mapped_id(f"a{appointment.pk}")
    google.user_delete_event(calendar, first_id)
    google.user_purge_event(calendar, first_id)  # the bin emptied: 404 to an update, 409 to an insert

    with caplog.at_level(logging.INFO, logger="calendar_sync"):
        moved(appointment)

    new_id = mapped_id(f"a{appointment.pk}")
    assert new_id != first_id
    assert google.event(calendar, new_id)["status"] == "confirmed"
    assert google.event(calendar, first_id) is None
    assert not GooglePending.objects.exists()
    assert any(f"a{appointment.pk}" in r.getMessage() and "new id" in r.getMessage() for r in caplog.records)
    assert "Nadia" not in caplog.text and "Quist" not in caplog.text


def test_the_help_pages_deleted_event_rules_hold_with_google_refusing_the_old_id(
    google, clinic_a, clinician, clinician_client
):
    """Sync now after a deletion in Google: the completed appointment is back, the cancelled one stays away."""
    membership, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    noted = future_appointment(clinic_a, practitioner, days=2)
    Appointment.objects.filter(pk=noted.pk).update(status=AppointmentStatus.COMPLETED, notes_completed=True)
    plain = future_appointment(clinic_a, practitioner, days=3)
    for appointment in (noted, plain):
        google.user_delete_event(calendar, mapped_id(f"a{appointment.pk}"))
    pull(connection)
    clinician_client.post(reverse("calendar_sync:google-sync-now"), {"practitioner": str(practitioner.public_id)})
    assert google.event(calendar, mapped_id(f"a{noted.pk}"))["status"] == "confirmed"
    assert Appointment.objects.get(pk=plain.pk).status == AppointmentStatus.CANCELLED
    assert not GoogleEvent.objects.filter(key=f"a{plain.pk}").exists()
    live = [e for e in google.events(calendar) if OUR_EVENT_ID.match(e["id"])]
    assert [e["id"] for e in live] == [mapped_id(f"a{noted.pk}")]


# 2. Permanent refusals are visible -------------------------------------------------------------------------------


def shared_default(google, clinician_client, practitioner):
    """The default calendar is an existing one that a colleague owns and shares with the practitioner."""
    google.set_browser_user(EMAIL)
    owner = "practice.manager@example.com"
    google.add_account(owner)
    shared = google.user_create_calendar(owner, "Clinic rota (shared)")
    google.user_share_calendar(shared, EMAIL, "writer")
    return connect(clinician_client, google, practitioner, default=shared), shared


def test_a_refused_write_is_never_recorded_as_synced_shows_on_the_sync_page_and_is_retried_by_sync_now(
    google, clinic_a, clinician, clinician_client, caplog
):
    _, practitioner = clinician
    connection, shared = shared_default(google, clinician_client, practitioner)
    appointment = future_appointment(clinic_a, practitioner, days=2)
    sent = GoogleEvent.objects.get(key=f"a{appointment.pk}").fingerprint
    google.user_share_calendar(shared, EMAIL, "reader")  # write access lost

    with caplog.at_level(logging.INFO, logger="calendar_sync"):
        moved(appointment)
        new = OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Audit", starts_at=at(4, 9))
        announce_calendar_change([practitioner.pk], events=[new.pk])

    assert GoogleEvent.objects.get(key=f"a{appointment.pk}").fingerprint == sent  # not recorded as synced
    assert not GoogleEvent.objects.filter(key=f"e{new.pk}").exists()
    refusals = {r.key: (r.verb, r.status, r.reason) for r in GoogleRefusal.objects.all()}
    assert refusals[f"a{appointment.pk}"][1:] == (403, "requiredAccessLevel")
    assert refusals[f"e{new.pk}"] == ("insert", 403, "requiredAccessLevel")
    assert not GooglePending.objects.exists()  # not retried forever
    # Logged with ids only.
    logged = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert logged and all("Nadia" not in m and "Audit" not in m for m in logged)
    assert any(f"e{new.pk}" in m and "requiredAccessLevel" in m for m in logged)
    page = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert "Google refuses changes to your Default Calendar" in page
    assert "Clinic rota (shared)" in page and "Sync now" in page
    # Nothing retries by itself.
    google.clear_requests()
    assert tasks.deliver_waiting.delay().get()["pushes"] == 0
    assert google.count_requests() == 0

    google.user_share_calendar(shared, EMAIL, "writer")  # the owner gives access back; the practitioner acts
    clinician_client.post(reverse("calendar_sync:google-sync-now"), {"practitioner": str(practitioner.public_id)})

    assert not GoogleRefusal.objects.exists()
    assert google.event(shared, mapped_id(f"e{new.pk}"))["summary"] == "Audit"
    start = google.event(shared, mapped_id(f"a{appointment.pk}"))["start"]["dateTime"]
    assert start.startswith(Appointment.objects.get(pk=appointment.pk).starts_at.strftime("%Y-%m-%dT%H:%M"))
    page = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert "Google refuses" not in page


def test_a_refused_listing_of_a_secondary_calendar_shows_and_stops_until_sync_now(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    google.set_browser_user(EMAIL)
    owner = "colleague@example.com"
    google.add_account(owner)
    theirs = google.user_create_calendar(owner, "Colleague's diary")
    google.user_share_calendar(theirs, EMAIL, "reader")
    connection = connect(clinician_client, google, practitioner)
    row = GoogleCalendar.objects.get(calendar_id=theirs)
    sync_secondary(clinician_client, google, practitioner, row)
    in_path = theirs.split("@")[0]  # how the calendar's id shows in a request's path
    google.fail_next(1, status=403, reason="forbidden", path_contains=in_path)
    pull(connection)  # a 403 that is not a rate limit: not retried, shown
    refusal = GoogleRefusal.objects.get()
    assert (refusal.key, refusal.verb, refusal.status) == (f"c{row.pk}", "list", 403)
    page = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert "Google refused reading “Colleague&#x27;s diary”" in page
    google.clear_requests()
    pull(connection)
    assert google.count_requests(path_contains=in_path) == 0  # left alone until the practitioner acts
    clinician_client.post(reverse("calendar_sync:google-sync-now"), {"practitioner": str(practitioner.public_id)})
    assert not GoogleRefusal.objects.exists()
    assert google.count_requests(path_contains=in_path) == 1


# 6. Edits in both places ---------------------------------------------------------------------------------------


def test_reminders_and_colour_added_in_google_survive_our_next_push(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    event = OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Supervision", starts_at=at(3, 10))
    announce_calendar_change([practitioner.pk], events=[event.pk])
    event_id = mapped_id(f"e{event.pk}")
    reminders = {"useDefault": False, "overrides": [{"method": "popup", "minutes": 45}]}
    google.user_update_event(calendar, event_id, {"reminders": reminders, "colorId": "5"})
    pull(connection)  # nothing a person sees changed

    OtherEvent.objects.filter(pk=event.pk).update(title="Supervision (moved)")
    announce_calendar_change([practitioner.pk], events=[event.pk])

    held = google.event(calendar, event_id)
    assert held["summary"] == "Supervision (moved)"
    assert held["reminders"] == reminders and held["colorId"] == "5"


def test_a_write_meeting_a_newer_google_edit_keeps_ours_for_client_events_and_theirs_for_others(
    google, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    appointment = future_appointment(clinic_a, practitioner, days=3)
    event = OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Team huddle", starts_at=at(4, 8))
    announce_calendar_change([practitioner.pk], events=[event.pk])
    client_id, other_id = mapped_id(f"a{appointment.pk}"), mapped_id(f"e{event.pk}")
    # Edited in Google, and changed here before any pull: our stored ETags are stale (412 on If-Match).
    google.user_update_event(calendar, client_id, {"summary": "Renamed in Google", "colorId": "11"})
    google.user_update_event(calendar, other_id, {"summary": "Huddle (Google)", "location": "Room 4"})
    google.clear_requests()
    moved(appointment)
    OtherEvent.objects.filter(pk=event.pk).update(title="Team huddle (here)")
    announce_calendar_change([practitioner.pk], events=[event.pk])

    client_event = google.event(calendar, client_id)
    assert client_event["summary"].startswith("🔒 ") and client_event["colorId"] == "11"
    starts = Appointment.objects.get(pk=appointment.pk).starts_at
    assert client_event["start"]["dateTime"].startswith(starts.strftime("%Y-%m-%dT%H:%M"))
    # Theirs: the other event keeps Google's edit, and here follows it.
    other = google.event(calendar, other_id)
    assert (other["summary"], other["location"]) == ("Huddle (Google)", "Room 4")
    assert OtherEvent.objects.get(pk=event.pk).title == "Huddle (Google)"
    assert (
        google.count_requests(path_contains=f"/events/{other_id}", method="GET", batched=None) >= 1
    )  # re-read after the 412
    assert not GooglePending.objects.exists()
    # Nothing flips back and forth: a pull and a push later, Google holds the same.
    pull(connection)
    assert google.event(calendar, other_id)["summary"] == "Huddle (Google)"
    assert OtherEvent.objects.get(pk=event.pk).title == "Huddle (Google)"


def test_guests_added_to_a_client_event_in_google_are_removed(google, clinic_a, clinician, clinician_client):
    _, practitioner = clinician
    connection = connect(clinician_client, google, practitioner)
    calendar = connection.default_calendar_id
    patient = PatientFactory(clinic=clinic_a, first_name="Nadia", last_name="Quist")
    appointment = future_appointment(clinic_a, practitioner, patient=patient)
    event_id = mapped_id(f"a{appointment.pk}")
    guests = [{"email": "friend@example.com"}, {"email": "spouse@example.com"}]
    google.user_update_event(calendar, event_id, {"attendees": guests})
    pull(connection)
    assert not google.event(calendar, event_id).get("attendees")
    # Guests on the practitioner's own other events are theirs to keep.
    event = OtherEventFactory(clinic=clinic_a, practitioner=practitioner, title="Lunch", starts_at=at(2, 12))
    announce_calendar_change([practitioner.pk], events=[event.pk])
    google.user_update_event(calendar, mapped_id(f"e{event.pk}"), {"attendees": guests})
    pull(connection)
    assert len(google.event(calendar, mapped_id(f"e{event.pk}"))["attendees"]) == 2


# 8. Calendars that refuse push ----------------------------------------------------------------------------------


def test_a_calendar_that_refuses_push_is_polled_and_the_sync_page_says_so(
    google, settings, clinic_a, clinician, clinician_client
):
    _, practitioner = clinician
    google.set_browser_user(EMAIL)
    holidays = google.user_subscribe_calendar(EMAIL, "Holidays in the United Kingdom")
    boxing_day = {"summary": "Boxing Day", "start": {"date": "2026-12-26"}, "end": {"date": "2026-12-27"}}
    google.user_create_event(holidays, boxing_day)
    connection = connect(clinician_client, google, practitioner)
    row = GoogleCalendar.objects.get(calendar_id=holidays)
    assert not row.writable
    sync_secondary(clinician_client, google, practitioner, row)
    settings.GOOGLE_WEBHOOK_ORIGIN = "http://127.0.0.1:9"
    google.clear_requests()
    assert tasks.google_renew_channels.delay().get() == 1  # the default calendar; the holidays refuse
    assert GoogleCalendar.objects.get(pk=row.pk).push_refused
    assert GoogleChannel.objects.count() == 1
    watched = google.count_requests(path_contains="/watch")
    assert tasks.google_renew_channels.delay().get() == 0
    assert google.count_requests(path_contains="/watch") == watched  # not asked again
    pull(connection)  # polled as every connection is
    assert OtherEvent.objects.filter(title="Boxing Day", google_calendar_id=holidays).exists()
    page = clinician_client.get(reverse("calendar_sync:index")).content.decode()
    assert "Google sends no change notifications for this calendar" in page
    assert f"every {settings.GOOGLE_PULL_MINUTES} minutes" in page
