"""The ICS subscription feed: Sync Calendar, the secret URL, the RFC 5545 feed read back by three libraries,
identifier modes, SEQUENCE and UIDs, 304s, rebuilds after commit, and tenancy."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import re
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
import time_machine
import vobject
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from icalendar.parser import Contentline

from calendar_sync import crypto
from calendar_sync.feed import subscriptions
from calendar_sync.feed.sources import WINDOW_AHEAD, WINDOW_BACK
from calendar_sync.models import FeedChange, FeedDocument, FeedSubscription
from clinic.models import Location, Role
from patients.display import IdentifierMode
from scheduling.models import Appointment
from scheduling.services.booking import BookingRequest, appointment_book, appointment_cancel
from scheduling.services.calendar import EventData, other_event_save
from scheduling.signals import announce_calendar_change
from tests.conftest import logged_in_client
from tests.factories import (
    MembershipFactory,
    OtherEventFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_rota,
    book,
)

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")
NOW = dt.datetime(2027, 3, 1, 9, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def therapist(clinic_a):
    return PractitionerFactory(clinic=clinic_a, name="Dr Feed")


@pytest.fixture
def patient(clinic_a):
    return PatientFactory(clinic=clinic_a, first_name="Nadia", last_name="Quist", internal_id="P-00042")


@pytest.fixture
def appointment(clinic_a, therapist, patient):
    therapy = SlotTypeFactory(clinic=clinic_a, name="Therapy 50", default_length_minutes=50)
    allocate_rota(
        clinic_a, therapist, therapy, dt.date(2027, 3, 8), dt.date(2027, 3, 8), weekdays=(), start=dt.time(10)
    )
    slot = therapist.sessions.get().slots.get()
    return book(slot, patient)


def enable(client, practitioner, mode=IdentifierMode.INITIALS, enabled=True):
    data = {"practitioner": str(practitioner.public_id), "action": "save", "identifier_mode": mode}
    if enabled:
        data["enabled"] = "on"
    response = client.post(reverse("calendar_sync:index"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return FeedSubscription.objects.get(practitioner=practitioner)


def feed_url(subscription):
    return reverse("calendar_sync:feed", args=[subscriptions.feed_token(subscription)])


def fetch(_client, subscription, **headers):
    """As a calendar app fetches it: no session, no login."""
    return Client().get(feed_url(subscription), headers=headers)


def parsed(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    return icalendar.Calendar.from_ical(response.content)


def events(calendar):
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


def test_sync_page_offers_the_modes_never_full_name_by_default(admin_client_a, clinic_a, therapist):
    page = admin_client_a.get(reverse("calendar_sync:index"), {"practitioner": therapist.public_id})
    text = page.content.decode()
    assert "Allow your calendar to sync to an external calendaring application" in text
    for label in ("Internal ID", "Initials", "First name", "Full name"):
        assert label in text
    assert "Personal data." in text and "HIPAA" in text
    assert page.context["form"]["identifier_mode"].value() == IdentifierMode.INTERNAL_ID  # the clinic uses IDs
    assert "Subscription URL" not in text  # nothing to subscribe to until it is allowed


def test_internal_id_needs_the_clinic_setting(clinic_b, outsider_client, outsider_b):
    practitioner = PractitionerFactory(clinic=clinic_b)
    page = outsider_client.get(reverse("calendar_sync:index"), {"practitioner": practitioner.public_id})
    text = page.content.decode()
    assert page.context["form"]["identifier_mode"].value() == IdentifierMode.INITIALS
    assert re.search(r'value="internal_id"[^>]*disabled', text)
    assert reverse("clinic:settings") in text and "Internal IDs are off" in text
    refused = outsider_client.post(
        reverse("calendar_sync:index"),
        {
            "practitioner": str(practitioner.public_id),
            "action": "save",
            "enabled": "on",
            "identifier_mode": "internal_id",
        },
    )
    assert refused.status_code == 422 and "Internal IDs are not enabled" in refused.content.decode()
    assert not FeedSubscription.objects.exists()


def turn_internal_ids(client, clinic, on: bool):
    data = {"name": clinic.name, "time_zone": clinic.time_zone}
    if on:
        data["internal_ids_enabled"] = "on"
    assert client.post(reverse("clinic:settings"), data).status_code == 302


def stored_summaries(subscription):
    document = FeedDocument.objects.get(subscription=subscription)
    body = gzip.decompress(bytes(document.body)).decode()
    return document.built_mode, [str(e["SUMMARY"]) for e in icalendar.Calendar.from_ical(body).walk("VEVENT")]


def test_an_internal_id_feed_shows_initials_while_the_clinic_has_internal_ids_off(
    admin_client_a, clinic_a, therapist, appointment, django_capture_on_commit_callbacks
):
    subscription = enable(admin_client_a, therapist, mode=IdentifierMode.INTERNAL_ID)
    assert "P-00042 · Therapy 50" in fetch(admin_client_a, subscription).content.decode()
    # Turning internal IDs off rebuilds the feed at once (the change recorded with the setting, built after
    # commit), so a calendar app's next fetch gets the stored feed without the IDs.
    with django_capture_on_commit_callbacks(execute=True):
        turn_internal_ids(admin_client_a, clinic_a, on=False)
    assert stored_summaries(subscription) == ("initials", ["NQ · Therapy 50"])
    body = fetch(admin_client_a, subscription).content.decode()
    assert "NQ · Therapy 50" in body and "P-00042" not in body
    page = admin_client_a.get(reverse("calendar_sync:index"), {"practitioner": therapist.public_id})
    notice = page.content.decode()
    assert "Internal IDs are off for this clinic:</strong> your external calendar shows clients by their initials" in (
        notice
    )
    # The practitioner's choice stays (the page saves without changing it) and comes back with the setting.
    assert page.context["form"]["identifier_mode"].value() == IdentifierMode.INTERNAL_ID
    assert enable(admin_client_a, therapist, mode=IdentifierMode.INTERNAL_ID).identifier_mode == "internal_id"
    with django_capture_on_commit_callbacks(execute=True):
        turn_internal_ids(admin_client_a, clinic_a, on=True)
    assert stored_summaries(subscription) == ("internal_id", ["P-00042 · Therapy 50"])
    page = admin_client_a.get(reverse("calendar_sync:index"), {"practitioner": therapist.public_id})
    assert "Internal IDs are off" not in page.content.decode()


def test_turning_internal_ids_off_records_the_rebuild_with_the_setting_and_waits_on_no_broker(
    admin_client_a, clinic_a, therapist, appointment, django_capture_on_commit_callbacks
):
    internal = enable(admin_client_a, therapist, mode=IdentifierMode.INTERNAL_ID)
    other = enable(admin_client_a, PractitionerFactory(clinic=clinic_a), mode=IdentifierMode.FIRST_NAME)
    fetch(admin_client_a, internal), fetch(admin_client_a, other)
    with django_capture_on_commit_callbacks(execute=False) as nudges:
        turn_internal_ids(admin_client_a, clinic_a, on=False)
    assert set(FeedChange.objects.values_list("subscription_id", "key")) == {(internal.pk, "")}
    assert len(nudges) == 1  # the rebuild's nudge, after commit; the sweep delivers it if the broker is down
    # Even before any worker builds it, the feed never serves the internal IDs again.
    body = fetch(admin_client_a, internal).content.decode()
    assert "NQ · Therapy 50" in body and "P-00042" not in body


def test_allowing_sync_gives_a_url_with_copy_regenerate_and_instructions(admin_client_a, therapist):
    subscription = enable(admin_client_a, therapist)
    page = admin_client_a.get(reverse("calendar_sync:index"), {"practitioner": therapist.public_id}).content.decode()
    assert feed_url(subscription) in page and "data-copy" in page and "Regenerate" in page
    for app in ("Apple Calendar", "Google Calendar", "Outlook"):
        assert app in page
    token = subscriptions.feed_token(subscription)
    assert len(token) == 43 and token not in (subscription.token_hash, subscription.token_salt)
    assert subscription.token_hash == crypto.token_hash(token)


def test_the_feed_is_rfc_5545_read_back_by_three_libraries(admin_client_a, clinic_a, therapist, appointment):
    OtherEventFactory(
        clinic=clinic_a,
        practitioner=therapist,
        title="Supervision; room 2, upstairs",
        starts_at=dt.datetime(2027, 3, 9, 12, tzinfo=dt.UTC),
        ends_at=dt.datetime(2027, 3, 9, 13, tzinfo=dt.UTC),
        busy=False,
    )
    OtherEventFactory(
        clinic=clinic_a,
        practitioner=therapist,
        title="Annual leave",
        all_day=True,
        starts_at=None,
        ends_at=None,
        first_date=dt.date(2027, 3, 15),
        last_date=dt.date(2027, 3, 17),
    )
    subscription = enable(admin_client_a, therapist)
    response = fetch(admin_client_a, subscription)
    calendar = parsed(response)
    assert str(calendar["VERSION"]) == "2.0" and "Clinic Scheduler" in str(calendar["PRODID"])
    assert str(calendar["X-WR-CALNAME"]) == f"Dr Feed · {clinic_a.name}"
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT15M" in response.content.decode()
    assert str(calendar["X-PUBLISHED-TTL"]) == "PT15M"
    found = events(calendar)
    assert len(found) == 3 == len(calendar.walk("VEVENT"))  # one VEVENT each, every UID unique
    booked = found[f"appointment-{appointment.public_id}@clinic-scheduler"]
    assert booked["DTSTART"].dt == dt.datetime(2027, 3, 8, 10, tzinfo=LONDON)
    assert booked["DTSTART"].dt.tzinfo == dt.UTC or booked["DTSTART"].to_ical().endswith(b"Z")
    assert booked["DTSTAMP"].dt.tzinfo is not None and int(booked["SEQUENCE"]) == 0
    assert str(booked["SUMMARY"]) == "NQ · Therapy 50" and str(booked["LOCATION"])
    supervision = next(e for e in found.values() if str(e["SUMMARY"]) == "Supervision; room 2, upstairs")
    assert str(supervision["TRANSP"]) == "TRANSPARENT"
    leave = next(e for e in found.values() if str(e["SUMMARY"]) == "Annual leave")
    assert leave["DTSTART"].dt == dt.date(2027, 3, 15) and leave["DTEND"].dt == dt.date(2027, 3, 18)  # exclusive
    # vobject reads it and finds it valid; recurring-ical-events expands it over the window.
    parsed_by_vobject = vobject.readOne(response.content.decode())
    assert parsed_by_vobject.validate()
    window = recurring_ical_events.of(calendar).between(NOW - WINDOW_BACK, NOW + WINDOW_AHEAD)
    assert {str(e["UID"]) for e in window} == set(found)
    # Lines end with CRLF and none is longer than 75 octets.
    lines = response.content.split(b"\r\n")
    assert lines[-1] == b"" and all(len(line) <= 75 for line in lines)


# RFC 5545 3.1: CONTROL = %x00-08 / %x0A-1F / %x7F, and no TEXT value holds one (tab aside); nor, here, C1.
CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\x80-\x9f]")


def strictly_parsed(body: bytes) -> icalendar.Calendar:
    """The feed read as a strict parser reads it: UTF-8, CRLF lines, no control character in any content
    line, every line split into name, parameters and value by icalendar's strict content-line parser."""
    text = body.decode("utf-8")
    assert text.endswith("\r\n")
    unfolded: list[str] = []
    for line in text[:-2].split("\r\n"):
        assert "\r" not in line and "\n" not in line, repr(line)
        if line.startswith((" ", "\t")):
            unfolded[-1] += line[1:]
        else:
            unfolded.append(line)
    for line in unfolded:
        assert not CONTROL.search(line), repr(line)
        Contentline(line, strict=True).parts()
    return icalendar.Calendar.from_ical(body)


def test_control_characters_never_reach_the_feed_and_newlines_stay(
    admin_client_a, clinic_a, therapist, patient, appointment
):
    therapist.name = "Dr\x0b Feed"
    therapist.save()
    patient.first_name, patient.last_name = "Na\x1bdia", "Qu\x85ist"
    patient.save()
    Location.objects.for_clinic(clinic_a).update(name="Main\x07 Surgery\x7f")
    OtherEventFactory(
        clinic=clinic_a,
        practitioner=therapist,
        title="Staff\x0bmeeting\x0c\nRoom\t2\x01\x9f",
        starts_at=dt.datetime(2027, 3, 9, 12, tzinfo=dt.UTC),
        ends_at=dt.datetime(2027, 3, 9, 13, tzinfo=dt.UTC),
    )
    subscription = enable(admin_client_a, therapist, mode=IdentifierMode.FULL_NAME)
    response = fetch(admin_client_a, subscription)
    calendar = strictly_parsed(response.content)
    assert str(calendar["X-WR-CALNAME"]) == f"Dr Feed · {clinic_a.name}"
    summaries = sorted(str(e["SUMMARY"]) for e in calendar.walk("VEVENT"))
    assert summaries == ["Nadia Quist · Therapy 50", "Staffmeeting\nRoom\t2"]  # the newline and tab stay
    assert [str(e["LOCATION"]) for e in calendar.walk("VEVENT") if "LOCATION" in e] == ["Main Surgery"]
    assert vobject.readOne(response.content.decode()).validate()


def test_the_window_and_cancelled_appointments(admin_client_a, clinic_a, therapist, patient, appointment):
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine")
    allocate_rota(
        clinic_a, therapist, routine, dt.date(2026, 12, 1), dt.date(2026, 12, 1), weekdays=(), start=dt.time(9)
    )
    allocate_rota(
        clinic_a, therapist, routine, dt.date(2028, 10, 2), dt.date(2028, 10, 2), weekdays=(), start=dt.time(9)
    )
    for slot in therapist.sessions.exclude(date=dt.date(2027, 3, 8)).values_list("slots", flat=True):
        from scheduling.models import Slot

        book(Slot.objects.get(pk=slot), PatientFactory(clinic=clinic_a))
    cancelled = book(
        allocate_rota(clinic_a, therapist, routine, dt.date(2027, 4, 5), dt.date(2027, 4, 5), weekdays=())
        .sessions.get()
        .slots.get(),
        PatientFactory(clinic=clinic_a),
        status="cancelled",
    )
    subscription = enable(admin_client_a, therapist)
    uids = set(events(parsed(fetch(admin_client_a, subscription))))
    assert uids == {f"appointment-{appointment.public_id}@clinic-scheduler"}  # Dec 2026 and Oct 2028 fall outside
    assert f"appointment-{cancelled.public_id}@clinic-scheduler" not in uids


@pytest.mark.parametrize(
    ("mode", "shown", "hidden"),
    [
        (IdentifierMode.INTERNAL_ID, "P-00042", ("Nadia", "Quist", "NQ")),
        (IdentifierMode.INITIALS, "NQ", ("Nadia", "Quist", "P-00042")),
        (IdentifierMode.FIRST_NAME, "Nadia", ("Quist", "P-00042")),
        (IdentifierMode.FULL_NAME, "Nadia Quist", ("P-00042",)),
    ],
)
def test_each_identifier_mode_shows_exactly_what_it_promises(
    admin_client_a, therapist, patient, appointment, mode, shown, hidden
):
    subscription = enable(admin_client_a, therapist, mode=mode)
    body = fetch(admin_client_a, subscription).content.decode()
    summary = str(next(iter(events(icalendar.Calendar.from_ical(body)).values()))["SUMMARY"])
    assert summary == f"{shown} · Therapy 50"
    for word in hidden:
        assert word not in body
    assert str(patient.date_of_birth.year) not in body and "DESCRIPTION" not in body


def test_a_blocked_patient_is_restricted_in_every_mode(admin_client_a, therapist, patient, appointment):
    patient.is_blocked, patient.blocked_reason = True, "Staff member"
    patient.save()
    subscription = enable(admin_client_a, therapist, mode=IdentifierMode.FULL_NAME)
    body = fetch(admin_client_a, subscription).content.decode()
    assert "Restricted patient · Therapy 50" in body and "Quist" not in body and "Nadia" not in body


def test_uids_stay_and_sequence_rises_only_for_what_changed(
    admin_client_a, clinic_a, therapist, appointment, django_capture_on_commit_callbacks
):
    event = OtherEventFactory(
        clinic=clinic_a,
        practitioner=therapist,
        title="Team meeting",
        starts_at=dt.datetime(2027, 3, 10, 12, tzinfo=dt.UTC),
        ends_at=dt.datetime(2027, 3, 10, 13, tzinfo=dt.UTC),
    )
    subscription = enable(admin_client_a, therapist)
    before = events(parsed(fetch(admin_client_a, subscription)))
    with time_machine.travel(NOW + dt.timedelta(hours=2), tick=False), django_capture_on_commit_callbacks(execute=True):
        other_event_save(
            clinic=clinic_a,
            actor=None,
            data=EventData(
                practitioner=therapist,
                title="Team meeting (moved)",
                all_day=False,
                busy=True,
                notes="",
                starts_at=dt.datetime(2027, 3, 10, 14, tzinfo=dt.UTC),
                ends_at=dt.datetime(2027, 3, 10, 15, tzinfo=dt.UTC),
            ),
            event=event,
        )
    after = events(parsed(fetch(admin_client_a, subscription)))
    assert set(before) == set(after)  # stable UIDs
    key = f"event-{event.public_id}@clinic-scheduler"
    assert int(after[key]["SEQUENCE"]) == int(before[key]["SEQUENCE"]) + 1
    assert str(after[key]["SUMMARY"]) == "Team meeting (moved)"
    untouched = f"appointment-{appointment.public_id}@clinic-scheduler"
    assert after[untouched].to_ical() == before[untouched].to_ical()  # reused as stored, DTSTAMP and all


def test_regenerating_kills_the_old_url_at_once(admin_client_a, therapist, appointment):
    subscription = enable(admin_client_a, therapist)
    old = feed_url(subscription)
    assert admin_client_a.get(old).status_code == 200
    confirm = admin_client_a.post(
        reverse("calendar_sync:index"), {"practitioner": str(therapist.public_id), "action": "regenerate-ask"}
    )
    assert "stops working at once" in confirm.content.decode()
    assert admin_client_a.get(old).status_code == 200  # asking is not doing
    admin_client_a.post(
        reverse("calendar_sync:index"), {"practitioner": str(therapist.public_id), "action": "regenerate"}
    )
    subscription.refresh_from_db()
    gone = admin_client_a.get(old)
    nonsense = admin_client_a.get(reverse("calendar_sync:feed", args=["x" * 43]))
    assert gone.status_code == nonsense.status_code == 404
    assert gone.content == nonsense.content and gone["Content-Type"] == nonsense["Content-Type"]
    assert admin_client_a.get(feed_url(subscription)).status_code == 200


def test_a_wrong_token_and_a_disabled_feed_look_alike_and_are_not_logged(admin_client_a, therapist, caplog):
    subscription = enable(admin_client_a, therapist)
    token = subscriptions.feed_token(subscription)
    enable(admin_client_a, therapist, enabled=False)
    answers = []
    with caplog.at_level(logging.DEBUG):
        for candidate in (token, token[:-1] + ("A" if token[-1] != "A" else "B"), "short", "é" * 43):
            with CaptureQueriesContext(connection) as queries:
                response = admin_client_a.get(reverse("calendar_sync:feed", args=[candidate]))
            answers.append((response.status_code, response.content, len(queries)))
    assert len(set(answers)) == 1 and answers[0][0] == 404  # same answer, same single lookup
    assert token not in caplog.text


def test_304_for_if_none_match_and_if_modified_since(
    admin_client_a, clinic_a, therapist, appointment, django_capture_on_commit_callbacks
):
    subscription = enable(admin_client_a, therapist)
    first = fetch(admin_client_a, subscription)
    etag, modified = first["ETag"], first["Last-Modified"]
    assert etag and modified
    assert fetch(admin_client_a, subscription, if_none_match=etag).status_code == 304
    assert fetch(admin_client_a, subscription, if_modified_since=modified).status_code == 304
    with time_machine.travel(NOW + dt.timedelta(hours=1), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            appointment_cancel(clinic=clinic_a, actor=None, appointment=appointment, reason="Ill")
        changed = fetch(admin_client_a, subscription, if_none_match=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert not list(icalendar.Calendar.from_ical(changed.content).walk("VEVENT"))


def test_a_change_rebuilds_the_feed_after_commit_and_serving_builds_nothing(
    admin_client_a, clinic_a, reception_a, therapist, patient, django_capture_on_commit_callbacks
):
    subscription = enable(admin_client_a, therapist)
    fetch(admin_client_a, subscription)
    group = SlotTypeFactory(clinic=clinic_a, name="Group", capacity=4)
    allocate_rota(clinic_a, therapist, group, dt.date(2027, 3, 9), dt.date(2027, 3, 9), weekdays=())
    slot = therapist.sessions.get(date=dt.date(2027, 3, 9)).slots.get()
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        time_machine.travel(NOW + dt.timedelta(minutes=5), tick=False),
    ):
        booked = appointment_book(
            clinic=clinic_a,
            actor=reception_a.user,
            membership=reception_a,
            request=BookingRequest(slot, patient),
        )
    assert callbacks  # the signal, then the task, ran once the booking committed
    subscription.refresh_from_db()
    document = FeedDocument.objects.get(subscription=subscription)
    assert document.built_changes == subscription.changes  # built by the task, not by a request
    with CaptureQueriesContext(connection) as queries:
        response = fetch(admin_client_a, subscription)
    assert f"appointment-{booked.public_id}@clinic-scheduler" in response.content.decode()
    assert len(queries) == 2  # the lookup and the stored bytes: nothing rebuilt


def test_a_rolled_back_change_queues_nothing(clinic_a, admin_client_a, therapist, django_capture_on_commit_callbacks):
    subscription = enable(admin_client_a, therapist)
    before = FeedSubscription.objects.get(pk=subscription.pk).changes
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        OtherEventFactory(clinic=clinic_a, practitioner=therapist)
        announce_calendar_change([therapist.pk])
        raise RuntimeError("rolled back")
    assert not callbacks and FeedSubscription.objects.get(pk=subscription.pk).changes == before


def test_a_patients_new_name_reaches_the_feed(
    admin_client_a, therapist, patient, appointment, django_capture_on_commit_callbacks
):
    subscription = enable(admin_client_a, therapist, mode=IdentifierMode.FIRST_NAME)
    assert "Nadia · Therapy 50" in fetch(admin_client_a, subscription).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        patient.first_name = "Nadine"
        patient.save()
    assert "Nadine · Therapy 50" in fetch(admin_client_a, subscription).content.decode()


def test_clinicians_set_only_their_own_sync_and_outsiders_none(clinic_a, therapist, outsider_client):
    own = PractitionerFactory(clinic=clinic_a, name="Dr Own")
    clinician = MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN)
    own.user = clinician.user
    own.save()
    client = logged_in_client(clinician)
    page = client.get(reverse("calendar_sync:index"))
    assert page.context["practitioner"] == own and page.context["practitioners"] == [own]
    assert client.get(reverse("calendar_sync:index"), {"practitioner": therapist.public_id}).status_code == 404
    assert outsider_client.get(reverse("calendar_sync:index"), {"practitioner": therapist.public_id}).status_code == 404
    refused = outsider_client.post(
        reverse("calendar_sync:index"),
        {"practitioner": str(therapist.public_id), "action": "save", "enabled": "on", "identifier_mode": "initials"},
    )
    assert refused.status_code == 404 and not FeedSubscription.objects.exists()


def test_a_member_without_a_practitioner_gets_an_explanation(clinic_a):
    reception = MembershipFactory(clinic=clinic_a, role=Role.RECEPTION)
    page = logged_in_client(reception).get(reverse("calendar_sync:index"))
    assert page.status_code == 200 and "not linked to a practitioner" in page.content.decode()


def test_a_feed_shows_only_its_own_clinics_practitioner(
    admin_client_a, outsider_client, clinic_b, therapist, appointment
):
    theirs = PractitionerFactory(clinic=clinic_b, name="Dr Other")
    mine = enable(admin_client_a, therapist)
    other = enable(outsider_client, theirs)
    body = fetch(outsider_client, other).content.decode()
    assert "appointment-" not in body and "Dr Feed" not in body
    assert Appointment.objects.filter(practitioner=therapist).exists() and mine.clinic != other.clinic


def test_feed_tokens_are_redacted_from_server_and_access_logs():
    from clinic.log_filters import RedactFeedTokens

    token = "hqreS8yvEsebswKlTZb7VlQyDOYXXgYK4_N8iPq4sRk"
    server = logging.LogRecord(
        "django.server", logging.INFO, "", 0, '"%s" %s %s', (f"GET /sync/feeds/{token}.ics HTTP/1.1", 200, 5), None
    )
    access = logging.LogRecord("gunicorn.access", logging.INFO, "", 0, "%(r)s %(s)s", None, None)
    access.args = {"r": f"GET /sync/feeds/{token}.ics HTTP/1.1", "s": "200"}
    for record in (server, access):
        assert RedactFeedTokens().filter(record)
        assert token not in record.getMessage() and "/sync/feeds/[token].ics" in record.getMessage()


def test_calendar_apps_that_take_gzip_get_the_stored_bytes(admin_client_a, therapist, appointment):
    import gzip

    subscription = enable(admin_client_a, therapist)
    plain = fetch(admin_client_a, subscription)
    packed = fetch(admin_client_a, subscription, accept_encoding="gzip, deflate")
    assert packed["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed["Vary"]
    assert gzip.decompress(packed.content) == plain.content and "Content-Encoding" not in plain
    assert packed["ETag"] == plain["ETag"] and plain["ETag"].startswith('W/"')


def test_a_targeted_rebuild_rewrites_only_the_changed_event(
    admin_client_a, clinic_a, reception_a, therapist, patient, appointment, django_capture_on_commit_callbacks
):
    from calendar_sync.models import FeedChange, FeedEvent

    subscription = enable(admin_client_a, therapist)
    fetch(admin_client_a, subscription)
    before = dict(FeedEvent.objects.values_list("key", "text"))
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel(NOW + dt.timedelta(hours=1)):
        appointment_cancel(clinic=clinic_a, actor=None, appointment=appointment, reason="Ill")
    assert not FeedChange.objects.exists()  # consumed by the build
    assert set(FeedEvent.objects.values_list("key", flat=True)) == set(before) - {f"a{appointment.pk}"}
