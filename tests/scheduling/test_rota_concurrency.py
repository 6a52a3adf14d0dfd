"""Two admins allocating clashing sessions for one practitioner at the same moment: one wins."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection

from scheduling.models import Session
from scheduling.services.rota import AllocationClash, AllocationRequest, allocation_create
from tests.factories import LocationFactory, PractitionerFactory, SlotTypeFactory, template_with_slots


@pytest.mark.django_db(transaction=True)
def test_concurrent_clashing_allocations_never_both_succeed(clinic_a, admin_a):
    slot_type = SlotTypeFactory(clinic=clinic_a)
    location = LocationFactory(clinic=clinic_a)
    practitioner = PractitionerFactory(clinic=clinic_a, default_location=location)
    templates = [template_with_slots(clinic_a, [slot_type] * 12, name=f"AM {i}") for i in range(4)]
    first = dt.date(2027, 9, 6)
    barrier = threading.Barrier(len(templates))
    outcomes: list[str] = []

    def allocate(template):
        try:
            barrier.wait(timeout=10)
            allocation_create(
                clinic=clinic_a,
                actor=admin_a.user,
                request=AllocationRequest(
                    template, practitioner, location, dt.time(9), first, first + dt.timedelta(days=27), (1, 3, 5), 1
                ),
            )
            outcomes.append("allocated")
        except AllocationClash:
            outcomes.append("clash")
        finally:
            connection.close()

    threads = [threading.Thread(target=allocate, args=(t,)) for t in templates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["allocated", "clash", "clash", "clash"]
    sessions = list(Session.objects.for_clinic(clinic_a).order_by("starts_at"))
    assert len(sessions) == 12
    assert all(a.ends_at <= b.starts_at for a, b in zip(sessions, sessions[1:], strict=False))
