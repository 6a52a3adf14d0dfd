"""Fixtures of the online booking tests: a clinic with online booking on, an online slot type, a practitioner
with online availability and a session of free times next week."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from online.models import OnlineSettings
from scheduling.models import Availability
from tests.conftest import tasks_in_process
from tests.factories import LocationFactory, PractitionerFactory, SlotTypeFactory, allocate_session

LONDON = ZoneInfo("Europe/London")


@pytest.fixture(autouse=True)
def sends_in_this_process() -> Iterator[None]:
    with tasks_in_process():
        yield


@pytest.fixture(autouse=True)
def own_rate_limits(settings) -> None:
    """Each test counts its tries afresh: a cache key prefix of its own (the Redis cache is shared by the test
    processes, so it is never cleared)."""
    default = settings.CACHES["default"]
    settings.CACHES = {**settings.CACHES, "default": {**default, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


def every_day(start: str = "08:00", end: str = "18:00") -> dict[str, list[list[str]]]:
    return {str(d): [[start, end]] for d in range(1, 8)}


def next_week_day(clinic) -> dt.date:
    """A day a week ahead on the clinic's clock (never inside the notice or the change window)."""
    return timezone.now().astimezone(ZoneInfo(clinic.time_zone)).date() + dt.timedelta(days=7)


@pytest.fixture
def online_on(clinic_a) -> OnlineSettings:
    return OnlineSettings.objects.create(
        clinic=clinic_a, enabled=True, phone="01632 960000", intro="Book a routine appointment here."
    )


@pytest.fixture
def consult(clinic_a):
    return SlotTypeFactory(
        clinic=clinic_a,
        name="Routine consult",
        online_bookable=True,
        default_length_minutes=15,
        online_description="A 15-minute appointment with a GP.",
    )


@pytest.fixture
def surgery(clinic_a):
    return LocationFactory(clinic=clinic_a, name="High Street Surgery", time_zone="Europe/London")


@pytest.fixture
def gp(clinic_a, surgery):
    practitioner = PractitionerFactory(clinic=clinic_a, name="Dr Online", default_location=surgery)
    Availability.objects.create(
        clinic=clinic_a, practitioner=practitioner, time_zone="Europe/London", weekly=every_day()
    )
    return practitioner


@pytest.fixture
def session(clinic_a, gp, consult, surgery):
    """Four 15-minute times from 10:00, a week ahead."""
    return allocate_session(
        clinic_a, practitioner=gp, location=surgery, day=next_week_day(clinic_a), start=dt.time(10),
        slot_types=[consult] * 4,
    )  # fmt: skip


CODE = re.compile(r"Your code is (\d{6})")


def last_code() -> str:
    found = CODE.search(str(mail.outbox[-1].body))
    assert found, mail.outbox[-1].body
    return found.group(1)


def details(**more: str) -> dict[str, str]:
    return {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": "1985-12-10",
        "email": "ada@example.org",
        "mobile": "07700 900123",
        "reason": "Knee pain",
        "website": "",
        **more,
    }


def ask_for_code(client: Client, clinic, slot_type, slot, **more: str):
    """Post the details form for a slot; the response (a redirect to the code page when all is well)."""
    url = reverse("online:details", args=[clinic.slug, slot_type.public_id, slot.public_id])
    return client.post(url, details(**more))


def book_online(client: Client, clinic, slot_type, slot, **more: str):
    """The whole public flow for one slot: details, the code from the email, confirm. The final response."""
    response = ask_for_code(client, clinic, slot_type, slot, **more)
    assert response.status_code == 302, response.content.decode()[:2000]
    return client.post(response["Location"], {"code": last_code()}, follow=True)


def pending_check(clinic, slot_type, slot, *, first_name: str, email: str, date_of_birth: str = "1990-01-01"):
    """An email check as the details form leaves it (its code known to the test): (token, code)."""
    import secrets

    from online.models import EmailCheck
    from online.services import _code_hash

    token, code = secrets.token_urlsafe(24), f"{secrets.randbelow(1_000_000):06d}"
    EmailCheck.objects.create(
        clinic=clinic,
        token=token,
        code_hash=_code_hash(token, code),
        email=email,
        details={
            **details(first_name=first_name, email=email, date_of_birth=date_of_birth),
            "slot": str(slot.public_id),
            "slot_type": str(slot_type.public_id),
        },
        expires_at=timezone.now() + dt.timedelta(minutes=15),
    )
    return token, code
