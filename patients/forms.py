"""Forms of patients, coverage and the CSV import."""

from __future__ import annotations

from typing import Any

from django import forms

from clinic.forms import TenantForm
from clinic.numbers import has_other_digits
from patients import identifiers
from patients.models import Coverage, Patient

MAX_IMPORT_BYTES = 5 * 1024 * 1024
ASCII_DIGITS = "Type the number with the digits 0–9."


class PatientForm(TenantForm):
    class Meta:
        model = Patient
        fields = [
            "title",
            "first_name",
            "last_name",
            "preferred_name",
            "date_of_birth",
            "sex",
            "national_id_kind",
            "national_id",
            "mobile_phone",
            "home_phone",
            "email",
            "address",
            "postcode",
            "notes",
            "is_blocked",
            "blocked_reason",
        ]
        widgets = {
            "date_of_birth": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "address": forms.Textarea(attrs={"rows": 3}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }
        labels = {"national_id_kind": "National identifier type", "is_blocked": "Blocked (restricted record)"}
        help_texts = {
            "national_id": "NHS number (10 digits, check digit verified) or SSN (9 digits); spaces are fine.",
            "blocked_reason": "Required when blocked; only members with “Privacy: Access Blocked Patients” see it.",
        }

    def __init__(self, *args: Any, can_block: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        date_field: Any = self.fields["date_of_birth"]
        date_field.input_formats = ["%Y-%m-%d", *identifiers.DOB_FORMATS]
        if not can_block:
            # Without the privacy permission a member can neither block nor unblock.
            del self.fields["is_blocked"], self.fields["blocked_reason"]

    def _get_validation_exclusions(self) -> set[str]:
        # A national identifier's uniqueness is checked by patients.services.patient_save, which words the
        # refusal for the member: the model's own message would confirm that a blocked patient has it.
        return super()._get_validation_exclusions() | {"national_id"}

    def clean_national_id(self) -> str | None:
        typed = self.cleaned_data.get("national_id") or ""
        if has_other_digits(typed):
            raise forms.ValidationError(ASCII_DIGITS)
        return identifiers.digits(typed) or None

    def clean_mobile_phone(self) -> str:
        return self._phone("mobile_phone")

    def clean_home_phone(self) -> str:
        return self._phone("home_phone")

    def _phone(self, name: str) -> str:
        typed = self.cleaned_data.get(name, "")
        if has_other_digits(typed):
            raise forms.ValidationError(ASCII_DIGITS)
        return identifiers.phone_normalise(typed)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        number, kind = data.get("national_id"), data.get("national_id_kind")
        if number and not kind:
            self.add_error("national_id_kind", "Say whether this is an NHS number or an SSN.")
        elif number and kind == Patient.NationalIdKind.NHS and not identifiers.nhs_number_is_valid(number):
            self.add_error("national_id", "This is not a valid NHS number (10 digits with a matching check digit).")
        elif number and kind == Patient.NationalIdKind.SSN and not identifiers.ssn_is_valid(number):
            self.add_error("national_id", "This is not a valid SSN (9 digits).")
        for field in ("mobile_phone", "home_phone"):
            value = data.get(field)
            if value and not 7 <= len(identifiers.digits(value)) <= 15:
                self.add_error(field, "Enter a phone number of 7 to 15 digits.")
        if data.get("is_blocked") and not data.get("blocked_reason"):
            self.add_error("blocked_reason", "Give the reason the record is blocked.")
        return data


class CoverageForm(forms.ModelForm):
    class Meta:
        model = Coverage
        fields = ["priority", "payer", "plan_name", "member_id", "group_number", "valid_from", "valid_to"]
        widgets = {
            "valid_from": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "valid_to": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("valid_from"), data.get("valid_to")
        if start and end and end < start:
            self.add_error("valid_to", "The plan ends before it starts.")
        return data


class ImportForm(forms.Form):
    file = forms.FileField(required=False, label="CSV file", help_text="UTF-8, with a header row.")
    csv_text = forms.CharField(required=False, widget=forms.HiddenInput)
    skip_bad_rows = forms.BooleanField(required=False, label="Skip the rows with errors and import the rest")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload:
            if upload.size > MAX_IMPORT_BYTES:
                raise forms.ValidationError("The file is larger than 5 MB; split it into parts.")
            try:
                data["csv_text"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise forms.ValidationError(
                    "The file is not UTF-8 text; save it as “CSV UTF-8” and try again."
                ) from None
            if "\x00" in data["csv_text"]:
                # Not text (a spreadsheet saved as is, or UTF-16): and no field takes a NUL character.
                raise forms.ValidationError("The file is not CSV text; save it as “CSV UTF-8” and try again.")
        if not data.get("csv_text"):
            raise forms.ValidationError("Choose a CSV file to check.")
        return data
