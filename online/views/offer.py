"""A place offered from the waiting list, from the signed link in the patient's email or text: take it (booked at
once, source "waitlist") or let it go to the next person. Works for every clinic, with or without online booking."""

from __future__ import annotations

from typing import Any

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
from online.views.booking import _page, _too_many, patient_zone
from scheduling.models import HoldOutcome
from scheduling.services.booking import BookingError
from scheduling.services.waitlist import offer_accept, offer_decline

GONE = "This link is not complete, or the offer no longer exists."


def _opened(request: HttpRequest, slug: str, token: str) -> dict[str, Any]:
    try:
        offer_id = signing.loads(token, salt=services.OFFER_SALT)
    except signing.BadSignature:
        raise Http404(GONE) from None
    found = selectors.offer_at(slug, str(offer_id))
    if found is None:
        raise Http404(GONE)
    clinic, online, offer = found
    hold = offer.hold
    now = timezone.now()
    return {
        "clinic": clinic,
        "online": online,
        "offer": offer,
        "slot": offer.slot,
        "hold": hold,
        "token": token,
        "zone": patient_zone(request, offer.slot.session.time_zone),
        "open": hold.ended_at is None and hold.expires_at > now,
        "ran_out": hold.outcome == HoldOutcome.EXPIRED or (hold.ended_at is None and hold.expires_at <= now),
        "taken": hold.outcome == HoldOutcome.ACCEPTED,
    }


@public
@require_http_methods(["GET", "POST"])
def offer(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """The offer; POST takes it, or (after a confirmation) lets it go."""
    context = _opened(request, slug, token)
    if over_limit("offer", client_ip(request), limit=settings.ONLINE_PAGE_LIMIT, window_seconds=60):
        return _too_many(request, context["clinic"], context["online"])
    clinic, the_offer = context["clinic"], context["offer"]
    here = reverse("online:offer", args=[slug, token])
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "take":
                offer_accept(clinic=clinic, offer=the_offer)
                return redirect(here + "?taken=1")
            if action == "decline":
                if request.POST.get("confirm") != "yes":
                    context["confirming"] = True
                    return _page(request, "online/offer.html", context)
                offer_decline(clinic=clinic, offer=the_offer, leave_list=request.POST.get("leave") == "1")
                return redirect(here + "?declined=1")
        except BookingError as error:
            context = _opened(request, slug, token)
            context["error"] = error.messages[0]
            return _page(request, "online/offer.html", context, status=409)
        context["error"] = "Choose to take the place or to let it go."
        return _page(request, "online/offer.html", context, status=400)
    context["taken_now"] = request.GET.get("taken") == "1"
    online = context["online"]
    if context["taken"] and online is not None and online.enabled and context["hold"].appointment_id:
        context["manage_url"] = services.manage_url(clinic, context["hold"].appointment)
    context["declined_now"] = request.GET.get("declined") == "1"
    return _page(request, "online/offer.html", context)
