"""Forms of the rota and the calendar."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID
from zoneinfo import ZoneInfo

from django import forms
from django.db.models import QuerySet
from django.http import QueryDict

from clinic.models import Clinic, Department, Location, Practitioner, validate_time_zone
from clinic.numbers import whole_number
from patients.models import Coverage, Patient
from scheduling.hours import (
    WEEKDAYS,
    HoursError,
    TimeRange,
    clean_ranges,
    gap_refusal,
    local_interval,
    parse_time,
    ranges_to_json,
)
from scheduling.models import (
    WEEKDAY_NAMES,
    Allocation,
    CancelCategory,
    OutReason,
    SeriesScope,
    SessionOut,
    Slot,
    WaitlistKind,
    WaitlistSettings,
)
from scheduling.recurrence import MAX_OCCURRENCES, NTH_NAMES, Frequency, RecurrenceError, RecurrenceRule
from scheduling.services.booking import BookingRequest
from scheduling.services.calendar import EventData
from scheduling.services.changes import SessionEdit, TakeOut
from scheduling.services.rota import AllocationRequest
from scheduling.services.series import CancelScope
from scheduling.services.waitlist import EntryData
from sessions_setup.models import ReportingCategory, SessionTemplate, SlotType


class AllocationForm(forms.Form):
    template = forms.ModelChoiceField(queryset=SessionTemplate.objects.none(), label="Session")
    practitioner = forms.ModelChoiceField(
        queryset=Practitioner.objects.none(),
        required=False,
        empty_label="The whole clinic (no practitioner)",
        help_text="Leave as the whole clinic for sessions not tied to one clinician, e.g. a walk-in clinic.",
    )
    location = forms.ModelChoiceField(queryset=Location.objects.none())
    start_time = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    first_date = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"), label="Date (or first date)"
    )
    repeat = forms.BooleanField(required=False, label="Repeat weekly")
    weekdays = forms.TypedMultipleChoiceField(
        choices=[(i, name) for i, name in enumerate(WEEKDAY_NAMES, start=1)],
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="On",
    )
    every_weeks = forms.IntegerField(min_value=1, max_value=8, initial=1, label="Every N weeks")
    last_date = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"), required=False, label="Until"
    )

    def __init__(self, *args: Any, clinic: Clinic, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"first_date": default_first_date(clinic.today()), "every_weeks": 1})
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        template_field: Any = self.fields["template"]
        template_field.queryset = SessionTemplate.objects.for_clinic(clinic).prefetch_related("slots__slot_type")
        practitioner_field: Any = self.fields["practitioner"]
        practitioner_field.queryset = Practitioner.objects.for_clinic(clinic).filter(is_active=True)
        location_field: Any = self.fields["location"]
        location_field.queryset = Location.objects.for_clinic(clinic).filter(is_active=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("repeat"):
            if not data.get("weekdays"):
                self.add_error("weekdays", "Choose the weekdays the session repeats on.")
            if not data.get("last_date"):
                self.add_error("last_date", "Give the last date of the repeat.")
        else:
            data["weekdays"] = []
            data["last_date"] = data.get("first_date")
            data["every_weeks"] = 1
        return data

    def allocation_request(self) -> AllocationRequest:
        data = self.cleaned_data
        return AllocationRequest(
            template=data["template"],
            practitioner=data["practitioner"],
            location=data["location"],
            start_time=data["start_time"],
            first_date=data["first_date"],
            last_date=data["last_date"],
            weekdays=tuple(data["weekdays"]),
            every_weeks=data["every_weeks"] or 1,
        )


def default_first_date(today: dt.date) -> dt.date:
    """Next Monday: where a new rota usually starts."""
    return today + dt.timedelta(days=(7 - today.weekday()) % 7 or 7)


# The calendar -----------------------------------------------------------------------------------


class EventKind:
    OTHER = "other"
    CLIENT = "client"
    CHOICES = [(OTHER, "Other event"), (CLIENT, "Client appointment")]


NEW_EVENT_MINUTES = 30  # a new event from an empty time lasts this long, unless changed


def event_initial(
    params: Mapping[str, str], *, today: dt.date, practitioners: QuerySet[Practitioner]
) -> dict[str, Any]:
    """A new event's starting values from the calendar's link: the date, start time (and so the end), all day,
    and whose calendar (the one named, else the only one this member may change). A hand-edited link's
    values that are not understood are left out: the form then starts empty there."""
    initial: dict[str, Any] = {"date": today, "kind": EventKind.OTHER, "show_as": "busy"}
    with contextlib.suppress(ValueError):
        if params.get("date"):
            initial["date"] = dt.date.fromisoformat(params["date"])
    with contextlib.suppress(ValueError):
        if params.get("start"):
            start = dt.time.fromisoformat(params["start"])
            initial["start_time"] = start
            end = (dt.datetime.combine(dt.date(2000, 1, 1), start) + dt.timedelta(minutes=NEW_EVENT_MINUTES)).time()
            initial["end_time"] = end if end > start else dt.time(23, 59)
    initial["all_day"] = params.get("all_day") == "1"
    named = params.get("practitioner", "")
    chosen = next((p for p in practitioners if str(p.public_id) == named), None)
    if chosen is not None:
        initial["practitioner"] = chosen.public_id
    elif len(practitioners) == 1:
        initial["practitioner"] = practitioners[0].public_id
    return initial


class OtherEventForm(forms.Form):
    """An event from an empty time or the all-day row. Times are on the viewer's clock (named on the page)."""

    kind = forms.ChoiceField(choices=EventKind.CHOICES, initial=EventKind.OTHER, widget=forms.RadioSelect, label="Type")
    practitioner = forms.ModelChoiceField(queryset=Practitioner.objects.none(), label="Calendar of")
    title = forms.CharField(max_length=120, required=False)
    all_day = forms.BooleanField(required=False, label="All day")
    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    start_time = forms.TimeField(
        required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"), label="Start"
    )
    end_time = forms.TimeField(
        required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"), label="End"
    )
    last_date = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        label="Until (last day)",
        help_text="For an all-day event over several days.",
    )
    show_as = forms.ChoiceField(
        choices=[("busy", "Busy"), ("free", "Free")],
        initial="busy",
        widget=forms.RadioSelect,
        label="Show as",
        help_text="Busy time is taken out of online-booking availability; free time is not.",
    )
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)

    def __init__(
        self,
        *args: Any,
        practitioners: Any,
        zone: ZoneInfo,
        instants: tuple[dt.datetime, dt.datetime] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone
        # An edited timed event's start and end: kept where their date and time are not changed, so a time
        # the clocks show twice (01:30 GMT, the second one) is not moved to the first by saving its title.
        self.instants = instants
        field = self.fields["practitioner"]
        field.queryset = practitioners  # type: ignore[attr-defined]
        field.to_field_name = "public_id"  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") == EventKind.CLIENT:
            # Not an event: the practitioner and time to book at (the view opens booking there). "All day"
            # is set aside (the form hides it for a client appointment).
            if data.get("start_time") is None:
                self.add_error("start_time", "Give the time of the appointment.")
            self._refuse_gap_times(data, ("start_time",))
            return data
        if not data.get("title"):
            self.add_error("title", "Give the event a title.")
        if data.get("all_day"):
            date, last = data.get("date"), data.get("last_date")
            if date and last and last < date:
                self.add_error("last_date", "The last day is before the first.")
        else:
            start, end = data.get("start_time"), data.get("end_time")
            if start is None:
                self.add_error("start_time", "Give a start time, or tick All day.")
            if end is None:
                self.add_error("end_time", "Give an end time, or tick All day.")
            if start and end and end <= start:
                self.add_error("end_time", "The end must be after the start.")
            self._refuse_gap_times(data, ("start_time", "end_time"))
            if not self.errors:
                self.interval = self._interval(data)
                if self.interval[1] <= self.interval[0]:
                    self.add_error("end_time", "The end must be after the start.")
        return data

    def _interval(self, data: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
        """The event's instants. An edited event keeps the start or end whose date and time are unchanged, and
        a changed one is read on the same pass of a repeated hour as the kept one (01:40 after 01:30 GMT is
        01:40 GMT); a new time in a repeated hour is its first pass."""
        date, start, end = data["date"], data["start_time"], data["end_time"]
        starts_at, ends_at = local_interval(date, start, end, self.zone)
        if self.instants is None:
            return starts_at, ends_at
        kept_start, kept_end = self._kept("start_time"), self._kept("end_time")
        if kept_start and kept_end:
            return self.instants
        if kept_start:
            fold = self.instants[0].astimezone(self.zone).fold
            return self.instants[0], dt.datetime.combine(date, end, tzinfo=self.zone).replace(fold=fold)
        if kept_end:
            fold = self.instants[1].astimezone(self.zone).fold
            return dt.datetime.combine(date, start, tzinfo=self.zone).replace(fold=fold), self.instants[1]
        return starts_at, ends_at

    def _refuse_gap_times(self, data: dict[str, Any], names: Sequence[str]) -> None:
        """A time the clocks jump over that night is refused, never moved silently."""
        for name in names:
            if data.get("date") and data.get(name) and name not in self.errors:
                refusal = gap_refusal(data["date"], data[name], self.zone)
                if refusal:
                    self.add_error(name, refusal)

    def _kept(self, name: str) -> bool:
        return self.instants is not None and not {"date", name, "all_day"} & set(self.changed_data)

    def client_time(self) -> tuple[dt.datetime, dt.datetime]:
        """A client appointment's start and end (the end as given, else the start's minute), as instants."""
        data = self.cleaned_data
        end = data.get("end_time")
        end = end if end is not None and end > data["start_time"] else data["start_time"]
        return local_interval(data["date"], data["start_time"], end, self.zone)

    def event_data(self) -> EventData:
        data = self.cleaned_data
        common = {
            "practitioner": data["practitioner"],
            "title": data["title"],
            "all_day": data["all_day"],
            "busy": data["show_as"] == "busy",
            "notes": data["notes"],
        }
        if data["all_day"]:
            return EventData(**common, first_date=data["date"], last_date=data.get("last_date") or data["date"])
        starts_at, ends_at = (moment.astimezone(dt.UTC) for moment in self.interval)
        return EventData(**common, starts_at=starts_at, ends_at=ends_at)


class CalendarFilterForm(forms.Form):
    p = forms.MultipleChoiceField(required=False, label="Practitioners", widget=forms.CheckboxSelectMultiple)
    loc = forms.MultipleChoiceField(required=False, label="Locations", widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, practitioners: Any, locations: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["p"].choices = [(str(p.public_id), p.name) for p in practitioners]  # type: ignore[attr-defined]
        self.fields["loc"].choices = [(str(loc.public_id), loc.name) for loc in locations]  # type: ignore[attr-defined]


def posted_pairs(data: Any, start_name: str, end_name: str) -> list[list[str]]:
    """Start/end inputs posted as repeated names, paired up in order."""
    starts, ends = data.getlist(start_name), data.getlist(end_name)
    return [[s.strip(), e.strip()] for s, e in zip(starts, ends, strict=False)]


def ranges_of(pairs: list[list[str]]) -> list[TimeRange]:
    """Parsed ranges; a pair with both halves empty is a row the user left blank."""
    filled = [pair for pair in pairs if pair[0] or pair[1]]
    if any(not start or not end for start, end in filled):
        raise HoursError("Give both a start and an end time.")
    return clean_ranges(filled)


def next_range(pairs: list[list[str]]) -> list[str]:
    """A sensible new range: 09:00–17:00, or the hour after the last one."""
    try:
        last_end = max(parse_time(end) for _, end in pairs if end)
    except (ValueError, HoursError):
        return ["09:00", "17:00"]
    start = last_end.hour * 60 + last_end.minute + 60
    end = start + 60
    if end >= 24 * 60:
        return ["", ""]
    return [f"{start // 60:02d}:{start % 60:02d}", f"{end // 60:02d}:{end % 60:02d}"]


class WeeklyHoursForm:
    """The weekly hours editor (office hours and availability): per weekday any number of ranges,
    posted as repeated d<N>_start / d<N>_end inputs, and the zone the hours are in.

    `action` buttons add a range to a day ("add-3") or remove one ("remove-3-0"); every post also saves.
    """

    def __init__(self, data: Any = None, *, weekly: dict[int, list[TimeRange]], time_zone: str) -> None:
        self.bound = data is not None
        if data is None:
            self.pairs = {day: ranges_to_json(weekly.get(day, [])) for day in WEEKDAYS}
            self.time_zone = time_zone
        else:
            self.pairs = {day: posted_pairs(data, f"d{day}_start", f"d{day}_end") for day in WEEKDAYS}
            self.time_zone = (data.get("time_zone") or "").strip()
            apply_action(self.pairs, data.get("action", ""))
        self.errors: dict[str, str] = {}
        self.weekly: dict[int, list[TimeRange]] = {}

    def is_valid(self) -> bool:
        if not self.bound:
            return False
        self.errors = {}
        try:
            validate_time_zone(self.time_zone)
        except forms.ValidationError as error:
            self.errors["time_zone"] = error.messages[0]
        for day, pairs in self.pairs.items():
            try:
                self.weekly[day] = ranges_of(pairs)
            except HoursError as error:
                self.errors[str(day)] = str(error)
        return not self.errors

    def days(self) -> list[dict[str, Any]]:
        return [
            {
                "number": day,
                "name": WEEKDAY_NAMES[day - 1],
                "ranges": list(enumerate(self.pairs[day])),
                "error": self.errors.get(str(day), ""),
            }
            for day in WEEKDAYS
        ]


def apply_action(pairs: dict[Any, list[list[str]]], action: str) -> None:
    """Add or remove a range row as an editor's button asked ("add-<key>", "remove-<key>-<index>")."""
    parts = action.split("-")
    # The key as the editor wrote it (a weekday number, or "h"); anything else is a stale or hand-made value.
    key = next((k for k in pairs if len(parts) > 1 and str(k) == parts[1]), None)
    if key is None:
        return
    if parts[0] == "add" and len(parts) == 2:
        pairs[key].append(next_range(pairs[key]))
    elif parts[0] == "remove" and len(parts) == 3:
        index = whole_number(parts[2])
        if index is not None and index < len(pairs[key]):
            del pairs[key][index]


class OverrideForm:
    """Date overrides: some dates, and the hours they have instead (none: unavailable those dates)."""

    def __init__(self, data: Any = None, *, dates: list[dt.date] | None = None, hours: list[TimeRange] | None = None):
        self.bound = data is not None
        if data is None:
            self.date_values = [d.isoformat() for d in dates or []] or [""]
            self.pairs = {"h": ranges_to_json(hours) if hours is not None else [["09:00", "17:00"]]}
        else:
            self.date_values = [v.strip() for v in data.getlist("dates")]
            self.pairs = {"h": posted_pairs(data, "h_start", "h_end")}
            action = data.get("action", "")
            if action == "add-date":
                self.date_values.append("")
            elif action.startswith("remove-date-"):
                index = whole_number(action.removeprefix("remove-date-"))
                if index is not None and index < len(self.date_values):
                    del self.date_values[index]
            else:
                apply_action(self.pairs, action)
        self.errors: dict[str, str] = {}
        self.dates: list[dt.date] = []
        self.hours: list[TimeRange] = []

    @property
    def hour_rows(self) -> list[tuple[int, list[str]]]:
        return list(enumerate(self.pairs["h"]))

    def is_valid(self) -> bool:
        self.errors = {}
        for value in self.date_values:
            if not value:
                continue
            try:
                self.dates.append(dt.date.fromisoformat(value))
            except ValueError:
                self.errors["dates"] = f"“{value}” is not a date."
        if not self.dates and "dates" not in self.errors:
            self.errors["dates"] = "Pick at least one date."
        try:
            self.hours = ranges_of(self.pairs["h"])
        except HoursError as error:
            self.errors["hours"] = str(error)
        return not self.errors


# Booking ----------------------------------------------------------------------------------------------

SELF_PAY = "self"


class SecondaryPlanSelect(forms.Select):
    """The secondary plan: the plan chosen as primary is never offered (hidden and disabled; the booking
    form's script moves the mark when another primary is chosen: data-not-plan-of)."""

    primary: str = ""

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        if value and str(value) == self.primary:
            option["attrs"].update({"hidden": True, "disabled": True})
        return option


class KnownModelChoiceField(forms.ModelChoiceField):
    """A model choice (by to_field_name) that takes a value naming one of `known` (objects already read that the
    queryset holds) without a query; any other value is looked up in the queryset as usual. A form gives its own
    copy of the field a new dict (never changes the one it was copied with)."""

    known: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known = {}

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value in self.known:
            return self.known[value]
        return super().to_python(value)


class BookingForm(forms.Form):
    """Book Appointment, beneath the patient card: coverage, department, resources and appointment type."""

    coverage = forms.ChoiceField(label="Insurance", widget=forms.RadioSelect)
    secondary_coverage = forms.ChoiceField(
        label="Secondary plan", required=False, widget=SecondaryPlanSelect(attrs={"data-not-plan-of": "coverage"})
    )
    department = forms.ModelChoiceField(queryset=Department.objects.none(), required=False, empty_label="(none)")
    resources = forms.ModelMultipleChoiceField(
        queryset=Practitioner.objects.none(),
        required=False,
        label="Resource(s)",
        help_text="The slot's practitioner; choose others, or several, as needed.",
        widget=forms.CheckboxSelectMultiple,
    )
    slot_type = KnownModelChoiceField(queryset=SlotType.objects.none(), label="Appointment type", empty_label=None)

    def __init__(
        self,
        *args: Any,
        clinic: Clinic,
        patient: Patient,
        slot: Slot,
        own_department_id: int | None = None,
        closed_refusal: str = "",
        may_override: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if closed_refusal and may_override:
            # An enforced closed group that has begun: a new patient joins only with a reason (audited).
            self.fields["closed_override"] = forms.CharField(
                label="Reason to add a new patient to this closed group",
                max_length=200,
                help_text=closed_refusal,
            )
        # What a booking starts with: the primary plan (else self pay), the slot's practitioner and type.
        practitioner = slot.session.practitioner
        self.initial = {
            "resources": [practitioner.public_id] if practitioner else [],
            "slot_type": slot.slot_type.public_id if slot.slot_type else None,
            **self.initial,
        }
        self.coverages: dict[str, Coverage] = {}
        if clinic.bills_insurance:
            self._offer_plans(patient)
        else:
            # A practice that does not bill insurance is never asked about plans (or SELF PAY).
            del self.fields["coverage"], self.fields["secondary_coverage"]
        departments = Department.objects.for_clinic(clinic).filter(is_active=True).order_by("name")
        self.fields["department"].queryset = departments  # type: ignore[attr-defined]
        self.fields["department"].to_field_name = "public_id"  # type: ignore[attr-defined]
        if not self.is_bound and "department" not in self.initial:
            # (Shown by an unbound form only: a posted form shows what was posted.)
            # The member's own department (seed 003: "automatically lists your department"), else the
            # clinic's only one: no choosing where there is nothing to choose.
            own = departments.filter(pk=own_department_id).first() if own_department_id else None
            only = [own] if own is not None else list(departments[:2])
            if len(only) == 1:
                self.initial["department"] = only[0].public_id
        practitioners = Practitioner.objects.for_clinic(clinic).filter(is_active=True).order_by("name")
        self.fields["resources"].queryset = practitioners  # type: ignore[attr-defined]
        self.fields["resources"].to_field_name = "public_id"  # type: ignore[attr-defined]
        types = SlotType.objects.for_clinic(clinic).filter(is_active=True, bookable=True)
        self.fields["slot_type"].queryset = types  # type: ignore[attr-defined]
        self.fields["slot_type"].to_field_name = "public_id"  # type: ignore[attr-defined]
        own_type = slot.slot_type
        if own_type is not None and own_type.clinic_id == clinic.pk and own_type.is_active and own_type.bookable:
            # The slot's own type (one of `types`, read with the slot) is the usual choice: no query to find it.
            cast(KnownModelChoiceField, self.fields["slot_type"]).known = {str(own_type.public_id): own_type}

    def _offer_plans(self, patient: Patient) -> None:
        self.coverages = {str(c.public_id): c for c in patient.coverages.all()}
        self.initial.setdefault(
            "coverage", next((key for key, c in self.coverages.items() if c.priority == "primary"), SELF_PAY)
        )
        plans = [(key, f"{c.get_priority_display()}: {c.payer} · {c.plan_name}") for key, c in self.coverages.items()]
        self.fields["coverage"].choices = [*plans, (SELF_PAY, "SELF PAY")]  # type: ignore[attr-defined]
        self.fields["secondary_coverage"].choices = [("", "(none)"), *plans]  # type: ignore[attr-defined]
        primary = self.data.get("coverage") if self.is_bound else self.initial["coverage"]
        cast(SecondaryPlanSelect, self.fields["secondary_coverage"].widget).primary = str(primary or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        primary, secondary = data.get("coverage"), data.get("secondary_coverage")
        if primary == SELF_PAY and secondary:
            self.add_error("secondary_coverage", "A self-pay appointment has no secondary plan.")
        elif primary and secondary and primary == secondary:
            self.add_error("secondary_coverage", "Choose a different plan from the primary one.")
        return data

    def booking_request(self, *, slot: Slot, patient: Patient) -> BookingRequest:
        data = self.cleaned_data
        self_pay = data.get("coverage") == SELF_PAY
        return BookingRequest(
            slot=slot,
            patient=patient,
            slot_type=data["slot_type"],
            department=data.get("department"),
            resources=list(data.get("resources") or []),
            coverage=None if self_pay else self.coverages.get(data.get("coverage") or ""),
            secondary_coverage=self.coverages.get(data.get("secondary_coverage") or ""),
            self_pay=self_pay,
            closed_override=data.get("closed_override", ""),
        )


@dataclass(frozen=True)
class PlainBooking:
    """The booking form's fields as posted, for the plain case that books in one call (scheduling.services.quick):
    the slot's own appointment type, at most its own practitioner as the resource, a department and plans named by
    id (the call checks they are the clinic's and the patient's)."""

    patient: UUID
    slot_type: UUID
    department: UUID | None
    resources: tuple[UUID, ...]
    self_pay: bool
    coverage: UUID | None
    secondary_coverage: UUID | None


def plain_booking(values: QueryDict, *, bills_insurance: bool) -> PlainBooking | None:
    """The posted booking as BookingForm would read it, or None for anything the form would refuse or that must go
    through it (then the form and appointment_book run, and say why in words). Ids are read as the form's fields
    read them: a plan or a resource only in the exact form the page wrote it (ChoiceField and
    ModelMultipleChoiceField compare strings), a patient, type or department as any UUID (a model lookup)."""
    patient = _uuid(values.get("patient"))
    slot_type = _uuid(values.get("slot_type"))
    department_value = values.get("department") or ""
    department = _uuid(department_value) if department_value else None
    resources = [_uuid(value, exact=True) for value in values.getlist("resources")]
    if patient is None or slot_type is None or (department_value and department is None) or None in resources:
        return None
    self_pay, coverage, secondary = False, None, None
    if bills_insurance:
        primary_value, secondary_value = values.get("coverage") or "", values.get("secondary_coverage") or ""
        self_pay = primary_value == SELF_PAY
        coverage = None if self_pay else _uuid(primary_value, exact=True)
        secondary = _uuid(secondary_value, exact=True) if secondary_value else None
        if (
            not primary_value
            or (not self_pay and coverage is None)
            or (secondary_value and (self_pay or secondary is None or secondary == coverage))
        ):
            return None
    return PlainBooking(
        patient=patient,
        slot_type=slot_type,
        department=department,
        resources=tuple(r for r in resources if r is not None),
        self_pay=self_pay,
        coverage=coverage,
        secondary_coverage=secondary,
    )


def _uuid(value: object, *, exact: bool = False) -> UUID | None:
    """A UUID from a posted value (None when it is not one); exact: only as str(uuid) writes it."""
    if not isinstance(value, str):
        return None
    try:
        parsed = UUID(value)
    except ValueError:
        return None
    return None if exact and str(parsed) != value else parsed


class CancelForm(forms.Form):
    category = forms.TypedChoiceField(
        label="Why",
        choices=CancelCategory.chosen_by_reception(),
        initial=CancelCategory.PATIENT,
        required=False,
        empty_value=CancelCategory.OTHER,
        help_text="The patient is told this (a cancellation by the clinician or the clinic asks them to rebook).",
    )
    reason = forms.CharField(
        max_length=200,
        label="Reason for cancelling",
        strip=True,
        help_text="Kept with the appointment for the clinic; never sent to the patient.",
    )


def choose_by_public_id(form: forms.Form, clinic: Clinic) -> None:
    """The clinic's active practitioners, locations and bookable slot types, chosen by public id."""
    for name, queryset in (
        ("practitioner", Practitioner.objects.for_clinic(clinic).filter(is_active=True).order_by("name")),
        ("location", Location.objects.for_clinic(clinic).filter(is_active=True).order_by("name")),
        ("slot_type", SlotType.objects.for_clinic(clinic).filter(is_active=True, bookable=True)),
    ):
        form.fields[name].queryset = queryset  # type: ignore[attr-defined]
        form.fields[name].to_field_name = "public_id"  # type: ignore[attr-defined]


NEW_SLOT_MINUTES = (5, 240)  # the shortest and longest slot Create New Slot makes


class NewSlotForm(forms.Form):
    """Create New Slot: an ad-hoc slot for a practitioner at a chosen time, outside the rota."""

    practitioner = forms.ModelChoiceField(queryset=Practitioner.objects.none(), empty_label=None)
    location = forms.ModelChoiceField(queryset=Location.objects.none(), empty_label=None)
    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    start_time = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"), label="Start")
    length_minutes = forms.IntegerField(
        min_value=NEW_SLOT_MINUTES[0], max_value=NEW_SLOT_MINUTES[1], initial=10, label="Length (minutes)"
    )
    slot_type = forms.ModelChoiceField(queryset=SlotType.objects.none(), label="Slot type", empty_label=None)

    def __init__(self, *args: Any, clinic: Clinic, link: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        # Starting values: today, else what the link from the calendar names (a time clicked, a practitioner).
        initial: dict[str, Any] = {"date": clinic.today()}
        for name in ("practitioner", "location", "slot_type", "date"):
            if link and link.get(name):
                initial[name] = link[name]
        if link and link.get("start"):
            initial["start_time"] = link["start"]
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        choose_by_public_id(self, clinic)
        # Defaults that follow the choices: the practitioner's usual location, the slot type's length. The
        # options carry them (data-location, data-length) so the page's script follows a changed choice.
        practitioners = list(self.fields["practitioner"].queryset.select_related("default_location"))  # type: ignore[attr-defined]
        types = list(self.fields["slot_type"].queryset)  # type: ignore[attr-defined]
        self.fields["practitioner"].widget = OptionDataSelect(
            data={
                str(p.public_id): {"location": str(p.default_location.public_id)}
                for p in practitioners
                if p.default_location
            }
        )
        self.fields["slot_type"].widget = OptionDataSelect(
            data={str(t.public_id): {"length": str(t.default_length_minutes)} for t in types}
        )
        for name in ("practitioner", "slot_type"):
            self.fields[name].widget.choices = self.fields[name].choices  # type: ignore[attr-defined]
        chosen = next((p for p in practitioners if str(p.public_id) == str(self.initial.get("practitioner"))), None)
        if chosen is not None and chosen.default_location is not None and not (link and link.get("location")):
            self.initial["location"] = chosen.default_location.public_id
        kind = next((t for t in types if str(t.public_id) == str(self.initial.get("slot_type"))), None)
        kind = kind or (types[0] if types else None)
        if kind is not None:
            self.initial.setdefault("slot_type", kind.public_id)
            self.initial["length_minutes"] = kind.default_length_minutes
        length = whole_number(link.get("length"), max_digits=4) if link else None
        if length is not None:
            self.initial["length_minutes"] = length  # the time chosen on the calendar

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        location, date, start = data.get("location"), data.get("date"), data.get("start_time")
        if location and date and start:
            refusal = gap_refusal(date, start, ZoneInfo(location.time_zone))
            if refusal:
                self.add_error("start_time", refusal)
        return data


def new_slot_link(
    *, clinic: Clinic, practitioner: Practitioner, starts: dt.datetime, ends: dt.datetime
) -> dict[str, str]:
    """Create New Slot's starting values for a time chosen on the calendar: the practitioner, their usual
    location (else the form's first), and the date and start on that location's clock (the form's), with
    the length chosen when it is one the form takes."""
    location = practitioner.default_location or (
        Location.objects.for_clinic(clinic).filter(is_active=True).order_by("name").first()
    )
    local = starts.astimezone(ZoneInfo(location.time_zone if location else clinic.time_zone))
    link = {"practitioner": str(practitioner.public_id), "date": local.date().isoformat(), "start": f"{local:%H:%M}"}
    if location is not None:
        link["location"] = str(location.public_id)
    minutes = int((ends - starts).total_seconds() // 60)
    if NEW_SLOT_MINUTES[0] <= minutes <= NEW_SLOT_MINUTES[1]:
        link["length"] = str(minutes)
    return link


class OptionDataSelect(forms.Select):
    """A select whose options carry data-* values (by option value), for a script to read."""

    def __init__(self, *, data: Mapping[str, Mapping[str, str]]) -> None:
        super().__init__()
        self.option_data = data

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        for key, text in self.option_data.get(str(value), {}).items():
            option["attrs"][f"data-{key}"] = text
        return option


class NextAvailableForm(forms.Form):
    slot_type = forms.ModelChoiceField(queryset=SlotType.objects.none(), required=False, empty_label="Any type")
    practitioner = forms.ModelChoiceField(
        queryset=Practitioner.objects.none(), required=False, empty_label="Any practitioner"
    )
    location = forms.ModelChoiceField(queryset=Location.objects.none(), required=False, empty_label="Any location")

    def __init__(self, *args: Any, clinic: Clinic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choose_by_public_id(self, clinic)


class ReportForm(forms.Form):
    first_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"), label="From")
    last_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"), label="To")
    category = forms.ChoiceField(required=False, label="Reporting category")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", "Every category"), *ReportingCategory.choices]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("first_date"), data.get("last_date")
        if first and last and last < first:
            self.add_error("last_date", "The end is before the start.")
        elif first and last and (last - first).days > 366:
            self.add_error("last_date", "Report on a year at most.")
        return data


class RecurrenceForm(forms.Form):
    """Recurrence Settings of a series: how often, on which days, and when it ends.

    The first date and the time are the slot's the booking began from, on its session's wall clock.
    """

    frequency = forms.ChoiceField(label="Recurrence type", choices=Frequency.choices, widget=forms.RadioSelect)
    interval = forms.IntegerField(label="Repeat every", min_value=1, max_value=99, initial=1)
    weekdays = forms.TypedMultipleChoiceField(
        label="On",
        choices=[(i, name) for i, name in enumerate(WEEKDAY_NAMES, start=1)],
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    monthly_by = forms.ChoiceField(
        label="Each month",
        choices=[("day", "On a day of the month"), ("weekday", "On the nth weekday")],
        initial="day",
        widget=forms.RadioSelect,
        required=False,
    )
    month_day = forms.IntegerField(label="Day of the month", min_value=1, max_value=31, required=False)
    nth = forms.TypedChoiceField(
        label="Which",
        choices=[(n, name.capitalize()) for n, name in NTH_NAMES.items()],
        coerce=int,
        required=False,
    )
    nth_weekday = forms.TypedChoiceField(
        label="Weekday",
        choices=[(i, name) for i, name in enumerate(WEEKDAY_NAMES, start=1)],
        coerce=int,
        required=False,
    )
    ends = forms.ChoiceField(
        label="Recurrence end",
        choices=[("count", "End after a number of sessions"), ("until", "End on a date")],
        initial="count",
        widget=forms.RadioSelect,
    )
    count = forms.IntegerField(label="Sessions", min_value=1, max_value=MAX_OCCURRENCES, required=False, initial=6)
    until = forms.DateField(
        label="End date", required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def __init__(self, *args: Any, start: dt.date, time: dt.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start, self.time = start, time
        week_of_month = (start.day - 1) // 7 + 1
        self.fields["frequency"].initial = Frequency.WEEKLY
        self.fields["weekdays"].initial = [start.isoweekday()]
        self.fields["month_day"].initial = start.day
        self.fields["nth"].initial = week_of_month if week_of_month <= 4 else -1
        self.fields["nth_weekday"].initial = start.isoweekday()
        self.rule: RecurrenceRule | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        frequency, ends = data["frequency"], data["ends"]
        if frequency == Frequency.WEEKLY and not data.get("weekdays"):
            self.add_error("weekdays", "Choose at least one weekday.")
        if ends == "count" and data.get("count") is None:
            self.add_error("count", "How many sessions?")
        if ends == "until" and data.get("until") is None:
            self.add_error("until", "Choose the last date.")
        by_weekday = frequency == Frequency.MONTHLY and data.get("monthly_by") == "weekday"
        if frequency == Frequency.MONTHLY and not by_weekday and data.get("month_day") is None:
            self.add_error("month_day", "Choose the day of the month.")
        if by_weekday and (data.get("nth") is None or data.get("nth_weekday") is None):
            self.add_error("nth", "Choose which weekday of the month.")
        if self.errors:
            return data
        rule = RecurrenceRule(
            frequency=frequency,
            start=self.start,
            time=self.time,
            interval=data["interval"],
            weekdays=tuple(sorted(data["weekdays"])) if frequency == Frequency.WEEKLY else (),
            month_day=data["month_day"] if frequency == Frequency.MONTHLY and not by_weekday else None,
            nth_weekday=(data["nth"], data["nth_weekday"]) if by_weekday else None,
            count=data["count"] if ends == "count" else None,
            until=data["until"] if ends == "until" else None,
        )
        try:
            found = rule.local_occurrences()
        except RecurrenceError as error:
            raise forms.ValidationError(str(error)) from error
        if not found:
            raise forms.ValidationError("These settings give no date: check the weekdays and the end date.")
        self.rule = rule
        return data


class SeriesCancelForm(CancelForm):
    scope = forms.ChoiceField(
        label="Cancel", choices=CancelScope.CHOICES, initial=CancelScope.THIS, widget=forms.RadioSelect
    )


class DraftDateForm(forms.Form):
    date = forms.DateField(label="New date", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))


# Changing the book after it is built ---------------------------------------------------------------------------

DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
BLANK = "blank"
MAX_ADDED_SLOTS = 96


class TakeOutForm(forms.Form):
    practitioner = forms.ModelChoiceField(
        queryset=Practitioner.objects.none(),
        required=False,
        to_field_name="public_id",
        empty_label="Anyone at the location below",
        help_text="Whose sessions: a clinician off sick, on leave or training.",
    )
    location = forms.ModelChoiceField(
        queryset=Location.objects.none(),
        required=False,
        to_field_name="public_id",
        empty_label="Every location",
        help_text="Or every session at one location (a site closed for the day).",
    )
    first_date = forms.DateField(widget=DATE_INPUT, label="From")
    last_date = forms.DateField(widget=DATE_INPUT, required=False, label="To", help_text="Leave empty for one day.")
    reason = forms.ChoiceField(choices=OutReason.choices, initial=OutReason.SICKNESS)
    action = forms.ChoiceField(
        choices=[
            (SessionOut.CANCELLED, "Cancel the sessions: their booked patients go on the worklist to rebook"),
            (SessionOut.SUSPENDED, "Suspend the sessions: no new bookings; booked patients stay booked"),
        ],
        initial=SessionOut.CANCELLED,
        widget=forms.RadioSelect,
        label="What happens",
    )
    note = forms.CharField(max_length=200, required=False, label="Note for the team", help_text="Not sent to patients.")

    def __init__(self, *args: Any, clinic: Clinic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        practitioner_field: Any = self.fields["practitioner"]
        practitioner_field.queryset = Practitioner.objects.for_clinic(clinic).filter(is_active=True).order_by("name")
        location_field: Any = self.fields["location"]
        location_field.queryset = Location.objects.for_clinic(clinic).filter(is_active=True).order_by("name")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("practitioner") and not data.get("location") and not self.errors:
            raise forms.ValidationError("Choose a practitioner or a location.")
        first, last = data.get("first_date"), data.get("last_date") or data.get("first_date")
        if first and last and last < first:
            self.add_error("last_date", "The last date is before the first date.")
        data["last_date"] = last
        return data

    def take_out(self) -> TakeOut:
        data = self.cleaned_data
        return TakeOut(
            practitioner=data["practitioner"],
            location=data["location"],
            first_date=data["first_date"],
            last_date=data["last_date"],
            action=data["action"],
            reason=data["reason"],
            note=data["note"],
        )


class TemplateApplyForm(forms.Form):
    first_date = forms.DateField(widget=DATE_INPUT, label="From")
    last_date = forms.DateField(
        widget=DATE_INPUT, required=False, label="Until", help_text="Leave empty for every date on the rota."
    )
    allocations = forms.ModelMultipleChoiceField(
        queryset=Allocation.objects.none(),
        required=False,
        to_field_name="public_id",
        widget=forms.CheckboxSelectMultiple,
        label="Only these allocations",
        help_text="Leave all unticked for every allocation of this session.",
    )

    def __init__(self, *args: Any, clinic: Clinic, template: SessionTemplate, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"first_date": clinic.today()})
        super().__init__(*args, **kwargs)
        field: Any = self.fields["allocations"]
        field.queryset = (
            Allocation.objects.for_clinic(clinic)
            .filter(template=template)
            .select_related("practitioner", "location")
            .order_by("first_date", "id")
        )
        field.label_from_instance = lambda a: (
            f"{a.practitioner or 'Whole clinic'} at {a.location}, {a.first_date:%-d %b %Y}"
            + (f" – {a.last_date:%-d %b %Y} ({a.weekday_labels})" if a.last_date != a.first_date else "")
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("first_date"), data.get("last_date")
        if first and last and last < first:
            self.add_error("last_date", "The last date is before the first date.")
        return data


class SessionEditForm(forms.Form):
    """One dated session's slots: a slot type (or blank) for each, where it ends, slots added at the end, and its
    location and description. A field per slot, named by position (`slot-0`, `slot-1`...)."""

    keep = forms.TypedChoiceField(coerce=int, label="The session ends after")
    add_count = forms.IntegerField(min_value=0, max_value=MAX_ADDED_SLOTS, initial=0, label="Add slots at the end")
    add_type = forms.ModelChoiceField(
        queryset=SlotType.objects.none(), required=False, to_field_name="public_id", label="of type"
    )
    add_minutes = forms.IntegerField(min_value=1, max_value=480, required=False, label="minutes each")
    location = forms.ModelChoiceField(queryset=Location.objects.none(), to_field_name="public_id")
    description = forms.CharField(max_length=30, required=False, help_text="Shown in the session's tooltip.")

    def __init__(
        self, *args: Any, clinic: Clinic, session: Any, slots: Sequence[Slot], zone: ZoneInfo, **kwargs: Any
    ) -> None:
        types = list(SlotType.objects.for_clinic(clinic).filter(is_active=True).order_by("order", "name"))
        initial = {
            "keep": len(slots),
            "add_count": 0,
            "location": session.location.public_id,
            "description": session.description,
        }
        initial.update({f"slot-{i}": str(s.slot_type.public_id) if s.slot_type else BLANK for i, s in enumerate(slots)})
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        self.slots = list(slots)
        self.types = {str(t.public_id): t for t in types}
        choices = [(BLANK, "Blank (not bookable)")] + [(str(t.public_id), t.name) for t in types]
        for index, slot in enumerate(self.slots):
            local = slot.starts_at.astimezone(zone)
            self.fields[f"slot-{index}"] = forms.ChoiceField(
                choices=choices, label=f"{local:%H:%M}–{slot.ends_at.astimezone(zone):%H:%M}"
            )
        keep_field: Any = self.fields["keep"]
        keep_field.choices = [
            (n, f"slot {n} (ends {self.slots[n - 1].ends_at.astimezone(zone):%H:%M})")
            for n in range(len(self.slots), 0, -1)
        ]
        add_field: Any = self.fields["add_type"]
        add_field.queryset = SlotType.objects.for_clinic(clinic).filter(is_active=True)
        location_field: Any = self.fields["location"]
        location_field.queryset = Location.objects.for_clinic(clinic).filter(is_active=True).order_by("name")

    def slot_fields(self) -> list[tuple[Slot, forms.BoundField]]:
        return [(slot, self[f"slot-{index}"]) for index, slot in enumerate(self.slots)]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("add_count"):
            if not data.get("add_type"):
                self.add_error("add_type", "Choose the slot type to add.")
            if not data.get("add_minutes"):
                minutes = data["add_type"].default_length_minutes if data.get("add_type") else None
                if minutes:
                    data["add_minutes"] = minutes
                else:
                    self.add_error("add_minutes", "Say how long each added slot is.")
        return data

    def edit(self) -> SessionEdit:
        data = self.cleaned_data
        chosen: dict[int, int | None] = {}
        for index, slot in enumerate(self.slots):
            value = str(data.get(f"slot-{index}", BLANK))
            new_type = None if value == BLANK else self.types[value].pk
            if new_type != slot.slot_type_id:
                chosen[slot.pk] = new_type
        return SessionEdit(
            slot_types=chosen,
            keep=data["keep"],
            add_count=data.get("add_count") or 0,
            add_type=data.get("add_type"),
            add_minutes=data.get("add_minutes") or 0,
            location=data["location"],
            description=data.get("description", ""),
        )


class DisplacedActionForm(forms.Form):
    action = forms.ChoiceField(
        choices=[
            ("rebook", "Rebook to the proposals"),
            ("cancel", "Cancel and tell the patients"),
            ("contact", "Leave for a phone call"),
        ]
    )
    rows = forms.TypedMultipleChoiceField(coerce=str, required=False)
    category = forms.ChoiceField(
        choices=[(c, CancelCategory(c).label) for c in (CancelCategory.CLINICIAN, CancelCategory.CLINIC)],
        initial=CancelCategory.CLINICIAN,
        required=False,
        label="Why (the patient is told)",
    )
    reason = forms.CharField(
        max_length=200, required=False, label="Reason", help_text="Kept with the appointments; never sent to patients."
    )

    def __init__(self, *args: Any, rows: Sequence[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rows_field: Any = self.fields["rows"]
        rows_field.choices = list(rows)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("rows") and not self.errors:
            raise forms.ValidationError("Tick the patients first.")
        if data.get("action") == "cancel" and not (data.get("reason") or "").strip():
            self.add_error("reason", "Give a reason for the cancellation.")
        return data


# --- The waitlist ---------------------------------------------------------------------------------------------


class WaitlistEntryForm(forms.Form):
    """Add a patient to the waitlist: for a slot, a group series (any occurrence, or from a date), or a practitioner
    and/or type on preferred days and times. The kinds offered depend on where reception came from."""

    kind = forms.ChoiceField(label="Waiting for", widget=forms.RadioSelect)
    from_date = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Series: from a date."
    )
    practitioner = forms.ModelChoiceField(
        queryset=Practitioner.objects.none(), required=False, empty_label="Anyone", label="Practitioner"
    )
    slot_type = forms.ModelChoiceField(
        queryset=SlotType.objects.none(), required=False, empty_label="Any type", label="Type of appointment"
    )
    weekdays = forms.TypedMultipleChoiceField(
        label="Days",
        choices=[(i + 1, name) for i, name in enumerate(WEEKDAY_NAMES)],
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: any day.",
    )
    time_from = forms.TimeField(
        label="Not before", required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    time_until = forms.TimeField(
        label="Finished by", required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    note = forms.CharField(
        max_length=200, required=False, widget=forms.TextInput(attrs={"placeholder": "e.g. can come at short notice"})
    )

    def __init__(self, *args: Any, clinic: Clinic, slot: Slot | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slot = slot
        practitioners = cast("forms.ModelChoiceField[Practitioner]", self.fields["practitioner"])
        practitioners.queryset = Practitioner.objects.for_clinic(clinic).filter(is_active=True).order_by("name")
        practitioners.to_field_name = "public_id"
        types = cast("forms.ModelChoiceField[SlotType]", self.fields["slot_type"])
        types.queryset = SlotType.objects.for_clinic(clinic).filter(bookable=True, is_active=True)
        types.to_field_name = "public_id"
        kinds = []
        if slot is not None:
            kinds.append(("slot", "This slot only"))
            if slot.session.allocation_id is not None and slot.capacity > 1:
                kinds += [("series_any", "Any occurrence of this group"), ("series_from", "Occurrences from a date")]
        kinds.append(("preference", "A practitioner or type, on preferred days and times"))
        kind = cast("forms.ChoiceField", self.fields["kind"])
        kind.choices = kinds
        self.initial.setdefault("kind", kinds[0][0])
        if slot is not None:
            self.initial.setdefault(
                "practitioner", slot.session.practitioner.public_id if slot.session.practitioner else None
            )
            self.initial.setdefault("slot_type", slot.slot_type.public_id if slot.slot_type else None)
            self.initial.setdefault("from_date", slot.session.date)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if kind == "series_from" and not data.get("from_date"):
            self.add_error("from_date", "Choose the date the patient can start from.")
        if kind == "preference" and not data.get("practitioner") and not data.get("slot_type"):
            self.add_error("practitioner", "Choose a practitioner, a type of appointment, or both.")
        start, end = data.get("time_from"), data.get("time_until")
        if kind == "preference" and start and end and end <= start:
            self.add_error("time_until", "The latest time must come after the earliest.")
        return data

    def entry_data(self, patient: Patient) -> EntryData:
        data = self.cleaned_data
        kind = data["kind"]
        note = data.get("note") or ""
        slot = self.slot
        if kind == "slot":
            return EntryData(patient=patient, kind=WaitlistKind.SLOT, slot=slot, note=note)
        if kind in ("series_any", "series_from") and slot is not None:
            return EntryData(
                patient=patient,
                kind=WaitlistKind.SERIES,
                allocation=slot.session.allocation,
                slot_type=slot.slot_type,
                scope=SeriesScope.ANY if kind == "series_any" else SeriesScope.FROM_DATE,
                from_date=data.get("from_date") if kind == "series_from" else None,
                note=note,
            )
        return EntryData(
            patient=patient,
            kind=WaitlistKind.PREFERENCE,
            practitioner=data.get("practitioner"),
            slot_type=data.get("slot_type"),
            weekdays=data.get("weekdays") or (),
            time_from=data.get("time_from"),
            time_until=data.get("time_until"),
            note=note,
        )


class WaitlistRulesForm(forms.ModelForm):
    class Meta:
        model = WaitlistSettings
        fields = ["offers_on", "hold_minutes", "shortest_hold_minutes", "lead_minutes"]
