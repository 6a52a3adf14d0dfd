"""Forms of the rota."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms

from clinic.models import Clinic, Location, Practitioner
from scheduling.models import WEEKDAY_NAMES
from scheduling.services import AllocationRequest
from sessions_setup.models import SessionTemplate


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
