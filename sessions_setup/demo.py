"""Demo slot types and session templates for `manage.py seed_demo` (idempotent)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from clinic.models import Clinic, Location
from sessions_setup.builder import BuilderSlot, extend, pattern_of
from sessions_setup.models import SessionTemplate, SlotType
from sessions_setup.services import template_slots_replace

GP_SLOT_TYPES: list[dict[str, Any]] = [
    {"name": "Normal", "colour": "blue", "default_length_minutes": 10, "reporting_category": "general"},
    {"name": "Telephone", "colour": "teal", "default_length_minutes": 10, "kind": "telephone",
     "reporting_category": "clinical_triage"},
    {"name": "Book on the day", "colour": "amber", "default_length_minutes": 10, "release_rule": "on_the_day",
     "reporting_category": "acute"},
    {"name": "Online routine", "colour": "sky", "default_length_minutes": 10, "online_bookable": True,
     "release_rule": "days_before", "release_days_before": 14,
     "online_description": "A 10-minute GP appointment for one routine problem."},
    {"name": "Video", "colour": "purple", "default_length_minutes": 15, "kind": "video"},
    {"name": "Home visit", "colour": "brown", "default_length_minutes": 30, "kind": "home_visit",
     "reporting_category": "home_visit"},
    {"name": "Nurse 15", "colour": "green", "default_length_minutes": 15, "reporting_category": "planned_clinic"},
    {"name": "COVID vaccination", "colour": "red", "default_length_minutes": 5, "reporting_category": "covid_vacs"},
    {"name": "Antenatal group", "colour": "lavender", "default_length_minutes": 60, "capacity": 8,
     "reporting_category": "group"},
]  # fmt: skip
BH_SLOT_TYPES: list[dict[str, Any]] = [
    {"name": "Therapy 50", "colour": "navy", "default_length_minutes": 50, "reporting_category": "planned_clinic"},
    {"name": "Intake 60", "colour": "orange", "default_length_minutes": 60, "reporting_category": "planned_clinic"},
    {"name": "Telehealth 50", "colour": "purple", "default_length_minutes": 50, "kind": "video",
     "online_bookable": True, "online_description": "A 50-minute therapy session by video."},
    {"name": "Check-in call", "colour": "teal", "default_length_minutes": 15, "kind": "telephone"},
    {"name": "Group therapy", "colour": "lavender", "default_length_minutes": 90, "capacity": 10,
     "reporting_category": "group"},
]  # fmt: skip

# Released to third parties through the FHIR API (seed 000: the role and the location are then mandatory).
GP_CONNECT: dict[str, Any] = {"gp_connect_bookable": True, "practitioner_role": "gp"}

# name -> (colour, description, pattern of slot type names (None = blank), total slots, extra fields)
GP_TEMPLATES: dict[str, tuple[str, str, list[str | None], int, dict[str, Any]]] = {
    "Dr Smith AM": ("navy", "Routine + on-the-day", ["Normal", "Online routine", "Telephone", "Book on the day"], 24,
                    GP_CONNECT),
    "Dr Patel PM": ("teal", "Telephone first", ["Telephone", "Online routine", "Normal", None], 16, GP_CONNECT),
    "Nurses PM surgery": ("green", "Bloods, dressings, reviews", ["Nurse 15"], 12, {}),
    "Flu & COVID clinic": ("red", "Saturday vaccination clinic", ["COVID vaccination"], 36,
                           {"open_session": True}),
    "Ante-Natal Clinic": ("lavender", "Group antenatal class", ["Antenatal group"], 2,
                          {"session_type": "group"}),
}  # fmt: skip
BH_TEMPLATES: dict[str, tuple[str, str, list[str | None], int, dict[str, Any]]] = {
    "Lopez AM": ("navy", "Individual therapy", ["Therapy 50", None], 6, {}),
    "Chen Brooklyn": ("orange", "Intake then therapy", ["Intake 60", "Therapy 50", "Telehealth 50"], 3, {}),
    "Evening group": ("lavender", "DBT skills group, weekly", ["Group therapy"], 1,
                      {"session_type": "group", "open_session": False}),
}  # fmt: skip

PLAN = {"riverside": (GP_SLOT_TYPES, GP_TEMPLATES), "lakeview": (BH_SLOT_TYPES, BH_TEMPLATES)}


@transaction.atomic
def seed_clinic(clinic: Clinic) -> None:
    if clinic.slug not in PLAN:
        return
    slot_type_specs, template_specs = PLAN[clinic.slug]
    types = {}
    for order, spec in enumerate(slot_type_specs, start=1):
        slot_type, _ = SlotType.objects.for_clinic(clinic).update_or_create(
            clinic=clinic, name=spec["name"], defaults={**spec, "order": order}
        )
        types[slot_type.name] = slot_type
    main = Location.objects.for_clinic(clinic).filter(kind=Location.Kind.MAIN).first()
    for position, (name, (colour, description, pattern_names, total, extra)) in enumerate(
        template_specs.items(), start=1
    ):
        if SessionTemplate.objects.for_clinic(clinic).filter(name=name).exists():
            continue  # keep what a demo user may have edited
        template = SessionTemplate.objects.create(
            clinic=clinic, name=name, colour=colour, description=description, position=position, location=main, **extra
        )
        pattern = tuple(
            BuilderSlot(types[n].pk, types[n].default_length_minutes) if n else BuilderSlot(None, 10)
            for n in pattern_names
        )
        slots = extend(pattern, pattern_of(pattern, range(len(pattern))), total - len(pattern))
        template_slots_replace(clinic=clinic, template=template, slots=slots)
