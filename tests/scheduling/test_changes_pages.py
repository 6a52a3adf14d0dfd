"""The pages of changing the book: preview first, then the change; who may; bad input; the worklist's queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from clinic.models import Role
from scheduling.models import (
    AppointmentStatus,
    DisplacedState,
    Displacement,
    Session,
    SessionOut,
    Slot,
)
from scheduling.services.booking import BookingRequest, appointment_book
from scheduling.services.changes import TakeOut, sessions_take_out
from sessions_setup.models import TemplateSlot
from tests.conftest import logged_in_client
from tests.factories import (
    LocationFactory,
    MembershipFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
)

pytestmark = pytest.mark.django_db

DAY = dt.date(2027, 6, 8)


@pytest.fixture
def day(clinic_a):
    main = LocationFactory(clinic=clinic_a, name="Main", time_zone="Europe/London")
    routine = SlotTypeFactory(clinic=clinic_a, name="Routine")
    phone = SlotTypeFactory(clinic=clinic_a, name="Telephone")
    smith = PractitionerFactory(clinic=clinic_a, name="Dr Smith", role="gp", default_location=main)
    jones = PractitionerFactory(clinic=clinic_a, name="Dr Jones", role="gp", default_location=main)
    session = allocate_session(clinic_a, practitioner=smith, day=DAY, slot_types=[routine] * 3, name="Smith AM")
    cover = allocate_session(clinic_a, practitioner=jones, day=DAY, slot_types=[routine] * 3, name="Jones AM")
    return {"main": main, "routine": routine, "phone": phone, "smith": smith, "jones": jones,
            "session": session, "cover": cover}  # fmt: skip


def book(clinic, slot, name="Ann"):
    return appointment_book(
        clinic=clinic,
        actor=None,
        membership=None,
        request=BookingRequest(slot=slot, patient=PatientFactory(clinic=clinic, first_name=name)),
        tell=False,
    )


def slots(session):
    return list(Slot.objects.filter(session=session, retired=False).order_by("starts_at"))


def test_take_out_previews_the_patients_then_cancels_and_lands_on_the_worklist(clinic_a, admin_client_a, day):
    book(clinic_a, slots(day["session"])[0], "Zora")
    url = reverse("scheduling:take-out")
    form = {
        "practitioner": str(day["smith"].public_id),
        "first_date": "2027-06-08",
        "reason": "sickness",
        "action": "cancelled",
        "action_step": "preview",
    }
    page = admin_client_a.get(url, {"practitioner": str(day["smith"].public_id), "first_date": "2027-06-08"})
    assert page.status_code == 200 and str(day["smith"].public_id) in page.content.decode()
    preview = admin_client_a.post(url, form)
    text = preview.content.decode()
    assert preview.status_code == 200 and "Zora" in text and "Cancel 1 session" in text
    assert Session.objects.get(pk=day["session"].pk).out_state == ""  # a preview changes nothing
    done = admin_client_a.post(url, {**form, "action_step": "apply"})
    assert done.status_code == 302 and done["Location"] == reverse("scheduling:displaced")
    assert Session.objects.get(pk=day["session"].pk).out_state == SessionOut.CANCELLED
    worklist = admin_client_a.get(reverse("scheduling:displaced")).content.decode()
    assert "Zora" in worklist and "Dr Jones" in worklist  # the proposal: another GP at Main that day


def test_take_out_refuses_bad_input_on_the_form(admin_client_a, day):
    url = reverse("scheduling:take-out")
    nobody = admin_client_a.post(url, {"first_date": "2027-06-08", "reason": "sickness", "action": "cancelled"})
    assert nobody.status_code == 422 and "Choose a practitioner or a location" in nobody.content.decode()
    backwards = admin_client_a.post(
        url,
        {"practitioner": str(day["smith"].public_id), "first_date": "2027-06-08", "last_date": "2027-06-01",
         "reason": "sickness", "action": "cancelled"},
    )  # fmt: skip
    assert backwards.status_code == 422 and "before the first date" in backwards.content.decode()
    empty = admin_client_a.post(
        url,
        {"practitioner": str(day["smith"].public_id), "first_date": "2030-01-01", "reason": "leave",
         "action": "suspended", "action_step": "apply"},
    )  # fmt: skip
    assert empty.status_code == 422 and "no sessions" in empty.content.decode()


def test_editing_a_session_lists_the_displaced_first_and_refuses_an_overlap(clinic_a, admin_client_a, day):
    session = day["session"]
    first = slots(session)[0]
    book(clinic_a, first, "Yusuf")
    url = reverse("scheduling:session-edit", args=[session.public_id])
    page = admin_client_a.get(url)
    assert page.status_code == 200
    form = {
        "slot-0": str(day["phone"].public_id),
        "slot-1": str(day["routine"].public_id),
        "slot-2": "blank",
        "keep": "3",
        "add_count": "0",
        "location": str(day["main"].public_id),
        "description": "Phones first",
        "action": "preview",
    }
    preview = admin_client_a.post(url, form).content.decode()
    assert "Yusuf" in preview and "Slot type changed" in preview and "Routine → Telephone" in preview
    assert Slot.objects.get(pk=first.pk).slot_type_id == day["routine"].pk
    done = admin_client_a.post(url, {**form, "action": "apply"})
    assert done.status_code == 302
    assert [s.slot_type_id for s in slots(session)] == [day["phone"].pk, day["routine"].pk, None]
    assert Displacement.objects.get().why == "retyped"
    # Adding past 09:30 would overlap a later session of Dr Smith's: refused, naming it.
    allocate_session(clinic_a, practitioner=day["smith"], day=DAY, start=dt.time(9, 40), slot_types=[day["routine"]],
                     name="Smith late")  # fmt: skip
    overlap = admin_client_a.post(
        url, {**form, "add_count": "2", "add_type": str(day["routine"].public_id), "add_minutes": "10",
              "action": "apply"},
    )  # fmt: skip
    assert overlap.status_code == 422 and "Smith late" in overlap.content.decode()


def test_template_apply_page_previews_then_applies(clinic_a, admin_client_a, day):
    template = day["session"].template
    book(clinic_a, slots(day["session"])[2], "Xena")
    TemplateSlot.objects.filter(template=template, position=2).delete()
    builder = admin_client_a.get(reverse("sessions_setup:template-edit", args=[template.public_id])).content.decode()
    assert reverse("scheduling:template-apply", args=[template.public_id]) in builder
    url = reverse("scheduling:template-apply", args=[template.public_id])
    preview = admin_client_a.post(url, {"first_date": "2027-06-01", "action": "preview"}).content.decode()
    assert "Xena" in preview and "removed" in preview and "Apply to 1 session" in preview
    done = admin_client_a.post(url, {"first_date": "2027-06-01", "action": "apply"})
    assert done.status_code == 302 and len(slots(day["session"])) == 2
    assert Displacement.objects.get().why == "removed"
    again = admin_client_a.post(url, {"first_date": "2027-06-01", "action": "preview"}).content.decode()
    assert "Nothing would change" in again


def test_the_worklist_rebooks_contacts_and_cancels(clinic_a, admin_client_a, admin_a, day):
    people = [book(clinic_a, slot, name) for slot, name in zip(slots(day["session"]), "ABC", strict=True)]
    sessions_take_out(
        clinic=clinic_a, actor=admin_a.user,
        take=TakeOut(day["smith"], None, DAY, DAY, SessionOut.CANCELLED, "sickness"),
    )  # fmt: skip
    rows = {d.appointment_id: str(d.public_id) for d in Displacement.objects.all()}
    url = reverse("scheduling:displaced")
    nothing = admin_client_a.post(url, {"action": "rebook"})
    assert nothing.status_code == 422 and "Tick the patients first" in nothing.content.decode()
    no_reason = admin_client_a.post(url, {"action": "cancel", "rows": [rows[people[2].pk]]})
    assert no_reason.status_code == 422 and "Give a reason" in no_reason.content.decode()
    admin_client_a.post(url, {"action": "rebook", "rows": [rows[people[0].pk]]})
    admin_client_a.post(url, {"action": "contact", "rows": [rows[people[1].pk]]})
    admin_client_a.post(url, {"action": "cancel", "rows": [rows[people[2].pk]], "reason": "Unwell",
                              "category": "clinician"})  # fmt: skip
    states = dict(Displacement.objects.values_list("appointment_id", "state"))
    assert states == {
        people[0].pk: DisplacedState.REBOOKED,
        people[1].pk: DisplacedState.TO_CONTACT,
        people[2].pk: DisplacedState.CANCELLED,
    }
    people[2].refresh_from_db()
    assert people[2].status == AppointmentStatus.CANCELLED
    page = admin_client_a.get(url).content.decode()
    assert "To contact" in page and "Done in the last week" in page and "Rebooked" in page
    # A row of another clinic's cannot be named.
    assert (
        admin_client_a.post(url, {"action": "rebook", "rows": ["00000000-0000-0000-0000-000000000000"]}).status_code
        == 422
    )


def test_who_may_change_the_book(clinic_a, day, reception_client_a):
    clinician = logged_in_client(MembershipFactory(clinic=clinic_a, role=Role.CLINICIAN))
    assert reception_client_a.get(reverse("scheduling:take-out")).status_code == 403
    assert (
        reception_client_a.get(reverse("scheduling:session-edit", args=[day["session"].public_id])).status_code == 403
    )
    assert reception_client_a.get(reverse("scheduling:displaced")).status_code == 200  # reception rebooks
    assert clinician.get(reverse("scheduling:displaced")).status_code == 403


def add_displaced(clinic, actor, n):
    """n more cancelled sessions, each with two displaced bookings, and a free session to propose from."""
    routine = SlotTypeFactory(clinic=clinic)
    location = LocationFactory(clinic=clinic)
    for i in range(n):
        who = PractitionerFactory(clinic=clinic, default_location=location)
        day = DAY + dt.timedelta(days=i)
        session = allocate_session(clinic, practitioner=who, location=location, day=day, slot_types=[routine] * 2)
        for slot in slots(session):
            book(clinic, slot)
        allocate_session(clinic, practitioner=PractitionerFactory(clinic=clinic, default_location=location),
                         location=location, day=day, slot_types=[routine] * 2)  # fmt: skip
        sessions_take_out(clinic=clinic, actor=actor, take=TakeOut(who, None, day, day, SessionOut.CANCELLED, "leave"))


def test_the_worklist_uses_the_same_queries_for_few_and_many_rows(
    clinic_a, admin_a, admin_client_a, django_assert_num_queries
):
    url = reverse("scheduling:displaced")
    admin_client_a.get(url)  # warm the session
    add_displaced(clinic_a, admin_a.user, 2)
    with django_assert_num_queries(6) as small:
        assert admin_client_a.get(url).status_code == 200
    add_displaced(clinic_a, admin_a.user, 12)
    with django_assert_num_queries(6) as large:
        page = admin_client_a.get(url)
    assert page.content.decode().count('name="rows"') == 28
    assert len(small.captured_queries) == len(large.captured_queries)
