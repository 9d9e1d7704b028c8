"""Shared by the hostile-input suites: a tally of what was sent and answered, the topic check
(nothing but the accepted events reached `sandbox-lifecycle`, each once) and the health check
run after each suite."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from aiokafka import TopicPartition

from tests.connected.conftest import Stack
from tests.connected.helpers import (
    ago,
    eventually,
    post_webhook,
    records_since,
    status_of,
    unique,
    webhook,
)

# The counts of every suite land here (one JSON object per suite) for docs/RELIABILITY.md.
COUNTS_FILE = (
    Path(os.environ.get("STATE_DIR", Path(__file__).parents[2] / ".state"))
    / "logs"
    / "tests"
    / "hostile-counts.jsonl"
)


@dataclass
class Tally:
    """Requests sent per class of hostile input, and the status codes they got."""

    suite: str
    sent: Counter[str] = field(default_factory=Counter)
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    accepted_ids: Counter[str] = field(default_factory=Counter)  # answered `accepted`
    sent_ids: set[str] = field(default_factory=set)  # every event id put in a body
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, status: int, detail: str = "") -> None:
        with self._lock:
            self.sent[kind] += 1
            self.answers[(kind, status)] += 1
        assert status < 500, f"{kind}: {status} for hostile input {detail[:300]}"

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def write(self) -> None:
        by_kind: dict[str, dict[str, int]] = {}
        for (kind, status), n in sorted(self.answers.items()):
            by_kind.setdefault(kind, {})[str(status)] = n
        COUNTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        with COUNTS_FILE.open("a") as out:
            entry = {"suite": self.suite, "total": self.total, "by_kind": by_kind}
            out.write(json.dumps(entry) + "\n")
        print(f"\n[hostile] {self.suite}: {self.total} requests", json.dumps(by_kind, indent=1))


def event_id_of(body: bytes) -> str | None:
    """The body's `id` when it has one a record could carry (to find our records on the topic)."""
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        return None
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


async def assert_only_accepted_published(
    stack: Stack, before: dict[TopicPartition, int], tally: Tally
) -> int:
    """Every record after `before` that carries an id we sent was answered `accepted`, and
    every accepted id is on the topic exactly once. Returns the number of our records."""
    ours = Counter(
        json.loads(r.value)["event_id"]
        for r in await records_since(stack.infra.kafka, before)
        if r.value and json.loads(r.value).get("event_id") in tally.sent_ids
    )
    refused = set(ours) - set(tally.accepted_ids)
    assert not refused, f"published but never answered accepted: {sorted(refused)[:5]}"
    twice = {i: n for i, n in ours.items() if n > 1}
    assert not twice, f"published more than once: {list(twice.items())[:5]}"
    missing = set(tally.accepted_ids) - set(ours)
    assert not missing, f"answered accepted but not on the topic: {sorted(missing)[:5]}"
    return sum(ours.values())


async def assert_healthy(client: httpx.AsyncClient, stack: Stack) -> None:
    """Probes answer, and a normal webhook still goes all the way to a status read."""
    for service in (stack.ingest, stack.projector, stack.status_api):
        assert (await client.get(f"{service.url}/healthz")).status_code == 200
        assert (await client.get(f"{service.url}/readyz")).status_code == 200
    project, sandbox = unique("after-hostile"), unique("sbx")
    r = await post_webhook(client, stack, webhook("created", sandbox, project, seconds=ago(0)))
    assert r.status_code == 200, r.text

    async def visible() -> bool:
        answer = await status_of(client, stack, project)
        return answer.status_code == 200 and answer.json()["sandboxId"] == sandbox

    await eventually(visible, within=20)


async def assert_stored(stack: Stack, event_ids: set[str]) -> None:
    """The projector stored every accepted event in the history: none of them stopped it."""

    async def stored() -> bool:
        conn = await asyncpg.connect(stack.infra.database_url)
        try:
            n = await conn.fetchval(
                "SELECT count(*) FROM sandbox_events WHERE event_id = ANY($1::text[])",
                list(event_ids),
            )
        finally:
            await conn.close()
        return bool(n == len(event_ids))

    await eventually(stored, within=60, interval=0.5)
