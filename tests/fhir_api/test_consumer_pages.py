"""The admins' FHIR API consumer pages: the list (with its empty state), adding one (its client id and secret shown
once), the form's errors, editing, rotating and revoking (confirmed first); receptionists refused, another clinic's
consumers not found, and every action audited."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, Application

from clinic.models import AuditEvent
from fhir_api.models import Consumer
from fhir_api.services.consumers import Credentials
from tests.factories import SlotTypeFactory
from tests.fhir_api.conftest import SECRET, make_consumer, token_for

pytestmark = pytest.mark.django_db

EMPTY = "No consumer may call the FHIR API yet."


def form_data(*kinds, **more: Any) -> dict[str, Any]:
    return {
        "name": "Out of hours",
        "organisation_type": "urgent-care",
        "ods_code": "y01234",
        "scopes": ["slot.read", "appointment.read"],
        "slot_types": [kind.pk for kind in kinds],
        "rate_limit": "60",
        **more,
    }


def shown(response, label: str) -> str:
    """The value the credentials page shows under `label`."""
    found = re.search(rf"<dt>{label}</dt><dd><code>([^<]+)</code>", response.content.decode())
    assert found, f"no {label} on the page"
    return html.unescape(found.group(1))


def state() -> tuple[Any, ...]:
    """What a refused or confirming request must leave as it was."""
    return (
        list(Consumer.objects.order_by("pk").values_list("name", "scopes", "rate_limit", "revoked_at", "ods_code")),
        list(Application.objects.order_by("pk").values_list("client_id", "client_secret")),
        AccessToken.objects.count(),
        AuditEvent.objects.count(),
    )


def actions() -> list[tuple[str, int | None]]:
    return list(
        AuditEvent.objects.filter(action__startswith="fhir.consumer.")
        .order_by("created_at", "id")
        .values_list("action", "actor_id")
    )


def test_the_list_has_an_empty_state_then_the_consumers(admin_client_a, practice, admin_a, consult):
    empty = admin_client_a.get("/clinic/fhir/")
    assert empty.status_code == 200
    assert EMPTY in empty.content.decode()
    made = make_consumer(practice, admin_a, types=[consult], name="NHS 111 North")
    listed = admin_client_a.get("/clinic/fhir/").content.decode()
    assert EMPTY not in listed
    assert "NHS 111 North" in listed and "GP consultation" in listed
    assert made.client_id[:10] in listed
    assert SECRET not in listed


def test_adding_shows_the_credentials_once(client, admin_client_a, admin_a, practice, consult):
    response = admin_client_a.post("/clinic/fhir/add/", form_data(consult))
    assert response.status_code == 200, response.content
    consumer = Consumer.objects.get()
    assert (consumer.clinic, consumer.name, consumer.ods_code, consumer.rate_limit) == (
        practice,
        "Out of hours",
        "Y01234",
        60,
    )
    assert consumer.scope_list == ["slot.read", "appointment.read"]
    assert list(consumer.slot_types.all()) == [consult]
    client_id, secret = shown(response, "Client ID"), shown(response, "Client secret")
    assert client_id == consumer.application.client_id
    assert consumer.application.client_secret != secret

    token = token_for(client, Credentials(consumer, client_id, secret))
    assert token.status_code == 200, token.content
    assert token.json()["scope"] == "slot.read appointment.read"

    for page in ("/clinic/fhir/", f"/clinic/fhir/{consumer.public_id}/"):
        later = admin_client_a.get(page)
        assert later.status_code == 200
        assert secret not in later.content.decode()
    assert actions() == [("fhir.consumer.created", admin_a.user.pk)]
    assert secret not in str(AuditEvent.objects.values_list("detail", flat=True)[0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scopes": []}, "Choose at least one scope."),
        ({"slot_types": []}, "Choose at least one slot type."),
        ({"name": "nhs 111"}, "A consumer with this name already exists in this clinic."),
        ({"ods_code": "A12-34"}, "Letters and digits only"),
        ({"scopes": ["everything"]}, "Select a valid choice"),
        ({"rate_limit": "0"}, "greater than or equal to 1"),
    ],
)
def test_form_errors_are_shown_and_write_nothing(admin_client_a, practice, admin_a, consult, change, message):
    make_consumer(practice, admin_a, types=[consult])  # "NHS 111"
    before = state()
    response = admin_client_a.post("/clinic/fhir/add/", form_data(consult, **change))
    assert response.status_code == 400
    assert message in html.unescape(response.content.decode())
    assert "Client secret" not in response.content.decode()
    assert state() == before


def test_another_clinics_slot_type_is_not_a_choice(admin_client_a, clinic_b, consult):
    theirs = SlotTypeFactory(clinic=clinic_b, name="Their type")
    before = state()
    response = admin_client_a.post("/clinic/fhir/add/", form_data(consult, slot_types=[consult.pk, theirs.pk]))
    assert response.status_code == 400
    assert "Select a valid choice" in html.unescape(response.content.decode())
    assert state() == before


def test_editing_saves(admin_client_a, admin_a, practice, consult, credentials):
    triage = SlotTypeFactory(clinic=practice, name="Nurse triage")
    page = admin_client_a.get(f"/clinic/fhir/{credentials.consumer.public_id}/")
    assert page.status_code == 200 and credentials.client_id in page.content.decode()
    response = admin_client_a.post(
        f"/clinic/fhir/{credentials.consumer.public_id}/",
        form_data(triage, name="NHS 111 (North)", scopes=["slot.read"], rate_limit="30", ods_code="nhs111n"),
    )
    assert response.status_code == 302 and response["Location"] == "/clinic/fhir/"
    consumer = Consumer.objects.get()
    assert (consumer.name, consumer.scopes, consumer.rate_limit, consumer.ods_code) == (
        "NHS 111 (North)",
        "slot.read",
        30,
        "NHS111N",
    )
    assert list(consumer.slot_types.all()) == [triage]
    assert actions()[-1] == ("fhir.consumer.changed", admin_a.user.pk)
    # Its own name is not a duplicate of itself.
    again = admin_client_a.post(
        f"/clinic/fhir/{consumer.public_id}/", form_data(triage, name="NHS 111 (North)", scopes=["slot.read"])
    )
    assert again.status_code == 302


def test_rotating_asks_first_then_makes_a_new_secret(client, admin_client_a, admin_a, credentials):
    address = f"/clinic/fhir/{credentials.consumer.public_id}/rotate/"
    old_token = token_for(client, credentials).json()["access_token"]
    before = state()
    confirm = admin_client_a.get(address)
    assert confirm.status_code == 200
    assert "Make a new secret" in confirm.content.decode()
    assert state() == before
    assert token_for(client, credentials).status_code == 200  # the old secret still works

    response = admin_client_a.post(address)
    assert response.status_code == 200
    fresh = Credentials(credentials.consumer, shown(response, "Client ID"), shown(response, "Client secret"))
    assert fresh.client_id == credentials.client_id and fresh.client_secret != credentials.client_secret
    assert Application.objects.get(client_id=fresh.client_id).client_secret != fresh.client_secret  # hashed
    assert token_for(client, credentials).status_code == 401
    assert token_for(client, fresh).status_code == 200
    stale = Client().get("/fhir/metadata")  # open to all; the old token is refused elsewhere
    assert stale.status_code == 200
    refused = Client().get(
        f"/fhir/Organization/{credentials.consumer.clinic.public_id}", HTTP_AUTHORIZATION=f"Bearer {old_token}"
    )
    assert refused.status_code == 401
    assert actions()[-1] == ("fhir.consumer.rotated", admin_a.user.pk)
    assert (
        fresh.client_secret
        not in admin_client_a.get(f"/clinic/fhir/{credentials.consumer.public_id}/").content.decode()
    )


def test_revoking_asks_first_then_ends_access(client, admin_client_a, admin_a, credentials):
    address = f"/clinic/fhir/{credentials.consumer.public_id}/revoke/"
    before = state()
    confirm = admin_client_a.get(address)
    assert confirm.status_code == 200
    assert "Revoke access" in confirm.content.decode()
    assert state() == before

    response = admin_client_a.post(address)
    assert response.status_code == 302 and response["Location"] == "/clinic/fhir/"
    consumer = Consumer.objects.get()
    assert consumer.revoked_at is not None
    assert token_for(client, credentials).status_code == 401
    assert actions()[-1] == ("fhir.consumer.revoked", admin_a.user.pk)
    # A revoked consumer gets no new secret.
    rotated = admin_client_a.post(f"/clinic/fhir/{consumer.public_id}/rotate/")
    assert rotated.status_code == 302
    assert token_for(client, credentials).status_code == 401
    assert actions()[-1] == ("fhir.consumer.revoked", admin_a.user.pk)


def test_a_receptionist_is_refused(reception_client_a, credentials, consult):
    before = state()
    pages = [
        "/clinic/fhir/",
        "/clinic/fhir/add/",
        f"/clinic/fhir/{credentials.consumer.public_id}/",
        f"/clinic/fhir/{credentials.consumer.public_id}/rotate/",
        f"/clinic/fhir/{credentials.consumer.public_id}/revoke/",
    ]
    for page in pages:
        assert reception_client_a.get(page).status_code == 403, page
        assert reception_client_a.post(page, form_data(consult, name="Sneaky")).status_code in (403, 405), page
    assert state() == before


def test_another_clinics_consumer_is_not_found(outsider_client, outsider_b, clinic_b, credentials):
    theirs = SlotTypeFactory(clinic=clinic_b, name="B type")
    before = state()
    consumer = credentials.consumer.public_id
    for page in (f"/clinic/fhir/{consumer}/", f"/clinic/fhir/{consumer}/rotate/", f"/clinic/fhir/{consumer}/revoke/"):
        assert outsider_client.get(page).status_code == 404, page
        assert outsider_client.post(page, form_data(theirs, name="Taken over")).status_code == 404, page
    assert state() == before
    assert EMPTY in outsider_client.get("/clinic/fhir/").content.decode()


def test_every_action_is_audited(admin_client_a, admin_a, practice, consult):
    admin_client_a.post("/clinic/fhir/add/", form_data(consult))
    consumer = Consumer.objects.get()
    admin_client_a.post(f"/clinic/fhir/{consumer.public_id}/", form_data(consult, name="Renamed"))
    admin_client_a.post(f"/clinic/fhir/{consumer.public_id}/rotate/")
    admin_client_a.post(f"/clinic/fhir/{consumer.public_id}/revoke/")
    rows = list(AuditEvent.objects.filter(action__startswith="fhir.consumer.").order_by("created_at", "id"))
    assert [(row.action, row.actor_id, row.clinic_id) for row in rows] == [
        (action, admin_a.user.pk, practice.pk)
        for action in (
            "fhir.consumer.created",
            "fhir.consumer.changed",
            "fhir.consumer.rotated",
            "fhir.consumer.revoked",
        )
    ]
    assert {(row.object_type, row.object_id) for row in rows} == {("fhir_api.consumer", str(consumer.public_id))}
    assert rows[1].detail["scopes_before"] == "slot.read appointment.read"
