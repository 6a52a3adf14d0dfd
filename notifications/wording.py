"""What a message says: the facts of its appointment(s) on the location's clock, the clinic's own opening
words (with placeholders), and the fixed parts every message carries (the details, how to reply, how to stop).

Placeholders are plain names in braces ({first_name}, {when}...), replaced by text: no template language, no
attribute access, so a clinic's wording can never reach anything but the facts listed in PLACEHOLDERS.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from notifications.models import Channel, Kind, NotificationSettings

PLACEHOLDERS: dict[str, str] = {
    "first_name": "the patient's first (or preferred) name",
    "clinic": "the clinic's name",
    "when": "the date and time, on the location's clock",
    "practitioner": "who the appointment is with",
    "location": "where",
    "old_when": "the time it was moved from (moves only)",
    "reason": "why it was cancelled, in the category's words (cancellations only)",
    "until": "when an offered place stops being kept for the patient (offers only)",
}

DEFAULT_WORDING: dict[str, str] = {
    Kind.CONFIRMATION: "Dear {first_name}, your appointment at {clinic} is booked for {when}.",
    Kind.SERIES: "Dear {first_name}, your appointments at {clinic} are booked. The dates are below.",
    Kind.REMINDER: "Dear {first_name}, this is a reminder of your appointment at {clinic} on {when}.",
    Kind.MOVED: "Dear {first_name}, your appointment at {clinic} has moved from {old_when} to {when}.",
    Kind.CANCELLED: "Dear {first_name}, your appointment at {clinic} on {when} has been cancelled ({reason}).",
    Kind.REBOOK: (
        "Dear {first_name}, we are sorry: your session at {clinic} on {when} had to be cancelled ({reason}). "
        "Please contact us to book another time."
    ),
    Kind.OFFER: (
        "Dear {first_name}, a place has come free at {clinic} on {when}, and you are next on the waiting list. "
        "We are keeping it for you until {until}."
    ),
    Kind.REQUESTED: (
        "Dear {first_name}, we have your request for {when} at {clinic}. The time is kept for you while the clinic "
        "looks at it; we will tell you when it is confirmed."
    ),
    Kind.DECLINED: "Dear {first_name}, we are sorry: your request for {when} at {clinic} could not be accepted "
    "({reason}).",
}

# Why reception declines an online request, as the patient reads it (the message's category).
DECLINE_REASONS: dict[str, str] = {
    "taken": "that time is no longer available; please choose another",
    "call": "please call us so we can book the right appointment for you",
    "not_patient": "we cannot book this for you online; please call us",
    "other": "please contact the clinic",
    "expired": "the clinic could not confirm it in time; please choose another time",
}

SUBJECTS: dict[str, str] = {
    Kind.CONFIRMATION: "Your appointment on {day}",
    Kind.SERIES: "Your appointments from {day}",
    Kind.REMINDER: "Reminder: your appointment on {day}",
    Kind.MOVED: "Your appointment has moved to {day}",
    Kind.CANCELLED: "Your appointment on {day} is cancelled",
    Kind.REBOOK: "Your appointment on {day} is cancelled: please rebook",
    Kind.OFFER: "A place is free on {day}",
    Kind.REQUESTED: "We have your request for {day}",
    Kind.DECLINED: "Your request for {day} could not be accepted",
}

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def unknown_placeholders(text: str) -> list[str]:
    """The names in braces that are not placeholders (for the settings form)."""
    return sorted({name for name in _PLACEHOLDER.findall(text) if name not in PLACEHOLDERS})


def fill(text: str, facts: dict[str, str]) -> str:
    """Replace each known placeholder by its fact; anything else in braces stays as written."""
    return _PLACEHOLDER.sub(lambda m: facts.get(m.group(1), m.group(0)), text)


def when_text(moment: dt.datetime, zone: ZoneInfo) -> str:
    """'Mon 11 Jan 2027, 10:20 (GMT)': on the location's clock, naming its zone."""
    local = moment.astimezone(zone)
    return f"{local:%a %-d %b %Y, %H:%M} ({local.tzname()})"


@dataclass(frozen=True)
class Visit:
    """One appointment as a message tells it."""

    starts_at: dt.datetime
    ends_at: dt.datetime
    zone: ZoneInfo
    practitioner: str
    location: str
    address: str
    appointment_type: str  # empty unless the clinic names types
    uid: str  # the calendar event's UID (its reschedule chain's first appointment)
    sequence: int  # how many times the chain has moved

    @property
    def when(self) -> str:
        return when_text(self.starts_at, self.zone)


@dataclass(frozen=True)
class Facts:
    """Everything a message of one kind says, gathered before it is worded."""

    kind: str
    clinic: str
    first_name: str
    visits: list[Visit]  # in time order; one, or a series' dates
    old_when: str = ""
    reason: str = ""
    until: str = ""  # an offer: when the place stops being kept


@dataclass(frozen=True)
class Worded:
    subject: str
    text: str  # the email's plain-text part, or the SMS


def opening(settings: NotificationSettings, kind: str) -> str:
    return (settings.wording or {}).get(kind) or DEFAULT_WORDING[kind]


def word(
    facts: Facts,
    settings: NotificationSettings,
    channel: str,
    *,
    sender: str,
    unsubscribe_url: str,
    manage_url: str = "",
    rebook_url: str = "",
    offer_url: str = "",
) -> Worded:
    first = facts.visits[0]
    values = {
        "first_name": facts.first_name,
        "clinic": facts.clinic,
        "when": first.when,
        "practitioner": first.practitioner,
        "location": first.location,
        "old_when": facts.old_when,
        "reason": facts.reason,
        "until": facts.until,
    }
    intro = fill(opening(settings, facts.kind), values)
    subject = SUBJECTS[facts.kind].format(day=f"{first.starts_at.astimezone(first.zone):%a %-d %b}")
    if channel == Channel.SMS:
        # Short: one or two SMS segments. The opt-out words are what Twilio's Advanced Opt-Out understands.
        extra = f" ({len(facts.visits)} dates in all: see your email.)" if len(facts.visits) > 1 else ""
        if rebook_url:
            extra += f" Book online: {rebook_url}"
        if offer_url:
            extra += f" Take it or let it go: {offer_url}"
        return Worded(subject=subject, text=f"{intro}{extra} {sender}. Reply STOP to stop texts.")
    if manage_url:
        intro += f"\n\nTo view, cancel or move it: {manage_url}"
    if rebook_url:
        intro += f"\n\nTo book another time online: {rebook_url}"
    if offer_url:
        intro += f"\n\nTo take the place, or let it go to the next person: {offer_url}"
    lines = [intro, ""]
    if len(facts.visits) > 1:
        lines.append("Dates:")
        lines.extend(f"  - {visit.when}, with {visit.practitioner}" for visit in facts.visits)
        lines.append("")
    lines.extend(
        line
        for line in (
            f"When: {first.when}" if len(facts.visits) == 1 else "",
            f"With: {first.practitioner}" if first.practitioner else "",
            f"Type: {first.appointment_type}" if first.appointment_type else "",
            f"Where: {first.location}" + (f", {first.address}" if first.address else "") if first.location else "",
        )
        if line
    )
    reply = f"Reply to this email to contact {sender}." if settings.reply_to else f"Contact {sender} to make changes."
    lines += ["", reply, "", f"To stop emails from {sender}: {unsubscribe_url}"]
    return Worded(subject=subject, text="\n".join(lines) + "\n")
