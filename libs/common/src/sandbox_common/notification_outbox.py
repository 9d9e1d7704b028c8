"""Notices into the outbox (`notification_outbox`, migration 007), kept only for projects whose
receiver asked for that event: the projector's facts (in the transaction that stores them) and
status-api's warnings. The projector's deliverers send them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sandbox_common.notifications import Notice


class Executes(Protocol):
    async def execute(self, query: str, *args: object) -> str: ...


# One statement: only the notices whose project registered a receiver for that event are kept
# (the join), and one still waiting is not added twice (the key; one already delivered is sent
# again: delivery is at least once, receivers dedupe by delivery id).
_ENQUEUE = """
INSERT INTO notification_outbox (project_id, delivery_id, event, body)
SELECT n.project_id, n.delivery_id, n.event, n.body
FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
    AS n(project_id, delivery_id, event, body)
JOIN notification_targets t ON t.project_id = n.project_id AND n.event = ANY (t.events)
ON CONFLICT DO NOTHING
"""


async def enqueue_notices(db: Executes, notices: Sequence[Notice]) -> None:
    if not notices:
        return
    await db.execute(
        _ENQUEUE,
        [n.project_id for n in notices],
        [n.delivery_id for n in notices],
        [n.event.value for n in notices],
        [n.body() for n in notices],
    )
