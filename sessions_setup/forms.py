"""Forms of the setup screens."""

from __future__ import annotations

from typing import Any

from django import forms

from clinic.forms import TenantForm
from clinic.models import Location
from sessions_setup import palette
from sessions_setup.models import ReleaseRule, SessionTemplate, SlotType


class PaletteSelect(forms.RadioSelect):
    """The fixed palette as swatches, with "Show unused colours only"."""

    template_name = "sessions_setup/widgets/palette.html"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.used: set[str] = set()

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        current = value if isinstance(value, str) else (value[0] if value else "")
        context["palette"] = [
            {"colour": c, "used": c.key in self.used and c.key != current, "checked": c.key == current}
            for c in palette.PALETTE
        ]
        return context


class PaletteForm(TenantForm):
    """A clinic form with a `colour` palette field that marks the colours already in use."""

    def __init__(self, *args: Any, used_colours: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["colour"].widget.used = used_colours or set()


class SlotTypeForm(PaletteForm):
    class Meta:
        model = SlotType
        fields = [
            "name",
            "colour",
            "default_length_minutes",
            "kind",
            "bookable",
            "capacity",
            "release_rule",
            "release_days_before",
            "online_bookable",
            "online_description",
            "reporting_category",
            "order",
            "is_active",
        ]
        widgets = {"colour": PaletteSelect()}
        labels = {"is_active": "Active (uncheck to archive)", "order": "Order in the list"}
        help_texts = {
            "order": "The first slot type in the list is the default for new sessions.",
            "reporting_category": "Use COVID VACS for every COVID vaccination slot.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("release_rule") == ReleaseRule.DAYS_BEFORE:
            if not data.get("release_days_before"):
                self.add_error("release_days_before", "Give the number of days before the slot.")
        else:
            data["release_days_before"] = None
        return data


class SessionTemplateForm(PaletteForm):
    class Meta:
        model = SessionTemplate
        fields = [
            "colour",
            "name",
            "session_type",
            "description",
            "practitioner_role",
            "location",
            "gp_connect_bookable",
            "open_session",
            "travel_clinic",
            "closed_session",
            "closed_enforced",
            "nominal_start",
        ]
        widgets = {
            "colour": PaletteSelect(),
            "nominal_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "name": forms.TextInput(attrs={"maxlength": 20, "placeholder": "e.g. Dr Smith AM"}),
            "description": forms.TextInput(attrs={"maxlength": 30}),
        }
        labels = {"colour": "Header colour", "nominal_start": "Nominal start"}

    OPTION_FIELDS = (
        "session_type",
        "description",
        "practitioner_role",
        "location",
        "gp_connect_bookable",
        "open_session",
        "travel_clinic",
        "closed_session",
        "closed_enforced",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        location = self.fields["location"]
        location.queryset = Location.objects.for_clinic(self.clinic).filter(is_active=True)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("gp_connect_bookable"):
            if not data.get("practitioner_role"):
                self.add_error("practitioner_role", "Required when the session is GP Connect bookable.")
            if not data.get("location"):
                self.add_error("location", "Required when the session is GP Connect bookable.")
        if data.get("closed_enforced") and not data.get("closed_session"):
            self.add_error("closed_enforced", "Only a closed session can be enforced: tick “Closed session” too.")
        return data

    def option_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.OPTION_FIELDS]
