"""Tenancy: an object of another clinic is a 404, and every view goes through the scoping."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.urls import reverse

from clinic.models import Role
from tests.conftest import logged_in_client
from tests.factories import (
    ClinicFactory,
    DepartmentFactory,
    LocationFactory,
    MembershipFactory,
    OtherEventFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    book,
    draft_of_new_series,
    template_with_slots,
)
from tests.url_walk import all_routes

pytestmark = pytest.mark.django_db


# For each URL keyword that carries an object id: how to make such an object in a clinic.
# A new pattern with an unknown keyword fails test_every_object_url_is_404_for_an_outsider
# until it is added here, so no object URL escapes the check.
def make_allocation(clinic):
    import datetime as dt

    from scheduling.services.rota import AllocationRequest, allocation_create

    slot_type = SlotTypeFactory(clinic=clinic)
    template = template_with_slots(clinic, [slot_type] * 3, name="Walk AM")
    location = LocationFactory(clinic=clinic)
    actor = MembershipFactory(clinic=clinic, role=Role.ADMIN).user
    # In the future, so the removal page has something to remove.
    day = clinic.today() + dt.timedelta(days=7)
    request = AllocationRequest(template, None, location, dt.time(9), day, day, (), 1)
    return allocation_create(clinic=clinic, actor=actor, request=request)


def make_session(clinic):
    import datetime as dt

    return allocate_session(clinic, practitioner=PractitionerFactory(clinic=clinic), day=dt.date(2027, 6, 7))


def make_override(clinic):
    import datetime as dt

    from scheduling.models import AvailabilityOverride

    practitioner = PractitionerFactory(clinic=clinic)
    return AvailabilityOverride.objects.create(clinic=clinic, practitioner=practitioner, date=dt.date(2027, 6, 7))


def make_message(clinic):
    """A failed message (so its "Send again" step is a page to open)."""
    from django.utils import timezone

    from notifications.models import Message

    now = timezone.now()
    patient = PatientFactory(clinic=clinic, email="walk@example.org")
    return Message.objects.create(
        clinic=clinic, patient=patient, ref=f"walk-{patient.pk}", kind="confirmation", channel="email",
        status="failed", due_at=now, created_at=now,
    )  # fmt: skip


def make_online_request(clinic):
    """An online request waiting for reception (its hold taken through scheduling's service)."""
    import datetime as dt

    from django.utils import timezone

    from online.models import BookingMode, OnlineBooking, OnlineStatus
    from scheduling.models import HoldKind
    from scheduling.services.booking import hold_take

    slot = make_session(clinic).slots.first()
    hold = hold_take(
        clinic=clinic, actor=None, slot=slot, kind=HoldKind.ONLINE_REQUEST,
        expires_at=timezone.now() + dt.timedelta(hours=4),
    )  # fmt: skip
    return OnlineBooking.objects.create(
        clinic=clinic, patient=PatientFactory(clinic=clinic), slot=slot, slot_type=slot.slot_type,
        mode=BookingMode.REQUEST, status=OnlineStatus.PENDING, hold=hold,
    )  # fmt: skip


def make_waitlist_entry(clinic):
    """A patient waiting for a practitioner on Tuesday afternoons."""
    import datetime as dt

    from scheduling.models import WaitlistEntry, WaitlistKind

    return WaitlistEntry.objects.create(
        clinic=clinic, patient=PatientFactory(clinic=clinic), kind=WaitlistKind.PREFERENCE,
        practitioner=PractitionerFactory(clinic=clinic), weekdays="2", time_from=dt.time(13), position=1,
    )  # fmt: skip


def make_consumer(clinic):
    """A FHIR API consumer (its OAuth2 client made through the service)."""
    from fhir_api.services.consumers import consumer_create

    admin = MembershipFactory(clinic=clinic, role=Role.ADMIN).user
    return consumer_create(
        clinic=clinic, actor=admin, name=f"Walk {uuid.uuid4().hex[:8]}", organisation_type="urgent-care", ods_code="",
        scopes=["slot.read"], slot_types=[SlotTypeFactory(clinic=clinic)], rate_limit=60,
    ).consumer  # fmt: skip


def make_break_glass_use(clinic):
    from privacy.services.breakglass import break_glass

    member = MembershipFactory(clinic=clinic, role=Role.RECEPTION)
    patient = PatientFactory(clinic=clinic, is_blocked=True, blocked_reason="Walk")
    reason = "A walk through every object URL."
    return break_glass(
        clinic=clinic, actor=member.user, membership=member, patient=patient, category="other", reason=reason
    )


def make_user_session(clinic):
    """A signed-in session of the clinic's admin (the admin client's user): sessions are a user's own."""
    from django.contrib.auth import SESSION_KEY

    from clinic import user_sessions
    from clinic.models import Membership, UserSession

    user = Membership.objects.for_clinic(clinic).admins().order_by("id").first().user
    store = user_sessions.SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[user_sessions.SESSION_ID] = str(uuid.uuid4())
    store.create()
    return UserSession.objects.get(session_key=user_sessions.key_hash(store.session_key))


OBJECT_MAKERS = {
    "user_session": make_user_session,
    "member": lambda clinic: MembershipFactory(clinic=clinic, role=Role.RECEPTION),
    "slot_type": lambda clinic: SlotTypeFactory(clinic=clinic),
    "template": lambda clinic: template_with_slots(clinic, [SlotTypeFactory(clinic=clinic)] * 2),
    "allocation": make_allocation,
    "patient": lambda clinic: PatientFactory(clinic=clinic),
    "slot": lambda clinic: make_session(clinic).slots.first(),
    "event": lambda clinic: OtherEventFactory(clinic=clinic),
    "practitioner": lambda clinic: PractitionerFactory(clinic=clinic),
    "override": make_override,
    "appointment": lambda clinic: book(make_session(clinic).slots.first(), PatientFactory(clinic=clinic)),
    "draft": draft_of_new_series,
    "message": make_message,
    "booking": make_online_request,
    "session": make_session,
    "entry": make_waitlist_entry,
    "consumer": make_consumer,
    "use": make_break_glass_use,
    "public_id": None,  # generic tenant pages: resolved by the route name below
}


def coverage_kwargs(clinic):
    from patients.models import Coverage

    patient = PatientFactory(clinic=clinic)
    coverage = Coverage.objects.create(clinic=clinic, patient=patient, payer="A", plan_name="B", member_id="C")
    return {"patient": patient.public_id, "coverage": coverage.public_id}


def clinic_export_kwargs(clinic):
    """A finished clinic export and its download link's token (the worker's service run in this process)."""
    from privacy.models import ClinicExport
    from privacy.services.clinic_export import clinic_export_run, download_token

    export = ClinicExport.objects.create(clinic=clinic)
    clinic_export_run(export.pk)
    export.refresh_from_db()
    return {"export": export.public_id, "token": download_token(export)}


# Routes whose keywords must name related objects (a patient's own coverage) get all of them at once.
ROUTE_MAKERS = {"patients:coverage-edit": coverage_kwargs, "privacy:clinic-export-download": clinic_export_kwargs}


GENERIC_MAKERS = {
    "clinic:location-edit": lambda clinic: LocationFactory(clinic=clinic),
    "clinic:department-edit": lambda clinic: DepartmentFactory(clinic=clinic),
    "clinic:practitioner-edit": lambda clinic: PractitionerFactory(clinic=clinic),
}


def object_routes():
    """Staff routes that name a tenant object. (The public booking site's routes are open to anyone while the
    clinic books online; tests/online/test_public_input.py walks them, another clinic's objects included.)"""
    return [
        route
        for route in all_routes()
        if any(conv == "UUIDConverter" for conv in route.converters.values())
        and not getattr(route.callback, "clinic_public", False)
    ]


def test_there_are_object_urls_to_walk():
    assert len(object_routes()) >= 4


def test_every_object_url_is_404_for_an_outsider(clinic_a, outsider_client, admin_client_a):
    checked = []
    for route in object_routes():
        kwargs = ROUTE_MAKERS[route.name](clinic_a) if route.name in ROUTE_MAKERS else {}
        for key, conv in route.converters.items():
            if key in kwargs:
                continue
            assert conv == "UUIDConverter", f"{route.name}: add a maker for <{conv}:{key}>"
            assert key in OBJECT_MAKERS, f"{route.name}: add a maker for the URL keyword {key!r}"
            maker = OBJECT_MAKERS[key] or GENERIC_MAKERS.get(route.name)
            assert maker is not None, f"{route.name}: add a maker to GENERIC_MAKERS"
            kwargs[key] = maker(clinic_a).public_id
        url = reverse(route.name, kwargs=kwargs)
        # The object is real: its own clinic's admin can open it...
        assert admin_client_a.get(url).status_code == 200, url
        # ...and the outsider, an admin of clinic B with every permission, cannot tell it exists.
        assert outsider_client.get(url).status_code == 404, url
        # (A read-only page refuses POST with 405 before any lookup, the same for every id.)
        assert outsider_client.post(url, {}).status_code in (404, 405), url
        checked.append(route.name)
    assert set(GENERIC_MAKERS) <= set(checked)


def test_an_outsider_cannot_switch_into_another_clinic(clinic_a, outsider_client, outsider_b):
    response = outsider_client.post(reverse("clinic:switch"), {"clinic": str(clinic_a.public_id)})
    assert response.status_code == 404
    home = outsider_client.get(reverse("home"))
    assert home.context["request"].clinic == outsider_b.clinic


def test_switching_to_garbage_is_a_404_not_a_500(admin_client_a):
    for value in ("not-a-uuid", "", "00000000-0000-0000-0000-000000000000"):
        assert admin_client_a.post(reverse("clinic:switch"), {"clinic": value}).status_code == 404
    assert admin_client_a.get(reverse("clinic:switch")).status_code == 405


def test_lists_show_only_the_own_clinics_rows(clinic_a, clinic_b, admin_client_a):
    LocationFactory(clinic=clinic_a, name="Ours Surgery")
    LocationFactory(clinic=clinic_b, name="Theirs Surgery")
    PractitionerFactory(clinic=clinic_b, name="Dr Theirs")
    MembershipFactory(clinic=clinic_b, user__email="theirs@example.com", user__username="theirs@example.com")
    body = "".join(
        admin_client_a.get(reverse(name)).content.decode()
        for name in ("clinic:locations", "clinic:practitioners", "clinic:members", "scheduling:calendar")
    )
    assert "Ours Surgery" in body
    assert "Theirs Surgery" not in body
    assert "Dr Theirs" not in body
    assert "theirs@example.com" not in body


def test_anonymous_visitors_are_sent_to_login_from_every_private_page(client):
    for route in all_routes():
        if route.converters or getattr(route.callback, "clinic_public", False):
            continue
        response = client.get(reverse(route.name))
        assert response.status_code == 302, route.name
        assert response["Location"].startswith(reverse("login")), route.name


def test_htmx_requests_of_anonymous_visitors_redirect_the_whole_page(client):
    response = client.get(reverse("scheduling:calendar"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("login"))


def test_a_user_without_a_clinic_is_told_so(client):
    from tests.factories import UserFactory

    user = UserFactory()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get(reverse("home"))
    assert response.status_code == 403
    assert b"not a member of any clinic" in response.content


def test_a_suspended_membership_gives_no_access(admin_a, reception_a):
    reception_a.is_active = False
    reception_a.save()
    response = logged_in_client(reception_a).get(reverse("home"))
    assert response.status_code == 403


def test_reception_cannot_open_clinic_admin_pages(reception_client_a):
    for name in ("clinic:settings", "clinic:locations", "clinic:members", "clinic:member-add", "clinic:audit"):
        assert reception_client_a.get(reverse(name)).status_code == 403, name
    assert reception_client_a.get(reverse("sessions_setup:index")).status_code == 403


APPS = ("clinic", "sessions_setup", "scheduling", "patients", "calendar_sync", "notifications", "online", "privacy")
# Methods that read no tenant data: they write the rows given (with their clinic), or return nothing.
WRITES_ONLY = {"create", "bulk_create", "bulk_update", "none"}
# Deliberate queries of tenant data across clinics (or before a clinic is known), each with its reason.
# Key: "module Model.objects.method"; value: (how many such calls, why).
CROSS_CLINIC = {
    "clinic/selectors.py Membership.objects.filter": (1, "a user's own memberships, across clinics, to switch"),
    "calendar_sync/feed/sources.py FeedSubscription.objects.select_related": (
        1,
        "the feed URL has no session: its secret token names the subscription, and so the clinic",
    ),
    "calendar_sync/google/channels.py GoogleChannel.objects.select_related": (
        1,
        "Google's push notification has no session: the channel's secret token names the clinic",
    ),
    "calendar_sync/google/channels.py GoogleCalendar.objects.select_related": (1, "beat renews channels of all"),
    "calendar_sync/google/changes.py GoogleConnection.objects.filter": (
        3,
        "beat pulls every clinic's connections, and its sweep clears stale push marks and marks what it nudges "
        "in every clinic; scheduling's signal carries practitioner ids only",
    ),
    "calendar_sync/google/changes.py GooglePending.objects.values_list": (1, "the sweep pushes what waits"),
    "calendar_sync/feed/build.py FeedSubscription.objects.filter": (1, "scheduling's signal carries practitioner ids"),
    "calendar_sync/feed/build.py FeedChange.objects.filter": (1, "the sweep rebuilds every clinic's waiting feeds"),
    "calendar_sync/google/connection.py GoogleConnection.objects.select_related": (
        1,
        "a push or pull task gets only the connection's id; all after it goes through for_clinic",
    ),
    "calendar_sync/tasks.py FeedSubscription.objects.filter": (
        1,
        "build_feed gets only the subscription's id; all after it goes through for_clinic",
    ),
    "notifications/sending.py Message.objects.filter": (
        3,
        "beat's tick (due messages, stale claims) and a send task claiming the ids it was given; all after the "
        "claim goes through for_clinic",
    ),
    "notifications/recording.py NotificationSettings.objects.filter": (1, "beat finds every clinic's reminders"),
    "notifications/recording.py Appointment.objects.filter": (1, "beat finds every clinic's reminders at once"),
    "notifications/services.py Patient.objects.filter": (
        2,
        "an unsubscribe link names the patient (its signature is the permission); an SMS STOP names only a number",
    ),
    "notifications/services.py Message.objects.filter": (1, "Twilio's status callback names the message by its SID"),
    "online/selectors.py WaitlistOffer.objects.select_related": (
        1,
        "the public offer page: the offer its signed link names, found by the clinic's slug and the offer's id",
    ),
    "scheduling/services/waitlist.py FreedPlace.objects.filter": (
        2,
        "the offer run (a task loading the freed places it was given) and beat's sweep of freed places",
    ),
    "scheduling/services/quick.py PendingNews.objects.select_for_update": (
        1,
        "the worker tells the news rows it was given, each in its own transaction (each row names its clinic)",
    ),
    "scheduling/services/quick.py PendingNews.objects.order_by": (
        2,
        "the worker's nudged run and beat's sweep tell every clinic's waiting news",
    ),
    "scheduling/services/booking.py Hold.objects.live": (
        1,
        "beat's sweep ends every clinic's lapsed holds; each is then read and ended through for_clinic",
    ),
    "online/services.py EmailCheck.objects.filter": (1, "the hourly purge deletes every clinic's expired checks"),
    "privacy/selectors/breakglass.py BreakGlassAlert.objects.filter": (1, "beat's sweep of every clinic's alerts"),
    "privacy/services/breakglass.py BreakGlassAlert.objects.filter": (
        1,
        "a send task claiming the alert it was given; all after the claim goes through for_clinic",
    ),
    "privacy/services/clinic_export.py ClinicExport.objects.filter": (
        5,
        "the export task claims the row its id names, and beat's sweep handles every clinic's queued, stopped and "
        "expired exports by id",
    ),
    "privacy/services/clinic_export.py ClinicExport.objects.select_related": (
        1,
        "the export task reads the row it claimed with its clinic; all after it goes through for_clinic",
    ),
    "online/selectors.py OnlineSettings.objects.select_related": (
        1,
        "the public booking site has no session: its address names the clinic by its slug",
    ),
}


def tenant_models() -> dict[str, type]:
    """Our models that belong to a clinic (a `clinic` field), by class name."""
    return {
        model.__name__: model
        for model in apps.get_models()
        if model._meta.app_label in APPS and any(field.name == "clinic" for field in model._meta.fields)
    }


def _unscoped_calls(path: Path, tenant: dict[str, type], root: Path | None = None) -> list[str]:
    """Calls of <Model>.objects.<method> that may read tenant data without for_clinic, in one module.

    A receiver that is not a known model (``model.objects``, a variable) counts too: the guard cannot tell.
    """
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)):
            continue
        if node.value.attr != "objects" or node.attr == "for_clinic" or node.attr in WRITES_ONLY:
            continue
        receiver = ast.unparse(node.value.value)
        # The tenant; users; a user's own sign-in rows (their sessions, authenticator and recovery codes), which
        # belong to no clinic.
        known_other = receiver in (
            "Clinic", "get_user_model()", "user_model", "User", "UserSession", "TOTPDevice", "StaticDevice",
            "StaticToken",
        )  # fmt: skip
        if receiver in tenant or not known_other:
            where = path.relative_to(root or Path(settings.BASE_DIR))
            found.append(f"{where}:{node.lineno} {receiver}.objects.{node.attr}")
    return found


def test_every_module_reads_tenant_data_only_through_for_clinic():
    # Every module of every app: views, selectors, services, forms, Google code, receivers, tasks, demo seeds.
    base = Path(settings.BASE_DIR)
    tenant = tenant_models()
    problems = []
    for app in APPS:
        for path in sorted((base / app).rglob("*.py")):
            if "migrations" not in path.parts:
                problems += _unscoped_calls(path, tenant)
    counted: dict[str, int] = {}
    for problem in problems:
        key = problem.split(":")[0] + " " + problem.split(" ")[1]
        counted[key] = counted.get(key, 0) + 1
    assert counted == {key: count for key, (count, _why) in CROSS_CLINIC.items()}, problems


def test_the_guard_sees_an_unscoped_query_and_passes_a_scoped_one(tmp_path):
    # A module of its own outside the apps: the guard over the apps may run at the same time on another worker.
    module = tmp_path / "probe.py"
    module.write_text(
        "Appointment.objects.filter(connection=c)\n"
        "Appointment.objects.for_clinic(c).filter(practitioner_id=1)\n"
        "Appointment.objects.create(clinic=c)\n"
        "model.objects.get(pk=1)\n"
    )
    assert [p.split(" ")[1] for p in _unscoped_calls(module, tenant_models(), root=tmp_path)] == [
        "Appointment.objects.filter",
        "model.objects.get",
    ]


def test_the_clinic_switcher_lists_only_the_users_clinics(clinic_a, clinic_b, admin_a):
    ClinicFactory(name="Somebody Else's Clinic")
    MembershipFactory(clinic=clinic_b, user=admin_a.user, role=Role.RECEPTION)
    body = logged_in_client(admin_a).get(reverse("home")).content.decode()
    assert "Clinic A" in body and "Clinic B" in body
    assert "Somebody Else" not in body


def test_switching_clinics_changes_what_the_user_sees(clinic_a, clinic_b, admin_a):
    LocationFactory(clinic=clinic_b, name="Only In B")
    MembershipFactory(clinic=clinic_b, user=admin_a.user, role=Role.ADMIN)
    client = logged_in_client(admin_a)
    assert client.get(reverse("home")).context["request"].clinic == clinic_a
    assert "Only In B" not in client.get(reverse("clinic:locations")).content.decode()

    response = client.post(reverse("clinic:switch"), {"clinic": str(clinic_b.public_id)}, follow=True)
    assert response.context["request"].clinic == clinic_b
    assert "Now working in Clinic B" in response.content.decode()
    assert "Only In B" in client.get(reverse("clinic:locations")).content.decode()


def test_losing_the_active_membership_falls_back_to_another_clinic(clinic_a, clinic_b, admin_a):
    second = MembershipFactory(clinic=clinic_b, user=admin_a.user, role=Role.ADMIN)
    client = logged_in_client(admin_a)
    client.post(reverse("clinic:switch"), {"clinic": str(clinic_b.public_id)})
    second.delete()
    assert client.get(reverse("home")).context["request"].clinic == clinic_a
