"""The two ways out: email through Django's email framework (SMTP in production, the console in `make run`) and
SMS through a provider backend (Twilio's REST API through the official `twilio` library, or the console).

Each send either returns the provider's id for the message or raises Refused (permanent: the address or number
is refused, the recipient has opted out; never retried) or Trouble (transient: no connection, a 4xx SMTP reply,
Twilio's 429 or 5xx; retried with backoff). Neither SMTP nor Twilio's Messages API takes an idempotency key,
so a send is never repeated on our side once it may have reached the provider (see sending.py).
"""

from __future__ import annotations

import smtplib
import sys
import threading
import uuid
from dataclasses import dataclass, field
from email.utils import formataddr, make_msgid, parseaddr
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

if TYPE_CHECKING:
    from twilio.http.http_client import TwilioHttpClient
    from twilio.http.response import Response as TwilioResponse


class Refused(Exception):
    """The provider refused this message for good; `detail` says why, without the address or the text.
    `opted_out`: the recipient told the provider to stop (Twilio's 21610), which we record as their choice."""

    def __init__(self, detail: str, *, opted_out: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.opted_out = opted_out


class Trouble(Exception):
    """The provider could not take the message now; try again later."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unknown(Exception):
    """The connection failed after the message was handed over: it may have arrived. Never sent again by
    itself (no idempotency key to make a second send safe); reception decides."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    from_name: str
    reply_to: str
    unsubscribe_url: str
    ics: bytes | None = None
    ics_method: str = "REQUEST"
    headers: dict[str, str] = field(default_factory=dict)


def sender_address() -> str:
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1] or "no-reply@localhost"


def _from_address(name: str) -> str:
    return formataddr((name, sender_address()))


def send_email(email: Email) -> str:
    """Send one email; its Message-ID is the provider id."""
    message_id = make_msgid(domain=settings.SITE_URL.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or None)
    message = EmailMessage(
        subject=email.subject,
        body=email.text,
        from_email=_from_address(email.from_name),
        to=[email.to],
        reply_to=[email.reply_to] if email.reply_to else None,
        headers={
            "Message-ID": message_id,
            # RFC 8058 one-click unsubscribe: mail apps POST "List-Unsubscribe=One-Click" to the https URL (not
            # on a one-time code someone asked for this minute: there is no list to leave).
            **(
                {
                    "List-Unsubscribe": f"<{email.unsubscribe_url}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                }
                if email.unsubscribe_url
                else {}
            ),
            "Auto-Submitted": "auto-generated",
            **email.headers,
        },
    )
    if email.ics is not None:
        message.attach("appointment.ics", email.ics, f"text/calendar; method={email.ics_method}")
    connection = get_connection(fail_silently=False)
    try:
        connection.open()
    except (smtplib.SMTPException, OSError) as error:
        # Nothing was handed over yet: safe to try again later.
        raise Trouble(f"The mail server could not be reached ({type(error).__name__}).") from error
    try:
        connection.send_messages([message])
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        if all(code >= 500 for code in codes):
            raise Refused(f"The mail server refused the address (SMTP {codes[0]}).") from error
        raise Trouble(f"The mail server deferred the address (SMTP {codes[0]}).") from error
    except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused, smtplib.SMTPHeloError) as error:
        if error.smtp_code >= 500:
            raise Refused(f"The mail server refused the message (SMTP {error.smtp_code}).") from error
        raise Trouble(f"The mail server deferred the message (SMTP {error.smtp_code}).") from error
    except (TimeoutError, smtplib.SMTPException, OSError) as error:
        raise Trouble(f"The mail server could not be reached ({type(error).__name__}).") from error
    return message_id


class SmsBackend(Protocol):
    def send(self, *, to: str, body: str, status_callback: str) -> str: ...


class ConsoleSms:
    """Prints each SMS (the demo's backend: `make run` shows texts in the terminal and on the Messages page)."""

    _lock = threading.Lock()

    def send(self, *, to: str, body: str, status_callback: str) -> str:
        sid = "CONSOLE" + uuid.uuid4().hex[:27].upper()
        with self._lock:
            sys.stdout.write(f"--- SMS to {to} ({sid})\n{body}\n---\n")
            sys.stdout.flush()
        return sid


class TwilioSms:
    """Twilio's Messages API (https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource)
    through the official library. TWILIO_API_BASE points it at another host (the tests' fake Twilio)."""

    def __init__(self, account_sid: str, auth_token: str, base: str) -> None:
        from twilio.rest import Client

        self.client = Client(account_sid, auth_token, http_client=_twilio_http(base))

    def send(self, *, to: str, body: str, status_callback: str) -> str:
        from requests import RequestException
        from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

        sender: dict[str, str] = (
            {"messaging_service_sid": settings.TWILIO_MESSAGING_SERVICE_SID}
            if settings.TWILIO_MESSAGING_SERVICE_SID
            else {"from_": settings.TWILIO_FROM_NUMBER}
        )
        try:
            message = self.client.messages.create(to=to, body=body, status_callback=status_callback, **sender)
        except (TwilioRestException, TwilioServiceException) as error:
            raise _twilio_refusal(int(error.status), error.code) from error
        except (RequestException, TwilioException, OSError) as error:
            if _never_sent(error):
                raise Trouble(f"Twilio could not be reached ({type(error).__name__}).") from error
            # The request may have reached Twilio (no answer in SMS_TIMEOUT_SECONDS, or the connection dropped
            # after it was sent), and the Messages API takes no idempotency key: trying again could text the
            # patient twice. Delivery unknown, for reception to decide; the status callback tells if it went.
            raise Unknown(
                f"Twilio did not answer ({type(error).__name__}): the text may have gone; its delivery report "
                "will show here if it did."
            ) from error
        return str(message.sid)


def _never_sent(error: Exception) -> bool:
    """Whether the request surely never reached Twilio: no connection was made (refused, no such host, a connect
    timeout, a failed TLS handshake)."""
    from requests import ConnectTimeout
    from requests.exceptions import SSLError
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(error, ConnectTimeout | SSLError):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


# Refusals of a text that say something about the patient's number, in reception's words
# (https://www.twilio.com/docs/api/errors/<code>).
TWILIO_OPTED_OUT = 21610
TWILIO_REFUSALS = {
    21211: "Twilio refused the mobile number as invalid (code 21211).",
    21610: "The patient has replied STOP to the clinic's texts; Twilio will not send them any (code 21610).",
    21612: "Twilio cannot reach the mobile number from the clinic's number (code 21612).",
    21614: "The number is not a mobile and cannot receive texts (code 21614).",
    21408: "Texts to the number's country are not enabled on the clinic's Twilio account (code 21408).",
}


def _twilio_refusal(status: int, code: object) -> Refused | Trouble:
    """What Twilio's error answer means for this text. 429 (code 20429, too many requests) and 5xx are "try again";
    so are 401 and 403 (20003: our credentials or account, not this text: it goes once the set-up is mended, and
    gives up after MESSAGE_MAX_ATTEMPTS). Any other 4xx (21211 an invalid number, 21610 the patient replied STOP,
    ...) is final for this text. The detail names the code, never the number or the text (Twilio's own message
    quotes the number)."""
    shown = code if isinstance(code, int) else "none"
    if status in (401, 403):
        return Trouble(f"Twilio refused the clinic's account or credentials (HTTP {status}, code {shown}).")
    if status == 429 or status >= 500:
        return Trouble(f"Twilio answered {status} (code {shown}).")
    if isinstance(code, int) and code in TWILIO_REFUSALS:
        return Refused(TWILIO_REFUSALS[code], opted_out=code == TWILIO_OPTED_OUT)
    return Refused(f"Twilio refused the text (code {shown}).")


def _twilio_http(base: str) -> TwilioHttpClient:
    from twilio.http.http_client import TwilioHttpClient

    class ApiBase(TwilioHttpClient):
        """Twilio's own HTTP client, sending to `base` instead of https://*.twilio.com when set."""

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
            if base and url.startswith("https://api.twilio.com"):
                url = base.rstrip("/") + url[len("https://api.twilio.com") :]
            return super().request(method, url, *args, **kwargs)

    return ApiBase(timeout=settings.SMS_TIMEOUT_SECONDS)


@cache
def _backend(name: str, account_sid: str, auth_token: str, base: str) -> SmsBackend:
    if name == "twilio":
        return TwilioSms(account_sid, auth_token, base)
    return ConsoleSms()


def sms_backend() -> SmsBackend:
    """The configured backend (one per configuration: Twilio's client keeps its connections)."""
    return _backend(
        settings.SMS_BACKEND, settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_API_BASE
    )


def e164(number: str) -> str:
    """A phone number as Twilio wants it (+ country code, digits): "07700 900123" → "+447700900123" with the
    default country code 44; "+44 (0)7700 900123" → "+447700900123"; "+1 212 555 0100" and "0012125550100" →
    "+12125550100". A number that is not one is left for Twilio to refuse (21211)."""
    # "+44 (0)7700 900123": the trunk 0 written in brackets is not dialled after the country code.
    raw = number.strip().replace("(0)", "")
    digits = "".join(c for c in raw if c.isascii() and c.isdigit())
    if raw.startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    if digits.startswith("0"):
        return "+" + settings.SMS_DEFAULT_COUNTRY_CODE + digits[1:]
    return "+" + settings.SMS_DEFAULT_COUNTRY_CODE + digits


def send_sms(*, to: str, body: str, status_callback: str) -> str:
    return sms_backend().send(to=e164(to), body=body, status_callback=status_callback)
