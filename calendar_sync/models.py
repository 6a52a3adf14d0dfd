"""One-way sync: a practitioner's private ICS subscription, and the feed built for it."""

from __future__ import annotations

from django.db import models

from clinic.models import Practitioner, TenantModel
from patients.display import IdentifierMode


class SyncType(models.TextChoices):
    ONE_WAY = "one_way", "One-way sync (subscription URL)"
    TWO_WAY = "two_way", "Two-way sync with Google Calendar"


class FeedSubscription(TenantModel):
    """A practitioner's subscription URL and how patients are named in it.

    The URL's token is never stored: it is an HMAC of the secret key and `token_salt`, and only its
    SHA-256 (`token_hash`) is kept, to find the subscription. Regenerating draws a new salt, so the old
    URL stops working at once. `changes` counts changes to the calendar; a feed built before the last
    one is stale.
    """

    practitioner = models.OneToOneField(Practitioner, on_delete=models.CASCADE, related_name="feed_subscription")
    enabled = models.BooleanField("allow sync to an external calendar", default=False)
    identifier_mode = models.CharField(max_length=20, choices=IdentifierMode.choices)
    sync_type = models.CharField(max_length=10, choices=SyncType.choices, default=SyncType.ONE_WAY)
    token_salt = models.CharField(max_length=64)
    token_hash = models.CharField(max_length=64, unique=True)
    changes = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"feed of {self.practitioner_id}"


class FeedChange(TenantModel):
    """A change a feed has not been rebuilt for: one appointment ("a<pk>") or other event ("e<pk>"), or
    everything (an empty key: the identifier mode, a rename...). A build consumes the rows it has read."""

    subscription = models.ForeignKey(FeedSubscription, on_delete=models.CASCADE, related_name="pending_changes")
    key = models.CharField(max_length=24, blank=True)

    def __str__(self) -> str:
        return self.key or "everything"


class FeedDocument(TenantModel):
    """The built feed, served as it is: its gzip-compressed bytes, their ETag, when and from which change
    they were built."""

    subscription = models.OneToOneField(FeedSubscription, on_delete=models.CASCADE, related_name="document")
    body = models.BinaryField(default=b"", help_text="The feed, gzip-compressed.")
    etag = models.CharField(max_length=80, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)
    modified_at = models.DateTimeField(null=True, blank=True, help_text="When the bytes last changed (Last-Modified).")
    built_changes = models.PositiveBigIntegerField(default=0)
    built_mode = models.CharField(max_length=20, blank=True)

    def __str__(self) -> str:
        return f"feed document of {self.subscription_id}"


class FeedEvent(TenantModel):
    """One VEVENT of a feed as last serialised, reused while its source is unchanged.

    `key` names the source ("a<pk>" for an appointment, "e<pk>" for an other event); `fingerprint` is
    a hash of everything the VEVENT shows; SEQUENCE rises each time the fingerprint changes.
    """

    document = models.ForeignKey(FeedDocument, on_delete=models.CASCADE, related_name="events")
    key = models.CharField(max_length=24)
    sort_key = models.CharField(max_length=24, help_text="Where it goes in the feed: its start, then its key.")
    fingerprint = models.CharField(max_length=32)
    sequence = models.PositiveIntegerField(default=0)
    text = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["document", "key"], name="feedevent_one_per_source")]
        indexes = [models.Index(fields=["document", "sort_key"], name="feedevent_document_order_idx")]

    def __str__(self) -> str:
        return self.key


class GoogleState(models.TextChoices):
    CONNECTED = "connected", "Connected"
    BROKEN = "broken", "Access revoked or expired"


class GoogleConnection(TenantModel):
    """A practitioner's OAuth link to a Google account for two-way sync. Tokens are sealed (crypto.seal)."""

    practitioner = models.OneToOneField(Practitioner, on_delete=models.CASCADE, related_name="google_connection")
    email = models.CharField(max_length=254)
    refresh_token = models.TextField(help_text="Sealed.")
    access_token = models.TextField(blank=True, help_text="Sealed.")
    access_expires_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=12, choices=GoogleState.choices, default=GoogleState.CONNECTED)
    problem = models.CharField(max_length=200, blank=True)
    default_calendar_id = models.CharField(max_length=1024, blank=True)
    default_calendar_created = models.BooleanField(default=False, help_text="A new calendar made for the clinic.")
    push_queued = models.BooleanField(default=False, help_text="A push task is queued (changes coalesce into it).")
    pushed_at = models.DateTimeField(null=True, blank=True)
    pulled_at = models.DateTimeField(null=True, blank=True)
    backoff_until = models.DateTimeField(null=True, blank=True, help_text="Google asked us to wait (quota).")
    scopes = models.TextField(blank=True, help_text="The OAuth scopes Google granted, space-separated.")
    focus_time_busy = models.BooleanField(
        "Focus time blocks booking",
        default=False,
        help_text="Google focus-time blocks marked busy keep patients from booking then.",
    )
    connected_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"google connection of {self.practitioner_id}"


class GoogleCalendar(TenantModel):
    """One calendar of the connected Google account: the default (ours go there) or a secondary one."""

    connection = models.ForeignKey(GoogleConnection, on_delete=models.CASCADE, related_name="calendars")
    calendar_id = models.CharField(max_length=1024)
    summary = models.CharField(max_length=255, blank=True)
    primary = models.BooleanField(default=False)
    writable = models.BooleanField(default=True, help_text="The account may add events to it.")
    selected = models.BooleanField(default=False, help_text="Pulled as a secondary calendar.")
    sync_token = models.TextField(blank=True)
    window_start = models.DateTimeField(
        null=True, blank=True, help_text="The start of the window the last full listing covered."
    )
    push_refused = models.BooleanField(
        default=False, help_text="Google sends no change notifications for it (events.watch refused): polled."
    )

    class Meta:
        ordering = ["-primary", "summary", "id"]
        constraints = [models.UniqueConstraint(fields=["connection", "calendar_id"], name="googlecalendar_one_per_id")]

    def __str__(self) -> str:
        return self.summary or self.calendar_id

    @property
    def refusal_key(self) -> str:
        """The GoogleRefusal key of this calendar when Google refused to list it."""
        return f"c{self.pk}"


class GooglePending(TenantModel):
    """A change waiting to be pushed: "a<pk>" (appointment), "e<pk>" (other event) or "" (everything)."""

    connection = models.ForeignKey(GoogleConnection, on_delete=models.CASCADE, related_name="pending")
    key = models.CharField(max_length=24, blank=True)

    def __str__(self) -> str:
        return self.key or "everything"


class GoogleEvent(TenantModel):
    """What we pushed to the default calendar for one of ours: Google's event id (chosen by us, so a retried
    insert finds its event), the fingerprint of the body sent, and whether it is deleted in Google."""

    connection = models.ForeignKey(GoogleConnection, on_delete=models.CASCADE, related_name="pushed")
    key = models.CharField(max_length=24)
    event_id = models.CharField(max_length=64)
    fingerprint = models.CharField(max_length=32, blank=True)
    etag = models.CharField(max_length=64, blank=True, help_text="Google's ETag of the event as last written or read.")
    deleted_in_google = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "key"], name="googleevent_one_per_key"),
            models.UniqueConstraint(fields=["connection", "event_id"], name="googleevent_one_per_event_id"),
        ]

    def __str__(self) -> str:
        return self.event_id


class GoogleRefusal(TenantModel):
    """A write Google refused for good (a 4xx that is not retried): shown on the Sync page with what to do,
    never recorded as synced, tried again when the practitioner presses Sync now. One per item ("" when
    Google refused the connection's calendar as a whole)."""

    connection = models.ForeignKey(GoogleConnection, on_delete=models.CASCADE, related_name="refusals")
    key = models.CharField(max_length=24, blank=True)
    verb = models.CharField(max_length=10)
    status = models.PositiveSmallIntegerField()
    reason = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "key"], name="googlerefusal_one_per_key")]

    def __str__(self) -> str:
        return f"{self.verb} {self.key}: {self.status} {self.reason}"


class GoogleChannel(TenantModel):
    """A push-notification channel (events.watch) on one calendar; renewed before it expires."""

    calendar = models.ForeignKey(GoogleCalendar, on_delete=models.CASCADE, related_name="channels")
    channel_id = models.CharField(max_length=64, unique=True)
    resource_id = models.CharField(max_length=255)
    token_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.channel_id
