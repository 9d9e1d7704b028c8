"""Dead letters (issue 5): a record the stores keep refusing (a trigger stands in for the cause)
is dead-lettered with its reason and origin after bounded retries, its partition moves on, and
`sandboxctl dlq redrive` after the fix applies it; a second redrive republishes nothing."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from sandbox_common import dead_letters, topics
from sandboxctl.dlq import redrive
from sandboxctl.settings import Settings
from tests.connected.conftest import Stack, start_group_at_end
from tests.connected.helpers import (
    end_offsets,
    eventually,
    find_record,
    post_webhook,
    status_of,
    unique,
    webhook,
)

pytestmark = pytest.mark.connected


async def test_a_record_that_keeps_failing_is_dead_lettered_and_redriven_after_the_fix(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    bad_sbx, bad_project = unique("sbx-refused"), unique("proj-refused")
    good_sbx, good_project = unique("sbx-fine"), unique("proj-fine")
    trigger = f"refuse_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(stack.infra.database_url)
    await conn.execute(
        f"CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF NEW.sandbox_id = '{bad_sbx}' THEN RAISE EXCEPTION 'refused by {trigger}'; END IF;"
        " RETURN NEW; END $$"
    )
    await conn.execute(
        f"CREATE TRIGGER {trigger} BEFORE INSERT ON sandbox_events"
        f" FOR EACH ROW EXECUTE FUNCTION {trigger}()"
    )
    group = f"redrive-test-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(stack.infra.kafka, group, topics.LIFECYCLE_DLQ)
    dlq_start = await end_offsets(stack.infra.kafka, topics.LIFECYCLE_DLQ)
    try:
        for sbx, project in ((bad_sbx, bad_project), (good_sbx, good_project)):
            body = webhook("created", sbx, project)
            assert (await post_webhook(client, stack, body)).status_code == 200

        async def good_visible() -> bool:
            return (await status_of(client, stack, good_project)).status_code == 200

        await eventually(good_visible, within=40, interval=0.2)
        dead = await eventually(
            lambda: find_record(stack.infra.kafka, dlq_start, bad_sbx.encode()), within=40
        )
        headers = {k: v.decode() for k, v in dead.headers}
        assert f"refused by {trigger}" in headers[dead_letters.REASON]
        assert headers[dead_letters.REASON].startswith("processing failed after")
        assert headers[dead_letters.ORIGINAL_TOPIC] == topics.LIFECYCLE
        assert int(headers[dead_letters.ORIGINAL_OFFSET]) >= 0
        assert (await status_of(client, stack, bad_project)).status_code == 404
    finally:
        await conn.execute(f"DROP TRIGGER IF EXISTS {trigger} ON sandbox_events")
        await conn.execute(f"DROP FUNCTION IF EXISTS {trigger}()")
        await conn.close()

    settings = Settings(kafka_bootstrap_servers=stack.infra.kafka)
    lines = await redrive(settings, group, max_redrives=3, dry_run=False)
    assert any(line.startswith("redriven") for line in lines), lines

    async def bad_visible() -> bool:
        r = await status_of(client, stack, bad_project)
        return r.status_code == 200 and r.json()["status"] == "RUNNING"

    await eventually(bad_visible, within=20, interval=0.2)
    await asyncio.sleep(0.5)
    assert not [
        line for line in await redrive(settings, group, 3, False) if line.startswith("redriven")
    ]
