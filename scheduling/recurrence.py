"""Recurrence rules of a patient's series, expanded by dateutil's rrule on the clinic's wall clock.

The rule runs over naive local datetimes, and each occurrence becomes a UTC instant on its own date,
so a weekly 18:00 group stays at 18:00 local across DST. Month-end rules follow rrule: a monthly rule
on the 31st skips the months without one, and `skipped_months` says which.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from dateutil import rrule
from django.db import models

MAX_OCCURRENCES = 366
ZERO = dt.timedelta(0)
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
NTH_NAMES = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
RRULE_WEEKDAYS = (rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU)


class Frequency(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class RecurrenceError(ValueError):
    """A rule that cannot be expanded; the message is shown to the user."""


@dataclass(frozen=True)
class RecurrenceRule:
    frequency: str
    start: dt.date  # the first date the series may fall on
    time: dt.time  # wall-clock start on every date
    interval: int = 1
    weekdays: tuple[int, ...] = ()  # ISO weekdays, for weekly rules (none: the start's weekday)
    month_day: int | None = None  # monthly: this day of the month...
    nth_weekday: tuple[int, int] | None = None  # ...or the nth (1-4, or -1 for last) ISO weekday
    count: int | None = None  # end after this many occurrences...
    until: dt.date | None = None  # ...or on this date (inclusive)

    def check(self) -> None:
        if self.frequency not in Frequency.values:
            raise RecurrenceError("Choose Daily, Weekly or Monthly.")
        if not 1 <= self.interval <= 99:
            raise RecurrenceError("Repeat every 1 to 99 days, weeks or months.")
        if (self.count is None) == (self.until is None):
            raise RecurrenceError("End the series after a number of sessions or on a date (one of the two).")
        if self.count is not None and not 1 <= self.count <= MAX_OCCURRENCES:
            raise RecurrenceError(f"A series has 1 to {MAX_OCCURRENCES} sessions.")
        if self.until is not None and self.until < self.start:
            raise RecurrenceError("The end date is before the first date.")
        if any(day not in range(1, 8) for day in self.weekdays):
            raise RecurrenceError("Weekdays are numbered 1 (Monday) to 7 (Sunday).")
        if self.frequency == Frequency.MONTHLY:
            if (self.month_day is None) == (self.nth_weekday is None):
                raise RecurrenceError("A monthly series falls on a day of the month or on the nth weekday.")
            if self.month_day is not None and not 1 <= self.month_day <= 31:
                raise RecurrenceError("The day of the month is 1 to 31.")
            if self.nth_weekday is not None and (
                self.nth_weekday[0] not in (1, 2, 3, 4, -1) or self.nth_weekday[1] not in range(1, 8)
            ):
                raise RecurrenceError("Choose the first to fourth, or the last, weekday of the month.")

    def as_rrule(self) -> rrule.rrule:
        """The dateutil rule over naive local datetimes."""
        self.check()
        start = dt.datetime.combine(self.start, self.time)
        until = dt.datetime.combine(self.until, dt.time.max) if self.until is not None else None
        if self.frequency == Frequency.DAILY:
            return rrule.rrule(rrule.DAILY, dtstart=start, interval=self.interval, count=self.count, until=until)
        if self.frequency == Frequency.WEEKLY:
            days = [RRULE_WEEKDAYS[d - 1] for d in sorted(self.weekdays or (self.start.isoweekday(),))]
            return rrule.rrule(
                rrule.WEEKLY, dtstart=start, interval=self.interval, byweekday=days, count=self.count, until=until
            )
        if self.month_day is not None:
            return rrule.rrule(
                rrule.MONTHLY,
                dtstart=start,
                interval=self.interval,
                bymonthday=self.month_day,
                count=self.count,
                until=until,
            )
        assert self.nth_weekday is not None
        n, day = self.nth_weekday
        return rrule.rrule(
            rrule.MONTHLY,
            dtstart=start,
            interval=self.interval,
            byweekday=RRULE_WEEKDAYS[day - 1](n),
            count=self.count,
            until=until,
        )

    def local_occurrences(self) -> list[dt.datetime]:
        """Naive local start times, at most MAX_OCCURRENCES (an end date far away is refused)."""
        found = []
        for moment in self.as_rrule():
            found.append(moment)
            if len(found) > MAX_OCCURRENCES:
                raise RecurrenceError(f"That end date gives more than {MAX_OCCURRENCES} sessions; end sooner.")
        return found

    def occurrences(self, zone: ZoneInfo) -> list[dt.datetime]:
        """The occurrences as UTC instants, each on its own local date's wall clock."""
        return [moment.replace(tzinfo=zone).astimezone(dt.UTC) for moment in self.local_occurrences()]

    def summary(self) -> str:
        """The rule in words: "Every week on Monday, Wednesday and Friday at 18:00, 6 sessions"."""
        unit = {Frequency.DAILY: "day", Frequency.WEEKLY: "week", Frequency.MONTHLY: "month"}[Frequency(self.frequency)]
        text = f"Every {unit}" if self.interval == 1 else f"Every {self.interval} {unit}s"
        if self.frequency == Frequency.WEEKLY:
            text += " on " + _and_list([DAY_NAMES[d - 1] for d in sorted(self.weekdays or (self.start.isoweekday(),))])
        elif self.frequency == Frequency.MONTHLY and self.month_day is not None:
            text += f" on day {self.month_day}"
        elif self.nth_weekday is not None:
            text += f" on the {NTH_NAMES[self.nth_weekday[0]]} {DAY_NAMES[self.nth_weekday[1] - 1]}"
        text += f" at {self.time:%H:%M}, from {self.start:%-d %b %Y}"
        if self.count is not None:
            return text + (", 1 session" if self.count == 1 else f", {self.count} sessions")
        assert self.until is not None
        return text + f", until {self.until:%-d %b %Y}"

    def skipped_months(self) -> list[dt.date]:
        """Months inside the series that a day-of-month rule skips because they are too short (the 31st...)."""
        if self.frequency != Frequency.MONTHLY or self.month_day is None or self.month_day <= 28:
            return []
        found = self.local_occurrences()
        if not found:
            return []
        skipped = []
        first = self.start.year * 12 + self.start.month - 1
        last = found[-1].year * 12 + found[-1].month - 1
        for month in range(first, last + 1, self.interval):
            year, index = divmod(month, 12)
            if calendar.monthrange(year, index + 1)[1] < self.month_day:
                skipped.append(dt.date(year, index + 1, 1))
        return skipped


def compact_utc(moment: dt.datetime) -> str:
    """An instant in UTC as iCalendar writes it ("20270301T180000Z"): also the name of an occurrence in forms."""
    m = moment if moment.utcoffset() == ZERO else moment.astimezone(dt.UTC)
    return f"{m.year:04d}{m.month:02d}{m.day:02d}T{m.hour:02d}{m.minute:02d}{m.second:02d}Z"


def _and_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
