"""Webhook registrations (POST/GET/PATCH/DELETE /events/webhooks), as E2B documents them.

Sim extension: `payloadVersion` ("v2" default, or "v1") picks the body shape of deliveries.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from e2b_sim.views import TEAM_ID
from sandbox_common.e2b import LifecycleType

EventType = Literal[
    "sandbox.lifecycle.created",
    "sandbox.lifecycle.paused",
    "sandbox.lifecycle.resumed",
    "sandbox.lifecycle.updated",
    "sandbox.lifecycle.killed",
    "sandbox.lifecycle.checkpointed",
]
Events = Annotated[list[EventType], msgspec.Meta(min_length=1)]
PayloadVersion = Literal["v1", "v2"]
# The simulator only talks to this machine.
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class NewRegistration(msgspec.Struct, kw_only=True, rename="camel"):
    name: str
    url: str
    events: Events
    signature_secret: Annotated[str, msgspec.Meta(min_length=1)]
    enabled: bool = True
    payload_version: PayloadVersion = "v2"


class RegistrationPatch(msgspec.Struct, kw_only=True, rename="camel"):
    name: str | msgspec.UnsetType = msgspec.UNSET
    url: str | msgspec.UnsetType = msgspec.UNSET
    events: Events | msgspec.UnsetType = msgspec.UNSET
    signature_secret: str | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    payload_version: PayloadVersion | msgspec.UnsetType = msgspec.UNSET


class Registration(msgspec.Struct, kw_only=True):
    id: str
    name: str
    url: str
    events: list[str]
    secret: str
    enabled: bool
    payload_version: str
    created_at: datetime


class InvalidRegistrationError(ValueError):
    pass


def public(reg: Registration) -> dict[str, Any]:
    """What the API answers: everything but the secret, which is never returned."""
    return {
        "id": reg.id,
        "name": reg.name,
        "url": reg.url,
        "enabled": reg.enabled,
        "events": list(reg.events),
        "teamId": TEAM_ID,
        "createdAt": reg.created_at.isoformat().replace("+00:00", "Z"),
        "payloadVersion": reg.payload_version,
    }


class Registrations:
    def __init__(self) -> None:
        self._by_id: dict[str, Registration] = {}

    def create(self, new: NewRegistration, now: datetime) -> Registration:
        reg = Registration(
            id=str(uuid.uuid4()),
            name=new.name,
            url=_checked_url(new.url),
            events=list(new.events),
            secret=new.signature_secret,
            enabled=new.enabled,
            payload_version=new.payload_version,
            created_at=now,
        )
        self._by_id[reg.id] = reg
        return reg

    def all(self) -> list[Registration]:
        return sorted(self._by_id.values(), key=lambda r: r.created_at)

    def get(self, webhook_id: str) -> Registration | None:
        return self._by_id.get(webhook_id)

    def update(self, webhook_id: str, patch: RegistrationPatch) -> Registration | None:
        reg = self._by_id.get(webhook_id)
        if reg is None:
            return None
        changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        if "url" in changes:
            changes["url"] = _checked_url(changes["url"])
        if "signature_secret" in changes:
            changes["secret"] = changes.pop("signature_secret")
        updated = msgspec.structs.replace(reg, **changes)
        self._by_id[webhook_id] = updated
        return updated

    def delete(self, webhook_id: str) -> bool:
        return self._by_id.pop(webhook_id, None) is not None

    def subscribed(self, event_type: LifecycleType) -> list[Registration]:
        return [r for r in self.all() if r.enabled and event_type in r.events]

    def reset(self) -> None:
        self._by_id.clear()


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in _LOOPBACK:
        raise InvalidRegistrationError(f"url must be http(s) on this machine (127.0.0.1): {url!r}")
    return url
