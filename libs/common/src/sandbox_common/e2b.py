"""Everything we know about E2B's lifecycle webhooks, in one place (see shared/reference/e2b.md).

Two payload shapes exist: v2 (snake_case, current) and v1 (camelCase, older). Both are
normalised into `WebhookEvent`; nothing else in the code base reads E2B's raw shapes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import msgspec

# Request headers E2B sends with each delivery (lower-case, as HTTP/2 carries them).
HEADER_SIGNATURE = "e2b-signature"
HEADER_SIGNATURE_VERSION = "e2b-signature-version"
HEADER_WEBHOOK_ID = "e2b-webhook-id"
# New on every attempt: never dedupe on it, the body `id` is the event's identity.
HEADER_DELIVERY_ID = "e2b-delivery-id"
SIGNATURE_VERSION = "v1"


class LifecycleType(StrEnum):
    CREATED = "sandbox.lifecycle.created"
    PAUSED = "sandbox.lifecycle.paused"
    RESUMED = "sandbox.lifecycle.resumed"
    UPDATED = "sandbox.lifecycle.updated"
    KILLED = "sandbox.lifecycle.killed"
    # Exists upstream; accepted and recorded, but it changes no state.
    CHECKPOINTED = "sandbox.lifecycle.checkpointed"


SUBSCRIBED_TYPES: tuple[str, ...] = (
    LifecycleType.CREATED,
    LifecycleType.PAUSED,
    LifecycleType.RESUMED,
    LifecycleType.KILLED,
    LifecycleType.UPDATED,
)


def compute_signature(secret: str, body: bytes) -> str:
    """E2B's scheme: sha256(secret + raw body), URL-safe base64, '=' stripped. Not an HMAC."""
    digest = hashlib.sha256(secret.encode() + body).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# Standard base64 alphabet -> URL-safe: one translate for both characters.
_TO_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def verify_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """Constant-time check of the `e2b-signature` header against the raw request bytes.

    Either base64 alphabet is accepted, padded or not: E2B documents the URL-safe one without
    `=`, but E2B-compatible senders write the standard one, and a receiver that knows only one
    would refuse every delivery if E2B ever sent the other. It is the same digest of the same
    secret and body, written two ways, so accepting both weakens nothing.
    """
    if not signature or not secret:
        return False
    expected = compute_signature(secret, body).encode("ascii")
    try:
        given = signature.strip().encode("ascii").rstrip(b"=").translate(_TO_URL_SAFE)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, given)


class WebhookError(ValueError):
    """A webhook body that is not a usable lifecycle event (answered 400/422, never 5xx)."""


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One lifecycle event, whatever payload version it came in."""

    id: str
    type: str
    timestamp: datetime
    sandbox_id: str
    version: str = "v2"
    team_id: str | None = None
    template_id: str | None = None
    build_id: str | None = None
    execution_id: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    # event_data without the metadata, keys normalised to snake_case.
    data: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def is_known_type(self) -> bool:
        return self.type in _KNOWN_TYPES


_KNOWN_TYPES = frozenset(t.value for t in LifecycleType)

# (v2 name, v1 name) of each top-level field we read.
_FIELDS = {
    "sandbox_id": ("sandbox_id", "sandboxId"),
    "team_id": ("sandbox_team_id", "sandboxTeamId"),
    "template_id": ("sandbox_template_id", "sandboxTemplateId"),
    "build_id": ("sandbox_build_id", "sandboxBuildId"),
    "execution_id": ("sandbox_execution_id", "sandboxExecutionId"),
}
# event_data keys, v1 spelling -> our (v2) spelling.
_DATA_KEYS = {
    "sandboxMetadata": "sandbox_metadata",
    "setTimeout": "set_timeout",
    "networkEgress": "network_egress",
    "killReason": "kill_reason",
}
_MAX_ID_LENGTH = 256
# E2B stamps an event with the moment it happened. A time outside these bounds is not one of
# theirs, and date arithmetic near datetime's own limits (years 1 and 9999) overflows: an idle
# deadline 180 s after 9999-12-31T23:59 would crash whoever computes it.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_webhook(body: bytes) -> WebhookEvent:
    """Parse a webhook body (v1 or v2). Raises WebhookError with a reason a client can act on."""
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise WebhookError(f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # hostile nesting: a 400, never a crash
        raise WebhookError("body is nested too deeply") from exc
    except UnicodeDecodeError as exc:  # msgspec's answer to invalid UTF-8 inside a string
        raise WebhookError(f"body is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    if not isinstance(raw, dict):
        raise WebhookError("body must be a JSON object")
    # Only a \u0000 escape can put U+0000 in a decoded string (raw control bytes are not JSON).
    if b"\\u0000" in body and contains_nul(raw):
        raise WebhookError("strings must not contain U+0000 (it cannot be stored)")
    v1 = "sandbox_id" not in raw and "sandboxId" in raw
    col = 1 if v1 else 0
    fields = {name: _optional_str(raw, names[col]) for name, names in _FIELDS.items()}
    event_data = raw.get("eventData" if v1 else "event_data")
    if event_data is None:
        event_data = {}
    if not isinstance(event_data, dict):
        raise WebhookError(f"'{'eventData' if v1 else 'event_data'}' must be an object")
    data = {_DATA_KEYS.get(k, k): v for k, v in event_data.items()}
    metadata = data.pop("sandbox_metadata", None) or {}
    if not isinstance(metadata, dict):
        raise WebhookError("'sandbox_metadata' must be an object of strings")
    sandbox_id = fields.pop("sandbox_id")
    if not sandbox_id:
        raise WebhookError("missing required field 'sandbox_id'")
    return WebhookEvent(
        id=_required_str(raw, "id"),
        version=_optional_str(raw, "version") or ("v1" if v1 else "v2"),
        type=_required_str(raw, "type"),
        timestamp=_timestamp(raw),
        sandbox_id=sandbox_id,
        metadata={str(k): v if isinstance(v, str) else str(v) for k, v in metadata.items()},
        data=data,
        **fields,
    )


def _required_str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        raise WebhookError(f"missing required field '{key}'")
    if not isinstance(value, str) or not value.strip():
        raise WebhookError(f"field '{key}' must be a non-empty string")
    if len(value) > _MAX_ID_LENGTH:
        raise WebhookError(f"field '{key}' is longer than {_MAX_ID_LENGTH} characters")
    return value


def _optional_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    return _required_str(raw, key)


def _timestamp(raw: dict[str, Any]) -> datetime:
    text = _required_str(raw, "timestamp")
    parsed = parse_time(text)
    if parsed is None:
        raise WebhookError(f"field 'timestamp' is not an RFC 3339 time from 2000 to 9000: {text!r}")
    return parsed


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time (UTC) between EARLIEST and LATEST, or None when absent, unreadable or
    out of that range (e.g. `set_timeout` in event_data)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 at +14:00 is before year 1 UTC
        return None
    return parsed if EARLIEST <= parsed < LATEST else None


def contains_nul(value: object) -> bool:
    """True when a string (key or value) anywhere in a decoded JSON value holds U+0000, which
    PostgreSQL cannot store in text or jsonb. Iterative: bodies nest up to ~1,000 deep."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def build_webhook(event: WebhookEvent) -> dict[str, Any]:
    """A webhook body in E2B's shape (v2 snake_case or v1 camelCase, by `event.version`), as
    E2B would send it: `parse_webhook`'s inverse.

    Used by the dev CLI, the tests and the simulator, so they all speak the documented shape.
    """
    data: dict[str, Any] = dict(event.data)
    if event.metadata:
        data["sandbox_metadata"] = event.metadata
    ts = event.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
    execution_id = event.execution_id or event.id
    template_id = event.template_id or "base"
    build_id = event.build_id or "build-local"
    team_id = event.team_id or "team-local"
    if event.version == "v1":
        v1_data = {_V1_DATA_KEYS.get(k, k): v for k, v in data.items()}
        body: dict[str, Any] = {
            "id": event.id,
            "version": "v1",
            "type": event.type,
            "sandboxId": event.sandbox_id,
            "sandboxExecutionId": execution_id,
            "sandboxTemplateId": template_id,
            "sandboxBuildId": build_id,
            "sandboxTeamId": team_id,
            "timestamp": ts,
        }
        if v1_data:
            body["eventData"] = v1_data
        return body
    body = {
        "id": event.id,
        "version": "v2",
        "type": event.type,
        "timestamp": ts,
        "event_category": "lifecycle",
        "event_label": event.type.rsplit(".", 1)[-1],
        "sandbox_id": event.sandbox_id,
        "sandbox_execution_id": execution_id,
        "sandbox_template_id": template_id,
        "sandbox_build_id": build_id,
        "sandbox_team_id": team_id,
    }
    if data:  # E2B omits the key when there is no event data
        body["event_data"] = data
    return body


_V1_DATA_KEYS = {v: k for k, v in _DATA_KEYS.items()}


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        HEADER_SIGNATURE: compute_signature(secret, body),
        HEADER_SIGNATURE_VERSION: SIGNATURE_VERSION,
    }
