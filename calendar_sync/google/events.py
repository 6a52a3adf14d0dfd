"""Our events in Google's shape: the event id we choose, the body we send, and the fingerprint of what a
person sees of an event (the same for what we send and what Google gives back)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from calendar_sync.feed.sources import FeedSource, fingerprint

# Each of ours goes to Google under an event id chosen by us ("csa"/"cse" and the object's UUID: base32hex),
# so a retried insert meets its own event (409) and becomes an update; nothing is ever inserted twice. When Google
# refuses that id for good (the event deleted in its web UI, or purged from its bin: the id stays taken), the event
# comes back under a new one: the same id with "v" and a number (v is base32hex, never hex).
OUR_EVENT_ID = re.compile(r"^cs[ae][0-9a-f]{32}(?:v[0-9]{1,6})?$")
LOCK = "🔒 "  # client events carry a lock: their title is set here, not in Google
CLIENT_EVENT_NOTE = (
    "Booked in Clinic Scheduler. This is a client event: its title is set by the clinic, and a title "
    "changed here is replaced at the next sync."
)


def our_event_id(source: FeedSource) -> str:
    """Google's id for one of ours: "csa"/"cse" and the object's UUID (base32hex: 0-9, a-v)."""
    kind, public = source.item.uid.split("@", 1)[0].split("-", 1)
    return ("csa" if kind == "appointment" else "cse") + uuid.UUID(public).hex


def next_event_id(event_id: str) -> str:
    """The id an event of ours comes back under when Google refuses its current one."""
    base, _, number = event_id.partition("v")
    return f"{base}v{int(number or 0) + 1}"


def _when(moment: dt.datetime | None, day: dt.date | None) -> dict[str, str]:
    if day is not None:
        return {"date": day.isoformat()}
    assert moment is not None
    return {"dateTime": moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def event_body(source: FeedSource) -> dict[str, Any]:
    """The Google event for one of ours; the patient named only as the identifier mode allows."""
    item = source.item
    client = source.key.is_appointment
    body: dict[str, Any] = {
        "id": our_event_id(source),
        "status": "confirmed",
        "summary": (LOCK + item.summary) if client else item.summary,
        "start": _when(item.starts_at, item.first_date),
        "end": _when(item.ends_at, item.end_date),
        "transparency": "transparent" if item.transparent else "opaque",
        "extendedProperties": {"private": {"clinicScheduler": item.uid.split("@", 1)[0]}},
    }
    if item.location or client:
        body["location"] = item.location  # a client event's place is ours: one added in Google is cleared
    if client:
        body["description"] = CLIENT_EVENT_NOTE
        # Guests added in Google would see the client's title (and be invited to it): a client event has none.
        body["attendees"] = []
    return body


def patch_body(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of ours for events.patch: what Google adds (reminders, colour, an other event's guests and
    notes) is left as it is, where an update would wipe it."""
    return {name: value for name, value in body.items() if name != "id"}


def shown_fingerprint(event: dict[str, Any]) -> str:
    """What a person sees of an event (title, times, busy/free, place), however Google writes it."""
    return fingerprint(
        event.get("summary", ""),
        _moment(event.get("start", {})),
        _moment(event.get("end", {})),
        event.get("transparency", "opaque"),
        event.get("location", ""),
    )


def _moment(when: dict[str, Any]) -> str:
    if "date" in when:
        return str(when["date"])
    if "dateTime" in when:
        return instant(when["dateTime"]).isoformat()
    return ""


def instant(text: str) -> dt.datetime:
    """A dateTime as Google writes it ("Z" or an offset), in UTC."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
