"""Patients: search, records, coverage, quickview, archive and CSV import."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from clinic import services as clinic_services
from clinic.access import ClinicRequest
from clinic.htmx import page_or_fragment
from patients import importer, selectors, services
from patients.access import (
    can_edit_patients,
    coverage_for_member,
    edits_patients,
    patient_for_member,
    patient_to_change,
    restricted_search_row,
)
from patients.forms import CoverageForm, ImportForm, PatientForm
from patients.models import may_see_blocked
from patients.signals import patient_page_sections

LIST_LIMIT = 50


@require_GET
def patient_list(request: ClinicRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    restricted = None
    if query:
        patients = selectors.patient_search(clinic=request.clinic, membership=request.membership, query=query)
        restricted = restricted_search_row(request, query, lambda p: reverse("patients:detail", args=[p.public_id]))
    else:
        patients = list(selectors.patients_visible(clinic=request.clinic, membership=request.membership)[:LIST_LIMIT])
    context = {
        "query": query,
        "patients": patients,
        # Counted only for the unfiltered list: not on every keystroke of a search.
        "total": None if query else selectors.patients_count(clinic=request.clinic, membership=request.membership),
        "limit": selectors.SEARCH_LIMIT if query else LIST_LIMIT,
        "can_edit": can_edit_patients(request),
        "restricted": restricted,
    }
    template = page_or_fragment(request, "patients/list.html", "results")
    return render(request, template, context)


@edits_patients
@require_http_methods(["GET", "POST"])
def patient_edit(request: ClinicRequest, patient: UUID | None = None) -> HttpResponse:
    instance = patient_to_change(request, patient) if patient else None
    can_block = may_see_blocked(request.membership)  # who may see blocked records may also block one
    form = PatientForm(request.POST or None, instance=instance, clinic=request.clinic, can_block=can_block)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.patient_save(
                clinic=request.clinic, actor=request.user, membership=request.membership, form=form
            )
        except ValidationError as refusal:
            form.add_error(None, refusal)
        else:
            messages.success(request, f"Saved {saved.display_name} ({saved.internal_id}).")
            return redirect("patients:detail", patient=saved.public_id)
    return render(request, "patients/form.html", {"form": form, "patient": instance})


@require_GET
def patient_detail(request: ClinicRequest, patient: UUID) -> HttpResponse:
    obj = patient_for_member(request, patient)
    services.patient_record_opened(clinic=request.clinic, actor=request.user, patient=obj, view="record")
    context = {
        "patient": obj,
        "can_edit": can_edit_patients(request) and not obj.break_glass,
        # Sections of observers (notifications: contact preferences); patients imports none of them.
        "sections": patient_page_sections(request, obj),
    }
    return render(request, "patients/detail.html", context)


@require_GET
def patient_quickview(request: ClinicRequest, patient: UUID) -> HttpResponse:
    obj = patient_for_member(request, patient)
    services.patient_record_opened(clinic=request.clinic, actor=request.user, patient=obj, view="quickview")
    template = page_or_fragment(request, "patients/quickview.html", "panel")
    return render(request, template, {"patient": obj, "can_edit": can_edit_patients(request) and not obj.break_glass})


@edits_patients
@require_http_methods(["GET", "POST"])
def patient_archive(request: ClinicRequest, patient: UUID) -> HttpResponse:
    obj = patient_to_change(request, patient)
    if request.method == "POST":
        services.patient_archive(clinic=request.clinic, actor=request.user, patient=obj, archived=not obj.is_archived)
        messages.success(request, f"{obj.display_name} is {'archived' if obj.is_archived else 'restored'}.")
        return redirect("patients:detail", patient=obj.public_id)
    return render(request, "patients/archive.html", {"patient": obj})


@edits_patients
@require_http_methods(["GET", "POST"])
def coverage_edit(request: ClinicRequest, patient: UUID, coverage: UUID | None = None) -> HttpResponse:
    if not request.clinic.bills_insurance:
        raise Http404("This practice does not bill insurance.")
    obj = patient_to_change(request, patient)
    instance = coverage_for_member(request, obj, coverage) if coverage else None
    if request.method == "POST" and instance is not None and request.POST.get("action") == "delete":
        services.coverage_delete(clinic=request.clinic, actor=request.user, coverage=instance)
        messages.success(request, f"Removed the plan {instance}.")
        return redirect("patients:detail", patient=obj.public_id)
    form = CoverageForm(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        form.instance.clinic, form.instance.patient = request.clinic, obj
        clinic_services.tenant_object_save(clinic=request.clinic, actor=request.user, form=form)
        messages.success(request, "Insurance plan saved.")
        return redirect("patients:detail", patient=obj.public_id)
    return render(request, "patients/coverage_form.html", {"form": form, "patient": obj, "coverage": instance})


@edits_patients
@require_http_methods(["GET", "POST"])
def patient_import(request: ClinicRequest) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None)
    check = None
    if request.method == "POST" and form.is_valid():
        text = form.cleaned_data["csv_text"]
        check = importer.check_csv(clinic=request.clinic, actor=request.user, membership=request.membership, text=text)
        if request.POST.get("action") == "import" and check.can_import:
            if check.errors and not form.cleaned_data.get("skip_bad_rows"):
                refusal = "Some rows have errors: fix the file, or choose to skip them."
                context = {"check": check, "columns": importer.COLUMNS, "refusal": refusal}
                return render(
                    request, "patients/import.html", {"form": ImportForm(initial={"csv_text": text}), **context}
                )
            else:
                count = services.patients_import(clinic=request.clinic, actor=request.user, patients=check.valid)
                messages.success(request, f"Imported {count} patient{'s' if count != 1 else ''}.")
                return redirect("patients:list")
        form = ImportForm(initial={"csv_text": text, "skip_bad_rows": form.cleaned_data.get("skip_bad_rows")})
    return render(request, "patients/import.html", {"form": form, "check": check, "columns": importer.COLUMNS})


@edits_patients
@require_http_methods(["GET", "POST"])
def patient_merge(request: ClinicRequest, patient: UUID) -> HttpResponse:
    """Merge this record (typically one registered online) into the patient it really is: find them, check both
    side by side, confirm. Everything of this record moves to the one kept; this one is archived."""
    duplicate = patient_to_change(request, patient)
    query = request.GET.get("q", "").strip()
    found = (
        [
            p
            for p in selectors.patient_search(clinic=request.clinic, membership=request.membership, query=query)
            if p.pk != duplicate.pk
        ]
        if query
        else []
    )
    keep = None
    if keep_id := request.POST.get("keep") or request.GET.get("keep"):
        try:
            keep = patient_to_change(request, UUID(keep_id))
        except (ValueError, Http404, PermissionDenied):
            keep = None
    error = ""
    if request.method == "POST" and keep is not None and request.POST.get("confirm") == "merge":
        try:
            services.patient_merge(clinic=request.clinic, actor=request.user, keep=keep, duplicate=duplicate)
        except ValidationError as refusal:
            error = refusal.messages[0]
        else:
            messages.success(request, f"Merged into {keep.display_name} ({keep.internal_id}).")
            return redirect("patients:detail", patient=keep.public_id)
    context = {"patient": duplicate, "query": query, "found": found, "keep": keep, "error": error}
    return render(request, "patients/merge.html", context, status=400 if error else 200)
