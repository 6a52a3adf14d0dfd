"""A demo rota for `manage.py seed_demo`: six weeks of sessions from this week's Monday (idempotent)."""

from __future__ import annotations

import datetime as dt

from clinic.models import Clinic, Location, Membership, Practitioner, Role
from scheduling.models import Allocation
from scheduling.services import AllocationRequest, allocation_create
from sessions_setup.models import SessionTemplate

WEEKS = 6
# template -> (practitioner name or None for the whole clinic, location name, start, weekdays, every N weeks)
ROTA: dict[str, dict[str, tuple[str | None, str, dt.time, tuple[int, ...], int]]] = {
    "riverside": {
        "Dr Smith AM": ("Dr Sarah Smith", "Riverside Surgery", dt.time(8, 30), (1, 2, 3, 4, 5), 1),
        "Dr Patel PM": ("Dr Omar Patel", "Riverside Surgery", dt.time(14, 0), (1, 2, 3, 4), 1),
        "Nurses PM surgery": ("Nurse Jane Okafor", "Hillside Branch", dt.time(13, 30), (2, 4), 1),
        "Flu & COVID clinic": (None, "Hillside Branch", dt.time(9, 0), (6,), 2),
        "Ante-Natal Clinic": ("Nurse Jane Okafor", "Riverside Surgery", dt.time(10, 0), (3,), 1),
    },
    "lakeview": {
        "Lopez AM": ("Dr Maria Lopez", "Lakeview Center", dt.time(9, 0), (1, 2, 3, 4, 5), 1),
        "Chen Brooklyn": ("James Chen, LCSW", "Brooklyn Office", dt.time(10, 0), (2, 4), 1),
        "Evening group": ("Dr Maria Lopez", "Lakeview Center", dt.time(18, 0), (3,), 1),
    },
}


def seed_clinic(clinic: Clinic) -> None:
    plan = ROTA.get(clinic.slug, {})
    if not plan or Allocation.objects.for_clinic(clinic).exists():
        return  # the rota is seeded once; later runs keep what is there
    admin = Membership.objects.for_clinic(clinic).filter(role=Role.ADMIN).select_related("user").first()
    actor = admin.user if admin else None
    today = clinic.today()
    monday = today - dt.timedelta(days=today.weekday())
    for template_name, (practitioner_name, location_name, start, weekdays, every) in plan.items():
        template = SessionTemplate.objects.for_clinic(clinic).get(name=template_name)
        practitioner = (
            Practitioner.objects.for_clinic(clinic).get(name=practitioner_name) if practitioner_name else None
        )
        location = Location.objects.for_clinic(clinic).get(name=location_name)
        request = AllocationRequest(
            template,
            practitioner,
            location,
            start,
            monday,
            monday + dt.timedelta(weeks=WEEKS, days=-1),
            weekdays,
            every,
        )
        allocation_create(clinic=clinic, actor=actor, request=request)
