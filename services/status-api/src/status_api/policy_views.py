"""Response shapes of the policy routes (camelCase JSON, documented in OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from sandbox_common.policies import Level, Policy


class EffectiveValue(msgspec.Struct, frozen=True):
    """A field's value in force (null: no level sets it) and the level it comes from."""

    value: Any
    source: Level


class PolicyRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A level's policy as it was set: only the fields it sets (the others are inherited).
    A level nobody set: `policy` {} and `setAt` null. `projectId` is left out for the global
    default."""

    project_id: str | None = None
    policy: Policy
    set_at: datetime | None
    # The fact that set it (PUT answers with it: a GET showing it has the change applied).
    event_id: str | None
    set_by: str | None


class PolicyAnswer(PolicyRecord, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    # Every field of the policy in force and its source: project > default > setting (a
    # sandbox's own metadata may still override idleTimeoutSeconds for that sandbox).
    effective: dict[str, EffectiveValue]


class PolicyAccepted(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A PUT taken: the policy fact is on the topic (acks=all); the read side shows it once
    projected (GET's `eventId` becomes this one)."""

    project_id: str | None = None
    policy: Policy
    event_id: str
    effective: dict[str, EffectiveValue]


class PolicyPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    # The global default (null: never set), then the projects with a policy, by project id.
    default: PolicyRecord | None
    projects: list[PolicyRecord]
    # Pass as `cursor` for the next page; null: this was the last page.
    next_cursor: str | None


class PolicyRefused(msgspec.Struct, frozen=True, kw_only=True):
    """422: `field` is the JSON path of the value refused (`quietHours.timezone`; "" for the
    body as a whole), `reason` why; `detail` says both."""

    status_code: int
    detail: str
    field: str
    reason: str
