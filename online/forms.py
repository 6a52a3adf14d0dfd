"""Forms of the public booking site and of its settings."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone

from notifications.wording import DECLINE_REASONS
from online.models import BookingMode, OnlineSettings
from patients.identifiers import digits

DECLINE_CHOICES = [(key, words[0].upper() + words[1:]) for key, words in DECLINE_REASONS.items() if key != "expired"]


class DetailsForm(forms.Form):
    """Who the booking is for. The email gets a one-time code; nothing is looked up before it is typed."""

    first_name = forms.CharField(max_length=80, widget=forms.TextInput(attrs={"autocomplete": "given-name"}))
    last_name = forms.CharField(max_length=80, widget=forms.TextInput(attrs={"autocomplete": "family-name"}))
    date_of_birth = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}),
        help_text="As on your medical record.",
    )
    email = forms.EmailField(
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        help_text="We send a code here to confirm it is yours, then your confirmation.",
    )
    mobile = forms.CharField(
        label="Mobile phone",
        max_length=20,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel"}),
        help_text="For text reminders.",
    )
    reason = forms.CharField(
        label="Reason for the appointment",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Only the clinic's staff read this.",
    )
    # The honeypot: hidden from people (off-screen, out of the tab order, no autofill); a bot fills it in.
    website = forms.CharField(
        required=False,
        label="Leave this empty",
        widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}),
    )

    def clean_date_of_birth(self) -> dt.date:
        born: dt.date = self.cleaned_data["date_of_birth"]
        today = timezone.now().date()
        if born > today:
            raise forms.ValidationError("The date of birth cannot be in the future.")
        if born.year < today.year - 125:
            raise forms.ValidationError("Check the year of birth.")
        return born

    def clean_mobile(self) -> str:
        value: str = self.cleaned_data["mobile"].strip()
        if not 7 <= len(digits(value)) <= 15:
            raise forms.ValidationError("Enter a mobile number, e.g. 07700 900123.")
        return value

    def details(self) -> dict[str, str]:
        data = self.cleaned_data
        return {
            "first_name": data["first_name"].strip(),
            "last_name": data["last_name"].strip(),
            "date_of_birth": data["date_of_birth"].isoformat(),
            "email": data["email"].strip(),
            "mobile": data["mobile"],
            "reason": data["reason"].strip(),
        }


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code from the email",
        max_length=12,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )


class OnlineSettingsForm(forms.ModelForm):
    class Meta:
        model = OnlineSettings
        fields = ["enabled", "intro", "phone", "notice_hours", "horizon_days", "change_hours", "hold_hours"]
        widgets = {"intro": forms.Textarea(attrs={"rows": 3})}


class PractitionerOnlineForm(forms.Form):
    accepts = forms.BooleanField(label="Accepts online bookings", required=False)
    mode = forms.ChoiceField(label="Online bookings are", choices=BookingMode.choices)


class DeclineForm(forms.Form):
    reason = forms.ChoiceField(
        label="Reason given to the patient", choices=DECLINE_CHOICES, widget=forms.RadioSelect, initial="taken"
    )
