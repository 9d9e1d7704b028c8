"""How a notification is signed, so a receiver can tell it came from us and is fresh.

`Sandbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`: the time is
inside the signed text, so a captured delivery cannot be replayed later than the receiver's
tolerance (300 s by default). The scheme is Stripe's, which receivers' frameworks already know.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Sandbox-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """A delivery that must not be trusted: unsigned, malformed, stale or forged."""


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value for `body` sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """The signed time of a genuine delivery; SignatureError saying why otherwise."""
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    parts = dict(p.partition("=")[::2] for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        raise SignatureError(f"{SIGNATURE_HEADER} has no t=<unix seconds>") from None
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError(f"signed {round(now - timestamp)} s away from now: stale or replayed")
    if not hmac.compare_digest(parts.get("v1", ""), _mac(secret, timestamp, body)):
        raise SignatureError("the signature does not match the body")
    return timestamp
