"""Who may see and change whose sync settings, per request: the practitioner whose Sync page this is, their
Google connection, and the one 404 answer of the public feed and webhook."""

from __future__ import annotations

import uuid

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.urls import reverse

from calendar_sync.models import GoogleCalendar, GoogleConnection, GoogleState
from calendar_sync.selectors import connection_of
from clinic.access import ClinicRequest, scoped_get_or_404
from clinic.models import Practitioner
from scheduling.access import manageable_practitioners

NOT_FOUND = b"Not found.\n"


def sync_practitioner(request: ClinicRequest) -> tuple[list[Practitioner], Practitioner | None]:
    """Whose sync settings the page shows: a clinician only their own; staff who manage every calendar
    any practitioner's (the one asked for, else their own, else the first)."""
    choices = manageable_practitioners(request)
    chosen = request.POST.get("practitioner") or request.GET.get("practitioner")
    if chosen:
        return list(choices), scoped_get_or_404(choices, request.clinic, public_id=chosen)
    return list(choices), choices.filter(user=request.user).first() or choices.first()


def sync_page_url(practitioner: Practitioner) -> str:
    return reverse("calendar_sync:index") + f"?practitioner={practitioner.public_id}"


def shown_practitioner(request: ClinicRequest) -> Practitioner:
    """The practitioner whose sync the request is about (one the user may manage), else 404."""
    _, practitioner = sync_practitioner(request)
    if practitioner is None:
        raise Http404("No practitioner.")
    return practitioner


def own_practitioner(request: ClinicRequest) -> Practitioner:
    """Connecting and choosing calendars act on a Google account: only its practitioner does that."""
    practitioner = shown_practitioner(request)
    if practitioner.user_id != request.user.pk:
        raise PermissionDenied("Only the practitioner can connect their own Google account.")
    return practitioner


def connection_or_404(request: ClinicRequest, practitioner: Practitioner) -> GoogleConnection:
    """The practitioner's Google connection in the member's clinic, connected or not."""
    return scoped_get_or_404(GoogleConnection, request.clinic, practitioner=practitioner)


def connected_or_404(request: ClinicRequest, practitioner: Practitioner) -> GoogleConnection:
    """The practitioner's Google connection, when it works (not broken)."""
    connection = connection_of(clinic=request.clinic, practitioner=practitioner)
    if connection is None or connection.state != GoogleState.CONNECTED:
        raise Http404("Not connected.")
    return connection


def calendar_or_404(request: ClinicRequest, practitioner: Practitioner, public_id: str) -> GoogleCalendar:
    """One of the practitioner's Google calendars, by the UUID a form sent."""
    try:
        calendar = uuid.UUID(public_id)
    except ValueError:
        raise Http404("No such calendar.") from None
    return scoped_get_or_404(
        GoogleCalendar.objects.for_clinic(request.clinic).select_related("connection"),
        request.clinic,
        public_id=calendar,
        connection__practitioner=practitioner,
    )


def not_found() -> HttpResponse:
    """The one answer to any token that names no enabled feed (or channel). Not logged: the path holds a
    secret."""
    response = HttpResponse(NOT_FOUND, status=404, content_type="text/plain; charset=utf-8")
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own flag: skip the 404 log line
    return response
