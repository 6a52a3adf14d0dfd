"""Reception booking from a slot: find the patient, their card and coverage, the booking form, review, book.

The same view serves every step, as a page or inside the calendar's popup (htmx), and works without JavaScript.
"""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import trigger_client_event

from clinic.access import ClinicRequest, permission_required, viewer_today
from clinic.htmx import page_or_fragment, popup_done, popup_next
from clinic.models import NamedPermission
from clinic.replica import reads_from_replica
from patients.access import active_patient_for_member, patient_for_member, restricted_search_row
from patients.models import Patient, may_see_blocked
from patients.selectors import patient_search
from patients.services import patient_record_opened
from scheduling.access import appointment_for_member, slot_for_member
from scheduling.forms import (
    BookingForm,
    CancelForm,
    NewSlotForm,
    NextAvailableForm,
    ReportForm,
    SeriesCancelForm,
    plain_booking,
)
from scheduling.grid import CalendarQuery
from scheduling.models import Appointment, AppointmentSource, AppointmentStatus, Slot
from scheduling.selectors import booking as selectors
from scheduling.selectors.series import open_drafts
from scheduling.services import booking as services
from scheduling.services.quick import quick_book
from scheduling.services.series import CancelScope, SeriesCancelled, series_cancel
from scheduling.signals import appointment_page_sections, source_names


def calendar_day_url(request: ClinicRequest, moment: dt.datetime) -> str:
    return reverse("scheduling:calendar") + CalendarQuery("day", moment.astimezone(request.viewer_zone).date()).params()


def done(request: ClinicRequest, message: str, moment: dt.datetime, slot: UUID | None = None) -> HttpResponse:
    """Close the popup and refresh the grid (on the calendar), or go to that day of the calendar; either way
    the calendar shows the slot that changed (scrolled to it, highlighted) and says what happened."""
    return popup_done(
        request,
        message,
        then=calendar_day_url(request, moment),
        popup_page=reverse("scheduling:calendar"),
        focus=f"slot-{slot}" if slot is not None else "",
    )


def who_and_when(request: ClinicRequest, patient: Patient, moment: dt.datetime) -> tuple[str, str]:
    """How a confirmation names the patient (never a blocked one to a member who may not see them) and the
    time, on the viewer's clock: ("Nadia Quist", "Mon 7 Jun 2027, 10:00")."""
    shown = may_see_blocked(request.membership) or not patient.is_blocked
    return (
        patient.display_name if shown else "Restricted patient",
        f"{moment.astimezone(request.viewer_zone):%a %-d %b %Y, %H:%M}",
    )


def book_context(request: ClinicRequest, slot: Slot) -> dict[str, Any]:
    """What every step of Book Appointment shows about the slot (the first step: find the patient)."""
    return {
        "slot": slot,
        "session": slot.session,
        "zone": request.viewer_zone.key,
        "full": slot.booked_count >= slot.capacity,
        "query": "",
        "results": [],
        "may_create_slot": request.membership.has_permission(NamedPermission.MANAGE_APPOINTMENTS),
        # Read only by the steps that show it (not by each keystroke's search results), and once.
        "busy_events": SimpleLazyObject(lambda: selectors.busy_events_during(clinic=request.clinic, slot=slot)),
        # Create New Slot, opened from here: this slot's practitioner, location and type to start from.
        "new_slot_query": urlencode(
            {
                "practitioner": str(slot.session.practitioner.public_id) if slot.session.practitioner else "",
                "location": str(slot.session.location.public_id),
                "slot_type": str(slot.slot_type.public_id) if slot.slot_type else "",
            }
        ),
    }


def booking_form(request: ClinicRequest, slot: Slot, patient: Patient, closed_refusal: str = "") -> BookingForm:
    """The booking form for a patient and slot, filled from the request or with the slot's defaults (and the reason
    a new patient joins an enforced closed group, for a member who may give one)."""
    return BookingForm(
        request.POST or None,
        clinic=request.clinic,
        patient=patient,
        slot=slot,
        own_department_id=request.membership.department_id,
        closed_refusal=closed_refusal,
        may_override=request.membership.has_permission(NamedPermission.MANAGE_APPOINTMENTS),
    )


def booking_patient(request: ClinicRequest, patient_id: str) -> Patient:
    """The patient being booked (a 404 for one this member may not see); opening a blocked one is audited."""
    patient = patient_for_member(request, patient_id)
    if patient.is_blocked and request.method == "GET":
        patient_record_opened(clinic=request.clinic, actor=request.user, patient=patient, view="booking")
    return patient


def quick_booked(request: ClinicRequest, slot: UUID) -> HttpResponse | None:
    """The plain booking in one database call (scheduling.services.quick), answered as the form answers it; None
    when the call left it to the form and appointment_book (anything else, and every refusal, on SQLite always)."""
    plain = plain_booking(request.POST, bills_insurance=request.clinic.bills_insurance)
    if plain is None:
        return None
    quick = quick_book(clinic=request.clinic, actor=request.user, slot=slot, booking=plain)
    if not quick.booked or quick.starts_at is None:
        return None
    patient = Patient(
        title=quick.title, first_name=quick.first_name, preferred_name=quick.preferred_name, last_name=quick.last_name
    )
    who, when = who_and_when(request, patient, quick.starts_at)
    return done(request, f"Booked {who} on {when}.", quick.starts_at, slot)


@require_http_methods(["GET", "POST"])
def book(request: ClinicRequest, slot: UUID) -> HttpResponse:
    """Book Appointment into a slot."""
    if request.method == "POST" and request.POST.get("action") == "book":
        booked = quick_booked(request, slot)
        if booked is not None:
            return booked
    obj = slot_for_member(request, slot)
    context = book_context(request, obj)
    patient_id = request.POST.get("patient") or request.GET.get("patient")
    if not obj.bookable:
        context["refusal"] = services.unbookable_reason(obj)  # blank, removed by a change, or its session out
    elif not patient_id:
        # Step 1: find the patient.
        query = request.GET.get("q", "").strip()
        context["query"] = query
        context["results"] = (
            patient_search(clinic=request.clinic, membership=request.membership, query=query) if query else []
        )
        # A blocked patient named exactly by an identifier: break glass, then back here with them chosen.
        book_url = reverse("scheduling:book", args=[obj.public_id])
        context["restricted"] = (
            restricted_search_row(request, query, lambda p: f"{book_url}?patient={p.public_id}") if query else None
        )
        template = "scheduling/book.html"
        if request.htmx and request.htmx.target == "booking-results":
            template += "#results"
        elif request.htmx:
            template += "#tip"
        return render(request, template, context)
    else:
        patient = booking_patient(request, patient_id)
        closed = services.closed_group_refusal(request.clinic, obj, patient.pk, now=timezone.now())
        form = booking_form(request, obj, patient, closed)
        context |= {"patient": patient, "form": form, "step": "form", "closed_refusal": closed}
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
                    who, when = who_and_when(request, patient, obj.starts_at)
                    return done(request, f"Booked {who} on {when}.", obj.starts_at, obj.public_id)
            context |= {"step": "review", "booking": booking}
    template = page_or_fragment(request, "scheduling/book.html", "tip")
    status = 422 if request.method == "POST" and context.get("step") == "form" else 200
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
def appointment_cancel(request: ClinicRequest, appointment: UUID) -> HttpResponse:
    """Cancel an appointment with a reason; its place is freed."""
    obj = appointment_for_member(request, appointment)
    form = (SeriesCancelForm if obj.series_id else CancelForm)(request.POST or None)
    error = ""
    if obj.status == AppointmentStatus.CANCELLED:
        error = "This appointment is already cancelled."
    elif request.method == "POST" and form.is_valid():
        try:
            result = series_cancel(
                clinic=request.clinic,
                actor=request.user,
                appointment=obj,
                scope=form.cleaned_data.get("scope", CancelScope.THIS),
                reason=form.cleaned_data["reason"],
                category=form.cleaned_data["category"],
                now=timezone.now(),
            )
        except services.BookingError as refusal:
            error = refusal.messages[0]
        else:
            message = cancelled_message(result, *who_and_when(request, obj.patient, obj.starts_at))
            return done(request, message, obj.starts_at, obj.slot.public_id)
    context = {"appointment": obj, "form": form, "error": error, "zone": request.viewer_zone.key}
    template = page_or_fragment(request, "scheduling/cancel.html", "tip")
    return render(request, template, context, status=422 if request.method == "POST" else 200)


def cancelled_message(result: SeriesCancelled, who: str, when: str) -> str:
    if result.appointments == 1 and not result.drafts and not result.kept:
        return f"Cancelled {who} on {when}; the place is free again."
    parts = [f"Cancelled {result.appointments} appointment{'s' if result.appointments != 1 else ''}"]
    if result.drafts:
        parts.append(f"{result.drafts} draft{'s' if result.drafts != 1 else ''}")
    message = " and ".join(parts) + f" of {who}'s series, from {when}."
    if result.kept:
        message += f" {result.kept} already under way or done {'was' if result.kept == 1 else 'were'} kept."
    return message


@require_http_methods(["GET", "POST"])
def appointment_detail(request: ClinicRequest, appointment: UUID) -> HttpResponse:
    """An appointment: its details and history, and its next steps (arrived, in consultation, completed...)."""
    obj = appointment_for_member(request, appointment)
    error = ""
    if request.method == "POST":
        try:
            if "status" in request.POST:
                services.appointment_status_set(
                    clinic=request.clinic, actor=request.user, appointment=obj, status=request.POST["status"]
                )
            elif "notes_completed" in request.POST:
                services.appointment_notes_completed(
                    clinic=request.clinic,
                    actor=request.user,
                    appointment=obj,
                    done=request.POST["notes_completed"] == "1",
                )
        except services.BookingError as refusal:
            error = refusal.messages[0]
        else:
            if request.htmx:
                obj = appointment_for_member(request, appointment)
                response = render(request, "scheduling/appointment.html#tip", appointment_context(request, obj, ""))
                return trigger_client_event(response, "calendar:refresh")
            return redirect("scheduling:appointment", appointment=obj.public_id)
    if obj.patient.break_glass:  # opened through a break-glass grant: audited as such
        patient_record_opened(clinic=request.clinic, actor=request.user, patient=obj.patient, view="appointment")
    template = page_or_fragment(request, "scheduling/appointment.html", "tip")
    return render(request, template, appointment_context(request, obj, error), status=422 if error else 200)


def appointment_context(request: ClinicRequest, obj: Appointment, error: str) -> dict[str, Any]:
    steps = sorted(services.STATUS_STEPS.get(obj.status, set()), key=list(AppointmentStatus.values).index)
    return {
        "appointment": obj,
        "error": error,
        "steps": [(step, AppointmentStatus(step).label) for step in steps],
        "zone": request.viewer_zone.key,
        "rescheduled_to": selectors.rescheduled_to(clinic=request.clinic, appointment=obj),
        "resources": list(obj.resources.all()),
        "drafts": list(open_drafts(clinic=request.clinic, series=obj.series)) if obj.series_id else [],
        # Sections of observers (notifications: the messages about the appointment); scheduling imports none.
        "sections": appointment_page_sections(request, obj),
        # Where it came from, in words (an observer may name more: the FHIR consumer that booked it).
        "source_words": (
            source_names(request.clinic.pk, [obj.pk]).get(obj.pk) or obj.get_source_display()
            if obj.source != AppointmentSource.RECEPTION
            else obj.get_source_display()
        ),
    }


@require_http_methods(["GET", "POST"])
def appointment_reschedule(request: ClinicRequest, appointment: UUID) -> HttpResponse:
    """Edit Appointment (Reschedule): pick another free slot (the same practitioner and type by default);
    a series' draft occurrences are listed below, each to be placed."""
    obj = appointment_for_member(request, appointment)
    error = ""
    if request.method == "POST":
        target = selectors.slot_details(clinic=request.clinic, slot_public_id=request.POST.get("slot") or None)
        if target is None:
            error = "Choose a slot to move the appointment to."
        else:
            try:
                services.appointment_reschedule(
                    clinic=request.clinic,
                    actor=request.user,
                    membership=request.membership,
                    appointment=obj,
                    slot=target,
                )
            except services.BookingError as refusal:
                error = refusal.messages[0]
            else:
                who, when = who_and_when(request, obj.patient, target.starts_at)
                return done(request, f"Moved {who} to {when}.", target.starts_at, target.public_id)
    any_practitioner = request.GET.get("any") == "1"
    slots = selectors.next_available(
        clinic=request.clinic,
        now=timezone.now(),
        slot_type=obj.slot_type,
        practitioner=None if any_practitioner else obj.practitioner,
        limit=12,
        not_booked=obj.patient,
    )
    context = {
        "appointment": obj,
        "slots": [s for s in slots if s.pk != obj.slot_id],
        "error": error,
        "zone": request.viewer_zone.key,
        "any_practitioner": any_practitioner,
        "drafts": list(open_drafts(clinic=request.clinic, series=obj.series)) if obj.series_id else [],
        "today": viewer_today(request),
    }
    template = page_or_fragment(request, "scheduling/reschedule.html", "tip")
    return render(request, template, context, status=422 if error else 200)


manage_appointments = permission_required(NamedPermission.MANAGE_APPOINTMENTS)


@manage_appointments
@require_http_methods(["GET", "POST"])
def slot_new(request: ClinicRequest) -> HttpResponse:
    """Create New Slot (needs "Schedule Admin: Manage Appointments"): an ad-hoc slot, then book it."""
    form = NewSlotForm(request.POST or None, clinic=request.clinic, link=request.GET)
    # Opened after a patient was chosen: book them into the new slot next (the booking checks who they are).
    patient = uuid_or_none(request.POST.get("patient") or request.GET.get("patient"))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        slot = services.adhoc_slot_create(
            clinic=request.clinic,
            actor=request.user,
            practitioner=data["practitioner"],
            location=data["location"],
            date=data["date"],
            start_time=data["start_time"],
            length_minutes=data["length_minutes"],
            slot_type=data["slot_type"],
        )
        book_url = reverse("scheduling:book", args=[slot.public_id])
        if patient is not None:
            book_url += f"?patient={patient}"
        return popup_next(request, book_url, popup_page=reverse("scheduling:calendar"))
    template = page_or_fragment(request, "scheduling/slot_new.html", "tip")
    # Opened from the New event form's "Client appointment" where no slot was free: say why it is here.
    context = {"form": form, "patient": patient, "no_free_slot": request.GET.get("from") == "event"}
    return render(request, template, context, status=422 if form.is_bound else 200)


def uuid_or_none(text: str | None) -> UUID | None:
    try:
        return UUID(text) if text else None
    except ValueError:
        return None


@require_GET
def next_available(request: ClinicRequest) -> HttpResponse:
    """Next available: the soonest free places of a type, for one practitioner, anyone, or a location."""
    form = NextAvailableForm(request.GET or None, clinic=request.clinic)
    slots: list[Any] = []
    if form.is_valid() or not form.is_bound:
        data = form.cleaned_data if form.is_bound else {}
        slots = selectors.next_available(
            clinic=request.clinic,
            now=timezone.now(),
            slot_type=data.get("slot_type"),
            practitioner=data.get("practitioner"),
            location=data.get("location"),
        )
    context = {"form": form, "slots": slots, "zone": request.viewer_zone.key}
    template = page_or_fragment(request, "scheduling/next_available.html", "results")
    return render(request, template, context)


@permission_required(NamedPermission.MANAGE_APPOINTMENTS)
@require_GET
@reads_from_replica  # the report's rows (page and CSV); the permission was checked on the primary's membership
def appointments_report(request: ClinicRequest) -> HttpResponse:
    """Appointments by reporting category and status over a date range; CSV with ?format=csv."""
    today = request.clinic.today()
    data = request.GET if request.GET.get("first_date") else {"first_date": today.replace(day=1), "last_date": today}
    form = ReportForm(data)
    rows: list[selectors.ReportRow] = []
    if form.is_valid():
        first, last = form.cleaned_data["first_date"], form.cleaned_data["last_date"]
        rows = selectors.appointments_report(
            clinic=request.clinic, first_date=first, last_date=last, category=form.cleaned_data["category"]
        )
        if request.GET.get("format") == "csv":
            response = HttpResponse(content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="appointments-{first}-{last}.csv"'
            csv.writer(response).writerows(selectors.report_table(rows))
            return response
    context = {"form": form, "rows": rows, "statuses": AppointmentStatus.labels}
    return render(request, "scheduling/report.html", context)


@require_GET
def patient_appointments(request: ClinicRequest, patient: UUID) -> HttpResponse:
    """Upcoming and past appointments of a patient (loaded into the patient's Quickview)."""
    obj = active_patient_for_member(request, patient)
    now = timezone.now()
    appointments = list(selectors.patient_appointments(clinic=request.clinic, patient=obj)[:60])
    context = {
        "patient": obj,
        "upcoming": sorted((a for a in appointments if a.starts_at >= now), key=lambda a: a.starts_at),
        "past": [a for a in appointments if a.starts_at < now],
        "drafts": list(open_drafts(clinic=request.clinic, patient=obj)),
        "zone": request.viewer_zone.key,
    }
    template = page_or_fragment(request, "scheduling/patient_appointments.html", "list")
    return render(request, template, context)
