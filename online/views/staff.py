"""The staff side of online booking: the admins' settings (the clinic's and each practitioner's) and reception's
Online requests queue (Accept, or Decline with a reason the patient reads)."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages as flash
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import ClinicRequest, admin_required, scoped_get_or_404
from clinic.models import Practitioner
from clinic.services import tenant_object_save
from online import selectors, services
from online.access import answers_requests, request_for_member
from online.forms import DeclineForm, OnlineSettingsForm, PractitionerOnlineForm
from online.models import BookingMode
from scheduling.models import Availability
from scheduling.services.booking import BookingError


@admin_required
@require_http_methods(["GET", "POST"])
def settings_page(request: ClinicRequest) -> HttpResponse:
    """Online booking on or off, its rules and introduction, and each practitioner's choice."""
    clinic = request.clinic
    online = selectors.settings_of(clinic)
    form = OnlineSettingsForm(request.POST or None, instance=online, prefix="clinic")
    if request.method == "POST" and form.is_valid():
        tenant_object_save(clinic=clinic, actor=request.user, form=form)
        flash.success(request, "Online booking settings saved.")
        return redirect("online:settings")
    with_hours = set(Availability.objects.for_clinic(clinic).values_list("practitioner_id", flat=True))
    active = list(Practitioner.objects.for_clinic(clinic).filter(is_active=True))
    modes = selectors.online_modes(clinic, [p.pk for p in active])
    practitioners = [
        {"practitioner": p, "accepts": modes[p.pk][0], "mode": modes[p.pk][1], "has_hours": p.pk in with_hours}
        for p in active
    ]
    context = {
        "form": form,
        "online": online,
        "practitioners": practitioners,
        "modes": BookingMode.choices,
        "public_url": request.build_absolute_uri(reverse("online:landing", args=[clinic.slug])),
        "types": selectors.online_types(clinic),
    }
    return render(request, "online/settings.html", context, status=400 if form.errors else 200)


@admin_required
@require_http_methods(["GET", "POST"])
def practitioner_set(request: ClinicRequest, practitioner: UUID) -> HttpResponse:
    """One practitioner's online booking (the settings page's row, on a page of its own when opened directly)."""
    found = scoped_get_or_404(Practitioner, request.clinic, public_id=practitioner)
    if request.method == "GET":
        accepts, mode = selectors.mode_of(request.clinic, found.pk)
        context = {"practitioner": found, "form": PractitionerOnlineForm(initial={"accepts": accepts, "mode": mode})}
        return render(request, "online/practitioner.html", context)
    form = PractitionerOnlineForm(request.POST)
    if form.is_valid():
        services.practitioner_online_set(
            clinic=request.clinic,
            actor=request.user,
            practitioner=found,
            accepts=form.cleaned_data["accepts"],
            mode=form.cleaned_data["mode"],
        )
        flash.success(request, f"Saved online booking for {found.name}.")
    else:
        flash.error(request, "Choose instant bookings or requests.")
    return redirect(reverse("online:settings") + "#practitioners")


@answers_requests
@require_GET
def request_list(request: ClinicRequest) -> HttpResponse:
    """Online requests waiting for an answer (each holds its time), and the latest answers."""
    pending = list(selectors.pending_requests(clinic=request.clinic, membership=request.membership))
    context = {
        "pending": pending,
        "answered": selectors.recent_decisions(clinic=request.clinic, membership=request.membership),
        "zone": request.viewer_zone,
        "decline_form": DeclineForm(),
    }
    return render(request, "online/requests.html", context)


@answers_requests
@require_http_methods(["GET", "POST"])
def request_accept(request: ClinicRequest, booking: UUID) -> HttpResponse:
    """Accept (the queue's button posts here; opened directly, the page shows the request and the button)."""
    found = request_for_member(request, booking)
    if request.method == "GET":
        return render(request, "online/accept.html", {"booking": found, "zone": request.viewer_zone})
    try:
        services.request_accept(clinic=request.clinic, actor=request.user, membership=request.membership, booking=found)
    except BookingError as error:
        flash.error(request, error.messages[0])
    else:
        flash.success(request, f"Accepted: {found.patient} is booked and has been told.")
    return redirect("online:requests")


@answers_requests
@require_http_methods(["GET", "POST"])
def request_decline(request: ClinicRequest, booking: UUID) -> HttpResponse:
    """Decline, with the reason the patient is given (asked on a page of its own: it cannot be undone)."""
    found = request_for_member(request, booking)
    form = DeclineForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.request_decline(
                clinic=request.clinic, actor=request.user, booking=found, reason=form.cleaned_data["reason"]
            )
        except BookingError as error:
            flash.error(request, error.messages[0])
        else:
            flash.success(request, "Declined: the time is free again and the patient has been told.")
        return redirect("online:requests")
    context = {"booking": found, "form": form, "zone": request.viewer_zone}
    return render(request, "online/decline.html", context, status=400 if form.errors else 200)
