"""The calendar attachment of an email (RFC 5546 iTIP over RFC 5545): METHOD:REQUEST for a booking or a move,
METHOD:CANCEL for a cancellation.

A calendar app updates an event in place when the UID is the same and the SEQUENCE higher (RFC 5546 2.1.4,
3.2.2 and 3.2.5), so every appointment of one reschedule chain is one event: its UID is the chain's first
appointment's, and its SEQUENCE the number of moves (a cancellation one more than the last version sent).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from icalendar import Calendar, Event, vCalAddress, vText

from notifications.wording import Visit

PRODID = "-//Clinic Scheduler//Messages to patients//EN"


def event_uid(root_public_id: str) -> str:
    host = settings.SITE_URL.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "clinic-scheduler"
    return f"appointment-{root_public_id}@{host}"


def invitation(
    visits: Sequence[Visit],
    *,
    cancel: bool,
    summary: str,
    organizer_email: str,
    organizer_name: str,
    attendee_email: str,
    now: dt.datetime,
) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancel else "REQUEST")
    for visit in visits:
        event = Event()
        event.add("uid", visit.uid)
        event.add("sequence", visit.sequence + (1 if cancel else 0))
        event.add("dtstamp", now.astimezone(dt.UTC))
        event.add("dtstart", visit.starts_at.astimezone(dt.UTC))
        event.add("dtend", visit.ends_at.astimezone(dt.UTC))
        event.add("summary", summary)
        if visit.location:
            event.add(
                "location", ", ".join(part for part in (visit.location, visit.address.replace("\n", ", ")) if part)
            )
        event.add("status", "CANCELLED" if cancel else "CONFIRMED")
        event.add("transp", "OPAQUE")
        organizer = vCalAddress(f"mailto:{organizer_email}")
        organizer.params["cn"] = vText(organizer_name)
        event.add("organizer", organizer)
        attendee = vCalAddress(f"mailto:{attendee_email}")
        attendee.params["role"] = vText("REQ-PARTICIPANT")
        attendee.params["partstat"] = vText("ACCEPTED")
        event.add("attendee", attendee)
        calendar.add_component(event)
    return calendar.to_ical()
