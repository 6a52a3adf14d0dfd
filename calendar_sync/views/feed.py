"""The ICS feed behind a subscription URL: public (a calendar app has no session; the token is its secret)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date
from django.views.decorators.http import require_safe

from calendar_sync.access import not_found
from calendar_sync.crypto import token_hash
from calendar_sync.feed import build, sources
from calendar_sync.models import FeedDocument
from clinic.access import public


def accepts_gzip(request: HttpRequest) -> bool:
    """Whether the client takes the stored gzip bytes as they are (calendar apps do)."""
    accepted = request.headers.get("Accept-Encoding", "")
    return any(
        part.split(";")[0].strip() == "gzip" and "q=0" not in part.replace(" ", "") for part in accepted.split(",")
    )


@public
@require_safe
def feed(request: HttpRequest, token: str) -> HttpResponse:
    """The ICS feed behind a subscription URL: stored bytes, with ETag and Last-Modified (304 when unchanged).

    Every token is hashed and looked up the same way, so a wrong one answers like a missing one.
    """
    subscription = sources.subscription_by_token_hash(token_hash(token))
    if subscription is None:
        return not_found()
    now = timezone.now()
    document: FeedDocument | None = getattr(subscription, "document", None)
    if build.is_stale(subscription, document, now):
        document = build.feed_build(subscription=subscription, now=now)
    assert document is not None and document.modified_at is not None
    headers = {
        "ETag": document.etag,
        "Last-Modified": http_date(document.modified_at.timestamp()),
        "Cache-Control": "private, max-age=300",
    }
    conditional = get_conditional_response(
        request, etag=document.etag, last_modified=int(document.modified_at.timestamp())
    )
    if conditional is not None:
        for name, value in headers.items():
            conditional[name] = value
        return conditional
    stored = sources.feed_body(clinic=subscription.clinic, document=document)
    if accepts_gzip(request):
        response = HttpResponse(stored, content_type="text/calendar; charset=utf-8")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(build.feed_bytes(stored), content_type="text/calendar; charset=utf-8")
    for name, value in headers.items():
        response[name] = value
    response["Content-Disposition"] = 'inline; filename="calendar.ics"'
    patch_vary_headers(response, ["Accept-Encoding"])
    return response
