"""A clinic with the data a real one has, for the browser tests that walk every page (accessibility).

Everything happens in the week of WINTER_DAY (a Monday in January 2027, London = UTC), so the
calendar, the sessions of the day and the report show it when given that date. On the Friday Dr Patel is off
sick: his session is cancelled and its patient waits on the displaced patients' worklist. The data goes
through the same services the app uses wherever one exists (rota, booking, events, hours, sync),
so the audit log fills the way it does in a clinic.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from calendar_sync.feed.subscriptions import default_mode, feed_token, subscription_get_or_create
from calendar_sync.services import subscription_save
from clinic.models import Clinic, Department, Location, Membership, Practitioner, PractitionerRole, Role
from clinic.services import audit_record
from online.models import BookingMode, EmailCheck, OnlineBooking, OnlineSettings, OnlineStatus
from patients.models import Coverage, Patient
from patients.services import patient_record_opened, patient_register_online
from scheduling.models import (
    Allocation,
    Appointment,
    AvailabilityOverride,
    DraftOccurrence,
    HoldKind,
    OtherEvent,
    OutReason,
    Session,
    SessionOut,
    Slot,
    WaitlistEntry,
    WaitlistKind,
    WaitlistOffer,
)
from scheduling.services import calendar as calendar_services
from scheduling.services.booking import BookingRequest, appointment_book, hold_take
from scheduling.services.changes import TakeOut, sessions_take_out
from scheduling.services.rota import AllocationRequest, allocation_create
from scheduling.services.waitlist import EntryData, offer_by_hand, waitlist_add
from sessions_setup.models import SessionTemplate, SlotType
from sessions_setup.palette import PALETTE
from tests.conftest import ALL_PERMISSIONS
from tests.e2e.calendar_browser import WINTER_DAY
from tests.factories import (
    ClinicFactory,
    DepartmentFactory,
    LocationFactory,
    MembershipFactory,
    OtherEventFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    book,
    draft_of_new_series,
    template_with_slots,
)

WEEK = [WINTER_DAY + dt.timedelta(days=n) for n in range(5)]  # Monday to Friday
UTC = dt.UTC

# Slot types a practice uses; every colour of the palette appears once, so the grid, the slot types
# list and the builder show text on each of them.
SLOT_TYPE_NAMES = [
    "Routine",
    "Urgent",
    "Telephone",
    "Review",
    "Blood test",
    "Dressing",
    "Smear",
    "Baby clinic",
    "Flu jab",
    "Travel advice",
    "Minor surgery",
    "Emergency",
    "Ante-natal",
    "Post-natal",
    "Mental health",
    "Counselling",
    "Medication review",
    "Diabetes check",
    "Asthma review",
    "Admin",
]


@dataclass
class RealisticClinic:
    """The clinic, its three logins and the objects the URL walk names."""

    clinic: Clinic
    members: dict[str, Membership]  # "admin", "reception", "clinician"
    main: Location
    branch: Location
    department: Department
    smith: Practitioner  # the clinician's own practitioner
    patel: Practitioner
    okafor: Practitioner
    slot_types: list[SlotType]
    group_type: SlotType
    template: SessionTemplate
    allocation: Allocation
    mary: Patient
    blocked: Patient
    coverage: Coverage
    appointment: Appointment
    booked_slot: Slot  # Mary's booked single slot on WINTER_DAY
    free_slot: Slot
    group_slot: Slot  # a group slot with people in it and places free
    event: OtherEvent
    google_event: OtherEvent
    override: AvailabilityOverride
    draft: DraftOccurrence
    feed_token: str
    online_type: SlotType  # "Review", offered online
    online_slot: Slot  # free, and offered online (09:00, inside Dr Smith's online availability)
    online_request: OnlineBooking  # a patient's online request, waiting for reception
    email_check: EmailCheck  # a code sent, not yet typed
    session: Session  # Dr Smith's Monday session (booked, editable)
    out_session: Session  # Dr Patel's Friday session, cancelled (sickness): its patient waits on the worklist
    waitlist_entry: WaitlistEntry  # Mary, waiting for Dr Smith's group therapy, offered Monday's place
    offer: WaitlistOffer  # that offer, open


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=UTC)


def build_clinic():  # -> RealisticClinic; untyped, as factory_boy types what it makes as the factory
    """The clinic, its three logins and a week of its calendar."""
    clinic = ClinicFactory(
        name="Riverside Medical Practice",
        slug="riverside",
        internal_ids_enabled=True,
        bills_insurance=True,
        time_zone="Europe/London",
    )
    main = LocationFactory(clinic=clinic, name="Riverside Surgery", kind=Location.Kind.MAIN, postcode="BS1 4DJ")
    branch = LocationFactory(clinic=clinic, name="Hillside Branch", postcode="BS8 1TH")
    department = DepartmentFactory(clinic=clinic, name="General Practice")
    DepartmentFactory(clinic=clinic, name="Nursing")

    admin = MembershipFactory(
        clinic=clinic, role=Role.ADMIN, user__first_name="Alice", user__last_name="Admin", **ALL_PERMISSIONS
    )
    reception = MembershipFactory(
        clinic=clinic,
        role=Role.RECEPTION,
        perm_manage_appointments=True,
        user__first_name="Rita",
        user__last_name="Reception",
    )
    clinician = MembershipFactory(clinic=clinic, role=Role.CLINICIAN, user__first_name="Sarah", user__last_name="Smith")
    actor = admin.user
    smith = PractitionerFactory(
        clinic=clinic, name="Dr Sarah Smith", role=PractitionerRole.GP, default_location=main, user=clinician.user
    )
    patel = PractitionerFactory(clinic=clinic, name="Dr Omar Patel", role=PractitionerRole.GP, default_location=main)
    okafor = PractitionerFactory(
        clinic=clinic, name="Nurse Jane Okafor", role=PractitionerRole.NURSE, default_location=branch
    )

    slot_types = [
        SlotTypeFactory(clinic=clinic, name=name, colour=colour.key, default_length_minutes=10)
        for name, colour in zip(SLOT_TYPE_NAMES, PALETTE, strict=True)
    ]
    group_type = SlotTypeFactory(
        clinic=clinic, name="Group therapy", colour="purple", capacity=6, default_length_minutes=60
    )

    # Dr Smith's morning: a slot of every type, a blank one and a group slot; Monday to Friday.
    template = template_with_slots(
        clinic,
        [*slot_types, None, group_type],
        name="Dr Smith AM",
        colour="navy",
        description="Routine and same-day",  # at most 30 characters
    )
    allocation = allocation_create(
        clinic=clinic,
        actor=actor,
        request=AllocationRequest(template, smith, main, dt.time(8, 30), WEEK[0], WEEK[-1], (1, 2, 3, 4, 5), 1),
    )
    # Sessions in other palette colours and flags: closed, travel, open, and one for the whole clinic.
    for name, colour, practitioner, location, start, flags in [
        ("Dr Patel PM", "teal", patel, main, dt.time(14), {"closed_session": True}),
        ("Nurses clinic", "orange", okafor, branch, dt.time(9), {"travel_clinic": True}),
        ("Flu clinic", "grey", None, branch, dt.time(13), {"open_session": True}),
        ("Baby clinic", "olive", okafor, branch, dt.time(14), {}),
    ]:
        other = template_with_slots(clinic, slot_types[:6], name=name, colour=colour, **flags)
        allocation_create(
            clinic=clinic,
            actor=actor,
            request=AllocationRequest(other, practitioner, location, start, WEEK[0], WEEK[-1], (1, 3, 5), 1),
        )

    # Patients: with plans, a blocked one, an archived one.
    mary = PatientFactory(
        clinic=clinic,
        first_name="Mary",
        last_name="Thornbury",
        internal_id="P424242",
        mobile_phone="07700 900123",
        email="mary@example.com",
    )
    tom = PatientFactory(clinic=clinic, first_name="Tom", last_name="Thornton")
    blocked = PatientFactory(
        clinic=clinic, first_name="Bea", last_name="Hidden", is_blocked=True, blocked_reason="Staff member"
    )
    others = [
        PatientFactory(clinic=clinic, first_name=first, last_name=last)
        for first, last in [("Nadia", "Quist"), ("Ola", "Berg"), ("Raj", "Singh"), ("Li", "Wong"), ("Ed", "Moss")]
    ]
    PatientFactory(clinic=clinic, first_name="Old", last_name="Record", is_archived=True)
    coverage = Coverage.objects.create(
        clinic=clinic, patient=mary, payer="Acme Health", plan_name="Gold PPO", member_id="ACM-001", priority="primary"
    )
    Coverage.objects.create(
        clinic=clinic, patient=mary, payer="Blue Shield", plan_name="Silver", member_id="BS-9", priority="secondary"
    )
    Coverage.objects.create(
        clinic=clinic, patient=tom, payer="Acme Health", plan_name="Basic", member_id="ACM-777", priority="primary"
    )

    # Bookings on Monday: Mary through the booking service (audited), others in every status.
    monday = allocation.sessions.get(date=WINTER_DAY)
    slots = list(monday.slots.order_by("starts_at"))
    appointment = appointment_book(
        clinic=clinic,
        actor=reception.user,
        membership=reception,
        request=BookingRequest(slot=slots[0], patient=mary, department=department, coverage=coverage),
    )
    for slot, patient, status in [
        (slots[1], tom, "arrived"),
        (slots[2], others[0], "in_consultation"),
        (slots[3], others[1], "completed"),
        (slots[4], others[2], "did_not_attend"),
        (slots[5], others[3], "cancelled"),
        (slots[6], blocked, "booked"),
        (slots[7], others[4], "booked"),
    ]:
        book(slot, patient, status=status)
    group_slot = slots[-1]
    for patient in (tom, others[0], others[1]):
        book(group_slot, patient)
    free_slot = slots[10]
    # A full group slot on Tuesday.
    tuesday_group = allocation.sessions.get(date=WEEK[1]).slots.order_by("starts_at").last()
    for patient in [mary, tom, *others[:4]]:
        book(tuesday_group, patient)
    # Wednesday, a booking in Dr Patel's closed session.
    patel_slot = Slot.objects.for_clinic(clinic).filter(session__practitioner=patel, session__date=WEEK[2]).first()
    book(patel_slot, mary)

    # A weekly series with a draft still to place.
    draft = draft_of_new_series(
        clinic, patient=mary, practitioner=smith, slot_type=group_type, starts_at=at(WEEK[3], 17)
    )

    # Other events: timed busy and free, all-day busy and free, and events pulled from Google.
    def event(practitioner: Practitioner, title: str, **data: Any) -> OtherEvent:
        return calendar_services.other_event_save(
            clinic=clinic,
            actor=actor,
            data=calendar_services.EventData(practitioner=practitioner, title=title, notes="", **data),
        )

    timed = event(
        smith,
        "Practice meeting",
        all_day=False,
        busy=True,
        starts_at=at(WINTER_DAY, 12, 30),
        ends_at=at(WINTER_DAY, 13, 30),
    )
    event(smith, "Journal club", all_day=False, busy=False, starts_at=at(WINTER_DAY, 13), ends_at=at(WINTER_DAY, 14))
    event(smith, "Training day", all_day=True, busy=True, first_date=WEEK[1], last_date=WEEK[1])
    event(patel, "Annual leave", all_day=True, busy=True, first_date=WINTER_DAY, last_date=WEEK[2])
    event(okafor, "Working from home", all_day=True, busy=False, first_date=WINTER_DAY, last_date=WINTER_DAY)
    google_event = OtherEventFactory(
        clinic=clinic,
        practitioner=smith,
        title="Dentist (from Google)",
        starts_at=at(WINTER_DAY, 15),
        ends_at=at(WINTER_DAY, 16),
        google_calendar_id="primary",
        google_event_id="g-dentist",
    )
    OtherEventFactory(
        clinic=clinic,
        practitioner=smith,
        title="School holiday (from Google)",
        all_day=True,
        starts_at=None,
        ends_at=None,
        first_date=WINTER_DAY,
        last_date=WINTER_DAY,
        busy=False,
        google_calendar_id="primary",
        google_event_id="g-holiday",
    )

    # Office hours (the practice's and Dr Smith's own), online availability with a day off.
    weekdays = {day: [(dt.time(8), dt.time(18, 30))] for day in range(1, 6)}
    calendar_services.office_hours_save(
        clinic=clinic, actor=actor, practitioner=None, time_zone=clinic.time_zone, weekly=weekdays
    )
    calendar_services.office_hours_save(
        clinic=clinic,
        actor=actor,
        practitioner=smith,
        time_zone=clinic.time_zone,
        weekly={day: [(dt.time(8), dt.time(12, 30)), (dt.time(13, 30), dt.time(18))] for day in range(1, 5)},
    )
    calendar_services.availability_save(
        clinic=clinic,
        actor=actor,
        practitioner=smith,
        time_zone=clinic.time_zone,
        weekly={day: [(dt.time(9), dt.time(12)), (dt.time(14), dt.time(17))] for day in range(1, 6)},
    )
    calendar_services.availability_overrides_set(
        clinic=clinic, actor=actor, practitioner=smith, dates=[WEEK[4]], hours=[]
    )
    override = AvailabilityOverride.objects.for_clinic(clinic).get(practitioner=smith, date=WEEK[4])

    # The clinician's ICS feed, allowed.
    subscription = subscription_get_or_create(clinic=clinic, practitioner=smith)
    subscription_save(
        clinic=clinic,
        actor=clinician.user,
        subscription=subscription,
        enabled=True,
        identifier_mode=default_mode(clinic),
    )
    subscription.refresh_from_db()

    # Online booking on: "Review" (09:00 in Dr Smith's sessions, inside her online availability) is offered; one
    # patient's request waits for reception, another's code is on its way.
    OnlineSettings.objects.create(
        clinic=clinic, enabled=True, phone="0117 496 0000", intro="Book a review with a GP.", horizon_days=366
    )
    review = slot_types[3]
    SlotType.objects.for_clinic(clinic).filter(pk=review.pk).update(
        online_bookable=True, online_description="A 10-minute review of a long-term condition."
    )
    review_slots = Slot.objects.for_clinic(clinic).filter(session__allocation=allocation, slot_type=review)
    online_slot = review_slots.get(session__date=WEEK[2])
    held = review_slots.get(session__date=WEEK[3])
    ada = patient_register_online(
        clinic=clinic,
        first_name="Ada",
        last_name="Lovelace",
        date_of_birth=dt.date(1985, 12, 10),
        email="ada@example.org",
        mobile_phone="07700 900456",
    )
    online_request = OnlineBooking.objects.create(
        clinic=clinic,
        patient=ada,
        slot=held,
        slot_type=review,
        mode=BookingMode.REQUEST,
        status=OnlineStatus.PENDING,
        reason="Review of my asthma inhaler",
        hold=hold_take(
            clinic=clinic,
            actor=None,
            slot=held,
            kind=HoldKind.ONLINE_REQUEST,
            expires_at=timezone.now() + dt.timedelta(days=1),
        ),
    )
    email_check = EmailCheck.objects.create(
        clinic=clinic,
        token="walk-check-token",
        code_hash="0" * 64,
        email="ben@example.org",
        details={"slot": str(online_slot.public_id), "slot_type": str(review.public_id)},
        expires_at=timezone.now() + dt.timedelta(minutes=15),
    )

    # Dr Patel is off sick on Friday: his session there is cancelled and Ed Moss, booked in it, waits on the
    # displaced patients' worklist (with Dr Smith's Friday Routine place proposed).
    friday = Session.objects.for_clinic(clinic).get(practitioner=patel, date=WEEK[4])
    appointment_book(
        clinic=clinic,
        actor=reception.user,
        membership=reception,
        request=BookingRequest(slot=friday.slots.order_by("starts_at").first(), patient=others[4]),
        tell=False,
    )
    sessions_take_out(
        clinic=clinic,
        actor=actor,
        take=TakeOut(patel, None, WEEK[4], WEEK[4], SessionOut.CANCELLED, OutReason.SICKNESS, "Flu"),
    )

    # The waiting list: Ed Moss waits for Tuesday's full group; Mary for Dr Smith's group therapy on any day, and
    # reception offered her a place in Monday's group by hand. The offer is made as of the next noon in London (never
    # in the quiet hours, whatever the time the tests run), so it is still open while the pages are walked.
    waitlist_add(
        clinic=clinic,
        actor=reception.user,
        membership=reception,
        data=EntryData(patient=others[4], kind=WaitlistKind.SLOT, slot=tuesday_group, note="Any time after 10"),
    )
    waitlist_entry = waitlist_add(
        clinic=clinic,
        actor=reception.user,
        membership=reception,
        data=EntryData(patient=mary, kind=WaitlistKind.PREFERENCE, practitioner=smith, slot_type=group_type),
    )
    here = timezone.now().astimezone(ZoneInfo("Europe/London"))
    noon = here.replace(hour=12, minute=0, second=0, microsecond=0)
    offer = offer_by_hand(
        clinic=clinic,
        actor=reception.user,
        membership=reception,
        entry=waitlist_entry,
        slot=group_slot,
        now=noon if noon > here else noon + dt.timedelta(days=1),
    )

    # A few more audit lines: a blocked record opened, a setting changed.
    patient_record_opened(clinic=clinic, actor=admin.user, patient=blocked, view="detail")
    audit_record(clinic=clinic, actor=admin.user, action="clinic.settings_changed", target=clinic)

    return RealisticClinic(
        clinic=clinic,
        members={"admin": admin, "reception": reception, "clinician": clinician},
        main=main,
        branch=branch,
        department=department,
        smith=smith,
        patel=patel,
        okafor=okafor,
        slot_types=slot_types,
        group_type=group_type,
        template=template,
        allocation=allocation,
        mary=mary,
        blocked=blocked,
        coverage=coverage,
        appointment=appointment,
        booked_slot=slots[0],
        free_slot=free_slot,
        group_slot=group_slot,
        event=timed,
        google_event=google_event,
        override=override,
        draft=draft,
        feed_token=feed_token(subscription),
        online_type=review,
        online_slot=online_slot,
        online_request=online_request,
        email_check=email_check,
        session=monday,
        out_session=friday,
        waitlist_entry=waitlist_entry,
        offer=offer,
    )
