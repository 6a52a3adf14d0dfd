"""The pages reception and admins use: the clinic's "Messages to patients" settings (with a live preview), the
Messages log and one message (with "Send again"), a patient's contact choices; and the sections the appointment
and patient pages show (through scheduling's and patients' signals: neither imports notifications)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages as flash
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import ClinicRequest, admin_required
from clinic.htmx import page_or_fragment, popup_done
from clinic.numbers import whole_number
from notifications import selectors, services
from notifications.access import handles_messages, may_handle_messages, message_for_member
from notifications.forms import MessageFilterForm, NotificationSettingsForm, PreferenceForm
from notifications.models import Kind, Message, NotificationSettings
from notifications.recording import clinic_settings
from notifications.wording import PLACEHOLDERS
from patients.access import patient_for_member
from patients.models import Patient
from patients.selectors import patient_search
from patients.services import patient_record_opened
from scheduling.models import Appointment

PAGE_SIZE = 25


# --- Messages to patients (the clinic's settings) ----------------------------------------------------------------


@admin_required
@require_http_methods(["GET", "POST"])
def settings_page(request: ClinicRequest) -> HttpResponse:
    """Which messages go, by which channel, when, in whose name and in what words; a preview of a real upcoming
    appointment as the email and the SMS would say it ("Preview" and htmx show unsaved words, "Save" keeps them)."""
    saved = clinic_settings(request.clinic.pk)
    action = request.POST.get("action", "")
    form = NotificationSettingsForm(request.POST if request.method == "POST" else None, instance=saved)
    valid = form.is_valid() if form.is_bound else True
    if action == "save" and valid:
        services.settings_save(clinic=request.clinic, actor=request.user, form=form)
        flash.success(request, "Settings for messages to patients saved.")
        return redirect("notifications:settings")
    kind = request.POST.get("preview_kind") or request.GET.get("preview_kind") or Kind.CONFIRMATION
    kind = kind if kind in Kind.values else Kind.CONFIRMATION
    # With unsaved words (Preview, or htmx as they are typed) the form's instance holds them; with bad ones the
    # preview waits for the fix the form asks for.
    context = {
        "form": form,
        "placeholders": PLACEHOLDERS.items(),
        "kinds": Kind.choices,
        "preview_kind": kind,
        **_preview(request, form.instance if valid else None, kind),
    }
    if request.htmx and action == "preview":
        return render(request, "notifications/settings.html#preview", context)
    return render(request, "notifications/settings.html", context, status=422 if form.is_bound and not valid else 200)


def _preview(request: ClinicRequest, chosen: NotificationSettings | None, kind: str) -> dict[str, Any]:
    if chosen is None:
        return {"preview": None, "preview_blocked": True}
    appointment = selectors.preview_appointment(
        clinic=request.clinic, membership=request.membership, now=timezone.now()
    )
    if appointment is None:
        return {"preview": None, "preview_blocked": False}
    return {"preview": selectors.preview(appointment=appointment, chosen=chosen, kind=kind), "preview_blocked": False}


# --- The Messages log --------------------------------------------------------------------------------------------


@handles_messages
@require_GET
def message_list(request: ClinicRequest) -> HttpResponse:
    """Every message of the clinic, newest first, filtered by status, patient and days (on the viewer's clock)."""
    form = MessageFilterForm(request.GET or None)
    patient: Patient | None = None
    patient_ids: list[int] | None = None
    if (patient_id := form.value("patient")) is not None:
        patient = (
            Patient.objects.for_clinic(request.clinic)
            .visible_to(request.membership)
            .filter(public_id=patient_id)
            .first()
        )
        patient_ids = [patient.pk] if patient is not None else []
    elif query := (form.value("q") or "").strip():
        found = patient_search(clinic=request.clinic, membership=request.membership, query=query)
        patient_ids = [p.pk for p in found]
    chosen = selectors.MessageFilter(
        status=form.value("status") or "",
        patient_ids=patient_ids,
        since=form.value("since"),
        until=form.value("until"),
    )
    listed = selectors.messages_list(
        clinic=request.clinic, membership=request.membership, chosen=chosen, zone=request.viewer_zone
    )
    page = Paginator(listed, PAGE_SIZE).get_page(whole_number(request.GET.get("page")))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page_obj": page,
        "patient": patient,
        "filtered": chosen != selectors.MessageFilter(),
        "query": query.urlencode(),
        "zone": request.viewer_zone.key,
    }
    return render(request, page_or_fragment(request, "notifications/messages.html", "results"), context)


@handles_messages
@require_GET
def message_detail(request: ClinicRequest, message: UUID) -> HttpResponse:
    """One message: to whom, what it said (as sent), what happened, and "Send again" when that is reception's
    decision."""
    obj = message_for_member(request, message)
    patient_record_opened(clinic=request.clinic, actor=request.user, patient=obj.patient, view="message")
    context = {
        "message": obj,
        "resendable": obj.status in selectors.RESENDABLE,
        "zone": request.viewer_zone.key,
    }
    return render(request, "notifications/message.html", context)


@handles_messages
@require_http_methods(["GET", "POST"])
def message_resend(request: ClinicRequest, message: UUID) -> HttpResponse:
    """Send again, after a confirmation step: a message that failed, or whose delivery is unknown (it may have
    arrived: reception decides)."""
    obj = message_for_member(request, message)
    back = _next_url(request, reverse("notifications:detail", args=[obj.public_id]))
    error = ""
    if request.method == "POST":
        try:
            services.message_resend(clinic=request.clinic, actor=request.user, message=obj)
        except services.NotificationError as refusal:
            error = str(refusal)
        else:
            return popup_done(
                request,
                f"The {obj.get_kind_display().lower()} by {obj.get_channel_display()} will be sent again now.",
                then=back,
                popup_page=reverse("scheduling:calendar"),
            )
    context = {
        "message": obj,
        "resendable": obj.status in selectors.RESENDABLE,
        "error": error,
        "back": back,
        "zone": request.viewer_zone.key,
    }
    template = page_or_fragment(request, "notifications/resend.html", "tip")
    return render(request, template, context, status=422 if error else 200)


def _next_url(request: ClinicRequest, default: str) -> str:
    """Where to go back to: a path of this site named by the page that asked ("next"), or `default`."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted.startswith("/") and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}):
        return wanted
    return default


# --- A patient's choices -----------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def patient_preferences(request: ClinicRequest, patient: UUID) -> HttpResponse:
    """How the patient wants to hear from the clinic, and the consent history behind it (a page of its own; the
    patient's page shows the same section)."""
    obj = patient_for_member(request, patient)
    if request.method == "POST":
        if not may_handle_messages(request.membership):
            raise PermissionDenied("Only reception and admins record a patient's choices.")
        form = PreferenceForm(request.POST)
        if form.is_valid():
            services.preference_set(
                clinic=request.clinic,
                actor=request.user,
                patient=obj,
                email_ok=form.cleaned_data["email_ok"],
                sms_ok=form.cleaned_data["sms_ok"],
            )
            flash.success(request, f"Saved how {obj.display_name} hears from the clinic.")
            return redirect(_next_url(request, reverse("patients:detail", args=[obj.public_id])))
    patient_record_opened(clinic=request.clinic, actor=request.user, patient=obj, view="messages")
    context = {"section": patient_section_html(request, obj, own_page=True), "patient": obj}
    return render(request, "notifications/patient.html", context)


# --- Sections of other apps' pages (connected in apps.py) ----------------------------------------------------------


def patient_section_html(request: ClinicRequest, patient: Patient, *, own_page: bool = False) -> SafeString:
    preference = selectors.contact_preference(clinic=request.clinic, patient=patient)
    context = {
        "patient": patient,
        "preference": preference,
        "consents": selectors.consent_history(clinic=request.clinic, patient=patient),
        "can_edit": may_handle_messages(request.membership),
        "own_page": own_page,
        "zone": request.viewer_zone.key,
    }
    return render_to_string("notifications/_patient_section.html", context, request=request)


def patient_section(sender: object, request: ClinicRequest, patient: Patient, **kwargs: object) -> SafeString:
    """The patient page's "Messages" section (patients.signals.patient_sections)."""
    return patient_section_html(request, patient)


def appointment_section(
    sender: object, request: ClinicRequest, appointment: Appointment, **kwargs: object
) -> SafeString:
    """The appointment page's messages (scheduling.signals.appointment_sections)."""
    found: list[Message] = selectors.appointment_messages(clinic=request.clinic, appointment=appointment)
    context = {
        "appointment": appointment,
        "messages_sent": found,
        "resendable": selectors.RESENDABLE,
        "can_resend": may_handle_messages(request.membership),
        "zone": request.viewer_zone.key,
    }
    return render_to_string("notifications/_appointment_section.html", context, request=request)
