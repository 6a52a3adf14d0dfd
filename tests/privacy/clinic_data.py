"""A clinic with rows in most tables (made through factories and the apps' services), and the secret values its
rows hold, for the clinic export's tests."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from django.utils import timezone

from calendar_sync.crypto import seal, token_hash
from calendar_sync.feed.subscriptions import feed_token, subscription_get_or_create
from calendar_sync.models import GoogleCalendar, GoogleChannel, GoogleConnection
from clinic.models import Clinic, Role
from clinic.services import audit_record
from fhir_api.services.consumers import consumer_create
from notifications.models import Message
from online.models import EmailCheck
from patients.models import Coverage
from tests.factories import (
    MembershipFactory,
    OtherEventFactory,
    PatientFactory,
    PractitionerFactory,
    SlotTypeFactory,
    UserFactory,
    allocate_session,
    book,
)


@dataclass
class ClinicData:
    clinic: Clinic
    tag: str
    secrets: list[str] = field(default_factory=list)  # values that must appear in no export
    words: list[str] = field(default_factory=list)  # this clinic's own words (names), for cross-clinic searches


def clinic_with_data(clinic, tag, *, patients=3):
    """Members, a practitioner with a feed and a Google connection, a session with bookings, patients with
    coverage, an event, a message, an online email check, a FHIR consumer and audit events: each named with `tag`."""
    data = ClinicData(clinic, tag)
    admin = MembershipFactory(clinic=clinic, role=Role.ADMIN, user=UserFactory(last_name=f"Admin{tag}"))
    user = UserFactory(last_name=f"Doctor{tag}")
    MembershipFactory(clinic=clinic, role=Role.CLINICIAN, user=user)
    practitioner = PractitionerFactory(clinic=clinic, user=user, name=f"Dr {tag}")
    data.secrets += [admin.user.password, user.password]
    data.words += [f"Admin{tag}", f"Doctor{tag}", f"Dr {tag}"]

    slot_type = SlotTypeFactory(clinic=clinic, name=f"Visit {tag}")
    session = allocate_session(clinic, practitioner=practitioner, day=dt.date(2027, 6, 7), slot_types=[slot_type] * 3)
    people = [
        PatientFactory(clinic=clinic, first_name=f"Pat{tag}", last_name=f"Person{tag}{n}") for n in range(patients)
    ]
    data.words += [person.last_name for person in people]
    for slot, person in zip(session.slots.order_by("position"), people, strict=False):
        book(slot, person)
    Coverage.objects.create(clinic=clinic, patient=people[0], payer=f"Payer{tag}", plan_name="Plan", member_id="M1")
    OtherEventFactory(clinic=clinic, practitioner=practitioner, title=f"Lunch{tag}")
    now = timezone.now()
    Message.objects.create(
        clinic=clinic, patient=people[0], ref=f"m-{tag}", kind="confirmation", channel="email", status="sent",
        due_at=now, created_at=now, body=f"Hello Pat{tag}",
    )  # fmt: skip

    # Secrets: the feed's token, Google's OAuth tokens and a channel token, an emailed code, a client secret.
    subscription = subscription_get_or_create(clinic=clinic, practitioner=practitioner)
    data.secrets += [feed_token(subscription), subscription.token_hash, subscription.token_salt]
    refresh, access, channel = (f"{kind}-{tag}-{secrets.token_hex(8)}" for kind in ("refresh", "access", "channel"))
    connection = GoogleConnection.objects.create(
        clinic=clinic, practitioner=practitioner, email=f"doctor-{tag}@example.org",
        refresh_token=seal(refresh), access_token=seal(access),
    )  # fmt: skip
    calendar = GoogleCalendar.objects.create(clinic=clinic, connection=connection, calendar_id=f"cal-{tag}")
    GoogleChannel.objects.create(
        clinic=clinic, calendar=calendar, channel_id=f"ch-{tag}", resource_id="r", token_hash=token_hash(channel),
        expires_at=now + dt.timedelta(days=1),
    )  # fmt: skip
    data.secrets += [refresh, access, connection.refresh_token, connection.access_token, channel, token_hash(channel)]
    check_token, code_hash = secrets.token_urlsafe(24), secrets.token_hex(32)
    EmailCheck.objects.create(
        clinic=clinic, token=check_token, code_hash=code_hash, email=f"online-{tag}@example.org",
        expires_at=now + dt.timedelta(hours=1),
    )  # fmt: skip
    data.secrets += [check_token, code_hash]
    credentials = consumer_create(
        clinic=clinic, actor=admin.user, name=f"Consumer {tag}", organisation_type="urgent-care", ods_code="",
        scopes=["slot.read"], slot_types=[slot_type], rate_limit=60,
    )  # fmt: skip
    credentials.consumer.application.refresh_from_db()
    data.secrets += [credentials.client_secret, credentials.consumer.application.client_secret]
    data.words.append(f"Consumer {tag}")
    audit_record(clinic=clinic, actor=admin.user, action="test.seen", detail={"tag": tag})
    return data
