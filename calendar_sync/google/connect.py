"""The practitioner's side of two-way sync: connecting (the grant of the OAuth flow kept sealed), the
account's calendars, the default calendar our events go to, the secondary calendars pulled, the sync type,
whether focus time blocks booking, Sync now and disconnecting."""

from __future__ import annotations

import datetime as dt
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import httplib2
from django.conf import settings
from django.db import transaction

from calendar_sync.crypto import SecretUnreadable, seal, unseal
from calendar_sync.feed.ics import without_controls
from calendar_sync.feed.subscriptions import subscription_get_or_create
from calendar_sync.google.changes import changes_record, queue_pull, queue_push_on_commit
from calendar_sync.google.channels import channels_drop
from calendar_sync.google.client import REQUEST_TIMEOUT, scope_covered
from calendar_sync.google.connection import Session
from calendar_sync.keys import EVERYTHING
from calendar_sync.models import (
    FeedSubscription,
    GoogleCalendar,
    GoogleChannel,
    GoogleConnection,
    GoogleEvent,
    GooglePending,
    GoogleRefusal,
    GoogleState,
    SyncType,
)
from calendar_sync.selectors import calendars_of, connection_of
from clinic.services import audit_record
from scheduling.models import OtherEvent

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from google.oauth2.credentials import Credentials

    from clinic.models import Clinic, Practitioner

log = logging.getLogger(__name__)


def connection_save(
    *, clinic: Clinic, actor: User, practitioner: Practitioner, creds: Credentials, resync: bool = True
) -> GoogleConnection:
    """Keep the grant of a completed OAuth flow (sealed, with the scopes granted) and list the account's calendars.
    `resync` False: more access for a step under way (a default or secondary calendar), not a new connection."""
    if not creds.refresh_token:
        raise ValueError("Google gave no refresh token")
    listed = _calendar_list(Session(GoogleConnection(clinic=clinic, practitioner=practitioner), creds))
    email = next((c["id"] for c in listed if c.get("primary")), "") or (listed[0]["id"] if listed else "")
    with transaction.atomic():
        connection = (
            GoogleConnection.objects.for_clinic(clinic).select_for_update().filter(practitioner=practitioner).first()
        )
        if connection is not None and connection.email != email:
            # Another Google account: nothing of the old one's state carries over.
            _forget(connection)
            connection.delete()
            connection = None
        if connection is None:
            connection = GoogleConnection(clinic=clinic, practitioner=practitioner)
        connection.email = email
        connection.refresh_token = seal(creds.refresh_token)
        connection.access_token = seal(creds.token) if creds.token else ""
        connection.access_expires_at = creds.expiry.replace(tzinfo=dt.UTC) if creds.expiry else None
        connection.scopes = " ".join(sorted(set(creds.granted_scopes or creds.scopes or [])))
        connection.state = GoogleState.CONNECTED
        connection.problem = ""
        connection.backoff_until = None
        connection.save()
        _calendars_store(connection, listed)
        audit_record(clinic=clinic, actor=actor, action="google.connected", target=connection, detail={})
    if connection.default_calendar_id and resync:
        resync_all(connection)
    return connection


def scopes_missing(connection: GoogleConnection, needed: list[str]) -> list[str]:
    """The scopes a step needs that the connection was not granted. A connection made before the scopes were
    kept (an empty list) was granted the whole calendar."""
    granted = set(connection.scopes.split())
    return [scope for scope in needed if granted and not scope_covered(scope, granted)]


def _calendar_list(session: Session) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page: str | None = None
    while True:
        answer = session.run(session.service.calendarList().list(pageToken=page, maxResults=250))
        items += answer.get("items", [])
        page = answer.get("nextPageToken")
        if not page:
            return items


def _calendars_store(connection: GoogleConnection, listed: list[dict[str, Any]]) -> None:
    known = {c.calendar_id: c for c in calendars_of(clinic=connection.clinic_id, connection=connection)}
    for item in listed:
        row = known.get(item["id"]) or GoogleCalendar(
            clinic_id=connection.clinic_id, connection=connection, calendar_id=item["id"]
        )
        row.summary = str(item.get("summaryOverride") or item.get("summary") or item["id"])[:255]
        row.primary = bool(item.get("primary"))
        row.writable = item.get("accessRole") in ("owner", "writer")
        row.save()


def calendars_refresh(connection: GoogleConnection) -> list[GoogleCalendar]:
    """The account's calendars as Google lists them now (new ones appear, toggles stay)."""
    session = Session(connection)
    try:
        listed = _calendar_list(session)
    finally:
        session.close()
    with transaction.atomic():
        _calendars_store(connection, listed)
    return calendars_of(clinic=connection.clinic_id, connection=connection)


def default_calendar_choose(
    *, clinic: Clinic, actor: User, connection: GoogleConnection, calendar_id: str | None
) -> GoogleConnection:
    """Where our events go: a new calendar made for the clinic (calendar_id None), or an existing one.

    Two-way sync starts at once: everything is pushed, and the default calendar is pulled.
    """
    session = Session(connection)
    try:
        created = calendar_id is None
        if calendar_id is None:
            made = session.run(
                session.service.calendars().insert(
                    body={
                        "summary": without_controls(f"{clinic.name} · Clinic Scheduler"),
                        "description": "Appointments and events from Clinic Scheduler (two-way sync).",
                        "timeZone": clinic.time_zone,
                    }
                )
            )
            calendar_id = str(made["id"])
        listed = _calendar_list(session)
    finally:
        session.close()
    if calendar_id not in {c["id"] for c in listed if c.get("accessRole") in ("owner", "writer")}:
        raise ValueError("Choose one of your Google calendars that you can change.")
    with transaction.atomic():
        _calendars_store(connection, listed)
        connection.default_calendar_id = calendar_id
        connection.default_calendar_created = created
        connection.save(update_fields=["default_calendar_id", "default_calendar_created", "updated_at"])
        # The default calendar is pulled as it is pushed; it is not also a secondary one.
        GoogleCalendar.objects.for_clinic(clinic).filter(connection=connection, calendar_id=calendar_id).update(
            selected=False
        )
        subscription = subscription_get_or_create(clinic=clinic, practitioner=connection.practitioner)
        subscription.enabled = True
        subscription.sync_type = SyncType.TWO_WAY
        subscription.save(update_fields=["enabled", "sync_type", "updated_at"])
        audit_record(
            clinic=clinic,
            actor=actor,
            action="google.default_calendar",
            target=connection,
            detail={"created": created, "primary": calendar_id == connection.email},
        )
    resync_all(connection)
    return connection


def secondary_set(*, clinic: Clinic, actor: User, calendar: GoogleCalendar, selected: bool) -> GoogleCalendar:
    """Pull a secondary calendar (or stop). Stopping keeps what was pulled from it, tied to its id."""
    connection = calendar.connection
    if calendar.calendar_id == connection.default_calendar_id:
        raise ValueError("The default calendar is always synced.")
    with transaction.atomic():
        calendar.selected = selected
        calendar.sync_token = ""
        calendar.save(update_fields=["selected", "sync_token"])
        audit_record(
            clinic=clinic, actor=actor, action="google.secondary", target=calendar, detail={"selected": selected}
        )
        if selected:
            queue_pull(connection, calendar.pk)
        else:
            channels_drop(connection, GoogleChannel.objects.for_clinic(clinic).filter(calendar=calendar))
    return calendar


def focus_time_set(*, clinic: Clinic, actor: User, connection: GoogleConnection, busy: bool) -> GoogleConnection:
    """Whether Google focus time marked busy blocks booking. Every calendar is read again in full, so the
    events already pulled follow the new rule."""
    if connection.focus_time_busy == busy:
        return connection
    with transaction.atomic():
        connection.focus_time_busy = busy
        connection.save(update_fields=["focus_time_busy", "updated_at"])
        GoogleCalendar.objects.for_clinic(clinic).filter(connection=connection).update(sync_token="")
        audit_record(clinic=clinic, actor=actor, action="google.focus_time", target=connection, detail={"busy": busy})
        queue_pull(connection, None)
    return connection


def resync_all(connection: GoogleConnection) -> None:
    """Send everything again and pull every calendar in full (after connecting, or toggling the sync type:
    the way a new identifier mode reaches Google)."""
    clinic_id = connection.clinic_id
    with transaction.atomic():
        GoogleEvent.objects.for_clinic(clinic_id).filter(connection=connection).update(fingerprint="")
        GoogleCalendar.objects.for_clinic(clinic_id).filter(connection=connection).update(sync_token="")
        GooglePending.objects.for_clinic(clinic_id).create(clinic_id=clinic_id, connection=connection, key=EVERYTHING)
        queue_push_on_commit(clinic_id, connection.pk)
        queue_pull(connection, None)


def _forget(connection: GoogleConnection) -> None:
    """Remove what two-way sync brought here: the events pulled from Google, and the channels."""
    clinic_id = connection.clinic_id
    OtherEvent.objects.for_clinic(clinic_id).filter(practitioner_id=connection.practitioner_id).exclude(
        google_event_id=""
    ).delete()
    channels_drop(connection, GoogleChannel.objects.for_clinic(clinic_id).filter(calendar__connection=connection))


def sync_now(connection: GoogleConnection) -> None:
    """Sync now: push everything that differs (refused writes included), and pull every synced calendar
    (those Google refused to list included)."""
    with transaction.atomic():
        GoogleRefusal.objects.for_clinic(connection.clinic_id).filter(connection=connection, verb="list").delete()
        changes_record([connection.practitioner_id], None)
        queue_pull(connection, None)


def sync_type_set(*, clinic: Clinic, actor: User, subscription: FeedSubscription, sync_type: str) -> None:
    """One-way ↔ two-way. Leaving two-way removes the Google events from our calendar; coming back
    re-syncs everything (with the identifier mode now chosen)."""
    if sync_type not in SyncType.values:
        raise ValueError("Choose one-way or two-way sync.")
    connection = connection_of(clinic=clinic, practitioner=subscription.practitioner)
    with transaction.atomic():
        previous = subscription.sync_type
        subscription.sync_type = sync_type
        subscription.save(update_fields=["sync_type", "updated_at"])
        if previous == sync_type:
            return
        audit_record(
            clinic=clinic, actor=actor, action="sync.type", target=subscription, detail={"sync_type": sync_type}
        )
        if connection is None:
            return
        if sync_type == SyncType.ONE_WAY:
            _forget(connection)
            GoogleCalendar.objects.for_clinic(clinic).filter(connection=connection).update(sync_token="")
            GooglePending.objects.for_clinic(clinic).filter(connection=connection).delete()
        elif connection.default_calendar_id:
            resync_all(connection)


def disconnect(*, clinic: Clinic, actor: User, connection: GoogleConnection) -> None:
    """End two-way sync: revoke the grant at Google (when it still works), remove the Google events from
    our calendar, forget the tokens. Always possible, even when Google cannot be reached."""
    try:
        refresh = unseal(connection.refresh_token)
    except SecretUnreadable:
        refresh = ""
    with transaction.atomic():
        _forget(connection)
        FeedSubscription.objects.for_clinic(clinic).filter(practitioner_id=connection.practitioner_id).update(
            sync_type=SyncType.ONE_WAY
        )
        audit_record(clinic=clinic, actor=actor, action="google.disconnected", target=connection, detail={})
        connection.delete()
    if refresh:
        transaction.on_commit(partial(_revoke_quietly, refresh))


def _revoke_quietly(token: str) -> None:
    try:
        http = httplib2.Http(timeout=REQUEST_TIMEOUT)
        http.request(
            settings.GOOGLE_REVOKE_URI,
            "POST",
            body=f"token={token}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    except (OSError, httplib2.HttpLib2Error):
        log.info("google token revocation not delivered")
