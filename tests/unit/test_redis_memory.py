"""The projector's look at Redis's memory (issue 15, item 1): the figures go to the metrics the
alerts read, and a Redis that could evict the read model is warned about once."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from projector.read_model_rebuild import observe_memory
from sandbox_common.readmodel.reader import Memory, ReadModelReader


class _Reader:
    def __init__(self, memory: Memory) -> None:
        self._memory = memory

    async def memory(self) -> Memory:
        return self._memory


async def test_an_unbounded_redis_is_warned_about_once_and_measured_each_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = _Reader(Memory(used_bytes=5_000, max_bytes=0, policy="noeviction"))
    with caplog.at_level(logging.WARNING):
        warned = await observe_memory(reader, False)  # type: ignore[arg-type]
        warned = await observe_memory(reader, warned)  # type: ignore[arg-type]
    assert warned
    assert len(caplog.records) == 1
    assert "maxmemory-policy noeviction" in caplog.records[0].getMessage()
    assert REGISTRY.get_sample_value("redis_memory_used_bytes") == 5_000
    assert REGISTRY.get_sample_value("redis_memory_bounded") == 0


async def test_a_bounded_redis_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    bounded: ReadModelReader = _Reader(  # type: ignore[assignment]
        Memory(used_bytes=10, max_bytes=2**31, policy="noeviction")
    )
    with caplog.at_level(logging.WARNING):
        assert not await observe_memory(bounded, False)
    assert caplog.records == []
    assert REGISTRY.get_sample_value("redis_memory_bounded") == 1
    assert REGISTRY.get_sample_value("redis_memory_max_bytes") == 2**31
