"""What the project's topics should look like, and how what a broker has compares (pure).

The same layout infra/local/topics.sh creates for `make up`; the Helm hook and the compose init
create it through `sandboxctl topics create`. Numbers come from the same environment names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sandbox_common import topics
from sandboxctl.errors import OperatorError

KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
WEEK_MS = str(7 * 24 * 3600 * 1000)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicState:
    """A topic as the broker describes it."""

    name: str
    partitions: int
    replication_factor: int
    under_replicated: int
    configs: dict[str, str]
    records: int  # end offsets minus start offsets, over all partitions


class TopicLayoutError(OperatorError):
    """A topic setting from the environment or the command line is unusable."""


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "") or str(default)
    try:
        value = int(raw)
    except ValueError as exc:
        raise TopicLayoutError(f"{name}={raw!r} is not a whole number") from exc
    if value < 1:
        raise TopicLayoutError(f"{name}={value} must be at least 1")
    return value


# sandbox-state holds one record per sandbox once compacted. Small segments let the cleaner
# reach what the projector wrote lately (it never cleans the active segment): a rebuild reads
# the fleet plus at most one segment per partition of records not compacted yet.
COMPACTED = {
    "cleanup.policy": "compact",
    "segment.ms": str(3600 * 1000),
    "segment.bytes": str(64 * 1024 * 1024),
}


def wanted(env: Mapping[str, str]) -> list[TopicSpec]:
    """The four topics (contract names), sized by LIFECYCLE_PARTITIONS (sandbox-state too),
    COMMANDS_PARTITIONS, DLQ_PARTITIONS, KAFKA_REPLICATION_FACTOR and
    KAFKA_MIN_INSYNC_REPLICAS."""
    rf = _positive(env, "KAFKA_REPLICATION_FACTOR", 1)
    min_isr = _positive(env, "KAFKA_MIN_INSYNC_REPLICAS", 1)
    if min_isr > rf:
        raise TopicLayoutError(
            f"KAFKA_MIN_INSYNC_REPLICAS={min_isr} exceeds KAFKA_REPLICATION_FACTOR={rf}: "
            "every acks=all write would fail"
        )
    isr = {"min.insync.replicas": str(min_isr)}
    lifecycle_partitions = _positive(env, "LIFECYCLE_PARTITIONS", 12)
    return [
        # The replay source of all state: its records are never deleted.
        TopicSpec(topics.LIFECYCLE, lifecycle_partitions, rf, {**KEEP_FOREVER, **isr}),
        TopicSpec(
            topics.COMMANDS,
            _positive(env, "COMMANDS_PARTITIONS", 12),
            rf,
            {"retention.ms": WEEK_MS, "cleanup.policy": "delete", **isr},
        ),
        TopicSpec(
            topics.LIFECYCLE_DLQ, _positive(env, "DLQ_PARTITIONS", 3), rf, {**KEEP_FOREVER, **isr}
        ),
        TopicSpec(
            topics.NOTIFICATIONS_DLQ,
            _positive(env, "DLQ_PARTITIONS", 3),
            rf,
            {**KEEP_FOREVER, **isr},
        ),
        # Each sandbox's latest state (replay --from-snapshot): as many partitions as the
        # lifecycle, so a sandbox's state sits at the same partition number as its facts.
        TopicSpec(topics.STATE, lifecycle_partitions, rf, {**COMPACTED, **isr}),
    ]


def drift(spec: TopicSpec, state: TopicState) -> list[str]:
    """How an existing topic differs from its spec, in words an operator can act on."""
    out = []
    if state.partitions < spec.partitions:
        out.append(
            f"{state.partitions} partitions, {spec.partitions} wanted (growing them moves "
            "sandbox ids to other partitions: see docs/OPERATIONS.md, Scaling)"
        )
    if state.replication_factor < spec.replication_factor:
        out.append(
            f"replication factor {state.replication_factor}, {spec.replication_factor} wanted"
        )
    for key, value in spec.configs.items():
        have = state.configs.get(key)
        if have is not None and have != value:
            out.append(f"{key}={have}, {value} wanted")
    if state.under_replicated:
        out.append(f"{state.under_replicated} under-replicated partition(s)")
    return out
