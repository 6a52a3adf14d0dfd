"""Searching 100,000 patients (and 100,000 in another clinic): by name, phone and national ID.

Sizes: FULL (the figures of results.json) and TINY (``--size tiny``), chosen by the harness."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
import random
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import connection, transaction

from benchmarks.cases.common import FEMALE_NAMES, MALE_NAMES, PATIENT_DOB_RANGE, SURNAMES, nhs_numbers, register
from benchmarks.harness import Case, checked, sized
from clinic.models import Clinic, Membership, Role
from patients.identifiers import name_key, phone_key, ssn_is_valid
from patients.models import Coverage, InternalIdCounter, Patient, format_internal_id
from patients.selectors import SEARCH_LIMIT, patient_search

# --- Searching 100,000 patients -------------------------------------------------------


@dataclass(frozen=True)
class PatientSizes:
    count: int  # in each of the two clinics; enough for SEARCH_LIMIT matches of PATIENT_NAME_QUERY


FULL = PatientSizes(count=100_000)
TINY = PatientSizes(count=2_000)
SIZE = sized(FULL, TINY)

PATIENT_COUNT = SIZE.count
PATIENT_SEED = 20_261_121
PATIENT_BATCH = 2_000
PATIENT_SLUG_PREFIX = "bench-patients-"
PATIENT_RECEPTIONIST = "bench-patients-reception@example.invalid"
PATIENT_SHARED_EVERY = 50  # every 50th patient of the other clinic is the same person (moved practice)
PATIENT_NAME_QUERY = "Smi"  # the most common surname's prefix: the least selective name search there is

POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
STREETS = ("High Street", "Station Road", "Church Lane", "Victoria Road", "Mill Lane", "Park Avenue", "The Crescent")


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
    checked()


def search_first_is(state: PatientSearchState, query: str, expected_id: int) -> None:
    results = search_checked(state, query)
    if results[0].pk != expected_id:
        raise RuntimeError(f"patient_search({query!r}) returned {results[0].pk} first, expected {expected_id}")
    checked()


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
    ("patient_search", search_all_kinds, patients_by_pk_three_times),  # the case: the three in sequence
    ("patient_search_name", search_by_name, patient_by_pk),
    ("patient_search_phone", search_by_phone, patient_by_pk),
    ("patient_search_national_id", search_by_national_id, patient_by_pk),
):
    register(Case(name=case_name, setup=patient_search_setup, run=case_run, floor=case_floor, runs=30, warmup=3))
