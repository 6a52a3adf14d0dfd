"""Texts through Twilio: the official `twilio` library against the local fake (tests/twilio_fake), whose status
callbacks and inbound messages reach our real views on the live server, signed as Twilio signs them.

Booking goes through the booking service; sending through its real path (the eager nudge after commit, or beat's
tick with a given `now`)."""

from __future__ import annotations

import datetime as dt
import logging
import urllib.parse

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications.channels import e164
from notifications.models import (
    Channel,
    Consent,
    ConsentSource,
    ContactPreference,
    Message,
    NotificationSettings,
    Status,
)
from notifications.sending import send_messages, tick
from scheduling.services.booking import BookingRequest, appointment_book
from tests.factories import PatientFactory, PractitionerFactory, allocate_session
from tests.twilio_fake import FakeTwilio

pytestmark = pytest.mark.django_db(transaction=True)

MOBILE = "07700 900123"
E164_MOBILE = "+447700900123"


@pytest.fixture
def clinic(clinic_a):
    # No quiet hours: these tests are about Twilio, whatever the hour they run at.
    NotificationSettings.objects.for_clinic(clinic_a).update(quiet_from=dt.time(0), quiet_until=dt.time(0))
    return clinic_a


@pytest.fixture
def slots(clinic):
    practitioner = PractitionerFactory(clinic=clinic)
    session = allocate_session(clinic, practitioner=practitioner, day=timezone.localdate() + dt.timedelta(days=5))
    return list(session.slots.order_by("starts_at"))


def book(clinic, admin, slot, patient):
    """Reception books: the confirmation is recorded in the booking's transaction and sent after commit."""
    return appointment_book(
        clinic=clinic, actor=admin.user, membership=admin, request=BookingRequest(slot=slot, patient=patient)
    )


def patient_with(clinic, mobile: str = MOBILE):
    return PatientFactory(clinic=clinic, first_name="Nadia", mobile_phone=mobile)


def text_of(patient) -> Message:
    return Message.objects.get(patient=patient, channel=Channel.SMS)


def later_tick(moment: dt.datetime) -> dict[str, int]:
    """Beat's tick at `moment`, its batches sent at once (as a worker would)."""
    return tick(moment, lambda ids: send_messages(ids, moment))


def post_signed(fake: FakeTwilio, url: str, params: dict[str, str], *, token: str | None = None) -> int:
    """A webhook request as Twilio makes it (signed with `token`, the account's by default)."""
    if token is not None:
        signer = FakeTwilio(auth_token=token)
        signature = signer.sign(url, params)
    else:
        signature = fake.sign(url, params)
    return fake._post(url, params, signature=signature).status or 0


def test_e164_formats_numbers_for_twilio(settings):
    settings.SMS_DEFAULT_COUNTRY_CODE = "44"
    assert e164("07700 900123") == "+447700900123"
    assert e164("+44 7700 900123") == "+447700900123"
    assert e164("0044 7700 900123") == "+447700900123"
    assert e164("+1 (212) 555-0100") == "+12125550100"
    # The UK's written trunk prefix: "(0)" is not dialled after the country code.
    assert e164("+44 (0)7700 900123") == "+447700900123"
    assert e164("+44(0)20 7946 0000") == "+442079460000"


def test_a_booking_sends_one_text_through_twilio_and_its_callback_marks_it_delivered(clinic, admin_a, slots, twilio):
    patient = patient_with(clinic)
    book(clinic, admin_a, slots[0], patient)

    assert [(m.to, m.from_) for m in twilio.messages] == [(E164_MOBILE, twilio.number)]
    sent = twilio.messages[0]
    assert sent.sid.startswith("SM") and len(sent.sid) == 34
    assert "Nadia" in sent.body and "is booked for" in sent.body
    text = text_of(patient)
    # The callback URL is ours (SITE_URL) and names the message.
    assert sent.status_callback == settings_site_url() + reverse("notifications:twilio-status") + f"?m={text.public_id}"
    assert text.provider_id == sent.sid
    assert text.recipient == MOBILE
    assert text.attempts == 1

    twilio.wait_for_callbacks()
    assert sent.statuses == ["queued", "sent", "delivered"]
    assert [c.status for c in twilio.callbacks] == [204, 204, 204]
    text.refresh_from_db()
    assert text.status == Status.DELIVERED
    assert text.delivered_at is not None


def settings_site_url() -> str:
    from django.conf import settings

    return str(settings.SITE_URL).rstrip("/")


def test_an_unreachable_phone_fails_with_the_carriers_code_and_never_the_number_or_text(clinic, admin_a, slots, twilio):
    twilio.unreachable(E164_MOBILE, code=30003)
    patient = patient_with(clinic)
    book(clinic, admin_a, slots[0], patient)
    twilio.wait_for_callbacks()

    assert twilio.messages[0].statuses == ["queued", "sent", "undelivered"]
    assert twilio.callbacks[-1].params["ErrorCode"] == "30003"
    text = text_of(patient)
    assert text.status == Status.FAILED
    assert "30003" in text.detail
    for private in (MOBILE, E164_MOBILE, "7700900123", "900123", twilio.messages[0].body, "Nadia"):
        assert private not in text.detail


def test_an_invalid_number_fails_at_once_and_is_not_tried_again(clinic, admin_a, slots, twilio):
    patient = patient_with(clinic, mobile="07700 9001")  # a digit or two short
    book(clinic, admin_a, slots[0], patient)

    assert twilio.messages == []
    assert [status for _, status in twilio.requests] == [400]
    text = text_of(patient)
    assert (text.status, text.attempts) == (Status.FAILED, 1)
    assert "21211" in text.detail
    assert "9001" not in text.detail

    later_tick(timezone.now() + dt.timedelta(hours=1))
    text.refresh_from_db()
    assert (text.status, text.attempts) == (Status.FAILED, 1)
    assert len(twilio.requests) == 1


def test_too_many_requests_waits_then_sends_once_on_the_next_due_tick(clinic, admin_a, slots, twilio, settings):
    twilio.rate_limit_next(1)
    patient = patient_with(clinic)
    before = timezone.now()
    book(clinic, admin_a, slots[0], patient)

    assert [status for _, status in twilio.requests] == [429]
    text = text_of(patient)
    assert (text.status, text.attempts) == (Status.WAITING, 1)
    assert text.detail.startswith("Will try again")
    assert "20429" in text.detail
    assert text.due_at >= before + dt.timedelta(seconds=settings.MESSAGE_RETRY_SECONDS)

    # Not due yet: a tick now sends nothing.
    later_tick(timezone.now())
    assert twilio.messages == []

    later_tick(text.due_at + dt.timedelta(seconds=1))
    later_tick(text.due_at + dt.timedelta(seconds=2))
    assert len(twilio.messages) == 1
    text.refresh_from_db()
    assert text.status in (Status.SENT, Status.DELIVERED)  # the report may already be in
    assert text.attempts == 2
    assert text.provider_id == twilio.messages[0].sid
    twilio.wait_for_callbacks()
    text.refresh_from_db()
    assert text.status == Status.DELIVERED


def test_a_delivery_report_that_overtakes_twilios_answer_is_kept(clinic, admin_a, slots, twilio):
    """Twilio's callbacks come on connections of their own: "delivered" (or "failed") can reach us before the
    answer to the send, when the SID is not yet stored, and the answer must not then undo it."""
    twilio.callbacks_first = True
    patient = patient_with(clinic)
    book(clinic, admin_a, slots[0], patient)
    assert twilio.messages[0].statuses == ["queued", "sent", "delivered"]
    text = text_of(patient)
    assert (text.status, text.provider_id) == (Status.DELIVERED, twilio.messages[0].sid)
    assert text.sent_at is not None and text.delivered_at is not None

    twilio.unreachable("+447700900456", code=30005)
    other = patient_with(clinic, mobile="07700 900456")
    book(clinic, admin_a, slots[1], other)
    text = text_of(other)
    assert (text.status, text.provider_id) == (Status.FAILED, twilio.messages[1].sid)
    assert "30005" in text.detail


def test_a_send_with_no_answer_is_never_repeated_and_its_report_tells_its_fate(
    clinic, admin_a, slots, twilio, settings
):
    """The Messages API takes no idempotency key: a send Twilio may have carried out (it answered too late) is not
    tried again; the delivery report, when it comes, says what happened."""
    settings.SMS_TIMEOUT_SECONDS = 0.5
    twilio.slow_next(1, seconds=2)
    twilio.callback_delay = 3  # the report comes after we gave up waiting
    patient = patient_with(clinic)
    book(clinic, admin_a, slots[0], patient)
    text = text_of(patient)
    assert (text.status, text.attempts) == (Status.UNKNOWN, 1)
    assert "may have gone" in text.detail

    later_tick(timezone.now() + dt.timedelta(hours=2))
    twilio.wait_for_callbacks()
    assert len(twilio.messages) == 1
    text.refresh_from_db()
    assert (text.status, text.attempts, text.provider_id) == (Status.DELIVERED, 1, twilio.messages[0].sid)


def test_twilio_out_of_reach_is_tried_again(clinic, admin_a, slots, twilio, settings):
    """Nothing listening at Twilio's address: the request never left, so trying again is safe."""
    settings.TWILIO_API_BASE = "http://127.0.0.1:9"  # the discard port: connection refused
    patient = patient_with(clinic)
    book(clinic, admin_a, slots[0], patient)
    text = text_of(patient)
    assert (text.status, text.attempts) == (Status.WAITING, 1)
    assert text.detail.startswith("Will try again: Twilio could not be reached")

    settings.TWILIO_API_BASE = twilio.url
    later_tick(text.due_at)
    assert [m.to for m in twilio.messages] == [E164_MOBILE]


def test_a_server_error_at_twilio_is_tried_again(clinic, admin_a, slots, twilio):
    twilio.fail_next(1, status=500)
    patient = patient_with(clinic)
    book(clinic, admin_a, slots[0], patient)
    text = text_of(patient)
    assert (text.status, text.attempts) == (Status.WAITING, 1)
    later_tick(text.due_at)
    assert len(twilio.messages) == 1


def test_stop_texted_in_turns_texts_off_and_start_turns_them_on(clinic, admin_a, slots, twilio):
    patient = patient_with(clinic)

    answer = twilio.patient_texts(E164_MOBILE, "Stop")
    assert answer.status == 200
    assert answer.params["OptOutType"] == "STOP"
    preference = ContactPreference.objects.get(patient=patient)
    assert preference.sms_ok is False
    assert preference.email_ok is True
    consent = Consent.objects.get(patient=patient)
    assert (consent.channel, consent.granted, consent.source) == (Channel.SMS, False, ConsentSource.SMS_STOP)

    book(clinic, admin_a, slots[0], patient)
    text = text_of(patient)
    assert text.status == Status.SKIPPED
    assert text.detail == "The patient does not want texts."
    assert twilio.requests == []

    assert twilio.patient_texts(E164_MOBILE, "START").status == 200
    preference.refresh_from_db()
    assert preference.sms_ok is True
    assert Consent.objects.filter(patient=patient, granted=True, source=ConsentSource.SMS_START).count() == 1

    book(clinic, admin_a, slots[1], patient)
    assert [m.to for m in twilio.messages] == [E164_MOBILE]


def test_a_reply_that_only_begins_with_a_keyword_changes_nothing(clinic, patient_factory_mobile, twilio):
    """Twilio takes a keyword only as the whole message ("Cancel" opts out; "Cancel my appointment, I'm ill"
    does not), and keeps sending to the number: so must we."""
    patient = patient_factory_mobile
    for reply in ("Cancel my appointment please, I'm ill", "Yes I'll be there", "Stop by the desk later?"):
        answer = twilio.patient_texts(E164_MOBILE, reply)
        assert answer.status == 200
        assert "OptOutType" not in answer.params
    assert not ContactPreference.objects.filter(patient=patient, sms_ok=False).exists()
    assert not Consent.objects.filter(patient=patient).exists()
    assert not twilio.opted_out(E164_MOBILE)


@pytest.fixture
def patient_factory_mobile(clinic):
    return patient_with(clinic)


def test_stop_reaches_every_clinic_the_number_belongs_to(clinic, clinic_b, twilio):
    here = patient_with(clinic)
    there = patient_with(clinic_b, mobile="+44 7700 900123")
    elsewhere = patient_with(clinic, mobile="07700 900456")
    twilio.patient_texts(E164_MOBILE, "STOP")
    assert ContactPreference.objects.get(patient=here).sms_ok is False
    assert ContactPreference.objects.get(patient=there).sms_ok is False
    assert not ContactPreference.objects.filter(patient=elsewhere).exists()


def test_a_number_twilio_blocked_without_telling_us_fails_and_is_not_tried_again(clinic, admin_a, slots, twilio):
    twilio.opt_out(E164_MOBILE)  # the patient replied STOP; the webhook to us was lost
    patient = patient_with(clinic)
    book(clinic, admin_a, slots[0], patient)

    assert twilio.messages == []
    text = text_of(patient)
    assert (text.status, text.attempts) == (Status.FAILED, 1)
    assert "21610" in text.detail
    later_tick(timezone.now() + dt.timedelta(hours=2))
    text.refresh_from_db()
    assert (text.status, text.attempts) == (Status.FAILED, 1)
    assert len(twilio.requests) == 1
    # Twilio's refusal is the patient's choice, recorded here too: the next text is "not sent", with the reason,
    # and Twilio is not asked again.
    preference = ContactPreference.objects.get(patient=patient)
    assert preference.sms_ok is False
    assert Consent.objects.get(patient=patient, channel="sms").source == "sms_stop"
    book(clinic, admin_a, slots[1], patient)
    newest = Message.objects.filter(patient=patient, channel="sms").order_by("-id").first()
    assert (newest.status, newest.detail) == (Status.SKIPPED, "The patient does not want texts.")
    assert len(twilio.requests) == 1


def test_wrong_credentials_keep_the_text_waiting_for_the_fix(clinic, admin_a, slots, twilio, settings):
    """A wrong auth token is the clinic's set-up, not the patient's number: the text waits and goes once fixed."""
    settings.TWILIO_AUTH_TOKEN = "not-the-token"
    patient = patient_with(clinic)
    book(clinic, admin_a, slots[0], patient)
    text = text_of(patient)
    assert [status for _, status in twilio.requests] == [401]
    assert text.status == Status.WAITING
    assert "20003" in text.detail

    settings.TWILIO_AUTH_TOKEN = twilio.auth_token
    later_tick(text.due_at)
    assert [m.to for m in twilio.messages] == [E164_MOBILE]


def test_missing_twilio_settings_keep_the_text_waiting_and_it_was_never_sent(clinic, admin_a, slots, twilio, settings):
    """No account SID or token set: Twilio refuses the request (401); nothing was sent, so the text waits for the
    set-up (never "unknown", never "failed")."""
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""
    patient = patient_with(clinic)
    book(clinic, admin_a, slots[0], patient)
    text = text_of(patient)
    assert text.status == Status.WAITING and "credentials" in text.detail
    assert twilio.messages == []

    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = twilio.account_sid, twilio.auth_token
    later_tick(text.due_at)
    assert [m.to for m in twilio.messages] == [E164_MOBILE]


def test_a_webhook_with_a_wrong_signature_is_refused_and_changes_nothing(clinic, admin_a, slots, twilio):
    patient = patient_with(clinic)
    book(clinic, admin_a, slots[0], patient)
    twilio.wait_for_callbacks()
    text = text_of(patient)
    assert text.status == Status.DELIVERED

    assert twilio.patient_texts(E164_MOBILE, "STOP", signature="d3Jvbmc=").status == 403
    assert not ContactPreference.objects.filter(patient=patient).exists()
    assert not Consent.objects.exists()

    status_url = twilio.messages[0].status_callback
    forged = {
        "MessageSid": text.provider_id,
        "SmsSid": text.provider_id,
        "MessageStatus": "undelivered",
        "SmsStatus": "undelivered",
        "ErrorCode": "30005",
        "AccountSid": twilio.account_sid,
        "From": twilio.number,
        "To": E164_MOBILE,
        "ApiVersion": "2010-04-01",
    }
    assert post_signed(twilio, status_url, forged, token="another-accounts-token") == 403
    # The same request with a parameter changed after signing.
    signature = twilio.sign(status_url, {**forged, "MessageStatus": "delivered"})
    assert twilio._post(status_url, forged, signature=signature).status == 403
    text.refresh_from_db()
    assert (text.status, text.detail) == (Status.DELIVERED, "")

    # Correctly signed, it is taken.
    assert post_signed(twilio, status_url, forged) == 204
    text.refresh_from_db()
    assert text.status == Status.FAILED


def test_the_url_twilio_signs_is_site_url_and_the_path(clinic, twilio, live_server, settings):
    """Behind a proxy the request reaches us at another address; Twilio signed the public one (SITE_URL)."""
    patient = patient_with(clinic)
    settings.SITE_URL = "https://clinic.example.org"
    path = reverse("notifications:twilio-inbound")
    twilio.inbound_url = "https://clinic.example.org" + path

    assert twilio.patient_texts(E164_MOBILE, "STOP", via=live_server.url + path).status == 200
    assert ContactPreference.objects.get(patient=patient).sms_ok is False

    # Signed for the address it reached instead of the public one: not from Twilio.
    twilio.inbound_url = live_server.url + path
    assert twilio.patient_texts(E164_MOBILE, "START").status == 403
    assert ContactPreference.objects.get(patient=patient).sms_ok is False


def test_no_log_record_names_the_patients_number_or_the_text(clinic, admin_a, slots, twilio, caplog):
    caplog.set_level(logging.DEBUG)
    twilio.unreachable("+447700900456", code=30005)
    twilio.rate_limit_next(1)
    patient = patient_with(clinic)
    other = patient_with(clinic, mobile="07700 900456")
    invalid = patient_with(clinic, mobile="07700 9001")
    book(clinic, admin_a, slots[0], patient)  # 429: waits
    book(clinic, admin_a, slots[1], other)  # undelivered
    book(clinic, admin_a, slots[2], invalid)  # 21211
    later_tick(text_of(patient).due_at)
    twilio.patient_texts(E164_MOBILE, "STOP")
    twilio.patient_texts(E164_MOBILE, "Cancel my appointment please")
    twilio.wait_for_callbacks()

    assert len(twilio.messages) == 2
    assert {text_of(p).status for p in (patient, other, invalid)} == {Status.DELIVERED, Status.FAILED}
    private = {
        MOBILE,
        E164_MOBILE,
        "7700900123",
        urllib.parse.quote(E164_MOBILE),
        "07700 900456",
        "+447700900456",
        "7700900456",
        "07700 9001",
        "+4477009001",
        "Cancel my appointment",
        *(m.body for m in twilio.messages),
    }
    assert caplog.records, "nothing was logged: the test would prove nothing"
    for record in caplog.records:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for secret in private:
            assert secret not in text, (record.name, text)
