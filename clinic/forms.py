"""Forms of the clinic admin pages. Querysets of related objects are scoped to the clinic."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm

from clinic.models import (
    Clinic,
    Department,
    Location,
    Membership,
    NamedPermission,
    Practitioner,
    Role,
    time_zone_names,
)


class TimeZoneSelect(forms.Select):
    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, choices=[(name, name) for name in time_zone_names()])


class ClinicSettingsForm(forms.ModelForm):
    class Meta:
        model = Clinic
        fields = ["name", "time_zone", "internal_ids_enabled", "bills_insurance", "ods_code"]
        widgets = {"time_zone": TimeZoneSelect()}


class TenantForm(forms.ModelForm):
    """A form for an object of one clinic; it knows the clinic for scoping and checks."""

    def __init__(self, *args: Any, clinic: Clinic, **kwargs: Any) -> None:
        self.clinic = clinic
        super().__init__(*args, **kwargs)
        # The clinic is not a form field, so the model's unique checks need it set now.
        self.instance.clinic = clinic

    def _get_validation_exclusions(self) -> set[str]:
        # Keep the per-clinic unique constraints (clinic, name) in model validation, so a
        # duplicate is a message on the form and not an IntegrityError.
        return super()._get_validation_exclusions() - {"clinic"}  # type: ignore[misc]  # not in the stubs


class LocationForm(TenantForm):
    class Meta:
        model = Location
        fields = ["name", "kind", "address", "postcode", "time_zone", "is_active"]
        widgets = {"time_zone": TimeZoneSelect(), "address": forms.Textarea(attrs={"rows": 3})}
        labels = {"is_active": "Active (uncheck to archive)"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.initial.setdefault("time_zone", self.clinic.time_zone)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") == Location.Kind.MAIN:
            others = (
                Location.objects.for_clinic(self.clinic).filter(kind=Location.Kind.MAIN).exclude(pk=self.instance.pk)
            )
            if others.exists():
                self.add_error("kind", f"{others.first()} is already the main surgery; make this a branch.")
        return data


class DepartmentForm(TenantForm):
    class Meta:
        model = Department
        fields = ["name", "is_active"]
        labels = {"is_active": "Active (uncheck to archive)"}


class MemberUserField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.get_full_name() or obj.username} ({obj.email})"


class PractitionerForm(TenantForm):
    class Meta:
        model = Practitioner
        fields = ["name", "role", "default_location", "time_zone", "user", "is_active"]
        labels = {"user": "Login", "is_active": "Active (uncheck to archive)"}
        help_texts = {"user": "The member who signs in as this practitioner, to see their own calendar."}
        field_classes = {"user": MemberUserField}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        location_field = cast(forms.ModelChoiceField, self.fields["default_location"])
        location_field.queryset = Location.objects.for_clinic(self.clinic).filter(is_active=True)
        member_users = Membership.objects.for_clinic(self.clinic).values("user_id")
        user_field = cast(forms.ModelChoiceField, self.fields["user"])
        user_field.queryset = get_user_model().objects.filter(pk__in=member_users).order_by("last_name", "first_name")
        self.fields["time_zone"].widget = forms.Select(
            choices=[("", "Same as the default location")] + [(n, n) for n in time_zone_names()]
        )

    def clean_user(self) -> Any:
        user = self.cleaned_data.get("user")
        if user is not None:
            taken = Practitioner.objects.for_clinic(self.clinic).filter(user=user).exclude(pk=self.instance.pk)
            if taken.exists():
                raise forms.ValidationError(f"This login already belongs to {taken.first()}.")
        return user


PERMISSION_FIELDS = [p.value for p in NamedPermission]


class MembershipPermissionsForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
    perm_manage_appointments = forms.BooleanField(required=False, label=NamedPermission.MANAGE_APPOINTMENTS.label)
    perm_access_blocked_patients = forms.BooleanField(
        required=False,
        label=NamedPermission.ACCESS_BLOCKED_PATIENTS.label,
        help_text="Lets this member find and book blocked (restricted) patients. Every opening is audited.",
    )
    perm_manage_sessions = forms.BooleanField(required=False, label=NamedPermission.MANAGE_SESSIONS.label)
    perm_privacy_officer = forms.BooleanField(
        required=False,
        label=NamedPermission.PRIVACY_OFFICER.label,
        help_text="Hears of every break-glass opening of a blocked patient and reviews it.",
    )

    @property
    def permissions(self) -> dict[str, bool]:
        return {name: bool(self.cleaned_data.get(name)) for name in PERMISSION_FIELDS}


class MemberAddForm(MembershipPermissionsForm):
    field_order = ["email", "first_name", "last_name", "role"]
    email = forms.EmailField()
    first_name = forms.CharField(max_length=150)
    last_name = forms.CharField(max_length=150)


class MemberEditForm(MembershipPermissionsForm):
    department = forms.ModelChoiceField(
        queryset=Department.objects.none(),
        required=False,
        empty_label="(none)",
        help_text="Book Appointment lists this department by default for this member.",
    )
    is_active = forms.BooleanField(required=False, label="Active (uncheck to suspend access to this clinic)")

    @classmethod
    def for_membership(cls, membership: Membership, data: Any = None) -> MemberEditForm:
        initial = {"role": membership.role, "is_active": membership.is_active, "department": membership.department_id}
        initial.update({name: getattr(membership, name) for name in PERMISSION_FIELDS})
        form = cls(data, initial=initial)
        departments = cast(forms.ModelChoiceField, form.fields["department"])
        departments.queryset = Department.objects.for_clinic(membership.clinic_id).filter(is_active=True)
        return form


class SignInForm(AuthenticationForm):
    """Sign-in: members are invited by their email address, which is their login (the field keeps Django's
    name, `username`, that the axes lockout reads)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Please enter a correct email and password. Note that the password is case-sensitive.",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["username"]
        field.label = "Email"
        field.widget.attrs.update({"autocomplete": "username", "inputmode": "email", "spellcheck": "false"})


class TwoFactorCodeForm(forms.Form):
    """The second step's code: six digits from the authenticator app, or a recovery code."""

    code = forms.CharField(
        label="Code",
        max_length=32,
        help_text="The 6 digits your authenticator app shows now, or one of your recovery codes.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false", "autofocus": True}
        ),
    )

    def __init__(self, *args: Any, label: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if label:
            self.fields["code"].label = label
            self.fields["code"].help_text = "The 6 digits the app shows for this account now."
            self.fields["code"].widget.attrs["inputmode"] = "numeric"


class SignInSettingsForm(forms.ModelForm):
    """The clinic's "Sign-in and security": two-factor for every member, and the idle sign-out."""

    class Meta:
        model = Clinic
        fields = ["requires_two_factor", "idle_logoff_minutes"]
        widgets = {"idle_logoff_minutes": forms.NumberInput(attrs={"min": 5, "max": 480})}
