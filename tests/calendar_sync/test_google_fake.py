"""The fake Google behaves as Google does, seen through the real google-api-python-client and google-auth.

Every call here goes over HTTP to a FakeGoogle of the test's own, through googleapiclient built from its
bundled calendar v3 discovery document (root URL pointed at the fake, so batches go there too), and token
refreshes go through google-auth to the fake's /token. ``execute()`` keeps its default ``num_retries=0`` so
that errors surface.
"""

from __future__ import annotations

import datetime as dt
import socket
import time

import pytest
import requests
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google_auth_oauthlib.flow import Flow
from googleapiclient.errors import HttpError

from tests.google_fake import (
    CALENDAR_SCOPE,
    FakeGoogle,
    NotificationReceiver,
    calendar_service,
    credentials_for,
    make_credentials,
)

EMAIL = "doctor@example.com"
EVENTS_READONLY = "https://www.googleapis.com/auth/calendar.events.readonly"


@pytest.fixture
def fake():
    with FakeGoogle() as server:
        yield server
    assert not server.internal_errors, "\n".join(server.internal_errors)


@pytest.fixture
def creds(fake):
    return credentials_for(fake, EMAIL)


@pytest.fixture
def service(fake, creds):
    return calendar_service(fake, creds)


@pytest.fixture
def receiver():
    with NotificationReceiver() as server:
        yield server


def timed(summary: str, start: str, minutes: int = 30, **extra) -> dict:
    begin = dt.datetime.fromisoformat(start)
    end = begin + dt.timedelta(minutes=minutes)
    return {"summary": summary, "start": {"dateTime": start}, "end": {"dateTime": end.isoformat()}, **extra}


def all_day(summary: str, day: str, **extra) -> dict:
    first = dt.date.fromisoformat(day)
    return {"summary": summary, "start": {"date": day}, "end": {"date": (first + dt.timedelta(days=1)).isoformat()}}


def error_reason(error: HttpError) -> str:
    return error.error_details[0]["reason"]


def list_all(service, **params) -> tuple[list[dict], list[dict], str | None]:
    """Every page of events.list: the pages, all items, and the sync token."""
    pages, items, page_token = [], [], None
    while True:
        page = service.events().list(calendarId="primary", pageToken=page_token, **params).execute()
        pages.append(page)
        items.extend(page["items"])
        page_token = page.get("nextPageToken")
        if not page_token:
            return pages, items, page.get("nextSyncToken")


# --- events: identity, reads and writes ---------------------------------------------------------------------


def test_insert_with_our_own_id_and_409_when_it_comes_back_after_delete(service):
    event_id = "appt0000000042"
    created = (
        service.events()
        .insert(calendarId="primary", body={"id": event_id, **timed("Visit", "2030-03-04T09:00:00+01:00")})
        .execute()
    )
    assert created["id"] == event_id
    assert created["status"] == "confirmed"
    assert created["etag"].startswith('"')
    assert created["iCalUID"] == f"{event_id}@google.com"
    assert created["sequence"] == 0
    assert "transparency" not in created  # opaque, the default, is left out as Google does

    with pytest.raises(HttpError) as again:
        service.events().insert(
            calendarId="primary", body={"id": event_id, **timed("Visit", "2030-03-04T09:00:00+01:00")}
        ).execute()
    assert again.value.status_code == 409
    assert error_reason(again.value) == "duplicate"
    assert again.value.reason == "The requested identifier already exists."

    service.events().delete(calendarId="primary", eventId=event_id).execute()
    with pytest.raises(HttpError) as after_delete:
        service.events().insert(
            calendarId="primary", body={"id": event_id, **timed("Visit", "2030-03-04T09:00:00+01:00")}
        ).execute()
    assert after_delete.value.status_code == 409


@pytest.mark.parametrize("bad_id", ["abcd", "ABCDE12345", "appt-0001", "wxyz00001", "a" * 1025])
def test_ids_outside_base32hex_or_5_to_1024_chars_are_refused(service, bad_id):
    with pytest.raises(HttpError) as refused:
        service.events().insert(
            calendarId="primary", body={"id": bad_id, **timed("x", "2030-03-04T09:00:00Z")}
        ).execute()
    assert refused.value.status_code == 400
    assert error_reason(refused.value) == "invalid"


def test_get_patch_and_update_change_the_etag_and_keep_what_they_should(service):
    body = timed(
        "Visit",
        "2030-03-04T09:00:00+01:00",
        description="first",
        extendedProperties={"private": {"appointment": "42", "clinic": "a"}},
    )
    created = service.events().insert(calendarId="primary", body={"id": "appt1", **body}).execute()
    fetched = service.events().get(calendarId="primary", eventId="appt1").execute()
    assert fetched["etag"] == created["etag"]
    assert fetched["start"] == {"dateTime": "2030-03-04T08:00:00Z"}  # shown in the calendar's zone (UTC here)

    patched = (
        service.events()
        .patch(
            calendarId="primary",
            eventId="appt1",
            body={
                "summary": "Visit (moved)",
                "transparency": "transparent",
                "extendedProperties": {"private": {"clinic": "b"}},
            },
        )
        .execute()
    )
    assert patched["etag"] != created["etag"]
    assert patched["updated"] >= created["updated"]
    assert patched["summary"] == "Visit (moved)"
    assert patched["description"] == "first"  # patch leaves out what it doesn't name
    assert patched["transparency"] == "transparent"
    assert patched["extendedProperties"]["private"] == {"appointment": "42", "clinic": "b"}  # nested objects merge
    assert patched["sequence"] == 0  # the time did not change

    updated = (
        service.events()
        .update(
            calendarId="primary",
            eventId="appt1",
            body={
                "summary": "Visit",
                "start": {"dateTime": "2030-03-05T10:00:00", "timeZone": "Europe/Berlin"},
                "end": {"dateTime": "2030-03-05T10:30:00", "timeZone": "Europe/Berlin"},
            },
        )
        .execute()
    )
    assert updated["etag"] not in {created["etag"], patched["etag"]}
    assert "description" not in updated  # update replaces the whole event
    assert "extendedProperties" not in updated
    assert "transparency" not in updated
    assert updated["start"] == {"dateTime": "2030-03-05T10:00:00+01:00", "timeZone": "Europe/Berlin"}
    assert updated["sequence"] == 1  # a new time bumps the sequence


def test_a_deleted_event_is_still_got_as_cancelled_and_a_second_delete_is_410(service):
    service.events().insert(calendarId="primary", body={"id": "appt2", **timed("x", "2030-03-04T09:00:00Z")}).execute()
    service.events().delete(calendarId="primary", eventId="appt2").execute()

    tombstone = service.events().get(calendarId="primary", eventId="appt2").execute()
    assert tombstone["status"] == "cancelled"

    with pytest.raises(HttpError) as again:
        service.events().delete(calendarId="primary", eventId="appt2").execute()
    assert again.value.status_code == 410
    assert error_reason(again.value) == "deleted"

    with pytest.raises(HttpError) as missing:
        service.events().get(calendarId="primary", eventId="neverexisted").execute()
    assert missing.value.status_code == 404
    assert error_reason(missing.value) == "notFound"


def test_event_times_are_validated(service):
    cases = [
        ({"summary": "no end", "start": {"dateTime": "2030-03-04T09:00:00Z"}}, "required"),
        (
            {
                "summary": "no zone",
                "start": {"dateTime": "2030-03-04T09:00:00"},
                "end": {"dateTime": "2030-03-04T10:00:00"},
            },
            "required",
        ),
        (timed("backwards", "2030-03-04T09:00:00Z", minutes=-30), "timeRangeEmpty"),
        (
            {"summary": "mixed", "start": {"date": "2030-03-04"}, "end": {"dateTime": "2030-03-05T10:00:00Z"}},
            "badRequest",
        ),
    ]
    for body, reason in cases:
        with pytest.raises(HttpError) as refused:
            service.events().insert(calendarId="primary", body=body).execute()
        assert refused.value.status_code == 400, body
        assert error_reason(refused.value) == reason, body


def test_if_match_with_a_stale_etag_is_412_condition_not_met(service):
    created = (
        service.events()
        .insert(calendarId="primary", body={"id": "appt3", **timed("x", "2030-03-04T09:00:00Z")})
        .execute()
    )
    stale = created["etag"]
    service.events().patch(calendarId="primary", eventId="appt3", body={"summary": "changed in Google"}).execute()

    for make in (
        lambda: service.events().patch(calendarId="primary", eventId="appt3", body={"summary": "ours"}),
        lambda: service.events().update(
            calendarId="primary", eventId="appt3", body=timed("ours", "2030-03-04T09:00:00Z")
        ),
        lambda: service.events().delete(calendarId="primary", eventId="appt3"),
    ):
        request = make()
        request.headers["If-Match"] = stale
        with pytest.raises(HttpError) as conflict:
            request.execute()
        assert conflict.value.status_code == 412
        assert error_reason(conflict.value) == "conditionNotMet"
        assert conflict.value.error_details[0]["location"] == "If-Match"

    current = service.events().get(calendarId="primary", eventId="appt3").execute()
    request = service.events().patch(calendarId="primary", eventId="appt3", body={"summary": "ours"})
    request.headers["If-Match"] = current["etag"]
    assert request.execute()["summary"] == "ours"


# --- events.list: paging, sync, filters -------------------------------------------------------------------


def test_list_pages_with_next_page_token_and_gives_the_sync_token_only_on_the_last_page(service):
    for n in range(7):
        service.events().insert(
            calendarId="primary", body={"id": f"appt{n:05d}", **timed(f"e{n}", "2030-03-04T09:00:00Z")}
        ).execute()

    pages, items, sync_token = list_all(service, maxResults=3)
    assert [len(page["items"]) for page in pages] == [3, 3, 1]
    for page in pages[:-1]:
        assert "nextPageToken" in page and "nextSyncToken" not in page
    assert "nextPageToken" not in pages[-1] and "nextSyncToken" in pages[-1]
    assert sorted(item["id"] for item in items) == [f"appt{n:05d}" for n in range(7)]
    assert sync_token


def test_incremental_sync_returns_changes_and_tombstones_since_the_token(fake, service):
    for n in range(3):
        service.events().insert(
            calendarId="primary", body={"id": f"keep{n}", **timed(f"e{n}", "2030-03-04T09:00:00Z")}
        ).execute()
    _, items, token = list_all(service)
    assert len(items) == 3

    # Nothing changed: nothing comes back, and a fresh token.
    _, items, token = list_all(service, syncToken=token)
    assert items == [] and token

    # Our change, and a user's changes in Google.
    service.events().patch(calendarId="primary", eventId="keep0", body={"summary": "renamed"}).execute()
    fake.user_delete_event(EMAIL, "keep1")
    added = fake.user_create_event(EMAIL, timed("private appointment", "2030-03-05T12:00:00Z"))
    fake.user_set_busy(EMAIL, "keep2", busy=False)

    _, changes, token = list_all(service, syncToken=token, maxResults=2)
    by_id = {item["id"]: item for item in changes}
    assert set(by_id) == {"keep0", "keep1", "keep2", added["id"]}
    assert by_id["keep0"]["summary"] == "renamed"
    assert by_id["keep1"]["status"] == "cancelled"  # a tombstone, with nothing but its id to rely on
    assert set(by_id["keep1"]) <= {"kind", "etag", "id", "status"}
    assert by_id["keep2"]["transparency"] == "transparent"

    # A full list leaves deleted events out unless asked.
    _, full, _ = list_all(service)
    assert "keep1" not in {item["id"] for item in full}
    _, with_deleted, _ = list_all(service, showDeleted=True)
    assert "keep1" in {item["id"] for item in with_deleted}

    _, items, _ = list_all(service, syncToken=token)
    assert items == []


@pytest.mark.parametrize(
    "extra",
    [{"timeMin": "2030-01-01T00:00:00Z"}, {"timeMax": "2030-01-01T00:00:00Z"}, {"privateExtendedProperty": "a=b"}],
)
def test_sync_token_refuses_the_filters_google_refuses_with_it(service, extra):
    _, _, token = list_all(service)
    with pytest.raises(HttpError) as refused:
        service.events().list(calendarId="primary", syncToken=token, **extra).execute()
    assert refused.value.status_code == 400


def test_expired_sync_token_is_410_full_sync_required(fake, service):
    service.events().insert(calendarId="primary", body=timed("x", "2030-03-04T09:00:00Z")).execute()
    _, _, token = list_all(service)
    fake.expire_sync_tokens(EMAIL)
    with pytest.raises(HttpError) as gone:
        service.events().list(calendarId="primary", syncToken=token).execute()
    assert gone.value.status_code == 410
    assert error_reason(gone.value) == "fullSyncRequired"

    # A full sync gives a token that works again.
    _, items, token = list_all(service)
    assert len(items) == 1
    assert list_all(service, syncToken=token)[1] == []


def test_list_filters_by_private_extended_property_and_time_window(service):
    ours = {"extendedProperties": {"private": {"clinicSync": "1", "appointment": "7"}}}
    service.events().insert(
        calendarId="primary", body={"id": "ours1", **timed("ours", "2030-03-04T09:00:00Z", **ours)}
    ).execute()
    service.events().insert(
        calendarId="primary", body={"id": "theirs1", **timed("theirs", "2030-03-04T11:00:00Z")}
    ).execute()
    service.events().insert(calendarId="primary", body={"id": "offsite1", **all_day("holiday", "2030-03-06")}).execute()

    _, items, _ = list_all(service, privateExtendedProperty="clinicSync=1")
    assert [item["id"] for item in items] == ["ours1"]
    _, items, _ = list_all(service, privateExtendedProperty=["clinicSync=1", "appointment=8"])
    assert items == []

    _, items, _ = list_all(service, timeMin="2030-03-04T09:30:00Z", timeMax="2030-03-05T00:00:00Z")
    assert {item["id"] for item in items} == {"theirs1"}  # ours1 ends at 09:30: timeMin is exclusive
    _, items, _ = list_all(service, timeMin="2030-03-06T12:00:00Z", timeMax="2030-03-06T13:00:00Z")
    assert [item["id"] for item in items] == ["offsite1"]
    assert items[0]["start"] == {"date": "2030-03-06"}

    with pytest.raises(HttpError) as no_offset:
        service.events().list(calendarId="primary", timeMin="2030-03-06T12:00:00").execute()
    assert no_offset.value.status_code == 400


def test_a_recurring_series_with_an_exception_and_a_cancelled_occurrence(fake, service):
    calendar_id = fake.user_create_calendar(EMAIL, "Private", time_zone="Europe/Berlin")
    series = fake.user_create_event(
        calendar_id,
        {
            "summary": "Physio",
            "start": {"dateTime": "2030-03-04T09:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2030-03-04T10:00:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
        },
    )
    second = f"{series['id']}_20300311T080000Z"
    third = f"{series['id']}_20300318T080000Z"
    fake.user_move_event(
        calendar_id,
        second,
        {"dateTime": "2030-03-12T15:00:00", "timeZone": "Europe/Berlin"},
        {"dateTime": "2030-03-12T16:00:00", "timeZone": "Europe/Berlin"},
    )
    fake.user_delete_event(calendar_id, third)

    # Without singleEvents: the series, the moved occurrence and the cancelled one.
    listed = service.events().list(calendarId=calendar_id).execute()["items"]
    by_id = {item["id"]: item for item in listed}
    assert set(by_id) == {series["id"], second, third}
    assert by_id[series["id"]]["recurrence"] == ["RRULE:FREQ=WEEKLY;COUNT=4"]
    assert by_id[second]["recurringEventId"] == series["id"]
    assert by_id[second]["originalStartTime"] == {"dateTime": "2030-03-11T09:00:00+01:00", "timeZone": "Europe/Berlin"}
    assert by_id[second]["start"]["dateTime"] == "2030-03-12T15:00:00+01:00"
    assert by_id[third]["status"] == "cancelled"
    assert by_id[third]["recurringEventId"] == series["id"]

    # singleEvents: three occurrences remain, in order, the moved one where it went.
    instances = service.events().list(calendarId=calendar_id, singleEvents=True, orderBy="startTime").execute()["items"]
    assert [item["start"]["dateTime"] for item in instances] == [
        "2030-03-04T09:00:00+01:00",
        "2030-03-12T15:00:00+01:00",
        "2030-03-25T09:00:00+01:00",
    ]
    assert all(item["recurringEventId"] == series["id"] for item in instances)
    assert instances[0]["id"] == f"{series['id']}_20300304T080000Z"

    with pytest.raises(HttpError) as unordered:
        service.events().list(calendarId=calendar_id, orderBy="startTime").execute()
    assert unordered.value.status_code == 400

    # An occurrence can be got and changed by its id, which makes it an exception.
    last = f"{series['id']}_20300325T080000Z"
    assert service.events().get(calendarId=calendar_id, eventId=last).execute()["originalStartTime"]["dateTime"]
    changed = service.events().patch(calendarId=calendar_id, eventId=last, body={"summary": "Physio (last)"}).execute()
    assert changed["recurringEventId"] == series["id"]
    assert fake.event(calendar_id, series["id"])["summary"] == "Physio"


# --- calendars and the calendar list ------------------------------------------------------------------------


def test_calendars_insert_and_calendar_list_paging(service):
    created = service.calendars().insert(body={"summary": "Clinic appointments", "timeZone": "Europe/Berlin"}).execute()
    assert created["id"].endswith("@group.calendar.google.com")
    assert created["timeZone"] == "Europe/Berlin"
    assert service.calendars().get(calendarId=created["id"]).execute()["summary"] == "Clinic appointments"
    assert service.calendars().get(calendarId="primary").execute()["id"] == EMAIL

    for n in range(3):
        service.calendars().insert(body={"summary": f"Extra {n}"}).execute()

    entries, page_token, pages = [], None, 0
    while True:
        page = service.calendarList().list(maxResults=2, pageToken=page_token).execute()
        pages += 1
        entries.extend(page["items"])
        page_token = page.get("nextPageToken")
        if not page_token:
            assert "nextSyncToken" in page
            break
        assert "nextSyncToken" not in page
    assert pages == 3
    assert entries[0]["id"] == EMAIL and entries[0]["primary"] is True
    assert {entry["accessRole"] for entry in entries} == {"owner"}
    assert created["id"] in {entry["id"] for entry in entries}

    with pytest.raises(HttpError) as missing:
        service.calendars().insert(body={}).execute()
    assert missing.value.status_code == 400

    service.calendars().delete(calendarId=created["id"]).execute()
    with pytest.raises(HttpError) as gone:
        service.events().list(calendarId=created["id"]).execute()
    assert gone.value.status_code == 404


def test_another_accounts_calendar_is_not_found(fake, service):
    other = fake.user_create_calendar("someone@example.com", "Theirs")
    with pytest.raises(HttpError) as hidden:
        service.events().list(calendarId=other).execute()
    assert hidden.value.status_code == 404


# --- push notifications -----------------------------------------------------------------------------------


def test_watch_sends_sync_then_a_notification_per_change_and_stop_ends_them(fake, service, receiver):
    channel = (
        service.events()
        .watch(
            calendarId="primary",
            body={
                "id": "chan-1",
                "type": "web_hook",
                "address": receiver.url,
                "token": "clinic=a",
                "params": {"ttl": "3600"},
            },
        )
        .execute()
    )
    assert channel["kind"] == "api#channel" and channel["id"] == "chan-1"
    assert channel["resourceId"]
    assert int(channel["expiration"]) > time.time() * 1000

    [sync] = receiver.wait_for(1)
    assert sync.headers["x-goog-channel-id"] == "chan-1"
    assert sync.headers["x-goog-resource-state"] == "sync"
    assert sync.headers["x-goog-resource-id"] == channel["resourceId"]
    assert sync.headers["x-goog-channel-token"] == "clinic=a"
    assert sync.headers["x-goog-message-number"] == "1"
    assert sync.headers["x-goog-resource-uri"].endswith("/events?alt=json")
    assert sync.headers["x-goog-channel-expiration"].endswith("GMT")
    assert sync.body == b""

    service.events().insert(calendarId="primary", body=timed("x", "2030-03-04T09:00:00Z")).execute()
    fake.user_create_event(EMAIL, timed("y", "2030-03-05T09:00:00Z"))
    notes = receiver.wait_for(3)
    assert [n.resource_state for n in notes[1:]] == ["exists", "exists"]
    assert [n.message_number for n in notes] == [1, 2, 3]

    with pytest.raises(HttpError) as wrong_resource:
        service.channels().stop(body={"id": "chan-1", "resourceId": "not-it"}).execute()
    assert wrong_resource.value.status_code == 404
    service.channels().stop(body={"id": "chan-1", "resourceId": channel["resourceId"]}).execute()

    fake.user_create_event(EMAIL, timed("z", "2030-03-06T09:00:00Z"))
    assert fake.wait_for_notifications(timeout=5)
    assert len(receiver.received) == 3


def test_an_expired_channel_stops_notifying_and_channel_ids_are_unique(fake, service, receiver):
    body = {"id": "chan-2", "type": "web_hook", "address": receiver.url, "params": {"ttl": "60"}}
    service.events().watch(calendarId="primary", body=body).execute()
    receiver.wait_for(1)
    with pytest.raises(HttpError) as duplicate:
        service.events().watch(calendarId="primary", body=body).execute()
    assert duplicate.value.status_code == 400
    assert error_reason(duplicate.value) == "channelIdNotUnique"

    fake.advance(61)
    fake.user_create_event(EMAIL, timed("after expiry", "2030-03-04T09:00:00Z"))
    assert fake.wait_for_notifications(timeout=5)
    assert len(receiver.received) == 1


# --- batch ------------------------------------------------------------------------------------------------


def test_a_batch_of_inserts_is_one_http_request_and_each_callback_gets_its_result(fake, service):
    fake.clear_requests()
    results: dict[str, tuple[dict | None, HttpError | None]] = {}

    def callback(request_id, response, exception):
        results[request_id] = (response, exception)

    batch = service.new_batch_http_request(callback=callback)
    for n in range(5):
        batch.add(
            service.events().insert(
                calendarId="primary", body={"id": f"batch{n}", **timed(f"b{n}", "2030-03-04T09:00:00Z")}
            )
        )
    batch.add(
        service.events().insert(calendarId="primary", body={"id": "batch0", **timed("dup", "2030-03-04T09:00:00Z")})
    )
    batch.execute()

    http_requests = [record for record in fake.requests if not record.batched]
    assert [(record.method, record.path, record.batch_size) for record in http_requests] == [
        ("POST", "/batch/calendar/v3", 6)
    ]
    assert fake.count_requests(batched=True) == 6
    assert {record.operation for record in fake.requests if record.batched} == {"calendar.events.insert"}

    assert sorted(results) == ["1", "2", "3", "4", "5", "6"]
    for n in range(5):
        response, exception = results[str(n + 1)]
        assert exception is None and response["id"] == f"batch{n}"
    response, exception = results["6"]
    assert response is None and exception.status_code == 409


def test_a_batch_carries_deletes_and_gets_and_one_failing_part(fake, service):
    service.events().insert(calendarId="primary", body={"id": "gone1", **timed("x", "2030-03-04T09:00:00Z")}).execute()
    fake.fail_next(1, 429, "rateLimitExceeded", path_contains="/events/missing")
    results = {}
    batch = service.new_batch_http_request(
        callback=lambda rid, response, exc: results.__setitem__(rid, (response, exc))
    )
    batch.add(service.events().delete(calendarId="primary", eventId="gone1"), request_id="delete")
    batch.add(service.events().get(calendarId="primary", eventId="gone1"), request_id="get")
    batch.add(service.events().get(calendarId="primary", eventId="missing"), request_id="throttled")
    batch.execute()
    assert results["delete"] == ("", None)
    assert results["get"][0]["status"] == "cancelled"
    assert results["throttled"][1].status_code == 429
    assert error_reason(results["throttled"][1]) == "rateLimitExceeded"


def test_more_than_50_calls_in_a_batch_is_400(service):
    batch = service.new_batch_http_request()
    for n in range(51):
        batch.add(service.events().get(calendarId="primary", eventId=f"event{n:05d}"))
    with pytest.raises(HttpError) as refused:
        batch.execute()
    assert refused.value.status_code == 400


def test_a_batch_with_expired_tokens_is_refreshed_and_its_parts_sent_again(fake, service):
    fake.expire_access_tokens()
    fake.clear_requests()
    results = {}
    batch = service.new_batch_http_request(callback=lambda rid, response, exc: results.__setitem__(rid, exc))
    for n in range(3):
        batch.add(service.events().insert(calendarId="primary", body=timed(f"b{n}", "2030-03-04T09:00:00Z")))
    batch.execute()
    assert results == {"1": None, "2": None, "3": None}
    assert fake.count_requests(path_contains="/batch") == 2  # every part got 401, then all were sent again
    assert fake.count_requests(path_contains="/token") == 1
    assert len(fake.events(EMAIL)) == 3


# --- OAuth --------------------------------------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed_at_the_token_endpoint(fake, service):
    fake.clear_requests()
    fake.expire_access_tokens()  # Google-side expiry: the client still thinks its token is good
    service.calendars().get(calendarId="primary").execute()
    assert [(r.path, r.status) for r in fake.requests] == [
        ("/calendar/v3/calendars/primary", 401),
        ("/token", 200),
        ("/calendar/v3/calendars/primary", 200),
    ]


def test_credentials_past_their_expiry_refresh_before_the_call(fake):
    tokens = fake.issue_tokens(EMAIL)
    creds = make_credentials(
        fake, token=tokens["access_token"], refresh_token=tokens["refresh_token"], expiry=dt.datetime(2000, 1, 1)
    )
    service = calendar_service(fake, creds)
    service.calendars().get(calendarId="primary").execute()
    assert [r.path for r in fake.requests] == ["/token", "/calendar/v3/calendars/primary"]
    assert creds.token != tokens["access_token"]
    assert creds.expiry > dt.datetime.now(dt.UTC).replace(tzinfo=None)


def test_a_short_token_lifetime_makes_access_tokens_lapse(fake):
    fake.access_token_ttl = 600
    creds = credentials_for(fake, EMAIL)
    service = calendar_service(fake, creds)
    service.calendars().get(calendarId="primary").execute()
    fake.advance(601)
    fake.clear_requests()
    service.calendars().get(calendarId="primary").execute()
    assert [r.status for r in fake.requests] == [401, 200, 200]


def test_invalid_grant_after_revoke_raises_refresh_error(fake, creds, service):
    assert fake.revoke(creds.refresh_token)
    with pytest.raises(RefreshError) as refused:
        creds.refresh(Request())
    assert "invalid_grant" in str(refused.value)

    # The revoked grant's access tokens stop working too, and the refresh on 401 fails the same way.
    with pytest.raises(RefreshError):
        service.calendars().get(calendarId="primary").execute()


def test_missing_token_and_insufficient_scope_have_googles_error_shapes(fake):
    anonymous = calendar_service(fake, None)
    with pytest.raises(HttpError) as login:
        anonymous.calendars().get(calendarId="primary").execute()
    assert login.value.status_code == 401
    assert error_reason(login.value) == "required"

    readonly = calendar_service(fake, credentials_for(fake, EMAIL, [EVENTS_READONLY]))
    assert readonly.events().list(calendarId="primary").execute()["items"] == []
    with pytest.raises(HttpError) as scope:
        readonly.events().insert(calendarId="primary", body=timed("x", "2030-03-04T09:00:00Z")).execute()
    assert scope.value.status_code == 403
    assert error_reason(scope.value) == "insufficientPermissions"


def test_the_oauth_web_flow_runs_end_to_end_without_a_browser(fake, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # oauthlib insists on https otherwise
    redirect_uri = "http://127.0.0.1:9/google/callback"  # never visited: we read the redirect
    fake.add_account(EMAIL, time_zone="Europe/Berlin")

    def consent(prompt: str | None):
        flow = Flow.from_client_config(fake.client_config(), scopes=[CALENDAR_SCOPE], redirect_uri=redirect_uri)
        extra = {"prompt": prompt} if prompt else {}
        url, state = flow.authorization_url(access_type="offline", login_hint=EMAIL, **extra)
        assert url.startswith(fake.auth_uri) and "code_challenge=" in url
        answer = requests.get(url, allow_redirects=False, timeout=5)
        assert answer.status_code == 302
        location = answer.headers["Location"]
        assert location.startswith(redirect_uri) and f"state={state}" in location
        flow.fetch_token(authorization_response=location)  # PKCE verifier, client secret, redirect_uri checked
        return flow.credentials

    creds = consent("consent")
    assert creds.refresh_token and creds.token_uri == fake.token_uri
    service = calendar_service(fake, creds)
    primary = service.calendars().get(calendarId="primary").execute()
    assert primary["id"] == EMAIL and primary["timeZone"] == "Europe/Berlin"
    creds.refresh(Request())

    # Consenting again without prompt=consent gives no new refresh token, as with Google.
    assert consent(None).refresh_token is None

    # The app's callback can be fed a code directly, too.
    code = fake.authorize(EMAIL, [CALENDAR_SCOPE], redirect_uri=redirect_uri)
    flow = Flow.from_client_config(fake.client_config(), scopes=[CALENDAR_SCOPE], redirect_uri=redirect_uri)
    flow.fetch_token(code=code)
    assert flow.credentials.refresh_token
    with pytest.raises(Exception, match="invalid_grant"):
        flow.fetch_token(code=code)  # codes are single use


def test_a_refused_consent_redirects_with_access_denied(fake, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    fake.set_browser_user(EMAIL)
    fake.deny_next_consent()
    flow = Flow.from_client_config(fake.client_config(), scopes=[CALENDAR_SCOPE], redirect_uri="http://127.0.0.1:9/cb")
    url, state = flow.authorization_url(access_type="offline")
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    assert "error=access_denied" in answer.headers["Location"]
    assert f"state={state}" in answer.headers["Location"]


# --- fault injection ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "domain"),
    [
        (429, "rateLimitExceeded", "usageLimits"),
        (403, "rateLimitExceeded", "usageLimits"),
        (403, "quotaExceeded", "usageLimits"),
        (403, "userRateLimitExceeded", "usageLimits"),
        (500, None, "global"),
        (503, None, "global"),
    ],
)
def test_injected_errors_surface_as_http_errors_with_status_and_reason(fake, service, status, reason, domain):
    fake.fail_next(1, status, reason)
    with pytest.raises(HttpError) as failed:
        service.events().list(calendarId="primary").execute()
    assert failed.value.status_code == status
    detail = failed.value.error_details[0]
    assert detail["reason"] == (reason or "backendError")
    assert detail["domain"] == domain
    assert service.events().list(calendarId="primary").execute()["items"] == []  # only the next call failed


def test_the_client_retries_what_google_says_to_and_not_quota(fake, service):
    """googleapiclient's own retry (num_retries) reads the fake's bodies as it reads Google's."""
    fake.fail_next(1, 403, "rateLimitExceeded")
    request = service.events().list(calendarId="primary")
    request._sleep = lambda seconds: None
    assert request.execute(num_retries=1)["items"] == []

    fake.fail_next(2, 403, "quotaExceeded")
    request = service.events().list(calendarId="primary")
    request._sleep = lambda seconds: None
    with pytest.raises(HttpError) as quota:
        request.execute(num_retries=1)
    assert error_reason(quota.value) == "quotaExceeded"


def test_fail_next_can_target_a_path(fake, service):
    fake.fail_next(1, 500, path_contains="/calendarList")
    assert service.events().list(calendarId="primary").execute()["items"] == []
    with pytest.raises(HttpError) as failed:
        service.calendarList().list().execute()
    assert failed.value.status_code == 500


def test_a_dropped_connection_raises(fake, service):
    fake.drop_next(1)  # reset
    with pytest.raises(ConnectionError):
        service.events().list(calendarId="primary").execute()
    assert service.events().list(calendarId="primary").execute()["items"] == []


def test_a_cleanly_closed_connection_is_sent_again_once_by_httplib2(fake, service):
    fake.clear_requests()
    fake.drop_next(1, mode="close")
    assert service.events().list(calendarId="primary").execute()["items"] == []
    assert fake.count_requests() == 2

    fake.drop_next(2, mode="close")
    with pytest.raises(ConnectionError):
        service.events().list(calendarId="primary").execute()


def test_a_lost_reply_to_an_insert_meets_409_when_httplib2_sends_it_again(fake, service):
    fake.drop_next(1, mode="close", after_apply=True)
    with pytest.raises(HttpError) as again:
        service.events().insert(
            calendarId="primary", body={"id": "lostresp1", **timed("x", "2030-03-04T09:00:00Z")}
        ).execute()
    assert again.value.status_code == 409  # the first attempt took effect: our own ids make this detectable
    assert fake.event(EMAIL, "lostresp1")["status"] == "confirmed"


def test_a_slow_reply_is_slow_and_a_short_timeout_gives_up(fake, creds):
    service = calendar_service(fake, creds)
    fake.slow_next(1, 0.4)
    started = time.monotonic()
    service.events().list(calendarId="primary").execute()
    assert time.monotonic() - started >= 0.4

    impatient = calendar_service(fake, creds, timeout=0.2)
    fake.slow_next(1, 0.6)
    with pytest.raises((TimeoutError, socket.timeout)):
        impatient.events().list(calendarId="primary").execute()


def test_partial_responses_with_fields(service):
    service.events().insert(
        calendarId="primary", body={"id": "fields1", **timed("x", "2030-03-04T09:00:00Z")}
    ).execute()
    page = service.events().list(calendarId="primary", fields="items(id,status),nextSyncToken").execute()
    assert set(page) == {"items", "nextSyncToken"}
    assert page["items"] == [{"id": "fields1", "status": "confirmed"}]


def test_deleting_a_watched_calendar_sends_not_exists_and_ends_the_channel(fake, service, receiver):
    calendar_id = service.calendars().insert(body={"summary": "Clinic"}).execute()["id"]
    service.events().watch(
        calendarId=calendar_id, body={"id": "chan-3", "type": "web_hook", "address": receiver.url}
    ).execute()
    receiver.wait_for(1)
    fake.user_delete_calendar(calendar_id)
    notes = receiver.wait_for(2)
    assert notes[1].resource_state == "not_exists"
    assert not [channel for channel in fake.channels() if channel["active"]]


# Google as Google is (issue 18) ---------------------------------------------------------------------------------


def test_an_event_deleted_in_the_web_ui_refuses_writes_and_its_purged_id_stays_taken(fake, service):
    body = {"id": "ours00000000001", **timed("Visit", "2030-03-04T09:00:00+01:00")}
    service.events().insert(calendarId="primary", body=body).execute()
    fake.user_delete_event(EMAIL, body["id"])
    with pytest.raises(HttpError) as update:
        service.events().update(calendarId="primary", eventId=body["id"], body=body).execute()
    assert (update.value.status_code, error_reason(update.value)) == (403, "forbidden")
    with pytest.raises(HttpError) as patch:
        service.events().patch(calendarId="primary", eventId=body["id"], body={"summary": "x"}).execute()
    assert patch.value.status_code == 403
    with pytest.raises(HttpError) as insert:
        service.events().insert(calendarId="primary", body=body).execute()
    assert insert.value.status_code == 409
    fake.user_purge_event(EMAIL, body["id"])
    with pytest.raises(HttpError) as gone:
        service.events().update(calendarId="primary", eventId=body["id"], body=body).execute()
    assert gone.value.status_code == 404
    with pytest.raises(HttpError) as taken:
        service.events().insert(calendarId="primary", body=body).execute()
    assert taken.value.status_code == 409
    # Deleted through the API (not the web UI), an event can still be written back, as before.
    other = {"id": "ours00000000002", **timed("Other", "2030-03-05T09:00:00+01:00")}
    service.events().insert(calendarId="primary", body=other).execute()
    service.events().delete(calendarId="primary", eventId=other["id"]).execute()
    restored = service.events().update(calendarId="primary", eventId=other["id"], body=other).execute()
    assert restored["status"] == "confirmed"


def test_a_shared_calendar_needs_writer_access_for_event_writes(fake, service):
    owner = "manager@example.com"
    fake.add_account(owner)
    shared = fake.user_create_calendar(owner, "Rota")
    assert shared not in {c["id"] for c in service.calendarList().list().execute()["items"]}
    fake.user_share_calendar(shared, EMAIL, "writer")
    entry = next(c for c in service.calendarList().list().execute()["items"] if c["id"] == shared)
    assert entry["accessRole"] == "writer" and "primary" not in entry
    made = service.events().insert(calendarId=shared, body=timed("Shift", "2030-03-04T09:00:00+01:00")).execute()
    fake.user_share_calendar(shared, EMAIL, "reader")
    with pytest.raises(HttpError) as refused:
        service.events().patch(calendarId=shared, eventId=made["id"], body={"summary": "x"}).execute()
    assert (refused.value.status_code, error_reason(refused.value)) == (403, "requiredAccessLevel")
    assert service.events().get(calendarId=shared, eventId=made["id"]).execute()["summary"] == "Shift"  # still readable


def test_a_generated_calendar_refuses_watch(fake, service):
    holidays = fake.user_subscribe_calendar(EMAIL, "Holidays")
    body = {"id": "chan-1", "type": "web_hook", "address": "https://example.com/hook"}
    with pytest.raises(HttpError) as refused:
        service.events().watch(calendarId=holidays, body=body).execute()
    assert (refused.value.status_code, error_reason(refused.value)) == (400, "pushNotSupportedForRequestedResource")
    entry = next(c for c in service.calendarList().list().execute()["items"] if c["id"] == holidays)
    assert entry["accessRole"] == "reader"


def test_consent_may_grant_more_scopes_than_asked_or_fewer(fake, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    redirect_uri = "http://127.0.0.1:9/google/callback"
    fake.add_account(EMAIL)
    fake.issue_tokens(EMAIL, [CALENDAR_SCOPE])  # granted before

    def granted(scopes: list[str], **extra) -> list[str]:
        flow = Flow.from_client_config(fake.client_config(), scopes=scopes, redirect_uri=redirect_uri)
        url, _ = flow.authorization_url(access_type="offline", login_hint=EMAIL, **extra)
        location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
        monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
        flow.fetch_token(authorization_response=location)
        return sorted(flow.credentials.granted_scopes)

    assert granted([EVENTS_READONLY]) == [EVENTS_READONLY]
    assert granted([EVENTS_READONLY], include_granted_scopes="true") == sorted([EVENTS_READONLY, CALENDAR_SCOPE])
    fake.untick_next_consent(EVENTS_READONLY)
    assert EVENTS_READONLY not in granted([EVENTS_READONLY, CALENDAR_SCOPE])


def test_the_app_created_scope_reaches_only_the_calendars_the_app_made(fake):
    app_created = "https://www.googleapis.com/auth/calendar.app.created"
    service = calendar_service(fake, credentials_for(fake, EMAIL, [app_created]))
    made = service.calendars().insert(body={"summary": "Clinic"}).execute()
    service.events().insert(calendarId=made["id"], body=timed("Visit", "2030-03-04T09:00:00+01:00")).execute()
    with pytest.raises(HttpError) as refused:
        service.events().list(calendarId="primary").execute()
    assert (refused.value.status_code, error_reason(refused.value)) == (403, "insufficientPermissions")
    other = fake.user_create_calendar(EMAIL, "Made in Google")
    with pytest.raises(HttpError):
        service.events().list(calendarId=other).execute()
    assert len(service.events().list(calendarId=made["id"]).execute()["items"]) == 1


# --- Quotas (per user and per project, per sliding window) ---------------------------------------------------------


def quota_reason(error: HttpError) -> tuple[int, str, str]:
    import json

    detail = json.loads(error.content)["error"]["errors"][0]
    return error.status_code, detail["domain"], detail["reason"]


def test_the_per_user_limit_answers_403_rate_limit_exceeded_and_the_window_slides():
    with FakeGoogle(rate_limit_user=3, rate_limit_project=100, rate_window=0.3) as fake:
        service = calendar_service(fake, credentials_for(fake, EMAIL))
        for _ in range(3):
            service.calendarList().list().execute()
        with pytest.raises(HttpError) as refused:
            service.calendarList().list().execute()
        assert quota_reason(refused.value) == (403, "usageLimits", "rateLimitExceeded")
        assert [(r.limit, r.account) for r in fake.rate_refusals] == [("user", EMAIL)]
        assert fake.rate_used(account=EMAIL) == 3  # the refused call is not counted
        # Another user of the same project has a window of their own.
        other = calendar_service(fake, credentials_for(fake, "nurse@example.com"))
        other.calendarList().list().execute()
        time.sleep(0.35)  # the window slides past the three calls
        service.calendarList().list().execute()
        assert fake.rate_used(account=EMAIL) == 1
    assert not fake.internal_errors


def test_each_part_of_a_batch_counts_and_the_parts_over_the_limit_are_refused():
    with FakeGoogle(rate_limit_user=5, rate_limit_project=100, rate_window=60.0) as fake:
        service = calendar_service(fake, credentials_for(fake, EMAIL))
        results = {}
        batch = service.new_batch_http_request(callback=lambda rid, response, exc: results.__setitem__(rid, exc))
        for n in range(8):
            batch.add(service.events().insert(calendarId="primary", body=timed(f"q{n}", "2030-03-04T09:00:00Z")))
        batch.execute()  # the batch's own HTTP request is not a call
        assert [results[str(n)] is None for n in range(1, 9)] == [True] * 5 + [False] * 3
        assert {quota_reason(results[str(n)]) for n in range(6, 9)} == {(403, "usageLimits", "rateLimitExceeded")}
        assert len(fake.events(EMAIL)) == 5
        assert fake.rate_used(account=EMAIL) == 5
        assert len(fake.rate_refusals) == 3


def test_the_per_project_limit_answers_429_across_users_in_batches_too():
    with FakeGoogle(rate_limit_user=10, rate_limit_project=12, rate_window=60.0) as fake:
        first = calendar_service(fake, credentials_for(fake, EMAIL))
        second = calendar_service(fake, credentials_for(fake, "nurse@example.com"))
        for _ in range(8):
            first.calendarList().list().execute()
        results = {}
        batch = second.new_batch_http_request(callback=lambda rid, response, exc: results.__setitem__(rid, exc))
        for n in range(6):
            batch.add(second.events().insert(calendarId="primary", body=timed(f"p{n}", "2030-03-04T09:00:00Z")))
        batch.execute()
        # The second user is far under their own limit; the project's 12 are spent after 4 of theirs.
        assert [results[str(n)] is None for n in range(1, 7)] == [True] * 4 + [False] * 2
        assert quota_reason(results["5"]) == (429, "usageLimits", "rateLimitExceeded")
        assert [r.limit for r in fake.rate_refusals] == ["project", "project"]
        assert fake.rate_used() == 12
