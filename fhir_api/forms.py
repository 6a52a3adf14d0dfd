from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import RegexValidator

from fhir_api.models import Consumer, OrganisationType, Scope
from sessions_setup.models import SlotType


class ConsumerForm(forms.Form):
    name = forms.CharField(
        max_length=80, help_text="The system or organisation, as reception will see it on its bookings (e.g. NHS 111)."
    )
    organisation_type = forms.ChoiceField(
        label="Organisation type", choices=OrganisationType.choices, initial=OrganisationType.URGENT_CARE
    )
    ods_code = forms.CharField(
        label="ODS code",
        max_length=10,
        required=False,
        validators=[RegexValidator(r"^[A-Za-z0-9]+$", "Letters and digits only, e.g. NHS111 or A12345.")],
    )
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Scope.SLOT_READ, Scope.APPOINTMENT_READ, Scope.APPOINTMENT_WRITE],
        help_text="What its tokens may do.",
        error_messages={"required": "Choose at least one scope."},
    )
    slot_types = forms.ModelMultipleChoiceField(
        label="Slot types it may see and book",
        queryset=SlotType.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Only slots of these types, in sessions marked “GP Connect bookable”, are offered to it.",
        error_messages={"required": "Choose at least one slot type."},
    )
    rate_limit = forms.IntegerField(label="Calls per minute", min_value=1, max_value=10_000, initial=120)

    def __init__(self, *args: Any, clinic: Any, consumer: Consumer | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        self.consumer = consumer
        types = self.fields["slot_types"]
        assert isinstance(types, forms.ModelMultipleChoiceField)
        types.queryset = SlotType.objects.for_clinic(clinic).filter(bookable=True, is_active=True)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        others = Consumer.objects.for_clinic(self.clinic).filter(name__iexact=name)
        if self.consumer is not None:
            others = others.exclude(pk=self.consumer.pk)
        if others.exists():
            raise forms.ValidationError("A consumer with this name already exists in this clinic.")
        return name

    def clean_ods_code(self) -> str:
        return self.cleaned_data["ods_code"].strip().upper()
