"""A patient's own appointment, from the signed link in their email: view it, cancel it or move it (inside the
clinic's window). The link names one appointment of one patient and expires; changes are audited as "by patient
online"."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from clinic.access import public
from clinic.limits import over_limit
from clinic.proxy import client_ip
from online import selectors, services
from online.views.booking import STRIP_DAYS, _clinic, _page, _too_many, patient_zone
from scheduling.models import Appointment, AppointmentStatus
from scheduling.services.booking import BookingError

MOVES_FOLLOWED = 20


def _appointment(clinic: Any, token: str) -> Appointment:
    """The appointment the link names (or, once it was moved, where it moved to), or a 404."""
    try:
        key = signing.loads(token, salt=services.MANAGE_SALT, max_age=settings.ONLINE_LINK_DAYS * 86400)
        UUID(key["a"]), UUID(key["p"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise Http404("This link has expired or is not complete.") from None
    appointment = (
        Appointment.objects.for_clinic(clinic)
        .select_related("patient", "slot_type", "slot__session__practitioner", "slot__session__location")
        .filter(public_id=key["a"], patient__public_id=key["p"])
        .first()
    )
    if appointment is None:
        raise Http404("This link has expired or is not complete.")
    for _ in range(MOVES_FOLLOWED):
        moved = (
            Appointment.objects.for_clinic(clinic)
            .select_related("patient", "slot_type", "slot__session__practitioner", "slot__session__location")
            .filter(rescheduled_from=appointment, patient=appointment.patient)
            .first()
        )
        if moved is None:
            break
        appointment = moved
    return appointment


def _context(request: HttpRequest, clinic: Any, online: Any, appointment: Appointment, token: str) -> dict[str, Any]:
    now = timezone.now()
    window_open = appointment.status == AppointmentStatus.BOOKED and appointment.starts_at - now >= dt.timedelta(
        hours=online.change_hours
    )
    return {
        "clinic": clinic,
        "online": online,
        "appointment": appointment,
        "token": token,
        "zone": patient_zone(request, appointment.slot.session.time_zone),
        "window_open": window_open,
        "past": appointment.ends_at <= now,
    }


def _opened(request: HttpRequest, slug: str, token: str) -> tuple[Any, Any, Appointment, dict[str, Any]] | HttpResponse:
    """The clinic, its settings, the appointment the link names and the page's context; or the answer to too many
    tries from one address."""
    clinic, online = _clinic(slug)
    if over_limit("manage", client_ip(request), limit=settings.ONLINE_PAGE_LIMIT, window_seconds=60):
        return _too_many(request, clinic, online)
    appointment = _appointment(clinic, token)
    return clinic, online, appointment, _context(request, clinic, online, appointment, token)


@public
@require_http_methods(["GET", "POST"])
def manage(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """The appointment; POST cancels it (the page asks first)."""
    opened = _opened(request, slug, token)
    if isinstance(opened, HttpResponse):
        return opened
    clinic, online, appointment, context = opened
    if request.method == "POST":
        if request.POST.get("confirm") != "cancel":
            context["confirming"] = True
            return _page(request, "online/manage.html", context)
        try:
            services.patient_cancel(clinic=clinic, online=online, appointment=appointment)
        except BookingError as error:
            context["error"] = error.messages[0]
            return _page(request, "online/manage.html", context, status=400)
        return redirect(reverse("online:manage", args=[slug, token]) + "?cancelled=1")
    context["cancelled_now"] = request.GET.get("cancelled") == "1"
    context["moved_now"] = request.GET.get("moved") == "1"
    return _page(request, "online/manage.html", context)


@public
@require_http_methods(["GET", "POST"])
def move(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """Another free time of the same type (any practitioner who books at once); POST moves to it."""
    opened = _opened(request, slug, token)
    if isinstance(opened, HttpResponse):
        return opened
    clinic, online, appointment, context = opened
    if request.method == "POST":
        try:
            services.patient_move(
                clinic=clinic, online=online, appointment=appointment, slot_public_id=request.POST.get("slot", "")
            )
        except BookingError as error:
            context["error"] = error.messages[0]
        else:
            return redirect(reverse("online:manage", args=[slug, token]) + "?moved=1")
    kind = appointment.slot_type
    requests = selectors.requests_only(clinic)
    practitioners = [p for p in selectors.online_practitioners(clinic) if p.pk not in requests]
    found = (
        selectors.free_times(
            clinic=clinic,
            online=online,
            slot_type=kind,
            practitioners=practitioners,
            location=None,
            zone=context["zone"],
            now=timezone.now(),
        )
        if kind is not None and kind.online_bookable and context["window_open"]
        else None
    )
    context["times"] = found
    context["days"] = sorted(found.by_day.items())[: STRIP_DAYS * 2] if found else []
    return _page(request, "online/move.html", context, status=400 if context.get("error") else 200)
