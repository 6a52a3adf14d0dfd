"""Fixtures of the notifications tests: a fake Twilio wired into settings, calling back our live server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.urls import reverse

from tests.conftest import tasks_in_process
from tests.twilio_fake import FakeTwilio


@pytest.fixture(autouse=True)
def sends_in_this_process() -> Iterator[None]:
    """Messages are sent in this process after commit (the eager nudge), even when REDIS_URL names a broker; the
    worker tests (test_never_twice.py) send through real workers of their own."""
    with tasks_in_process():
        yield


@pytest.fixture
def twilio(settings, live_server) -> Iterator[FakeTwilio]:
    """A fake Twilio of the test's own; SMS go to it through the `twilio` library, and its status callbacks and
    inbound messages reach our views on the live server, whose address is SITE_URL (the URL Twilio signs)."""
    with FakeTwilio() as fake:
        settings.SMS_BACKEND = "twilio"
        settings.TWILIO_ACCOUNT_SID = fake.account_sid
        settings.TWILIO_AUTH_TOKEN = fake.auth_token
        settings.TWILIO_FROM_NUMBER = fake.number
        settings.TWILIO_MESSAGING_SERVICE_SID = ""
        settings.TWILIO_API_BASE = fake.url
        settings.SMS_DEFAULT_COUNTRY_CODE = "44"
        settings.SITE_URL = live_server.url
        fake.inbound_url = live_server.url + reverse("notifications:twilio-inbound")
        yield fake
        # Nothing may still be on its way to a database the test is about to empty.
        fake.wait_for_callbacks()
    assert not fake.internal_errors, "the fake Twilio failed internally:\n" + "\n".join(fake.internal_errors)
