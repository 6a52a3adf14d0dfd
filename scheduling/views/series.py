"""Create Recurring Series, from Book Appointment: Recurrence Settings, Preview Recurrence (a card per
occurrence, with Remove), Review and Book Appointment; then placing a series' drafts later, from Edit
Appointment or the patient's appointments. Every step is a form post that works as a page or in the popup."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from clinic.access import ClinicRequest
from clinic.htmx import page_or_fragment
from patients.models import Patient
from scheduling.access import draft_for_member, slot_for_member
from scheduling.forms import BookingForm, DraftDateForm, RecurrenceForm
from scheduling.hours import clock_change_note
from scheduling.models import Slot
from scheduling.recurrence import RecurrenceRule, compact_utc
from scheduling.selectors import booking as booking_selectors
from scheduling.selectors import series as selectors
from scheduling.selectors.series import OccurrenceMatch
from scheduling.services.booking import BookingError
from scheduling.services.series import (
    SeriesBookingError,
    SeriesRequest,
    draft_cancel,
    draft_place,
    series_book,
    series_plan_from_review,
)
from scheduling.views.booking import book, book_context, booking_form, booking_patient, done, who_and_when

occurrence_key = compact_utc  # an occurrence's name in forms: its UTC instant


@dataclass(frozen=True)
class Card:
    match: OccurrenceMatch
    key: str
    failed: bool = False


@require_http_methods(["GET", "POST"])
def series_new(request: ClinicRequest, slot: UUID) -> HttpResponse:
    """Create Recurring Series for the patient being booked into `slot`."""
    obj = slot_for_member(request, slot)
    patient_id = request.POST.get("patient") or request.GET.get("patient")
    if not patient_id:
        # A series begins, like any booking, with finding the patient.
        return book(request, slot)
    patient = booking_patient(request, patient_id)
    session = obj.session
    zone = ZoneInfo(session.time_zone)
    local = obj.starts_at.astimezone(zone)
    action = request.POST.get("action", "settings")
    form = booking_form(request, obj, patient)
    recurrence = RecurrenceForm(
        request.POST if action != "settings" else None,
        start=local.date(),
        time=local.time().replace(tzinfo=None),
        prefix="r",
    )
    removed = set(request.POST.getlist("removed"))
    if action.startswith("remove:"):
        removed.add(action.removeprefix("remove:"))
    elif action == "restore":
        removed = set()
    drafts_ok = request.POST.get("drafts") == "1" or action == "continue"
    context = book_context(request, obj) | {
        "patient": patient,
        "form": form,
        "recurrence": recurrence,
        "series_zone": session.time_zone,
        "step": "settings",
        "removed": sorted(removed),
        "drafts_ok": drafts_ok,
    }
    if session.practitioner is None or obj.slot_type is None:
        context["refusal"] = "A series is booked into a practitioner's sessions of one appointment type."
    elif action != "settings" and form.is_valid() and recurrence.is_valid() and recurrence.rule is not None:
        context |= series_step(request, obj, patient, form, recurrence.rule, removed, drafts_ok, action)
        if context.get("series") is not None:
            series, booked, drafts = context["series"], context["booked"], context["drafts_saved"]
            first_at = context["first_at"] or series.created_at
            who, when = who_and_when(request, patient, first_at)
            message = f"Booked {booked} appointment{'s' if booked != 1 else ''} of the series for {who}, from {when}"
            message += f"; {drafts} saved as draft{'s' if drafts != 1 else ''}." if drafts else "."
            return done(request, message, first_at, obj.public_id if first_at == obj.starts_at else None)
    template = page_or_fragment(request, "scheduling/series.html", "tip")
    invalid = action != "settings" and context["step"] == "settings"
    return render(request, template, context, status=422 if invalid or context.get("refusal") else 200)


def series_step(
    request: ClinicRequest,
    slot: Slot,
    patient: Patient,
    form: BookingForm,
    rule: RecurrenceRule,
    removed: set[str],
    drafts_ok: bool,
    action: str,
) -> dict[str, Any]:
    """Preview, Review or Book: the cards of the kept occurrences, and the booking when asked."""
    session = slot.session
    practitioner = session.practitioner
    assert practitioner is not None  # series_new refuses a clinic-wide session
    zone = ZoneInfo(session.time_zone)
    kept = [moment for moment in rule.occurrences(zone) if occurrence_key(moment) not in removed]
    slot_type = form.cleaned_data["slot_type"]
    matches = selectors.series_preview(
        clinic=request.clinic, practitioner=practitioner, slot_type=slot_type, occurrences=kept
    )
    cards = [Card(match=m, key=occurrence_key(m.starts_at)) for m in matches]
    unmatched = [c for c in cards if not c.match.bookable]
    context: dict[str, Any] = {
        "step": "preview",
        "cards": cards,
        "unmatched": len(unmatched),
        "matched": len(cards) - len(unmatched),
        "summary": rule.summary(),
        "skipped_months": rule.skipped_months(),
        # Dates whose time the clocks jump over or show twice (on the location's clock), and what happens.
        "clock_notes": [
            note
            for moment in rule.local_occurrences()
            if occurrence_key(moment.replace(tzinfo=zone).astimezone(dt.UTC)) not in removed
            and (note := clock_change_note(moment.date(), moment.time(), zone))
        ],
        "booking": form.booking_request(slot=slot, patient=patient),
    }
    if not cards:
        context["refusal"] = "Every occurrence was removed. Restore them or change the settings."
        return context
    if action in ("review", "continue") and (drafts_ok or not unmatched):
        context["step"] = "review"
    if action != "book":
        return context
    # Book exactly what was reviewed (the slots named by the review form, drafts for the rest), even where
    # the calendar has changed since: a place taken meanwhile then fails the booking, naming its card.
    reviewed = dict(value.partition("=")[::2] for value in request.POST.getlist("taken"))
    by_id = selectors.chosen_slots(
        clinic=request.clinic,
        public_ids=list(reviewed.values()),
        practitioner=practitioner,
        slot_type=slot_type,
    )
    try:
        plan = series_plan_from_review(
            occurrences=[(card.key, card.match.starts_at) for card in cards],
            reviewed=reviewed,
            slots=by_id,
            drafts_ok=drafts_ok,
        )
        series = series_book(
            clinic=request.clinic,
            actor=request.user,
            membership=request.membership,
            request=SeriesRequest(
                booking=context["booking"],
                practitioner=practitioner,
                rule=rule,
                time_zone=session.time_zone,
                plan=plan,
            ),
        )
    except SeriesBookingError as error:
        failed = occurrence_key(error.starts_at)
        context["cards"] = [Card(match=c.match, key=c.key, failed=c.key == failed) for c in cards]
        context |= {"step": "preview", "refusal": error.messages[0]}
        return context
    except BookingError as error:
        context |= {"step": "preview", "refusal": error.messages[0]}
        return context
    booked = [p for p in plan if p.slot is not None]
    return context | {
        "series": series,
        "booked": len(booked),
        "drafts_saved": len(plan) - len(booked),
        "first_at": booked[0].starts_at if booked else None,
    }


@require_http_methods(["GET", "POST"])
def draft_detail(request: ClinicRequest, draft: UUID) -> HttpResponse:
    """Place a draft: enter a new date, click a slot and Use this slot, Review, Confirm edits. Or cancel it."""
    obj = draft_for_member(request, draft)
    series = obj.series
    zone = ZoneInfo(series.time_zone)
    action = request.POST.get("action", "")
    date_form = DraftDateForm(
        request.GET if "date" in request.GET else None,
        initial={"date": obj.starts_at.astimezone(zone).date()},
    )
    context: dict[str, Any] = {
        "draft": obj,
        "series": series,
        "date_form": date_form,
        "zone": request.viewer_zone.key,
        "step": "date",
        "error": "",
        "slots": None,
    }
    if not obj.is_open:
        context["error"] = "This draft has already been placed or cancelled."
    elif request.method == "POST":
        chosen = booking_selectors.slot_details(clinic=request.clinic, slot_public_id=request.POST.get("slot") or None)
        try:
            if action == "cancel":
                draft_cancel(clinic=request.clinic, actor=request.user, draft=obj)
                return done(request, "The draft was cancelled.", obj.starts_at)
            if action == "cancel-ask":
                context["step"] = "cancel"
            elif chosen is None:
                context["error"] = "Choose a slot for this draft."
            elif action == "confirm":
                appointment = draft_place(
                    clinic=request.clinic, actor=request.user, membership=request.membership, draft=obj, slot=chosen
                )
                who, when = who_and_when(request, obj.series.patient, appointment.starts_at)
                return done(
                    request, f"Placed {who}'s draft: booked on {when}.", appointment.starts_at, chosen.public_id
                )
            else:
                context |= {"step": "review", "slot": chosen}
        except BookingError as refusal:
            context["error"] = refusal.messages[0]
    elif date_form.is_bound and date_form.is_valid():
        context["slots"] = booking_selectors.slots_on_date(
            clinic=request.clinic,
            practitioner=series.practitioner,
            slot_type=series.slot_type,
            day=date_form.cleaned_data["date"],
            zone=zone,
            not_booked=series.patient,
        )
    template = page_or_fragment(request, "scheduling/draft.html", "tip")
    bad = bool(context["error"]) or (date_form.is_bound and not date_form.is_valid())
    return render(request, template, context, status=422 if bad else 200)
