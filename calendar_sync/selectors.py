"""Reads of calendar sync: subscriptions, what a practitioner's feed shows in its window, and their Google
connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from calendar_sync.models import GoogleCalendar, GoogleConnection, GoogleState

if TYPE_CHECKING:
    from clinic.models import Clinic, Practitioner


def connection_of(*, clinic: Clinic, practitioner: Practitioner) -> GoogleConnection | None:
    return GoogleConnection.objects.for_clinic(clinic).filter(practitioner=practitioner).first()


def calendars_of(*, clinic: Clinic | int, connection: GoogleConnection) -> list[GoogleCalendar]:
    """The account's calendars as last listed (primary first, then by name)."""
    return list(GoogleCalendar.objects.for_clinic(clinic).filter(connection=connection))


@dataclass(frozen=True)
class GoogleLink:
    """The two-way part of a practitioner's sync: their Google connection (if any) and its calendars."""

    connection: GoogleConnection | None
    default_calendar: GoogleCalendar | None
    secondary_calendars: list[GoogleCalendar]

    @property
    def broken(self) -> bool:
        return self.connection is not None and self.connection.state == GoogleState.BROKEN


def google_link(*, clinic: Clinic, practitioner: Practitioner) -> GoogleLink:
    """The connection and its calendars, the default one apart (two queries, however many calendars)."""
    connection = connection_of(clinic=clinic, practitioner=practitioner)
    if connection is None:
        return GoogleLink(connection=None, default_calendar=None, secondary_calendars=[])
    calendars = calendars_of(clinic=clinic, connection=connection)
    return GoogleLink(
        connection=connection,
        default_calendar=next((c for c in calendars if c.calendar_id == connection.default_calendar_id), None),
        secondary_calendars=[c for c in calendars if c.calendar_id != connection.default_calendar_id],
    )
