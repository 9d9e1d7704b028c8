"""`sandboxctl topics create|describe`: the use cases, over any admin that fits `Admin`
(kafka_admin.KafkaAdmin for real, a fake in the unit tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sandbox_common import topics
from sandboxctl.errors import OperatorError
from sandboxctl.topic_specs import TopicSpec, TopicState, drift


class Admin(Protocol):
    async def existing(self, names: Sequence[str]) -> dict[str, TopicState]: ...

    async def create(self, specs: Sequence[TopicSpec]) -> dict[str, str | None]: ...

    async def group_lag(self, group_id: str, topic: str) -> dict[int, int] | None: ...


async def create(admin: Admin, specs: Sequence[TopicSpec]) -> list[str]:
    """Creates what is missing, leaves what exists (reporting how it differs). Raises when a
    topic could not be created, after saying what happened to the others."""
    have = await admin.existing([s.name for s in specs])
    missing = [s for s in specs if s.name not in have]
    results = await admin.create(missing) if missing else {}
    lines, failed = [], []
    for spec in specs:
        if spec.name in have:
            differs = drift(spec, have[spec.name])
            note = f" (differs: {'; '.join(differs)})" if differs else ""
            lines.append(f"{spec.name}: exists{note}")
            continue
        outcome = results.get(spec.name, "no answer from the broker")
        if outcome is None:
            lines.append(
                f"{spec.name}: created ({spec.partitions} partitions, "
                f"replication factor {spec.replication_factor})"
            )
        elif outcome == "exists":
            # Another init won the race, or the broker's topic list had not caught up with a
            # topic created a moment ago (KRaft publishes new topics to the list asynchronously).
            lines.append(f"{spec.name}: exists")
        else:
            failed.append(f"{spec.name}: {outcome}")
    if failed:
        raise OperatorError("; ".join([*lines, *failed]))
    return lines


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    lag: dict[int, int] | None  # per partition; None: the group never committed on the topic


@dataclass(frozen=True)
class Description:
    """What `topics describe` found: the topics that exist (in layout order), the consumer
    groups' lag, and the problems an operator must act on."""

    topics: list[TopicState]
    groups: list[GroupLag]
    problems: list[str]


async def inspect(admin: Admin, specs: Sequence[TopicSpec], groups: dict[str, str]) -> Description:
    """`groups` maps a consumer group to the topic it reads."""
    have = await admin.existing([s.name for s in specs])
    found, problems = [], []
    for spec in specs:
        state = have.get(spec.name)
        if state is None:
            problems.append(f"{spec.name}: missing (run `sandboxctl topics create`)")
            continue
        found.append(state)
        problems.extend(f"{spec.name}: {d}" for d in drift(spec, state))
    lags = [
        GroupLag(group, topic, await admin.group_lag(group, topic))
        for group, topic in groups.items()
        if topic in have
    ]
    return Description(found, lags, problems)


def _topic_line(state: TopicState) -> str:
    return (
        f"{state.name}: {state.partitions} partitions, replication factor "
        f"{state.replication_factor}, min.insync.replicas "
        f"{state.configs.get('min.insync.replicas', '?')}, retention.ms "
        f"{state.configs.get('retention.ms', '?')}, {state.records} records"
    )


def _group_line(lag: GroupLag) -> str:
    if lag.lag is None:
        return f"group {lag.group} on {lag.topic}: no committed offsets"
    worst = max(lag.lag.items(), key=lambda kv: kv[1])
    return (
        f"group {lag.group} on {lag.topic}: lag {sum(lag.lag.values())} records over "
        f"{len(lag.lag)} partitions (most: partition {worst[0]}, {worst[1]})"
    )


def text(found: Description) -> list[str]:
    lines = [_topic_line(t) for t in found.topics] + [_group_line(g) for g in found.groups]
    if any(t.name == topics.LIFECYCLE and t.records == 0 for t in found.topics):
        lines.append(f"{topics.LIFECYCLE}: empty (no webhook has arrived yet)")
    return lines


def _number(raw: str | None) -> int | None:
    return int(raw) if raw is not None and raw.lstrip("-").isdigit() else None


def as_json(found: Description) -> dict[str, Any]:
    """`topics describe --json`: the keys README documents; new keys may be added, none renamed."""
    return {
        "topics": [
            {
                "name": t.name,
                "partitions": t.partitions,
                "replicationFactor": t.replication_factor,
                "underReplicatedPartitions": t.under_replicated,
                "minInsyncReplicas": _number(t.configs.get("min.insync.replicas")),
                "retentionMs": _number(t.configs.get("retention.ms")),
                "records": t.records,
            }
            for t in found.topics
        ],
        "groups": [
            {
                "group": g.group,
                "topic": g.topic,
                "lag": None if g.lag is None else sum(g.lag.values()),
                "lagByPartition": None
                if g.lag is None
                else {str(p): n for p, n in sorted(g.lag.items())},
            }
            for g in found.groups
        ],
        "problems": found.problems,
    }


async def describe(
    admin: Admin, specs: Sequence[TopicSpec], groups: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Lines to print, and the problems among them (missing topic, drift, lagging group)."""
    found = await inspect(admin, specs, groups)
    return text(found), found.problems
