"""Reads the compacted `sandbox-state` topic whole (its size follows the fleet, not the history)
for `replay --from-snapshot`; what the records mean is projector.snapshots'."""

from __future__ import annotations

from projector.replay.kafka_source import TopicReader
from projector.snapshots import Snapshot
from sandbox_common.kafka_connection import KafkaConnection


async def read_snapshot(connection: KafkaConnection, topic: str) -> Snapshot:
    snapshot = Snapshot()
    async with TopicReader(connection, topic) as reader:
        async for batch in reader.read(await reader.starts(), await reader.ends()):
            for r in batch:
                snapshot.add(r.key, r.value)
    return snapshot
