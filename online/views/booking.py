"""The public booking site, for people who are not staff (no sign-in): what the clinic offers, the free times, a
patient's details, the one-time code and the confirmation. Everything but the clinic's landing page is noindex;
no patient data is ever in a URL (the check and the confirmation are named by random or signed keys)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import public
from clinic.limits import over_limit
from clinic.proxy import client_ip
from online import selectors, services
from online.forms import CodeForm, DetailsForm
from online.models import BookingMode, OnlineBooking, OnlineSettings
from scheduling.services.booking import BookingError

STRIP_DAYS = 7


def _clinic(slug: str) -> tuple[Any, OnlineSettings]:
    found = selectors.clinic_taking_bookings(slug)
    if found is None:
        raise Http404("This clinic does not take bookings online.")
    return found


def patient_zone(request: HttpRequest, fallback: str) -> ZoneInfo:
    """The patient's zone: the browser's (?tz=, set by the page's script), else the clinic's."""
    name = request.GET.get("tz") or request.POST.get("tz") or ""
    if name and len(name) < 64:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(fallback)


def _page(
    request: HttpRequest, template: str, context: dict[str, Any], *, status: int = 200, index: bool = False
) -> HttpResponse:
    response = render(request, template, {"index": index, **context}, status=status)
    if not index:
        response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "no-store"
    return response


def _too_many(request: HttpRequest, clinic: Any, online: OnlineSettings) -> HttpResponse:
    return _page(request, "online/too_many.html", {"clinic": clinic, "online": online}, status=429)


@public
@require_GET
def landing(request: HttpRequest, slug: str) -> HttpResponse:
    """The clinic's booking page: its introduction and what a patient may book (the one indexable page)."""
    clinic, online = _clinic(slug)
    types = selectors.online_types(clinic)
    return _page(request, "online/landing.html", {"clinic": clinic, "online": online, "types": types}, index=True)


def _choice(request: HttpRequest, options: list[Any], name: str) -> Any:
    wanted = request.GET.get(name, "")
    return next((o for o in options if str(o.public_id) == wanted), None)


@public
@require_GET
def times(request: HttpRequest, slug: str, slot_type: str) -> HttpResponse:
    """Location and practitioner (or anyone), a day strip, and the free times of the chosen day."""
    clinic, online = _clinic(slug)
    kind = selectors.online_type(clinic, slot_type)
    if kind is None:
        raise Http404("Nothing of that kind is booked online here.")
    if over_limit("times", client_ip(request), limit=settings.ONLINE_PAGE_LIMIT, window_seconds=60):
        return _too_many(request, clinic, online)
    locations = selectors.online_locations(clinic)
    practitioners = selectors.online_practitioners(clinic)
    location = _choice(request, locations, "location")
    practitioner = _choice(request, practitioners, "practitioner")
    zone = patient_zone(request, clinic.time_zone)
    now = timezone.now()
    found = selectors.free_times(
        clinic=clinic,
        online=online,
        slot_type=kind,
        practitioners=[practitioner] if practitioner else practitioners,
        location=location,
        zone=zone,
        now=now,
    )
    try:
        day = dt.date.fromisoformat(request.GET.get("day", ""))
    except ValueError:
        day = found.first_day() or found.days[0]
    if day not in found.days:
        day = found.first_day() or found.days[0]
    # The strip: a week at a time, holding the chosen day.
    start = found.days.index(day) // STRIP_DAYS * STRIP_DAYS
    strip = [(d, len(found.by_day.get(d, []))) for d in found.days[start : start + STRIP_DAYS]]
    earlier = found.days[start - STRIP_DAYS] if start >= STRIP_DAYS else None
    later = found.days[start + STRIP_DAYS] if start + STRIP_DAYS < len(found.days) else None
    query = {
        "location": str(location.public_id) if location else "",
        "practitioner": str(practitioner.public_id) if practitioner else "",
        "tz": zone.key,
    }
    context = {
        "clinic": clinic,
        "online": online,
        "kind": kind,
        "locations": locations,
        "practitioners": practitioners,
        "location": location,
        "practitioner": practitioner,
        "zone": zone,
        "clinic_zone": ZoneInfo(clinic.time_zone),
        "zones_differ": _differ(zone, ZoneInfo(clinic.time_zone), now),
        "times": found,
        "day": day,
        "day_times": found.by_day.get(day, []),
        "strip": strip,
        "earlier": earlier,
        "later": later,
        "query": query,
        "next_day": next((d for d in sorted(found.by_day) if d > day), None),
        "request_ids": selectors.requests_only(clinic),
    }
    return _page(request, "online/times.html", context)


def _differ(one: ZoneInfo, other: ZoneInfo, now: dt.datetime) -> bool:
    return one.key != other.key and any(
        (now + dt.timedelta(days=n)).astimezone(one).utcoffset()
        != (now + dt.timedelta(days=n)).astimezone(other).utcoffset()
        for n in (0, 90, 180, 270)
    )


@public
@require_http_methods(["GET", "POST"])
def details(request: HttpRequest, slug: str, slot_type: str, slot: str) -> HttpResponse:
    """Who it is for; on POST, a code goes to the email and the patient types it on the next page. The answer is
    the same whoever they are: nobody is looked up yet."""
    clinic, online = _clinic(slug)
    kind = selectors.online_type(clinic, slot_type)
    if kind is None:
        raise Http404("Nothing of that kind is booked online here.")
    zone = patient_zone(request, clinic.time_zone)
    offered = selectors.place_offered(
        clinic=clinic, online=online, slot_type=kind, slot_public_id=slot, now=timezone.now()
    )
    context = {"clinic": clinic, "online": online, "kind": kind, "zone": zone, "slot": slot}
    if offered is None:
        return _page(request, "online/gone.html", context, status=410)
    context |= {"place": offered.place, "is_request": offered.mode == BookingMode.REQUEST}
    form = DetailsForm(request.POST or None)
    if request.method == "POST":
        if over_limit("code-ip", client_ip(request), limit=settings.ONLINE_CODE_LIMIT_IP, window_seconds=3600):
            return _too_many(request, clinic, online)
        if form.is_valid():
            if form.cleaned_data["website"]:
                # A bot filled the honeypot: it sees what a person sees, and nothing is kept or sent.
                return redirect("online:check", slug=clinic.slug, token=secrets.token_urlsafe(24))
            data = form.details()
            if over_limit(
                "code-email", data["email"], limit=settings.ONLINE_CODE_LIMIT_EACH, window_seconds=3600
            ) or over_limit("code-phone", data["mobile"], limit=settings.ONLINE_CODE_LIMIT_EACH, window_seconds=3600):
                return _too_many(request, clinic, online)
            try:
                check, _code = services.check_start(
                    clinic=clinic, online=online, slot_type=kind, slot_public_id=slot, details=data
                )
            except BookingError as error:
                form.add_error(None, error.messages[0])
            else:
                return redirect("online:check", slug=clinic.slug, token=check.token)
    context["form"] = form
    return _page(request, "online/details.html", context, status=400 if form.errors else 200)


@public
@require_http_methods(["GET", "POST"])
def check(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """Type the code from the email; when right, the time is booked (or requested) and the confirmation shows."""
    clinic, online = _clinic(slug)
    form = CodeForm(request.POST or None)
    if request.method == "POST":
        if over_limit("verify-ip", client_ip(request), limit=settings.ONLINE_VERIFY_LIMIT_IP, window_seconds=3600):
            return _too_many(request, clinic, online)
        if form.is_valid():
            try:
                booking = services.check_verify(
                    clinic=clinic, online=online, token=token, code=form.cleaned_data["code"]
                )
            except BookingError as error:
                form.add_error("code", error.messages[0])
            else:
                return redirect("online:done", slug=clinic.slug, token=services.done_token(booking))
    context = {"clinic": clinic, "online": online, "form": form}
    return _page(request, "online/check.html", context, status=400 if form.errors else 200)


@public
@require_GET
def done(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """Booked, or requested: what happens next (the link is signed; it names an online booking, not a person)."""
    clinic, online = _clinic(slug)
    try:
        public_id = signing.loads(token, salt=services.DONE_SALT, max_age=dt.timedelta(days=1))
    except signing.BadSignature:
        raise Http404("This page has expired.") from None
    booking = (
        OnlineBooking.objects.for_clinic(clinic)
        .select_related("slot__session__practitioner", "slot__session__location", "slot_type", "appointment", "patient")
        .filter(public_id=public_id)
        .first()
    )
    if booking is None:
        raise Http404("This page has expired.")
    zone = patient_zone(request, booking.slot.session.time_zone)
    manage = (
        reverse("online:manage", args=[clinic.slug, services.manage_token(booking.appointment)])
        if booking.appointment
        else ""
    )
    context = {"clinic": clinic, "online": online, "booking": booking, "zone": zone, "manage": manage}
    return _page(request, "online/done.html", context)
