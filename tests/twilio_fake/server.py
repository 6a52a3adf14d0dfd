"""A local Twilio: the Programmable Messaging REST API (create a Message), its status callbacks and its inbound-message
webhook, on 127.0.0.1. Driven by the official `twilio` library; see this package's ``__init__`` for what it models.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import queue
import re
import secrets
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from twilio.request_validator import RequestValidator

from tests.local_http import LocalServer

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake-auth-token-" + "7" * 16
DEFAULT_NUMBER = "+447700900999"  # the clinic's Twilio number (Ofcom's drama range: never a real phone)
API_VERSION = "2010-04-01"
MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")

# E.164: "+", a country code that does not start with 0, at most 15 digits in all
# (https://www.twilio.com/docs/glossary/what-e164).
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
# Twilio also refuses a well-formed number that no country's plan allows ("+4477009001", a digit short). The fake
# knows the lengths of national numbers for the two country codes the tests use (the NANP's 10 digits; the UK's
# 9 or 10 after the 44) and takes any other E.164 number.
NATIONAL_DIGITS = {"1": (10,), "44": (9, 10)}

# Twilio's default opt-out keywords, matched against the whole body, case-insensitive
# (https://help.twilio.com/articles/223134027: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT; REVOKE and OPTOUT
# were added for the FCC's 2025 consent rules). A reply of several words ("cancel my appointment") is not one.
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

# Carriers' delivery errors (https://www.twilio.com/docs/api/errors/30003 "Unreachable destination handset",
# 30005 "Unknown destination handset", 30006 "Landline or unreachable carrier", 30008 "Unknown error").
UNREACHABLE = 30003

GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def segments(body: str) -> int:
    """How many SMS segments Twilio bills for `body`: 160 GSM-7 characters in one, 153 a segment when
    concatenated; 70 and 67 once any character needs UCS-2 (https://www.twilio.com/docs/glossary/what-sms-character-limit)."""
    if all(c in GSM7 for c in body):
        single, part = 160, 153
    else:
        single, part = 70, 67
    return 1 if len(body) <= single else -(-len(body) // part)


def valid_number(number: str) -> bool:
    if not E164.match(number):
        return False
    for country, lengths in NATIONAL_DIGITS.items():
        if number[1:].startswith(country):
            return len(number) - 1 - len(country) in lengths
    return True


def _rfc2822(moment: dt.datetime) -> str:
    # Twilio's dates are RFC 2822 with a numeric zone: "Thu, 24 Aug 2023 05:01:45 +0000".
    return format_datetime(moment, usegmt=False)


@dataclass
class SentMessage:
    """A message Twilio accepted."""

    sid: str
    to: str
    from_: str
    body: str
    status_callback: str
    messaging_service_sid: str = ""
    statuses: list[str] = field(default_factory=list)  # the statuses reported to the callback, in order


@dataclass
class Callback:
    """One webhook request the fake made (a status callback or an inbound message)."""

    url: str
    params: dict[str, str]
    status: int | None  # our server's answer; None when it could not be reached


@dataclass
class _Destination:
    final: str  # "delivered", "undelivered" or "failed"
    error_code: int | None = None


class FakeTwilio:
    """One Twilio account with one phone number. Use as a context manager; ``url`` is where the API is."""

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        number: str = DEFAULT_NUMBER,
        messaging_service_sid: str = "",
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.number = number
        self.messaging_service_sid = messaging_service_sid
        # Where Twilio posts messages texted to `number` (the number's "A message comes in" webhook).
        self.inbound_url = ""
        # Post a message's status callbacks before answering its create, as when Twilio's answer is slow on its
        # way back: Twilio's callbacks come on their own connections and may overtake it.
        self.callbacks_first = False
        # Seconds between accepting a message and posting its first status (Twilio's take from moments to minutes).
        self.callback_delay = 0.0
        self.internal_errors: list[str] = []

        self._lock = threading.RLock()
        self._messages: list[SentMessage] = []
        self._callbacks: list[Callback] = []
        self._requests: list[tuple[str, int]] = []  # (path, status) of every API request
        self._destinations: dict[str, _Destination] = {}
        self._opted_out: set[str] = set()
        self._faults: list[int] = []  # the statuses the next API requests are answered with, in order
        self._slow: list[float] = []  # the delays before answering the next API requests
        self._outbox: queue.Queue[tuple[SentMessage, list[str]] | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._server: LocalServer | None = None
        self._threads: list[threading.Thread] = []
        self.url = ""

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = LocalServer(Handler, name="fake-twilio")
        self.url = self._server.url
        self._threads = [threading.Thread(target=self._deliver, name="fake-twilio-callbacks", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._outbox.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what the tests set up ------------------------------------------------------------------------------

    def unreachable(self, number: str, *, code: int = UNREACHABLE, status: str = "undelivered") -> None:
        """Texts to `number` are accepted, then reported `status` ("undelivered" or "failed") with ErrorCode `code`."""
        with self._lock:
            self._destinations[number] = _Destination(status, code)

    def rate_limit_next(self, n: int = 1) -> None:
        """Answer the next `n` API requests 429, code 20429 (https://www.twilio.com/docs/api/errors/20429)."""
        with self._lock:
            self._faults.extend([429] * n)

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next `n` API requests with a server error (code 20500 for 500, 20503 for 503)."""
        with self._lock:
            self._faults.extend([status] * n)

    def slow_next(self, n: int = 1, seconds: float = 1.0) -> None:
        """Carry out the next `n` API requests, then wait `seconds` before answering (a client that gives up
        meanwhile has sent its message all the same)."""
        with self._lock:
            self._slow.extend([seconds] * n)

    def opt_out(self, number: str) -> None:
        """`number` replied STOP and the webhook to us was lost: Twilio blocks it all the same."""
        with self._lock:
            self._opted_out.add(number)

    # --- what the tests read --------------------------------------------------------------------------------

    @property
    def messages(self) -> list[SentMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def callbacks(self) -> list[Callback]:
        with self._lock:
            return list(self._callbacks)

    @property
    def requests(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._requests)

    def opted_out(self, number: str) -> bool:
        with self._lock:
            return number in self._opted_out

    def wait_for_callbacks(self, timeout: float = 10.0) -> None:
        """Wait until every status callback of the messages accepted so far has been posted (and answered)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._pending == 0, timeout=timeout):
                raise TimeoutError(f"{self._pending} status callbacks still undelivered after {timeout} s")

    # --- a patient's phone ----------------------------------------------------------------------------------

    def patient_texts(
        self, from_number: str, body: str, *, signature: str | None = None, via: str | None = None
    ) -> Callback:
        """A patient texts the clinic's number: Twilio posts its inbound-message webhook to ``inbound_url``
        (https://www.twilio.com/docs/messaging/guides/webhook-request), signed, and answers the patient's keywords
        itself. With Advanced Opt-Out the request carries OptOutType (STOP, START or HELP) when the body is one of
        the keywords (https://help.twilio.com/articles/223134027); Twilio then blocks (or unblocks) the number for
        every later message from this sender, whatever our server answers. `signature` replaces the real one; `via`
        is where the request really goes (a proxy in front of ``inbound_url``, the URL Twilio signs)."""
        if not self.inbound_url:
            raise RuntimeError("set fake.inbound_url (the number's messaging webhook) first")
        word = body.strip().rstrip(".!").strip().upper()
        params = {
            "ToCountry": "GB",
            "SmsMessageSid": "SM" + secrets.token_hex(16),
            "NumMedia": "0",
            "SmsSid": "",
            "SmsStatus": "received",
            "Body": body,
            "To": self.number,
            "NumSegments": str(segments(body)),
            "MessageSid": "",
            "AccountSid": self.account_sid,
            "From": from_number,
            "ApiVersion": API_VERSION,
        }
        params["SmsSid"] = params["MessageSid"] = params["SmsMessageSid"]
        with self._lock:
            if word in OPT_OUT_WORDS:
                self._opted_out.add(from_number)
                params["OptOutType"] = "STOP"
            elif word in OPT_IN_WORDS:
                self._opted_out.discard(from_number)
                params["OptOutType"] = "START"
            elif word in HELP_WORDS:
                params["OptOutType"] = "HELP"
        return self._post(self.inbound_url, params, signature=signature, via=via)

    def sign(self, url: str, params: dict[str, str]) -> str:
        """X-Twilio-Signature: base64 HMAC-SHA1, keyed by the auth token, of the full URL followed by each POST
        parameter's name and value, sorted by name (https://www.twilio.com/docs/usage/webhooks/webhooks-security)."""
        return str(RequestValidator(self.auth_token).compute_signature(url, params))

    # --- the API ------------------------------------------------------------------------------------------

    def _authorised(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user, self.account_sid) and secrets.compare_digest(password, self.auth_token)

    def _create(self, account: str, auth: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not self._authorised(auth) or account != self.account_sid:
            # A wrong AccountSid or AuthToken: 401, code 20003 (https://www.twilio.com/docs/api/errors/20003).
            return 401, _error(20003, "Authenticate", 401, detail="Your AccountSid or AuthToken was incorrect.")
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault == 429:
            # Too many requests for the account's concurrency (https://www.twilio.com/docs/api/errors/20429).
            return 429, _error(20429, "Too Many Requests", 429)
        if fault is not None:
            return fault, _error(20500 if fault == 500 else 20503, "An internal server error has occurred", fault)
        to, body = form.get("To", ""), form.get("Body", "")
        service = form.get("MessagingServiceSid", "")
        sender = form.get("From", "")
        if not to:
            return 400, _error(21604, "A 'To' phone number is required.", 400)
        if not sender and not service:
            return 400, _error(21603, "A 'From' phone number is required.", 400)
        if service and service != self.messaging_service_sid:
            return 400, _error(21701, f"The Messaging Service Sid {service} is invalid.", 400)
        if sender and sender != self.number:
            # The From number must be one of the account's SMS-capable numbers.
            return 400, _error(
                21606, f"The From phone number {sender} is not a valid, SMS-capable inbound phone number", 400
            )
        if not body.strip():
            return 400, _error(21602, "Message body is required.", 400)
        if len(body) > 1600:
            return 400, _error(21617, "The concatenated message body exceeds the 1600 character limit.", 400)
        if not valid_number(to):
            # Twilio's message quotes the number: https://www.twilio.com/docs/api/errors/21211.
            return 400, _error(21211, f"Invalid 'To' Phone Number: {to}", 400)
        callback = form.get("StatusCallback", "")
        with self._lock:
            if to in self._opted_out:
                # The recipient replied STOP to this sender: Twilio refuses every later message itself
                # (https://www.twilio.com/docs/api/errors/21610), whether or not our server heard the STOP.
                return 400, _error(21610, "Attempt to send to unsubscribed recipient", 400)
            message = SentMessage(
                sid="SM" + secrets.token_hex(16),
                to=to,
                from_=sender,
                body=body,
                status_callback=callback,
                messaging_service_sid=service,
            )
            self._messages.append(message)
            destination = self._destinations.get(to, _Destination("delivered"))
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        # With a Messaging Service the first status is "accepted" and From is chosen later
        # (https://www.twilio.com/docs/messaging/api/message-resource#message-status-values).
        first = "accepted" if service else "queued"
        statuses = [first, *(["queued"] if service else [])]
        statuses += [destination.final] if destination.final == "failed" else ["sent", destination.final]
        resource = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": _rfc2822(now),
            "date_sent": None,
            "date_updated": _rfc2822(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender or None,
            "messaging_service_sid": service or None,
            "num_media": "0",
            "num_segments": str(segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": first,
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message.sid}/Media.json",
            },
            "to": to,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message.sid}.json",
        }
        if callback and self.callbacks_first:
            self._report(message, statuses)
        elif callback:
            with self._lock:
                self._pending += 1
            self._outbox.put((message, statuses))
        return 201, resource

    # --- webhooks -------------------------------------------------------------------------------------------

    def _deliver(self) -> None:
        """The status callbacks, one message after another, each status in order, after the create answered."""
        while True:
            item = self._outbox.get()
            if item is None:
                return
            message, statuses = item
            try:
                if self.callback_delay:
                    time.sleep(self.callback_delay)
                self._report(message, statuses)
            except Exception:
                self.internal_errors.append(traceback.format_exc())
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _report(self, message: SentMessage, statuses: list[str]) -> None:
        """Post each status of `message` to its StatusCallback, in order (https://www.twilio.com/docs/messaging/
        guides/track-outbound-message-status: MessageStatus and its older name SmsStatus, ErrorCode on failure)."""
        destination = self._destinations.get(message.to)
        for status in statuses:
            params = {
                "SmsSid": message.sid,
                "SmsStatus": status,
                "MessageStatus": status,
                "To": message.to,
                "MessageSid": message.sid,
                "AccountSid": self.account_sid,
                "From": message.from_ or self.number,
                "ApiVersion": API_VERSION,
            }
            if message.messaging_service_sid:
                params["MessagingServiceSid"] = message.messaging_service_sid
            if status in ("failed", "undelivered") and destination is not None:
                params["ErrorCode"] = str(destination.error_code)
            with self._lock:
                message.statuses.append(status)
            self._post(message.status_callback, params)

    def _post(
        self, url: str, params: dict[str, str], *, signature: str | None = None, via: str | None = None
    ) -> Callback:
        request = urllib.request.Request(
            via or url,
            data=urllib.parse.urlencode(params).encode(),
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "User-Agent": "TwilioProxy/1.1",
                "X-Twilio-Signature": signature if signature is not None else self.sign(url, params),
            },
        )
        status: int | None
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = None
        record = Callback(url, params, status)
        with self._lock:
            self._callbacks.append(record)
        return record


def _error(code: int, message: str, status: int, **extra: str) -> dict[str, Any]:
    # Twilio's REST error body (https://www.twilio.com/docs/usage/twilios-response#response-formats-exceptions).
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
        **extra,
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            path = urllib.parse.urlsplit(self.path).path
            match = MESSAGES_PATH.match(path)
            if match is None:
                status, payload = 404, _error(20404, "The requested resource was not found", 404)
            else:
                form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
                status, payload = self.fake._create(match["account"], self.headers.get("Authorization", ""), form)
        except Exception:
            self.fake.internal_errors.append(traceback.format_exc())
            status, payload = 500, _error(20500, "An internal server error has occurred", 500)
        with self.fake._lock:
            self.fake._requests.append((self.path, status))
            delay = self.fake._slow.pop(0) if self.fake._slow else 0.0
        if delay:
            time.sleep(delay)
        self._answer(status, payload)

    def do_GET(self) -> None:
        self._answer(405, _error(20004, "Method not allowed", 405))

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(data)
