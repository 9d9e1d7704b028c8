"""Every projector replica learns of a policy change at once (issue 17, item 2): the transaction
that stores a policy fact notifies `sandbox_policies` when it commits, not before, and a replica
listening reloads its policies from it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import pytest

from projector.adapters.policy_rows import StoredPolicies, policy_changes
from projector.adapters.postgres import PostgresStore
from projector.handlers import PolicyChange, Positioned
from projector.policy_apply import PolicyKeeper
from sandbox_common.envelope import Source
from sandbox_common.facts import Origin, policy_fact, policy_subject
from sandbox_common.policies import Placed, Policy
from tests.connected.conftest import Infra

pytestmark = pytest.mark.connected


class _NoRedis:
    async def write(self, placed: Sequence[Placed]) -> None:
        return None


async def test_a_stored_policy_is_announced_at_commit_and_a_listening_replica_reloads(
    prepared: Infra,
) -> None:
    project = f"notify-{uuid.uuid4().hex[:8]}"
    policy = Policy(idle_timeout_seconds=777)
    fact = policy_fact(project, policy, Origin(str(uuid.uuid4()), Source.ADMIN, datetime.now(UTC)))
    change = PolicyChange(
        policy_subject(project), project, policy, Positioned(fact, "sandbox-lifecycle", 0, 10**12)
    )
    pool = await asyncpg.create_pool(prepared.database_url, min_size=1, max_size=2)
    try:
        other_replica = PolicyKeeper(StoredPolicies(pool), _NoRedis())
        await other_replica.load()
        assert other_replica.book.governs(project).idle_seconds is None
        async with policy_changes(prepared.database_url) as listening:
            async with PostgresStore(pool).transaction() as tx:
                await tx.save([], [], [("notify-test", 0, 1)], [change])
                await asyncio.sleep(0.3)
                assert not listening.changed.is_set()  # not before the commit
            await asyncio.wait_for(listening.changed.wait(), timeout=2)
            await other_replica.refresh("notify")
        assert other_replica.book.governs(project).idle_seconds == 777
    finally:
        async with pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM project_policies WHERE subject = $1", policy_subject(project)
            )
            await conn.execute("DELETE FROM projector_offsets WHERE topic = 'notify-test'")
        await pool.close()
