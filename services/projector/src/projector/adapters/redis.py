"""Redis side of the projection: the status documents status-api serves, written through the
read model's writer (sandbox_common.readmodel)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from projector.handlers import Projected
from sandbox_common.policies import NO_POLICIES, PolicyBook
from sandbox_common.readmodel import DeadlineRule, to_doc
from sandbox_common.readmodel.writer import DocumentWriter


class RedisReadModel:
    def __init__(
        self,
        writer: DocumentWriter,
        rule: DeadlineRule,
        book: Callable[[], PolicyBook] = lambda: NO_POLICIES,
    ) -> None:
        self._writer = writer
        self._rule = rule
        self._book = book  # the policies in force as each batch is written

    async def publish(self, projected: Sequence[Projected]) -> None:
        now, book = datetime.now(UTC), self._book()
        docs = (to_doc(p.state, p.revision, now, self._rule, book) for p in projected)
        await self._writer.write([doc for doc in docs if doc is not None])

    async def ping(self) -> None:
        await self._writer.ping()
