"""Break-glass (issue 24, item 3): a member without "Privacy: Access Blocked Patients" finds a blocked patient only by
an exact identifier, breaks glass with a reason, then opens and books that patient (audited as break-glass) for a
short time; the privacy officers get one email each and review the use on the Break-glass review page."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditEvent, Role
from privacy.models import BREAK_GLASS_MINUTES, AlertStatus, BreakGlass, BreakGlassAlert, BreakGlassCategory
from privacy.selectors.breakglass import alerts_waiting
from privacy.services.breakglass import alerts_send, break_glass, review_close
from privacy.tasks import break_glass_alerts_sweep
from scheduling.models import Appointment
from scheduling.services.booking import appointment_cancel
from tests.conftest import logged_in_client, tasks_in_process
from tests.factories import MembershipFactory, PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_session
from tests.smtp_server import SmtpServer, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = pytest.mark.django_db

DAY = dt.date(2027, 6, 7)
REASON = "Collapsed at the front desk; the GP needs her allergies now."


@pytest.fixture
def hidden(clinic_a):
    return PatientFactory(
        clinic=clinic_a,
        first_name="Hester",
        last_name="Hidden",
        internal_id="P000777",
        national_id_kind="nhs",
        national_id="9434765919",
        is_blocked=True,
        blocked_reason="A member of staff",
    )


@pytest.fixture
def slot(clinic_a):
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Glass")
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine")
    return allocate_session(clinic_a, practitioner=practitioner, day=DAY, slot_types=[routine, routine]).slots.first()


def glass_url(patient, next_url=""):
    url = reverse("privacy:break-glass", args=[patient.public_id])
    return url + (f"?next={next_url}" if next_url else "")


def form(**more):
    return {"category": BreakGlassCategory.CLINICAL_EMERGENCY, "reason": REASON, "confirm": "on", **more}


def test_a_blocked_patient_is_found_only_by_an_exact_identifier_and_never_named(reception_client_a, hidden):
    patients = reverse("patients:list")
    for query in ("hidden", "hidden, hester", "12/03/1980", "P00077"):
        page = reception_client_a.get(patients, {"q": query}).content.decode()
        assert "Restricted record" not in page and "Hidden" not in page, query
    for query in ("P000777", "943 476 5919"):
        page = reception_client_a.get(patients, {"q": query}).content.decode()
        assert "Restricted record" in page and "Break glass to open" in page, query
        assert glass_url(hidden) in page
        assert "Hidden" not in page and "Hester" not in page and "No patient matches" not in page
    # An archived blocked patient is not offered.
    hidden.is_archived = True
    hidden.save()
    assert "Restricted record" not in reception_client_a.get(patients, {"q": "P000777"}).content.decode()


def test_members_who_may_see_blocked_patients_get_the_patient_not_the_row(admin_client_a, hidden):
    page = admin_client_a.get(reverse("patients:list"), {"q": "P000777"}).content.decode()
    assert "HIDDEN, Hester" in page and "Restricted record" not in page
    # The break-glass page tells them they need none.
    assert "No need to break glass" in admin_client_a.get(glass_url(hidden)).content.decode()
    assert not BreakGlass.objects.exists()


def test_breaking_glass_opens_the_record_and_books_for_this_member_only(
    clinic_a, reception_a, reception_client_a, hidden, slot
):
    record = reverse("patients:detail", args=[hidden.public_id])
    assert reception_client_a.get(record).status_code == 404
    page = reception_client_a.get(glass_url(hidden, record))
    assert page.status_code == 200 and "Break glass" in page.content.decode()
    assert "Hidden" not in page.content.decode()

    response = reception_client_a.post(glass_url(hidden), form(next=record))
    assert response.status_code == 302 and response["Location"] == record
    use = BreakGlass.objects.get()
    assert (use.membership, use.patient, use.category, use.reason) == (
        reception_a,
        hidden,
        BreakGlassCategory.CLINICAL_EMERGENCY,
        REASON,
    )
    assert use.expires_at - use.started_at == dt.timedelta(minutes=BREAK_GLASS_MINUTES)
    grant = str(use.public_id)
    audit = AuditEvent.objects.get(action="privacy.break_glass")
    assert audit.object_id == str(hidden.public_id) and audit.detail["break_glass"] == grant
    assert REASON not in str(audit.detail)  # the reason stays on the grant, out of the audit

    # The record opens, and the opening is audited as break-glass.
    opened = reception_client_a.get(record)
    assert opened.status_code == 200 and "Hester" in opened.content.decode()
    viewed = AuditEvent.objects.get(action="patient.blocked_viewed")
    assert viewed.detail == {"view": "record", "break_glass": grant}
    assert "opened by break-glass" in opened.content.decode()
    assert "A member of staff" not in opened.content.decode()  # why it is blocked is for members with access
    # Break-glass opens and books; it never changes the record.
    for name in ("patients:edit", "patients:archive", "patients:merge"):
        assert reception_client_a.get(reverse(name, args=[hidden.public_id])).status_code == 403, name
    assert reception_client_a.post(reverse("patients:edit", args=[hidden.public_id]), {}).status_code == 403

    # Book Appointment: the search offers the way straight in; the booking is audited as break-glass.
    book = reverse("scheduling:book", args=[slot.public_id])
    results = reception_client_a.get(book, {"q": "P000777"}).content.decode()
    assert f"{book}?patient={hidden.public_id}" in results and "Break glass to open" not in results
    assert reception_client_a.get(book, {"patient": str(hidden.public_id)}).status_code == 200
    data = {"patient": str(hidden.public_id), "coverage": "self", "slot_type": str(slot.slot_type.public_id)}
    assert reception_client_a.post(book, {**data, "action": "book"}).status_code == 302
    assert Appointment.objects.filter(patient=hidden).count() == 1
    booked = AuditEvent.objects.get(action="appointment.booked")
    assert booked.detail["break_glass"] == grant and booked.detail["blocked"] is True
    # The appointment just booked opens too (the booking leads there), audited as break-glass.
    appointment = Appointment.objects.get(patient=hidden)
    page = reception_client_a.get(reverse("scheduling:appointment", args=[appointment.public_id]))
    assert page.status_code == 200 and "Hester" in page.content.decode()
    seen = AuditEvent.objects.filter(action="patient.blocked_viewed", detail__view="appointment").get()
    assert seen.detail == {"view": "appointment", "break_glass": grant}

    # Another member without the permission is still kept out, and so is another blocked patient.
    other = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.RECEPTION, perm_manage_appointments=True))
    assert other.get(record).status_code == 404
    assert other.get(reverse("scheduling:appointment", args=[appointment.public_id])).status_code == 404
    second = PatientFactory(clinic=clinic_a, is_blocked=True, blocked_reason="VIP")
    assert reception_client_a.get(reverse("patients:detail", args=[second.public_id])).status_code == 404


def test_the_grant_expires(clinic_a, reception_client_a, hidden, slot):
    start = timezone.now()
    record = reverse("patients:detail", args=[hidden.public_id])
    with time_machine.travel(start, tick=False):
        reception_client_a.post(glass_url(hidden), form())
    with time_machine.travel(start + dt.timedelta(minutes=BREAK_GLASS_MINUTES - 1), tick=False):
        assert reception_client_a.get(record).status_code == 200
        book = reverse("scheduling:book", args=[slot.public_id])
        data = {"patient": str(hidden.public_id), "coverage": "self", "slot_type": str(slot.slot_type.public_id)}
        assert reception_client_a.post(book, {**data, "action": "book"}).status_code == 302
        appointment = Appointment.objects.get(patient=hidden)
        page = reverse("scheduling:appointment", args=[appointment.public_id])
        assert reception_client_a.get(page).status_code == 200
        appointment_cancel(clinic=clinic_a, actor=None, appointment=appointment, reason="Test")
    with time_machine.travel(start + dt.timedelta(minutes=BREAK_GLASS_MINUTES, seconds=1), tick=False):
        assert reception_client_a.get(record).status_code == 404
        assert reception_client_a.get(page).status_code == 404
        book = reverse("scheduling:book", args=[slot.public_id])
        data = {"patient": str(hidden.public_id), "coverage": "self", "slot_type": str(slot.slot_type.public_id)}
        assert reception_client_a.post(book, {**data, "action": "book"}).status_code == 404
        assert not Appointment.objects.exclude(pk=appointment.pk).exists()
        # The search offers break-glass again.
        page = reception_client_a.get(reverse("patients:list"), {"q": "P000777"}).content.decode()
        assert "Break glass to open" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (form(reason=""), "Give the reason you need this record."),
        (form(reason="   " * 10), "Give the reason you need this record."),
        (form(reason="emergency"), "at least 20 characters"),
        (form(category=""), "Choose why you need the record."),
        ({k: v for k, v in form().items() if k != "confirm"}, "Confirm that this is an emergency"),
    ],
)
def test_a_reason_category_and_confirmation_are_required(reception_client_a, hidden, data, message):
    response = reception_client_a.post(glass_url(hidden), data)
    assert response.status_code == 422 and message in response.content.decode()
    assert not BreakGlass.objects.exists() and not AuditEvent.objects.exists()
    assert reception_client_a.get(reverse("patients:detail", args=[hidden.public_id])).status_code == 404


def test_next_never_leaves_the_site(reception_client_a, hidden):
    response = reception_client_a.post(glass_url(hidden), form(next="https://evil.example/"))
    assert response["Location"] == reverse("patients:detail", args=[hidden.public_id])


def test_every_privacy_officer_gets_one_email_even_if_the_sweep_runs_twice(
    smtp, clinic_a, admin_a, reception_a, reception_client_a, hidden, django_capture_on_commit_callbacks
):
    second = MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN, perm_privacy_officer=True)
    MembershipFactory(clinic=clinic_a, role=Role.ADMIN, perm_privacy_officer=True, is_active=False)
    MembershipFactory(clinic=clinic_a, role=Role.ADMIN)  # not an officer
    with tasks_in_process(), django_capture_on_commit_callbacks(execute=True):
        assert reception_client_a.post(glass_url(hidden), form()).status_code == 302
    assert sorted(r for m in smtp.received for r in m.rcpt_tos) == sorted([admin_a.user.email, second.user.email])
    message = smtp.received[0]
    assert "Break-glass access at Clinic A" in message.subject
    body = message.message.get_body(("plain",)).get_content()
    use = BreakGlass.objects.get()
    assert reverse("privacy:review", args=[use.public_id]) in body and "Clinical emergency" in body
    assert "Hester" not in body and "Hidden" not in body and REASON not in body  # no patient, no reason by email
    assert set(BreakGlassAlert.objects.values_list("status", flat=True)) == {AlertStatus.SENT}
    # The sweep, twice, and the task again with the same ids: nothing is sent again.
    with tasks_in_process(), django_capture_on_commit_callbacks(execute=True):
        assert break_glass_alerts_sweep() == 0
        assert break_glass_alerts_sweep() == 0
    assert alerts_send(list(BreakGlassAlert.objects.values_list("pk", flat=True))) == {}
    assert len(smtp.received) == 2


def test_a_lost_nudge_is_delivered_by_the_sweep_once(smtp, clinic_a, admin_a, reception_a, hidden):
    # No on-commit callbacks run here: the nudge is lost; the rows wait.
    use = break_glass(
        clinic=clinic_a, actor=reception_a.user, membership=reception_a, patient=hidden, category="other", reason=REASON
    )
    assert alerts_waiting(timezone.now()) == [BreakGlassAlert.objects.get(use=use).pk]
    assert smtp.received == []
    for _ in range(2):
        ids = alerts_waiting(timezone.now())
        alerts_send(ids)
    assert [m.rcpt_tos for m in smtp.received] == [[admin_a.user.email]]


def test_a_refused_alert_waits_and_is_tried_again(smtp, clinic_a, admin_a, reception_a, hidden):
    smtp.refuse(admin_a.user.email, 451)
    break_glass(
        clinic=clinic_a, actor=reception_a.user, membership=reception_a, patient=hidden, category="other", reason=REASON
    )
    alert = BreakGlassAlert.objects.get()
    assert alerts_send([alert.pk]) == {AlertStatus.WAITING: 1}
    alert.refresh_from_db()
    assert alert.due_at > timezone.now() and alert.attempts == 1
    smtp.accept(admin_a.user.email)
    assert alerts_send(alerts_waiting(alert.due_at)) == {}  # not due yet at now: the sweep's now is later
    assert alerts_send([alert.pk], now=alert.due_at) == {AlertStatus.SENT: 1}
    assert len(smtp.received) == 1


def test_the_review_page_is_for_privacy_officers_only(clinic_a, admin_client_a, reception_client_a, hidden):
    assert reception_client_a.get(reverse("privacy:reviews")).status_code == 403
    reception_client_a.post(glass_url(hidden), form())
    use = BreakGlass.objects.get()
    assert reception_client_a.get(reverse("privacy:review", args=[use.public_id])).status_code == 403
    assert reception_client_a.post(reverse("privacy:review", args=[use.public_id]), {}).status_code == 403
    # The nav: an entry with the count for officers, none for others.
    assert "Break-glass review" not in reception_client_a.get(reverse("patients:list")).content.decode()
    nav = admin_client_a.get(reverse("patients:list")).content.decode()
    assert "Break-glass review" in nav and '<span class="count">1<span class="visually-hidden"> open' in nav


def test_an_officer_reviews_and_closes_a_use_audited(clinic_a, admin_a, admin_client_a, reception_client_a, hidden):
    record = reverse("patients:detail", args=[hidden.public_id])
    reception_client_a.post(glass_url(hidden), form())
    reception_client_a.get(record)
    reception_client_a.get(reverse("patients:quickview", args=[hidden.public_id]))
    use = BreakGlass.objects.get()
    listing = admin_client_a.get(reverse("privacy:reviews")).content.decode()
    assert "Hester" in listing and "Clinical emergency" in listing and "2 opened · 0 booked" in listing
    detail_url = reverse("privacy:review", args=[use.public_id])
    detail = admin_client_a.get(detail_url).content.decode()
    assert REASON in detail and "Opened (record)" in detail and "Opened (quickview)" in detail

    refused = admin_client_a.post(detail_url, {"outcome": "", "note": ""})
    assert refused.status_code == 422 and "Choose the outcome of the review." in refused.content.decode()
    response = admin_client_a.post(detail_url, {"outcome": "inappropriate", "note": "Not an emergency: escalated."})
    assert response.status_code == 302
    use.refresh_from_db()
    assert (use.outcome, use.review_note, use.reviewed_by) == (
        "inappropriate",
        "Not an emergency: escalated.",
        admin_a.user,
    )
    reviewed = AuditEvent.objects.get(action="privacy.break_glass_reviewed")
    assert reviewed.object_id == str(use.public_id) and reviewed.detail["outcome"] == "inappropriate"
    # Open and closed filters; closing twice is refused (nothing to post to).
    assert (
        "No use of break-glass is waiting for review."
        in admin_client_a.get(reverse("privacy:reviews")).content.decode()
    )
    closed = admin_client_a.get(reverse("privacy:reviews"), {"state": "closed"}).content.decode()
    assert "Inappropriate — escalate" in closed
    admin_client_a.post(detail_url, {"outcome": "appropriate", "note": "again"})
    use.refresh_from_db()
    assert use.outcome == "inappropriate"
    assert AuditEvent.objects.filter(action="privacy.break_glass_reviewed").count() == 1


def test_an_officer_never_reviews_their_own_use(clinic_a, hidden):
    officer = MembershipFactory(clinic=clinic_a, role=Role.RECEPTION, perm_privacy_officer=True)
    client = logged_in_client(officer)
    client.post(glass_url(hidden), form())
    use = BreakGlass.objects.get()
    url = reverse("privacy:review", args=[use.public_id])
    assert "another privacy officer must review it" in client.get(url).content.decode()
    response = client.post(url, {"outcome": "appropriate", "note": "Fine by me."})
    assert "another privacy officer must review it" in response.content.decode()
    with pytest.raises(ValidationError, match="Another privacy officer must review"):
        review_close(clinic=clinic_a, actor=officer.user, membership=officer, use=use, outcome="appropriate", note="x")
    use.refresh_from_db()
    assert use.is_open and not AuditEvent.objects.filter(action="privacy.break_glass_reviewed").exists()


def test_other_clinics_cannot_see_the_uses(clinic_a, outsider_client, reception_client_a, hidden):
    reception_client_a.post(glass_url(hidden), form())
    use = BreakGlass.objects.get()
    assert outsider_client.get(reverse("privacy:review", args=[use.public_id])).status_code == 404
    assert outsider_client.post(reverse("privacy:review", args=[use.public_id]), {}).status_code == 404
    assert outsider_client.get(glass_url(hidden)).status_code == 404
    assert outsider_client.post(glass_url(hidden), form()).status_code == 404
    assert "Hester" not in outsider_client.get(reverse("privacy:reviews")).content.decode()
    assert BreakGlass.objects.count() == 1


def make_uses(clinic, n):
    officer_less = [MembershipFactory(clinic=clinic, role=Role.RECEPTION) for _ in range(n)]
    for member in officer_less:
        patient = PatientFactory(clinic=clinic, is_blocked=True, blocked_reason="VIP")
        use = break_glass(
            clinic=clinic, actor=member.user, membership=member, patient=patient, category="other", reason=REASON
        )
        AuditEvent.objects.create(
            clinic=clinic,
            actor=member.user,
            action="patient.blocked_viewed",
            detail={"view": "record", "break_glass": str(use.public_id)},
        )


@pytest.mark.parametrize("state", ["open", "closed"])
def test_the_review_list_uses_a_bounded_number_of_queries(
    clinic_a, admin_a, admin_client_a, django_assert_num_queries, state
):
    url = reverse("privacy:reviews") + f"?state={state}"
    admin_client_a.get(url)  # warm the session and the header's count

    def close_all():
        for use in BreakGlass.objects.filter(reviewed_at__isnull=True):
            use.reviewed_at, use.reviewed_by, use.outcome = timezone.now(), admin_a.user, "appropriate"
            use.save()

    make_uses(clinic_a, 2)
    if state == "closed":
        close_all()
    admin_client_a.get(url)
    with django_assert_num_queries(5) as small:
        assert admin_client_a.get(url).status_code == 200
    make_uses(clinic_a, 12)
    if state == "closed":
        close_all()
    admin_client_a.get(url)
    with django_assert_num_queries(5) as large:
        page = admin_client_a.get(url).content.decode()
    assert page.count("1 opened · 0 booked") == 14
    assert len(small.captured_queries) == len(large.captured_queries)


def test_the_demo_seeds_one_use_at_riverside_awaiting_review():
    from django.core.management import call_command

    from clinic.models import Clinic, Membership

    call_command("seed_demo", quiet=True)
    call_command("seed_demo", quiet=True)
    riverside = Clinic.objects.get(slug="riverside")
    use = BreakGlass.objects.get()
    assert use.clinic == riverside and use.is_open and use.patient.is_blocked
    assert not use.membership.perm_access_blocked_patients
    officer = Membership.objects.for_clinic(riverside).get(user__email="admin@riverside.example")
    assert officer.perm_privacy_officer
    page = logged_in_client(officer).get(reverse("privacy:reviews")).content.decode()
    assert "1 opened · 0 booked" in page and use.patient.display_name in page


def test_a_series_and_a_waiting_list_entry_under_a_grant_are_audited_as_break_glass(clinic_a, reception_a, hidden):
    from scheduling.models import WaitlistKind
    from scheduling.services.series import series_book
    from scheduling.services.waitlist import EntryData, waitlist_add
    from tests.scheduling.test_series_concurrency import series_request, weekly_mondays

    practitioner = PractitionerFactory(clinic=clinic_a)
    slots = weekly_mondays(clinic_a, practitioner, SlotTypeFactory(clinic=clinic_a, capacity=1), weeks=2)
    request = series_request(hidden, practitioner, slots)
    with pytest.raises(ValidationError):  # no grant yet: refused as any booking of a blocked patient
        series_book(clinic=clinic_a, actor=reception_a.user, membership=reception_a, request=request)
    use = break_glass(
        clinic=clinic_a,
        actor=reception_a.user,
        membership=reception_a,
        patient=hidden,
        category=BreakGlassCategory.SAFEGUARDING,
        reason=REASON,
    )
    series_book(clinic=clinic_a, actor=reception_a.user, membership=reception_a, request=request)
    booked = AuditEvent.objects.get(action="series.booked")
    assert booked.detail["break_glass"] == str(use.public_id) and booked.detail["booked"] == 2
    occurrences = AuditEvent.objects.filter(action="appointment.booked")
    assert [event.detail["break_glass"] for event in occurrences] == [str(use.public_id)] * 2

    waitlist_add(
        clinic=clinic_a,
        actor=reception_a.user,
        membership=reception_a,
        data=EntryData(
            patient=PatientFactory(clinic=clinic_a), kind=WaitlistKind.PREFERENCE, practitioner=practitioner
        ),
    )
    waitlist_add(
        clinic=clinic_a,
        actor=reception_a.user,
        membership=reception_a,
        data=EntryData(patient=hidden, kind=WaitlistKind.PREFERENCE, practitioner=practitioner),
    )
    added = AuditEvent.objects.filter(action="waitlist.added").order_by("id")
    assert [event.detail.get("break_glass") for event in added] == [None, str(use.public_id)]
