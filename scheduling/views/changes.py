"""Changing the book after it is built: edit one dated session, apply a template change to the rota, take sessions
out (and resume them), and the displaced patients' worklist. Every change is previewed (the sessions slot by slot,
the appointments displaced) before it is made."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from clinic.access import ClinicRequest, permission_required
from clinic.models import NamedPermission
from scheduling.access import require_displaced_handler, session_for_manager
from scheduling.forms import DisplacedActionForm, SessionEditForm, TakeOutForm, TemplateApplyForm
from scheduling.models import DisplacedState, SessionOut
from scheduling.selectors import changes as selectors
from scheduling.services import changes as services
from sessions_setup.access import template_for_manager

manage_sessions = permission_required(NamedPermission.MANAGE_SESSIONS)
HANDLED_DAYS = 7  # the worklist shows what was done in the last week, and by whom
GROUP_DATES = 8  # dates listed per group of alike sessions in a preview


def _after_change(request: ClinicRequest, applied: services.Applied, what: str, day: dt.date | None) -> HttpResponse:
    if applied.displaced:
        messages.success(
            request,
            f"{what} {applied.displaced} appointment{'s' if applied.displaced != 1 else ''} "
            "lost their place: they are on the worklist below.",
        )
        return redirect("scheduling:displaced")
    messages.success(request, f"{what} No booked appointment was affected.")
    if day is not None:
        return redirect(f"{reverse('scheduling:day-sessions')}?date={day:%Y-%m-%d}")
    return redirect("scheduling:rota")


def _preview_context(preview: selectors.ChangePreview | None, *, single: bool) -> dict[str, Any]:
    """The preview's groups of alike sessions, each with its changes in words and which sessions they are."""
    if preview is None:
        return {"preview": None, "groups": [], "more_displaced": 0, "single": single}
    groups = []
    for lines, previews in preview.groups():
        if single:
            label = f"{previews[0].session.name}, {previews[0].session.date:%a %-d %b %Y}"
        else:
            dates = ", ".join(
                f"{p.session.date:%a %-d %b} ({p.session.practitioner or 'whole clinic'})"
                for p in previews[:GROUP_DATES]
            )
            more = f" and {len(previews) - GROUP_DATES} more" if len(previews) > GROUP_DATES else ""
            label = f"{len(previews)} session{'s' if len(previews) != 1 else ''}: {dates}{more}"
        groups.append((lines, label))
    return {
        "preview": preview,
        "groups": groups,
        "more_displaced": preview.displaced_total - len(preview.displaced),
        "single": single,
    }


def _error(exc: Exception) -> str:
    return exc.messages[0] if isinstance(exc, ValidationError) else str(exc)


@manage_sessions
@require_http_methods(["GET", "POST"])
def session_edit(request: ClinicRequest, session: UUID) -> HttpResponse:
    obj = session_for_manager(request, session)
    zone = ZoneInfo(obj.time_zone)
    slots = selectors.session_slots(clinic=request.clinic, session=obj)
    form = SessionEditForm(request.POST or None, clinic=request.clinic, session=obj, slots=slots, zone=zone)
    preview, error = None, ""
    if obj.out_state == SessionOut.CANCELLED:
        error = "This session is cancelled; resume it before editing."
    elif request.method == "POST" and form.is_valid():
        edit = form.edit()
        try:
            if request.POST.get("action") == "apply":
                applied = services.session_edit(clinic=request.clinic, actor=request.user, session=obj, edit=edit)
                return _after_change(request, applied, f"Saved “{obj.name}” on {obj.date:%a %-d %b}.", obj.date)
            preview = services.session_edit_preview(
                clinic=request.clinic, membership=request.membership, session=obj, edit=edit
            )
        except (services.ChangeError, ValidationError) as exc:
            error = _error(exc)
    context = {"session": obj, "form": form, "error": error, "zone": obj.time_zone}
    context |= _preview_context(preview, single=True)
    return render(request, "scheduling/session_edit.html", context, status=422 if error or form.errors else 200)


@manage_sessions
@require_http_methods(["GET", "POST"])
def template_apply(request: ClinicRequest, template: UUID) -> HttpResponse:
    obj = template_for_manager(request, template)
    form = TemplateApplyForm(request.POST or None, clinic=request.clinic, template=obj)
    preview, error = None, ""
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        chosen: dict[str, Any] = {
            "template": obj,
            "first_date": data["first_date"],
            "last_date": data["last_date"],
            "allocations": [a.pk for a in data["allocations"]],
        }
        try:
            if request.POST.get("action") == "apply":
                applied = services.template_apply(clinic=request.clinic, actor=request.user, **chosen)
                return _after_change(
                    request, applied, f"“{obj.name}” applied to {applied.sessions} session(s) on the rota.", None
                )
            preview = services.template_apply_preview(
                clinic=request.clinic,
                membership=request.membership,
                **chosen,
            )
        except (services.ChangeError, ValidationError) as exc:
            error = _error(exc)
    context: dict[str, Any] = {"template": obj, "form": form, "error": error}
    context |= _preview_context(preview, single=False)
    return render(request, "scheduling/template_apply.html", context, status=422 if error or form.errors else 200)


@manage_sessions
@require_http_methods(["GET", "POST"])
def take_out(request: ClinicRequest) -> HttpResponse:
    """Take a practitioner's (or a location's) sessions out for a date or dates: suspend or cancel."""
    initial: dict[str, Any] = {"first_date": request.clinic.today() + dt.timedelta(days=1)}
    for name in ("practitioner", "location", "first_date"):
        if request.GET.get(name):
            initial[name] = request.GET[name]
    form = TakeOutForm(request.POST or None, clinic=request.clinic, initial=initial)
    preview, error = None, ""
    if request.method == "POST" and form.is_valid():
        take = form.take_out()
        try:
            if request.POST.get("action_step") == "apply":
                applied = services.sessions_take_out(clinic=request.clinic, actor=request.user, take=take)
                verb = "Suspended" if take.action == SessionOut.SUSPENDED else "Cancelled"
                return _after_change(
                    request,
                    applied,
                    f"{verb} {applied.sessions} session{'s' if applied.sessions != 1 else ''}.",
                    take.first_date,
                )
            preview = services.take_out_preview(clinic=request.clinic, membership=request.membership, take=take)
            if not preview.sessions:
                error = "There are no sessions to take out on those dates."
        except (services.ChangeError, ValidationError) as exc:
            error = _error(exc)
    context = {"form": form, "preview": preview, "error": error}
    return render(request, "scheduling/take_out.html", context, status=422 if error or form.errors else 200)


@manage_sessions
@require_http_methods(["GET", "POST"])
def session_resume(request: ClinicRequest, session: UUID) -> HttpResponse:
    """Put a taken-out session back in the book (a confirmation page, then the button's POST)."""
    obj = session_for_manager(request, session)
    if request.method == "GET":
        return render(request, "scheduling/session_resume.html", {"session": obj, "zone": obj.time_zone})
    try:
        services.sessions_resume(clinic=request.clinic, actor=request.user, sessions=[obj])
    except services.ChangeError as exc:
        messages.error(request, _error(exc))
    else:
        messages.success(request, f"“{obj.name}” is back in the book: its free slots can be booked again.")
    return redirect(f"{reverse('scheduling:day-sessions')}?date={obj.date:%Y-%m-%d}")


def _dealt_with_elsewhere(count: int) -> str:
    return f" {count} {'was' if count == 1 else 'were'} already dealt with." if count > 0 else ""


@require_http_methods(["GET", "POST"])
def displaced(request: ClinicRequest) -> HttpResponse:
    """The displaced patients: a proposal each, and rebook, cancel (telling them) or leave for a phone call."""
    require_displaced_handler(request)
    now = timezone.now()
    rows = selectors.worklist(
        clinic=request.clinic, membership=request.membership, handled_since=now - dt.timedelta(days=HANDLED_DAYS)
    )
    waiting = [row for row in rows if row.waiting]
    # Every row shown may be ticked, handled ones too: a colleague may have dealt with a row since this member's page
    # was drawn (or at the same moment), and that is said, never a form error.
    form = DisplacedActionForm(request.POST or None, rows=[(str(row.public_id), str(row.public_id)) for row in rows])
    if request.method == "POST" and form.is_valid():
        chosen_ids = set(form.cleaned_data["rows"])
        chosen = [row.id for row in waiting if str(row.public_id) in chosen_ids]
        action = form.cleaned_data["action"]
        if action == "rebook":
            outcome = services.displaced_rebook(
                clinic=request.clinic, actor=request.user, membership=request.membership, rows=chosen, now=now
            )
            text = f"Rebooked {outcome.done} patient{'s' if outcome.done != 1 else ''}; each is told the new time."
            if outcome.left:
                text += f" No free place for {len(outcome.left)}: {', '.join(outcome.left[:5])}"
                text += "…" if len(outcome.left) > 5 else "."
            text += _dealt_with_elsewhere(len(chosen_ids) - outcome.done - len(outcome.left))
            (messages.warning if outcome.left else messages.success)(request, text)
        elif action == "cancel":
            outcome = services.displaced_cancel(
                clinic=request.clinic,
                actor=request.user,
                rows=chosen,
                reason=form.cleaned_data["reason"],
                category=form.cleaned_data["category"] or "clinician",
            )
            messages.success(
                request,
                f"Cancelled {outcome.done} appointment{'s' if outcome.done != 1 else ''}; "
                "each patient is asked to rebook." + _dealt_with_elsewhere(len(chosen_ids) - outcome.done),
            )
        else:
            outcome = services.displaced_to_contact(clinic=request.clinic, actor=request.user, rows=chosen)
            messages.success(
                request, f"{outcome.done} marked “to contact”." + _dealt_with_elsewhere(len(chosen_ids) - outcome.done)
            )
        return redirect("scheduling:displaced")
    proposals = selectors.worklist_proposals(clinic=request.clinic, rows=waiting, now=now)
    context = {
        "waiting": [(row, proposals.get(row.id)) for row in waiting],
        "handled": [row for row in rows if not row.waiting],
        "form": form,
        "states": DisplacedState,
        "proposed": sum(1 for row in waiting if row.id in proposals),
    }
    return render(request, "scheduling/displaced.html", context, status=422 if form.errors else 200)
