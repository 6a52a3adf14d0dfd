"""privacy's forms: breaking glass (why, and a confirmation) and closing a review."""

from __future__ import annotations

from django import forms

from privacy.models import BreakGlassCategory, ReviewOutcome

REASON_MIN = 20


class BreakGlassForm(forms.Form):
    category = forms.ChoiceField(
        label="Why do you need this record?",
        choices=BreakGlassCategory.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose why you need the record."},
    )
    reason = forms.CharField(
        label="Reason",
        min_length=REASON_MIN,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=f"What is the emergency, and why can't a member with access help? At least {REASON_MIN} characters. "
        "The privacy officers read it.",
        error_messages={
            "required": "Give the reason you need this record.",
            "min_length": f"Say a little more: at least {REASON_MIN} characters.",
        },
    )
    confirm = forms.BooleanField(
        label="I confirm this is an emergency, and I understand that my access is recorded and reviewed by the "
        "clinic's privacy officers.",
        error_messages={"required": "Confirm that this is an emergency to break glass."},
    )

    def clean_reason(self) -> str:
        reason = " ".join(self.cleaned_data["reason"].split())
        if len(reason) < REASON_MIN:
            raise forms.ValidationError(f"Say a little more: at least {REASON_MIN} characters.")
        return self.cleaned_data["reason"].strip()


class ReviewForm(forms.Form):
    outcome = forms.ChoiceField(
        label="Outcome",
        choices=ReviewOutcome.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose the outcome of the review."},
    )
    note = forms.CharField(
        label="Note",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What you checked and, for an inappropriate use, what happens next.",
        error_messages={"required": "Write a note for the record."},
    )
