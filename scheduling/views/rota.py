"""The rota: allocating session templates to practitioners on dates, removing them, and the sessions of a day."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import ClinicRequest, permission_required
from clinic.htmx import page_or_fragment
from clinic.models import NamedPermission
from scheduling.access import allocation_for_manager
from scheduling.forms import AllocationForm
from scheduling.models import Slot
from scheduling.selectors import rota as selectors
from scheduling.services import rota as services

manage_sessions = permission_required(NamedPermission.MANAGE_SESSIONS)
PREVIEW_ROWS = 60


@require_GET
def day_sessions(request: ClinicRequest) -> HttpResponse:
    """Reception view: every session of a day with its free and booked counts."""
    today = request.clinic.today()
    try:
        day = dt.date.fromisoformat(request.GET.get("date", "")) if request.GET.get("date") else today
    except ValueError:
        messages.error(request, "That date was not understood; showing today.")
        day = today
    sessions = selectors.sessions_of_day(clinic=request.clinic, date=day)
    context = {
        "day": day,
        "today": today,
        "previous": day - dt.timedelta(days=1),
        "next": day + dt.timedelta(days=1),
        "sessions": sessions,
        "may_manage": request.membership.has_permission(NamedPermission.MANAGE_SESSIONS),
    }
    return render(request, page_or_fragment(request, "scheduling/day_sessions.html", "day-grid"), context)


@manage_sessions
@require_GET
def rota(request: ClinicRequest) -> HttpResponse:
    allocations = selectors.allocations_list(clinic=request.clinic, today=request.clinic.today())
    return render(request, "scheduling/rota.html", {"allocations": allocations})


@manage_sessions
@require_http_methods(["GET", "POST"])
def allocate(request: ClinicRequest) -> HttpResponse:
    clinic = request.clinic
    form = AllocationForm(request.POST or None, clinic=clinic)
    plan = None
    error = None
    if request.method == "POST" and form.is_valid():
        allocation_request = form.allocation_request()
        try:
            if request.POST.get("action") == "allocate":
                allocation = services.allocation_create(clinic=clinic, actor=request.user, request=allocation_request)
                count = allocation.sessions.count()
                messages.success(
                    request, f"Allocated “{allocation_request.template}”: {count} session{'s' if count != 1 else ''}."
                )
                return redirect("scheduling:rota")
            plan = services.allocation_plan(clinic=clinic, request=allocation_request)
        except services.AllocationClash as clash:
            error, plan = clash.messages[0], clash.plan
        except (services.RotaError, ValidationError) as exc:
            error = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
    context = {
        "form": form,
        "plan": plan,
        "error": error,
        "preview": plan.sessions[:PREVIEW_ROWS] if plan else [],
        "more": max(0, len(plan.sessions) - PREVIEW_ROWS) if plan else 0,
        "zone": plan.request.location.time_zone if plan else "UTC",
    }
    return render(request, "scheduling/allocate.html", context)


@manage_sessions
@require_http_methods(["GET", "POST"])
def allocation_remove(request: ClinicRequest, allocation: UUID) -> HttpResponse:
    clinic = request.clinic
    obj = allocation_for_manager(request, allocation)
    today = clinic.today()
    future = obj.sessions.filter(date__gte=today).count()
    booked: list[Slot] = []
    if request.method == "POST":
        try:
            removed = services.allocation_remove_future(
                clinic=clinic, actor=request.user, allocation=obj, from_date=today
            )
        except services.AllocationHasBookings as refusal:
            booked = refusal.slots
        else:
            messages.success(request, f"Removed {removed} future session{'s' if removed != 1 else ''}.")
            return redirect("scheduling:rota")
    return render(
        request,
        "scheduling/allocation_remove.html",
        {"allocation": obj, "future": future, "today": today, "booked": booked},
    )
