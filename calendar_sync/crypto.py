"""Secrets at rest: OAuth tokens are stored encrypted (Fernet: AES-128-CBC with an HMAC), never in clear; secret
URL and channel tokens only as a hash."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """A stored secret that no configured key can read (the keys were changed without rotation)."""


def _fernet() -> MultiFernet:
    keys = [Fernet(key) for key in settings.SYNC_TOKEN_KEYS]
    if not keys:
        # Development and tests only (production refuses to start without SYNC_TOKEN_KEYS).
        derived = hashlib.sha256(b"sync-token-key:" + settings.SECRET_KEY.encode()).digest()
        keys = [Fernet(base64.urlsafe_b64encode(derived))]
    return MultiFernet(keys)


def seal(secret: str) -> str:
    """The secret encrypted with the newest key (empty stays empty)."""
    return _fernet().encrypt(secret.encode()).decode() if secret else ""


def unseal(sealed: str) -> str:
    """The secret back, with whichever configured key sealed it."""
    if not sealed:
        return ""
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken as error:
        raise SecretUnreadable("No configured key can read this secret.") from error


def token_hash(token: str) -> str:
    """What is stored of a secret token (a feed URL's, a Google channel's): looked up and compared, never read."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
