"""Two-way sync pages: Connect with Google (the OAuth web flow), the default calendar, secondary calendars,
Sync now, Disconnect; and the webhook Google's push notifications reach."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from google_auth_oauthlib.flow import Flow
from googleapiclient.errors import HttpError
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from calendar_sync.access import (
    calendar_or_404,
    connected_or_404,
    connection_or_404,
    not_found,
    own_practitioner,
    shown_practitioner,
    sync_page_url,
)
from calendar_sync.google.changes import queue_pull
from calendar_sync.google.channels import channel_for_notification
from calendar_sync.google.client import CALENDAR_SCOPE, AccessRevoked, GoogleTrouble, client_config, google_enabled
from calendar_sync.google.connect import (
    calendars_refresh,
    connection_save,
    default_calendar_choose,
    disconnect,
    focus_time_set,
    secondary_set,
    sync_now,
)
from calendar_sync.google.connection import connection_mark_broken
from calendar_sync.models import GoogleState
from calendar_sync.selectors import calendars_of, connection_of
from clinic.access import ClinicRequest, public, scoped_get_or_404
from clinic.models import Practitioner

log = logging.getLogger(__name__)
OAUTH_SESSION_KEY = "google_oauth"
UNREACHABLE = "Google could not be reached just now. Try again in a minute."


def _flow(request: ClinicRequest, **kwargs: Any) -> Flow:
    redirect_uri = request.build_absolute_uri(reverse("calendar_sync:google-callback"))
    return Flow.from_client_config(
        client_config(redirect_uri), scopes=[CALENDAR_SCOPE], redirect_uri=redirect_uri, **kwargs
    )


@require_POST
def google_connect(request: ClinicRequest) -> HttpResponse:
    """Connect with Google: off to Google's consent screen (offline access, so a refresh token comes)."""
    if not google_enabled():
        raise Http404("Google sync is not configured.")
    practitioner = own_practitioner(request)
    flow = _flow(request)
    url, state = flow.authorization_url(access_type="offline", prompt="consent", include_granted_scopes="true")
    request.session[OAUTH_SESSION_KEY] = {
        "state": state,
        "verifier": flow.code_verifier,
        "practitioner": str(practitioner.public_id),
    }
    return redirect(url)


@require_GET
def google_callback(request: ClinicRequest) -> HttpResponse:
    """Google sends the browser back here with a code (or an error); the code becomes tokens."""
    started = request.session.pop(OAUTH_SESSION_KEY, None)
    if not started or request.GET.get("state") != started.get("state"):
        messages.error(request, "That Google sign-in was not started here, or has expired. Connect again.")
        return redirect("calendar_sync:index")
    practitioner = scoped_get_or_404(Practitioner, request.clinic, public_id=started["practitioner"])
    here = sync_page_url(practitioner)
    if practitioner.user_id != request.user.pk:
        raise PermissionDenied("Only the practitioner can connect their own Google account.")
    if request.GET.get("error") or not request.GET.get("code"):
        messages.error(request, "Google access was not granted, so two-way sync is not connected.")
        return redirect(here)
    flow = _flow(request, state=started["state"], code_verifier=started["verifier"])
    try:
        flow.fetch_token(code=request.GET["code"])
        connection = connection_save(
            clinic=request.clinic, actor=request.user, practitioner=practitioner, creds=flow.credentials
        )
    except (OAuth2Error, ValueError) as error:
        log.warning("google connect refused: %s", type(error).__name__)
        messages.error(request, "Google did not accept the sign-in. Connect again.")
        return redirect(here)
    except (GoogleTrouble, HttpError, OSError):
        messages.error(request, UNREACHABLE)
        return redirect(here)
    messages.success(request, f"Connected to Google as {connection.email}.")
    if connection.default_calendar_id:
        return redirect(here)
    return redirect(reverse("calendar_sync:google-default") + f"?practitioner={practitioner.public_id}")


@require_http_methods(["GET", "POST"])
def google_default(request: ClinicRequest) -> HttpResponse:
    """Choose the Default Calendar: a new one for the clinic (recommended) or an existing one."""
    practitioner = own_practitioner(request)
    connection = connection_of(clinic=request.clinic, practitioner=practitioner)
    here = sync_page_url(practitioner)
    if connection is None or connection.state != GoogleState.CONNECTED:
        messages.error(request, "Connect with Google first.")
        return redirect(here)
    error = ""
    if request.method == "POST":
        choice = request.POST.get("calendar", "")
        try:  # no transaction around it: it talks to Google, then writes in one transaction of its own
            default_calendar_choose(
                clinic=request.clinic,
                actor=request.user,
                connection=connection,
                calendar_id=None if choice == "new" else choice,
            )
        except ValueError as problem:
            error = str(problem)
        except AccessRevoked:
            connection_mark_broken(connection)
            return redirect(here)
        except (GoogleTrouble, HttpError, OSError):
            error = UNREACHABLE
        else:
            messages.success(request, "Two-way sync is on. Your calendar is being sent to Google.")
            return redirect(here)
    try:
        calendars = [c for c in calendars_refresh(connection) if c.writable]
    except AccessRevoked:
        connection_mark_broken(connection)
        return redirect(here)
    except (GoogleTrouble, HttpError, OSError):
        known = calendars_of(clinic=request.clinic, connection=connection)
        calendars, error = [c for c in known if c.writable], error or UNREACHABLE
    context = {"practitioner": practitioner, "connection": connection, "calendars": calendars, "error": error}
    return render(request, "calendar_sync/google_default.html", context, status=422 if error else 200)


@require_POST
def google_calendar(request: ClinicRequest) -> HttpResponse:
    """Sync a secondary calendar (or stop: its events stay here, tied to it)."""
    practitioner = own_practitioner(request)
    found = calendar_or_404(request, practitioner, request.POST.get("calendar", ""))
    selected = request.POST.get("selected") == "1"
    try:
        secondary_set(clinic=request.clinic, actor=request.user, calendar=found, selected=selected)
    except ValueError as problem:
        messages.error(request, str(problem))
    else:
        messages.success(
            request,
            f"“{found.summary}” is synced: its events appear on your calendar."
            if selected
            else f"“{found.summary}” is no longer synced. Events already pulled from it stay on your calendar.",
        )
    return redirect(sync_page_url(practitioner))


@require_POST
def google_sync_now(request: ClinicRequest) -> HttpResponse:
    practitioner = shown_practitioner(request)
    sync_now(connected_or_404(request, practitioner))
    messages.success(request, "Sync started. Refresh the calendar in a moment to see Google's changes.")
    return redirect(sync_page_url(practitioner))


@require_POST
def google_focus_time(request: ClinicRequest) -> HttpResponse:
    """Focus time blocks booking, or not (also for staff who manage the calendar, as Sync now)."""
    practitioner = shown_practitioner(request)
    busy = request.POST.get("busy") == "1"
    focus_time_set(
        clinic=request.clinic, actor=request.user, connection=connected_or_404(request, practitioner), busy=busy
    )
    messages.success(
        request,
        "Focus time marked busy in Google now blocks online booking."
        if busy
        else "Focus time in Google no longer blocks online booking.",
    )
    return redirect(sync_page_url(practitioner))


@require_POST
def google_disconnect(request: ClinicRequest) -> HttpResponse:
    """Disconnect: always possible (also by staff who manage the calendar, and when Google is unreachable)."""
    practitioner = shown_practitioner(request)
    connection = connection_or_404(request, practitioner)
    disconnect(clinic=request.clinic, actor=request.user, connection=connection)
    messages.success(
        request,
        "Disconnected from Google. Google events were removed from this calendar; events already in Google "
        "stay there until you delete them (or the calendar made for the clinic).",
    )
    return redirect(sync_page_url(practitioner))


@public
@csrf_exempt
@require_POST
def google_webhook(request: HttpRequest) -> HttpResponse:
    """Google's push notification: it only queues a pull of that calendar. Unknown channels answer 404."""
    channel = channel_for_notification(
        request.headers.get("X-Goog-Channel-ID", ""), request.headers.get("X-Goog-Channel-Token", "")
    )
    if channel is None:
        return not_found()
    if request.headers.get("X-Goog-Resource-State") != "sync":
        queue_pull(channel.calendar.connection, channel.calendar_id)
    return HttpResponse(status=204)
