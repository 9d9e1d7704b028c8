"""The policy in force for a sandbox or a project, field by field, and where each value comes
from: the sandbox's own metadata, then its project's policy, then the global default policy,
then the service's settings. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import msgspec

from sandbox_common.policies.model import (
    FIELDS,
    MAX_IDLE_SECONDS,
    MIN_IDLE_SECONDS,
    Policy,
)

_IDLE_TIMEOUT, _IDLE = "idleTimeoutSeconds", "idle"
# The sandbox metadata key an app sets per sandbox (deadlines.IDLE_OVERRIDE_KEY).
SANDBOX_IDLE_KEY = "idleTimeoutSeconds"


class Level(StrEnum):
    SANDBOX = "sandbox"
    PROJECT = "project"
    DEFAULT = "default"
    SETTING = "setting"


class Value(msgspec.Struct, frozen=True):
    value: object
    source: Level


@dataclass(frozen=True, slots=True)
class Layers:
    """Every level, the settings' first: IDLE_TIMEOUT_SECONDS and the warning lead time."""

    setting: Policy
    default: Policy | None = None
    project: Policy | None = None
    sandbox_metadata: Mapping[str, str] | None = None

    def by_precedence(self) -> list[tuple[Level, Policy]]:
        levels = [
            (Level.SANDBOX, sandbox_level(self.sandbox_metadata or {})),
            (Level.PROJECT, self.project),
            (Level.DEFAULT, self.default),
            (Level.SETTING, self.setting),
        ]
        return [(level, policy) for level, policy in levels if policy is not None]


def sandbox_level(metadata: Mapping[str, str]) -> Policy:
    """What a sandbox's metadata sets: its idle timeout, when it is a whole number of seconds
    within the bounds (anything else is ignored, as the deadline rule always did)."""
    raw = metadata.get(SANDBOX_IDLE_KEY)
    try:
        seconds = int(raw) if raw is not None else None
    except ValueError:
        seconds = None
    if seconds is None or not MIN_IDLE_SECONDS <= seconds <= MAX_IDLE_SECONDS:
        return Policy()
    return Policy(idle_timeout_seconds=seconds)


def explain(layers: Layers) -> dict[str, Value]:
    """Each field's value in force and the level it comes from (a field no level sets: null,
    from the settings)."""
    ordered = [(level, policy.fields_set()) for level, policy in layers.by_precedence()]
    found = {}
    for name in FIELDS:
        found[name] = next(
            (Value(fields[name], level) for level, fields in ordered if name in fields),
            Value(None, Level.SETTING),
        )
    # The idle timeout and the adaptive rule are one choice: the first level giving either
    # gives both (its learned value is the timeout in force), or the other level's adaptive
    # rule would be shown beside a timeout it does not set.
    deciding = next(
        ((level, p) for level, p in layers.by_precedence() if p.idle_seconds() is not None), None
    )
    if deciding is not None:
        level, policy = deciding
        found[_IDLE_TIMEOUT] = Value(policy.idle_seconds(), level)
        found[_IDLE] = Value(policy.idle, level)
    return found


def resolve(layers: Layers) -> Policy:
    """The policy in force, every field taken from the first level that sets it."""
    values = {name: v.value for name, v in explain(layers).items()}
    return msgspec.convert(values, Policy)
