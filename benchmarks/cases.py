"""The benchmark cases. Add one with ``register(Case(name, setup, run, floor))`` or, for a page, ``page_case``.

A case that measures more than one median (booking_http: latencies and throughput per number of clients) adds
its figures to its entry of results.json through ``Case.extras``.

Imported by the harness only after it has pointed DATABASE_URL at the benchmarks' own database and loaded the
apps, and set up only after migrate and seed_demo: setups may rely on the demo clinics (logins like
admin@riverside.example).
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import gzip
import itertools
import math
import os
import random
import re
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import dj_database_url
import icalendar
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS, connection, models, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from benchmarks.harness import SETTINGS_MODULE, Case, Result, count_queries, measure, peak_memory_mb
from benchmarks.http_load import GunicornServer, percentile, run_clients
from calendar_sync import ics
from calendar_sync.crypto import seal
from calendar_sync.google import client as google_client
from calendar_sync.google import events as google_events
from calendar_sync.google import pull as google_pull
from calendar_sync.google import push as google_push
from calendar_sync.google.pull import PullReport
from calendar_sync.google.push import PushReport
from calendar_sync.ics import FeedItem
from calendar_sync.models import (
    FeedDocument,
    FeedEvent,
    FeedSubscription,
    GoogleCalendar,
    GoogleConnection,
    GoogleEvent,
    GooglePending,
    SyncType,
)
from calendar_sync.selectors import UID_DOMAIN, feed_sources, feed_window
from calendar_sync.services import (
    feed_build,
    feed_bytes,
    feed_changes_record,
    subscription_save,
)
from calendar_sync.subscriptions import feed_token, subscription_get_or_create
from clinic.db import bulk_insert
from clinic.models import AuditEvent, Clinic, Location, Membership, Practitioner, PractitionerRole, Role
from patients.display import IdentifierMode
from patients.identifiers import name_key, nhs_number_is_valid, phone_key, ssn_is_valid
from patients.models import Coverage, InternalIdCounter, Patient, format_internal_id
from patients.selectors import SEARCH_LIMIT, patient_search
from scheduling.forms import SELF_PAY
from scheduling.models import Allocation, Appointment, AppointmentStatus, OfficeHours, OtherEvent, Session, Slot
from scheduling.recurrence import RecurrenceRule
from scheduling.services import SLOT_INSERT_COLUMNS, AllocationRequest, allocation_create
from sessions_setup.models import SessionTemplate, SlotKind, SlotType, TemplateSlot

if TYPE_CHECKING:
    from tests.google_fake.server import FakeGoogle

CASES: dict[str, Case[Any]] = {}

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"  # axes is the first backend
DEMO_ADMIN = "admin@riverside.example"


def register(case: Case[Any]) -> Case[Any]:
    if case.name in CASES:
        raise ValueError(f"benchmark case {case.name!r} is registered twice")
    CASES[case.name] = case
    return case


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


def page_case(name: str, url_name: str, *, username: str = DEMO_ADMIN, floor_url_name: str = "healthz") -> Case[Any]:
    """GET a page as a logged-in demo user; the floor is the simplest page (``healthz``) with the same client."""

    def setup() -> PageState:
        return PageState(logged_in_client(username), reverse(url_name), reverse(floor_url_name))

    return register(
        Case(
            name=name,
            setup=setup,
            run=lambda state: get_ok(state.client, state.url),
            floor=lambda state: get_ok(state.client, state.floor_url),
        )
    )


page_case("home_page", "home")


# --- Allocating a year's rota ---------------------------------------------------------

ROTA_PRACTITIONERS = 20
ROTA_WEEKS = 52
ROTA_WEEKDAYS = (1, 2, 3, 4, 5)
ROTA_SLOTS_PER_SESSION = 30
ROTA_SLOT_MINUTES = 8  # 30 x 8 minutes: a four-hour session
ROTA_START = dt.time(8, 0)
ROTA_FIRST_DATE = dt.date(2027, 1, 4)  # a Monday; the year crosses both clock changes
ROTA_LAST_DATE = ROTA_FIRST_DATE + dt.timedelta(weeks=ROTA_WEEKS, days=-3)  # the Friday of week 52
ROTA_TIME_ZONE = "Europe/London"
ROTA_SESSIONS = ROTA_PRACTITIONERS * ROTA_WEEKS * len(ROTA_WEEKDAYS)  # 5,200
ROTA_SLOTS = ROTA_SESSIONS * ROTA_SLOTS_PER_SESSION  # 156,000

Row = tuple[object, ...]
ALLOCATION_COLUMNS = tuple(f.attname for f in Allocation._meta.concrete_fields)
SESSION_COLUMNS = tuple(f.attname for f in Session._meta.concrete_fields)


@dataclass(frozen=True)
class RotaState:
    clinic: Clinic
    actor: User
    requests: list[AllocationRequest]
    # The floor's rows, as plain tuples stored the way the ORM stores them.
    allocation_rows: list[Row]
    session_rows: list[Row]
    slot_rows: list[Row]


def as_stored(model: type[models.Model], columns: Sequence[str], rows: Iterable[Sequence[object]]) -> list[Row]:
    """Python values as the ORM would write them into ``columns`` (attnames) of ``model`` on this connection."""
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    fields = [by_attname[name] for name in columns]
    return [tuple(f.get_db_prep_save(v, connection) for f, v in zip(fields, row, strict=True)) for row in rows]


def rota_setup() -> RotaState:
    """A fresh clinic with one 30-slot template and 20 GPs, and the floor's rows for the same year."""
    clinic = Clinic.objects.create(name="Benchmark rota", slug=f"bench-rota-{uuid.uuid4().hex[:8]}")
    location = Location.objects.create(
        clinic=clinic, name="Main surgery", kind=Location.Kind.MAIN, time_zone=ROTA_TIME_ZONE
    )
    slot_type = SlotType.objects.create(
        clinic=clinic, name="Routine", default_length_minutes=ROTA_SLOT_MINUTES, capacity=1, bookable=True
    )
    template = SessionTemplate.objects.create(clinic=clinic, name="GP morning")
    TemplateSlot.objects.bulk_create(
        TemplateSlot(
            clinic=clinic, template=template, position=i, slot_type=slot_type, length_minutes=ROTA_SLOT_MINUTES
        )
        for i in range(ROTA_SLOTS_PER_SESSION)
    )
    practitioners = [
        Practitioner.objects.create(
            clinic=clinic, name=f"Dr Bench {i:02}", role=PractitionerRole.GP, default_location=location
        )
        for i in range(ROTA_PRACTITIONERS)
    ]
    actor = User.objects.get(username=DEMO_ADMIN)
    requests = [
        AllocationRequest(
            template, p, location, ROTA_START, ROTA_FIRST_DATE, ROTA_LAST_DATE, ROTA_WEEKDAYS, every_weeks=1
        )
        for p in practitioners
    ]

    # The floor's rows, worked out here independently of scheduling.rota. Explicit ids above the current
    # maximum let the slots reference the sessions; no run's rows are in the way, as the reset comes between.
    zone = ZoneInfo(ROTA_TIME_ZONE)
    dates = [ROTA_FIRST_DATE + dt.timedelta(weeks=w, days=d - 1) for w in range(ROTA_WEEKS) for d in ROTA_WEEKDAYS]
    slot_length = dt.timedelta(minutes=ROTA_SLOT_MINUTES)
    session_length = slot_length * ROTA_SLOTS_PER_SESSION
    allocation_id = (Allocation.objects.aggregate(m=models.Max("id"))["m"] or 0) + 1
    session_id = (Session.objects.aggregate(m=models.Max("id"))["m"] or 0) + 1
    now = timezone.now()
    allocations: list[dict[str, object]] = []
    sessions: list[dict[str, object]] = []
    slots: list[Row] = []
    for practitioner in practitioners:
        allocations.append(
            {
                "id": allocation_id,
                "clinic_id": clinic.pk,
                "public_id": uuid.uuid4(),
                "template_id": template.pk,
                "practitioner_id": practitioner.pk,
                "location_id": location.pk,
                "start_time": ROTA_START,
                "first_date": ROTA_FIRST_DATE,
                "last_date": ROTA_LAST_DATE,
                "weekdays": ",".join(map(str, ROTA_WEEKDAYS)),
                "every_weeks": 1,
                "created_by_id": actor.pk,
                "created_at": now,
            }
        )
        for date in dates:
            starts_at = dt.datetime.combine(date, ROTA_START, tzinfo=zone).astimezone(dt.UTC)
            sessions.append(
                {
                    "id": session_id,
                    "clinic_id": clinic.pk,
                    "public_id": uuid.uuid4(),
                    "allocation_id": allocation_id,
                    "template_id": template.pk,
                    "practitioner_id": practitioner.pk,
                    "location_id": location.pk,
                    "date": date,
                    "time_zone": ROTA_TIME_ZONE,
                    "starts_at": starts_at,
                    "ends_at": starts_at + session_length,
                    "name": template.name,
                    "description": template.description,
                    "colour": template.colour,
                    "session_type": template.session_type,
                    "open_session": template.open_session,
                    "travel_clinic": template.travel_clinic,
                    "closed_session": template.closed_session,
                }
            )
            for position in range(ROTA_SLOTS_PER_SESSION):
                start = starts_at + position * slot_length
                slot = (clinic.pk, uuid.uuid4(), session_id, position, slot_type.pk, start, start + slot_length)
                slots.append((*slot, slot_type.bookable, slot_type.capacity, 0))  # booked_count 0
            session_id += 1
        allocation_id += 1
    return RotaState(
        clinic=clinic,
        actor=actor,
        requests=requests,
        allocation_rows=as_stored(
            Allocation, ALLOCATION_COLUMNS, ([a[c] for c in ALLOCATION_COLUMNS] for a in allocations)
        ),
        session_rows=as_stored(Session, SESSION_COLUMNS, ([s[c] for c in SESSION_COLUMNS] for s in sessions)),
        slot_rows=as_stored(Slot, SLOT_INSERT_COLUMNS, slots),
    )


def rota_check(clinic: Clinic) -> None:
    """Anything but exactly the year's sessions and slots is an error, never a measurement."""
    sessions = Session.objects.for_clinic(clinic).count()
    slots = Slot.objects.for_clinic(clinic).count()
    if (sessions, slots) != (ROTA_SESSIONS, ROTA_SLOTS):
        raise RuntimeError(
            f"rota_allocate made {sessions} sessions and {slots} slots, expected {ROTA_SESSIONS} and {ROTA_SLOTS}"
        )


def rota_run(state: RotaState) -> None:
    for request in state.requests:
        allocation_create(clinic=state.clinic, actor=state.actor, request=request)
    rota_check(state.clinic)


def rota_floor(state: RotaState) -> None:
    """The same rows with the same bulk_insert (COPY on PostgreSQL, executemany elsewhere).

    One transaction, where the run commits once per allocation (20 times).
    """
    with transaction.atomic():
        bulk_insert(Allocation._meta.db_table, ALLOCATION_COLUMNS, state.allocation_rows)
        bulk_insert(Session._meta.db_table, SESSION_COLUMNS, state.session_rows)
        bulk_insert(Slot._meta.db_table, SLOT_INSERT_COLUMNS, state.slot_rows)
    rota_check(state.clinic)


def rota_reset(state: RotaState) -> None:
    """Remove the clinic's slots, sessions, allocations and their audit events: whatever run or floor made."""
    Slot.objects.for_clinic(state.clinic).delete()
    Session.objects.for_clinic(state.clinic).delete()
    Allocation.objects.for_clinic(state.clinic).delete()
    AuditEvent.objects.for_clinic(state.clinic).delete()
    if connection.vendor == "postgresql":  # reclaim the dead rows now, untimed, whether or not autovacuum is on
        tables = ", ".join(m._meta.db_table for m in (Slot, Session, Allocation))
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {tables}")


register(
    Case(
        name="rota_allocate",
        setup=rota_setup,
        run=rota_run,
        floor=rota_floor,
        reset=rota_reset,
        runs=3,
        warmup=1,
    )
)


# --- Searching 100,000 patients -------------------------------------------------------

PATIENT_COUNT = 100_000  # in each of the two clinics
PATIENT_SEED = 20_261_121
PATIENT_BATCH = 2_000
PATIENT_SLUG_PREFIX = "bench-patients-"
PATIENT_RECEPTIONIST = "bench-patients-reception@example.invalid"
PATIENT_SHARED_EVERY = 50  # every 50th patient of the other clinic is the same person (moved practice)
PATIENT_NAME_QUERY = "Smi"  # the most common surname's prefix: the least selective name search there is
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
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
STREETS = ("High Street", "Station Road", "Church Lane", "Victoria Road", "Mill Lane", "Park Avenue", "The Crescent")


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


def ssn_numbers(rng: random.Random, count: int) -> list[str]:
    numbers = [f"{n:09d}" for n in rng.sample(range(1_000_000, 900_000_000), count * 2)]
    return [n for n in numbers if ssn_is_valid(n)][:count]


@dataclass(frozen=True)
class Identity:
    """The person, as opposed to their registration at one clinic: what a patient who moved keeps."""

    first_name: str
    last_name: str
    sex: str
    date_of_birth: dt.date
    national_id_kind: str
    national_id: str | None
    mobile_phone: str
    home_phone: str


class PatientGenerator:
    """Deterministic, varied patients; the two clinics draw their NHS numbers, SSNs and mobiles from disjoint halves."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.surname_weights = list(itertools.accumulate(1 / math.sqrt(rank) for rank in range(1, len(SURNAMES) + 1)))
        self.nhs = iter(nhs_numbers(self.rng, 2 * PATIENT_COUNT))
        self.ssn = iter(ssn_numbers(self.rng, 2 * PATIENT_COUNT // 10))
        # Nine digits after the 0: "07712 345678"; the key is the last ten digits, "7712345678".
        self.mobiles = iter(self.rng.sample(range(700_000_000, 1_000_000_000), 2 * PATIENT_COUNT))

    def identity(self) -> Identity:
        rng = self.rng
        female = rng.random() < 0.51
        kind_roll = rng.random()
        if kind_roll < 0.95:
            kind, national_id = Patient.NationalIdKind.NHS.value, next(self.nhs)
        elif kind_roll < 0.98:
            kind, national_id = Patient.NationalIdKind.SSN.value, next(self.ssn)
        else:
            kind, national_id = "", None
        mobile = next(self.mobiles)
        return Identity(
            first_name=rng.choice(FEMALE_NAMES if female else MALE_NAMES),
            last_name=rng.choices(SURNAMES, cum_weights=self.surname_weights)[0],
            sex=(Patient.Sex.FEMALE if female else Patient.Sex.MALE).value,
            date_of_birth=dt.date.fromordinal(rng.randint(*PATIENT_DOB_RANGE)),
            national_id_kind=kind,
            national_id=national_id,
            mobile_phone=f"07{mobile // 1_000_000:03d} {mobile % 1_000_000:06d}" if rng.random() < 0.9 else "",
            home_phone=f"01{rng.randint(100, 999)} {rng.randint(100_000, 999_999)}" if rng.random() < 0.35 else "",
        )

    def patient(self, clinic: Clinic, number: int, person: Identity) -> Patient:
        rng = self.rng
        blocked = rng.random() < 0.01
        return Patient(
            clinic=clinic,
            internal_id=format_internal_id(number),
            first_name=person.first_name,
            last_name=person.last_name,
            sex=person.sex,
            date_of_birth=person.date_of_birth,
            national_id_kind=person.national_id_kind,
            national_id=person.national_id,
            mobile_phone=person.mobile_phone,
            home_phone=person.home_phone,
            address=f"{rng.randint(1, 240)} {rng.choice(STREETS)}\nBristol",
            postcode=f"BS{rng.randint(1, 41)} {rng.randint(1, 9)}{''.join(rng.choices(POSTCODE_LETTERS, k=2))}",
            is_blocked=blocked,
            blocked_reason="Restricted record" if blocked else "",
            is_archived=rng.random() < 0.02,
            # What Patient.save() would compute; bulk_create does not call it.
            last_name_key=name_key(person.last_name),
            first_name_key=name_key(person.first_name),
            mobile_key=phone_key(person.mobile_phone),
            home_key=phone_key(person.home_phone),
        )


@dataclass(frozen=True)
class PatientSearchState:
    clinic: Clinic
    other_clinic: Clinic
    membership: Membership
    phone_query: str
    phone_patient_id: int
    national_id_query: str
    national_id_patient_id: int


def patients_clear() -> None:
    """Remove the clinics (and their patients) of an earlier run, without loading 200,000 patients to do it."""
    clinic_ids = list(Clinic.objects.filter(slug__startswith=PATIENT_SLUG_PREFIX).values_list("id", flat=True))
    if not clinic_ids:
        return
    with transaction.atomic():
        Coverage.objects.filter(clinic_id__in=clinic_ids).delete()
        placeholders = ", ".join(["%s"] * len(clinic_ids))
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {Patient._meta.db_table} WHERE clinic_id IN ({placeholders})", clinic_ids)
        Clinic.objects.filter(id__in=clinic_ids).delete()  # memberships and the ID counters go with them


@functools.cache
def patient_search_setup() -> PatientSearchState:
    """Two clinics of 100,000 patients each, built once per process; every patient_search case shares them.

    Every 50th patient of the other clinic is a patient of the first who moved: same name, date of birth, phones
    and national ID. The phone and national-ID searches look for such a patient, so the other clinic holds a
    second match that must not come back.
    """
    patients_clear()
    generator = PatientGenerator(PATIENT_SEED)
    clinic = Clinic.objects.create(name="Benchmark patients", slug=f"{PATIENT_SLUG_PREFIX}a")
    other_clinic = Clinic.objects.create(name="Benchmark patients (other)", slug=f"{PATIENT_SLUG_PREFIX}b")
    shared: dict[int, Identity] = {}
    with transaction.atomic():
        for owner in (clinic, other_clinic):
            batch: list[Patient] = []
            for number in range(1, PATIENT_COUNT + 1):
                person = generator.identity()
                if number % PATIENT_SHARED_EVERY == 0:
                    if owner == clinic:
                        shared[number] = person
                    else:
                        person = shared[number]
                batch.append(generator.patient(owner, number, person))
                if len(batch) == PATIENT_BATCH:
                    Patient.objects.bulk_create(batch, batch_size=PATIENT_BATCH)
                    batch = []
            Patient.objects.bulk_create(batch, batch_size=PATIENT_BATCH)
            InternalIdCounter.objects.create(clinic=owner, last_number=PATIENT_COUNT)
    if connection.vendor == "postgresql":  # statistics and a visibility map, as autovacuum would leave them
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {Patient._meta.db_table}")

    user, _ = User.objects.get_or_create(username=PATIENT_RECEPTIONIST, defaults={"email": PATIENT_RECEPTIONIST})
    membership = Membership.objects.create(clinic=clinic, user=user, role=Role.RECEPTION)  # no named permissions

    # A shared patient from the middle of the list, visible to reception, with an NHS number and a mobile.
    candidates = [
        format_internal_id(number)
        for number in range(PATIENT_COUNT // 2, PATIENT_COUNT, PATIENT_SHARED_EVERY)
        if shared[number].national_id_kind == Patient.NationalIdKind.NHS and shared[number].mobile_phone
    ]
    target = (
        Patient.objects.for_clinic(clinic)
        .filter(internal_id__in=candidates, is_blocked=False, is_archived=False)
        .order_by("internal_id")
        .first()
    )
    if target is None:
        raise RuntimeError("no patient to search for")
    if not Patient.objects.for_clinic(other_clinic).filter(national_id=target.national_id).exists():
        raise RuntimeError("the other clinic should hold the same person")
    mobile = target.mobile_phone.replace(" ", "")  # typed as "07712 345 678"
    nhs = target.national_id or ""  # typed as "485 777 3456"
    return PatientSearchState(
        clinic=clinic,
        other_clinic=other_clinic,
        membership=membership,
        phone_query=f"{mobile[:5]} {mobile[5:8]} {mobile[8:]}",
        phone_patient_id=target.pk,
        national_id_query=f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}",
        national_id_patient_id=target.pk,
    )


def search_checked(state: PatientSearchState, query: str) -> list[Patient]:
    """patient_search as reception; a result from the other clinic, or a blocked or archived one, is an error."""
    results = patient_search(clinic=state.clinic, membership=state.membership, query=query)
    if not results:
        raise RuntimeError(f"patient_search({query!r}) found nobody")
    for patient in results:
        if patient.clinic_id != state.clinic.pk or patient.is_blocked or patient.is_archived:
            raise RuntimeError(
                f"patient_search({query!r}) returned {patient.internal_id} of clinic {patient.clinic_id}"
            )
    return results


def search_by_name(state: PatientSearchState) -> None:
    results = search_checked(state, PATIENT_NAME_QUERY)
    prefix = name_key(PATIENT_NAME_QUERY)
    keys = [(p.last_name_key, p.first_name_key, p.pk) for p in results]
    if len(results) != SEARCH_LIMIT or keys != sorted(keys) or not all(k[0].startswith(prefix) for k in keys):
        raise RuntimeError(f"patient_search({PATIENT_NAME_QUERY!r}) returned {keys}")


def search_first_is(state: PatientSearchState, query: str, expected_id: int) -> None:
    results = search_checked(state, query)
    if results[0].pk != expected_id:
        raise RuntimeError(f"patient_search({query!r}) returned {results[0].pk} first, expected {expected_id}")


def search_by_phone(state: PatientSearchState) -> None:
    search_first_is(state, state.phone_query, state.phone_patient_id)


def search_by_national_id(state: PatientSearchState) -> None:
    search_first_is(state, state.national_id_query, state.national_id_patient_id)


def search_all_kinds(state: PatientSearchState) -> None:
    search_by_name(state)
    search_by_phone(state)
    search_by_national_id(state)


def patient_by_pk(state: PatientSearchState) -> None:
    """The floor: one patient by primary key, the cheapest indexed read of the same table."""
    if not list(Patient.objects.filter(pk=state.phone_patient_id)):
        raise RuntimeError("the floor's patient is gone")


def patients_by_pk_three_times(state: PatientSearchState) -> None:
    for _ in range(3):
        patient_by_pk(state)


for case_name, case_run, case_floor in (
    ("patient_search", search_all_kinds, patients_by_pk_three_times),  # the issue's case: the three in sequence
    ("patient_search_name", search_by_name, patient_by_pk),
    ("patient_search_phone", search_by_phone, patient_by_pk),
    ("patient_search_national_id", search_by_national_id, patient_by_pk),
):
    register(Case(name=case_name, setup=patient_search_setup, run=case_run, floor=case_floor, runs=30, warmup=3))


# --- The calendar of a busy week ------------------------------------------------------

CALENDAR_SLUG = "bench-calendar"
CALENDAR_SMALL_SLUG = "bench-calendar-small"  # the same shape, smaller: its pages must take as many queries
CALENDAR_ADMIN = "bench-calendar-admin@example.invalid"
CALENDAR_SMALL_ADMIN = "bench-calendar-small-admin@example.invalid"
CALENDAR_SEED = 20_270_301
CALENDAR_MONDAY = dt.date(2027, 3, 1)  # no clock change in the week; the month view shows 1 March - 4 April
CALENDAR_TIME_ZONE = "Europe/London"
CALENDAR_WEEKDAYS = (1, 2, 3, 4, 5)
CALENDAR_SLOT_MINUTES = 10
CALENDAR_PRACTITIONERS = 20
CALENDAR_LIVE_APPOINTMENTS = 2_000
CALENDAR_CANCELLED_APPOINTMENTS = 100  # besides the live ones: the page must leave them out
CALENDAR_PATIENTS = 400
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


CALENDAR_BIG = CalendarSize(  # 20 practitioners x 5 days x 30 slots: 3,000 slots
    CALENDAR_SLUG,
    CALENDAR_ADMIN,
    CALENDAR_PRACTITIONERS,
    CALENDAR_LIVE_APPOINTMENTS,
    CALENDAR_CANCELLED_APPOINTMENTS,
    CALENDAR_PATIENTS,
)
CALENDAR_SMALL = CalendarSize(CALENDAR_SMALL_SLUG, CALENDAR_SMALL_ADMIN, 2, 40, 2, 30)


@dataclass(frozen=True)
class CalendarClinic:
    """A clinic with one busy week, its admin's logged-in client and the calendar's URLs for that week."""

    clinic: Clinic
    client: Client
    week_url: str  # every practitioner side by side (the All tab)
    tab_url: str  # one practitioner's tab of the same week
    month_url: str
    practitioner_name: str  # shown on the week (All tab)
    tab_practitioner_name: str


def calendar_clear() -> None:
    """Remove the calendar clinics of an earlier run."""
    clinics_clear([CALENDAR_BIG.slug, CALENDAR_SMALL.slug])


def clinics_clear(slugs: Sequence[str]) -> None:
    """Remove the clinics of an earlier run and all they hold (PROTECT foreign keys: the dependants go first)."""
    clinic_ids = list(Clinic.objects.filter(slug__in=slugs).values_list("id", flat=True))
    if not clinic_ids:
        return
    with transaction.atomic():
        for model in (
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


def calendar_week_bounds() -> tuple[dt.datetime, dt.datetime]:
    """The shown week, Monday 00:00 to the next Monday 00:00 on the clinic's wall clock, as instants."""
    zone = ZoneInfo(CALENDAR_TIME_ZONE)
    start = dt.datetime.combine(CALENDAR_MONDAY, dt.time(0), tzinfo=zone)
    return start, dt.datetime.combine(CALENDAR_MONDAY + dt.timedelta(weeks=1), dt.time(0), tzinfo=zone)


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


def calendar_rota(clinic: Clinic, size: CalendarSize, *, weeks: int = 1) -> list[Practitioner]:
    """Slot types, the AM and PM templates, the practitioners and their sessions for the week (or ``weeks``
    weeks from it)."""
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
    friday = CALENDAR_MONDAY + dt.timedelta(weeks=weeks, days=-3)  # of the last week
    for practitioner in practitioners:
        for template, start in templates:
            allocation_create(
                clinic=clinic,
                actor=None,
                request=AllocationRequest(
                    template, practitioner, location, start, CALENDAR_MONDAY, friday, CALENDAR_WEEKDAYS, every_weeks=1
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


def calendar_events_and_hours(clinic: Clinic, practitioners: list[Practitioner]) -> None:
    """Other events (timed, overlapping, free and all-day) and office hours: the default and one practitioner's."""
    zone = ZoneInfo(CALENDAR_TIME_ZONE)

    def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
        return dt.datetime.combine(CALENDAR_MONDAY + dt.timedelta(days=day), dt.time(hour, minute), tzinfo=zone)

    events = [
        OtherEvent(clinic=clinic, practitioner=p, title="Practice meeting", starts_at=at(2, 12), ends_at=at(2, 13))
        for p in practitioners[:5]
    ]
    events += [
        OtherEvent(
            clinic=clinic,
            practitioner=practitioners[0],
            title="Supervision",
            starts_at=at(2, 12, 30),
            ends_at=at(2, 13, 30),
        ),
        OtherEvent(
            clinic=clinic,
            practitioner=practitioners[0],
            title="Journal club",
            busy=False,
            starts_at=at(3, 17),
            ends_at=at(3, 18),
        ),
        OtherEvent(
            clinic=clinic,
            practitioner=practitioners[-1],
            title="Home visits",
            starts_at=at(1, 11, 45),
            ends_at=at(1, 13, 15),
        ),
        OtherEvent(
            clinic=clinic,
            practitioner=practitioners[-1],
            title="Annual leave",
            all_day=True,
            first_date=CALENDAR_MONDAY + dt.timedelta(days=3),
            last_date=CALENDAR_MONDAY + dt.timedelta(days=4),
        ),
        OtherEvent(
            clinic=clinic,
            practitioner=practitioners[0],
            title="Training day",
            all_day=True,
            first_date=CALENDAR_MONDAY + dt.timedelta(days=5),
            last_date=CALENDAR_MONDAY + dt.timedelta(days=5),
        ),
    ]
    OtherEvent.objects.bulk_create(events)
    weekdays = {str(day): [["08:00", "18:30"]] for day in CALENDAR_WEEKDAYS}
    OfficeHours.objects.create(clinic=clinic, practitioner=None, time_zone=CALENDAR_TIME_ZONE, weekly=weekdays)
    OfficeHours.objects.create(
        clinic=clinic,
        practitioner=practitioners[0],
        time_zone=CALENDAR_TIME_ZONE,
        weekly={str(day): [["08:00", "12:30"], ["13:30", "18:00"]] for day in (1, 2, 3, 4)},
    )


def calendar_check(clinic: Clinic, size: CalendarSize) -> None:
    """Anything but exactly the week's slots and live appointments is an error, never a measurement."""
    start, end = calendar_week_bounds()
    slots = Slot.objects.for_clinic(clinic).filter(starts_at__gte=start, starts_at__lt=end)
    live = Appointment.objects.for_clinic(clinic).live().filter(starts_at__gte=start, starts_at__lt=end)
    found = (slots.count(), live.count(), slots.aggregate(n=models.Sum("booked_count"))["n"])
    expected = (size.slots, size.live_appointments, size.live_appointments)
    if found != expected:
        raise RuntimeError(f"{clinic.slug}: (slots, live appointments, booked places) are {found}, expected {expected}")


def slots_miscounted(clinic: Clinic) -> int:
    """How many of the clinic's slots have a booked_count other than their number of live appointments."""
    counted = Slot.objects.for_clinic(clinic).annotate(
        live=models.Count("appointments", filter=~models.Q(appointments__status=AppointmentStatus.CANCELLED))
    )
    return counted.exclude(booked_count=models.F("live")).count()


def calendar_clinic(size: CalendarSize) -> CalendarClinic:
    """A clinic of ``size``: the rota of one week, patients, appointments, other events and office hours."""
    rng = random.Random(f"{CALENDAR_SEED}-{size.slug}")
    clinic = Clinic.objects.create(
        name=f"Benchmark calendar ({size.practitioners})",
        slug=size.slug,
        time_zone=CALENDAR_TIME_ZONE,
        internal_ids_enabled=True,
    )
    user, _ = User.objects.get_or_create(username=size.admin, defaults={"email": size.admin})
    Membership.objects.create(clinic=clinic, user=user, role=Role.ADMIN)  # its only clinic: no switching
    practitioners = calendar_rota(clinic, size)
    with transaction.atomic():
        patients = calendar_patients(clinic, rng, size.patients)
        calendar_appointments(clinic, size, rng, patients, user)
        calendar_events_and_hours(clinic, practitioners)
    calendar_check(clinic, size)

    base = reverse("scheduling:calendar")
    monday = CALENDAR_MONDAY.isoformat()
    tab = practitioners[len(practitioners) // 2]
    client = logged_in_client(size.admin)
    get_ok(client, reverse("healthz"))  # the first request of a session stores the active clinic: not measured
    return CalendarClinic(
        clinic=clinic,
        client=client,
        week_url=f"{base}?view=week&date={monday}&tab=all",
        tab_url=f"{base}?view=week&date={monday}&tab={tab.public_id}",
        month_url=f"{base}?view=month&date={monday}",
        practitioner_name=practitioners[-1].name,
        tab_practitioner_name=tab.name,
    )


def calendar_page_check(data: CalendarClinic, size: CalendarSize) -> None:
    """The pages show the week: every slot on the grid, the practitioners, and the month's per-day sums."""
    placeholder = str(uuid.UUID(int=0))
    slot_link = 'href="' + reverse("scheduling:slot", args=[placeholder]).split(placeholder)[0]
    week = get_ok(data.client, data.week_url).decode()
    tab = get_ok(data.client, data.tab_url).decode()
    month = get_ok(data.client, data.month_url).decode()
    per_practitioner = len(CALENDAR_WEEKDAYS) * CALENDAR_SLOTS_PER_DAY
    problems = []
    if week.count(slot_link) != size.slots or data.practitioner_name not in week:
        problems.append(f"the week shows {week.count(slot_link)} slot links, expected {size.slots}")
    if tab.count(slot_link) != per_practitioner or data.tab_practitioner_name not in tab:
        problems.append(f"the tab shows {tab.count(slot_link)} slot links, expected {per_practitioner}")
    monday = (
        Session.objects.for_clinic(data.clinic)
        .filter(date=CALENDAR_MONDAY, slots__bookable=True)
        .aggregate(places=models.Sum("slots__capacity"), booked=models.Sum("slots__booked_count"))
    )
    sessions = len(CALENDAR_SESSIONS) * size.practitioners
    summary = f"{sessions} sessions, {monday['booked']} booked, {monday['places'] - monday['booked']} free"
    if summary not in month:
        problems.append(f"the month does not say “{summary}” for {CALENDAR_MONDAY}")
    if problems:
        raise RuntimeError(f"{data.clinic.slug}: " + "; ".join(problems))


@functools.cache
def calendar_setup() -> CalendarClinic:
    """The busy week, built once per process; calendar_week and calendar_month share it.

    A small clinic of the same shape is built beside it: each page must take as many queries there as here,
    so that the count grows with neither practitioners nor appointments.
    """
    calendar_clear()
    big = calendar_clinic(CALENDAR_BIG)
    small = calendar_clinic(CALENDAR_SMALL)
    if connection.vendor == "postgresql":  # statistics, as autovacuum would leave them
        tables = ", ".join(m._meta.db_table for m in (Slot, Session, Appointment, Patient, OtherEvent))
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {tables}")
    calendar_page_check(big, CALENDAR_BIG)
    calendar_page_check(small, CALENDAR_SMALL)
    for url in ("week_url", "tab_url", "month_url"):
        counts = [count_queries(functools.partial(get_ok, data.client, getattr(data, url))) for data in (small, big)]
        if counts[0] != counts[1]:
            raise RuntimeError(f"the calendar's {url} takes {counts[0]} queries for the small clinic, {counts[1]} here")
    return big


def calendar_page_setup(url: str) -> Callable[[], PageState]:
    def setup() -> PageState:
        data = calendar_setup()
        return PageState(data.client, getattr(data, url), reverse("healthz"))

    return setup


for case_name, case_url in (("calendar_week", "week_url"), ("calendar_month", "month_url")):
    register(
        Case(
            name=case_name,
            setup=calendar_page_setup(case_url),
            run=lambda state: get_ok(state.client, state.url),
            floor=lambda state: get_ok(state.client, state.floor_url),
            warmup=2,
        )
    )


# --- Booking through real HTTP: gunicorn on PostgreSQL --------------------------------

BOOKING_SLUG = "bench-booking"
BOOKING_RECEPTION = "bench-booking-reception-{:02}@example.invalid"  # one receptionist per client
BOOKING_SEED = 20_270_308
BOOKING_PRACTITIONERS = 40  # the calendar's week: 40 x 5 days x (26 single slots + 2 groups of 8)
BOOKING_PATIENTS = 1_000  # every 40th is blocked: 975 to book, more than the 640 bookings of the biggest run
BOOKING_CLIENTS = (1, 8, 32)
BOOKING_PER_CLIENT = {1: 160, 8: 40, 32: 20}  # 160, 320 and 640 requests
BOOKING_GROUP_SHARE = 0.2  # of the requests go into group slots, each booked by several clients at once
BOOKING_GROUP_REQUESTS = 10  # per group slot: more than its 8 places, so that 2 are refused
BOOKING_REFUSALS = ("This slot is full.", "This group is full")
GUNICORN_THREADS = 4
GUNICORN_CONNECTIONS_SPARE = 20  # PostgreSQL connections left to everyone else
ALERT = re.compile(r'<p class="message error" role="alert">(.*?)</p>', re.S)


@dataclass(frozen=True)
class Booking:
    url: str
    form: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    kind: str  # "ok" (a booking's 302, healthz's 200), "refused" (200: the slot or group is full), or "error"
    latency_s: float
    detail: str = ""


@dataclass(frozen=True)
class Level:
    """``requests`` requests by ``clients`` clients: the latencies of the successful ones, and the refusals."""

    clients: int
    requests: int
    wall_s: float
    latencies_s: list[float]
    refused: int
    client_cpu_s: float  # CPU time the clients (this process) used meanwhile


@dataclass(frozen=True)
class BookingState:
    clinic: Clinic | None = None  # None: skipped (not PostgreSQL)
    server: GunicornServer | None = None
    sessions: list[requests.Session] = field(default_factory=list)  # one per client, logged in as reception
    plans: dict[int, list[list[Booking]]] = field(default_factory=dict)  # clients -> each client's bookings
    expected: dict[int, tuple[int, int]] = field(default_factory=dict)  # clients -> (booked, refused)
    healthz_url: str = ""
    # Every call of run and floor, in the harness's order: warm-up, timed, then the query-count and memory runs.
    runs: list[dict[int, Level]] = field(default_factory=list)
    floors: list[dict[int, Level]] = field(default_factory=list)


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


def booking_request(base_url: str, slot: Slot, patient: Patient) -> Booking:
    """The form that the booking page posts for ``patient``: "Book"."""
    form = booking_fields(slot, patient, "book")
    return Booking(base_url + reverse("scheduling:book", args=[slot.public_id]), form)


def booking_plan(
    base_url: str, clients: int, singles: Iterator[Slot], groups: Iterator[Slot], patients: Iterator[Patient]
) -> tuple[list[list[Booking]], tuple[int, int]]:
    """Each client's bookings, all (slot, patient) pairs distinct, and the (booked, refused) they must come to.

    Most go into single slots of their own; the rest into group slots whose requests are dealt round the
    clients, so that several clients book the same group at about the same point of their lists.
    """
    per_client = BOOKING_PER_CLIENT[clients]
    group_count = round(clients * per_client * BOOKING_GROUP_SHARE / BOOKING_GROUP_REQUESTS)
    group_slots = [next(groups) for _ in range(group_count)]
    group_requests = [slot for slot in group_slots for _ in range(BOOKING_GROUP_REQUESTS)]
    plan = []
    for index in range(clients):
        mine = group_requests[index::clients]
        at = {(2 * j + 1) * per_client // (2 * len(mine)) for j in range(len(mine))}
        queue = iter(mine)
        slots = [next(queue) if position in at else next(singles) for position in range(per_client)]
        plan.append([booking_request(base_url, slot, next(patients)) for slot in slots])
    booked = clients * per_client - len(group_requests)
    booked += sum(min(BOOKING_GROUP_REQUESTS, slot.capacity) for slot in group_slots)
    return plan, (booked, clients * per_client - booked)


def booking_clinic() -> tuple[Clinic, list[User]]:
    """The calendar's week for 40 practitioners, patients, and a receptionist (of this clinic only) per client."""
    clinics_clear([BOOKING_SLUG])
    clinic = Clinic.objects.create(
        name="Benchmark booking", slug=BOOKING_SLUG, time_zone=CALENDAR_TIME_ZONE, internal_ids_enabled=True
    )
    calendar_rota(clinic, CalendarSize(BOOKING_SLUG, "", BOOKING_PRACTITIONERS, 0, 0, BOOKING_PATIENTS))
    with transaction.atomic():
        calendar_patients(clinic, random.Random(BOOKING_SEED), BOOKING_PATIENTS)
    users = []
    for index in range(max(BOOKING_CLIENTS)):
        username = BOOKING_RECEPTION.format(index)
        user, created = User.objects.get_or_create(username=username, defaults={"email": username})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        Membership.objects.create(clinic=clinic, user=user, role=Role.RECEPTION)
        users.append(user)
    with connection.cursor() as cursor:  # statistics, as autovacuum would leave them
        tables = ", ".join(m._meta.db_table for m in (Slot, Session, Appointment, Patient, Practitioner))
        cursor.execute(f"ANALYZE {tables}")
    return clinic, users


def gunicorn_workers() -> int:
    """Two per CPU, as long as every worker thread can keep a PostgreSQL connection."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])
    return max(1, min(2 * (os.cpu_count() or 2), (max_connections - GUNICORN_CONNECTIONS_SPARE) // GUNICORN_THREADS))


def booking_server() -> GunicornServer:
    """gunicorn on the benchmarks' database (the URL the harness chose), DEBUG off, as the in-process cases."""
    url = os.environ["DATABASE_URL"]
    if str(dj_database_url.parse(url)["NAME"]) != str(settings.DATABASES[DEFAULT_DB_ALIAS]["NAME"]):
        raise RuntimeError("DATABASE_URL is not the database Django is using: refusing to start the server")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    return GunicornServer(
        "clinic.wsgi:application",
        workers=gunicorn_workers(),
        threads=GUNICORN_THREADS,
        env=env,
        ready_path=reverse("healthz"),
    )


def reception_session(base_url: str, user: User) -> requests.Session:
    """An HTTP client logged in as ``user`` (a session made as the test client makes one: no password, no axes),
    holding the CSRF cookie of a page and sending it back as the header."""
    client = Client()
    client.force_login(user, backend=MODEL_BACKEND)
    http = requests.Session()
    http.cookies.set(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)
    home = http.get(base_url + reverse("home"), allow_redirects=False, timeout=60)  # also stores the clinic
    token = http.cookies.get(settings.CSRF_COOKIE_NAME)
    if home.status_code != 200 or not token:
        raise RuntimeError(f"{user.username}: GET / returned {home.status_code}, CSRF cookie {bool(token)}")
    http.headers["X-CSRFToken"] = token
    return http


@functools.cache
def booking_setup() -> BookingState:
    if connection.vendor != "postgresql":
        print(
            f"booking_http: skipped: it measures gunicorn on PostgreSQL, and this database is {connection.vendor} "
            "(set BENCH_DATABASE_URL=postgres://...). Its entry in results.json is left as it was.",
            file=sys.stderr,
        )
        return BookingState()
    load = os.getloadavg()[0]  # the other processes' share of the CPUs, before ours adds to it
    clinic, users = booking_clinic()
    slots = Slot.objects.for_clinic(clinic).filter(bookable=True).select_related("slot_type").order_by("id")
    rng = random.Random(BOOKING_SEED)
    singles = [slot for slot in slots if slot.capacity == 1]
    groups = [slot for slot in slots if slot.capacity > 1]
    rng.shuffle(singles)
    rng.shuffle(groups)
    patients = list(Patient.objects.for_clinic(clinic).filter(is_blocked=False).order_by("id"))

    server = booking_server()
    base_url = server.start()
    try:
        sessions = [reception_session(base_url, user) for user in users]
        single_slots, group_slots = iter(singles), iter(groups)  # no slot is in two of the runs
        plans, expected = {}, {}
        for clients in BOOKING_CLIENTS:  # within a run, every patient is booked once at most
            plans[clients], expected[clients] = booking_plan(
                base_url, clients, single_slots, group_slots, iter(patients)
            )
    except BaseException:
        server.stop()
        raise
    print(
        f"booking_http: gunicorn at {base_url}, {server.workers} workers x {server.threads} threads, "
        f"{os.cpu_count()} CPUs; load average before the set-up {load:.1f}"
        + (" (a busy machine: expect noisy figures)" if load > (os.cpu_count() or 1) else ""),
        file=sys.stderr,
    )
    return BookingState(
        clinic=clinic,
        server=server,
        sessions=sessions,
        plans=plans,
        expected=expected,
        healthz_url=base_url + reverse("healthz"),
    )


def book_all(http: requests.Session, bookings: Sequence[Booking]) -> list[Outcome]:
    """One client's bookings, one after the other, as the calendar's form posts them without htmx."""
    outcomes = []
    for booking in bookings:
        start = time.perf_counter()
        response = http.post(booking.url, data=booking.form, allow_redirects=False, timeout=120)
        latency = time.perf_counter() - start
        # The success message waits in a cookie for the next page, which a browser would load at once: drop it.
        http.cookies.pop("messages", None)
        if response.status_code == 302:
            outcomes.append(Outcome("ok", latency))
            continue
        alert = ALERT.search(response.text)
        message = alert.group(1).strip() if alert else ""
        refused = response.status_code == 200 and message.startswith(BOOKING_REFUSALS)
        outcomes.append(
            Outcome("refused", latency) if refused else Outcome("error", latency, f"{response.status_code} {message}")
        )
    return outcomes


def get_healthz(http: requests.Session, url: str, count: int) -> list[Outcome]:
    outcomes = []
    for _ in range(count):
        start = time.perf_counter()
        response = http.get(url, timeout=120)
        latency = time.perf_counter() - start
        ok = response.status_code == 200 and response.text == "ok"
        outcomes.append(Outcome("ok", latency) if ok else Outcome("error", latency, str(response.status_code)))
    return outcomes


def level_of(clients: int, results: list[list[Outcome]], wall_s: float, cpu_s: float) -> tuple[Level, list[str]]:
    outcomes = [outcome for client in results for outcome in client]
    kinds = Counter(outcome.kind for outcome in outcomes)
    errors = [outcome.detail for outcome in outcomes if outcome.kind == "error"]
    latencies = [outcome.latency_s for outcome in outcomes if outcome.kind == "ok"]
    return Level(clients, len(outcomes), wall_s, latencies, kinds["refused"], cpu_s), errors


def booking_check(state: BookingState, level: Level, errors: list[str], booked_so_far: int) -> None:
    """The responses and the database agree: every 302 is one live appointment, no slot holds more than its
    capacity, and every slot's booked_count is its number of live appointments. Anything else is an error."""
    clinic = state.clinic
    assert clinic is not None
    problems = []
    if errors:
        common = ", ".join(f"{count} x {detail!r}" for detail, count in Counter(errors).most_common(5))
        problems.append(f"{len(errors)} of {level.requests} requests failed ({common})")
    found = (len(level.latencies_s), level.refused)
    if found != state.expected[level.clients]:
        problems.append(f"(booked, refused) are {found}, expected {state.expected[level.clients]}")
    live = Appointment.objects.for_clinic(clinic).live().count()
    if live != booked_so_far:
        problems.append(f"{live} live appointments after {booked_so_far} successful bookings")
    slots = Slot.objects.for_clinic(clinic)
    over = slots.filter(booked_count__gt=models.F("capacity")).count()
    if over:
        problems.append(f"{over} slots hold more than their capacity")
    wrong = slots_miscounted(clinic)
    if wrong:
        problems.append(f"{wrong} slots have a booked_count other than their live appointments")
    if problems:
        log = state.server.log_path if state.server else None
        raise RuntimeError(f"booking_http, {level.clients} clients: " + "; ".join(problems) + f" (server log: {log})")


def booking_run(state: BookingState) -> None:
    """The three runs, 1, 8 and 32 clients, on slots of their own; each is checked once its clients are done."""
    if state.clinic is None:
        return
    levels, booked = {}, 0
    for clients in BOOKING_CLIENTS:
        plan = state.plans[clients]
        results, wall_s, cpu_s = run_clients(
            [functools.partial(book_all, http, bookings) for http, bookings in zip(state.sessions, plan, strict=False)]
        )
        level, errors = level_of(clients, results, wall_s, cpu_s)
        booked += len(level.latencies_s)
        booking_check(state, level, errors, booked)
        levels[clients] = level
    state.runs.append(levels)


def booking_floor(state: BookingState) -> None:
    """As many GET /healthz (one SELECT 1, the same session and middleware) by as many clients."""
    if state.clinic is None:
        return
    levels = {}
    for clients in BOOKING_CLIENTS:
        count = BOOKING_PER_CLIENT[clients]
        results, wall_s, cpu_s = run_clients(
            [functools.partial(get_healthz, http, state.healthz_url, count) for http in state.sessions[:clients]]
        )
        level, errors = level_of(clients, results, wall_s, cpu_s)
        if errors:
            raise RuntimeError(f"GET /healthz, {clients} clients: {len(errors)} failed ({Counter(errors)})")
        levels[clients] = level
    state.floors.append(levels)


def booking_reset(state: BookingState) -> None:
    """No appointments, every booked_count 0, the dead rows vacuumed: each run starts from the same database."""
    if state.clinic is None:
        return
    with transaction.atomic():
        Appointment.objects.for_clinic(state.clinic).delete()
        AuditEvent.objects.for_clinic(state.clinic).delete()
        Slot.objects.for_clinic(state.clinic).exclude(booked_count=0).update(booked_count=0)
    tables = ", ".join(m._meta.db_table for m in (Slot, Appointment, AuditEvent))
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {tables}")


def booking_figures(result: Result) -> Result | None:
    """Per number of clients, over the timed runs: p50 and p95 of the successful bookings' latencies (all runs
    pooled), bookings per second and /healthz requests per second (medians of the runs), and their ratio."""
    state = booking_setup()
    if state.clinic is None:
        return None
    warmup, runs = int(result["warmup"]), int(result["runs"])
    timed, floors = state.runs[warmup : warmup + runs], state.floors[warmup : warmup + runs]
    if len(timed) != runs or len(floors) != runs:
        raise RuntimeError(f"booking_http: {len(state.runs)} runs and {len(state.floors)} floors recorded")
    assert state.server is not None
    figures: Result = {"gunicorn_workers": state.server.workers, "gunicorn_threads": state.server.threads}
    lines = [
        f"{'clients':>7}  {'p50 ms':>8}  {'p95 ms':>8}  {'bookings/s':>10}  {'healthz/s':>10}  {'ratio':>6}"
        f"  {'client CPUs':>11}"
    ]
    for clients in BOOKING_CLIENTS:
        latencies = [latency for run in timed for latency in run[clients].latencies_s]
        booked_per_s = statistics.median(len(run[clients].latencies_s) / run[clients].wall_s for run in timed)
        healthz_per_s = statistics.median(floor[clients].requests / floor[clients].wall_s for floor in floors)
        p50, p95, ratio = percentile(latencies, 0.5), percentile(latencies, 0.95), booked_per_s / healthz_per_s
        client_cpus = statistics.median(run[clients].client_cpu_s / run[clients].wall_s for run in timed)
        healthz_client_cpus = statistics.median(floor[clients].client_cpu_s / floor[clients].wall_s for floor in floors)
        figures |= {
            f"c{clients}_requests": timed[0][clients].requests,
            f"c{clients}_refused": timed[0][clients].refused,
            f"c{clients}_p50_s": p50,
            f"c{clients}_p95_s": p95,
            f"c{clients}_bookings_per_s": round(booked_per_s, 2),
            f"c{clients}_healthz_per_s": round(healthz_per_s, 2),
            f"c{clients}_ratio_to_healthz": round(ratio, 4),
            f"c{clients}_client_cpus": round(client_cpus, 3),  # CPUs the clients kept from the server
            f"c{clients}_healthz_client_cpus": round(healthz_client_cpus, 3),
        }
        lines.append(
            f"{clients:>7}  {p50 * 1000:>8.1f}  {p95 * 1000:>8.1f}  {booked_per_s:>10.1f}  {healthz_per_s:>10.1f}"
            f"  {ratio:>6.3f}  {client_cpus:>4.2f} {healthz_client_cpus:>6.2f}"
        )
    print("booking_http (gunicorn, PostgreSQL):\n" + "\n".join(lines) + "\n")
    return figures


register(
    Case(
        name="booking_http",
        setup=booking_setup,
        run=booking_run,
        floor=booking_floor,
        reset=booking_reset,
        runs=3,
        warmup=1,
        extras=booking_figures,
    )
)


# --- Next available: 40 practitioners over six months, 60% of places booked --------------

NEXT_SLUG = "bench-next-available"
NEXT_PRACTITIONERS = 40
NEXT_FIRST_DAY = dt.date(2027, 3, 1)  # a Monday
NEXT_WEEKS = 26
NEXT_SLOTS_PER_SESSION = 24  # 10-minute slots; every 6th a "book on the day" one
NEXT_BOOKED_SHARE = 0.6


@dataclass(frozen=True)
class NextState:
    clinic: Clinic
    now: dt.datetime
    practitioner: Practitioner
    slot_type: SlotType


@functools.cache
def next_available_setup() -> NextState:
    from scheduling.selectors import next_available

    clinics_clear([NEXT_SLUG])
    clinic = Clinic.objects.create(name="Benchmark next available", slug=NEXT_SLUG, time_zone=CALENDAR_TIME_ZONE)
    location = Location.objects.create(
        clinic=clinic, name="Main surgery", kind=Location.Kind.MAIN, time_zone=CALENDAR_TIME_ZONE
    )
    routine = SlotType.objects.create(clinic=clinic, name="Routine", default_length_minutes=10, order=1)
    on_the_day = SlotType.objects.create(
        clinic=clinic, name="Book on the day", default_length_minutes=10, release_rule="on_the_day", order=2
    )
    template = SessionTemplate.objects.create(clinic=clinic, name="GP morning")
    TemplateSlot.objects.bulk_create(
        TemplateSlot(
            clinic=clinic,
            template=template,
            position=n,
            slot_type=on_the_day if n % 6 == 5 else routine,
            length_minutes=10,
        )
        for n in range(NEXT_SLOTS_PER_SESSION)
    )
    last_day = NEXT_FIRST_DAY + dt.timedelta(weeks=NEXT_WEEKS, days=-1)
    practitioners = [
        Practitioner.objects.create(
            clinic=clinic, name=f"Dr Next {n:02}", role=PractitionerRole.GP, default_location=location
        )
        for n in range(NEXT_PRACTITIONERS)
    ]
    for practitioner in practitioners:
        allocation_create(
            clinic=clinic,
            actor=None,
            request=AllocationRequest(
                template, practitioner, location, dt.time(8, 30), NEXT_FIRST_DAY, last_day, (1, 2, 3, 4, 5), 1
            ),
        )
    # 60% of places taken, spread evenly but not in a pattern the planner could exploit.
    rng = random.Random(NEXT_SLUG)
    ids = list(Slot.objects.for_clinic(clinic).values_list("id", flat=True))
    taken = rng.sample(ids, int(len(ids) * NEXT_BOOKED_SHARE))
    for start in range(0, len(taken), 5_000):
        Slot.objects.filter(id__in=taken[start : start + 5_000]).update(booked_count=1)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Slot._meta.db_table}, {Session._meta.db_table}")
    total = len(ids)
    expected = NEXT_PRACTITIONERS * NEXT_WEEKS * 5 * NEXT_SLOTS_PER_SESSION
    if total != expected:
        raise RuntimeError(f"next_available: {total} slots, expected {expected}")
    # "Now" is the Monday of the third month at 07:00 London: sixteen weeks of future to search.
    now = dt.datetime(2027, 5, 3, 6, tzinfo=dt.UTC)
    state = NextState(clinic=clinic, now=now, practitioner=practitioners[17], slot_type=routine)
    found = next_available(clinic=clinic, now=now, slot_type=routine, practitioner=state.practitioner)
    if len(found) != 10 or any(s.booked_count >= s.capacity or s.starts_at < now for s in found):
        raise RuntimeError("next_available: the search did not return ten free future slots")
    same_day = next_available(clinic=clinic, now=now, slot_type=on_the_day)
    if any(s.starts_at.date() != now.date() for s in same_day):
        raise RuntimeError("next_available: a book-on-the-day slot was offered before its day")
    return state


def next_available_run(state: NextState) -> None:
    from scheduling.selectors import next_available

    next_available(clinic=state.clinic, now=state.now, slot_type=state.slot_type, practitioner=state.practitioner)


def next_available_floor(state: NextState) -> None:
    list(Slot.objects.filter(pk=Slot.objects.for_clinic(state.clinic).values("pk")[:1]))


register(
    Case(
        name="next_available",
        setup=next_available_setup,
        run=next_available_run,
        floor=next_available_floor,
        runs=30,
        warmup=3,
    )
)


# --- Previewing a year's series against a busy calendar -----------------------------------

SERIES_SLUG = "bench-series-preview"
SERIES_RECEPTION = "bench-series-reception@example.invalid"  # "Schedule Admin: Manage Appointments"
SERIES_SEED = 20_270_315
SERIES_WEEKS = 53  # of sessions from CALENDAR_MONDAY (Monday 1 March 2027): one more than the series
SERIES_WEEKDAYS = (1, 3, 5)
SERIES_COUNT = 156  # 52 weeks x 3 days, to Friday 25 February 2028: across both clock changes
SERIES_SHORT_COUNT = 6  # the same preview with fewer cards: it must take as many queries
SERIES_GROUP_START = dt.time(18)
SERIES_GROUP_MINUTES = 60
SERIES_GROUP_TEMPLATE = "Evening group"
SERIES_GROUP_RUNNERS = 10  # practitioners with an 18:00 group on the series' days; the first one's is previewed
# The calendar's 30 slots a day (AM and PM) for 30 practitioners on every weekday of the 53 weeks, 30,000 live and
# 300 cancelled appointments on random places (singles and the calendar's 8-place groups), 3,000 patients.
SERIES_SIZE = CalendarSize(SERIES_SLUG, SERIES_RECEPTION, 30, 30_000, 300, 3_000)
# The previewed group does not meet on the bank holidays that fall on its days (no session: "No session at this
# time")...
SERIES_BANK_HOLIDAYS = tuple(
    dt.date.fromisoformat(day)
    for day in ("2027-03-26", "2027-03-29", "2027-05-03", "2027-05-31", "2027-08-30", "2027-12-27", "2028-01-03")
)
# ...and is full on these (every place taken: "Full"), two of them either side of the autumn clock change.
SERIES_FULL_DATES = tuple(
    dt.date.fromisoformat(day) for day in ("2027-03-03", "2027-06-18", "2027-10-29", "2027-11-01", "2028-02-25")
)
SERIES_GROUP_SESSIONS = SERIES_GROUP_RUNNERS * SERIES_WEEKS * len(SERIES_WEEKDAYS) - len(SERIES_BANK_HOLIDAYS)
SERIES_CALENDAR_DAYS = SERIES_SIZE.practitioners * SERIES_WEEKS * len(CALENDAR_WEEKDAYS)  # 7,950 practitioner-days
SERIES_SESSIONS = SERIES_CALENDAR_DAYS * len(CALENDAR_SESSIONS) + SERIES_GROUP_SESSIONS  # 17,483
SERIES_SLOTS = SERIES_CALENDAR_DAYS * CALENDAR_SLOTS_PER_DAY + SERIES_GROUP_SESSIONS  # 240,083 (one per group)


@dataclass(frozen=True)
class SeriesState:
    clinic: Clinic
    client: Client  # reception, its session's first request made
    url: str  # Create Recurring Series from the first Monday's group slot
    form: dict[str, Any]  # Preview Recurrence: weekly on Monday, Wednesday and Friday, 156 sessions
    floor_url: str
    practitioner: Practitioner
    slot_type: SlotType
    rule: RecurrenceRule
    zone: ZoneInfo
    queries: dict[int, int] = field(default_factory=dict)  # the preview's SQL count by number of occurrences


def series_at(day: dt.date) -> dt.datetime:
    """The group's start on ``day``, on the clinic's wall clock."""
    return dt.datetime.combine(day, SERIES_GROUP_START, tzinfo=ZoneInfo(CALENDAR_TIME_ZONE))


def series_groups(clinic: Clinic, runners: Sequence[Practitioner], group: SlotType) -> None:
    """An hour's group at 18:00 on Mondays, Wednesdays and Fridays for 53 weeks for each runner; the first
    runner's group does not meet on bank holidays (those sessions are removed, slots and all)."""
    location = Location.objects.for_clinic(clinic).get()
    template = SessionTemplate.objects.create(clinic=clinic, name=SERIES_GROUP_TEMPLATE, colour="purple")
    TemplateSlot.objects.create(
        clinic=clinic, template=template, position=0, slot_type=group, length_minutes=SERIES_GROUP_MINUTES
    )
    last = CALENDAR_MONDAY + dt.timedelta(weeks=SERIES_WEEKS, days=-3)
    for practitioner in runners:
        allocation_create(
            clinic=clinic,
            actor=None,
            request=AllocationRequest(
                template, practitioner, location, SERIES_GROUP_START, CALENDAR_MONDAY, last, SERIES_WEEKDAYS, 1
            ),
        )
    Session.objects.for_clinic(clinic).filter(
        practitioner=runners[0], template=template, date__in=SERIES_BANK_HOLIDAYS
    ).delete()


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


def series_check(clinic: Clinic, live_appointments: int) -> None:
    """Anything but exactly the year's sessions, slots and appointments, each slot's booked_count its live
    appointments, is an error, never a measurement."""
    slots = Slot.objects.for_clinic(clinic)
    found = (
        Session.objects.for_clinic(clinic).count(),
        slots.count(),
        Appointment.objects.for_clinic(clinic).live().count(),
        slots.aggregate(n=models.Sum("booked_count"))["n"],
        slots_miscounted(clinic),
    )
    expected = (SERIES_SESSIONS, SERIES_SLOTS, live_appointments, live_appointments, 0)
    if found != expected:
        raise RuntimeError(
            f"series_preview: (sessions, slots, live appointments, booked places, miscounted slots) are {found}, "
            f"expected {expected}"
        )


def series_post(state: SeriesState, count: int) -> bytes:
    """Preview Recurrence as reception posts it; anything but a 200 with ``count`` cards is an error.

    The cards are counted in the HTML: outside the test runner's environment templates are not instrumented,
    so the response has no context.
    """
    response = state.client.post(state.url, {**state.form, "r-count": str(count)})
    cards = response.content.count(b'data-occurrence="')
    if response.status_code != 200 or cards != count:
        raise RuntimeError(f"POST {state.url} (r-count={count}) returned {response.status_code} with {cards} cards")
    return response.content


def series_select(state: SeriesState) -> list[Any]:
    """The selector alone: the rule expanded on the clinic's wall clock, and the occurrences matched to slots."""
    from scheduling.selectors import series_preview

    occurrences = state.rule.occurrences(state.zone)
    return series_preview(
        clinic=state.clinic, practitioner=state.practitioner, slot_type=state.slot_type, occurrences=occurrences
    )


def series_preview_check(state: SeriesState) -> None:
    """The preview offers a free group place for each occurrence but the bank holidays (no session) and the
    full dates; the page says so; and it takes as many queries for 6 occurrences as for 156."""
    matches = series_select(state)
    kinds = Counter("no session" if m.slot is None else "full" if m.full else "free" for m in matches)
    holidays, full = len(SERIES_BANK_HOLIDAYS), len(SERIES_FULL_DATES)
    expected = Counter({"free": SERIES_COUNT - holidays - full, "full": full, "no session": holidays})
    local_times = {m.starts_at.astimezone(state.zone).time() for m in matches}
    if kinds != expected or local_times != {SERIES_GROUP_START}:
        raise RuntimeError(f"series_preview: the occurrences are {dict(kinds)} at {local_times}, expected {expected}")
    page = series_post(state, SERIES_COUNT).decode()
    capacity = CALENDAR_SLOT_TYPES["group"][3]
    if page.count("No session at this time") != holidays or page.count(f"Full ({capacity} places)") != full:
        raise RuntimeError("series_preview: the page's cards do not show the bank holidays and the full groups")
    for count in (SERIES_SHORT_COUNT, SERIES_COUNT):
        state.queries[count] = count_queries(functools.partial(series_post, state, count))
    if state.queries[SERIES_SHORT_COUNT] != state.queries[SERIES_COUNT]:
        raise RuntimeError(f"series_preview: the preview's query count grows with the occurrences: {state.queries}")


@functools.cache
def series_setup() -> SeriesState:
    """The busy year and reception's client, built once per process (the extras reuse them)."""
    clinics_clear([SERIES_SLUG])
    rng = random.Random(SERIES_SEED)
    clinic = Clinic.objects.create(
        name="Benchmark series preview", slug=SERIES_SLUG, time_zone=CALENDAR_TIME_ZONE, internal_ids_enabled=True
    )
    user, _ = User.objects.get_or_create(username=SERIES_RECEPTION, defaults={"email": SERIES_RECEPTION})
    Membership.objects.create(clinic=clinic, user=user, role=Role.RECEPTION, perm_manage_appointments=True)
    practitioners = calendar_rota(clinic, SERIES_SIZE, weeks=SERIES_WEEKS)
    group = SlotType.objects.for_clinic(clinic).get(name=CALENDAR_SLOT_TYPES["group"][0])
    tested = practitioners[0]
    series_groups(clinic, practitioners[:SERIES_GROUP_RUNNERS], group)
    # The previewed groups (at 18:00, not the calendar's 10-minute ones): 2 to 7 of their 8 places taken, and
    # every place on the full dates.
    tested_groups = Slot.objects.for_clinic(clinic).filter(session__practitioner=tested, slot_type=group)
    evenings = tested_groups.filter(session__template__name=SERIES_GROUP_TEMPLATE).select_related("session")
    with transaction.atomic():
        patients = calendar_patients(clinic, rng, SERIES_SIZE.patients)
        calendar_appointments(clinic, SERIES_SIZE, rng, patients, user)
        full = {series_at(day) for day in SERIES_FULL_DATES}
        targets = [(s, s.capacity if s.starts_at in full else rng.randint(2, s.capacity - 1)) for s in evenings]
        made = slots_book_to(clinic, targets, rng, patients, user)
    if connection.vendor == "postgresql":  # statistics, as autovacuum would leave them
        tables = ", ".join(m._meta.db_table for m in (Slot, Session, Appointment, Patient))
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {tables}")
    series_check(clinic, SERIES_SIZE.live_appointments + made)

    first = tested_groups.select_related("slot_type").get(starts_at=series_at(CALENDAR_MONDAY))
    booked = Appointment.objects.for_clinic(clinic).live().filter(slot__in=evenings)
    in_groups = set(booked.values_list("patient_id", flat=True))
    patient = next(p for p in patients if not p.is_blocked and p.pk not in in_groups)  # new to the group
    recurrence = {"frequency": "weekly", "interval": "1", "weekdays": [str(day) for day in SERIES_WEEKDAYS]}
    recurrence |= {"monthly_by": "day", "ends": "count", "count": str(SERIES_COUNT)}
    client = logged_in_client(SERIES_RECEPTION)
    get_ok(client, reverse("healthz"))  # the first request of a session stores the active clinic: not measured
    state = SeriesState(
        clinic=clinic,
        client=client,
        url=reverse("scheduling:series-new", args=[first.public_id]),
        form=booking_fields(first, patient, "preview") | {f"r-{name}": value for name, value in recurrence.items()},
        floor_url=reverse("healthz"),
        practitioner=tested,
        slot_type=group,
        rule=RecurrenceRule(
            frequency="weekly",
            start=CALENDAR_MONDAY,
            time=SERIES_GROUP_START,
            weekdays=SERIES_WEEKDAYS,
            count=SERIES_COUNT,
        ),
        zone=ZoneInfo(CALENDAR_TIME_ZONE),
    )
    series_preview_check(state)
    return state


def series_figures(result: Result) -> Result:
    """The preview's query count for 6 and for 156 occurrences, and the selector alone (rule expansion and
    series_preview, no HTTP), timed the same way."""
    state = series_setup()
    if result["queries"] != state.queries[SERIES_COUNT]:
        raise RuntimeError(f"series_preview: {result['queries']} queries timed, {state.queries} in the set-up")
    selector = measure(
        Case("series_preview_selector", series_setup, run=series_select),
        runs=int(result["runs"]),
        warmup=int(result["warmup"]),
    )
    return {
        f"queries_{SERIES_SHORT_COUNT}_occurrences": state.queries[SERIES_SHORT_COUNT],
        f"queries_{SERIES_COUNT}_occurrences": state.queries[SERIES_COUNT],
        "selector_median_s": selector["median_s"],
        "selector_min_s": selector["min_s"],
        "selector_max_s": selector["max_s"],
        "selector_queries": selector["queries"],
    }


register(
    Case(
        name="series_preview",
        setup=series_setup,
        run=lambda state: series_post(state, SERIES_COUNT),
        floor=lambda state: get_ok(state.client, state.floor_url),
        warmup=2,
        extras=series_figures,
    )
)


# --- The ICS subscription feed: 5,000 events built, served and rebuilt ---------------------

ICS_SLUG = "bench-ics-feed"
ICS_ADMIN = "bench-ics-admin@example.invalid"
ICS_SEED = 20_270_503
ICS_NOW = dt.datetime(2027, 5, 3, 7, tzinfo=dt.UTC)  # the window: 4 March 2027 07:00 to 1 November 2028 07:00 UTC
ICS_WEEKS = 90  # of the calendar's sessions from CALENDAR_MONDAY (1 March 2027) to Friday 17 November 2028
ICS_MODE = IdentifierMode.INITIALS
ICS_PATIENTS = 1_500  # every 40th blocked ("Restricted patient"), every 10th renamed from ICS_NAMES
ICS_APPOINTMENTS = 4_600  # live, in the window: singles and 2 to 5 places of group slots
ICS_APPOINTMENTS_OUTSIDE = 20  # live, before the window and as many after it
ICS_CANCELLED = 150  # in the window
ICS_TIMED_EVENTS = 300  # in the window; every third free (TRANSP:TRANSPARENT)
ICS_ALL_DAY_EVENTS = 100  # in the window, 1 to 5 days; the first one begins before it
ICS_EVENTS_OUTSIDE = 6  # other events before the window and as many after it
ICS_EVENTS = ICS_APPOINTMENTS + ICS_TIMED_EVENTS + ICS_ALL_DAY_EVENTS  # 5,000 VEVENTs
ICS_MOVE = dt.timedelta(minutes=5)  # ics_incremental moves one appointment by this and back, run after run
ICS_USER_AGENT = "Google-Calendar-Importer"
ICS_SERVE_QUERIES = 2  # the subscription lookup and the stored bytes; 1 for a 304
ICS_NAMES = (
    ("Zoë", "Ødegaard"),
    ("Siobhán", "Ó Súilleabháin"),
    ("Łukasz", "Wiśniewski"),
    ("Thị", "Nguyễn"),
    ("Çağan", "Öztürk"),
    ("Åsa", "Håkansson"),
    ("Émile", "Dubois"),
    ("Ngozi", "Okafor"),
)
ICS_TITLES = (
    "Practice meeting",
    "Supervision; room 2, upstairs",
    "Home visits — Ørsted Road",
    "Team training: safeguarding, level 3 (the annual refresher for every clinical member of staff)",
)
ICS_ALL_DAY_TITLES = ("Annual leave", "Training day", "Conference, Zürich")
ICS_FEED_TABLES = (FeedEvent, FeedDocument)


def analyze(*tables_of: type[models.Model], vacuum: bool = False) -> None:
    """On PostgreSQL, the tables' statistics (and, with ``vacuum``, their dead rows reclaimed) as autovacuum
    would leave them; nothing elsewhere."""
    if connection.vendor != "postgresql":
        return
    tables = ", ".join(m._meta.db_table for m in tables_of)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {tables}" if vacuum else f"ANALYZE {tables}")


@dataclass(frozen=True)
class IcsState:
    clinic: Clinic
    practitioner: Practitioner
    subscription: FeedSubscription
    name: str  # X-WR-CALNAME
    items: list[FeedItem]  # the feed's 5,000 events as feed_sources gives them, for the floors
    url: str  # the subscription URL
    floor_url: str
    client: Client  # anonymous, as a calendar app
    left_out: list[str]  # UIDs of the cancelled appointments and of the events outside the window


def ics_blocks(body: bytes) -> list[bytes]:
    """The VEVENTs of a feed, sorted, and what surrounds them."""
    blocks = re.findall(rb"BEGIN:VEVENT\r\n.*?END:VEVENT\r\n", body, flags=re.S)
    return sorted(blocks) + [re.sub(rb"BEGIN:VEVENT\r\n.*?END:VEVENT\r\n", b"", body, flags=re.S)]


def ics_vevents(body: bytes) -> int:
    return body.count(b"BEGIN:VEVENT")


def ics_document(state: IcsState) -> FeedDocument | None:
    return FeedDocument.objects.filter(subscription=state.subscription).first()


def ics_body(state: IcsState) -> bytes:
    document = ics_document(state)
    return b"" if document is None else feed_bytes(bytes(document.body))


def ics_build(state: IcsState, *, force: bool = False) -> FeedDocument:
    return feed_build(subscription=state.subscription, now=ICS_NOW, force=force)


def ics_serializer(state: IcsState) -> bytes:
    """The app's own serializer alone (calendar_sync.ics), on the items: what a build from nothing writes."""
    return ics.calendar(state.name, (ics.vevent(item, sequence=0, stamp=ICS_NOW) for item in state.items))


def ics_icalendar(state: IcsState) -> bytes:
    """Floor: the icalendar library building the same calendar and events, the same properties."""
    calendar = icalendar.Calendar()
    for key, value in (
        ("version", "2.0"),
        ("prodid", ics.PRODID),
        ("calscale", "GREGORIAN"),
        ("method", "PUBLISH"),
        ("x-wr-calname", state.name),
        ("x-published-ttl", ics.REFRESH),
    ):
        calendar.add(key, value)
    calendar.add("refresh-interval", dt.timedelta(minutes=15), parameters={"VALUE": "DURATION"})
    for item in state.items:
        event = icalendar.Event()
        event.add("uid", item.uid)
        event.add("dtstamp", ICS_NOW)
        event.add("sequence", 0)
        event.add("dtstart", item.first_date or item.starts_at)
        event.add("dtend", item.end_date or item.ends_at)
        event.add("summary", item.summary)
        if item.location:
            event.add("location", item.location)
        event.add("transp", "TRANSPARENT" if item.transparent else "OPAQUE")
        calendar.add_component(event)
    return calendar.to_ical()


def ics_plain(state: IcsState) -> bytes:
    """Floor: plain string formatting of the same items, no escaping and no folding."""
    stamp = f"{ICS_NOW:%Y%m%dT%H%M%SZ}"
    parts = [
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:{ics.PRODID}\r\nCALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\n"
        f"X-WR-CALNAME:{state.name}\r\nREFRESH-INTERVAL;VALUE=DURATION:{ics.REFRESH}\r\n"
        f"X-PUBLISHED-TTL:{ics.REFRESH}\r\n"
    ]
    for item in state.items:
        if item.first_date is not None:
            when = f"DTSTART;VALUE=DATE:{item.first_date:%Y%m%d}\r\nDTEND;VALUE=DATE:{item.end_date:%Y%m%d}"
        else:
            when = f"DTSTART:{item.starts_at:%Y%m%dT%H%M%SZ}\r\nDTEND:{item.ends_at:%Y%m%dT%H%M%SZ}"
        where = f"LOCATION:{item.location}\r\n" if item.location else ""
        transp = "TRANSPARENT" if item.transparent else "OPAQUE"
        parts.append(
            f"BEGIN:VEVENT\r\nUID:{item.uid}\r\nDTSTAMP:{stamp}\r\nSEQUENCE:0\r\n{when}\r\n"
            f"SUMMARY:{item.summary}\r\n{where}TRANSP:{transp}\r\nEND:VEVENT\r\n"
        )
    parts.append("END:VCALENDAR\r\n")
    return "".join(parts).encode()


def ics_patients(clinic: Clinic, rng: random.Random) -> list[Patient]:
    """The calendar's patients (every 40th blocked, every 25th with a preferred name), every 10th of them
    renamed from ICS_NAMES: initials like "ZØ" and "ŁW" in the feed."""
    patients = calendar_patients(clinic, rng, ICS_PATIENTS)
    renamed = patients[3::10]
    for patient, (first, last) in zip(renamed, itertools.cycle(ICS_NAMES), strict=False):
        patient.first_name, patient.last_name = first, last
        patient.first_name_key, patient.last_name_key = name_key(first), name_key(last)
    Patient.objects.bulk_update(renamed, ["first_name", "last_name", "first_name_key", "last_name_key"], batch_size=500)
    return patients


def ics_appointments(
    clinic: Clinic, practitioner: Practitioner, rng: random.Random, patients: list[Patient], actor: User
) -> list[str]:
    """4,600 live appointments in the window, 20 before it and 20 after it, 150 cancelled ones in it; the UIDs of
    those the feed must leave out."""
    starts, ends = feed_window(ICS_NOW)
    slots = list(
        Slot.objects.for_clinic(clinic)
        .filter(session__practitioner=practitioner, bookable=True)
        .select_related("session")
        .order_by("starts_at", "id")
    )
    inside = [slot for slot in slots if starts <= slot.starts_at < ends]
    before = [slot for slot in slots if slot.starts_at < starts and slot.capacity == 1]
    after = [slot for slot in slots if slot.starts_at >= ends and slot.capacity == 1]
    rng.shuffle(inside)
    targets: list[tuple[Slot, int]] = []
    remaining = ICS_APPOINTMENTS
    for slot in inside:
        if not remaining:
            break
        places = 1 if slot.capacity == 1 else min(rng.randint(2, 5), remaining)
        targets.append((slot, places))
        remaining -= places
    outside = rng.sample(before, ICS_APPOINTMENTS_OUTSIDE) + rng.sample(after, ICS_APPOINTMENTS_OUTSIDE)
    made = slots_book_to(clinic, targets + [(slot, 1) for slot in outside], rng, patients, actor)
    if remaining or made != ICS_APPOINTMENTS + 2 * ICS_APPOINTMENTS_OUTSIDE:
        raise RuntimeError(f"ics feed: {made} appointments made, expected {ICS_APPOINTMENTS} and the outside ones")
    cancelled = [
        appointment_in(
            clinic,
            (slot.pk, practitioner.pk, slot.slot_type_id, slot.capacity, slot.starts_at, slot.ends_at),
            rng.choice(patients),
            AppointmentStatus.CANCELLED,
            actor,
        )
        for slot in rng.sample(inside, ICS_CANCELLED)
    ]
    Appointment.objects.bulk_create(cancelled, batch_size=500)
    left_out = Appointment.objects.for_clinic(clinic).filter(
        models.Q(status=AppointmentStatus.CANCELLED) | models.Q(slot__in=outside)
    )
    return [f"appointment-{public_id}@{UID_DOMAIN}" for public_id in left_out.values_list("public_id", flat=True)]


def ics_other_events(clinic: Clinic, practitioner: Practitioner, rng: random.Random) -> list[str]:
    """300 timed (every third free) and 100 all-day other events in the window, the first all-day one beginning
    before it; 6 before and 6 after it. The UIDs of those the feed must leave out."""
    zone = ZoneInfo(CALENDAR_TIME_ZONE)
    starts, ends = feed_window(ICS_NOW)
    first_day, last_day = starts.date() + dt.timedelta(days=1), ends.date() - dt.timedelta(days=7)

    def timed(day: dt.date, number: int) -> OtherEvent:
        begins = dt.datetime.combine(day, dt.time(rng.choice((12, 13, 17)), rng.choice((0, 30))), tzinfo=zone)
        return OtherEvent(
            clinic=clinic,
            practitioner=practitioner,
            title=ICS_TITLES[number % len(ICS_TITLES)],
            starts_at=begins,
            ends_at=begins + dt.timedelta(minutes=rng.choice((30, 60, 90, 120))),
            busy=number % 3 != 0,
        )

    def all_day(day: dt.date, number: int, days: int | None = None) -> OtherEvent:
        return OtherEvent(
            clinic=clinic,
            practitioner=practitioner,
            title=ICS_ALL_DAY_TITLES[number % len(ICS_ALL_DAY_TITLES)],
            all_day=True,
            first_date=day,
            last_date=day + dt.timedelta(days=(rng.randint(1, 5) if days is None else days) - 1),
        )

    def day_between(first: dt.date, last: dt.date) -> dt.date:
        return dt.date.fromordinal(rng.randint(first.toordinal(), last.toordinal()))

    inside = [timed(day_between(first_day, last_day), n) for n in range(ICS_TIMED_EVENTS)]
    inside.append(all_day(starts.date() - dt.timedelta(days=3), 0, days=5))  # Annual leave across the start
    inside += [all_day(day_between(first_day, last_day), n) for n in range(1, ICS_ALL_DAY_EVENTS)]
    outside = [
        make(starts.date() - dt.timedelta(days=10 + n), n)
        for n in range(ICS_EVENTS_OUTSIDE // 2)
        for make in (timed, all_day)
    ]
    outside += [
        make(ends.date() + dt.timedelta(days=2 + n), n)
        for n in range(ICS_EVENTS_OUTSIDE // 2)
        for make in (timed, all_day)
    ]
    OtherEvent.objects.bulk_create(inside + outside)
    return [f"event-{event.public_id}@{UID_DOMAIN}" for event in outside]


def ics_check(state: IcsState, body: bytes) -> None:
    """Exactly the 5,000 events: none of the cancelled or outside ones, the blocked patients restricted, the
    renamed ones by their (non-ASCII) initials."""
    text = body.decode()
    problems = []
    if ics_vevents(body) != ICS_EVENTS:
        problems.append(f"{ics_vevents(body)} VEVENTs, expected {ICS_EVENTS}")
    if any(uid in text for uid in state.left_out):
        problems.append("a cancelled appointment or an event outside the window is in it")
    if "Restricted patient · " not in text or "ZØ · " not in text or "ŁW · " not in text:
        problems.append("the blocked patients or the renamed ones are not shown as they should be")
    if problems:
        raise RuntimeError("ics feed: " + "; ".join(problems))


@functools.cache
def ics_setup() -> IcsState:
    """One practitioner's calendar over 90 weeks, 5,000 events in the feed's window, the subscription enabled
    (initials) and the feed built; built once per process, shared by the three ics cases."""
    clinics_clear([ICS_SLUG])
    rng = random.Random(ICS_SEED)
    clinic = Clinic.objects.create(
        name="Benchmark ICS feed", slug=ICS_SLUG, time_zone=CALENDAR_TIME_ZONE, internal_ids_enabled=True
    )
    user, _ = User.objects.get_or_create(username=ICS_ADMIN, defaults={"email": ICS_ADMIN})
    Membership.objects.create(clinic=clinic, user=user, role=Role.ADMIN)
    (practitioner,) = calendar_rota(clinic, CalendarSize(ICS_SLUG, ICS_ADMIN, 1, 0, 0, ICS_PATIENTS), weeks=ICS_WEEKS)
    with transaction.atomic():
        patients = ics_patients(clinic, rng)
        left_out = ics_appointments(clinic, practitioner, rng, patients, user)
        left_out += ics_other_events(clinic, practitioner, rng)
    subscription = subscription_get_or_create(clinic=clinic, practitioner=practitioner)
    # Enabling queues a build (eager here, at the real date); the forced build below is at ICS_NOW.
    subscription = subscription_save(
        clinic=clinic, actor=user, subscription=subscription, enabled=True, identifier_mode=ICS_MODE
    )
    analyze(Appointment, Slot, Session, Patient, OtherEvent, *ICS_FEED_TABLES)
    items = [
        source.item for source in feed_sources(clinic=clinic, practitioner=practitioner, mode=ICS_MODE, now=ICS_NOW)
    ]
    state = IcsState(
        clinic=clinic,
        practitioner=practitioner,
        subscription=subscription,
        name=f"{practitioner.name} · {clinic.name}",
        items=items,
        url=reverse("calendar_sync:feed", args=[feed_token(subscription)]),
        floor_url=reverse("healthz"),
        client=Client(headers={"user-agent": ICS_USER_AGENT, "accept-encoding": "gzip"}),
        left_out=left_out,
    )
    FeedDocument.objects.filter(subscription=subscription).delete()
    ics_build(state, force=True)
    body = ics_body(state)
    ics_check(state, body)
    if ics_blocks(body) != ics_blocks(ics_serializer(state)):
        # (the same VEVENTs, byte for byte; the build orders them by start)
        raise RuntimeError("ics feed: a build from nothing differs from the serializer on the same items")
    for floor in (ics_icalendar, ics_plain):
        found = floor(state)
        if ics_vevents(found) != ICS_EVENTS or any(item.uid.encode() not in found for item in items[::97]):
            raise RuntimeError(f"ics feed: {floor.__name__} did not build the same {ICS_EVENTS} events")
    return state


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


def ics_full_reset(state: IcsState) -> None:
    """Check the build just made (if any), then remove the stored feed, events and document: a build from nothing."""
    body = ics_body(state)
    if body:
        ics_check(state, body)
    FeedDocument.objects.filter(subscription=state.subscription).delete()
    analyze(*ICS_FEED_TABLES, vacuum=True)


def ics_full_figures(result: Result) -> Result:
    """The second floor (plain string formatting) and the app's serializer alone (no database), timed the same
    way, the icalendar floor's peak memory, and the feed's size."""
    state = ics_setup()
    return {
        "events": ICS_EVENTS,
        "feed_bytes": len(ics_serializer(state)),
        "icalendar_peak_mb": round(peak_memory_mb(functools.partial(ics_icalendar, state)), 4),
        **sub_case("plain", state, ics_plain, result),
        **sub_case("serializer", state, ics_serializer, result),
    }


register(
    Case(
        name="ics_full",
        setup=ics_setup,
        run=functools.partial(ics_build, force=True),
        floor=ics_icalendar,
        reset=ics_full_reset,
        warmup=2,
        extras=ics_full_figures,
    )
)


def ics_serve_setup() -> IcsState:
    """The feed stored and fresh; serving it takes the lookup and the bytes, and a 304 the lookup alone."""
    state = ics_setup()
    ics_build(state)  # missing after ics_full: built here, untimed
    ics_check(state, feed_bytes(get_ok(state.client, state.url)))
    document = ics_document(state)
    assert document is not None
    serve = functools.partial(get_ok, state.client, state.url)
    counts = (count_queries(serve), count_queries(functools.partial(ics_not_modified(document.etag), state)))
    if counts != (ICS_SERVE_QUERIES, ICS_SERVE_QUERIES - 1):
        raise RuntimeError(f"ics_serve: (200, 304) take {counts} queries, expected 2 and 1: is the feed stale?")
    return state


def ics_not_modified(etag: str) -> Callable[[IcsState], None]:
    def get(state: IcsState) -> None:
        response = state.client.get(state.url, headers={"if-none-match": etag})
        if response.status_code != 304:
            raise RuntimeError(f"GET {state.url} with If-None-Match returned {response.status_code}, expected 304")

    return get


def ics_serve_figures(result: Result) -> Result:
    """The 304 answer to If-None-Match, timed the same way, and the size of the 200's body."""
    state = ics_setup()
    if result["queries"] != ICS_SERVE_QUERIES:
        raise RuntimeError(f"ics_serve: {result['queries']} queries, expected {ICS_SERVE_QUERIES}")
    document = ics_document(state)
    assert document is not None
    return {
        "feed_bytes": len(bytes(document.body)),
        **sub_case("not_modified", state, ics_not_modified(document.etag), result),
    }


register(
    Case(
        name="ics_serve",
        setup=ics_serve_setup,
        run=lambda state: get_ok(state.client, state.url),
        floor=lambda state: get_ok(state.client, state.floor_url),
        runs=30,
        warmup=3,
        extras=ics_serve_figures,
    )
)


@dataclass
class IncrementalState:
    """The feed, and the one appointment that each reset moves by five minutes (and back the next time)."""

    feed: IcsState
    appointment: int  # pk
    key: str  # its FeedEvent key
    moved: bool = False
    pending: bool = False  # a change the feed has not been rebuilt for yet
    sequences: dict[str, int] = field(default_factory=dict)  # every FeedEvent's SEQUENCE before that change
    checked: int = 0  # rebuilds found to have raised exactly that one event's SEQUENCE


def ics_sequences(state: IcsState) -> dict[str, int]:
    return dict(FeedEvent.objects.filter(document__subscription=state.subscription).values_list("key", "sequence"))


@functools.cache
def ics_incremental_setup() -> IncrementalState:
    """The feed built and fresh; the appointment to move is one of the 4,600, half-way through the window."""
    feed = ics_setup()
    ics_build(feed)
    starts, ends = feed_window(ICS_NOW)
    middle = starts + (ends - starts) / 2
    appointment = (
        Appointment.objects.for_clinic(feed.clinic).live().filter(starts_at__gte=middle).order_by("starts_at", "id")
    ).first()
    assert appointment is not None
    return IncrementalState(feed=feed, appointment=appointment.pk, key=f"a{appointment.pk}")


def ics_incremental_reset(state: IncrementalState) -> None:
    """If the feed was rebuilt since the last change, check that exactly the moved appointment's SEQUENCE went
    up, then move it (or back) and count a change as feeds_changed does (without queueing the build). If not
    (the floor ran in between), the change is still pending: nothing to do."""
    feed = state.feed
    document = ics_document(feed)
    changes = FeedSubscription.objects.filter(pk=feed.subscription.pk).values_list("changes", flat=True).get()
    if state.pending:
        if document is None or document.built_changes < changes:
            return
        after = ics_sequences(feed)
        raised = {key for key, sequence in after.items() if sequence != state.sequences.get(key)}
        if raised != {state.key} or after[state.key] != state.sequences[state.key] + 1 or len(after) != ICS_EVENTS:
            raise RuntimeError(f"ics_incremental: SEQUENCE changed for {sorted(raised)[:5]}, expected {state.key}")
        state.checked += 1
    state.sequences = ics_sequences(feed)
    shift = -ICS_MOVE if state.moved else ICS_MOVE
    Appointment.objects.filter(pk=state.appointment).update(
        starts_at=models.F("starts_at") + shift, ends_at=models.F("ends_at") + shift
    )
    feed_changes_record([feed.practitioner.pk], [state.key])
    state.moved, state.pending = not state.moved, True


def ics_incremental_floor(state: IncrementalState) -> None:
    """What any rebuild of a stored feed does: read the 5,000 stored VEVENTs, join them and write the body (in
    one transaction). The change stays pending: the next run builds it."""
    feed = state.feed
    with transaction.atomic():
        texts = (
            FeedEvent.objects.filter(document__subscription=feed.subscription)
            .order_by("sort_key", "key")
            .values_list("text", flat=True)
        )
        body = ics.calendar(feed.name, texts)
        FeedDocument.objects.filter(subscription=feed.subscription).update(
            body=gzip.compress(body, compresslevel=1, mtime=0)
        )


def ics_incremental_figures(result: Result) -> Result:
    """How many rebuilds were checked, and feed_sources alone (its two queries and the fingerprints) timed the
    same way."""
    state = ics_incremental_setup()
    feed = state.feed

    def sources(_: object) -> None:
        list(feed_sources(clinic=feed.clinic, practitioner=feed.practitioner, mode=ICS_MODE, now=ICS_NOW))

    return {"checked_rebuilds": state.checked, **sub_case("sources", state, sources, result)}


register(
    Case(
        name="ics_incremental",
        setup=ics_incremental_setup,
        run=lambda state: ics_build(state.feed),
        floor=ics_incremental_floor,
        reset=ics_incremental_reset,
        warmup=2,
        extras=ics_incremental_figures,
    )
)


# --- Two-way sync with Google Calendar, against the fake Google -------------------------------------------------
#
# google_sync: the ics cases' practitioner (5,000 events in the window) connected to the fake Google of the tests
# (tests/google_fake, started in this process: its own work is in the wall times), push and pull called
# directly with now=ICS_NOW (no Celery; a push is kept marked as queued so that nothing queues an eager one).
#
# - The case's own median: the first full push, 5,000 events into an empty default calendar (made again before each
#   run, nothing remembered as sent, everything pending): 100 batch requests of 50 inserts. Target ≤ 10 s.
# - pull_*: the first full pull of a calendar made in Google with 5,000 events (3,000 timed busy, 1,000 timed free,
#   1,000 all-day) into external OtherEvents: 2 pages of 2,500. Target ≤ 3 s.
# - incremental_*: a default calendar in sync both ways (ours and Google's 5,000) after 50 changes, 25 events edited
#   in Google and 25 appointments moved here (pending): one pull (1 page) and one push (1 batch request). Target
#   ≤ 0.5 s.
# - first_sync_*: the one first sync both ways that put that calendar in sync (timed once): 100 batch requests,
#   then 4 pages listing ours and Google's 10,000.
#
# Each run is checked in the reset after it (what Google holds, what is here, the reports and the requests the
# fake saw), so a wrong sync fails the benchmark instead of being timed. Medians measured on a shared machine with 2
# CPUs, SQLite and PostgreSQL alike: push 3.2 to 3.7 s, pull 0.8 to 1.5 s, incremental 0.08 to 0.23 s. Of the push,
# about a third is the fake answering and most of the rest googleapiclient writing and reading the multipart batches
# (the email package); the database takes about 0.6 s (planning from feed_sources, then remembering what was sent).

GOOGLE_EMAIL = "dr.bench@example.com"
GOOGLE_SEED = 20_270_504
GOOGLE_RUNS = 5  # the full push and the full pull: a few seconds each
GOOGLE_INCREMENTAL_RUNS = 3  # times the case's runs: the incremental sync is fast
GOOGLE_EVENTS = 5_000  # made in Google: 3,000 timed busy, 1,000 timed free, 1,000 all-day (a third of them busy)
GOOGLE_EDITS = 25  # incremental: events changed in Google (20 timed renamed and moved, 5 all-day renamed)
GOOGLE_MOVES = 25  # incremental: appointments moved here (by ICS_MOVE, and back the next time)
GOOGLE_EDIT_MOVE = dt.timedelta(minutes=15)  # a timed event edited in Google moves by this every other round
GOOGLE_TOKEN_TTL = 86_400  # the fake's access tokens outlive the benchmark: no refresh inside the timings
GOOGLE_PUSH_REQUESTS = -(-ICS_EVENTS // google_client.BATCH_SIZE)  # 100 batch requests of 50 inserts
GOOGLE_PULL_REQUESTS = -(-GOOGLE_EVENTS // google_pull.PAGE_SIZE)  # 2 pages of 2,500
GOOGLE_FIRST_SYNC_PAGES = -(-(ICS_EVENTS + GOOGLE_EVENTS) // google_pull.PAGE_SIZE)  # ours and theirs: 4 pages
GOOGLE_TITLES = (
    "Dentist",
    "School run",
    "Lunch with Zoë",
    "Gym",
    "Call the bank",
    "Parents' evening — Year 6",
    "Board meeting (Østerbro office)",
)
GOOGLE_ALL_DAY_TITLES = ("Holiday", "Out of office", "Birthday: Siobhán", "Bank holiday")
GOOGLE_API = "/calendar/v3"  # in the path of every Calendar request, batch (/batch/calendar/v3) or not


def google_bodies(rng: random.Random) -> list[dict[str, Any]]:
    """5,000 events as a person makes them in Google, from 50 days before ICS_NOW to 500 days after it (all in
    a full listing's window): every fifth all-day (1 to 3 days; free, but every third busy), every fifth timed
    and free, the rest timed and busy, in the clinic's zone."""
    zone = ZoneInfo(CALENDAR_TIME_ZONE)
    first = (ICS_NOW - dt.timedelta(days=50)).date()
    bodies: list[dict[str, Any]] = []
    for number in range(GOOGLE_EVENTS):
        day = first + dt.timedelta(days=rng.randrange(550))
        if number % 5 == 4:
            last = day + dt.timedelta(days=rng.randint(1, 3))
            bodies.append(
                {
                    "summary": GOOGLE_ALL_DAY_TITLES[number % len(GOOGLE_ALL_DAY_TITLES)],
                    "start": {"date": day.isoformat()},
                    "end": {"date": last.isoformat()},
                    "transparency": "opaque" if number % 3 == 0 else "transparent",
                }
            )
            continue
        begins = dt.datetime.combine(day, dt.time(rng.randint(7, 19), rng.choice((0, 15, 30, 45))), tzinfo=zone)
        ends = begins + dt.timedelta(minutes=rng.choice((15, 30, 45, 60, 90)))
        body: dict[str, Any] = {
            "summary": GOOGLE_TITLES[number % len(GOOGLE_TITLES)],
            "start": {"dateTime": begins.isoformat(), "timeZone": CALENDAR_TIME_ZONE},
            "end": {"dateTime": ends.isoformat(), "timeZone": CALENDAR_TIME_ZONE},
        }
        if number % 5 == 3:
            body["transparency"] = "transparent"
        bodies.append(body)
    return bodies


def google_made(fake: FakeGoogle, calendar_id: str, bodies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The bodies made in the calendar (as the user, not timed, not over HTTP), by the id Google gave them."""
    return {str(fake.user_create_event(calendar_id, body)["id"]): body for body in bodies}


def google_shown(body: dict[str, Any]) -> tuple[str, bool, dt.datetime | dt.date]:
    """What an external OtherEvent must show of a Google event: its title, busy, and its start (or first day)."""
    start = body["start"]
    when = dt.date.fromisoformat(start["date"]) if "date" in start else google_events.instant(start["dateTime"])
    return body["summary"], body.get("transparency", "opaque") != "transparent", when


def google_pulled(practitioner: Practitioner, calendar_id: str) -> dict[str, tuple[str, bool, dt.datetime | dt.date]]:
    """The external OtherEvents pulled from a calendar, by Google's id, as google_shown puts them."""
    rows = OtherEvent.objects.filter(practitioner=practitioner, google_calendar_id=calendar_id).values_list(
        "google_event_id", "title", "busy", "all_day", "starts_at", "first_date"
    )
    return {
        event_id: (title, busy, first_date if all_day else starts_at)
        for event_id, title, busy, all_day, starts_at, first_date in rows
    }


def google_requests(fake: FakeGoogle) -> tuple[int, int]:
    """The HTTP requests to the Calendar API since the fake's log was cleared, and the calls batched in them."""
    return fake.count_requests(path_contains=GOOGLE_API), fake.count_requests(path_contains=GOOGLE_API, batched=True)


@dataclass
class GoogleSyncState:
    """The ics cases' practitioner (5,000 events in the window) connected to the fake Google for two-way sync.

    The push writes to a default calendar made empty before each run; the pull reads ``pull_calendar``, made in
    Google with 5,000 events of its own, as the default calendar, with its sync token cleared before each run.
    """

    feed: IcsState
    fake: FakeGoogle
    connection: int  # pk
    ours: frozenset[str]  # Google's ids of our 5,000 events
    push_row: int  # the GoogleCalendar of the default calendar the push writes to (made again before each run)
    pull_row: int
    pull_calendar: str
    pull_made: dict[str, dict[str, Any]]  # Google's id → the body it was made from
    push_calendar: str = ""
    push_report: PushReport | None = None
    pull_report: PullReport | None = None
    observed: dict[str, int] = field(default_factory=dict)  # request counts and checked runs, for the extras


def google_fail(case: str, problems: list[str]) -> None:
    if problems:
        raise RuntimeError(f"google_sync ({case}): " + "; ".join(problems))


def google_connection_set(state: GoogleSyncState, calendar_id: str, *, pending: Iterable[str] = ()) -> None:
    """The connection's default calendar, its pending changes exactly ``pending``, and a push marked as queued, so
    that nothing a change commits queues one (eager, in this process) behind the measured calls."""
    with transaction.atomic():
        GooglePending.objects.filter(connection_id=state.connection).delete()
        GooglePending.objects.bulk_create(
            [GooglePending(clinic=state.feed.clinic, connection_id=state.connection, key=key) for key in pending]
        )
        GoogleConnection.objects.filter(pk=state.connection).update(default_calendar_id=calendar_id, push_queued=True)


@functools.cache
def google_setup() -> GoogleSyncState:
    """The fake Google started (settings pointed at it), its account holding a calendar with 5,000 events, and the
    ics practitioner connected to it as the OAuth flow leaves a connection (sealed tokens, two-way enabled)."""
    from tests.google_fake.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeGoogle  # test code: lazily

    feed = ics_setup()
    fake = FakeGoogle(access_token_ttl=GOOGLE_TOKEN_TTL).start()
    atexit.register(fake.stop)
    settings.GOOGLE_CLIENT_ID, settings.GOOGLE_CLIENT_SECRET = DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
    settings.GOOGLE_AUTH_URI, settings.GOOGLE_TOKEN_URI = fake.auth_uri, fake.token_uri
    settings.GOOGLE_REVOKE_URI = fake.revoke_uri
    settings.GOOGLE_API_ROOT = fake.url + "/"
    settings.GOOGLE_WEBHOOK_ORIGIN = ""
    tokens = fake.issue_tokens(GOOGLE_EMAIL)
    pull_calendar = fake.user_create_calendar(GOOGLE_EMAIL, "Family")
    pull_made = google_made(fake, pull_calendar, google_bodies(random.Random(GOOGLE_SEED)))
    with transaction.atomic():
        GoogleConnection.objects.filter(practitioner=feed.practitioner).delete()
        connection = GoogleConnection.objects.create(
            clinic=feed.clinic,
            practitioner=feed.practitioner,
            email=GOOGLE_EMAIL,
            refresh_token=seal(tokens["refresh_token"]),
            access_token=seal(tokens["access_token"]),
            access_expires_at=timezone.now() + dt.timedelta(seconds=int(tokens["expires_in"])),
            default_calendar_created=True,
            push_queued=True,
        )
        push_row = GoogleCalendar.objects.create(clinic=feed.clinic, connection=connection, calendar_id="")
        pull_row = GoogleCalendar.objects.create(
            clinic=feed.clinic, connection=connection, calendar_id=pull_calendar, summary="Family"
        )
        FeedSubscription.objects.filter(pk=feed.subscription.pk).update(sync_type=SyncType.TWO_WAY, enabled=True)
    sources = feed_sources(clinic=feed.clinic, practitioner=feed.practitioner, mode=ICS_MODE, now=ICS_NOW)
    ours = frozenset(google_events.our_event_id(source) for source in sources)
    google_fail("setup", [f"{len(ours)} of our events, expected {ICS_EVENTS}"] if len(ours) != ICS_EVENTS else [])
    return GoogleSyncState(
        feed=feed,
        fake=fake,
        connection=connection.pk,
        ours=ours,
        push_row=push_row.pk,
        pull_row=pull_row.pk,
        pull_calendar=pull_calendar,
        pull_made=pull_made,
    )


def google_push_check(state: GoogleSyncState) -> None:
    """The push just made: exactly our 5,000 events in the calendar (4,600 of them client events, locked), each
    remembered, nothing left pending, in 100 batch requests of 50 inserts."""
    fake, report = state.fake, state.push_report
    held = fake.events(state.push_calendar)
    ids = {event["id"] for event in held}
    locked = sum(1 for event in held if event["summary"].startswith(google_events.LOCK))
    requests, calls = google_requests(fake)
    problems = []
    if len(held) != ICS_EVENTS or ids != state.ours:
        problems.append(f"Google holds {len(held)} events, {len(ids - state.ours)} not ours, expected our {ICS_EVENTS}")
    if locked != ICS_APPOINTMENTS:
        problems.append(f"{locked} client events, expected {ICS_APPOINTMENTS}")
    if report != PushReport(sent=ICS_EVENTS, requests=GOOGLE_PUSH_REQUESTS):
        problems.append(f"{report}, expected {ICS_EVENTS} sent in {GOOGLE_PUSH_REQUESTS} requests")
    if (requests, calls) != (GOOGLE_PUSH_REQUESTS, ICS_EVENTS):
        problems.append(f"{requests} requests carrying {calls} calls, expected {GOOGLE_PUSH_REQUESTS} and {ICS_EVENTS}")
    if GoogleEvent.objects.filter(connection_id=state.connection).count() != ICS_EVENTS:
        problems.append("not every event sent is remembered")
    if GooglePending.objects.filter(connection_id=state.connection).exists():
        problems.append("changes left pending")
    problems += fake.internal_errors
    google_fail("full push", problems)
    state.observed |= {
        "push_requests": requests,
        "push_batched_calls": calls,
        "checked_pushes": state.observed.get("checked_pushes", 0) + 1,
    }


def google_push_reset(state: GoogleSyncState) -> None:
    """Check the push just made (if any); then a new, empty default calendar (the last one deleted in Google),
    nothing remembered as sent, and everything pending, as resync_all leaves it."""
    fake = state.fake
    if state.push_report is not None:
        google_push_check(state)
        state.push_report = None
    if state.push_calendar:
        fake.user_delete_calendar(state.push_calendar)
    state.push_calendar = fake.user_create_calendar(GOOGLE_EMAIL, f"{state.feed.clinic.name} · Clinic Scheduler")
    GoogleEvent.objects.filter(connection_id=state.connection).delete()
    GoogleCalendar.objects.filter(pk=state.push_row).update(calendar_id=state.push_calendar, sync_token="")
    google_connection_set(state, state.push_calendar, pending=[""])
    analyze(GoogleEvent, GooglePending, vacuum=True)
    fake.clear_requests()


def google_push_run(state: GoogleSyncState) -> None:
    state.push_report = google_push.push(state.connection, now=ICS_NOW)


def google_pull_check(state: GoogleSyncState) -> None:
    """The full pull just made: the 5,000 events as external OtherEvents (titles, busy/free, starts), in two
    pages."""
    fake, report = state.fake, state.pull_report
    pulled = google_pulled(state.feed.practitioner, state.pull_calendar)
    expected = {event_id: google_shown(body) for event_id, body in state.pull_made.items()}
    requests, calls = google_requests(fake)
    problems = []
    if pulled != expected:
        wrong = sum(1 for event_id, shown in expected.items() if pulled.get(event_id) != shown)
        problems.append(f"{len(pulled)} external events, {wrong} of the {GOOGLE_EVENTS} missing or different")
    if report != PullReport(listed=GOOGLE_EVENTS, created=GOOGLE_EVENTS, full=True, requests=GOOGLE_PULL_REQUESTS) or (
        requests,
        calls,
    ) != (GOOGLE_PULL_REQUESTS, 0):
        problems.append(f"{report} in {requests} requests, expected {GOOGLE_PULL_REQUESTS} pages")
    problems += fake.internal_errors
    google_fail("full pull", problems)
    state.observed |= {"pull_requests": requests, "checked_pulls": state.observed.get("checked_pulls", 0) + 1}


def google_pull_reset(state: GoogleSyncState) -> None:
    """Check the pull just made (if any); then no event of that calendar here, its sync token cleared, and it the
    default calendar: the next pull lists it in full."""
    if state.pull_report is not None:
        google_pull_check(state)
        state.pull_report = None
    OtherEvent.objects.filter(practitioner=state.feed.practitioner, google_calendar_id=state.pull_calendar).delete()
    GoogleCalendar.objects.filter(pk=state.pull_row).update(sync_token="")
    google_connection_set(state, state.pull_calendar)
    analyze(OtherEvent, vacuum=True)
    state.fake.clear_requests()


def google_pull_run(state: GoogleSyncState) -> None:
    state.pull_report = google_pull.pull(state.connection, now=ICS_NOW)


@dataclass
class GoogleIncrementalState:
    """A default calendar in sync both ways (our 5,000 events and Google's 5,000), and the 50 changes made before
    each run: 25 appointments moved here (pending) and 25 events edited in Google."""

    sync: GoogleSyncState
    calendar: str
    made: dict[str, dict[str, Any]]  # Google's id → the body it was made from
    edited: list[str]  # Google's ids of the events edited before each run
    moved: dict[int, str]  # the appointments moved before each run: pk → Google's id
    first_sync: Result  # the one first sync both ways that put it in sync
    round: int = 0
    pull_report: PullReport | None = None
    push_report: PushReport | None = None


def google_edit(body: dict[str, Any], round_: int) -> dict[str, Any]:
    """What the person changes in Google in a round: the title, and a timed event's times every other round."""
    changes: dict[str, Any] = {"summary": f"{body['summary']} (edited {round_})"}
    if "dateTime" in body["start"]:
        shift = GOOGLE_EDIT_MOVE * (round_ % 2)
        for end in ("start", "end"):
            moved = dt.datetime.fromisoformat(body[end]["dateTime"]) + shift
            changes[end] = {"dateTime": moved.isoformat(), "timeZone": CALENDAR_TIME_ZONE}
    return changes


@functools.cache
def google_incremental_setup() -> GoogleIncrementalState:
    """A calendar made in Google with 5,000 events of its own, chosen as the default one, and the first sync both
    ways into it, timed once: everything pushed (100 batch requests), then the calendar listed in full (our
    5,000 and Google's 5,000: 4 pages), Google's events created here and ours found unchanged."""
    sync = google_setup()
    fake, feed = sync.fake, sync.feed
    calendar = fake.user_create_calendar(GOOGLE_EMAIL, "Dr Bench (work)")
    made = google_made(fake, calendar, google_bodies(random.Random(GOOGLE_SEED + 1)))
    GoogleCalendar.objects.create(clinic=feed.clinic, connection_id=sync.connection, calendar_id=calendar)
    GoogleEvent.objects.filter(connection_id=sync.connection).delete()
    google_connection_set(sync, calendar, pending=[""])
    fake.clear_requests()
    started = time.perf_counter()
    pushed = google_push.push(sync.connection, now=ICS_NOW)
    push_s = time.perf_counter() - started
    GoogleConnection.objects.filter(pk=sync.connection).update(push_queued=True)
    started = time.perf_counter()
    pulled = google_pull.pull(sync.connection, now=ICS_NOW)
    pull_s = time.perf_counter() - started
    requests, _ = google_requests(fake)
    listed = ICS_EVENTS + GOOGLE_EVENTS
    problems = []
    if pushed != PushReport(sent=ICS_EVENTS, requests=GOOGLE_PUSH_REQUESTS):
        problems.append(f"push: {pushed}")
    if pulled != PullReport(listed=listed, created=GOOGLE_EVENTS, full=True, requests=GOOGLE_FIRST_SYNC_PAGES):
        problems.append(f"pull: {pulled}")
    if requests != GOOGLE_PUSH_REQUESTS + GOOGLE_FIRST_SYNC_PAGES:
        problems.append(f"{requests} requests")
    if GooglePending.objects.filter(connection_id=sync.connection).exists():
        problems.append("our events came back changed from Google (pending again)")
    if google_pulled(feed.practitioner, calendar) != {event_id: google_shown(body) for event_id, body in made.items()}:
        problems.append("Google's events are not all here as made")
    google_fail("first sync both ways", problems + fake.internal_errors)
    _, ends = feed_window(ICS_NOW)
    candidates = list(
        Appointment.objects.for_clinic(feed.clinic)
        .live()
        .filter(practitioner=feed.practitioner, starts_at__gte=ICS_NOW, starts_at__lt=ends - dt.timedelta(days=30))
        .order_by("starts_at", "id")
        .values_list("pk", "public_id")
    )
    moved = {
        pk: "csa" + public_id.hex for pk, public_id in candidates[:: len(candidates) // GOOGLE_MOVES][:GOOGLE_MOVES]
    }
    timed = [event_id for event_id, body in made.items() if "dateTime" in body["start"]]
    all_day = [event_id for event_id, body in made.items() if "date" in body["start"]]
    edited = timed[:: len(timed) // 20][:20] + all_day[:: len(all_day) // 5][: GOOGLE_EDITS - 20]
    return GoogleIncrementalState(
        sync=sync,
        calendar=calendar,
        made=made,
        edited=edited,
        moved=moved,
        first_sync={
            "first_sync_push_s": round(push_s, 4),
            "first_sync_pull_s": round(pull_s, 4),
            "first_sync_s": round(push_s + pull_s, 4),
            "first_sync_requests": requests,
            "first_sync_listed": pulled.listed,
        },
    )


def google_incremental_check(state: GoogleIncrementalState) -> None:
    """The run just made: the 25 edits here (titles and times), the 25 moved appointments in Google at their new
    times, in one listing page and one batch request."""
    sync = state.sync
    fake = sync.fake
    requests, calls = google_requests(fake)
    problems = []
    if state.pull_report != PullReport(listed=GOOGLE_EDITS, updated=GOOGLE_EDITS, requests=1):
        problems.append(f"pull: {state.pull_report}, expected {GOOGLE_EDITS} updated from one page")
    if state.push_report != PushReport(sent=GOOGLE_MOVES, requests=1):
        problems.append(f"push: {state.push_report}, expected {GOOGLE_MOVES} sent in one batch")
    if (requests, calls) != (2, GOOGLE_MOVES):
        problems.append(f"{requests} requests carrying {calls} calls, expected 2 and {GOOGLE_MOVES}")
    pulled = google_pulled(sync.feed.practitioner, state.calendar)
    for event_id in state.edited:
        body = {**state.made[event_id], **google_edit(state.made[event_id], state.round)}
        if pulled.get(event_id) != google_shown(body):
            problems.append(f"Google's edit of {event_id} is not here")
            break
    starts = dict(Appointment.objects.filter(pk__in=state.moved).values_list("pk", "starts_at"))
    for pk, event_id in state.moved.items():
        event = fake.event(state.calendar, event_id)
        if event is None or google_events.instant(event["start"]["dateTime"]) != starts[pk]:
            problems.append(f"the move of appointment {pk} is not in Google")
            break
    if GooglePending.objects.filter(connection_id=sync.connection).exists():
        problems.append("changes left pending")
    google_fail("incremental", problems + fake.internal_errors)
    sync.observed |= {
        "incremental_pull_requests": state.pull_report.requests if state.pull_report else 0,
        "incremental_push_requests": state.push_report.requests if state.push_report else 0,
        "checked_incrementals": sync.observed.get("checked_incrementals", 0) + 1,
    }


def google_incremental_reset(state: GoogleIncrementalState) -> None:
    """Check the run just made (if any); pull the echo of its push (our own updates, listed again: untimed, and
    checked to change nothing here); then the next round's 50 changes: 25 events edited in Google, 25
    appointments moved here by five minutes (or back) and recorded as pending (no push queued: the run pushes)."""
    sync = state.sync
    fake = sync.fake
    if state.pull_report is not None:
        google_incremental_check(state)
        state.pull_report = state.push_report = None
    google_connection_set(sync, state.calendar)
    echo = google_pull.pull(sync.connection, now=ICS_NOW)
    if (
        echo != PullReport(listed=GOOGLE_MOVES if state.round else 0, requests=1)
        or GooglePending.objects.filter(connection_id=sync.connection).exists()
    ):
        google_fail("incremental", [f"the echo of our own updates changed something here: {echo}"])
    state.round += 1
    for event_id in state.edited:
        fake.user_update_event(state.calendar, event_id, google_edit(state.made[event_id], state.round))
    shift = ICS_MOVE if state.round % 2 else -ICS_MOVE
    Appointment.objects.filter(pk__in=state.moved).update(
        starts_at=models.F("starts_at") + shift, ends_at=models.F("ends_at") + shift
    )
    google_connection_set(sync, state.calendar, pending=[f"a{pk}" for pk in state.moved])
    analyze(OtherEvent, GoogleEvent, GooglePending, Appointment)
    fake.clear_requests()


def google_incremental_run(state: GoogleIncrementalState) -> None:
    """What the pull and the push tasks do after the 50 changes (in the order the periodic pull and a pending
    change would run them)."""
    state.pull_report = google_pull.pull(state.sync.connection, now=ICS_NOW)
    state.push_report = google_push.push(state.sync.connection, now=ICS_NOW)


def google_sync_figures(result: Result) -> Result:
    """The full pull and the incremental sync, timed the same way (each with its own reset and checks); the
    request counts seen, events per second, and the one first sync both ways."""
    sync = google_setup()
    pull = sub_case("pull", sync, google_pull_run, result, reset=google_pull_reset)
    incremental_state = google_incremental_setup()
    incremental = sub_case(
        "incremental",
        incremental_state,
        google_incremental_run,
        result,
        reset=google_incremental_reset,
        runs=GOOGLE_INCREMENTAL_RUNS * int(result["runs"]),
    )
    seen = sync.observed
    return {
        "events": ICS_EVENTS,
        "push_requests": seen["push_requests"],
        "push_batched_calls": seen["push_batched_calls"],
        "push_events_per_s": round(ICS_EVENTS / float(result["median_s"]), 1),
        **pull,
        "pull_events": GOOGLE_EVENTS,
        "pull_requests": seen["pull_requests"],
        "pull_events_per_s": round(GOOGLE_EVENTS / float(pull["pull_median_s"]), 1),
        **incremental,
        "incremental_changes": GOOGLE_EDITS + GOOGLE_MOVES,
        "incremental_requests": seen["incremental_pull_requests"] + seen["incremental_push_requests"],
        "incremental_pull_requests": seen["incremental_pull_requests"],
        "incremental_push_requests": seen["incremental_push_requests"],
        "incremental_changes_per_s": round(
            (GOOGLE_EDITS + GOOGLE_MOVES) / float(incremental["incremental_median_s"]), 1
        ),
        **incremental_state.first_sync,
        "checked_pushes": seen["checked_pushes"],
        "checked_pulls": seen["checked_pulls"],
        "checked_incrementals": seen["checked_incrementals"],
    }


register(
    Case(
        name="google_sync",
        setup=google_setup,
        run=google_push_run,
        reset=google_push_reset,
        runs=GOOGLE_RUNS,
        warmup=1,
        extras=google_sync_figures,
    )
)
