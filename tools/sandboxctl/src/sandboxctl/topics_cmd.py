"""`sandboxctl topics create|describe`: the use cases, over any admin that fits `Admin`
(kafka_admin.KafkaAdmin for real, a fake in the unit tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

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


async def describe(
    admin: Admin, specs: Sequence[TopicSpec], groups: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Lines to print, and the problems among them (missing topic, drift, lagging group).
    `groups` maps a consumer group to the topic it reads."""
    have = await admin.existing([s.name for s in specs])
    lines, problems = [], []
    for spec in specs:
        state = have.get(spec.name)
        if state is None:
            problems.append(f"{spec.name}: missing (run `sandboxctl topics create`)")
            continue
        retention = state.configs.get("retention.ms", "?")
        lines.append(
            f"{state.name}: {state.partitions} partitions, replication factor "
            f"{state.replication_factor}, min.insync.replicas "
            f"{state.configs.get('min.insync.replicas', '?')}, retention.ms {retention}, "
            f"{state.records} records"
        )
        problems.extend(f"{spec.name}: {d}" for d in drift(spec, state))
    for group, topic in groups.items():
        if topic not in have:
            continue
        lag = await admin.group_lag(group, topic)
        if lag is None:
            lines.append(f"group {group} on {topic}: no committed offsets")
            continue
        total = sum(lag.values())
        worst = max(lag.items(), key=lambda kv: kv[1])
        lines.append(
            f"group {group} on {topic}: lag {total} records over {len(lag)} partitions "
            f"(most: partition {worst[0]}, {worst[1]})"
        )
    if topics.LIFECYCLE in have and have[topics.LIFECYCLE].records == 0:
        lines.append(f"{topics.LIFECYCLE}: empty (no webhook has arrived yet)")
    return lines, problems
