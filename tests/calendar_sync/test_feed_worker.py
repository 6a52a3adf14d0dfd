"""A real Celery worker on Redis builds a practitioner's feed from the database the web process wrote."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse

from calendar_sync import services
from calendar_sync.feed import build, subscriptions
from calendar_sync.models import FeedDocument
from patients.display import IdentifierMode
from tests.celery_worker import celery_worker, produce, worker_database_url
from tests.factories import MembershipFactory, PatientFactory, PractitionerFactory, SlotTypeFactory, allocate_rota, book


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_worker_builds_the_feed_and_the_view_serves_it_without_building(clinic_a):
    therapist = PractitionerFactory(clinic=clinic_a, name="Dr Worker")
    kind = SlotTypeFactory(clinic=clinic_a, name="Therapy 50")
    day = dt.date.today() + dt.timedelta(days=14)
    allocate_rota(clinic_a, therapist, kind, day, day, weekdays=(), start=dt.time(10))
    appointment = book(
        therapist.sessions.get().slots.get(), PatientFactory(clinic=clinic_a, first_name="Ida", last_name="Berg")
    )
    admin = MembershipFactory(clinic=clinic_a)
    subscription = subscriptions.subscription_get_or_create(clinic=clinic_a, practitioner=therapist)
    services.subscription_save(
        clinic=clinic_a,
        actor=admin.user,
        subscription=subscription,
        enabled=True,
        identifier_mode=IdentifierMode.INITIALS,
    )
    # This process runs tasks eagerly (no REDIS_URL here), so saving built the feed already: start again
    # from no feed at all, for the worker to build.
    FeedDocument.objects.filter(subscription=subscription).delete()
    subscription.refresh_from_db()
    with celery_worker(worker_database_url()) as (queue, env, _):
        etag = produce(
            env,
            "from calendar_sync.tasks import build_feed\n"
            f"print(build_feed.apply_async(args=[{subscription.pk}], queue='{queue}').get(timeout=60))\n",
        )
    document = FeedDocument.objects.get(subscription=subscription)
    assert document.etag == etag and document.built_changes == subscription.changes
    assert f"appointment-{appointment.public_id}".encode() in build.feed_bytes(bytes(document.body))
    response = Client().get(reverse("calendar_sync:feed", args=[subscriptions.feed_token(subscription)]))
    assert response.status_code == 200 and response["ETag"] == etag  # served as the worker stored it
    assert b"IB \xc2\xb7 Therapy 50" in response.content
