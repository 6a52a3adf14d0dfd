"""What the FHIR API offers a consumer: only free, future slots of its own slot types, in sessions on the rota released
for GP Connect (the template's flag, with a practitioner role), honouring each type's release rule; never a held or
full place, a session taken out, or an enforced closed group that has begun. Booking what is not offered is refused
and writes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from fhir_api.models import FhirBooking
from fhir_api.services.consumers import Credentials
from scheduling.models import Appointment, HoldKind, OutReason, Session, SessionOut, Slot
from scheduling.services.booking import BookingRequest, appointment_book, hold_take
from scheduling.services.changes import TakeOut, sessions_take_out
from scheduling.services.rota import AllocationRequest, allocation_create
from sessions_setup.models import ReleaseRule
from tests.factories import (
    LocationFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    template_with_slots,
)
from tests.fhir_api.conftest import (
    Api,
    booking_body,
    gp_connect_session,
    make_consumer,
    next_week_day,
    token_for,
    week_range,
)

pytestmark = pytest.mark.django_db


def api_of(credentials: Credentials, scope: str | None = None) -> Api:
    """A caller with a token of its own (asked now: under a travelled clock, the token is of that time)."""
    response = token_for(Client(), credentials, scope)
    assert response.status_code == 200, response.content
    return Api(Client(), response.json()["access_token"])


def offered(api: Api, window: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The slots a search over `window` finds, by id."""
    response = api.get("/fhir/Slot", window)
    assert response.status_code == 200, response.content
    return {
        entry["resource"]["id"]: entry["resource"]
        for entry in response.json().get("entry", [])
        if entry["resource"]["resourceType"] == "Slot"
    }


def slot_ids(*sessions: Session) -> set[str]:
    return {
        str(public_id) for public_id in Slot.objects.filter(session__in=sessions).values_list("public_id", flat=True)
    }


def written() -> tuple[int, int, list[tuple[int, int]]]:
    """What a refused booking must leave as it was: the appointments, the FHIR bookings, every slot's counts."""
    counts = list(Slot.objects.order_by("pk").values_list("booked_count", "held_count"))
    return Appointment.objects.count(), FhirBooking.objects.count(), counts


def assert_outcome(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["diagnostics"]
    return body


def test_only_slots_of_gp_connect_bookable_sessions_are_offered(api, practice, gp_session, consult, surgery, patient):
    other = PractitionerFactory(clinic=practice, name="Dr Plain", default_location=surgery)
    plain = allocate_session(
        practice, practitioner=other, location=surgery, day=next_week_day(practice), slot_types=[consult] * 4
    )
    assert not plain.gp_connect_bookable
    found = offered(api, week_range(practice))
    assert set(found) == slot_ids(gp_session)
    assert not set(found) & slot_ids(plain)

    plain_slot = str(plain.slots.first().public_id)
    assert api.get(f"/fhir/Slot/{plain_slot}").status_code == 404
    before = written()
    assert_outcome(api.post("/fhir/Appointment", booking_body(plain_slot, str(patient.public_id))), 422)
    assert written() == before


def test_a_session_whose_practitioner_role_is_blank_is_not_offered(api, practice, gp_session, patient):
    assert set(offered(api, week_range(practice))) == slot_ids(gp_session)
    Session.objects.filter(pk=gp_session.pk).update(practitioner_role="")
    assert offered(api, week_range(practice)) == {}
    before = written()
    slot = str(gp_session.slots.first().public_id)
    refused = api.post("/fhir/Appointment", booking_body(slot, str(patient.public_id)))
    assert refused.status_code in (409, 422), refused.content
    assert written() == before


def test_a_consumer_sees_only_its_own_slot_types(practice, admin_a, gp, surgery, consult, patient):
    triage = SlotTypeFactory(clinic=practice, name="Nurse triage", default_length_minutes=15)
    day = next_week_day(practice)
    consults = gp_connect_session(practice, gp, surgery, day, [consult] * 3)
    nurse = PractitionerFactory(clinic=practice, name="Nurse Nightingale", role="nurse", default_location=surgery)
    triages = gp_connect_session(practice, nurse, surgery, day, [triage] * 2, role="nurse")
    mixed = gp_connect_session(practice, gp, surgery, day, [consult, triage], start=dt.time(14))

    first = api_of(make_consumer(practice, admin_a, types=[consult], name="NHS 111"))
    second = api_of(make_consumer(practice, admin_a, types=[triage], name="Out of hours"))

    by_type = {kind.pk: {str(s.public_id) for s in Slot.objects.filter(slot_type=kind)} for kind in (consult, triage)}
    assert set(offered(first, week_range(practice))) == by_type[consult.pk]
    assert set(offered(second, week_range(practice))) == by_type[triage.pk]
    assert len(by_type[consult.pk]) == 4 and len(by_type[triage.pk]) == 3
    assert slot_ids(consults) <= by_type[consult.pk] and slot_ids(triages) <= by_type[triage.pk]
    assert mixed.slots.count() == 2

    # The other consumer's slot is not offered: not readable, not bookable (422), nothing written.
    theirs = sorted(by_type[triage.pk])[0]
    assert first.get(f"/fhir/Slot/{theirs}").status_code == 404
    before = written()
    assert_outcome(first.post("/fhir/Appointment", booking_body(theirs, str(patient.public_id))), 422)
    assert written() == before


MORNING = dt.datetime(2030, 6, 12, 8, tzinfo=dt.UTC)  # Wednesday 09:00 in London (BST)
LATE = dt.datetime(2030, 6, 12, 23, 30, tzinfo=dt.UTC)  # Thursday 00:30 in London, still Wednesday in UTC


def test_release_rules_of_the_slot_types_hold(practice, admin_a, gp, surgery):
    on_the_day = SlotTypeFactory(
        clinic=practice, name="Book on the day", default_length_minutes=15, release_rule=ReleaseRule.ON_THE_DAY
    )
    two_before = SlotTypeFactory(
        clinic=practice,
        name="Two days ahead",
        default_length_minutes=15,
        release_rule=ReleaseRule.DAYS_BEFORE,
        release_days_before=2,
    )
    any_time = SlotTypeFactory(clinic=practice, name="Routine", default_length_minutes=15)
    days = [dt.date(2030, 6, 12) + dt.timedelta(days=n) for n in range(4)]
    with time_machine.travel(MORNING, tick=False):
        for day in days:
            gp_connect_session(practice, gp, surgery, day, [on_the_day, two_before, any_time], start=dt.time(14))
        credentials = make_consumer(practice, admin_a, types=[on_the_day, two_before, any_time])
        found = offered(api_of(credentials), {"start": "ge2030-06-12", "end": "le2030-06-15", "status": "free"})
    assert released(found) == {
        (days[0], "Book on the day"),
        *((day, "Two days ahead") for day in days[:3]),  # today and the next two days, not the third
        *((day, "Routine") for day in days),
    }

    # Just after midnight on the practice's clock the 13th is "the day", though it is still the 12th in UTC.
    with time_machine.travel(LATE, tick=False):
        found = offered(api_of(credentials), {"start": "ge2030-06-12", "end": "le2030-06-15", "status": "free"})
    assert released(found) == {
        (days[1], "Book on the day"),
        *((day, "Two days ahead") for day in days[1:4]),
        *((day, "Routine") for day in days[1:]),
    }


def released(found: dict[str, dict[str, Any]]) -> set[tuple[dt.date, str]]:
    rows = Slot.objects.select_related("session", "slot_type").filter(public_id__in=list(found))
    assert rows.count() == len(found)
    return {(row.session.date, row.slot_type.name) for row in rows}


def test_a_held_place_is_never_offered(practice, admin_a, gp, surgery, consult, gp_session, patient):
    group = SlotTypeFactory(clinic=practice, name="Asthma group", default_length_minutes=60, capacity=3)
    nurse = PractitionerFactory(clinic=practice, name="Nurse Group", role="nurse", default_location=surgery)
    classes = gp_connect_session(practice, nurse, surgery, next_week_day(practice), [group], role="nurse")
    api = api_of(make_consumer(practice, admin_a, types=[consult, group]))
    single = gp_session.slots.order_by("starts_at").first()
    group_slot = classes.slots.get()
    assert group_slot.capacity == 3
    before = offered(api, week_range(practice))
    assert str(single.public_id) in before
    assert before[str(group_slot.public_id)]["comment"] == "Group: 3 of 3 places free"

    until = timezone.now() + dt.timedelta(minutes=30)
    hold_take(clinic=practice, actor=None, slot=single, kind=HoldKind.ONLINE_REQUEST, expires_at=until)
    hold_take(clinic=practice, actor=None, slot=group_slot, kind=HoldKind.WAITLIST_OFFER, expires_at=until)

    after = offered(api, week_range(practice))
    assert set(after) == set(before) - {str(single.public_id)}
    assert after[str(group_slot.public_id)]["comment"] == "Group: 2 of 3 places free"
    refused = written()
    assert_outcome(api.post("/fhir/Appointment", booking_body(str(single.public_id), str(patient.public_id))), 409)
    assert written() == refused


def test_full_and_past_slots_are_not_offered(api, practice, admin_a, gp, surgery, consult, gp_session, patient):
    yesterday = practice.today() - dt.timedelta(days=1)
    gone = gp_connect_session(practice, gp, surgery, yesterday, [consult] * 2)
    full = gp_session.slots.order_by("starts_at").first()
    appointment_book(
        clinic=practice,
        actor=admin_a.user,
        membership=admin_a,
        request=BookingRequest(slot=full, patient=PatientFactory(clinic=practice)),
    )
    window = {"start": f"ge{yesterday}", "end": f"le{next_week_day(practice) + dt.timedelta(days=1)}", "status": "free"}
    found = offered(api, window)
    assert set(found) == slot_ids(gp_session) - {str(full.public_id)}
    assert not set(found) & slot_ids(gone)

    for slot in (full, gone.slots.first()):
        before = written()
        refused = api.post("/fhir/Appointment", booking_body(str(slot.public_id), str(patient.public_id)))
        assert_outcome(refused, 409)
        assert written() == before


def test_a_session_taken_out_is_not_offered(api, practice, admin_a, gp, surgery, consult, gp_session, patient):
    other = PractitionerFactory(clinic=practice, name="Dr Stays", default_location=surgery)
    stays = gp_connect_session(practice, other, surgery, next_week_day(practice), [consult] * 2)
    assert set(offered(api, week_range(practice))) == slot_ids(gp_session, stays)
    day = gp_session.date
    sessions_take_out(
        clinic=practice,
        actor=admin_a.user,
        take=TakeOut(gp, None, day, day, SessionOut.SUSPENDED, OutReason.SICKNESS),
    )
    assert set(offered(api, week_range(practice))) == slot_ids(stays)
    before = written()
    slot = str(gp_session.slots.first().public_id)
    assert_outcome(api.post("/fhir/Appointment", booking_body(slot, str(patient.public_id))), 409)
    assert written() == before


def closed_group(clinic, practitioner, location, slot_types, first: dt.date, last: dt.date) -> list[Session]:
    """A weekly enforced closed group, GP Connect bookable, with sessions from `first` to `last`."""
    template = template_with_slots(
        clinic,
        slot_types,
        name=f"Closed {first:%d%m%y}",
        gp_connect_bookable=True,
        practitioner_role="nurse",
        location=location,
        closed_session=True,
        closed_enforced=True,
    )
    request = AllocationRequest(template, practitioner, location, dt.time(11), first, last, (first.isoweekday(),), 1)
    return list(allocation_create(clinic=clinic, actor=None, request=request).sessions.order_by("date"))


def test_an_enforced_closed_group_that_has_begun_is_not_offered_nor_booked(practice, admin_a, surgery, patient):
    group = SlotTypeFactory(clinic=practice, name="Weight group", default_length_minutes=60, capacity=4)
    nurse = PractitionerFactory(clinic=practice, name="Nurse Begun", role="nurse", default_location=surgery)
    other = PractitionerFactory(clinic=practice, name="Nurse Later", role="nurse", default_location=surgery)
    day = next_week_day(practice)
    begun = closed_group(practice, nurse, surgery, [group], day - dt.timedelta(days=14), day)
    assert len(begun) == 3 and begun[0].starts_at < timezone.now() < begun[-1].starts_at
    not_yet = closed_group(practice, other, surgery, [group], day, day)  # its first session is next week's
    api = api_of(make_consumer(practice, admin_a, types=[group]))

    assert set(offered(api, week_range(practice))) == slot_ids(*not_yet)

    slot = str(begun[-1].slots.get().public_id)
    before = written()
    assert_outcome(api.post("/fhir/Appointment", booking_body(slot, str(patient.public_id))), 409)
    assert written() == before


def test_booking_a_slot_already_taken_is_a_conflict_and_writes_nothing(api, practice, admin_a, gp_session, patient):
    first, second = gp_session.slots.order_by("starts_at")[:2]
    booked = api.post("/fhir/Appointment", booking_body(str(first.public_id), str(patient.public_id)))
    assert booked.status_code == 201, booked.content
    other = PatientFactory(clinic=practice, national_id_kind="nhs", national_id="9000000009")
    before = written()
    body = assert_outcome(api.post("/fhir/Appointment", booking_body(str(first.public_id), str(other.public_id))), 409)
    assert body["issue"][0]["details"]["coding"][0]["code"] == "DUPLICATE_REJECTED"
    assert written() == before

    # Taken by reception in the meantime: the same.
    appointment_book(
        clinic=practice, actor=admin_a.user, membership=admin_a, request=BookingRequest(slot=second, patient=other)
    )
    before = written()
    assert_outcome(api.post("/fhir/Appointment", booking_body(str(second.public_id), str(patient.public_id))), 409)
    assert written() == before


def test_a_slot_not_offered_to_this_consumer_is_unprocessable(api, practice, clinic_b, gp_session, patient):
    elsewhere = LocationFactory(clinic=clinic_b)
    theirs = gp_connect_session(
        clinic_b,
        PractitionerFactory(clinic=clinic_b, default_location=elsewhere),
        elsewhere,
        next_week_day(clinic_b),
        [SlotTypeFactory(clinic=clinic_b, default_length_minutes=15)],
    )
    unknown = [
        str(theirs.slots.get().public_id),  # another clinic's
        "00000000-0000-0000-0000-000000000000",  # nobody's
        "not-a-slot-id",
    ]
    for slot in unknown:
        before = written()
        body = assert_outcome(api.post("/fhir/Appointment", booking_body(slot, str(patient.public_id))), 422)
        assert body["issue"][0]["details"]["coding"][0]["code"] == "INVALID_RESOURCE"
        assert written() == before
