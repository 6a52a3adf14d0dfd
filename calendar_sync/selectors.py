"""Reads of calendar sync: subscriptions, what a practitioner's feed shows in its window, and their Google
connection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from calendar_sync.models import GoogleCalendar, GoogleConnection, GoogleRefusal, GoogleState

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
    refusals: list[GoogleRefusal] = field(default_factory=list)

    @property
    def broken(self) -> bool:
        return self.connection is not None and self.connection.state == GoogleState.BROKEN

    @property
    def write_refusals(self) -> list[GoogleRefusal]:
        return [r for r in self.refusals if r.verb != "list"]

    @property
    def default_calendar_refused(self) -> bool:
        """Google refuses writes to the default calendar as a whole (write access lost), not to one event."""
        return any(r.status == 403 and r.reason == "requiredAccessLevel" for r in self.write_refusals)

    @property
    def listing_refused(self) -> list[tuple[GoogleCalendar, GoogleRefusal]]:
        """The calendars Google refused to list, with the refusal."""
        calendars = {c.refusal_key: c for c in [*self.secondary_calendars, self.default_calendar] if c is not None}
        return [(calendars[r.key], r) for r in self.refusals if r.verb == "list" and r.key in calendars]


def google_link(*, clinic: Clinic, practitioner: Practitioner) -> GoogleLink:
    """The connection, its calendars (the default one apart) and what Google refused (three queries, however many
    calendars and refusals)."""
    connection = connection_of(clinic=clinic, practitioner=practitioner)
    if connection is None:
        return GoogleLink(connection=None, default_calendar=None, secondary_calendars=[])
    calendars = calendars_of(clinic=clinic, connection=connection)
    return GoogleLink(
        connection=connection,
        default_calendar=next((c for c in calendars if c.calendar_id == connection.default_calendar_id), None),
        secondary_calendars=[c for c in calendars if c.calendar_id != connection.default_calendar_id],
        refusals=list(GoogleRefusal.objects.for_clinic(clinic).filter(connection=connection).order_by("key")),
    )
