"""Accessibility (issue 17, item 3): every page passes axe-core with no serious or critical violation.

For each role (admin with every permission, reception with "manage appointments", a clinician linked to
a practitioner) Chromium visits every GET page of the URL walk in a clinic with realistic data, then the
states a person reaches with JavaScript (the calendar's month, week and day with the slot popup open, the
new-event form, the booking form with a patient chosen, the keyboard shortcuts); signed out, the public
pages. axe-core (bundled by axe-playwright-python, nothing fetched) runs on each; a second check by DOM
query finds links and buttons without a name (icon-only ones above all).

A route the walk does not visit for a role is listed in SKIPPED with what it answers; the test asserts the
list is exactly that, so a new page cannot be left out without someone saying why.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any, cast

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from playwright.sync_api import Page, expect

from clinic.models import Membership, Role, UserSession
from fhir_api.models import Consumer
from fhir_api.services.consumers import consumer_create
from notifications.models import Message
from notifications.sending import unsubscribe_token
from online.services import done_token, manage_token, offer_token
from privacy.models import BreakGlass
from privacy.services.breakglass import break_glass
from tests.e2e.calendar_browser import WINTER_DAY, find_and_pick, settle_after, sign_in, tip
from tests.e2e.realistic_clinic import RealisticClinic, build_clinic
from tests.factories import TEST_PASSWORD, ClinicFactory, MembershipFactory, PatientFactory, UserFactory
from tests.url_walk import Route, all_routes

pytestmark = pytest.mark.django_db(transaction=True)

AXE = Axe()
FAILING_IMPACTS = {"serious", "critical"}
# axe rates an empty table header "minor"; issue 17 names it, so it fails at any impact.
ALWAYS_FAILING = {"empty-table-header"}

ROLES = ("admin", "reception", "clinician")
DAY = WINTER_DAY.isoformat()
FRIDAY = (WINTER_DAY + dt.timedelta(days=4)).isoformat()

# What a route answers a role when it is not an HTML page for them: the status, or the redirect, or the
# content type. Anything else is visited.
POST_ONLY = "405"
SKIPPED_FOR_EVERYONE = {
    "healthz": "200 text/plain",
    "time-zone": POST_ONLY,
    "logout": POST_ONLY,
    "login": "302 (signed in already)",
    "password_reset_confirm": "302 (to its set-password address; visited signed out)",
    "clinic:switch": POST_ONLY,
    # The second step, for a member without an authenticator: to its set-up (a page, visited); the second step's
    # own page and the recovery codes shown are visited in tests/e2e/test_sign_in_security.py.
    "two-factor": "302 (to set up two-factor: no authenticator yet)",
    "session-status": "200 application/json",
    "scheduling:calendar-filters": POST_ONLY,
    "calendar_sync:feed": "200 text/calendar",
    "calendar_sync:google-connect": POST_ONLY,
    "calendar_sync:google-callback": "302 (Google sign-in was never started)",
    "calendar_sync:google-default": "302 (not connected to Google)",
    "calendar_sync:google-calendar": POST_ONLY,
    "calendar_sync:google-sync-now": POST_ONLY,
    "calendar_sync:google-focus-time": POST_ONLY,
    "calendar_sync:google-disconnect": POST_ONLY,
    "calendar_sync:google-webhook": POST_ONLY,
    "notifications:twilio-status": POST_ONLY,
    "notifications:twilio-inbound": POST_ONLY,
}
# The FHIR API answers machines in JSON (its pages for people are the admins' consumer pages, below).
NO_TOKEN = "401 (the FHIR API, without a bearer token)"
FHIR_API_ROUTES = {
    "fhir_api:token": POST_ONLY,
    "fhir_api:metadata": "200 application/fhir+json",
    **dict.fromkeys(
        (
            "fhir_api:slot-search",
            "fhir_api:slot",
            "fhir_api:schedule",
            "fhir_api:practitioner",
            "fhir_api:practitioner-role",
            "fhir_api:location",
            "fhir_api:organization",
            "fhir_api:patient-search",
            "fhir_api:patient",
            "fhir_api:patient-appointments",
            "fhir_api:appointments",
            "fhir_api:appointment",
            "fhir_api:unknown",
        ),
        NO_TOKEN,
    ),
}
SKIPPED_FOR_EVERYONE |= FHIR_API_ROUTES
ADMINS_ONLY = "403 (clinic admins only)"
CLINIC_ADMIN_PAGES = dict.fromkeys(
    (
        "clinic:settings",
        "clinic:members",
        "clinic:member-add",
        "clinic:member-edit",
        "clinic:member-remove",
        "clinic:audit",
        "clinic:locations",
        "clinic:location-add",
        "clinic:location-edit",
        "clinic:departments",
        "clinic:department-add",
        "clinic:department-edit",
        "clinic:practitioners",
        "clinic:practitioner-add",
        "clinic:practitioner-edit",
        "clinic:signin-settings",
        "clinic:member-two-factor-reset",
        "notifications:settings",
        "online:settings",
        "online:practitioner",
        "fhir_api:consumers",
        "fhir_api:consumer-add",
        "fhir_api:consumer-edit",
        "fhir_api:consumer-rotate",
        "fhir_api:consumer-revoke",
        "privacy:clinic-export",
        "privacy:clinic-export-download",
        "privacy:retention",
    ),
    ADMINS_ONLY,
)
# A patient's data: admins (and privacy officers) export it, admins erase it; the walk's reception and clinician
# are neither.
PATIENT_DATA_PAGES = {
    "privacy:patient-export": "403 (admins and privacy officers export a patient's data)",
    "privacy:patient-erase": "403 (admins erase a record)",
}
MANAGE_SESSIONS = "403 (needs Setup: Manage Sessions)"
SESSION_SETUP_PAGES = dict.fromkeys(
    (
        "sessions_setup:index",
        "sessions_setup:slot-types",
        "sessions_setup:slot-type-add",
        "sessions_setup:slot-type-edit",
        "sessions_setup:templates",
        "sessions_setup:template-add",
        "sessions_setup:template-edit",
        "scheduling:rota",
        "scheduling:allocate",
        "scheduling:allocation-remove",
        "scheduling:take-out",
        "scheduling:template-apply",
        "scheduling:session-edit",
        "scheduling:session-resume",
    ),
    MANAGE_SESSIONS,
)
CSV = {"scheduling:roster-csv": "200 text/csv"}
WAITLIST_PAGES = dict.fromkeys(
    (
        "scheduling:waitlist",
        "scheduling:waitlist-add",
        "scheduling:waitlist-settings",
        "scheduling:waitlist-entry",
        "scheduling:waitlist-remove",
        "scheduling:roster",
        "scheduling:roster-csv",
        "scheduling:roster-attendance",
    ),
    "403 (reception and admins keep the waiting list)",
)
NOT_OWN_GOOGLE = {"calendar_sync:google-default": "403 (only a practitioner connects their own Google account)"}
PRIVACY_OFFICER_PAGES = dict.fromkeys(("privacy:reviews", "privacy:review"), "403 (privacy officers only)")
SKIPPED: dict[str, dict[str, str]] = {
    "admin": SKIPPED_FOR_EVERYONE
    | NOT_OWN_GOOGLE
    | CSV
    | {"sessions_setup:index": "302 (to the session templates)"}
    | {"privacy:clinic-export-download": "200 application/zip (the export's file, once)"},
    "reception": SKIPPED_FOR_EVERYONE
    | NOT_OWN_GOOGLE
    | CLINIC_ADMIN_PAGES
    | SESSION_SETUP_PAGES
    | CSV
    | PRIVACY_OFFICER_PAGES
    | PATIENT_DATA_PAGES
    | {"scheduling:waitlist-settings": ADMINS_ONLY},
    "clinician": SKIPPED_FOR_EVERYONE
    | PRIVACY_OFFICER_PAGES
    | CLINIC_ADMIN_PAGES
    | PATIENT_DATA_PAGES
    | WAITLIST_PAGES
    | SESSION_SETUP_PAGES
    | dict.fromkeys(
        (
            "patients:add",
            "patients:edit",
            "patients:archive",
            "patients:import",
            "patients:coverage-add",
            "patients:coverage-edit",
            "patients:merge",
        ),
        "403 (reception and admins change patient records)",
    )
    | dict.fromkeys(
        ("notifications:list", "notifications:detail", "notifications:resend"),
        "403 (reception and admins read the messages to patients)",
    )
    | dict.fromkeys(
        ("online:requests", "online:accept", "online:decline"), "403 (reception and admins answer online requests)"
    )
    | {"scheduling:displaced": "403 (reception and admins deal with displaced patients)"}
    | {
        "scheduling:appointments-report": "403 (needs Schedule Admin: Manage Appointments)",
        "scheduling:slot-new": "403 (needs Schedule Admin: Manage Appointments)",
        "scheduling:office-hours-default": "403 (admins and schedulers set the practice's hours)",
    }
    | {"scheduling:availability": "302 (to the clinician's own availability)"},
}


def route_kwargs(route: Route, world: RealisticClinic, role: str) -> dict[str, Any]:
    """Real ids for every URL keyword of a route."""
    user = world.members[role].user
    user.refresh_from_db()  # signed in since: the reset token covers last_login
    by_keyword: dict[str, Any] = {
        "member": world.members["reception"].public_id,
        "slot_type": world.slot_types[0].public_id,
        "template": world.template.public_id,
        "allocation": world.allocation.public_id,
        "patient": world.mary.public_id,
        "coverage": world.coverage.public_id,
        "slot": world.group_slot.public_id,
        "event": world.event.public_id,
        "practitioner": world.smith.public_id,
        "override": world.override.public_id,
        "appointment": world.appointment.public_id,
        "draft": world.draft.public_id,
        "message": failed_message(world).public_id,
        "token": world.feed_token,
        "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
        "slug": world.clinic.slug,
        "booking": world.online_request.public_id,
        "session": world.session.public_id,
        "entry": world.waitlist_entry.public_id,
        "consumer": walk_consumer(world).public_id,
        "use": walk_break_glass(world).public_id,
        # The session the walk signed in with (none when the walk is signed out).
        "user_session": UserSession.objects.filter(user=user, public_id__isnull=False)
        .values_list("public_id", flat=True)
        .first(),
    }
    online_type = world.online_type.public_id
    manage = manage_token(world.appointment)
    by_route: dict[str, dict[str, Any]] = {
        "clinic:location-edit": {"public_id": world.main.public_id},
        "clinic:department-edit": {"public_id": world.department.public_id},
        "clinic:practitioner-edit": {"public_id": world.smith.public_id},
        "scheduling:book": {"slot": world.free_slot.public_id},
        "scheduling:session-resume": {"session": world.out_session.public_id},  # a session taken out
        "scheduling:series-new": {"slot": world.free_slot.public_id},
        # The blocked patient: the reason form for members without the permission ("no need" for the admin).
        "privacy:break-glass": {"patient": world.blocked.public_id},
        "notifications:unsubscribe": {"token": unsubscribe_token(str(world.mary.public_id), "email")},
        "password_reset_confirm": {"token": default_token_generator.make_token(user)},
        "online:times": {"slot_type": online_type},
        "online:details": {"slot_type": online_type, "slot": world.online_slot.public_id},
        "online:check": {"token": world.email_check.token},
        "online:done": {"token": done_token(world.online_request)},
        "online:manage": {"token": manage},
        "online:move": {"token": manage},
        "online:offer": {"token": offer_token(world.offer)},
        # The FHIR API's ids (any: without a token, every one is answered 401 before it is looked up).
        **dict.fromkeys(
            (
                "fhir_api:slot",
                "fhir_api:schedule",
                "fhir_api:practitioner",
                "fhir_api:practitioner-role",
                "fhir_api:location",
                "fhir_api:organization",
                "fhir_api:patient",
                "fhir_api:patient-appointments",
                "fhir_api:appointment",
            ),
            {"public_id": str(world.free_slot.public_id)},
        ),
        "fhir_api:unknown": {"rest": "Encounter"},
        "privacy:clinic-export-download": walk_export(world) if route.name == "privacy:clinic-export-download" else {},
    }
    kwargs = dict(by_route.get(route.name, {}))
    for keyword in route.converters:
        if keyword not in kwargs:
            assert keyword in by_keyword, f"{route.name}: give the walk a real value for <{keyword}>"
            kwargs[keyword] = by_keyword[keyword]
    return kwargs


def failed_message(world: RealisticClinic) -> Message:
    """A message of the clinic that failed (so its Send again step is a page to open)."""
    now = timezone.now()
    message, _ = Message.objects.get_or_create(
        clinic=world.clinic,
        ref="walk",
        kind="confirmation",
        channel="email",
        defaults={
            "patient": world.mary,
            "status": "failed",
            "detail": "The mail server refused",
            "due_at": now,
            "created_at": now,
        },
    )
    return message


def walk_consumer(world: RealisticClinic) -> Consumer:
    """A FHIR API consumer of the clinic (so its page and its New secret and Revoke steps are pages to open)."""
    found = Consumer.objects.for_clinic(world.clinic).first()
    if found is not None:
        return found
    admin = world.members["admin"]
    return consumer_create(
        clinic=world.clinic,
        actor=admin.user,
        name="NHS 111 (walk)",
        organisation_type="urgent-care",
        ods_code="NHS111",
        scopes=["slot.read", "appointment.read", "appointment.write"],
        slot_types=world.slot_types[:1],
        rate_limit=120,
    ).consumer


def walk_break_glass(world: RealisticClinic) -> BreakGlass:
    """A use of break-glass waiting for review (by a member of its own, so the walk's members get no grant)."""
    found = BreakGlass.objects.for_clinic(world.clinic).first()
    if found is not None:
        return found
    member = cast(
        "Membership",
        MembershipFactory(clinic=world.clinic, role=Role.RECEPTION, user__first_name="Gus", user__last_name="Glass"),
    )
    return break_glass(
        clinic=world.clinic,
        actor=member.user,
        membership=member,
        patient=world.blocked,
        category="clinical_emergency",
        reason="Collapsed in the waiting room; the GP needed the allergies.",
    )


def walk_export(world: RealisticClinic) -> dict[str, Any]:
    """A finished export of the clinic and its download link (the worker's service run in this process)."""
    from privacy.models import ClinicExport
    from privacy.services.clinic_export import clinic_export_run, download_token

    export = ClinicExport.objects.create(clinic=world.clinic, requested_by=world.members["admin"].user)
    clinic_export_run(export.pk)
    export.refresh_from_db()
    return {"export": export.public_id, "token": download_token(export)}


def extra_visits(world: RealisticClinic) -> dict[str, list[str]]:
    """More addresses of some routes: the states their query strings open (results, a chosen patient...)."""
    mary = world.mary.public_id
    return {
        # Friday: Dr Patel's cancelled session, its patient still at the old time, to rebook.
        "scheduling:calendar": [f"?view=week&date={DAY}", f"?view=day&date={FRIDAY}"],
        "scheduling:day-sessions": [f"?date={DAY}", f"?date={FRIDAY}"],
        "scheduling:book": ["?q=thorn", f"?patient={mary}"],
        "scheduling:series-new": [f"?patient={mary}"],
        "scheduling:slot-new": [f"?date={DAY}&practitioner={world.smith.public_id}"],
        "scheduling:appointments-report": [f"?first_date={DAY[:8]}01&last_date={DAY[:8]}31"],
        "scheduling:availability-edit": ["?add=1"],
        "patients:list": ["?q=thorn", f"?q={world.blocked.internal_id}"],
        "privacy:reviews": ["?state=closed"],
        "calendar_sync:index": [f"?practitioner={world.smith.public_id}"],
        # The waiting list's other kinds and states, and adding a patient for a full group slot (both steps).
        "scheduling:waitlist": ["?state=removed", "?kind=slot"],
        "scheduling:waitlist-add": [f"?slot={world.group_slot.public_id}&q=thorn", f"?patient={mary}"],
    }


# The calendar's items and the session chips: axe must be able to judge their contrast. (Over the grid's
# hour lines, a see-through item's background is a gradient to axe: it leaves it "incomplete", unjudged.)
# Blank slots keep their stripes; their grey text reaches 4.5:1 on both stripe colours.
BACKGROUND_UNKNOWN = {"bgGradient", "bgImage", "bgOverlap", "elmPartiallyObscured", "elmPartiallyObscuring"}
UNJUDGED = """(targets) => targets.filter((target) => {
  const el = document.querySelector(target);
  return el && el.closest(".slot:not(.blank), .sess, .ev, .allday-chip, .session-chip, .month-day");
})"""


def accessibility_problems(page: Page, where: str, within: str | None = None) -> list[str]:
    """Serious and critical axe violations (and the always-failing rules) of the page as it is now (or of one
    part of it), and the calendar items whose contrast axe could not judge."""
    results = AXE.run(page, context=within, options={"resultTypes": ["violations", "incomplete"]})
    found = []
    for violation in results.response["violations"]:
        if violation["impact"] not in FAILING_IMPACTS and violation["id"] not in ALWAYS_FAILING:
            continue
        for node in violation["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            html = " ".join(node["html"].split())[:100]
            found.append(f"{violation['id']} ({node.get('impact') or violation['impact']}) {target} at {where}: {html}")
    for result in results.response["incomplete"]:
        if result["id"] != "color-contrast":
            continue
        reasons = {
            str(node["target"][-1]): check["data"]["messageKey"]
            for node in result["nodes"]
            for check in node["any"]
            if isinstance(check.get("data"), dict) and check["data"].get("messageKey") in BACKGROUND_UNKNOWN
        }
        found += [
            f"color-contrast (not judged: {reasons[target]}) {target} at {where}"
            for target in page.evaluate(UNJUDGED, list(reasons))
        ]
    return found


# Links and buttons whose accessible name is empty, or only symbols (an icon, "×"): name, text that is not
# aria-hidden (visually hidden counts), an img's alt, a role="img" or svg label, or a title.
UNNAMED_CONTROLS = r"""() => {
  const wordy = (text) => /[\p{L}\p{N}]/u.test(text || "");
  const hidden = (node, root) => {
    for (let n = node.nodeType === 1 ? node : node.parentElement; n && n !== root.parentElement; n = n.parentElement) {
      if (n.getAttribute("aria-hidden") === "true") { return true; }
    }
    return false;
  };
  const named = (el) => {
    if (wordy(el.getAttribute("aria-label")) || wordy(el.getAttribute("title"))) { return true; }
    const ids = (el.getAttribute("aria-labelledby") || "").split(/\s+/).filter(Boolean);
    const text = (id) => (document.getElementById(id) || {}).textContent;
    if (ids.some((id) => wordy(text(id)))) { return true; }
    if (el.matches("input") && wordy(el.value)) { return true; }
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (hidden(n, el)) { continue; }
      if (n.nodeType === 3 && wordy(n.textContent)) { return true; }
      if (n.nodeType !== 1) { continue; }
      if (wordy(n.getAttribute("alt"))) { return true; }
      if (n.matches("[role=img], svg") && wordy(n.getAttribute("aria-label"))) { return true; }
      if (n.matches("svg") && wordy((n.querySelector("title") || {}).textContent)) { return true; }
    }
    return false;
  };
  // Hidden from assistive technology and out of the tab order (a form's default button): no control.
  const absent = (el) => el.closest("[aria-hidden=true]") && el.getAttribute("tabindex") === "-1";
  const controls = document.querySelectorAll(
    "a[href], button, summary, [role=button], [role=link], input[type=submit], input[type=button], input[type=image]");
  return Array.from(controls).filter((el) => !absent(el) && !named(el)).map((el) => el.outerHTML.slice(0, 200));
}"""


def unnamed_controls(page: Page, where: str) -> list[str]:
    return [f"unnamed control {html} at {where}" for html in page.evaluate(UNNAMED_CONTROLS)]


def check(page: Page, where: str, found: list[str], within: str | None = None) -> None:
    found += accessibility_problems(page, where, within)
    found += unnamed_controls(page, where)


def classify(page: Page, url: str) -> str:
    """ "page" for an HTML page, else what the address answers (a status, a redirect, a content type)."""
    response = page.request.get(url, max_redirects=0)
    kind = response.headers.get("content-type", "").split(";")[0]
    if response.status == 200 and kind == "text/html":
        return "page"
    return f"{response.status} {kind}" if response.status == 200 else str(response.status)


def open_calendar(page: Page, base: str, query: str) -> None:
    page.goto(f"{base}/calendar/{query}")
    expect(page.locator("#calendar")).to_be_visible()


def calendar_states(page: Page, base: str, world: RealisticClinic, role: str, found: list[str]) -> list[str]:
    """The calendar as JavaScript leaves it: views, the slot popup, the new-event form, booking, shortcuts.
    With a dialog open, axe checks the dialog: the page behind it (inert then) is the view checked before."""
    seen = []
    open_calendar(page, base, f"?view=month&date={DAY}")
    check(page, "calendar month", found)
    seen.append("month")

    open_calendar(page, base, f"?view=week&date={DAY}&tab={world.smith.public_id}")
    check(page, "calendar week", found)
    settle_after(page, lambda: page.locator(f"#slot-{world.booked_slot.public_id}").click())
    expect(tip(page)).to_be_visible()
    check(page, "calendar week, slot popup of a booked slot", found, within="#tip")
    page.keyboard.press("Escape")
    seen.append("week")

    open_calendar(page, base, f"?view=day&date={DAY}&tab={world.smith.public_id}")
    check(page, "calendar day", found)
    settle_after(page, lambda: page.locator(f"#slot-{world.group_slot.public_id}").click())
    expect(tip(page)).to_be_visible()
    check(page, "calendar day, slot popup of a group slot", found, within="#tip")
    book_link = tip(page).get_by_role("link", name="Book Appointment", exact=True)
    if book_link.count():
        settle_after(page, book_link.click)
        find_and_pick(page, "thorn", "Thornbury, Mary")
        check(page, "calendar day, booking form with a patient chosen", found, within="#tip")
        seen.append("booking")
    page.keyboard.press("Escape")
    expect(tip(page)).to_be_hidden()

    settle_after(page, lambda: page.keyboard.press("e"))
    expect(tip(page).get_by_role("heading", name=re.compile("event", re.I)).first).to_be_visible()
    check(page, "calendar day, new event form", found, within="#tip")
    page.keyboard.press("Escape")
    seen.append("new event")

    page.keyboard.press("?")
    expect(page.locator("dialog#shortcuts")).to_be_visible()
    check(page, "calendar day, keyboard shortcuts", found, within="#shortcuts")
    page.keyboard.press("Escape")
    seen.append("shortcuts")
    return seen


def status_of(outcome: str) -> str:
    return outcome.split(" ")[0]


def skip_list_problems(skipped: dict[str, str], expected: dict[str, str]) -> list[str]:
    """How the routes the walk left out differ from the expected list (by name and status)."""
    return [
        f"skipped {name}: {skipped.get(name, 'visited')} (expected {expected.get(name, 'a page to visit')})"
        for name in sorted(set(skipped) | set(expected))
        if status_of(skipped.get(name, "visited")) != status_of(expected.get(name, "visited"))
    ]


def report(found: list[str], differences: Sequence[str] = ()) -> str:
    lines = [f"{len(differences)} differences from the skip list:", *differences] if differences else []
    return "\n".join([*lines, f"{len(found)} accessibility problems:", *found])


@pytest.mark.parametrize("role", ROLES)
def test_every_page_passes_axe(role, page, live_server, js_errors, csp_violations):
    world = build_clinic()
    membership = world.members[role]
    base = live_server.url
    sign_in(page, live_server, membership)

    found: list[str] = []
    skipped: dict[str, str] = {}
    visited: list[str] = []
    more = extra_visits(world)
    for route in all_routes():
        url = base + reverse(route.name, kwargs=route_kwargs(route, world, role))
        outcome = classify(page, url)
        if outcome != "page":
            skipped[route.name] = outcome
            continue
        for query in ["", *more.get(route.name, [])]:
            response = page.goto(url + query)
            assert response is not None and response.ok, f"{url + query}: {response and response.status}"
            check(page, url.removeprefix(base) + query, found)
            visited.append(route.name)
    google = base + reverse("scheduling:event-edit", kwargs={"event": world.google_event.public_id})
    page.goto(google)
    check(page, "an event from Google", found)

    states = calendar_states(page, base, world, role, found)
    if role != "clinician":  # the walk saw the worklist with its row waiting (Dr Patel's patient)
        page.goto(base + reverse("scheduling:displaced"))
        expect(page.locator("form.worklist tbody tr")).to_have_count(1)

    assert len(set(visited)) > 20
    assert "booking" in states or role == "clinician"
    differences = skip_list_problems(skipped, SKIPPED[role])
    assert differences + found == [], report(found, differences)
    assert js_errors == []
    assert csp_violations == []


ONLINE_PUBLIC = (
    "online:landing",
    "online:times",
    "online:details",
    "online:check",
    "online:done",
    "online:manage",
    "online:move",
    "online:offer",
)


def test_the_public_pages_pass_axe(page, live_server, js_errors, csp_violations):
    """Signed out: the patients' online booking pages, sign-in (and its errors), password reset and its pages,
    locked out; and a signed-in user of no clinic."""
    base = live_server.url
    user = UserFactory()
    found: list[str] = []
    public = {route.name for route in all_routes() if getattr(route.callback, "clinic_public", False)}
    assert public == {
        "healthz",
        "login",
        "logout",
        "two-factor",
        "two-factor-setup",
        "session-status",
        "password_reset",
        "password_reset_done",
        "password_reset_confirm",
        "password_reset_complete",
        "calendar_sync:feed",
        "calendar_sync:google-webhook",
        "notifications:unsubscribe",
        "notifications:twilio-status",
        "notifications:twilio-inbound",
        *ONLINE_PUBLIC,
        *FHIR_API_ROUTES,
    }, "a new public route: visit it here if it is a page"

    # The patients' booking site, as a patient sees it (signed out): every page, with real ids and tokens.
    world = build_clinic()
    for name in ONLINE_PUBLIC:
        route = next(route for route in all_routes() if route.name == name)
        response = page.goto(base + reverse(name, kwargs=route_kwargs(route, world, "admin")))
        assert response is not None and response.status == 200, f"{name}: {response and response.status}"
        check(page, f"{name} (signed out)", found)

    # A patient's unsubscribe link: the question, the answer, and a broken link.
    patient = PatientFactory(clinic=ClinicFactory(), email="walk@example.org")
    leave = base + reverse("notifications:unsubscribe", args=[unsubscribe_token(str(patient.public_id), "email")])
    page.goto(leave)
    check(page, "unsubscribe: the question", found)
    page.get_by_role("button", name="Unsubscribe from emails").click()
    expect(page.get_by_role("status")).to_contain_text("You are unsubscribed")
    check(page, "unsubscribe: done", found)
    page.goto(leave[:-6] + "broken/")
    check(page, "unsubscribe: a broken link", found)

    for name in ("login", "password_reset", "password_reset_done", "password_reset_complete"):
        page.goto(base + reverse(name))
        check(page, name, found)
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    page.goto(base + reverse("password_reset_confirm", args=[uid, default_token_generator.make_token(user)]))
    expect(page.get_by_label("New password", exact=True)).to_be_visible()
    check(page, "password reset: choose a new password", found)
    page.goto(base + reverse("password_reset_confirm", args=[uid, "bad-token"]))
    check(page, "password reset: a used or wrong link", found)

    page.goto(base + reverse("login"))
    page.get_by_label("Email").fill(user.username)
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".errorlist")).to_be_visible()
    check(page, "sign-in refused", found)
    for _ in range(6):  # AXES_FAILURE_LIMIT is 5, counted per address and email
        if page.get_by_role("heading", name="Too many failed sign-ins").count():
            break
        page.get_by_label("Email").fill("nobody@example.com")
        page.get_by_label("Password").fill("wrong")
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Too many failed sign-ins")).to_be_visible()
    check(page, "locked out", found)

    page.goto(base + reverse("login"))
    page.get_by_label("Email").fill(user.username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="You are not a member of any clinic")).to_be_visible()
    check(page, "signed in, member of no clinic", found)
    # Logging out lands on the sign-in page (LOGOUT_REDIRECT_URL): registration/logged_out.html is never shown.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()

    assert found == [], report(found)
    assert js_errors == []
    assert csp_violations == []


def test_the_name_check_finds_icon_only_controls_without_a_name(page):
    """The DOM check beside axe: an icon (an svg, a symbol) is no name; a label, visually hidden text or a
    labelled image is; a form's default button hidden from assistive technology is no control at all."""
    page.set_content(
        """<main>
        <button id="a"><svg aria-hidden="true" width="8" height="8"></svg></button>
        <a id="b" href="#">×</a>
        <details><summary id="c">▾</summary></details>
        <button id="d"><span aria-hidden="true">Delete</span></button>
        <button aria-label="Close">×</button>
        <a href="#"><span class="visually-hidden">Previous week</span> ‹</a>
        <button><svg role="img" aria-label="Filter" width="8" height="8"></svg></button>
        <button><svg width="8" height="8"><title>Lock</title></svg></button>
        <a href="#"><img alt="Google" src="data:,"></a>
        <button type="submit" tabindex="-1" aria-hidden="true">Save</button>
        <button>Book</button>
        </main>"""
    )
    found = page.evaluate(UNNAMED_CONTROLS)
    assert [re.search(r'id="(\w)"', html).group(1) for html in found] == ["a", "b", "c", "d"]
