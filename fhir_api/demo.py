"""Demo data of the FHIR API for `manage.py seed_demo` (idempotent): Riverside has an ODS code, a consumer "NHS 111
(demo)" with known credentials (printed by `make run`'s README section) and one appointment it booked, so reception
sees a FHIR booking in the calendar."""

from __future__ import annotations

import contextlib
import datetime as dt

from django.utils import timezone
from oauth2_provider.models import Application

from clinic.models import Clinic, Membership, Role
from fhir_api.models import Consumer
from fhir_api.selectors.slots import free_slots
from fhir_api.services.appointments import Booked, fhir_book
from fhir_api.services.consumers import consumer_create
from patients.models import Patient
from scheduling.services.booking import BookingError
from sessions_setup.models import SlotType

DEMO_CLIENT_ID = "riverside-nhs111-demo"
DEMO_CLIENT_SECRET = "demo-fhir-secret-2026"  # a demo only: real consumers get a generated secret, shown once
ODS = {"riverside": "Y99001"}


def seed_clinic(clinic: Clinic) -> None:
    if clinic.slug not in ODS or Consumer.objects.for_clinic(clinic).exists():
        return
    clinic.ods_code = ODS[clinic.slug]
    clinic.save(update_fields=["ods_code"])
    admin = Membership.objects.for_clinic(clinic).filter(role=Role.ADMIN).select_related("user").first()
    if admin is None:
        return
    types = list(SlotType.objects.for_clinic(clinic).filter(name__in=["Normal", "Telephone", "Book on the day"]))
    credentials = consumer_create(
        clinic=clinic,
        actor=admin.user,
        name="NHS 111 (demo)",
        organisation_type="urgent-care",
        ods_code="NHS111",
        scopes=["slot.read", "appointment.read", "appointment.write"],
        slot_types=types,
        rate_limit=120,
        client_secret=DEMO_CLIENT_SECRET,
    )
    Application.objects.filter(pk=credentials.consumer.application_id).update(client_id=DEMO_CLIENT_ID)
    now = timezone.now()
    slots = free_slots(
        consumer=credentials.consumer, now=now, first=now + dt.timedelta(days=1), last=now + dt.timedelta(days=8)
    )
    patient = Patient.objects.for_clinic(clinic).filter(is_blocked=False, national_id_kind="nhs").order_by("id").first()
    if not slots or patient is None:
        return
    with contextlib.suppress(BookingError):  # the demo rota may have changed: the consumer alone is enough
        fhir_book(
            consumer=credentials.consumer,
            slot=slots[len(slots) // 2],
            patient=patient,
            said=Booked(
                description="Earache and fever for two days (NHS 111 assessment)",
                organisation="NHS 111 South West",
                organisation_ods="NHS111",
                requesting_practitioner="Call handler 4471",
            ),
        )
