"""A real Celery worker on Redis sends the break-glass alerts the web recorded, to a real SMTP server (aiosmtpd in this
process): the sweep run twice and the send task run twice still email each privacy officer once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from clinic.models import Role
from privacy.models import BREAK_GLASS_MINUTES, AlertStatus, BreakGlass, BreakGlassAlert
from tests.celery_worker import celery_worker, eventually, produce, worker_database_url
from tests.factories import MembershipFactory, PatientFactory
from tests.smtp_server import smtp_environment, smtp_fixture  # noqa: F401 (the smtp fixture)

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_a_worker_sends_each_alert_once_whatever_runs_twice(smtp, clinic_a):
    officers = [MembershipFactory(clinic=clinic_a, role=Role.ADMIN, perm_privacy_officer=True) for _ in range(2)]
    member = MembershipFactory(clinic=clinic_a, role=Role.RECEPTION)
    patient = PatientFactory(clinic=clinic_a, is_blocked=True, blocked_reason="VIP")
    now = timezone.now()
    # What the web's transaction left when its nudge was lost: the use and one waiting alert per officer.
    use = BreakGlass.objects.create(
        clinic=clinic_a,
        membership=member,
        patient=patient,
        category="clinical_emergency",
        reason="Collapsed in the waiting room, allergies needed.",
        started_at=now,
        expires_at=now + dt.timedelta(minutes=BREAK_GLASS_MINUTES),
    )
    alerts = [BreakGlassAlert.objects.create(clinic=clinic_a, use=use, officer=o, due_at=now) for o in officers]
    ids = [alert.pk for alert in alerts]
    with celery_worker(worker_database_url(), **smtp_environment(smtp)) as (queue, env, _):
        produce(
            env,
            "from privacy.tasks import break_glass_alerts_sweep, send_break_glass_alerts\n"
            f"sweeps = [break_glass_alerts_sweep.apply_async(queue='{queue}') for _ in range(2)]\n"
            f"sends = [send_break_glass_alerts.apply_async(args=[{ids}], queue='{queue}') for _ in range(2)]\n"
            "print([r.get(timeout=60) for r in sweeps + sends])\n",
        )
        eventually(
            lambda: set(BreakGlassAlert.objects.values_list("status", flat=True)) == {AlertStatus.SENT},
            "send every alert",
        )
    recipients = sorted(r for received in smtp.received for r in received.rcpt_tos)
    assert recipients == sorted(o.user.email for o in officers)
