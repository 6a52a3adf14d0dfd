"""Sync Calendar (allow the feed, name clients, copy or regenerate the URL) and the feed itself."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date
from django.views.decorators.http import require_http_methods, require_safe

from calendar_sync import google_sync, selectors, services
from calendar_sync.forms import MODE_HELP, MODE_ORDER, FeedSettingsForm
from calendar_sync.models import FeedDocument, SyncType
from clinic.access import ClinicRequest, public, scoped_get_or_404
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


@require_http_methods(["GET", "POST"])
def sync_index(request: ClinicRequest) -> HttpResponse:
    """Sync Calendar: allow sync, choose how clients are named and the sync type; the subscription URL
    (one-way) or the Google connection (two-way)."""
    practitioners, practitioner = sync_practitioner(request)
    context: dict[str, Any] = {"practitioners": practitioners, "practitioner": practitioner}
    if practitioner is None:
        return render(request, "calendar_sync/index.html", context)
    subscription = selectors.subscription_of(clinic=request.clinic, practitioner=practitioner)
    offered = google_sync.google_offered()
    initial = {
        "enabled": subscription.enabled if subscription else False,
        "identifier_mode": subscription.identifier_mode if subscription else services.default_mode(request.clinic),
        "sync_type": subscription.sync_type if subscription else SyncType.ONE_WAY,
    }
    action = request.POST.get("action", "")
    form = FeedSettingsForm(
        request.POST if action == "save" else None, initial=initial, clinic=request.clinic, google_offered=offered
    )
    here = sync_page_url(practitioner)
    if action == "save" and form.is_valid():
        subscription = services.subscription_get_or_create(clinic=request.clinic, practitioner=practitioner)
        with transaction.atomic():
            services.subscription_save(
                clinic=request.clinic,
                actor=request.user,
                subscription=subscription,
                enabled=form.cleaned_data["enabled"],
                identifier_mode=form.cleaned_data["identifier_mode"],
            )
            if offered:
                google_sync.sync_type_set(
                    clinic=request.clinic,
                    actor=request.user,
                    subscription=subscription,
                    sync_type=form.cleaned_data["sync_type"],
                )
        messages.success(request, "Sync settings saved.")
        return redirect(here)
    if action == "regenerate" and subscription is not None:
        services.subscription_regenerate(clinic=request.clinic, actor=request.user, subscription=subscription)
        messages.success(request, "A new subscription URL is ready. The old one no longer works.")
        return redirect(here)
    two_way = offered and subscription is not None and subscription.sync_type == SyncType.TWO_WAY
    token = services.feed_token(subscription) if subscription is not None and subscription.enabled else ""
    context |= {
        "form": form,
        "subscription": subscription,
        "two_way": two_way,
        "feed_url": request.build_absolute_uri(reverse("calendar_sync:feed", args=[token]))
        if token and not two_way
        else "",
        "confirm_regenerate": action == "regenerate-ask",
        "mode_help": [(mode.value, MODE_HELP[mode]) for mode in MODE_ORDER],
    }
    if two_way:
        from calendar_sync.google_views import google_context

        context |= google_context(request, practitioner)
    status = 422 if action == "save" else 200
    response = render(request, "calendar_sync/index.html", context, status=status)
    if two_way:
        # "Connect with Google" posts here and is redirected to Google's sign-in: the page's CSP
        # form-action must allow that origin, or the browser stops the redirect.
        auth = urlsplit(settings.GOOGLE_AUTH_URI)
        response._csp_update = {"form-action": [f"{auth.scheme}://{auth.netloc}"]}  # type: ignore[attr-defined]
    return response


def not_found() -> HttpResponse:
    """The one answer to any token that names no enabled feed. Not logged: the path holds a secret."""
    response = HttpResponse(NOT_FOUND, status=404, content_type="text/plain; charset=utf-8")
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own flag: skip the 404 log line
    return response


def accepts_gzip(request: Any) -> bool:
    """Whether the client takes the stored gzip bytes as they are (calendar apps do)."""
    accepted = request.headers.get("Accept-Encoding", "")
    return any(
        part.split(";")[0].strip() == "gzip" and "q=0" not in part.replace(" ", "") for part in accepted.split(",")
    )


@public
@require_safe
def feed(request: Any, token: str) -> HttpResponse:
    """The ICS feed behind a subscription URL: stored bytes, with ETag and Last-Modified (304 when unchanged).

    Every token is hashed and looked up the same way, so a wrong one answers like a missing one.
    """
    subscription = selectors.subscription_by_token_hash(services.token_hash(token))
    if subscription is None:
        return not_found()
    now = timezone.now()
    document: FeedDocument | None = getattr(subscription, "document", None)
    if services.is_stale(subscription, document, now):
        document = services.feed_build(subscription=subscription, now=now)
    assert document is not None and document.modified_at is not None
    headers = {
        "ETag": document.etag,
        "Last-Modified": http_date(document.modified_at.timestamp()),
        "Cache-Control": "private, max-age=300",
    }
    conditional = get_conditional_response(
        request, etag=document.etag, last_modified=int(document.modified_at.timestamp())
    )
    if conditional is not None:
        for name, value in headers.items():
            conditional[name] = value
        return conditional
    stored = selectors.feed_body(clinic=subscription.clinic, document=document)
    if accepts_gzip(request):
        response = HttpResponse(stored, content_type="text/calendar; charset=utf-8")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(services.feed_bytes(stored), content_type="text/calendar; charset=utf-8")
    for name, value in headers.items():
        response[name] = value
    response["Content-Disposition"] = 'inline; filename="calendar.ics"'
    patch_vary_headers(response, ["Accept-Encoding"])
    return response
