"""Shared set-up of the patient-data tests: a patient with a row in every table that can hold their data (made
through the services where there is one), an independent walk of the app registry, and a search of the whole
database (every column of every table, and the decompressed stored feeds) for a patient's identity."""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterable
from dataclasses import dataclass

from django.apps import apps
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from calendar_sync.models import FeedDocument
from clinic.models import Membership, Role
from fhir_api.models import FhirBooking, OrganisationType
from fhir_api.services.consumers import consumer_create
from notifications.consent import consent_record
from notifications.models import Channel, ConsentSource, Message
from notifications.sending import send_messages, tick
from online.models import BookingMode, EmailCheck, OnlineBooking, OnlineStatus
from patients.models import Coverage, Patient
from patients.services import patient_record_opened
from privacy.models import BreakGlassAlert
from privacy.services.breakglass import break_glass, review_close
from scheduling.models import (
    Appointment,
    ChangeKind,
    DisplacedState,
    DisplacedWhy,
    Displacement,
    Hold,
    HoldKind,
    HoldOutcome,
    RotaChange,
    WaitlistEntry,
    WaitlistKind,
    WaitlistOffer,
    WaitlistState,
)
from scheduling.services.booking import (
    BookingRequest,
    appointment_book,
    appointment_cancel,
    appointment_reschedule,
    appointment_status_set,
)
from sessions_setup.models import SlotType
from tests.factories import (
    MembershipFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    allocate_session,
    draft_of_new_series,
)

FIRST, LAST, PREFERRED = "Zebedee", "Quillfeather", "Quilly"
BIRTH = dt.date(1975, 4, 3)
MOBILE, HOME = "07700 900461", "01632 960782"
EMAIL = "zebedee.quill@example.org"


def birth_date_spellings(day: dt.date) -> list[str]:
    """A date of birth in the ways it is commonly written: ISO, day/month/year (and US), and in words."""
    return [
        day.isoformat(),
        day.strftime("%Y%m%d"),
        f"{day.day:02d}/{day.month:02d}/{day.year}",
        f"{day.day}/{day.month}/{day.year}",
        f"{day.month:02d}/{day.day:02d}/{day.year}",
        f"{day.day} {day:%B %Y}",
        f"{day:%B} {day.day}, {day.year}",
        f"{day.day} {day:%b %Y}",
    ]


def digits(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())


IDENTITY = [
    FIRST,
    LAST,
    PREFERRED,
    *birth_date_spellings(BIRTH),
    MOBILE,
    digits(MOBILE),
    digits(MOBILE)[-10:],
    HOME,
    digits(HOME),
    digits(HOME)[-10:],
    EMAIL,
    "9434765870",  # the national ID
    "QF-77881",  # the insurance member ID
    "12 Lantern Walk",
]


@dataclass
class RichPatient:
    patient: Patient
    practitioner: object
    appointments: list[Appointment]


def rich_patient(clinic, admin: Membership, *, day: dt.date) -> RichPatient:
    """A blocked patient with a row in every table that can hold their data, from `day` on: appointments booked,
    moved, cancelled and completed (with their history in the audit), a series with a draft, insurance, a waiting
    list entry and an offer, online and FHIR bookings, a displacement, messages sent, consent, an email check, and
    an opening of the blocked record."""
    actor = admin.user
    practitioner = PractitionerFactory(clinic=clinic, name="Dr Erasmus")
    kind: SlotType = SlotTypeFactory(clinic=clinic, name="Consultation", capacity=2)  # type: ignore[assignment]
    patient: Patient = PatientFactory(  # type: ignore[assignment]  # factory_boy returns the model instance
        clinic=clinic,
        first_name=FIRST,
        last_name=LAST,
        preferred_name=PREFERRED,
        date_of_birth=BIRTH,
        mobile_phone=MOBILE,
        home_phone=HOME,
        email=EMAIL,
        address="12 Lantern Walk\nHighbury",
        postcode="N5 2QQ",
        national_id_kind="nhs",
        national_id="9434765870",
        notes=f"{FIRST} prefers mornings",
        is_blocked=True,
        blocked_reason=f"{LAST} family member on staff",
    )
    coverage = Coverage.objects.create(
        clinic=clinic, patient=patient, payer="Bupa", plan_name="Gold", member_id="QF-77881", group_number="G-" + LAST
    )
    slots = []
    for offset in range(4):
        session = allocate_session(
            clinic, practitioner=practitioner, day=day + dt.timedelta(days=offset), slot_types=[kind]
        )
        slots.append(session.slots.get())
    first = appointment_book(
        clinic=clinic, actor=actor, membership=admin, request=BookingRequest(slots[0], patient, coverage=coverage)
    )
    moved = appointment_reschedule(clinic=clinic, actor=actor, membership=admin, appointment=first, slot=slots[1])
    appointment_cancel(clinic=clinic, actor=actor, appointment=moved, reason=f"{FIRST} rang: flu")
    done = appointment_book(clinic=clinic, actor=actor, membership=admin, request=BookingRequest(slots[2], patient))
    appointment_status_set(clinic=clinic, actor=actor, appointment=done, status="arrived")
    appointment_status_set(clinic=clinic, actor=actor, appointment=done, status="in_consultation")
    appointment_status_set(clinic=clinic, actor=actor, appointment=done, status="completed")
    draft_of_new_series(
        clinic,
        patient=patient,
        practitioner=practitioner,
        slot_type=kind,
        starts_at=dt.datetime.combine(day, dt.time(17), tzinfo=dt.UTC),
    )
    Hold.objects.create(
        clinic=clinic,
        slot=slots[2],
        kind=HoldKind.ONLINE_REQUEST,
        expires_at=done.starts_at,
        ended_at=done.starts_at - dt.timedelta(days=1),
        outcome=HoldOutcome.ACCEPTED,
        appointment=done,
    )
    entry = WaitlistEntry.objects.create(
        clinic=clinic,
        patient=patient,
        kind=WaitlistKind.PREFERENCE,
        position=1,
        state=WaitlistState.REMOVED,
        note=f"Call {FIRST} on {MOBILE}",
        added_by=actor,
        ended_at=timezone.now(),
    )
    offer_hold = Hold.objects.create(
        clinic=clinic,
        slot=slots[3],
        kind=HoldKind.WAITLIST_OFFER,
        expires_at=slots[3].starts_at,
        ended_at=slots[3].starts_at - dt.timedelta(days=1),
        outcome=HoldOutcome.DECLINED,
    )
    WaitlistOffer.objects.create(clinic=clinic, entry=entry, slot=slots[3], hold=offer_hold)
    OnlineBooking.objects.create(
        clinic=clinic,
        patient=patient,
        slot=slots[3],
        slot_type=kind,
        mode=BookingMode.REQUEST,
        status=OnlineStatus.DECLINED,
        reason=f"{FIRST}'s knee hurts",
        decline_reason="full",
    )
    EmailCheck.objects.create(
        clinic=clinic,
        token="tok-" + LAST,
        code_hash="0" * 64,
        email=EMAIL,
        details={"first_name": FIRST, "last_name": LAST, "date_of_birth": BIRTH.isoformat(), "mobile": MOBILE},
        expires_at=timezone.now(),
    )
    consumer = consumer_create(
        clinic=clinic,
        actor=actor,
        name="NHS 111",
        organisation_type=OrganisationType.URGENT_CARE,
        ods_code="",
        scopes=["appointment.write"],
        slot_types=[kind],
        rate_limit=120,
    ).consumer
    FhirBooking.objects.create(
        clinic=clinic,
        appointment=done,
        consumer=consumer,
        description=f"{FIRST} {LAST}: chest pain",
        comment=f"Born {BIRTH:%d/%m/%Y}",
        booking_organisation="NHS 111",
    )
    change = RotaChange.objects.create(clinic=clinic, kind=ChangeKind.CANCEL, summary="Sessions cancelled", actor=actor)
    Displacement.objects.create(
        clinic=clinic,
        change=change,
        appointment=done,
        why=DisplacedWhy.CANCELLED,
        state=DisplacedState.GONE,
        note=f"Left a message for {FIRST}",
    )
    consent_record(
        patient=patient,
        channel=Channel.SMS,
        granted=True,
        source=ConsentSource.RECEPTION,
        actor=actor,
        now=timezone.now(),
    )
    patient_record_opened(clinic=clinic, actor=actor, patient=patient, view="record")
    # Break-glass by a receptionist, alerting the admin (a privacy officer), and its review; the words name them.
    officer = Membership.objects.filter(pk=admin.pk).update(perm_privacy_officer=True)
    assert officer == 1
    member: Membership = MembershipFactory(clinic=clinic, role=Role.RECEPTION)  # type: ignore[assignment]
    use = break_glass(
        clinic=clinic,
        actor=member.user,
        membership=member,
        patient=patient,
        category="clinical_emergency",
        reason=f"{FIRST} {LAST} collapsed at the desk; the GP needed the allergies",
    )
    assert BreakGlassAlert.objects.filter(use=use).exists(), "no privacy officer was alerted"
    admin.refresh_from_db()
    review_close(
        clinic=clinic, actor=actor, membership=admin, use=use, outcome="appropriate", note=f"Spoke to {FIRST}: fine"
    )
    # The messages the bookings recorded, sent (their words and addresses are kept).
    later = timezone.now() + dt.timedelta(minutes=1)
    tick(later, lambda ids: send_messages(ids, later))
    assert Message.objects.filter(patient=patient).exclude(body="").exists(), "no message was sent"
    appointments = list(Appointment.objects.filter(patient=patient).order_by("starts_at"))
    return RichPatient(patient, practitioner, appointments)


# The walk, written independently of privacy's: lookups from each model to the patient, breadth first. -------------


def relation_fields(model: type[models.Model]) -> Iterable[models.Field]:
    for field in model._meta.concrete_fields:
        if field.is_relation and (field.many_to_one or field.one_to_one):
            yield field


def lookups_to_patient(max_depth: int = 6) -> dict[str, list[str]]:
    """For every model that reaches Patient through foreign keys and one-to-ones, the lookups that do."""
    found: dict[type[models.Model], list[str]] = {Patient: [""]}
    for _ in range(max_depth):
        grew = False
        for model in apps.get_models():
            for field in relation_fields(model):
                target = field.related_model
                if isinstance(target, str) or target not in found or target is model:
                    continue
                for rest in list(found[target]):
                    lookup = f"{field.name}__{rest}" if rest else field.name
                    if lookup.count("__") > max_depth:
                        continue
                    if lookup not in found.setdefault(model, []):
                        found[model].append(lookup)
                        grew = True
        if not grew:
            break
    return {model._meta.label_lower: lookups for model, lookups in found.items() if model is not Patient}


def rows_reaching(label: str, lookups: list[str], patient: Patient) -> set[str]:
    model = apps.get_model(label)
    condition = Q()
    for lookup in lookups:
        condition |= Q(**{lookup: patient})
    return {str(pk) for pk in model._base_manager.filter(condition).values_list("public_id", flat=True)}


# The search of the whole database. ---------------------------------------------------------------------------------


def _text_columns() -> list[tuple[str, str]]:
    """Every column of every table but binary ones (those are the stored feeds, searched decompressed)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND data_type <> 'bytea'"
            )
            return list(cursor.fetchall())
        columns = []
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'PRAGMA table_info("{table}")')
            columns += [(table, row[1]) for row in cursor.fetchall() if (row[2] or "").upper() != "BLOB"]
        return columns


def identity_found(needles: Iterable[str]) -> list[str]:
    """Where any of these strings appears in the database (case-insensitive), as "table.column: needle": every
    column of every table read as text (dates and JSON included), and every stored feed decompressed."""
    needles = [n for n in needles if n]
    hits = []
    like = "ILIKE" if connection.vendor == "postgresql" else "LIKE"
    with connection.cursor() as cursor:
        for table, column in _text_columns():
            value = f'CAST("{column}" AS TEXT)'
            where = " OR ".join(f"{value} {like} %s ESCAPE '!'" for _ in needles)
            patterns = ["%" + n.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%" for n in needles]
            cursor.execute(f'SELECT DISTINCT {value} FROM "{table}" WHERE {where}', patterns)
            for (text,) in cursor.fetchall():
                hits += [f"{table}.{column}: {n}" for n in needles if n.lower() in (text or "").lower()]
    for subscription_id, body in FeedDocument.objects.values_list("subscription_id", "body"):
        text = gzip.decompress(bytes(body)).decode() if body else ""
        hits += [f"feed of subscription {subscription_id}: {n}" for n in needles if n.lower() in text.lower()]
    return hits
