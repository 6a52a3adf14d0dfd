"""A fake Twilio (Programmable Messaging) for tests, driven by the official `twilio` library.

Usage::

    with FakeTwilio() as fake:
        client = twilio.rest.Client(fake.account_sid, fake.auth_token, http_client=...)  # pointed at fake.url
        client.messages.create(to="+447700900123", from_=fake.number, body="...", status_callback=our_url)
        fake.wait_for_callbacks()
        fake.inbound_url = our_inbound_webhook
        fake.patient_texts("+447700900123", "STOP")

What it serves:

- POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded, with HTTP basic auth (AccountSid:AuthToken;
  anything else is 401, code 20003). To, From (the account's one number) or MessagingServiceSid, Body,
  StatusCallback. 201 with the Message resource (sid "SM" + 32 hex digits, status "queued", or "accepted" through
  a Messaging Service, num_segments, RFC 2822 dates, uri). Refusals in Twilio's JSON error body
  {"code", "message", "more_info", "status"}: 21604/21603/21602 (To, From, Body missing), 21606 (a From that is
  not the account's number), 21617 (over 1600 characters), 21211 (To not E.164), 21610 (the recipient replied
  STOP), 429 code 20429 (``rate_limit_next``), 500/503 (``fail_next``). ``slow_next`` answers late (the message is
  accepted all the same, as when a client times out on a request Twilio carried out).
- Status callbacks: after the create has answered, a background thread posts each status in order to the
  message's StatusCallback (queued → sent → delivered; → undelivered or failed with ErrorCode for numbers marked
  ``unreachable``), form-encoded and signed with X-Twilio-Signature as Twilio signs them. ``wait_for_callbacks``
  waits until they are all answered. ``callbacks_first`` posts them before the create is answered (Twilio's
  callbacks come on connections of their own and may overtake its answer).
- A patient's phone: ``patient_texts`` posts Twilio's inbound-message webhook to ``inbound_url``, signed, with
  OptOutType (STOP, START, HELP) when the whole body is an opt-out keyword (Advanced Opt-Out); the number is then
  blocked (or unblocked) for later sends, as Twilio blocks it whatever our server answered.
- ``messages`` (every accepted message), ``callbacks`` (every webhook request and our answer), ``requests``
  (every API request's path and status).

Where it knowingly differs from Twilio:

- Twilio may accept a number not in E.164 form and format it by the sender's country; the fake refuses it
  (21211), as strict as the documentation's "E.164 format" requirement.
- Callbacks come at once, never out of order and never retried; Twilio gives no ordering guarantee
  (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status) and retries only on request.
- One phone number, no Messaging Service pools, no scheduling, no media, no sticky sender, no GET of a Message,
  no carrier filtering (30007) and no prices.
- The inbound webhook's answer (TwiML) is not read: Twilio's own STOP/START/HELP replies are not modelled.
"""

from .server import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_NUMBER,
    Callback,
    FakeTwilio,
    SentMessage,
    segments,
)

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "DEFAULT_NUMBER",
    "Callback",
    "FakeTwilio",
    "SentMessage",
    "segments",
]
