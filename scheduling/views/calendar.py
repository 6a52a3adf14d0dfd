"""The calendar: day/week/month grid, slot tooltips, other events, office hours and availability.

One view serves the page and its htmx fragment; every link keeps its href, so the calendar also
works without JavaScript and the back button works.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh, push_url

from clinic.access import ClinicRequest, viewer_today
from clinic.htmx import page_or_fragment, popup_done, popup_next
from clinic.models import NamedPermission, time_zone_names
from clinic.replica import reads_from_replica
from patients.display import staff_label
from patients.models import may_see_blocked
from scheduling.access import (
    event_for_manager,
    manageable_practitioners,
    manages_every_calendar,
    may_use_waitlist,
    override_for_manager,
    own_practitioner,
    practitioner_for_manager,
    slot_for_member,
)
from scheduling.forms import (
    CalendarFilterForm,
    EventKind,
    OtherEventForm,
    OverrideForm,
    WeeklyHoursForm,
    event_initial,
    new_slot_link,
)
from scheduling.grid import ALL_TAB, VIEWS, CalendarQuery, parse_query
from scheduling.hours import clean_ranges, weekly_from_json
from scheduling.models import AppointmentSource, OtherEvent
from scheduling.selectors import booking as booking_selectors
from scheduling.selectors import calendar as selectors
from scheduling.selectors.waitlist import group_closed_to_new, waiting_for_slot
from scheduling.services import calendar as services
from scheduling.services.booking import unbookable_reason
from scheduling.signals import source_names

SHORTCUTS = [
    ("Alt+C", "Open the calendar from any page"),
    ("t", "Today (keeps the view)"),
    ("← or p", "Previous day, week or month"),
    ("→ or n", "Next day, week or month"),
    ("d / w / m", "Day, week or month view"),
    ("e", "New other event"),
    ("?", "Show these shortcuts"),
    ("Esc", "Close a popup"),
]


def calendar_query(request: ClinicRequest) -> tuple[CalendarQuery, list[str]]:
    """The calendar the URL asks for; filters not in the URL come from the member's saved choice."""
    lists = {"p": request.GET.getlist("p"), "loc": request.GET.getlist("loc")}
    if not lists["p"] and not lists["loc"]:
        preference = selectors.calendar_preference(clinic=request.clinic, membership=request.membership)
        if preference is not None:
            lists = {"p": preference.practitioners, "loc": preference.locations}
    query, problems = parse_query(request.GET, lists, today=viewer_today(request))
    if "tab" not in request.GET and query.view != "month":
        own = own_practitioner(request)  # a clinician's calendar opens on their own tab
        if own is not None:
            query = replace(query, tab=str(own.public_id))
    return query, problems


def render_calendar(request: ClinicRequest, query: CalendarQuery, problems: Sequence[str] = ()) -> HttpResponse:
    clinic = request.clinic
    today = viewer_today(request)
    context = selectors.calendar_page(
        clinic=clinic, membership=request.membership, query=query, zone=request.viewer_zone, today=today
    )
    who = context["shown"]
    base = reverse("scheduling:calendar")
    days = [day for week in context.get("weeks", []) for day in week]
    days += context["grid"].groups if "grid" in context else []
    for day in days:
        day.url = base + query.params(view="day", date=day.date)
    context |= {
        "base": base,
        "today": today,
        "problems": problems,
        "zone": request.viewer_zone.key,
        "zone_detected": request.viewer_zone_detected,
        "previous_url": base + query.params(date=query.shifted(-1)),
        "next_url": base + query.params(date=query.shifted(1)),
        "today_url": base + query.params(date=today),
        "view_options": [(v, v.title(), base + query.params(view=v)) for v in VIEWS],
        "tabs": [("All", base + query.params(tab=ALL_TAB), who.tab is None)]
        + [(p.name, base + query.params(tab=str(p.public_id)), p == who.tab) for p in who.filtered],
        "filter_form": CalendarFilterForm(
            initial={"p": list(query.practitioners), "loc": list(query.locations)},
            practitioners=who.practitioners,
            locations=who.locations,
        ),
        "filtering": bool(query.practitioners or query.locations),
        "online_toggle_url": base + query.params(online_only=not query.online_only),
        "shortcuts": SHORTCUTS,
        "new_event_url": reverse("scheduling:event-new")
        + f"?date={query.date.isoformat()}"
        + (f"&practitioner={who.tab.public_id}" if who.tab else ""),
        "may_manage_appointments": request.membership.has_permission(NamedPermission.MANAGE_APPOINTMENTS),
    }
    template = "scheduling/calendar.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#calendar"
    response = render(request, template, context)
    response["Vary"] = "HX-Request"
    return response


@require_GET
@reads_from_replica  # the grid's reads (page and fragments); the member's access was read on the primary
def calendar(request: ClinicRequest) -> HttpResponse:
    query, problems = calendar_query(request)
    return render_calendar(request, query, problems)


@require_POST
def calendar_filters(request: ClinicRequest) -> HttpResponse:
    """Save the member's practitioner and location filters, then show the calendar with them."""
    current, _ = parse_query(request.POST, {}, today=viewer_today(request))
    who = selectors.shown(clinic=request.clinic, query=current, zone=request.viewer_zone)
    form = CalendarFilterForm(request.POST, practitioners=who.practitioners, locations=who.locations)
    if not form.is_valid():
        messages.error(request, "Those filters were not understood.")
        return redirect("scheduling:calendar")
    practitioners, locations = tuple(form.cleaned_data["p"]), tuple(form.cleaned_data["loc"])
    if request.POST.get("clear"):
        practitioners, locations = (), ()
    services.calendar_preference_save(
        clinic=request.clinic, membership=request.membership, practitioners=practitioners, locations=locations
    )
    query = replace(current, practitioners=practitioners, locations=locations)
    url = reverse("scheduling:calendar") + query.params()
    if not request.htmx:
        return redirect(url)
    return push_url(render_calendar(request, query), url)


@require_GET
def slot_detail(request: ClinicRequest, slot: UUID) -> HttpResponse:
    """The slot's tooltip: when, what, whose, places, and who is booked."""
    obj = slot_for_member(request, slot)
    sees_blocked = may_see_blocked(request.membership)
    booked = list(booking_selectors.slot_appointments(clinic=request.clinic, slot=obj))
    named = source_names(request.clinic.pk, [a.pk for a in booked if a.source != AppointmentSource.RECEPTION])
    people = [
        {
            "label": staff_label(
                first_name=a.patient.first_name,
                last_name=a.patient.last_name,
                preferred_name=a.patient.preferred_name,
                internal_id=a.patient.internal_id,
                is_blocked=a.patient.is_blocked,
                may_see_blocked=sees_blocked,
                internal_ids_enabled=request.clinic.internal_ids_enabled,
            ),
            "restricted": a.patient.is_blocked and not sees_blocked,
            "status": a.get_status_display(),
            "status_key": a.status,
            "public_id": a.public_id,
            "source": "" if a.source == AppointmentSource.RECEPTION else named.get(a.pk) or a.get_source_display(),
        }
        for a in booked
    ]
    session = obj.session
    context = {
        "slot": obj,
        "session": session,
        "people": people,
        "group": obj.capacity > 1,
        "started": session.starts_at <= timezone.now(),
        "calendar_url": reverse("scheduling:calendar")
        + CalendarQuery("day", obj.starts_at.astimezone(request.viewer_zone).date()).params(),
        "zone": request.viewer_zone.key,
        "unbookable": "" if obj.bookable else unbookable_reason(obj),
        "may_edit_session": request.membership.has_permission(NamedPermission.MANAGE_SESSIONS),
        "keeps_waitlist": may_use_waitlist(request.membership),
        "waiting": waiting_for_slot(request.clinic, obj) if obj.bookable and obj.starts_at > timezone.now() else 0,
        "closed_since": group_closed_to_new(request.clinic, session, timezone.now()),
    }
    return render(request, page_or_fragment(request, "scheduling/slot.html", "tip"), context)


# Other events -------------------------------------------------------------------------------------


def event_done(request: ClinicRequest, date: dt.date, message: str) -> HttpResponse:
    """After an event is saved or deleted: close the popup and refresh the grid, or go to the calendar."""
    calendar = reverse("scheduling:calendar")
    return popup_done(request, message, then=calendar + CalendarQuery("week", date).params(), popup_page=calendar)


@require_http_methods(["GET", "POST"])
def event_new(request: ClinicRequest) -> HttpResponse:
    zone = request.viewer_zone
    practitioners = manageable_practitioners(request)
    initial = event_initial(request.GET, today=viewer_today(request), practitioners=practitioners)
    form = OtherEventForm(request.POST or None, initial=initial, practitioners=practitioners, zone=zone)
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["kind"] == EventKind.CLIENT:
            return client_appointment(request, form)
        data = form.event_data()
        services.other_event_save(clinic=request.clinic, actor=request.user, data=data)
        return event_done(request, form.cleaned_data["date"], f"Added “{data.title}”.")
    return render_event_form(request, form, event=None)


NO_SLOT_NO_PERMISSION = (
    "{name} has no free slot at this time, and creating one needs the "
    "“Schedule Admin: Manage Appointments” permission. Choose a free slot on the calendar."
)


def client_appointment(request: ClinicRequest, form: OtherEventForm) -> HttpResponse:
    """The New event form's "Client appointment": booking opens at that practitioner and time, in the free
    slot there, else in Create New Slot (on the location's clock) for those who may create one."""
    practitioner = form.cleaned_data["practitioner"]
    starts, ends = form.client_time()
    clinic, calendar = request.clinic, reverse("scheduling:calendar")
    slot = booking_selectors.free_slot_during(clinic=clinic, practitioner=practitioner, starts=starts, ends=ends)
    if slot is not None:
        return popup_next(request, reverse("scheduling:book", args=[slot.public_id]), popup_page=calendar)
    if not request.membership.has_permission(NamedPermission.MANAGE_APPOINTMENTS):
        form.add_error(None, NO_SLOT_NO_PERMISSION.format(name=practitioner.name))
        return render_event_form(request, form, event=None)
    link = new_slot_link(clinic=clinic, practitioner=practitioner, starts=starts, ends=ends)
    new_slot = reverse("scheduling:slot-new") + "?" + urlencode({**link, "from": "event"})
    return popup_next(request, new_slot, popup_page=calendar)


def render_event_form(request: ClinicRequest, form: OtherEventForm, event: OtherEvent | None) -> HttpResponse:
    context = {"form": form, "event": event, "zone": request.viewer_zone.key}
    template = page_or_fragment(request, "scheduling/event_form.html", "tip")
    return render(request, template, context, status=422 if form.is_bound and form.errors and request.htmx else 200)


def google_event(request: ClinicRequest, obj: OtherEvent) -> HttpResponse:
    """An event pulled from Google is shown, not edited: it is changed in Google (409 to a change here)."""
    zone = request.viewer_zone
    context = {
        "event": obj,
        "starts": obj.starts_at.astimezone(zone) if obj.starts_at else None,
        "ends": obj.ends_at.astimezone(zone) if obj.ends_at else None,
        "zone": zone.key,
    }
    template = page_or_fragment(request, "scheduling/event_google.html", "tip")
    return render(request, template, context, status=409 if request.method == "POST" else 200)


@require_http_methods(["GET", "POST"])
def event_edit(request: ClinicRequest, event: UUID) -> HttpResponse:
    obj = event_for_manager(request, event)
    if obj.from_google:
        return google_event(request, obj)
    zone = request.viewer_zone
    initial: dict[str, Any]
    instants: tuple[dt.datetime, dt.datetime] | None = None
    if obj.all_day:
        initial = {"all_day": True, "date": obj.first_date, "last_date": obj.last_date}
    else:
        start, end = obj.starts_at.astimezone(zone), obj.ends_at.astimezone(zone)  # type: ignore[union-attr]
        instants = (start, end)
        initial = {"date": start.date(), "start_time": start.time(), "end_time": end.time()}
    initial |= {
        "kind": "other",
        "practitioner": obj.practitioner.public_id,
        "title": obj.title,
        "show_as": "busy" if obj.busy else "free",
        "notes": obj.notes,
    }
    posted = None
    if request.method == "POST":
        posted = request.POST.copy()
        posted["kind"] = EventKind.OTHER  # an event stays one (only a new one may open booking instead)
    practitioners = manageable_practitioners(request)
    form = OtherEventForm(posted, initial=initial, practitioners=practitioners, zone=zone, instants=instants)
    if request.method == "POST" and form.is_valid():
        data = form.event_data()
        services.other_event_save(clinic=request.clinic, actor=request.user, data=data, event=obj)
        return event_done(request, form.cleaned_data["date"], f"Saved “{data.title}”.")
    return render_event_form(request, form, event=obj)


@require_http_methods(["GET", "POST"])
def event_delete(request: ClinicRequest, event: UUID) -> HttpResponse:
    obj = event_for_manager(request, event)
    if obj.from_google:
        return google_event(request, obj)
    date = obj.first_date or obj.starts_at.astimezone(request.viewer_zone).date()  # type: ignore[union-attr]
    if request.method == "GET":
        return confirm_delete(
            request,
            heading="Delete event",
            question=f"Delete “{obj.title}” from the calendar of {obj.practitioner.name}? This cannot be undone.",
            cancel_url=reverse("scheduling:calendar") + CalendarQuery("week", date).params(),
        )
    title = obj.title
    services.other_event_delete(clinic=request.clinic, actor=request.user, event=obj)
    return event_done(request, date, f"Deleted “{title}”.")


# Office hours and availability ----------------------------------------------------------------------


@require_GET
def office_hours(request: ClinicRequest) -> HttpResponse:
    """Office Hours: the practice default and each practitioner's, for those this member may set."""
    practitioners = list(manageable_practitioners(request))
    default, own = selectors.office_hours_of(clinic=request.clinic, practitioner_ids=[p.pk for p in practitioners])
    rows = [{"practitioner": p, "hours": own.get(p.pk)} for p in practitioners]
    context = {
        "rows": rows,
        "default": default,
        "may_set_default": manages_every_calendar(request.membership),
    }
    return render(request, "scheduling/office_hours.html", context)


@require_http_methods(["GET", "POST"])
def office_hours_edit(request: ClinicRequest, practitioner: UUID | None = None) -> HttpResponse:
    """Set Office Hours: ranges per weekday and their zone, saved on every change."""
    if practitioner is None:
        if not manages_every_calendar(request.membership):
            raise PermissionDenied("Only admins and schedulers set the practice's default office hours.")
        owner = None
    else:
        owner = practitioner_for_manager(request, practitioner)
    hours = selectors.office_hours_own(clinic=request.clinic, practitioner=owner)
    if request.method == "POST" and request.POST.get("action") == "clear":
        services.office_hours_clear(clinic=request.clinic, actor=request.user, practitioner=owner)
        messages.success(request, "Office hours removed.")
        return redirect("scheduling:office-hours")
    form = WeeklyHoursForm(
        request.POST if request.method == "POST" else None,
        weekly=weekly_from_json(hours.weekly) if hours else {},
        time_zone=hours.time_zone if hours else selectors.hours_zone_default(clinic=request.clinic, practitioner=owner),
    )
    saved = False
    if request.method == "POST" and form.is_valid():
        hours = services.office_hours_save(
            clinic=request.clinic, actor=request.user, practitioner=owner, time_zone=form.time_zone, weekly=form.weekly
        )
        saved = True
        if not request.htmx and request.POST.get("action") == "save":
            messages.success(request, "Office hours saved.")
            return redirect("scheduling:office-hours")
    context = {
        "form": form,
        "owner": owner,
        "hours": hours,
        "saved": saved,
        "zones": time_zone_names(),
        "title": f"Office hours of {owner.name}" if owner else "Practice default office hours",
        "action_url": request.path,
    }
    template = page_or_fragment(request, "scheduling/office_hours_edit.html", "editor")
    return render(request, template, context, status=422 if request.method == "POST" and not saved else 200)


@require_GET
def availability(request: ClinicRequest) -> HttpResponse:
    """Manage Availability: choose whose (a clinician goes straight to their own)."""
    practitioners = list(manageable_practitioners(request))
    if len(practitioners) == 1 and not manages_every_calendar(request.membership):
        return redirect("scheduling:availability-edit", practitioner=practitioners[0].public_id)
    set_up = selectors.practitioners_with_availability(clinic=request.clinic, practitioners=practitioners)
    rows = [{"practitioner": p, "set_up": p.pk in set_up} for p in practitioners]
    return render(request, "scheduling/availability.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
def availability_edit(request: ClinicRequest, practitioner: UUID) -> HttpResponse:
    """A practitioner's weekly online-booking windows and their date overrides."""
    owner = practitioner_for_manager(request, practitioner)
    current = selectors.availability_of(clinic=request.clinic, practitioner=owner)
    posted = request.POST if request.method == "POST" else None
    part = request.POST.get("part", "weekly") if posted else ""
    weekly_form = WeeklyHoursForm(
        posted if part == "weekly" else None,
        weekly=weekly_from_json(current.weekly) if current else {},
        time_zone=current.time_zone
        if current
        else selectors.hours_zone_default(clinic=request.clinic, practitioner=owner),
    )
    override_form = OverrideForm(posted if part == "override" else None, dates=edit_dates(request))
    if part == "" and request.GET.get("date"):
        existing = selectors.availability_override_on(
            clinic=request.clinic, practitioner=owner, dates=edit_dates(request)
        )
        if existing is not None:
            override_form = OverrideForm(dates=[existing.date], hours=clean_ranges(existing.hours))
    saved = ""
    status = 200
    if part == "weekly":
        if weekly_form.is_valid():
            current = services.availability_save(
                clinic=request.clinic,
                actor=request.user,
                practitioner=owner,
                time_zone=weekly_form.time_zone,
                weekly=weekly_form.weekly,
            )
            saved = "weekly"
        else:
            status = 422
    elif part == "override" and request.POST.get("action") == "save":
        status = 422
        if override_form.is_valid():
            try:
                services.availability_overrides_set(
                    clinic=request.clinic,
                    actor=request.user,
                    practitioner=owner,
                    dates=override_form.dates,
                    hours=override_form.hours,
                )
            except ValidationError as refusal:
                override_form.errors = {"dates": refusal.messages[0]}
            else:
                messages.success(request, f"Saved the override for {len(set(override_form.dates))} date(s).")
                return redirect("scheduling:availability-edit", practitioner=owner.public_id)
    overrides = selectors.availability_overrides_from(
        clinic=request.clinic, practitioner=owner, first_date=request.clinic.today() - dt.timedelta(days=7)
    )
    context = {
        "owner": owner,
        "availability": current,
        "form": weekly_form,
        "override_form": override_form,
        "adding": part == "override" or bool(request.GET.get("add") or request.GET.get("date")),
        "overrides": [{"override": o, "hours": clean_ranges(o.hours)} for o in overrides],
        "saved": saved == "weekly",
        "zones": time_zone_names(),
        "action_url": request.path,
        "title": f"Availability of {owner.name}",
    }
    template = "scheduling/availability_edit.html"
    if request.htmx and part == "weekly":
        template += "#editor"
    elif request.htmx and part == "override":
        template += "#overrides"
    return render(request, template, context, status=status)


def edit_dates(request: ClinicRequest) -> list[dt.date]:
    try:
        return [dt.date.fromisoformat(request.GET["date"])] if request.GET.get("date") else []
    except ValueError:
        return []


def confirm_delete(request: ClinicRequest, *, heading: str, question: str, cancel_url: str) -> HttpResponse:
    """The page a delete button asks from without JavaScript (with it, a confirm() dialog asks)."""
    context = {"heading": heading, "question": question, "cancel_url": cancel_url, "confirm_label": heading}
    return render(request, "scheduling/confirm_delete.html", context)


@require_http_methods(["GET", "POST"])
def availability_override_delete(request: ClinicRequest, override: UUID) -> HttpResponse:
    obj = override_for_manager(request, override)
    back = reverse("scheduling:availability-edit", kwargs={"practitioner": obj.practitioner.public_id})
    if request.method == "GET":
        return confirm_delete(
            request,
            heading="Remove override",
            question=f"Remove the override for {obj.date:%A %d %B %Y}? The weekly hours will apply that day.",
            cancel_url=back,
        )
    services.availability_override_delete(clinic=request.clinic, actor=request.user, override=obj)
    messages.success(request, f"Removed the override for {obj.date:%A %d %B %Y}.")
    if request.htmx:
        return HttpResponseClientRefresh()
    return redirect(back)
