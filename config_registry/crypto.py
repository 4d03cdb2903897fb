"""Secrets at rest: the one module that touches cryptography.

Each value is sealed with MultiFernet (the first configured key encrypts, every key decrypts)
together with the place it belongs to (layer ref, key and version). Fernet authenticates the whole
envelope, so a ciphertext copied to another layer, key or version is refused instead of yielding
another secret (an older, rotated-away one included), and a flipped byte is refused too.
"""

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class KeyRingInvalid(Exception):
    """CONFIG_REGISTRY_KEYS is empty or holds something that is not a Fernet key."""


class SecretUndecryptable(Exception):
    """A stored secret could not be opened; names the place so an operator can act."""

    def __init__(self, *, layer: str, key: str, version: int | None, reason: str):
        self.layer, self.key, self.version, self.reason = layer, key, version, reason
        where = f"layer {layer}" + (f" version {version}" if version is not None else "")
        super().__init__(f"cannot decrypt secret {key!r} in {where}: {reason}")


@dataclass(frozen=True)
class Place:
    """Where a secret lives; bound into its ciphertext."""

    layer: str
    key: str


@lru_cache(maxsize=8)
def _key_ring(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise KeyRingInvalid(
            "CONFIG_REGISTRY_KEYS is empty: set at least one Fernet key "
            "(generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        )
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise KeyRingInvalid(
                f"CONFIG_REGISTRY_KEYS entry {position} is not a Fernet key "
                "(it must be 32 bytes, url-safe base64-encoded, 44 characters)"
            ) from None
    return MultiFernet(fernets)


def key_ring() -> MultiFernet:
    """The ring built from settings at call time, so key changes apply without code changes."""
    return _key_ring(tuple(settings.CONFIG_REGISTRY_KEYS))


def primary_key_ring() -> MultiFernet:
    """Only the first key: a token it opens is already encrypted under the primary key."""
    return _key_ring(tuple(settings.CONFIG_REGISTRY_KEYS[:1]))


def _envelope(place: Place, version: int, value: Any) -> bytes:
    return json.dumps({"l": place.layer, "k": place.key, "n": version, "v": value}, separators=(",", ":")).encode()


def encrypt(value: Any, *, place: Place, version: int) -> str:
    """Seal a JSON value for `place` in `version`; returns ASCII text safe for any database column."""
    return key_ring().encrypt(_envelope(place, version, value)).decode("ascii")


def _open(ciphertext: str, place: Place, version: int | None) -> dict:
    try:
        return json.loads(key_ring().decrypt(ciphertext.encode("ascii")))
    except (InvalidToken, UnicodeEncodeError, AttributeError, ValueError):
        raise SecretUndecryptable(
            layer=place.layer,
            key=place.key,
            version=version,
            reason="no configured key opens it, or it was altered",
        ) from None


def decrypt(ciphertext: str, *, place: Place, version: int, allow_unbound: bool = False) -> Any:
    """Open a secret stored at `place` in `version`; raise SecretUndecryptable rather than return
    anything else. `allow_unbound`: accept an envelope sealed before versions were bound (only to
    re-seal it, see reencrypt)."""
    envelope = _open(ciphertext, place, version)
    if (envelope.get("l"), envelope.get("k")) != (place.layer, place.key):
        raise SecretUndecryptable(
            layer=place.layer,
            key=place.key,
            version=version,
            reason=f"the ciphertext belongs to {envelope.get('k')!r} in layer {envelope.get('l')}, it was copied here",
        )
    if "n" not in envelope and not allow_unbound:
        raise SecretUndecryptable(
            layer=place.layer,
            key=place.key,
            version=version,
            reason="it was sealed before secrets were bound to their version: run manage.py rotate_keys",
        )
    if "n" in envelope and envelope["n"] != version:
        raise SecretUndecryptable(
            layer=place.layer,
            key=place.key,
            version=version,
            reason=f"the ciphertext belongs to version {envelope['n']}, it was copied here",
        )
    return envelope["v"]


def reencrypt(ciphertext: str, *, place: Place, version: int) -> str | None:
    """Re-seal under the primary key, bound to its version; None when it already is. Raises
    SecretUndecryptable."""
    value = decrypt(ciphertext, place=place, version=version, allow_unbound=True)
    try:
        bound = "n" in json.loads(primary_key_ring().decrypt(ciphertext.encode("ascii")))
    except InvalidToken:
        bound = False
    return None if bound else encrypt(value, place=place, version=version)


def token_hash(raw: str) -> str:
    """What is stored of a service token. Tokens carry 256 random bits: a plain SHA-256 is enough."""
    return hashlib.sha256(raw.encode()).hexdigest()
