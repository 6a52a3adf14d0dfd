"""Setup screens: slot types, session templates and the session builder."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from clinic import services as clinic_services
from clinic.access import ClinicRequest, permission_required
from clinic.htmx import page_or_fragment
from clinic.models import NamedPermission
from clinic.numbers import whole_number
from sessions_setup import builder, selectors, services
from sessions_setup.access import slot_type_for_manager, template_for_manager
from sessions_setup.builder import BuilderError, BuilderSlot
from sessions_setup.forms import SessionTemplateForm, SlotTypeForm
from sessions_setup.models import SlotType

manage_sessions = permission_required(NamedPermission.MANAGE_SESSIONS)


@manage_sessions
@require_GET
def setup_index(request: ClinicRequest) -> HttpResponse:
    return redirect("sessions_setup:templates")


# --- Slot types -----------------------------------------------------------------------


@manage_sessions
@require_GET
def slot_type_list(request: ClinicRequest) -> HttpResponse:
    slot_types = list(selectors.slot_types_list(clinic=request.clinic))
    default = selectors.default_slot_type(slot_types)
    return render(request, "sessions_setup/slot_types.html", {"slot_types": slot_types, "default": default})


@manage_sessions
@require_http_methods(["GET", "POST"])
def slot_type_edit(request: ClinicRequest, slot_type: UUID | None = None) -> HttpResponse:
    instance = slot_type_for_manager(request, slot_type) if slot_type else None
    form = SlotTypeForm(
        request.POST or None,
        instance=instance,
        clinic=request.clinic,
        used_colours=selectors.used_colours(clinic=request.clinic),
    )
    if request.method == "POST" and form.is_valid():
        saved = clinic_services.tenant_object_save(clinic=request.clinic, actor=request.user, form=form)
        messages.success(request, f"Slot type “{saved}” saved.")
        return redirect("sessions_setup:slot-types")
    return render(request, "sessions_setup/slot_type_form.html", {"form": form, "object": instance})


# --- Session templates: the list with Save, Reset and Sort ------------------------------


@manage_sessions
@require_http_methods(["GET", "POST"])
def template_list(request: ClinicRequest) -> HttpResponse:
    saved = list(selectors.session_templates_list(clinic=request.clinic))
    action = request.POST.get("action", "")
    error = None
    try:
        order = services.session_templates_arrange(
            saved=saved, posted=request.POST.getlist("order") if request.method == "POST" else None, action=action
        )
    except services.TemplateListChanged as changed:
        messages.error(request, changed.messages[0])
        return redirect("sessions_setup:templates")
    if action == "save":
        try:
            services.session_templates_reorder(
                clinic=request.clinic, actor=request.user, ordered_ids=[str(t.public_id) for t in order]
            )
        except ValidationError as exc:
            error = exc.messages[0]
        else:
            messages.success(request, "The session order is saved.")
            if request.htmx:
                return HttpResponseClientRedirect(reverse("sessions_setup:templates"))
            return redirect("sessions_setup:templates")
    context = {
        "templates": order,
        "unsaved": [t.pk for t in order] != [t.pk for t in saved],
        "error": error,
    }
    template_name = page_or_fragment(request, "sessions_setup/templates.html", "template-list")
    return render(request, template_name, context)


# --- The builder ----------------------------------------------------------------------


@manage_sessions
@require_http_methods(["GET", "POST"])
def template_edit(request: ClinicRequest, template: UUID | None = None) -> HttpResponse:
    clinic = request.clinic
    instance = template_for_manager(request, template) if template else None
    slot_types = {t.pk: t for t in selectors.slot_types_list(clinic=clinic)}
    form_kwargs: dict[str, Any] = {
        "instance": instance,
        "clinic": clinic,
        "used_colours": selectors.used_colours(clinic=clinic),
    }
    error = None
    rounded = ""
    show_errors = False

    if request.method == "GET":
        form = SessionTemplateForm(**form_kwargs)
        if instance is not None:
            slots: builder.Slots = tuple(BuilderSlot(s.slot_type_id, s.length_minutes) for s in instance.slots.all())
        else:
            first = next((t for t in slot_types.values() if t.is_active), None)
            slots = (BuilderSlot(first.pk, first.default_length_minutes),) if first else ()
        selected: list[int] = []
    else:
        form = SessionTemplateForm(request.POST, **form_kwargs)
        action = request.POST.get("action", "")
        chosen = (whole_number(i) for i in request.POST.getlist("selected"))
        selected = [i for i in chosen if i is not None]
        try:
            slots = builder.decode(request.POST.get("slots", ""))
        except BuilderError as exc:
            error, slots = str(exc), ()
        else:
            try:
                slots = builder.apply(
                    action,
                    slots,
                    selected,
                    type_lengths={t.pk: t.default_length_minutes for t in slot_types.values() if t.is_active},
                    extend_count=request.POST.get("extend_count", ""),
                    minutes=request.POST.get("duration", ""),
                    bulk_type=request.POST.get("bulk_type", ""),
                )
            except BuilderError as exc:
                error = str(exc)
            else:
                rounded = _rounded_note(action, request.POST.get("duration", ""), builder.duration(slots))
        if action == "save" and error is None:
            show_errors = True
            if form.is_valid():
                try:
                    saved = services.session_template_save(clinic=clinic, actor=request.user, form=form, slots=slots)
                except ValidationError as exc:
                    error = exc.messages[0]
                else:
                    target = reverse("sessions_setup:templates")
                    if instance is not None and saved.allocations.exists():
                        # On the rota already: its sessions keep their slots until the change is applied to them.
                        target = reverse("scheduling:template-apply", args=[saved.public_id])
                        messages.success(
                            request,
                            f"Session “{saved}” saved. Sessions already on the rota keep their old slots: "
                            "preview applying the change to them below.",
                        )
                    else:
                        messages.success(request, f"Session “{saved}” saved.")
                    if request.htmx:
                        return HttpResponseClientRedirect(target)
                    return redirect(target)
        selected = [i for i in selected if i < len(slots)]

    nominal_start = form["nominal_start"].value() or "08:00"
    rows = _builder_rows(slots, selected, slot_types, nominal_start)
    context = {
        "form": form,
        "object": instance,
        "rows": rows,
        "state": builder.encode(slots),
        "duration": builder.duration(slots),
        "choosable_types": [t for t in slot_types.values() if t.is_active],
        "error": error,
        "rounded": rounded,
        "hide_errors": not show_errors,
    }
    template_name = page_or_fragment(request, "sessions_setup/builder.html", "builder")
    return render(request, template_name, context)


def _rounded_note(action: str, asked: str, minutes: int) -> str:
    """When a Duration is not a whole number of slots, say what the session became (183 → 180)."""
    wanted = whole_number(asked) if action == "duration" else None
    if wanted is None or wanted == minutes:
        return ""
    return f"{wanted} minutes is not a whole number of these slots: the session is {minutes} minutes."


def _builder_rows(
    slots: builder.Slots, selected: list[int], slot_types: dict[int, SlotType], nominal_start: Any
) -> list[dict[str, Any]]:
    start = _parse_time(nominal_start)
    times = builder.start_times(start, slots)
    chosen = set(selected)
    return [
        {
            "index": i,
            "slot": s,
            "type": slot_types.get(s.slot_type_id) if s.slot_type_id else None,
            "start": times[i],
            "selected": i in chosen,
        }
        for i, s in enumerate(slots)
    ]


def _parse_time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        return dt.time(8, 0)
