"""Google's error bodies, as the Calendar API v3 and the OAuth endpoints send them.

The API answers errors with ``{"error": {"errors": [{"domain", "reason", "message", ...}], "code", "message"}}``
(googleapiclient's ``HttpError`` reads ``error.message`` as its reason and ``error.errors`` as ``error_details``,
and its retry logic reads ``error.errors[0].reason`` of a 403). The OAuth endpoints answer RFC 6749 bodies,
``{"error": "invalid_grant", "error_description": "..."}``.
"""

from __future__ import annotations

from typing import Any

# The reason of each rate-limit error and the message Google sends with it.
RATE_LIMIT_MESSAGES = {
    "rateLimitExceeded": "Rate Limit Exceeded",
    "userRateLimitExceeded": "User Rate Limit Exceeded",
    "quotaExceeded": "Calendar usage limits exceeded.",
    "dailyLimitExceeded": "Daily Limit Exceeded",
}

DEFAULT_REASONS = {
    400: "badRequest",
    401: "authError",
    403: "rateLimitExceeded",
    404: "notFound",
    409: "duplicate",
    410: "deleted",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "backendError",
    502: "backendError",
    503: "backendError",
    504: "backendError",
}

DEFAULT_MESSAGES = {
    "backendError": "Backend Error",
    "notFound": "Not Found",
    "badRequest": "Bad Request",
    "authError": "Invalid Credentials",
    "duplicate": "The requested identifier already exists.",
    "deleted": "Resource has been deleted",
    "conditionNotMet": "Precondition Failed",
    **RATE_LIMIT_MESSAGES,
}


class GoogleApiError(Exception):
    """An error answer of the Calendar API; the handlers raise it and the server renders it."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str | None = None,
        *,
        domain: str | None = None,
        location: str | None = None,
        location_type: str | None = None,
        status: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.reason = reason
        self.message = message or DEFAULT_MESSAGES.get(reason, reason)
        self.domain = domain or ("usageLimits" if reason in RATE_LIMIT_MESSAGES else "global")
        self.location = location
        self.location_type = location_type
        self.status = status
        self.headers = headers or {}
        super().__init__(f"{code} {reason}: {self.message}")

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location_type:
            detail["locationType"] = self.location_type
        if self.location:
            detail["location"] = self.location
        error: dict[str, Any] = {"errors": [detail], "code": self.code, "message": self.message}
        if self.status:
            error["status"] = self.status
        return {"error": error}


class OAuthError(Exception):
    """An error answer of the OAuth endpoints (token, revoke)."""

    def __init__(self, code: int, error: str, description: str | None = None) -> None:
        self.code = code
        self.error = error
        self.description = description
        super().__init__(f"{code} {error}: {description}")

    def body(self) -> dict[str, Any]:
        body = {"error": self.error}
        if self.description is not None:
            body["error_description"] = self.description
        return body


def injected(code: int, reason: str | None = None, message: str | None = None) -> GoogleApiError:
    """The error ``fail_next`` injects: Google's shape for the status, with the given or the usual reason."""
    reason = reason or DEFAULT_REASONS.get(code, "backendError" if code >= 500 else "badRequest")
    return GoogleApiError(code, reason, message)


def login_required() -> GoogleApiError:
    return GoogleApiError(
        401,
        "required",
        "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        location="Authorization",
        location_type="header",
        status="UNAUTHENTICATED",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
    )


def invalid_credentials() -> GoogleApiError:
    error = GoogleApiError(
        401,
        "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
        "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        location="Authorization",
        location_type="header",
        status="UNAUTHENTICATED",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
    )
    return error


def insufficient_scopes() -> GoogleApiError:
    return GoogleApiError(
        403,
        "insufficientPermissions",
        "Request had insufficient authentication scopes.",
        status="PERMISSION_DENIED",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="insufficient_scope"'},
    )


def not_found() -> GoogleApiError:
    return GoogleApiError(404, "notFound", "Not Found")


def deleted() -> GoogleApiError:
    return GoogleApiError(410, "deleted", "Resource has been deleted")


def full_sync_required() -> GoogleApiError:
    return GoogleApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")


def duplicate() -> GoogleApiError:
    return GoogleApiError(409, "duplicate", "The requested identifier already exists.")


def condition_not_met() -> GoogleApiError:
    return GoogleApiError(412, "conditionNotMet", "Precondition Failed", location="If-Match", location_type="header")


def invalid(message: str = "Invalid Value", *, location: str | None = None) -> GoogleApiError:
    return GoogleApiError(400, "invalid", message, location=location, location_type="parameter" if location else None)


def required(message: str) -> GoogleApiError:
    return GoogleApiError(400, "required", message)


def bad_request(message: str = "Bad Request") -> GoogleApiError:
    return GoogleApiError(400, "badRequest", message)


def time_range_empty() -> GoogleApiError:
    return GoogleApiError(400, "timeRangeEmpty", "The specified time range is empty.", location="end.dateTime")
