"""Demo patients for `manage.py seed_demo` (idempotent: seeded once per clinic)."""

from __future__ import annotations

import datetime as dt
import random

from django.db import transaction

from clinic.models import Clinic
from patients.models import Coverage, Patient
from patients.services import internal_ids_reserve

LAST = [
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Müller",
    "O'Brien", "Nguyen", "García", "Kowalski", "Okafor", "Zoë-Adams", "Smithson", "Evans", "Thomas", "Roberts",
]  # fmt: skip
FIRST = [
    "Olivia", "Amelia", "Isla", "Ava", "Noah", "Oliver", "George", "Leo", "Chloé", "José", "Aisha", "Mohammed",
    "Sophie", "Jack", "Freya", "Arthur",
]  # fmt: skip
MALE_FIRST = {"Noah", "Oliver", "George", "Leo", "José", "Mohammed", "Jack", "Arthur"}


def demo_sex_and_title(first_name: str, drawn_title: str) -> tuple[str, str]:
    """A demo patient's sex follows their first name, and a gendered title follows the sex (no "Mrs Jack").
    The random draws stay as they were, so every demo name is where the README says it is."""
    sex = "male" if first_name in MALE_FIRST else "female"
    if drawn_title in {"Mr", "Mrs", "Ms"}:
        drawn_title = "Mr" if sex == "male" else ("Ms" if drawn_title == "Mr" else drawn_title)
    return sex, drawn_title


def nhs_number(rng: random.Random) -> str:
    while True:
        body = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(body, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return "".join(map(str, body)) + str(check)


def ssn(rng: random.Random) -> str:
    return f"{rng.randint(100, 665):03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"


@transaction.atomic
def seed_clinic(clinic: Clinic) -> None:
    if Patient.objects.for_clinic(clinic).exists():
        return
    rng = random.Random(clinic.slug)
    uk = clinic.time_zone.startswith("Europe/")
    count = 40
    ids = internal_ids_reserve(clinic=clinic, count=count)
    for i in range(count):
        blocked = i == 7
        # Drawn in the order they always were (the names must not move); sex and title then agree.
        drawn_title = rng.choice(["", "Mr", "Mrs", "Ms", "Dr"])
        first_name = rng.choice(FIRST)
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 30000))
        rng.choice(["female", "male"])  # the old random sex: drawn still, so what follows is unchanged
        sex, title = demo_sex_and_title(first_name, drawn_title)
        patient = Patient(
            clinic=clinic,
            internal_id=ids[i],
            title=title,
            first_name=first_name,
            last_name=LAST[i % len(LAST)],
            date_of_birth=born,
            sex=sex,
            national_id_kind="nhs" if uk else "ssn",
            national_id=nhs_number(rng) if uk else ssn(rng),
            mobile_phone=f"077009{rng.randint(0, 99999):05d}" if uk else f"312555{rng.randint(0, 9999):04d}",
            email=f"patient{i}@example.com",
            postcode="BS1 4DJ" if uk else "60606",
            is_blocked=blocked,
            blocked_reason="Staff member's relative" if blocked else "",
        )
        patient.save()
        if not uk or i % 5 == 0:
            # Drawn as they always were, so the names that follow do not move; kept where the clinic bills
            # insurance.
            member_id, group_number = f"M{rng.randint(100000, 999999)}", f"G{rng.randint(1000, 9999)}"
            if clinic.bills_insurance:
                Coverage.objects.create(
                    clinic=clinic,
                    patient=patient,
                    payer="Blue Cross Blue Shield" if not uk else "Bupa",
                    plan_name="PPO Gold" if not uk else "Comprehensive",
                    member_id=member_id,
                    group_number=group_number,
                    priority="primary",
                )
