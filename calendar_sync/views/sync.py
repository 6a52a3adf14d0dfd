"""Sync Calendar: allow the sync, name clients, choose the sync type; copy or regenerate the subscription URL
(one-way), or the Google connection (two-way)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from calendar_sync import selectors, services
from calendar_sync.access import sync_page_url, sync_practitioner
from calendar_sync.feed.sources import subscription_of
from calendar_sync.feed.subscriptions import default_mode, feed_token, subscription_regenerate
from calendar_sync.forms import MODE_HELP, MODE_ORDER, FeedSettingsForm
from calendar_sync.google.client import client_refused, google_enabled
from calendar_sync.models import SyncType
from calendar_sync.views.google import with_google_forms
from clinic.access import ClinicRequest
from clinic.models import Practitioner
from patients.display import mode_in_use


@require_http_methods(["GET", "POST"])
def sync_index(request: ClinicRequest) -> HttpResponse:
    """Sync Calendar: allow sync, choose how clients are named and the sync type; the subscription URL
    (one-way) or the Google connection (two-way)."""
    practitioners, practitioner = sync_practitioner(request)
    context: dict[str, Any] = {"practitioners": practitioners, "practitioner": practitioner}
    if practitioner is None:
        return render(request, "calendar_sync/index.html", context)
    subscription = subscription_of(clinic=request.clinic, practitioner=practitioner)
    offered = google_enabled()
    initial = {
        "enabled": subscription.enabled if subscription else False,
        "identifier_mode": subscription.identifier_mode if subscription else default_mode(request.clinic),
        "sync_type": subscription.sync_type if subscription else SyncType.ONE_WAY,
    }
    action = request.POST.get("action", "")
    form = FeedSettingsForm(
        request.POST if action == "save" else None, initial=initial, clinic=request.clinic, google_offered=offered
    )
    here = sync_page_url(practitioner)
    if action == "save" and form.is_valid():
        services.sync_settings_save(
            clinic=request.clinic,
            actor=request.user,
            practitioner=practitioner,
            enabled=form.cleaned_data["enabled"],
            identifier_mode=form.cleaned_data["identifier_mode"],
            sync_type=form.cleaned_data["sync_type"] if offered else None,
        )
        messages.success(request, "Sync settings saved.")
        return redirect(here)
    if action == "regenerate" and subscription is not None:
        subscription_regenerate(clinic=request.clinic, actor=request.user, subscription=subscription)
        messages.success(request, "A new subscription URL is ready. The old one no longer works.")
        return redirect(here)
    two_way = offered and subscription is not None and subscription.sync_type == SyncType.TWO_WAY
    token = feed_token(subscription) if subscription is not None and subscription.enabled else ""
    context |= {
        "form": form,
        "subscription": subscription,
        "two_way": two_way,
        "feed_url": request.build_absolute_uri(reverse("calendar_sync:feed", args=[token]))
        if token and not two_way
        else "",
        "confirm_regenerate": action == "regenerate-ask",
        "mode_help": [(mode.value, MODE_HELP[mode]) for mode in MODE_ORDER],
        # The chosen Internal ID falls back to initials while the clinic has internal IDs off: say so.
        "internal_ids_off": subscription is not None
        and mode_in_use(subscription.identifier_mode, internal_ids_enabled=request.clinic.internal_ids_enabled)
        != subscription.identifier_mode,
    }
    if two_way:
        context |= _google_context(request, practitioner)
    status = 422 if action == "save" else 200
    response = render(request, "calendar_sync/index.html", context, status=status)
    # "Connect with Google" (and syncing a secondary calendar) may end at Google's consent screen.
    return with_google_forms(response) if two_way else response


def _google_context(request: ClinicRequest, practitioner: Practitioner) -> dict[str, Any]:
    """The two-way part of the page: the connection, its calendars, who may act."""
    link = selectors.google_link(clinic=request.clinic, practitioner=practitioner)
    return {
        "connection": link.connection,
        "is_own": practitioner.user_id == request.user.pk,
        "default_calendar": link.default_calendar,
        "secondary_calendars": link.secondary_calendars,
        "broken": link.broken,
        "write_refusals": link.write_refusals,
        "default_calendar_refused": link.default_calendar_refused,
        "listing_refused": link.listing_refused,
        "client_refused": client_refused(),
        "is_admin": request.membership.is_admin,
        "pull_minutes": settings.GOOGLE_PULL_MINUTES,
        "confirm_disconnect": request.GET.get("disconnect") == "ask",
        "now": timezone.now(),
    }
