"""Two-way sync pages: Connect with Google (the OAuth web flow), the default calendar, secondary calendars,
Sync now, Disconnect; and the webhook Google's push notifications reach."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from google_auth_oauthlib.flow import Flow
from googleapiclient.errors import HttpError
from oauthlib.oauth2.rfc6749.errors import InvalidClientError, OAuth2Error, UnauthorizedClientError

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
from calendar_sync.google.client import (
    CONNECT_SCOPES,
    SCOPE_EVENTS,
    SCOPE_EVENTS_READ,
    SCOPE_WORDS,
    AccessRevoked,
    ClientRefused,
    GoogleTrouble,
    client_config,
    client_refused_record,
    google_enabled,
    scope_covered,
)
from calendar_sync.google.connect import (
    calendars_refresh,
    connection_save,
    default_calendar_choose,
    disconnect,
    focus_time_set,
    scopes_missing,
    secondary_set,
    sync_now,
)
from calendar_sync.google.connection import REVOKED, connection_mark_broken
from calendar_sync.models import GoogleCalendar, GoogleConnection, GoogleState
from calendar_sync.selectors import calendars_of, connection_of
from clinic.access import ClinicRequest, public, scoped_get_or_404
from clinic.models import Practitioner

log = logging.getLogger(__name__)
OAUTH_SESSION_KEY = "google_oauth"
UNREACHABLE = "Google could not be reached just now. Try again in a minute."
SYNC_ON = "Two-way sync is on. Your calendar is being sent to Google."
MISCONFIGURED = (
    "Google sync is not set up correctly: Google refused this site's sign-in details. Ask your administrator "
    "to check the Google settings; nothing needs doing on your side."
)


def _flow(request: ClinicRequest, scopes: list[str], **kwargs: Any) -> Flow:
    redirect_uri = request.build_absolute_uri(reverse("calendar_sync:google-callback"))
    return Flow.from_client_config(client_config(redirect_uri), scopes=scopes, redirect_uri=redirect_uri, **kwargs)


def _to_google(
    request: ClinicRequest,
    practitioner: Practitioner,
    scopes: list[str],
    *,
    then: dict[str, str] | None = None,
    login_hint: str = "",
) -> HttpResponse:
    """Off to Google's consent screen for these scopes, with those granted before (include_granted_scopes) and
    offline access, so a refresh token comes; `then` is what to do once Google sends the browser back."""
    flow = _flow(request, scopes)
    extra = {"login_hint": login_hint} if login_hint else {}
    url, state = flow.authorization_url(access_type="offline", prompt="consent", include_granted_scopes="true", **extra)
    request.session[OAUTH_SESSION_KEY] = {
        "state": state,
        "verifier": flow.code_verifier,
        "practitioner": str(practitioner.public_id),
        "scopes": scopes,
        "then": then or {},
    }
    return redirect(url)


def with_google_forms(response: HttpResponse) -> HttpResponse:
    """A page whose forms may end at Google's consent screen: its CSP form-action must allow that origin, or the
    browser stops the redirect."""
    auth = urlsplit(settings.GOOGLE_AUTH_URI)
    response._csp_update = {"form-action": [f"{auth.scheme}://{auth.netloc}"]}  # type: ignore[attr-defined]
    return response


@require_POST
def google_connect(request: ClinicRequest) -> HttpResponse:
    """Connect with Google: the calendar made for the clinic and the list of the account's calendars."""
    if not google_enabled():
        raise Http404("Google sync is not configured.")
    return _to_google(request, own_practitioner(request), list(CONNECT_SCOPES))


@require_GET
def google_callback(request: ClinicRequest) -> HttpResponse:
    """Google sends the browser back here with a code (or an error); the code becomes tokens, then the step that
    needed more access (a default or secondary calendar) is taken."""
    started = request.session.pop(OAUTH_SESSION_KEY, None)
    if not started or request.GET.get("state") != started.get("state"):
        messages.error(request, "That Google sign-in was not started here, or has expired. Connect again.")
        return redirect("calendar_sync:index")
    practitioner = scoped_get_or_404(Practitioner, request.clinic, public_id=started["practitioner"])
    here = sync_page_url(practitioner)
    if practitioner.user_id != request.user.pk:
        raise PermissionDenied("Only the practitioner can connect their own Google account.")
    then: dict[str, str] = started.get("then") or {}
    not_done = "so that calendar is not synced" if then else "so two-way sync is not connected"
    if request.GET.get("error") or not request.GET.get("code"):
        messages.error(request, f"Google access was not granted, {not_done}.")
        return redirect(here)
    scopes = list(started.get("scopes") or CONNECT_SCOPES)
    flow = _flow(request, scopes, state=started["state"], code_verifier=started["verifier"])
    try:
        flow.fetch_token(code=request.GET["code"])
        granted = set(flow.credentials.granted_scopes or [])
        missing = [SCOPE_WORDS.get(scope, scope) for scope in scopes if not scope_covered(scope, granted)]
        if missing:
            messages.error(
                request,
                f"Google did not grant access to {' and '.join(missing)}, {not_done}. "
                "Try again and tick every box Google shows.",
            )
            return redirect(here)
        connection = connection_save(
            clinic=request.clinic,
            actor=request.user,
            practitioner=practitioner,
            creds=flow.credentials,
            resync=not then,
        )
    except (InvalidClientError, UnauthorizedClientError, ClientRefused) as error:
        client_refused_record(getattr(error, "error", "") or str(error))
        messages.error(request, MISCONFIGURED)
        return redirect(here)
    except (OAuth2Error, ValueError) as error:
        log.warning("google connect refused: %s", type(error).__name__)
        messages.error(request, "Google did not accept the sign-in. Connect again.")
        return redirect(here)
    except (GoogleTrouble, HttpError, OSError):
        messages.error(request, UNREACHABLE)
        return redirect(here)
    if "default" in then:
        return _default_chosen(request, practitioner, connection, then["default"])
    if "secondary" in then:
        return _secondary_chosen(request, calendar_or_404(request, practitioner, then["secondary"]), selected=True)
    messages.success(request, f"Connected to Google as {connection.email}.")
    if connection.default_calendar_id:
        return redirect(here)
    return redirect(reverse("calendar_sync:google-default") + f"?practitioner={practitioner.public_id}")


def _default_choice(request: ClinicRequest, connection: GoogleConnection, calendar_id: str | None) -> str:
    """Choose the default calendar; what went wrong, in words ("" when it is done)."""
    try:  # no transaction around it: it talks to Google, then writes in one transaction of its own
        default_calendar_choose(
            clinic=request.clinic, actor=request.user, connection=connection, calendar_id=calendar_id
        )
    except ValueError as problem:
        return str(problem)
    except AccessRevoked:
        connection_mark_broken(connection)
        return REVOKED
    except ClientRefused as refused:
        client_refused_record(str(refused))
        return MISCONFIGURED
    except (GoogleTrouble, HttpError, OSError):
        return UNREACHABLE
    return ""


def _default_chosen(
    request: ClinicRequest, practitioner: Practitioner, connection: GoogleConnection, calendar_id: str
) -> HttpResponse:
    """Back from Google with access to the events of an existing calendar: it becomes the default one."""
    error = _default_choice(request, connection, calendar_id)
    if error == REVOKED:  # the Sync page says so
        return redirect(sync_page_url(practitioner))
    if error:
        messages.error(request, error)
        return redirect(reverse("calendar_sync:google-default") + f"?practitioner={practitioner.public_id}")
    messages.success(request, SYNC_ON)
    return redirect(sync_page_url(practitioner))


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
        if choice != "new" and scopes_missing(connection, [SCOPE_EVENTS]):
            # An existing calendar takes our events: Google is asked for that (and only that) now.
            return _to_google(
                request, practitioner, [SCOPE_EVENTS], then={"default": choice}, login_hint=connection.email
            )
        error = _default_choice(request, connection, None if choice == "new" else choice)
        if error == REVOKED:
            return redirect(here)
        if not error:
            messages.success(request, SYNC_ON)
            return redirect(here)
    try:
        calendars = [c for c in calendars_refresh(connection) if c.writable]
    except AccessRevoked:
        connection_mark_broken(connection)
        return redirect(here)
    except (ClientRefused, GoogleTrouble, HttpError, OSError) as trouble:
        if isinstance(trouble, ClientRefused):
            client_refused_record(str(trouble))
        known = calendars_of(clinic=request.clinic, connection=connection)
        calendars = [c for c in known if c.writable]
        error = error or (MISCONFIGURED if isinstance(trouble, ClientRefused) else UNREACHABLE)
    context = {"practitioner": practitioner, "connection": connection, "calendars": calendars, "error": error}
    page = render(request, "calendar_sync/google_default.html", context, status=422 if error else 200)
    return with_google_forms(page)


@require_POST
def google_calendar(request: ClinicRequest) -> HttpResponse:
    """Sync a secondary calendar (or stop: its events stay here, tied to it)."""
    practitioner = own_practitioner(request)
    found = calendar_or_404(request, practitioner, request.POST.get("calendar", ""))
    selected = request.POST.get("selected") == "1"
    if selected and scopes_missing(found.connection, [SCOPE_EVENTS_READ]):
        # Reading another calendar's events: Google is asked for that (and only that) now.
        return _to_google(
            request,
            practitioner,
            [SCOPE_EVENTS_READ],
            then={"secondary": str(found.public_id)},
            login_hint=found.connection.email,
        )
    return _secondary_chosen(request, found, selected=selected)


def _secondary_chosen(request: ClinicRequest, found: GoogleCalendar, *, selected: bool) -> HttpResponse:
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
    return redirect(sync_page_url(found.connection.practitioner))


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
