"""A replay while the live projector keeps folding new sandboxes (issue 15, item 6): the swap
must never remove or regress a document, index entry or project pointer that the live projector
wrote after the rebuild's offsets, and `--verify` afterwards finds nothing to report."""

from __future__ import annotations

import asyncio
import io
import random
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from projector.handlers import project_batch
from projector.replay.kafka_source import Offsets, TopicReader
from projector.replay.run import Replay
from projector.replay.verify import Differs
from sandbox_common import envelope as env
from sandbox_common import topics
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import FactType
from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.readmodel.reader import ReadModelReader
from tests.connected import redis_mode
from tests.connected.replay_support import (
    ReplayStore,
    lifecycle_fact,
    live_projection,
    project_live,
    publish,
    random_stream,
)

pytestmark = pytest.mark.connected


class _LiveLoad:
    """New sandboxes arriving steadily (about 250/s), each folded by the live projector's path
    (project_batch with the real adapters) as soon as it is on the topic."""

    def __init__(self, store: ReplayStore) -> None:
        self._store = store
        self.created: list[str] = []
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self, start: Offsets) -> None:
        s = self._store.settings
        pool = await asyncpg.create_pool(s.database_url, min_size=1, max_size=2)
        client = redis_mode.client(s.redis_url)
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers)
        await producer.start()
        position = dict(start)
        try:
            async with (
                live_projection(s, pool, client) as projection,
                TopicReader(s.kafka_connection(), self._store.topic) as reader,
            ):
                while True:
                    stopping = self._stop.is_set()
                    if not stopping:
                        for _ in range(5):
                            sid = f"live-{uuid.uuid4().hex[:8]}"
                            self.created.append(sid)
                            fact = lifecycle_fact(FactType.CREATED, sid, datetime.now(UTC))
                            await producer.send_and_wait(
                                self._store.topic, env.encode(fact), key=topics.record_key(sid)
                            )
                    end = await reader.ends()
                    async for batch in reader.read(position, end):
                        records = [Record(r.topic, r.partition, r.offset, r.value) for r in batch]
                        await project_batch(records, projection)
                    position = end
                    if stopping:
                        return
                    await asyncio.sleep(0.01)
        finally:
            await producer.stop()
            await client.aclose()
            await pool.close()


async def test_a_replay_under_a_steady_load_of_new_sandboxes_loses_nothing(
    store: ReplayStore,
) -> None:
    rng = random.Random(15)
    bootstrap = store.settings.kafka_bootstrap_servers
    await publish(bootstrap, store.topic, random_stream(rng, 3000, 20_000))
    await project_live(store, rng)
    async with TopicReader(KafkaConnection(bootstrap), store.topic) as reader:
        folded_up_to = await reader.ends()

    load = _LiveLoad(store)
    live = asyncio.create_task(load.run(folded_up_to))
    try:
        # Three replays in a row: each swap is a chance for the live writes to fall between
        # the rebuild's last read and its Redis swap.
        reports = [
            await Replay(store.settings, store.topic, io.StringIO()).run(verify=False)
            for _ in range(3)
        ]
    finally:
        load.stop()
        await live
    assert len(load.created) > 100, "the load did not run alongside the replays"

    client = redis_mode.client(store.settings.redis_url)
    try:
        model = ReadModelReader(client)
        docs = await model.docs(load.created)
        idle = set(await model.idle_deadlines())
    finally:
        await client.aclose()
    missing = [sid for sid in load.created if sid not in docs]
    assert missing == [], f"{len(missing)} live documents removed by a swap: {reports}"
    # A document with an idle deadline is in the index. (The random stream may set a default
    # policy that never pauses: the live sandboxes then rightly have none.)
    unindexed = [
        sid for sid in load.created if docs[sid].idle_deadline_at is not None and sid not in idle
    ]
    assert unindexed == [], f"{len(unindexed)} live sandboxes lost their idle deadline"

    verified = await Replay(store.settings, store.topic, io.StringIO()).run(verify=True)
    assert verified.differs is Differs.NOTHING, verified.differences[:10]
