"""The waiting list: the list in offer order, adding a patient (for a slot, a group series or a preference), an entry
with the places it could take now (offer by hand, or book straight away), removing it, the clinic's rules for offers,
and a group's roster (who comes on which dates, attendance, places and waiting, CSV)."""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import ClinicRequest, admin_required
from clinic.models import NamedPermission
from patients.models import Patient, may_see_blocked
from patients.selectors import patient_search
from scheduling.access import (
    appointment_for_member,
    entry_for_member,
    manageable_practitioners,
    slot_for_member,
    waitlist_keeper,
)
from scheduling.forms import WaitlistEntryForm, WaitlistRulesForm
from scheduling.models import (
    WEEKDAY_NAMES,
    AppointmentStatus,
    SeriesScope,
    WaitlistEntry,
    WaitlistKind,
    WaitlistOffer,
    WaitlistState,
)
from scheduling.selectors import waitlist as selectors
from scheduling.services import waitlist as services
from scheduling.services.booking import BookingError, appointment_status_set, closed_group_refusal
from scheduling.views.booking import booking_patient


def patient_label(request: ClinicRequest, patient: Patient) -> str:
    return selectors.patient_label(request.clinic, patient, may_see_blocked(request.membership))


def wants(entry: WaitlistEntry, zone: ZoneInfo) -> str:
    """What the entry waits for, in a line."""
    if entry.kind == WaitlistKind.SLOT and entry.slot is not None:
        slot = entry.slot
        who = slot.session.practitioner.name if slot.session.practitioner else "Clinic-wide"
        what = slot.slot_type.name if slot.slot_type else "Slot"
        return f"{what} with {who}, {slot.starts_at.astimezone(zone):%a %-d %b %Y %H:%M}"
    if entry.kind == WaitlistKind.SERIES and entry.allocation is not None:
        allocation = entry.allocation
        who = f" with {allocation.practitioner.name}" if allocation.practitioner else ""
        when = (
            "any occurrence"
            if entry.scope == SeriesScope.ANY
            else f"from {entry.from_date:%a %-d %b %Y}"
            if entry.from_date
            else ""
        )
        return f"Group “{allocation.template.name}”{who} ({entry.slot_type.name if entry.slot_type else ''}), {when}"
    parts = [entry.practitioner.name if entry.practitioner else "Anyone"]
    parts.append(entry.slot_type.name if entry.slot_type else "any type")
    days = entry.weekday_numbers
    parts.append(", ".join(WEEKDAY_NAMES[d - 1][:3] for d in days) if days else "any day")
    if entry.time_from or entry.time_until:
        start = f"{entry.time_from:%H:%M}" if entry.time_from else "start of day"
        end = f"{entry.time_until:%H:%M}" if entry.time_until else "end of day"
        parts.append(f"{start}–{end}")
    return " · ".join(parts)


@require_GET
def waitlist_list(request: ClinicRequest) -> HttpResponse:
    """Everyone waiting, in the order freed places are offered."""
    waitlist_keeper(request)
    state = request.GET.get("state", "open")
    kind = request.GET.get("kind", "")
    practitioner = next(
        (p for p in manageable_practitioners(request) if str(p.public_id) == request.GET.get("practitioner")), None
    )
    entries = list(
        selectors.entries_list(
            clinic=request.clinic,
            membership=request.membership,
            state=state,
            kind=kind,
            practitioner_id=practitioner.pk if practitioner else None,
        )[:500]
    )
    zone = request.viewer_zone
    morning, first_at = selectors.offers_waiting_for_morning(request.clinic, timezone.now())
    rows = [
        {"entry": e, "label": patient_label(request, e.patient), "wants": wants(e, zone), "place": i}
        for i, e in enumerate(entries, start=1)
    ]
    context = {
        "rows": rows,
        "state": state,
        "kind": kind,
        "kinds": WaitlistKind.choices,
        "states": [("open", "Waiting or offered"), *WaitlistState.choices[2:]],
        "practitioners": manageable_practitioners(request),
        "practitioner": practitioner,
        "zone": zone.key,
        "is_admin": request.membership.is_admin,
        "morning": morning,
        "morning_at": first_at,
    }
    return render(request, "scheduling/waitlist.html", context)


@require_http_methods(["GET", "POST"])
def waitlist_add(request: ClinicRequest) -> HttpResponse:
    """Add a patient to the waiting list: find them, then say what they wait for."""
    waitlist_keeper(request)
    slot_id = request.POST.get("slot") or request.GET.get("slot")
    slot = slot_for_member(request, slot_id) if slot_id else None
    patient_id = request.POST.get("patient") or request.GET.get("patient")
    context: dict[str, Any] = {"slot": slot, "zone": request.viewer_zone.key}
    if slot is not None:
        context["closed_since"] = selectors.group_closed_to_new(request.clinic, slot.session, timezone.now())
    if not patient_id:
        query = request.GET.get("q", "").strip()
        context |= {
            "query": query,
            "results": patient_search(clinic=request.clinic, membership=request.membership, query=query)
            if query
            else [],
        }
        return render(request, "scheduling/waitlist_add.html", context)
    patient = booking_patient(request, patient_id)
    form = WaitlistEntryForm(request.POST or None, clinic=request.clinic, slot=slot)
    context |= {"patient": patient, "label": patient_label(request, patient), "form": form}
    if request.method == "POST" and form.is_valid():
        try:
            entry = services.waitlist_add(
                clinic=request.clinic, actor=request.user, membership=request.membership, data=form.entry_data(patient)
            )
        except BookingError as error:
            context["refusal"] = error.messages[0]
        else:
            messages.success(request, f"{context['label']} is on the waiting list.")
            return redirect("scheduling:waitlist-entry", entry=entry.public_id)
    status = 422 if request.method == "POST" else 200
    return render(request, "scheduling/waitlist_add.html", context, status=status)


@require_http_methods(["GET", "POST"])
def waitlist_entry(request: ClinicRequest, entry: UUID) -> HttpResponse:
    """One entry: what it waits for, its offers, and the free places it could take now (offer, or book)."""
    obj = entry_for_member(request, entry)
    now = timezone.now()
    error = ""
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action in ("up", "down"):
                services.waitlist_move(clinic=request.clinic, actor=request.user, entry=obj, up=action == "up")
                return redirect(reverse("scheduling:waitlist") + f"#entry-{obj.public_id}")
            slot = slot_for_member(request, request.POST.get("slot"))
            if action == "offer":
                services.offer_by_hand(
                    clinic=request.clinic,
                    actor=request.user,
                    membership=request.membership,
                    entry=obj,
                    slot=slot,
                    now=now,
                )
                messages.success(request, "Offered: the place is held and the patient has been sent the offer.")
            elif action == "book":
                services.waitlist_book(
                    clinic=request.clinic,
                    actor=request.user,
                    membership=request.membership,
                    entry=obj,
                    slot=slot,
                    closed_override=request.POST.get("closed_override", ""),
                )
                messages.success(request, "Booked from the waiting list.")
            else:
                error = "Choose what to do."
        except BookingError as refusal:
            error = refusal.messages[0]
        if not error:
            return redirect("scheduling:waitlist-entry", entry=obj.public_id)
        obj = entry_for_member(request, entry)
    zone = request.viewer_zone
    offers = list(
        WaitlistOffer.objects.for_clinic(request.clinic)
        .filter(entry=obj)
        .select_related("hold", "slot__session__practitioner", "slot__slot_type", "offered_by")
        .order_by("-created_at", "-id")
    )
    is_open = obj.state in (WaitlistState.WAITING, WaitlistState.OFFERED)
    candidates = selectors.candidates_for(request.clinic, obj, now) if is_open else []
    may_override = request.membership.has_permission(NamedPermission.MANAGE_APPOINTMENTS)
    closed = {
        c.slot.pk: closed_group_refusal(request.clinic, c.slot, obj.patient_id, now=now)
        for c in candidates
        if c.slot.session.closed_session and c.slot.session.closed_enforced
    }
    context = {
        "entry": obj,
        "label": patient_label(request, obj.patient),
        "wants": wants(obj, zone),
        "offers": offers,
        "candidates": [{"c": c, "closed": closed.get(c.slot.pk, "")} for c in candidates],
        "is_open": is_open,
        "may_override": may_override,
        "error": error,
        "zone": zone.key,
        "now": now,
    }
    return render(request, "scheduling/waitlist_entry.html", context, status=422 if error else 200)


@require_http_methods(["GET", "POST"])
def waitlist_remove(request: ClinicRequest, entry: UUID) -> HttpResponse:
    """Take an entry off the list (asked first); an offer it has out is withdrawn."""
    obj = entry_for_member(request, entry)
    error = ""
    if request.method == "POST":
        try:
            services.waitlist_remove(clinic=request.clinic, actor=request.user, entry=obj)
        except BookingError as refusal:
            error = refusal.messages[0]
        else:
            messages.success(request, f"{patient_label(request, obj.patient)} is off the waiting list.")
            return redirect("scheduling:waitlist")
    context = {"entry": obj, "label": patient_label(request, obj.patient), "wants": wants(obj, request.viewer_zone)}
    context["error"] = error
    return render(request, "scheduling/waitlist_remove.html", context, status=422 if error else 200)


@admin_required
@require_http_methods(["GET", "POST"])
def waitlist_settings(request: ClinicRequest) -> HttpResponse:
    """The clinic's rules for offering freed places."""
    current = selectors.rules_for(request.clinic.pk)
    form = WaitlistRulesForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        services.rules_save(clinic=request.clinic, actor=request.user, rules=form.save(commit=False))
        messages.success(request, "Saved the waiting list's rules.")
        return redirect("scheduling:waitlist-settings")
    status = 422 if request.method == "POST" else 200
    return render(request, "scheduling/waitlist_settings.html", {"form": form}, status=status)


# --- The roster -------------------------------------------------------------------------------------------------


def roster_context(request: ClinicRequest, slot_id: UUID) -> dict[str, Any]:
    waitlist_keeper(request)
    slot = slot_for_member(request, slot_id)
    first = None
    if request.GET.get("from"):
        try:
            first = dt.date.fromisoformat(request.GET["from"])
        except ValueError:
            first = None
    roster = selectors.group_roster(
        clinic=request.clinic, membership=request.membership, slot=slot, now=timezone.now(), first=first
    )
    return {"roster": roster, "slot": slot, "session": slot.session, "zone": request.viewer_zone.key}


@require_GET
def roster(request: ClinicRequest, slot: UUID) -> HttpResponse:
    """A group's roster: its patients by occurrence, attendance in one grid, places and waiting."""
    context = roster_context(request, slot)
    return render(request, "scheduling/roster.html", context)


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


@require_GET
def roster_csv(request: ClinicRequest, slot: UUID) -> HttpResponse:
    waitlist_keeper(request)
    obj = slot_for_member(request, slot)
    table = selectors.roster_table(clinic=request.clinic, membership=request.membership, slot=obj)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="roster-{obj.session.date}.csv"'
    csv.writer(response).writerows([[_cell(str(value)) for value in row] for row in table])
    return response


ATTENDANCE = {AppointmentStatus.ARRIVED, AppointmentStatus.DID_NOT_ATTEND, AppointmentStatus.BOOKED}


@require_http_methods(["GET", "POST"])
def roster_attendance(request: ClinicRequest, slot: UUID) -> HttpResponse:
    """Mark one patient arrived or did not attend on one date (or back to booked), from the roster's grid (a GET
    shows the roster)."""
    if request.method == "GET":
        return roster(request, slot)
    waitlist_keeper(request)
    appointment = appointment_for_member(request, request.POST.get("appointment", ""))  # type: ignore[arg-type]
    status = request.POST.get("status", "")
    back = reverse("scheduling:roster", args=[slot]) + (
        f"?from={request.POST['from']}" if request.POST.get("from") else ""
    )
    if status not in ATTENDANCE:
        messages.error(request, "Choose arrived or did not attend.")
        return redirect(back)
    try:
        appointment_status_set(clinic=request.clinic, actor=request.user, appointment=appointment, status=status)
    except BookingError as refusal:
        messages.error(request, refusal.messages[0])
    if request.htmx:
        return render(request, "scheduling/roster.html#grid", roster_context(request, slot))
    return redirect(back)
