"""Use cases of lifecycle policies (issue 17): read a level's policy with the policy in force
and where each value comes from; set one, as a fact on `sandbox-lifecycle` (the projector
folds it into PostgreSQL, so a replay rebuilds policies with the rest).

Levels: the service's settings < the global default < a project's policy (< a sandbox's own
metadata, which the routes here do not show: they are about projects)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

import msgspec

from sandbox_common.envelope import Envelope, Source
from sandbox_common.facts import Origin, policy_fact
from sandbox_common.policies import Layers, Policy, PolicyBook, explain
from status_api.policy_views import EffectiveValue, PolicyAccepted, PolicyAnswer, PolicyRecord


class StoredPolicy(NamedTuple):
    """A level's latest policy fact, as the projector stored it."""

    project_id: str | None  # None: the global default
    policy: Policy
    event_id: str
    set_at: datetime
    actor: str | None


class Levels(NamedTuple):
    default: StoredPolicy | None
    project: StoredPolicy | None = None  # always None when no project was asked about


class PolicyReads(Protocol):
    async def levels(self, project_id: str | None) -> Levels: ...

    async def projects(self, after: str | None, limit: int) -> list[StoredPolicy]: ...

    async def of_projects(self, project_ids: Collection[str]) -> list[StoredPolicy]:
        """The default's and these projects' policies, those that exist."""
        ...


class FactSink(Protocol):
    async def publish(self, envelope: Envelope) -> None: ...


def setting_level(idle_timeout_seconds: int, warn_before_seconds: int) -> Policy:
    """What the settings decide when no policy does: IDLE_TIMEOUT_SECONDS and
    STATUS_API_WARN_BEFORE_SECONDS (the deadline rule and warnings status-api applies)."""
    return Policy(
        idle_timeout_seconds=idle_timeout_seconds, warn_before_seconds=warn_before_seconds
    )


def effective(layers: Layers) -> dict[str, EffectiveValue]:
    return {name: EffectiveValue(v.value, v.source) for name, v in explain(layers).items()}


def record(stored: StoredPolicy | None, project_id: str | None) -> PolicyRecord:
    if stored is None:
        return PolicyRecord(
            project_id=project_id, policy=Policy(), set_at=None, event_id=None, set_by=None
        )
    return PolicyRecord(
        project_id=project_id,
        policy=stored.policy,
        set_at=stored.set_at,
        event_id=stored.event_id,
        set_by=stored.actor,
    )


def _policy(stored: StoredPolicy | None) -> Policy | None:
    return stored.policy if stored is not None else None


@dataclass(frozen=True, slots=True)
class Policies:
    """`setting`: setting_level(), built once from the settings."""

    reads: PolicyReads
    sink: FactSink
    setting: Policy
    clock: Callable[[], datetime]

    async def read(self, project_id: str | None) -> PolicyAnswer:
        """A project's policy (`project_id` None: the global default) and the one in force."""
        levels = await self.reads.levels(project_id)
        own = levels.project if project_id is not None else levels.default
        layers = Layers(
            setting=self.setting,
            default=_policy(levels.default),
            project=_policy(levels.project),
        )
        seen = msgspec.structs.asdict(record(own, project_id))
        return PolicyAnswer(**seen, effective=effective(layers))

    async def book(self, project_ids: Collection[str]) -> PolicyBook:
        """What the deadline rule needs to show these projects' sandboxes as the projector
        writes them (the fleet, from PostgreSQL)."""
        found = await self.reads.of_projects(project_ids)
        return PolicyBook.of((s.project_id, s.policy) for s in found)

    async def set(
        self, project_id: str | None, policy: Policy, actor: str | None
    ) -> PolicyAccepted:
        """Publishes the fact (acks=all; BrokerUnavailableError when not taken). The levels
        below are read first: a store that cannot say what is in force refuses the change
        (503) rather than answering with an `effective` it does not know."""
        default = (await self.reads.levels(None)).default if project_id is not None else None
        fact = policy_fact(
            project_id, policy, Origin(str(uuid.uuid4()), Source.ADMIN, self.clock()), actor
        )
        await self.sink.publish(fact)
        layers = (
            Layers(setting=self.setting, default=_policy(default), project=policy)
            if project_id is not None
            else Layers(setting=self.setting, default=policy)
        )
        return PolicyAccepted(
            project_id=project_id,
            policy=policy,
            event_id=fact.event_id,
            effective=effective(layers),
        )
