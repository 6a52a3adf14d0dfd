"""A patient's data: Export patient data (a subject access request), Erase the record, and the clinic's Data
retention setting; and the patient page's "Patient data" section (patients.signals.patient_sections)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import UUID

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.views.decorators.http import require_http_methods

from clinic.access import ClinicRequest, admin_required
from clinic.models import Clinic, Membership, NamedPermission
from clinic.services import clinic_settings_update
from patients.access import patient_for_member
from patients.models import Patient
from privacy.selectors.patient_data import erasure_refusal, last_appointment_start, patient_export_contents
from privacy.services.patient_data import ErasureRefused, patient_erase, patient_export


def may_export_patients(membership: Membership) -> bool:
    """Admins and privacy officers answer subject access requests."""
    return membership.is_admin or membership.has_permission(NamedPermission.PRIVACY_OFFICER)


def may_erase_patients(membership: Membership) -> bool:
    """Only admins erase (it cannot be undone)."""
    return membership.is_admin


View = Callable[..., HttpResponseBase]


def exports_patients(view: View) -> View:
    @wraps(view)
    def wrapper(request: ClinicRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not may_export_patients(request.membership):
            raise PermissionDenied("Only admins and privacy officers can export a patient's data.")
        return view(request, *args, **kwargs)

    return wrapper


class EraseConfirmForm(forms.Form):
    confirm_name = forms.CharField(
        label="Type the patient's full name to confirm",
        max_length=200,
        help_text="First name then last name, as on the record.",
    )

    def __init__(self, *args: Any, patient: Patient, **kwargs: Any) -> None:
        self.patient = patient
        super().__init__(*args, **kwargs)

    def clean_confirm_name(self) -> str:
        typed = " ".join(self.cleaned_data["confirm_name"].split()).casefold()
        wanted = " ".join(f"{self.patient.first_name} {self.patient.last_name}".split()).casefold()
        if typed != wanted:
            raise forms.ValidationError("That is not the patient's name: type their first and last name.")
        return typed


class RetentionForm(forms.ModelForm):
    class Meta:
        model = Clinic
        fields = ["retention_years"]


@exports_patients
@require_http_methods(["GET", "POST"])
def patient_export_page(request: ClinicRequest, patient: UUID) -> HttpResponse:
    obj = patient_for_member(request, patient)
    if request.method == "POST":
        name, data = patient_export(clinic=request.clinic, actor=request.user, patient=obj)
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    contents = patient_export_contents(clinic=request.clinic, patient=obj)
    context = {
        "patient": obj,
        "tables": [table for table in contents.tables if table.rows],
        "appointments": len(contents.appointments),
        "audit": len(contents.audit),
        "viewed": len(contents.viewed),
    }
    return render(request, "privacy/patient_export.html", context)


@admin_required
@require_http_methods(["GET", "POST"])
def patient_erase_page(request: ClinicRequest, patient: UUID) -> HttpResponse:
    obj = patient_for_member(request, patient)
    refusal = erasure_refusal(clinic=request.clinic, patient=obj)
    form = EraseConfirmForm(request.POST or None, patient=obj)
    status = 200
    if request.method == "POST" and refusal is None:
        if form.is_valid():
            try:
                patient_erase(clinic=request.clinic, actor=request.user, patient=obj)
            except ErasureRefused as refused:  # something changed since the page was drawn
                messages.error(request, str(refused))
                return redirect("privacy:patient-erase", patient=obj.public_id)
            messages.success(request, "The record is erased: the identity is gone, the appointments still count.")
            return redirect("patients:detail", patient=obj.public_id)
        status = 422
    elif request.method == "POST":
        status = 409
    context = {
        "patient": obj,
        "form": form,
        "refusal": refusal,
        "last_appointment": last_appointment_start(clinic=request.clinic, patient=obj),
        "retention_years": request.clinic.retention_years,
    }
    return render(request, "privacy/patient_erase.html", context, status=status)


@admin_required
@require_http_methods(["GET", "POST"])
def retention_settings(request: ClinicRequest) -> HttpResponse:
    form = RetentionForm(request.POST or None, instance=request.clinic)
    if request.method == "POST":
        if form.is_valid():
            clinic_settings_update(clinic=request.clinic, actor=request.user, form=form)
            messages.success(request, "Data retention saved.")
            return redirect("privacy:retention")
        return render(request, "privacy/patient_retention.html", {"form": form}, status=422)
    return render(request, "privacy/patient_retention.html", {"form": form})


def patient_section(sender: object, request: ClinicRequest, patient: Patient, **kwargs: object) -> SafeString | None:
    """The patient page's "Patient data" section: export and erase, for the members who may."""
    membership = request.membership
    if not may_export_patients(membership) and not may_erase_patients(membership):
        return None
    context = {
        "patient": patient,
        "may_export": may_export_patients(membership),
        "may_erase": may_erase_patients(membership) and patient.erased_at is None,
    }
    return render_to_string("privacy/patient_section.html", context, request=request)
