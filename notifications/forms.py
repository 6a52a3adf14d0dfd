"""Forms of the notifications pages: the clinic's settings (with each kind's opening words), a patient's
choices, and the Messages log's filters."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from notifications.models import Kind, NotificationSettings
from notifications.selectors import STATUS_FILTERS
from notifications.wording import DEFAULT_WORDING, PLACEHOLDERS, unknown_placeholders

MAX_REMINDER_HOURS = 336  # two weeks
WORDING_MAX = 600


def wording_field(kind: str) -> str:
    return f"wording_{kind}"


class NotificationSettingsForm(forms.ModelForm):
    """The clinic's settings for messages to patients. Each kind's opening words are a field of their own
    (kept together in NotificationSettings.wording); empty means our default words."""

    class Meta:
        model = NotificationSettings
        fields = [
            "confirmations_on",
            "reminders_on",
            "changes_on",
            "offers_on",
            "email_on",
            "sms_on",
            "email_reminder_hours",
            "sms_reminder_hours",
            "quiet_from",
            "quiet_until",
            "sender_name",
            "reply_to",
            "name_appointment_type",
        ]
        widgets = {
            "quiet_from": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "quiet_until": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }
        help_texts = {
            "email_reminder_hours": "Elapsed hours before the appointment, 1 to 336. Empty: no email reminder.",
            "sms_reminder_hours": "Elapsed hours before the appointment, 1 to 336. Empty: no SMS reminder.",
            "quiet_from": "On the clock of the appointment's location: texts and reminders wait until quiet hours end.",
            "quiet_until": "On the clock of the appointment's location.",
            "reply_to": "Where patients' replies to emails go. Empty: emails say to contact the clinic instead.",
            "name_appointment_type": "Off by default: in some services (behavioural health, sexual health) the "
            "type of appointment is itself sensitive, and a message may be read by someone else.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("email_reminder_hours", "sms_reminder_hours"):
            field = self.fields[name]
            field.validators += [MinValueValidator(1), MaxValueValidator(MAX_REMINDER_HOURS)]
            field.widget.attrs.update(min=1, max=MAX_REMINDER_HOURS, inputmode="numeric")
        wording = self.instance.wording or {}
        for kind in Kind:
            self.fields[wording_field(kind)] = forms.CharField(
                label=kind.label,
                required=False,
                max_length=WORDING_MAX,
                initial=wording.get(kind, ""),
                widget=forms.Textarea(attrs={"rows": 2, "placeholder": DEFAULT_WORDING[kind]}),
                help_text=f"Empty: “{DEFAULT_WORDING[kind]}”",
            )

    def wording_fields(self) -> list[forms.BoundField]:
        return [self[wording_field(kind)] for kind in Kind]

    def settings_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.Meta.fields]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for kind in Kind:
            name = wording_field(kind)
            unknown = unknown_placeholders(cleaned.get(name) or "")
            if unknown:
                named = ", ".join("{" + word + "}" for word in unknown)
                known = ", ".join("{" + word + "}" for word in PLACEHOLDERS)
                self.add_error(
                    name,
                    f"Unknown placeholder{'s' if len(unknown) > 1 else ''} {named}. Use only {known}.",
                )
        # The opening words the clinic wrote (our default words are not stored: a later change of ours reaches
        # clinics that never changed them).
        self.instance.wording = {
            kind.value: text
            for kind in Kind
            if (text := (cleaned.get(wording_field(kind)) or "").strip()) and text != DEFAULT_WORDING[kind]
        }
        return cleaned


class PreferenceForm(forms.Form):
    email_ok = forms.BooleanField(label="By email", required=False)
    sms_ok = forms.BooleanField(label="By SMS", required=False)


class MessageFilterForm(forms.Form):
    """The Messages log's filters (a bad value is ignored, never an error page)."""

    status = forms.ChoiceField(
        label="Status", required=False, choices=[("", "Any status"), *((k, v[0]) for k, v in STATUS_FILTERS.items())]
    )
    q = forms.CharField(label="Patient", required=False, max_length=100)
    patient = forms.UUIDField(required=False, widget=forms.HiddenInput)
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="Until", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def value(self, name: str) -> Any:
        """The field's clean value, or None when it was missing or bad."""
        if not self.is_bound:
            return None
        self.is_valid()
        return self.cleaned_data.get(name) if name not in self.errors else None
