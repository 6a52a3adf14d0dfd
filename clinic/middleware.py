"""Refuses NUL in request data, sets request.clinic and request.membership, keeps non-members out, keeps
signed-in pages out of caches, and signs idle sessions out (SignInMiddleware)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django_htmx.http import HttpResponseClientRedirect

from clinic import signin
from clinic.models import Membership
from clinic.selectors import memberships_of_user

ACTIVE_CLINIC_SESSION_KEY = "active_clinic_id"
# The browser's zone lives in a cookie of its own, not in the session: the report is sent as a
# page loads, and a session write then could overwrite a clinic switch made at the same moment.
VIEWER_ZONE_COOKIE = "viewer_tz"


def viewer_zone(request: HttpRequest, clinic: Any) -> tuple[ZoneInfo, bool]:
    """The zone pages show times in: the one the browser reported (kept in a cookie), else the clinic's.

    The flag says whether the browser's zone is known yet.
    """
    name = request.COOKIES.get(VIEWER_ZONE_COOKIE)
    if name:
        try:
            return ZoneInfo(name), True
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(clinic.time_zone if clinic else settings.TIME_ZONE), False


def active_membership(request: HttpRequest) -> tuple[Membership | None, list[Membership]]:
    """The membership of the clinic chosen in this session (else the user's first one),
    and all of the user's active memberships, for the clinic switcher: one query."""
    if not request.user.is_authenticated:
        return None, []
    memberships = list(memberships_of_user(user=request.user))
    chosen = request.session.get(ACTIVE_CLINIC_SESSION_KEY)
    membership = next((m for m in memberships if m.clinic_id == chosen), None)
    if membership is None and memberships:
        membership = memberships[0]
        request.session[ACTIVE_CLINIC_SESSION_KEY] = membership.clinic_id
    return membership, memberships


NUL = "\x00"
NUL_REFUSED = (
    "Bad request: the address or a form field contains a NUL character (\\0), which nothing here accepts. "
    "Go back, remove it and try again.\n"
)


def has_nul(request: HttpRequest) -> bool:
    """Whether the path, a query or form key or value, or an uploaded file's name holds a NUL character."""
    if NUL in request.path:
        return True
    for data in (request.GET, request.POST):
        for key, values in data.lists():
            if NUL in key or any(NUL in value for value in values):
                return True
    return any(
        NUL in key or any(NUL in (upload.name or "") for upload in uploads) for key, uploads in request.FILES.lists()
    )


class RefuseNulMiddleware:
    """A NUL character in any input is a 400, on every page, before any view reads it.

    PostgreSQL refuses NUL in text (psycopg raises), so a query string or field that carries one into a
    query would be a 500. Django's forms already refuse NUL in CharFields; this covers the raw reads
    (request.GET["q"] and the like) of every view at once. Nothing of the request is logged.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if has_nul(request):
            return HttpResponseBadRequest(NUL_REFUSED, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class ClinicMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        membership, memberships = active_membership(request)
        request.membership = membership  # type: ignore[attr-defined]
        request.memberships = memberships  # type: ignore[attr-defined]
        request.clinic = membership.clinic if membership else None  # type: ignore[attr-defined]
        zone, detected = viewer_zone(request, request.clinic)  # type: ignore[attr-defined]
        request.viewer_zone = zone  # type: ignore[attr-defined]
        request.viewer_zone_detected = detected  # type: ignore[attr-defined]
        timezone.activate(zone)
        try:
            response = self.get_response(request)
        finally:
            timezone.deactivate()
        if request.user.is_authenticated and not response.has_header("Cache-Control"):
            # A signed-in page may hold patient data (names, appointments, reports, CSV exports): no browser,
            # shared or proxy cache keeps it. A view that chose its own caching (the ICS feed) keeps that.
            patch_cache_control(response, no_store=True)
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if getattr(view_func, "clinic_public", False) or request.path.startswith(settings.STATIC_URL):
            return None
        if not request.user.is_authenticated:
            if getattr(request, "htmx", False):
                # A swapped-in login form would be wrong; send the whole page there.
                return HttpResponseClientRedirect(f"{resolve_url(settings.LOGIN_URL)}?next={request.get_full_path()}")
            return redirect_to_login(request.get_full_path())
        if request.membership is None:  # type: ignore[attr-defined]
            return render(request, "clinic/no_clinic.html", status=403)
        return None


class SignInMiddleware:
    """Idle sign-out on the server, and the second step before any page (clinic/signin.py has the rules).

    A signed-in session idle past the strictest idle time of the user's clinics is signed out (audited) and sent
    to sign-in with a message; htmx gets a whole-page redirect, the idle timer's question a 401. A request counts as
    activity unless it says it is background (`X-Background: 1`). A signed-in user whose clinic requires
    two-factor but whose session has not passed a second step reaches only public views and the second step.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and signin.is_tracked(request):
            memberships = getattr(request, "memberships", [])
            remaining = signin.idle_remaining(request, memberships)
            if remaining is not None and remaining <= 0:
                # Signed out here; the request goes on signed out: ClinicMiddleware sends a member page to sign-in
                # (htmx: the whole page), a public page (the feed, the booking site) is served as to anyone.
                minutes = signin.idle_limit_seconds(memberships) // 60
                signin.sign_out(request, reason=f"idle for {minutes} minutes")
                if not signin.is_background(request):
                    messages.info(
                        request, f"You were signed out after {minutes} minutes without activity. Sign in again."
                    )
            elif not signin.is_background(request):
                signin.activity(request)
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if getattr(view_func, "clinic_public", False) or request.path.startswith(settings.STATIC_URL):
            return None
        if signin.second_step_owed(request):
            step = f"{resolve_url('two-factor')}?{urlencode({'next': request.get_full_path()})}"
            if getattr(request, "htmx", False):
                return HttpResponseClientRedirect(step)
            return HttpResponseRedirect(step)
        return None
