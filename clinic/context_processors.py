"""Navigation by role and the clinic switcher, for the base layout."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from clinic import signin
from clinic.models import NamedPermission, Role

# The rota lives in scheduling (it writes dated sessions) but belongs to the Setup section.
SETUP_PAGES_IN_SCHEDULING = {"rota", "allocate", "allocation-remove", "take-out", "template-apply", "session-edit"}


def clinic_nav(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    items = [
        ("calendar", "Calendar", reverse("scheduling:calendar")),
        ("patients", "Patients", reverse("patients:list")),
    ]
    if membership.role in (Role.ADMIN, Role.RECEPTION):
        items.append(("waitlist", "Waiting list", reverse("scheduling:waitlist")))
        items.append(("messages", "Messages", reverse("notifications:list")))
    if membership.role in (Role.ADMIN, Role.RECEPTION) or membership.has_permission(NamedPermission.MANAGE_SESSIONS):
        items.append(("displaced", "Displaced patients", reverse("scheduling:displaced")))
    if membership.has_permission(NamedPermission.MANAGE_SESSIONS):
        items.append(("setup", "Setup", reverse("sessions_setup:index")))
    if membership.role in (Role.CLINICIAN, Role.ADMIN):
        items.append(("sync", "Sync", reverse("calendar_sync:index")))
    if membership.is_admin:
        items.append(("clinic", "Clinic", reverse("clinic:settings")))
    match = request.resolver_match
    current = match.namespace if match else ""
    section = {
        "scheduling": "calendar",
        "sessions_setup": "setup",
        "calendar_sync": "sync",
        "notifications": "messages",
        "fhir_api": "clinic",  # the FHIR API consumers are a page of the clinic's settings
    }.get(current, current)
    if match and match.url_name in SETUP_PAGES_IN_SCHEDULING:
        section = "setup"
    if current == "scheduling" and match and match.url_name == "displaced":
        section = "displaced"
    if current == "scheduling" and match and (match.url_name or "").startswith(("waitlist", "roster")):
        section = "waitlist"
    if current in ("notifications", "online") and match and match.url_name in ("settings", "practitioner"):
        section = "clinic"  # "Messages to patients" and "Online booking" are pages of the clinic's settings
    return {
        "nav_items": [{"key": k, "label": label, "url": url, "active": k == section} for k, label, url in items],
        "switchable_memberships": request.memberships,  # type: ignore[attr-defined]
        "idle_signout": idle_signout(request),
    }


def idle_signout(request: HttpRequest) -> dict[str, int] | None:
    """The idle timer's figures for the page (static/js/idle.js): seconds left and the limit; None when the
    session has no sign-in record."""
    memberships = request.memberships  # type: ignore[attr-defined]
    remaining = signin.idle_remaining(request, memberships)
    if remaining is None:
        return None
    return {"remaining": max(0, int(remaining)), "limit": signin.idle_limit_seconds(memberships)}
