"""OAuth tokens at rest: encrypted, readable back, and rotatable."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from calendar_sync.crypto import SecretUnreadable, seal, unseal


def test_a_sealed_secret_is_not_the_secret_and_reads_back():
    sealed = seal("1//refresh-token-value")
    assert "refresh-token-value" not in sealed and sealed != seal("1//refresh-token-value")  # a fresh IV each time
    assert unseal(sealed) == "1//refresh-token-value"
    assert seal("") == "" and unseal("") == ""


def test_keys_rotate_newest_first_and_a_lost_key_is_said(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SYNC_TOKEN_KEYS = [old]
    sealed_with_old = seal("token")
    settings.SYNC_TOKEN_KEYS = [new, old]
    assert unseal(sealed_with_old) == "token"
    assert Fernet(new.encode()).decrypt(seal("token").encode()) == b"token"  # new secrets use the newest key
    settings.SYNC_TOKEN_KEYS = [new]
    with pytest.raises(SecretUnreadable):
        unseal(sealed_with_old)
