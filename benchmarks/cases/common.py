"""What several case families share: the registry, logged-in clients and pages (``page_case``), removing the
clinics of an earlier run, plain rows inserted without model instances, sub-measurements, and the builders of
patients and of the calendar's week (slot types, templates, rota, appointments) that the calendar, booking, series
and ICS families build on."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection, models, transaction
from django.test import Client
from django.urls import reverse

from benchmarks.harness import Case, Result, measure
from clinic.db import DbValues, bulk_insert
from clinic.models import AuditEvent, Clinic, Location, Membership, Practitioner, PractitionerRole
from online.models import OnlineBooking
from patients.identifiers import name_key, nhs_number_is_valid
from patients.models import InternalIdCounter, Patient, format_internal_id
from scheduling.forms import SELF_PAY
from scheduling.models import (
    Allocation,
    Appointment,
    AppointmentStatus,
    Hold,
    OfficeHours,
    OtherEvent,
    Session,
    Slot,
)
from scheduling.services.rota import AllocationRequest, allocation_create
from sessions_setup.models import SessionTemplate, SlotKind, SlotType, TemplateSlot

CASES: dict[str, Case[Any]] = {}


def register(case: Case[Any]) -> Case[Any]:
    if case.name in CASES:
        raise ValueError(f"benchmark case {case.name!r} is registered twice")
    CASES[case.name] = case
    return case


MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"  # axes is the first backend
DEMO_ADMIN = "admin@riverside.example"

# --- Pages through the test Client ----------------------------------------------------


@dataclass(frozen=True)
class PageState:
    client: Client
    url: str
    floor_url: str


def logged_in_client(username: str) -> Client:
    user = get_user_model().objects.get(username=username)
    client = Client()
    client.force_login(user, backend=MODEL_BACKEND)
    return client


def get_ok(client: Client, url: str) -> bytes:
    """GET ``url``; anything but a 200 is an error, never a measurement."""
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} returned {response.status_code}, expected 200")
    return response.content


def page_case(
    name: str,
    url_name: str,
    *,
    username: str = DEMO_ADMIN,
    floor_url_name: str = "healthz",
    check: Callable[[PageState], object] | None = None,
) -> Case[Any]:
    """GET a page as a logged-in demo user; the floor is the simplest page (``healthz``) with the same client.

    ``check``, called once after the timed runs, proves the page shows what it should.
    """

    def setup() -> PageState:
        return PageState(logged_in_client(username), reverse(url_name), reverse(floor_url_name))

    return register(
        Case(
            name=name,
            setup=setup,
            run=lambda state: get_ok(state.client, state.url),
            floor=lambda state: get_ok(state.client, state.floor_url),
            check=check,
        )
    )


PATIENT_DOB_RANGE = (dt.date(1925, 1, 1).toordinal(), dt.date(2024, 12, 31).toordinal())


def comma_separated(text: str) -> list[str]:
    return [name.strip() for line in text.strip().splitlines() for name in line.split(",")]


def words(text: str) -> list[str]:
    return text.split()


# Surnames, most common first (weights fall off as 1/sqrt(rank)): British and Irish, then the names of a
# mixed city list, accents, apostrophes, hyphens and spaces included.
SURNAMES = comma_separated(
    """
    Smith, Jones, Williams, Taylor, Brown, Davies, Evans, Wilson, Thomas, Johnson, Roberts, Robinson, Thompson
    Wright, Walker, White, Edwards, Hughes, Green, Hall, Lewis, Harris, Clarke, Patel, Jackson, Wood, Turner
    Martin, Cooper, Hill, Ward, Morris, Moore, Clark, Lee, King, Baker, Harrison, Morgan, Allen, James, Scott
    Phillips, Watson, Davis, Parker, Price, Bennett, Young, Griffiths, Mitchell, Kelly, Cook, Carter, Richardson
    Bailey, Collins, Bell, Shaw, Murphy, Miller, Cox, Richards, Khan, Marshall, Anderson, Simpson, Ellis, Adams
    Singh, Begum, Wilkinson, Foster, Chapman, Powell, Webb, Rogers, Gray, Mason, Ali, Hunt, Hussain, Campbell
    Matthews, Owen, Palmer, Holmes, Mills, Barnes, Knight, Lloyd, Butler, Russell, Barker, Fisher, Stevens
    Jenkins, Murray, Dixon, Harvey, Graham, Pearson, Ahmed, Fletcher, Walsh, Kaur, Gibson, Howard, Andrews
    Stewart, Elliott, Reynolds, Saunders, Payne, Fox, Ford, Pearce, Day, Brooks, West, Lawrence, Cole, Atkinson
    Bradley, Spencer, Gill, Dawson, Ball, Burton, O'Brien, Watts, Rose, Booth, Perry, Ryan, Grant, Wells
    Armstrong, Francis, Rees, Hayes, Hart, Hudson, Newman, Barrett, Webster, Hunter, Gregory, Carr, Lowe, Page
    Marsh, Riley, Dunn, Woods, Parsons, Berry, Stone, Reid, Holland, Hawkins, Harding, Porter, Robertson, Newton
    Oliver, Reed, Kennedy, Williamson, Bird, Gardner, Shah, Dean, Lane, Cooke, Bates, Henderson, Parry, Burgess
    Bishop, Walton, Burns, Nicholson, Shepherd, Ross, Cross, Long, Freeman, Warren, Nicholls, Hamilton, Byrne
    Sutton, McDonald, Yates, Hodgson, Robson, Curtis, Hopkins, O'Connor, Harper, Coleman, Watkins, Moss
    McCarthy, Chambers, O'Neill, Griffin, Sharp, Hardy, Wheeler, Potter, Osborne, Johnston, Gordon, Doyle
    Wallace, George, Jordan, Hutchinson, Rowe, Burke, May, Pritchard, Gilbert, Willis, Higgins, Read, Miles
    Stevenson, Stephenson, Hammond, Arnold, Buckley, Walters, Hewitt, Barber, Nelson, Slater, Austin, Sullivan
    Whitehead, Mann, Frost, Lambert, Stephens, Blake, Akhtar, Lynch, Goodwin, Barton, Woodward, Thomson
    Cunningham, Quinn, Barnett, Baxter, Bibi, Clayton, Nash, Greenwood, Jennings, Holt, Kemp, Poole, Gallagher
    Bond, Stokes, Tucker, Davidson, Fowler, Heath, Norman, Middleton, Lawson, Banks, French, Stanley, Jarvis
    Gibbs, Ferguson, Hayward, Carroll, Farrell, Fitzgerald, Sharma, Smithson, Smyth, Smart, Small, Smithers
    MacDonald, McLean, MacLeod, McKenzie, MacKay, McGregor, O'Sullivan, O'Reilly, O'Donnell, O'Hara, O'Leary
    O'Shea, D'Arcy, D'Souza, Fitzpatrick, Smith-Jones, Bowes-Lyon, Hartley-Brown, Lloyd-Davies, Ó Súilleabháin
    Ní Bhriain, ap Rhys, Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, Hoffmann
    Schäfer, Koch, Bauer, Richter, Klein, Wolf, Schröder, Neumann, Schwarz, Zimmermann, Braun, Krüger, Hartmann
    Lange, Krause, Lehmann, Köhler, König, Huber, Kaiser, Fuchs, Möller, Weiß, Groß, Jäger, Günther, Böhm
    Krämer, Kühn, Dubois, Bernard, Petit, Durand, Leroy, Moreau, Lefèvre, Girard, André, Mercier, Dupont
    Bonnet, François, Garnier, Rousseau, Guérin, Gérard, Noël, Rivière, Ménard, Benoît, Prévost, Carré, Rémy
    Le Gall, Le Roux, Citroën, Éluard, Étienne, García, Rodríguez, González, Fernández, López, Martínez
    Sánchez, Pérez, Gómez, Jiménez, Ruiz, Hernández, Díaz, Moreno, Muñoz, Álvarez, Romero, Alonso, Gutiérrez
    Navarro, Torres, Domínguez, Vázquez, Ramos, Ramírez, Serrano, Suárez, Ortega, Delgado, Castro, Núñez
    Iglesias, Medina, Cortés, Méndez, Márquez, Peña, Ibáñez, Durán, Benítez, Silva, Santos, Ferreira, Pereira
    Oliveira, Costa, Rodrigues, Martins, Sousa, Fernandes, Gonçalves, Gomes, Lopes, Marques, Alves, Almeida
    Ribeiro, Carvalho, Simões, Magalhães, Conceição, Nowak, Kowalski, Wiśniewski, Wójcik, Kowalczyk, Kamiński
    Lewandowski, Zieliński, Szymański, Woźniak, Dąbrowski, Kozłowski, Mazur, Kwiatkowski, Krawczyk, Król
    Wróbel, Stępień, Górski, Pawlak, Sikora, Hansen, Johansen, Olsen, Larsen, Andersen, Pedersen, Jørgensen
    Sørensen, Øvergaard, Andersson, Johansson, Karlsson, Nilsson, Eriksson, Jönsson, Lindström, Sjöberg
    Håkansson, Björk, Löfgren, Söderberg, Mårtensson, Rossi, Russo, Ferrari, Esposito, Bianchi, Romano
    Colombo, Ricci, Marino, Greco, Bruno, Gallo, Conti, De Luca, Mancini, Giordano, Rizzo, Lombardi, Moretti
    D'Angelo, D'Amico, De Santis, Niccolò, Rahman, Islam, Iqbal, Mahmood, Chowdhury, Uddin, Mistry, Gupta
    Kumar, Das, Miah, Parmar, Chauhan, Mehta, Desai, Joshi, Rao, Reddy, Nair, Iyer, Menon, Pillai, Banerjee
    Chatterjee, Mukherjee, Ghosh, Verma, Mishra, Siddiqui, Qureshi, Malik, Butt, Raza, Rashid, Hassan
    Hossain, Karim, Aziz, Sandhu, Dhillon, Sidhu, Grewal, Bhatti, Nguyen, Nguyễn, Tran, Trần, Le, Pham, Phạm
    Huynh, Đặng, Bui, Wang, Li, Zhang, Liu, Chen, Yang, Huang, Zhao, Wu, Zhou, Xu, Sun, Ma, Lin, Chan, Wong
    Cheung, Lau, Leung, Ng, Tang, Lam, Sato, Suzuki, Takahashi, Tanaka, Watanabe, Yamamoto, Kim, Park, Choi
    Okafor, Okeke, Adeyemi, Adebayo, Nwosu, Eze, Obi, Okonkwo, Mensah, Owusu, Boateng, Asante, Osei, Mwangi
    Kamau, Abdi, Mohamed, Ibrahim, Yusuf, Omar, Balogun, Afolabi, Diallo, Traoré, Keïta, Touré, Cissé, Konaté
    Ndiaye, Papadopoulos, Georgiou, Christodoulou, Ioannou, Yılmaz, Kaya, Demir, Şahin, Çelik, Öztürk, Aydın
    Doğan, Popescu, Ionescu, Rădulescu, Novák, Dvořák, Černý, Procházka, Kučera, Nagy, Kovács, Tóth, Szabó
    Horváth, Molnár, Németh, Ivanov, Smirnov, Kuznetsov, Shevchenko, Kovalenko, Kazlauskas, Bērziņš, Kalniņš
    """
)
FEMALE_NAMES = words("""
    Olivia Amelia Isla Ava Mia Ivy Lily Isabella Rosie Sophia Grace Freya Willow Florence Emily Ella Poppy Evie
    Charlotte Sienna Daisy Phoebe Sophie Alice Harper Matilda Ruby Emilia Maya Chloé Zoë Anaïs Renée Noémie Inès
    Siobhán Aoife Saoirse Niamh Margaret Susan Patricia Linda Elizabeth Barbara Jennifer Mary Sarah Karen Helen
    Jane Anne Joan Dorothy Hélène Françoise Agnieszka Małgorzata Zofia Björg Åsa Sølvi Ayesha Fatima Priya
    Aaliyah Nkechi Ngozi Mei Yuki Thị Lucía María José Begoña
""")
MALE_NAMES = words("""
    Noah Oliver George Arthur Muhammad Leo Harry Oscar Archie Henry Theodore Freddie Jack Charlie Theo Alfie
    Jacob Thomas Finley Arlo William Lucas Roman Tommy Isaac Teddy Edward James David John Michael Robert Peter
    Paul Richard Christopher Andrew Mark Stephen Brian Kevin Seán Ciarán Pádraig Eoin José Jesús Andrés Björn
    Søren Håkon Jürgen Jörg François Jérôme André Łukasz Paweł Wojciech Mehmet Çağan Ahmed Mohammed Rajesh
    Arjun Chinedu Kwame Wei Hiroshi Minh Duc João Nicolò
""")


def nhs_numbers(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct valid NHS numbers: nine random digits and the modulus-11 check digit."""
    numbers: list[str] = []
    for base in rng.sample(range(400_000_000, 700_000_000), count * 12 // 10):
        digits9 = f"{base:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits9, range(10, 1, -1), strict=True)) % 11
        number = digits9 + str(0 if check == 11 else check)  # 10 means "no such NHS number": skipped below
        if check != 10 and nhs_number_is_valid(number):
            numbers.append(number)
            if len(numbers) == count:
                return numbers
    raise RuntimeError("not enough NHS numbers")


CALENDAR_MONDAY = dt.date(2027, 3, 1)  # no clock change in the week; the month view shows 1 March - 4 April
CALENDAR_TIME_ZONE = "Europe/London"
CALENDAR_WEEKDAYS = (1, 2, 3, 4, 5)
CALENDAR_SLOT_MINUTES = 10

CALENDAR_BLOCKED_EVERY = 40  # every 40th patient is blocked: "Restricted patient" to the admin
CALENDAR_LIVE_STATUSES: dict[str, int] = {  # status: weight
    AppointmentStatus.BOOKED: 70,
    AppointmentStatus.ARRIVED: 8,
    AppointmentStatus.IN_CONSULTATION: 4,
    AppointmentStatus.COMPLETED: 15,
    AppointmentStatus.DID_NOT_ATTEND: 3,
}
# Per practitioner and weekday an AM and a PM session of 10-minute slots: 30 slots, two of them group slots
# of 8 places and two blank (not bookable). 20 practitioners x 5 days x 30 slots = 3,000 slots in the week.
CALENDAR_SESSIONS = (
    ("Bench AM", dt.time(8, 30), ["routine"] * 14 + ["telephone"] * 2 + [None, "group"]),
    ("Bench PM", dt.time(14, 0), ["routine"] * 10 + [None, "group"]),
)
CALENDAR_SLOT_TYPES = {  # key: (name, colour, kind, capacity)
    "routine": ("Routine", "blue", SlotKind.FACE_TO_FACE, 1),
    "telephone": ("Telephone", "teal", SlotKind.TELEPHONE, 1),
    "group": ("Group education", "purple", SlotKind.FACE_TO_FACE, 8),
}
CALENDAR_SLOTS_PER_DAY = sum(len(layout) for _, _, layout in CALENDAR_SESSIONS)


@dataclass(frozen=True)
class CalendarSize:
    slug: str
    admin: str
    practitioners: int
    live_appointments: int
    cancelled_appointments: int
    patients: int

    @property
    def slots(self) -> int:
        return self.practitioners * len(CALENDAR_WEEKDAYS) * CALENDAR_SLOTS_PER_DAY


def clinics_clear(slugs: Sequence[str]) -> None:
    """Remove the clinics of an earlier run and all they hold (PROTECT foreign keys: the dependants go first)."""
    clinic_ids = list(Clinic.objects.filter(slug__in=slugs).values_list("id", flat=True))
    if not clinic_ids:
        return
    with transaction.atomic():
        for model in (
            OnlineBooking,
            Hold,
            AuditEvent,
            Appointment,
            OtherEvent,
            OfficeHours,
            Slot,
            Session,
            Allocation,
            TemplateSlot,
            SessionTemplate,
            SlotType,
            Patient,
            Practitioner,
            Membership,
            Location,
        ):
            model._default_manager.filter(clinic_id__in=clinic_ids).delete()
        Clinic.objects.filter(id__in=clinic_ids).delete()


def clinics_clear_plain(slug_prefix: str) -> None:
    """Remove the clinics whose slug starts with ``slug_prefix`` (an earlier run's, in a kept BENCH_DATABASE_URL) and
    every row they own, by plain DELETEs: the ORM's delete would load every slot and appointment to cascade."""
    clinic_ids = list(Clinic.objects.filter(slug__startswith=slug_prefix).values_list("id", flat=True))
    if not clinic_ids:
        return
    marks = ", ".join(["%s"] * len(clinic_ids))
    tenant_tables = [
        model._meta.db_table
        for model in apps.get_models()
        if any(f.name == "clinic" and f.is_relation for f in model._meta.concrete_fields)
    ]
    with transaction.atomic(), connection.cursor() as cursor:  # foreign keys are checked at commit
        for table in tenant_tables:
            cursor.execute(f"DELETE FROM {table} WHERE clinic_id IN ({marks})", clinic_ids)
        cursor.execute(f"DELETE FROM {Clinic._meta.db_table} WHERE id IN ({marks})", clinic_ids)


def insert_rows(
    model: type[models.Model], columns: Sequence[str], rows: Iterable[tuple[Any, ...]], db: DbValues
) -> None:
    """Rows of ``model``: ``columns`` (attnames) from ``rows``, already as stored; a new public_id each; every other
    column its default as the ORM stores it, NULL where it has none (a NOT NULL column without one is an error)."""
    constants: dict[str, Any] = {}
    for f in model._meta.concrete_fields:
        if f.attname in columns or f.attname in ("id", "public_id"):
            continue
        default = f.get_default()
        if default is None:
            if not f.null:
                raise RuntimeError(f"{model.__name__}.{f.attname} needs a value")
            continue
        constants[f.attname] = f.get_db_prep_save(default, connection)
    names = ("public_id", *columns, *constants)
    fixed = tuple(constants.values())
    rows = list(rows)
    ids = db.random_uuids(len(rows))
    bulk_insert(model._meta.db_table, names, [(uid, *row, *fixed) for uid, row in zip(ids, rows, strict=True)])


def calendar_patients(clinic: Clinic, rng: random.Random, count: int) -> list[Patient]:
    nhs = nhs_numbers(rng, count)
    patients = []
    for number in range(1, count + 1):
        female = rng.random() < 0.51
        first_name = rng.choice(FEMALE_NAMES if female else MALE_NAMES)
        last_name = rng.choices(SURNAMES[:120])[0]
        blocked = number % CALENDAR_BLOCKED_EVERY == 0
        patients.append(
            Patient(
                clinic=clinic,
                internal_id=format_internal_id(number),
                first_name=first_name,
                last_name=last_name,
                preferred_name="Sam" if number % 25 == 0 else "",
                sex=(Patient.Sex.FEMALE if female else Patient.Sex.MALE).value,
                date_of_birth=dt.date.fromordinal(rng.randint(*PATIENT_DOB_RANGE)),
                national_id_kind=Patient.NationalIdKind.NHS.value,
                national_id=nhs[number - 1],
                is_blocked=blocked,
                blocked_reason="Restricted record" if blocked else "",
                # What Patient.save() would compute; bulk_create does not call it.
                last_name_key=name_key(last_name),
                first_name_key=name_key(first_name),
            )
        )
    Patient.objects.bulk_create(patients, batch_size=500)
    InternalIdCounter.objects.create(clinic=clinic, last_number=count)
    return list(Patient.objects.for_clinic(clinic).order_by("id"))


def calendar_rota(
    clinic: Clinic, size: CalendarSize, *, weeks: int = 1, monday: dt.date = CALENDAR_MONDAY
) -> list[Practitioner]:
    """Slot types, the AM and PM templates, the practitioners and their sessions for the week of ``monday`` (or
    ``weeks`` weeks from it)."""
    location = Location.objects.create(
        clinic=clinic, name="Main surgery", kind=Location.Kind.MAIN, time_zone=CALENDAR_TIME_ZONE
    )
    slot_types = {
        key: SlotType.objects.create(
            clinic=clinic,
            name=name,
            colour=colour,
            kind=kind,
            capacity=capacity,
            default_length_minutes=CALENDAR_SLOT_MINUTES,
            bookable=True,
            order=order,
        )
        for order, (key, (name, colour, kind, capacity)) in enumerate(CALENDAR_SLOT_TYPES.items())
    }
    templates = []
    for name, start, layout in CALENDAR_SESSIONS:
        template = SessionTemplate.objects.create(clinic=clinic, name=name, colour="navy", description=f"{name} list")
        TemplateSlot.objects.bulk_create(
            TemplateSlot(
                clinic=clinic,
                template=template,
                position=position,
                slot_type=slot_types[key] if key else None,
                length_minutes=CALENDAR_SLOT_MINUTES,
            )
            for position, key in enumerate(layout)
        )
        templates.append((template, start))
    practitioners = [
        Practitioner.objects.create(
            clinic=clinic, name=f"Dr Calendar {i:02}", role=PractitionerRole.GP, default_location=location
        )
        for i in range(1, size.practitioners + 1)
    ]
    friday = monday + dt.timedelta(weeks=weeks, days=-3)  # of the last week
    for practitioner in practitioners:
        for template, start in templates:
            allocation_create(
                clinic=clinic,
                actor=None,
                request=AllocationRequest(
                    template, practitioner, location, start, monday, friday, CALENDAR_WEEKDAYS, every_weeks=1
                ),
            )
    return practitioners


def calendar_appointments(
    clinic: Clinic, size: CalendarSize, rng: random.Random, patients: list[Patient], actor: User
) -> None:
    """``size.live_appointments`` live appointments on random places of the bookable slots, a few cancelled ones,
    and each slot's booked_count (the live appointments in it)."""
    slots = list(
        Slot.objects.for_clinic(clinic)
        .filter(bookable=True)
        .order_by("starts_at", "id")
        .values_list("id", "session__practitioner_id", "slot_type_id", "capacity", "starts_at", "ends_at")
    )
    places = [slot for slot in slots for _ in range(slot[3])]
    statuses, weights = list(CALENDAR_LIVE_STATUSES), list(CALENDAR_LIVE_STATUSES.values())
    chosen: list[tuple[tuple[Any, ...], str]] = [
        (slot, rng.choices(statuses, weights)[0]) for slot in rng.sample(places, size.live_appointments)
    ]
    chosen += [(slot, AppointmentStatus.CANCELLED) for slot in rng.sample(slots, size.cancelled_appointments)]
    # A patient holds at most one live place in a slot (a database constraint): draw until unused.
    in_slot: dict[int, set[int]] = {}

    def patient_for(slot_id: int, status: str) -> Patient:
        while True:
            patient = rng.choice(patients)
            if status == AppointmentStatus.CANCELLED or patient.pk not in in_slot.setdefault(slot_id, set()):
                if status != AppointmentStatus.CANCELLED:
                    in_slot[slot_id].add(patient.pk)
                return patient

    Appointment.objects.bulk_create(
        (appointment_in(clinic, slot, patient_for(slot[0], status), status, actor) for slot, status in chosen),
        batch_size=500,
    )
    booked: dict[int, int] = {}
    for slot, status in chosen:
        if status != AppointmentStatus.CANCELLED:
            booked[slot[0]] = booked.get(slot[0], 0) + 1
    booked_counts_set(clinic, booked)


def appointment_in(clinic: Clinic, slot: tuple[Any, ...], patient: Patient, status: str, actor: User) -> Appointment:
    """An appointment (unsaved) in ``slot``: (id, practitioner id, slot type id, capacity, starts_at, ends_at)."""
    slot_id, practitioner_id, slot_type_id, _, starts_at, ends_at = slot
    return Appointment(
        clinic=clinic,
        slot_id=slot_id,
        practitioner_id=practitioner_id,
        patient=patient,
        slot_type_id=slot_type_id,
        status=status,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=actor,
    )


def booked_counts_set(clinic: Clinic, booked: dict[int, int]) -> None:
    """Set the booked_count of slots (slot id: places taken), one UPDATE per count and 500 slots."""
    by_count: dict[int, list[int]] = {}
    for slot_id, count in booked.items():
        by_count.setdefault(count, []).append(slot_id)
    for count, ids in by_count.items():
        for start in range(0, len(ids), 500):
            Slot.objects.for_clinic(clinic).filter(id__in=ids[start : start + 500]).update(booked_count=count)


def slots_miscounted(clinic: Clinic) -> int:
    """How many of the clinic's slots have a booked_count other than their number of live appointments."""
    counted = Slot.objects.for_clinic(clinic).annotate(
        live=models.Count("appointments", filter=~models.Q(appointments__status=AppointmentStatus.CANCELLED))
    )
    return counted.exclude(booked_count=models.F("live")).count()


def slots_overbooked(clinic: Clinic) -> int:
    """How many of the clinic's slots hold more places than their capacity (live appointments and live holds), or
    count them wrong: a booked_count other than the two together, or a held_count other than the live holds."""
    live = ~models.Q(appointments__status=AppointmentStatus.CANCELLED)
    counted = Slot.objects.for_clinic(clinic).annotate(
        live=models.Count("appointments", filter=live, distinct=True),
        held=models.Count("holds", filter=models.Q(holds__ended_at__isnull=True), distinct=True),
    )
    taken = models.F("live") + models.F("held")
    return counted.filter(
        models.Q(capacity__lt=taken) | ~models.Q(booked_count=taken) | ~models.Q(held_count=models.F("held"))
    ).count()


def vacuum_analyze(*tables: type[models.Model]) -> None:
    """VACUUM (ANALYZE) the models' tables (PostgreSQL): a reset's dead rows gone, statistics as autovacuum would
    leave them, so that each run starts from the same database."""
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(model._meta.db_table for model in tables)}")


def booking_fields(slot: Slot, patient: Patient, action: str) -> dict[str, str]:
    """What the booking form posts for ``patient``: self pay, the slot's own type, and the button pressed."""
    if slot.slot_type is None:
        raise RuntimeError(f"bookable slot {slot.public_id} has no slot type")
    return {
        "patient": str(patient.public_id),
        "coverage": SELF_PAY,
        "slot_type": str(slot.slot_type.public_id),
        "action": action,
    }


def slots_book_to(
    clinic: Clinic, targets: Sequence[tuple[Slot, int]], rng: random.Random, patients: Sequence[Patient], actor: User
) -> int:
    """Book each slot up to its number of places taken (random patients not in it yet; booked_count follows);
    return how many appointments that made."""
    taken = set(
        Appointment.objects.for_clinic(clinic)
        .live()
        .filter(slot__in=[slot for slot, _ in targets])
        .values_list("slot_id", "patient_id")
    )
    made: list[Appointment] = []
    for slot, places in targets:
        row = (slot.pk, slot.session.practitioner_id, slot.slot_type_id, slot.capacity, slot.starts_at, slot.ends_at)
        fresh = [p for p in rng.sample(patients, 2 * slot.capacity) if (slot.pk, p.pk) not in taken]
        made += [
            appointment_in(clinic, row, patient, AppointmentStatus.BOOKED, actor)
            for patient in fresh[: places - slot.booked_count]
        ]
    Appointment.objects.bulk_create(made, batch_size=500)
    booked_counts_set(clinic, {slot.pk: max(places, slot.booked_count) for slot, places in targets})
    return len(made)


def sub_case(
    name: str,
    state: Any,
    run: Callable[[Any], object],
    result: Result,
    *,
    reset: Callable[[Any], object] | None = None,
    runs: int | None = None,
) -> Result:
    """``run`` on ``state`` timed as the case whose ``result`` this is (its runs and warm-up, unless ``runs`` is
    given), with ``reset`` before each call if given; the figures under ``name``_median_s and so on."""
    figures = measure(
        Case(name, lambda: state, run=run, reset=reset),
        runs=int(result["runs"]) if runs is None else runs,
        warmup=int(result["warmup"]),
    )
    return {f"{name}_{key}": figures[key] for key in ("median_s", "min_s", "max_s", "queries", "peak_mb")}
