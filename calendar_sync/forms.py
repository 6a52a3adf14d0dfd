"""The Sync Calendar form."""

from __future__ import annotations

from typing import Any

from django import forms

from calendar_sync.models import SyncType
from clinic.models import Clinic
from patients.display import IdentifierMode

MODE_HELP = {
    IdentifierMode.FULL_NAME: "Not recommended: sends your clients' real names to the other calendar's provider. "
    "Unless that provider is covered for patient data (e.g. HIPAA, UK GDPR), this exposes personal data.",
    IdentifierMode.INTERNAL_ID: "Never shares a name: the client's internal ID, which staff can match in the clinic.",
    IdentifierMode.FIRST_NAME: "Only the client's first (or preferred) name.",
    IdentifierMode.INITIALS: "Only the client's initials.",
}
MODE_ORDER = (IdentifierMode.INTERNAL_ID, IdentifierMode.INITIALS, IdentifierMode.FIRST_NAME, IdentifierMode.FULL_NAME)


class ModeSelect(forms.RadioSelect):
    """Radios that can disable some choices (Internal ID without internal IDs in the clinic)."""

    def __init__(self, *args: Any, disabled: frozenset[str] = frozenset(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.disabled = disabled

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        if option["value"] in self.disabled:
            option["attrs"]["disabled"] = True
        return option


class FeedSettingsForm(forms.Form):
    enabled = forms.BooleanField(
        label="Allow your calendar to sync to an external calendaring application", required=False
    )
    identifier_mode = forms.ChoiceField(label="How clients are named in the external calendar")
    sync_type = forms.ChoiceField(
        label="Sync type", choices=SyncType.choices, widget=forms.RadioSelect, initial=SyncType.ONE_WAY
    )

    def __init__(self, *args: Any, clinic: Clinic, google_offered: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not google_offered:
            del self.fields["sync_type"]
        labels = dict(IdentifierMode.choices)
        field = self.fields["identifier_mode"]
        field.choices = [(mode.value, labels[mode]) for mode in MODE_ORDER]  # type: ignore[attr-defined]
        self.clinic = clinic
        # Internal ID is offered where the clinic uses internal IDs; one chosen before they were turned off
        # stays (shown by initials meanwhile), so the page still saves without changing it.
        self.kept_internal_id = self.initial.get("identifier_mode") == IdentifierMode.INTERNAL_ID
        offered = clinic.internal_ids_enabled or self.kept_internal_id
        unavailable = frozenset() if offered else frozenset({IdentifierMode.INTERNAL_ID.value})
        field.widget = ModeSelect(choices=field.choices, disabled=unavailable)  # type: ignore[attr-defined]

    def clean_identifier_mode(self) -> str:
        mode: str = self.cleaned_data["identifier_mode"]
        if mode == IdentifierMode.INTERNAL_ID and not (self.clinic.internal_ids_enabled or self.kept_internal_id):
            raise forms.ValidationError(
                "Internal IDs are not enabled for this clinic; an admin enables them in Clinic settings."
            )
        return mode
