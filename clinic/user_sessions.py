"""The session engine (SESSION_ENGINE): Django's database sessions, stored under the SHA-256 of their key.

The table (clinic.UserSession) is the list of a user's signed-in browsers: each save copies who is signed in,
since when, the last activity, the browser and the address from the session's data into columns, so "Your
active sessions" is one query and ending a session is deleting its row. The raw key lives only in the
browser's cookie; a copy of the table holds nothing that signs anyone in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone

from clinic.models import UserSession

# The session's sign-in record (written by clinic.signin when a sign-in completes).
SESSION_ID = "signin_id"  # the UserSession's public id (the sessions page names a session by it)
SIGNED_IN_AT = "signin_at"  # epoch seconds
LAST_SEEN = "signin_seen"  # epoch seconds of the last request that counted as activity
USER_AGENT = "signin_ua"  # a short summary of the browser
IP_ADDRESS = "signin_ip"


def key_hash(session_key: str) -> str:
    """What the table stores for a session key."""
    return hashlib.sha256(session_key.encode()).hexdigest()


def _moment(value: Any) -> dt.datetime | None:
    if not isinstance(value, int | float):
        return None
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


class SessionStore(DatabaseSessionStore):
    @classmethod
    def get_model_class(cls) -> type[UserSession]:
        return UserSession

    def _get_session_from_db(self) -> UserSession | None:
        if self.session_key is None:
            return None
        try:
            return UserSession.objects.get(session_key=key_hash(self.session_key), expire_date__gt=timezone.now())
        except (UserSession.DoesNotExist, SuspiciousOperation):
            self._session_key = None
            return None

    def exists(self, session_key: str | None) -> bool:
        return session_key is not None and UserSession.objects.filter(session_key=key_hash(session_key)).exists()

    def create_model_instance(self, data: dict[str, Any]) -> UserSession:
        user_id = data.get(SESSION_KEY)
        return UserSession(
            session_key=key_hash(self._get_or_create_session_key()),  # type: ignore[attr-defined]  # not in the stubs
            session_data=self.encode(data),
            expire_date=self.get_expiry_date(),
            user_id=int(user_id) if isinstance(user_id, str) and user_id.isdigit() else None,
            public_id=_uuid(data.get(SESSION_ID)),
            signed_in_at=_moment(data.get(SIGNED_IN_AT)),
            last_seen_at=_moment(data.get(LAST_SEEN)),
            user_agent=str(data.get(USER_AGENT) or "")[:200],
            ip_address=data.get(IP_ADDRESS) or None,
        )

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        UserSession.objects.filter(session_key=key_hash(session_key)).delete()
