"""Redis side of the projection: the status documents status-api serves, written through the
read model's writer (sandbox_common.readmodel)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from projector.handlers import Projected
from sandbox_common.readmodel import DeadlineRule, to_doc
from sandbox_common.readmodel.writer import DocumentWriter


class RedisReadModel:
    def __init__(self, writer: DocumentWriter, rule: DeadlineRule) -> None:
        self._writer = writer
        self._rule = rule

    async def publish(self, projected: Sequence[Projected]) -> None:
        now = datetime.now(UTC)
        docs = (to_doc(p.state, p.revision, now, self._rule) for p in projected)
        await self._writer.write([doc for doc in docs if doc is not None])

    async def ping(self) -> None:
        await self._writer.ping()
