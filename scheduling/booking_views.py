"""Reception booking from a slot: find the patient, their card and coverage, the booking form, review, book.

The same view serves every step, as a page or inside the calendar's popup (htmx), and works without JavaScript.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django_htmx.http import trigger_client_event

from clinic.access import ClinicRequest, scoped_get_or_404
from patients.selectors import patient_detail, patient_search
from patients.services import patient_record_opened
from scheduling import selectors, services
from scheduling.calendar import CalendarQuery
from scheduling.forms import SELF_PAY, BookingForm, CancelForm
from scheduling.models import Appointment, AppointmentStatus


def slot_or_404(request: ClinicRequest, slot: Any) -> Any:
    obj = selectors.slot_details(clinic=request.clinic, slot_public_id=slot)
    if obj is None:
        raise Http404("No such slot.")
    return obj


def calendar_day_url(request: ClinicRequest, moment: Any) -> str:
    return reverse("scheduling:calendar") + CalendarQuery("day", moment.astimezone(request.viewer_zone).date()).params()


def done(request: ClinicRequest, message: str, moment: Any) -> HttpResponse:
    """Close the popup and refresh the grid (htmx), or go back to that day of the calendar."""
    if request.htmx:
        return trigger_client_event(HttpResponse(status=204), "calendar:changed", {"message": message})
    messages.success(request, message)
    return redirect(calendar_day_url(request, moment))


@require_http_methods(["GET", "POST"])
def book(request: ClinicRequest, slot: Any) -> HttpResponse:
    """Book Appointment into a slot."""
    obj = slot_or_404(request, slot)
    session = obj.session
    context: dict[str, Any] = {"slot": obj, "session": session, "zone": request.viewer_zone.key}
    patient_id = request.POST.get("patient") or request.GET.get("patient")
    full = obj.booked_count >= obj.capacity
    context["full"] = full
    if not obj.bookable:
        context["refusal"] = "This slot cannot be booked (a blank slot)."
    elif not patient_id:
        # Step 1: find the patient.
        query = request.GET.get("q", "").strip()
        context["query"] = query
        context["results"] = (
            patient_search(clinic=request.clinic, membership=request.membership, query=query) if query else []
        )
        template = "scheduling/book.html"
        if request.htmx and request.htmx.target == "booking-results":
            template += "#results"
        elif request.htmx:
            template += "#tip"
        return render(request, template, context)
    else:
        patient = scoped_get_or_404(
            patient_detail(clinic=request.clinic, membership=request.membership), request.clinic, public_id=patient_id
        )
        if patient.is_blocked and request.method == "GET":
            patient_record_opened(clinic=request.clinic, actor=request.user, patient=patient, view="booking")
        initial = {
            "coverage": next((str(c.public_id) for c in patient.coverages.all() if c.priority == "primary"), SELF_PAY),
            "resources": [session.practitioner.public_id] if session.practitioner else [],
            "slot_type": obj.slot_type.public_id if obj.slot_type else None,
        }
        form = BookingForm(request.POST or None, initial=initial, clinic=request.clinic, patient=patient)
        departments = list(form.fields["department"].queryset)  # type: ignore[attr-defined]
        if len(departments) == 1:
            form.initial["department"] = departments[0].public_id
        context |= {"patient": patient, "form": form, "step": "form"}
        action = request.POST.get("action")
        if request.method == "POST" and form.is_valid():
            booking = form.booking_request(slot=obj, patient=patient)
            if action == "book":
                try:
                    services.appointment_book(
                        clinic=request.clinic, actor=request.user, membership=request.membership, request=booking
                    )
                except services.BookingError as error:
                    context["refusal"] = error.messages[0]
                else:
                    return done(request, f"Booked {patient.first_name} {patient.last_name}.", obj.starts_at)
            context |= {"step": "review", "booking": booking}
    template = "scheduling/book.html#tip" if request.htmx else "scheduling/book.html"
    status = 422 if request.method == "POST" and context.get("step") == "form" else 200
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
def appointment_cancel(request: ClinicRequest, appointment: Any) -> HttpResponse:
    """Cancel an appointment with a reason; its place is freed."""
    obj = scoped_get_or_404(
        Appointment.objects.for_clinic(request.clinic).select_related("patient", "slot", "practitioner"),
        request.clinic,
        public_id=appointment,
    )
    if (
        obj.patient.is_blocked
        and not patient_detail(clinic=request.clinic, membership=request.membership).filter(pk=obj.patient_id).exists()
    ):
        raise Http404("No such appointment.")
    form = CancelForm(request.POST or None)
    error = ""
    if obj.status == AppointmentStatus.CANCELLED:
        error = "This appointment is already cancelled."
    elif request.method == "POST" and form.is_valid():
        try:
            services.appointment_cancel(
                clinic=request.clinic, actor=request.user, appointment=obj, reason=form.cleaned_data["reason"]
            )
        except services.BookingError as refusal:
            error = refusal.messages[0]
        else:
            return done(request, "Appointment cancelled; the place is free again.", obj.starts_at)
    context = {"appointment": obj, "form": form, "error": error, "zone": request.viewer_zone.key}
    template = "scheduling/cancel.html#tip" if request.htmx else "scheduling/cancel.html"
    return render(request, template, context, status=422 if request.method == "POST" else 200)
