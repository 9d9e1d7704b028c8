"""The notices of a batch's facts, enqueued in the transaction that stores them: a stored fact's
notice is never lost, and a replay (which does not go through that transaction) sends nothing
again."""

from __future__ import annotations

from collections.abc import Iterable

from sandbox_common.envelope import Envelope
from sandbox_common.notification_outbox import Executes, enqueue_notices
from sandbox_common.notifications import notice_of


async def enqueue(conn: Executes, facts: Iterable[Envelope]) -> None:
    await enqueue_notices(conn, [n for f in facts if (n := notice_of(f)) is not None])
