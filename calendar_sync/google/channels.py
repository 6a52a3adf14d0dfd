"""Push notifications (events.watch): a channel per synced calendar, renewed before it expires, stopped
when no longer wanted; a notification only names its channel, and queues a pull of that calendar."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from googleapiclient.errors import HttpError

from calendar_sync.crypto import token_hash
from calendar_sync.google.client import (
    AccessRevoked,
    ClientRefused,
    GoogleTrouble,
    client_refused,
    client_refused_record,
    error_reason,
)
from calendar_sync.google.connection import Session, connection_mark_broken
from calendar_sync.models import GoogleCalendar, GoogleChannel, GoogleConnection, GoogleState, SyncType

log = logging.getLogger(__name__)

CHANNEL_TTL = dt.timedelta(days=7)
PUSH_NOT_SUPPORTED = "pushNotSupportedForRequestedResource"
CHANNEL_RENEW_BEFORE = dt.timedelta(days=1)


def webhook_address() -> str:
    origin = settings.GOOGLE_WEBHOOK_ORIGIN.rstrip("/")
    return origin + reverse("calendar_sync:google-webhook") if origin else ""


def _synced_calendars_all_clinics() -> QuerySet[GoogleCalendar]:
    """The calendars of every active two-way sync (the default one and the selected ones among them)."""
    # Across clinics: beat renews the channels of every clinic (each calendar row names its clinic).
    return (
        GoogleCalendar.objects.select_related("connection")
        .filter(connection__state=GoogleState.CONNECTED)
        .exclude(connection__default_calendar_id="")
        .filter(
            connection__practitioner__feed_subscription__sync_type=SyncType.TWO_WAY,
            connection__practitioner__feed_subscription__enabled=True,
        )
    )


def channels_renew(now: dt.datetime | None = None) -> int:
    """Watch every synced calendar that has no channel, or one expiring within a day; stop the old one."""
    address = webhook_address()
    if not address or client_refused():
        return 0
    now = now or timezone.now()
    made = 0
    for calendar in _synced_calendars_all_clinics():
        connection = calendar.connection
        if not (calendar.selected or calendar.calendar_id == connection.default_calendar_id):
            continue
        if calendar.push_refused:
            continue  # Google sends no notifications for it: beat's periodic pull reads it
        channels = GoogleChannel.objects.for_clinic(calendar.clinic_id)
        current = list(channels.filter(calendar=calendar))
        if any(c.expires_at > now + CHANNEL_RENEW_BEFORE for c in current):
            continue
        try:
            session = Session(connection)
        except AccessRevoked:
            connection_mark_broken(connection)
            continue
        try:
            token = secrets.token_urlsafe(24)
            channel_id = str(uuid.uuid4())
            answer = session.run(
                session.service.events().watch(
                    calendarId=calendar.calendar_id,
                    body={
                        "id": channel_id,
                        "type": "web_hook",
                        "address": address,
                        "token": token,
                        "params": {"ttl": str(int(CHANNEL_TTL.total_seconds()))},
                    },
                )
            )
            expires = dt.datetime.fromtimestamp(int(answer.get("expiration", 0)) / 1000, tz=dt.UTC)
            with transaction.atomic():
                channels.create(
                    clinic_id=connection.clinic_id,
                    calendar=calendar,
                    channel_id=channel_id,
                    resource_id=str(answer.get("resourceId", "")),
                    token_hash=token_hash(token),
                    expires_at=expires,
                )
                channels.filter(pk__in=[c.pk for c in current]).delete()
            made += 1
            _stop_channels(session, current)
        except AccessRevoked:
            connection_mark_broken(connection)
        except ClientRefused as refused:
            client_refused_record(str(refused))
            return made
        except HttpError as error:
            if error_reason(error) == PUSH_NOT_SUPPORTED:
                # For good: Google generates such calendars (holidays, birthdays) and never notifies about them.
                GoogleCalendar.objects.for_clinic(calendar.clinic_id).filter(pk=calendar.pk).update(push_refused=True)
                log.info("google calendar %s refuses push notifications: polled instead", calendar.pk)
            else:
                log.warning("google watch failed for calendar %s: %s", calendar.pk, error.status_code)
        except GoogleTrouble as error:
            log.warning("google watch failed for calendar %s: %s", calendar.pk, type(error).__name__)
        finally:
            session.close()
    return made


def _stop_channels(session: Session, channels: list[GoogleChannel]) -> None:
    for channel in channels:
        try:
            session.run(
                session.service.channels().stop(body={"id": channel.channel_id, "resourceId": channel.resource_id})
            )
        except (GoogleTrouble, HttpError):
            log.info("google channel %s not stopped (it expires by itself)", channel.channel_id)


def _stop_channels_quietly(clinic_id: int, connection_id: int, channels: list[GoogleChannel]) -> None:
    if not channels:
        return
    connection = GoogleConnection.objects.for_clinic(clinic_id).filter(pk=connection_id).first()
    if connection is None or connection.state != GoogleState.CONNECTED:
        return
    try:
        session = Session(connection)
    except AccessRevoked:
        return
    _stop_channels(session, channels)


def channels_drop(connection: GoogleConnection, channels: QuerySet[GoogleChannel]) -> None:
    """Forget these channels now, and ask Google to stop them once this commits."""
    dropped = list(channels)
    GoogleChannel.objects.for_clinic(connection.clinic_id).filter(pk__in=[c.pk for c in dropped]).delete()
    transaction.on_commit(partial(_stop_channels_quietly, connection.clinic_id, connection.pk, dropped))


def channel_for_notification(channel_id: str, token: str) -> GoogleChannel | None:
    """The channel a notification names, when its token matches."""
    # Across clinics: Google's request carries no session; the channel's secret token is its credential.
    channel = GoogleChannel.objects.select_related("calendar__connection").filter(channel_id=channel_id[:64]).first()
    if channel is None or not secrets.compare_digest(channel.token_hash, token_hash(token)):
        return None
    return channel
