"""AES-GCM (via `cryptography`) for personal fields: data keys made, fields sealed and opened.

A data key is 32 random bytes under a random id; each seal draws a 96-bit random nonce, which
with one key per user stays far below the birthday bound of random nonces. The associated data
(`domain.personal.Subject`) binds a sealed value to its tenant, user, event type and field.
Nothing here logs or raises with a key or a plaintext in it.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.personal import Sealed, Subject

KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_encoder = msgspec.json.Encoder()


class DataKey:
    """One user's data key: its id (stored in each seal) and its cipher. Never printed."""

    __slots__ = ("_cipher", "key_id")

    def __init__(self, key_id: str, material: bytes) -> None:
        self.key_id = key_id
        self._cipher = AESGCM(material)

    def __repr__(self) -> str:
        return f"DataKey({self.key_id!r})"

    def seal(self, subject: Subject, value: Any) -> Sealed:
        nonce = os.urandom(_NONCE_BYTES)
        data = self._cipher.encrypt(nonce, _encoder.encode(value), subject.associated_data())
        return Sealed(key=self.key_id, nonce=nonce, data=data)

    def open(self, subject: Subject, sealed: Sealed) -> Any:
        """The value; raises `SealBroken` when the sealed value was altered or sealed for another subject."""
        try:
            plain = self._cipher.decrypt(sealed.nonce, sealed.data, subject.associated_data())
        except (InvalidTag, ValueError) as exc:  # ValueError: a nonce of a size AES-GCM does not take
            raise SealBroken from exc
        return msgspec.json.decode(plain)


class SealBroken(Exception):
    """A sealed value that does not open under its key: altered, or moved from another subject."""


def new_key() -> tuple[str, bytes]:
    """A fresh (key id, key material)."""
    return secrets.token_urlsafe(16), AESGCM.generate_key(bit_length=KEY_BYTES * 8)
