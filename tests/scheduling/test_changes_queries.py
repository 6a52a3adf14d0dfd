"""A template change's preview reads a fixed number of queries, whatever the number of sessions it changes (the
rota_change_preview benchmark measures the same preview on a year of 5,200 sessions)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from scheduling.models import DisplacedWhy, Session, Slot
from scheduling.services.changes import template_apply_preview
from scheduling.services.rota import AllocationRequest, allocation_create
from sessions_setup.models import TemplateSlot
from tests.factories import (
    LocationFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    book,
    template_with_slots,
)

pytestmark = pytest.mark.django_db
FIRST_MONDAY = dt.date(2027, 3, 1)
WEEKDAYS = (1, 3, 5)  # Monday, Wednesday, Friday: three dates a week
NAMES = itertools.count()

# Exactly what the preview reads, at any number of sessions: the sessions, the template's slots, the sessions' slots,
# their live appointments and live holds, the slot types' names and the displaced appointments named; and, when a
# session grows, its practitioner's other sessions it might then overlap.
PREVIEW_QUERIES = 7
PREVIEW_QUERIES_GROWING = 8


def changed_rota(clinic, admin, dates, change):
    """A six-slot template allocated to one practitioner on ``dates`` dates, the first and fourth slots of each
    session booked, then the template changed (the sessions not yet following it): the fourth slot retyped and the
    fifth made blank, or (``longer``) the fourth retyped and a slot added at the end."""
    routine = SlotTypeFactory(clinic=clinic, name=f"Routine {next(NAMES)}", default_length_minutes=10)
    phone = SlotTypeFactory(clinic=clinic, name=f"Telephone {next(NAMES)}", default_length_minutes=10)
    location = LocationFactory(clinic=clinic, time_zone="Europe/London")
    practitioner = PractitionerFactory(clinic=clinic, default_location=location)
    template = template_with_slots(clinic, [routine] * 6, name=f"Morning {next(NAMES)}")
    last = FIRST_MONDAY + dt.timedelta(weeks=dates // len(WEEKDAYS), days=-3)
    allocation_create(
        clinic=clinic,
        actor=admin.user,
        request=AllocationRequest(template, practitioner, location, dt.time(9), FIRST_MONDAY, last, WEEKDAYS, 1),
    )
    assert Session.objects.filter(template=template).count() == dates
    patient = PatientFactory(clinic=clinic)
    for slot in Slot.objects.filter(session__template=template, position__in=(0, 3)).select_related("session"):
        book(slot, patient)
    slots = TemplateSlot.objects.filter(template=template)
    slots.filter(position=3).update(slot_type=phone)
    if change == "longer":
        TemplateSlot.objects.create(clinic=clinic, template=template, position=6, slot_type=routine, length_minutes=10)
    else:
        slots.filter(position=4).update(slot_type=None)
    return template


@pytest.mark.parametrize(("change", "queries"), [("two slots", PREVIEW_QUERIES), ("longer", PREVIEW_QUERIES_GROWING)])
def test_a_template_changes_preview_reads_as_many_queries_for_3_sessions_as_for_30(
    change, queries, clinic_a, admin_a, django_assert_num_queries
):
    small = changed_rota(clinic_a, admin_a, 3, change)
    large = changed_rota(clinic_a, admin_a, 30, change)

    for template, sessions in ((small, 3), (large, 30)):
        with django_assert_num_queries(queries):
            preview = template_apply_preview(
                clinic=clinic_a, membership=admin_a, template=template, first_date=FIRST_MONDAY
            )
        # Every session changes; the booking in the fourth slot of each is displaced, the first slot's is not.
        assert len(preview.sessions) == sessions
        assert preview.displaced_total == sessions
        assert {row.why for row in preview.displaced} == {DisplacedWhy.RETYPED}
        assert len(preview.displaced) == sessions
