"""A fake Google (Calendar API v3 + OAuth 2.0 endpoints) for tests, driven by the real client libraries.

Usage::

    with FakeGoogle() as fake:
        creds = credentials_for(fake, "doc@example.com")          # or the OAuth flow through fake.auth_uri/token_uri
        service = calendar_service(fake, creds)                    # googleapiclient on the bundled discovery doc
        service.events().insert(calendarId="primary", body={...}).execute()

What it serves:

- OAuth: POST /token (authorization_code with PKCE and redirect_uri checks, refresh_token; client auth by
  Basic header or form fields), GET /o/oauth2/auth (redirects with code+state, or error=access_denied),
  POST /revoke, GET /oauth2/v3/userinfo. Refresh tokens only for access_type=offline, and on a repeat consent
  only with prompt=consent, as Google does. Access tokens expire after ``access_token_ttl`` on the fake's clock.
- Calendar: calendarList.list/get/watch, calendars.insert/get/patch/update/delete,
  events.list/get/insert/patch/update/delete/instances/watch, channels.stop, and the batch endpoint.
  Unimplemented methods of the discovery document answer 501.
- Per-method OAuth scopes taken from the discovery document (403 insufficientPermissions). Granular consent
  (``untick_next_consent``) and ``include_granted_scopes`` (a grant carrying the scopes granted before).
- Events deleted in the web UI (``user_delete_event``) refuse writes (403 forbidden) and keep their id taken
  (409); ``user_purge_event`` empties the bin: 404 to the id, still 409 to an insert of it.
- Calendars shared with other accounts (``user_share_calendar``: reader or writer); event writes need writer
  access (403 requiredAccessLevel). Generated calendars (``user_subscribe_calendar``) refuse events.watch
  (400 pushNotSupportedForRequestedResource).
- The per-minute quotas over a sliding window (``rate_limit_user``, ``rate_limit_project``, ``rate_window``;
  Google's 600 and 10,000 a minute by default): every authenticated Calendar call counts, each part of a batch as
  one call (the batch's own HTTP request does not); over the user's limit a call is answered 403
  ``rateLimitExceeded``, over the project's (the OAuth client's, across users) 429 ``rateLimitExceeded``, both in
  the ``usageLimits`` domain (``rate_refusals`` lists them). Tests scale the window and limits down.

Where it knowingly differs from Google:

- Notifications are sent for every change, one by one (Google may coalesce), and to http:// addresses
  (Google wants https with a valid certificate). A failed delivery is not retried.
- The batch limit is 50 calls (``batch_limit``), as the Calendar guide once stated; the current guide says
  1000. The wording of the 400 for too many parts, and of the 400 for parameters combined with syncToken,
  is the fake's own.
- Incremental sync returns every changed event of the calendar, whatever window the full sync had. With
  singleEvents=true a changed series comes back as its instances (up to two years ahead), and a deleted or
  truncated ("this and following": an UNTIL put in its RRULE, ``user_this_and_following``) series as the
  cancelled tombstones of the instances it lost (id, recurringEventId, originalStartTime), never as one item with
  the series' id, and only for those within ``TOMBSTONE_HORIZON`` (six months) either side of the change. Google
  documents no horizon; a report saw "only six months worth" of cancelled instances after deleting a series
  (googleapis/google-api-ruby-client#860). Instances of unchanged series entering a window never come.
- Quotas: a refused call is not counted against the window (Google does not say whether it is); no daily
  billing threshold, no "operational limits" (many writes to one calendar in quick succession), no Calendar
  usage limits (``quotaExceeded``, read-only mode after very many events), and no Retry-After header.
- Recurring events expand up to two years ahead when no timeMax is given (at most 2500 instances each).
- A token whose only matching scope is ``calendar.app.created`` reaches only the calendars its client made
  (403 insufficientPermissions elsewhere: the wording of that refusal is the fake's own).
- Event types (default, outOfOffice, focusTime, workingLocation, birthday, fromGmail) keep the documented rules of
  the Calendar guides: the status types only on primary calendars, a working location transparent and public, a
  birthday one all-day day recurring yearly, transparent and private, fromGmail only made by Gmail
  (``user_gmail_event``), a type never changed. Their other properties are stored as given, unchecked; the
  restrictions on updating fromGmail events are not enforced.
- Attendees are stored as given; ``self`` is computed (the entry whose email is the calendar's id). An invitation
  (``user_invited``, answered by ``user_respond``) shows the organizer's address; nothing reaches attendees'
  calendars and no invitation mail is sent.
- No ACL methods (sharing is set with ``user_share_calendar``), free/busy, colors, settings, conferencing,
  attachments, events.import/move/quickAdd, calendarList insert/patch/delete, calendars.clear.
"""

from .client import calendar_service, credentials_for, discovery_document, make_credentials
from .receiver import NotificationReceiver, ReceivedNotification
from .server import (
    CALENDAR_SCOPE,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EVENTS_SCOPE,
    FakeGoogle,
    NotificationRecord,
    RateRefusal,
    RequestRecord,
)

__all__ = [
    "CALENDAR_SCOPE",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "EVENTS_SCOPE",
    "FakeGoogle",
    "NotificationReceiver",
    "NotificationRecord",
    "RateRefusal",
    "ReceivedNotification",
    "RequestRecord",
    "calendar_service",
    "credentials_for",
    "discovery_document",
    "make_credentials",
]
