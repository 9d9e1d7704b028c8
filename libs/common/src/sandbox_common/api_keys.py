"""Project API keys: what a key looks like, and the digest that is stored instead of it.

A key is `sbk_<key id>_<secret>`: the id (public, 16 hex) finds the stored row in one lookup, the
secret (32 random bytes) is what proves it. Only SHA-256 of the whole key is stored. A slow
password hash would buy nothing here: the key is 256 random bits, not a password to guess, and
a status-api replica checks one on every call of a server that uses it. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "sbk_"
# Header servers send it in (browsers use a bearer token; keys are for servers).
HEADER = "X-API-Key"
_SHAPE = re.compile(r"sbk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


class ApiKeyError(ValueError):
    """Not a key of ours (the caller's 401, never a store lookup)."""


@dataclass(frozen=True)
class Issued:
    key_id: str
    key: str  # shown once, to whoever created it
    digest: bytes


def issue() -> Issued:
    key_id = secrets.token_hex(8)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return Issued(key_id, key, digest(key))


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id_of(key: str) -> str:
    """The id of a well-formed key; ApiKeyError for anything else (checked before any lookup,
    so garbage costs a regex match)."""
    found = _SHAPE.fullmatch(key.strip())
    if found is None:
        raise ApiKeyError(f"{HEADER} is not an API key (sbk_<id>_<secret>)")
    return found.group(1)


def matches(key: str, stored_digest: bytes) -> bool:
    return hmac.compare_digest(digest(key.strip()), stored_digest)
