"""Soak: the whole stack under steady load for half an hour, to show that nothing grows without
bound (issue 15, item 14). `make soak` starts it on the stack `make up` runs (every part on:
ingest, projector, status-api, the enforcer's ticker and reconciler, the actuator, the E2B
simulator), with the settings it states in its first lines.

`make soak` builds the stack from nothing in a state folder of its own and removes it at the end.

Load: a fleet of sandboxes created for real in the E2B simulator (so the reconciler agrees with
the read model), then every minute SOAK_RATE signed `updated` webhooks per second over that fleet
(bench/loadgen, open loop), while SOAK_CLIENTS server-sent-event clients each follow one
sandbox's project and send a heartbeat every SOAK_HEARTBEAT_SECONDS. Each minute it reports
Redis's memory and key count, PostgreSQL's size (the history table on its own), and the resident
memory of every process; at the end, how each moved over the second half of the run.

    make soak      # SOAK_MINUTES=30, SOAK_RATE=1000, SOAK_CLIENTS=1000, SOAK_FLEET=5000
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import redis.asyncio as aioredis

from bench.loadgen import Report, Target, attack
from bench.run_all import RUN_DIR, machine
from bench.sse_clients import tree_rss_bytes
from bench.webhooks import signed_webhook
from sandbox_common.readmodel.deadlines import IDLE_OVERRIDE_KEY
from sandbox_common.settings import load
from sandboxctl.settings import Settings
from status_api.auth import Claims, mint

MINUTES = int(os.environ.get("SOAK_MINUTES", "30"))
RATE = int(os.environ.get("SOAK_RATE", "1000"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "1000"))
FLEET = int(os.environ.get("SOAK_FLEET", "5000"))
HEARTBEAT_SECONDS = float(os.environ.get("SOAK_HEARTBEAT_SECONDS", "30"))
PROCESSES = (
    "ingest",
    "projector",
    "status-api",
    "enforcer",
    "actuator",
    "e2b-sim",
    "kafka",
    "postgres",
    "redis",
)


@dataclass
class Minute:
    minute: int
    webhooks: Report
    redis_used_mib: float
    redis_keys: int
    postgres_mib: float
    history_mib: float
    history_rows: int
    rss_mib: dict[str, float]
    sse_events: int
    sse_open: int
    heartbeats_ok: int
    heartbeats_failed: int

    def line(self) -> str:
        rss = " ".join(f"{k} {v:.0f}" for k, v in self.rss_mib.items())
        w = self.webhooks
        return (
            f"[soak] min {self.minute:>2}: webhooks {w.throughput:5.0f} ok/s"
            f" (p99 {w.p99_ms:6.1f} ms, {w.success * 100:5.1f}% 2xx)"
            f" | Redis {self.redis_used_mib:6.1f} MiB, {self.redis_keys:,} keys"
            f" | PostgreSQL {self.postgres_mib:6.0f} MiB (history {self.history_mib:.0f} MiB,"
            f" ~{self.history_rows:,} rows) | SSE {self.sse_open} open, {self.sse_events:,} events"
            f" | heartbeats {self.heartbeats_ok:,} ok {self.heartbeats_failed} failed"
            f" | RSS MiB: {rss}"
        )


@dataclass
class Clients:
    """The SSE clients' counters (one event loop: no locks needed)."""

    events: int = 0
    open: int = 0
    heartbeats_ok: int = 0
    heartbeats_failed: int = 0
    errors: list[str] = field(default_factory=list)


async def seed_fleet(settings: Settings, run: str) -> list[tuple[str, str]]:
    """(sandbox id, project) of FLEET sandboxes created in the simulator through its REST API,
    which announces each to ingest with a signed `created` webhook, as E2B does."""
    metadata_base = {IDLE_OVERRIDE_KEY: "86400"}  # never idle-paused during the soak
    fleet: list[tuple[str, str]] = []
    headers = {"X-API-Key": settings.e2b_api_key or ""}
    async with httpx.AsyncClient(base_url=settings.e2b_api_url, headers=headers) as api:
        sem = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            project = f"soak-{run}-{i}"
            body = {
                "templateID": "base",
                "timeout": 3600,
                "metadata": {settings.project_metadata_key: project, **metadata_base},
            }
            async with sem:
                for _ in range(20):
                    r = await api.post("/sandboxes", json=body)
                    if r.status_code == 201:
                        fleet.append((r.json()["sandboxID"], project))
                        return
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                r.raise_for_status()

        await asyncio.gather(*(create(i) for i in range(FLEET)))
    return fleet


async def retire_fleet(settings: Settings, fleet: list[tuple[str, str]]) -> None:
    headers = {"X-API-Key": settings.e2b_api_key or ""}
    async with httpx.AsyncClient(base_url=settings.e2b_api_url, headers=headers) as api:
        sem = asyncio.Semaphore(32)

        async def kill(sandbox_id: str) -> None:
            async with sem:
                await api.delete(f"/sandboxes/{sandbox_id}")

        await asyncio.gather(*(kill(sid) for sid, _ in fleet))


async def follow(settings: Settings, projects: list[str], counters: Clients) -> None:
    """One stream per project, and its heartbeats, until cancelled."""
    base = f"http://127.0.0.1:{settings.status_api_port}"
    now = int(time.time())
    limits = httpx.Limits(max_connections=2 * len(projects) + 10)
    timeout = httpx.Timeout(10.0, read=None)  # a held stream is quiet between keep-alives
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:

        async def client(project: str, offset: float) -> None:
            jwt = mint(
                settings.status_api_jwt_secret,
                Claims(projects=[project], admin=False, ttl_seconds=4 * 3600, now=now),
            )
            auth = {"Authorization": f"Bearer {jwt}"}
            beats = asyncio.create_task(heartbeat(project, auth, offset))
            try:
                url = f"{base}/api/projects/{project}/sandbox/stream"
                async with http.stream("GET", url, headers=auth) as r:
                    r.raise_for_status()
                    counters.open += 1
                    try:
                        async for line in r.aiter_lines():
                            if line.startswith("data:"):
                                counters.events += 1
                    finally:
                        counters.open -= 1
            except httpx.HTTPError as exc:
                counters.errors.append(f"{project}: {exc!r}")
            finally:
                beats.cancel()

        async def heartbeat(project: str, auth: dict[str, str], offset: float) -> None:
            await asyncio.sleep(offset)
            url = f"{base}/api/projects/{project}/sandbox/activity"
            while True:
                try:
                    r = await http.post(url, headers=auth)
                    failure = None if r.status_code == 202 else f"{r.status_code} {r.text[:120]}"
                except httpx.HTTPError as exc:
                    failure = repr(exc)
                if failure is None:
                    counters.heartbeats_ok += 1
                else:
                    counters.heartbeats_failed += 1
                    if len(counters.errors) < 20:
                        counters.errors.append(f"heartbeat {project}: {failure}")
                await asyncio.sleep(HEARTBEAT_SECONDS)

        spread = HEARTBEAT_SECONDS / max(1, len(projects))
        await asyncio.gather(*(client(p, i * spread) for i, p in enumerate(projects)))


def minute_of_webhooks(settings: Settings, fleet: list[tuple[str, str]], n: int) -> list[Target]:
    url = f"http://127.0.0.1:{settings.ingest_port}/api/webhooks/e2b"
    now = datetime.now(UTC)
    targets = []
    for i in range(n):
        sandbox_id, project = fleet[i % len(fleet)]
        at = now + timedelta(microseconds=i)
        body, headers = signed_webhook(
            settings,
            "sandbox.lifecycle.updated",
            sandbox_id,
            project,
            timestamp=at,
            extra_data={"set_timeout": (at + timedelta(hours=1)).isoformat()},
            metadata={IDLE_OVERRIDE_KEY: "86400"},
        )
        targets.append(Target("POST", url, headers, body))
    return targets


def _pid(name: str) -> int | None:
    try:
        return int((RUN_DIR / f"{name}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def rss_mib() -> dict[str, float]:
    out = {}
    for name in PROCESSES:
        pid = _pid(name)
        if pid is not None:
            out[name] = tree_rss_bytes(pid) / 2**20
    return out


async def stores(settings: Settings) -> tuple[float, int, float, float, int]:
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        info = await client.info("memory")
        keys = int(await client.dbsize())
    finally:
        await client.aclose()
    conn = await asyncpg.connect(settings.database_url)
    try:
        db = await conn.fetchval("SELECT pg_database_size(current_database())")
        history = await conn.fetchval("SELECT pg_total_relation_size('sandbox_events')")
        # Partitions, if the table is partitioned: their sizes add up.
        history += await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint"
            " FROM pg_inherits WHERE inhparent = 'sandbox_events'::regclass"
        )
        rows = await conn.fetchval(
            "SELECT coalesce(sum(reltuples), 0)::bigint FROM pg_class"
            " WHERE oid = 'sandbox_events'::regclass OR oid IN"
            " (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'sandbox_events'::regclass)"
        )
    finally:
        await conn.close()
    return int(info["used_memory"]) / 2**20, keys, int(db) / 2**20, int(history) / 2**20, int(rows)


def growth(first: float, last: float) -> str:
    return f"{first:,.1f} -> {last:,.1f} ({last - first:+,.1f})"


def summary(minutes: list[Minute]) -> list[str]:
    """How each figure moved over the second half (after warm-up and the dedupe TTL)."""
    half = minutes[len(minutes) // 2 :]
    a, b = half[0], half[-1]
    span = b.minute - a.minute
    lines = [
        f"second half (minutes {a.minute}-{b.minute}):",
        f"  Redis used MiB {growth(a.redis_used_mib, b.redis_used_mib)},"
        f" keys {a.redis_keys:,} -> {b.redis_keys:,}",
        f"  PostgreSQL MiB {growth(a.postgres_mib, b.postgres_mib)}"
        f" (history {growth(a.history_mib, b.history_mib)};"
        f" {(b.history_mib - a.history_mib) / max(1, span):.1f} MiB/min by design,"
        " bounded by HISTORY_RETENTION_DAYS)",
    ]
    lines.extend(
        f"  {name} RSS MiB {growth(a.rss_mib[name], b.rss_mib[name])}"
        for name in b.rss_mib
        if name in a.rss_mib
    )
    delivered = sum(m.webhooks.throughput * 60 for m in minutes)
    lines.append(
        f"webhooks: {delivered:,.0f} answered 2xx over {len(minutes)} minutes;"
        f" SSE events received {minutes[-1].sse_events:,};"
        f" heartbeats {minutes[-1].heartbeats_ok:,} ok, {minutes[-1].heartbeats_failed} failed"
    )
    return lines


async def soak(settings: Settings) -> list[Minute]:
    run = uuid.uuid4().hex[:6]
    print(f"[soak] creating {FLEET:,} sandboxes in the simulator ...", flush=True)
    fleet = await seed_fleet(settings, run)
    await asyncio.sleep(10)  # their `created` webhooks reach the read model
    counters = Clients()
    followed = [p for _, p in fleet[:CLIENTS]]
    followers = asyncio.create_task(follow(settings, followed, counters))
    minutes: list[Minute] = []
    try:
        for minute in range(1, MINUTES + 1):
            targets = await asyncio.to_thread(minute_of_webhooks, settings, fleet, RATE * 60)
            report = await asyncio.to_thread(attack, targets, rate=RATE, seconds=60)
            used, keys, db, history, rows = await stores(settings)
            m = Minute(
                minute,
                report,
                used,
                keys,
                db,
                history,
                rows,
                rss_mib(),
                counters.events,
                counters.open,
                counters.heartbeats_ok,
                counters.heartbeats_failed,
            )
            minutes.append(m)
            print(m.line(), flush=True)
    finally:
        followers.cancel()
        await asyncio.gather(followers, return_exceptions=True)
        await retire_fleet(settings, fleet)
    for error in counters.errors[:5]:
        print(f"[soak] client error: {error}")
    return minutes


def main() -> None:
    settings = load(Settings)
    settings.require("e2b_webhook_secret", "status_api_jwt_secret", "e2b_api_key")
    print(f"[soak] machine: {machine()}")
    print(
        f"[soak] {MINUTES} min at {RATE:,} webhooks/s over {FLEET:,} sandboxes,"
        f" {CLIENTS:,} SSE clients with a heartbeat every {HEARTBEAT_SECONDS:.0f} s;"
        f" INGEST_DEDUPE_TTL_SECONDS={os.environ.get('INGEST_DEDUPE_TTL_SECONDS', '3600')}"
        " (as the services were started)",
        flush=True,
    )
    minutes = asyncio.run(soak(settings))
    lines = summary(minutes)
    print("\n".join(lines))
    out = RUN_DIR.parent / "soak-report.json"  # in STATE_DIR, which the soak removes next time
    out.write_text(
        json.dumps(
            {
                "machine": machine(),
                "when": datetime.now(UTC).isoformat(),
                "minutes": [asdict(m) for m in minutes],
                "summary": lines,
            },
            indent=2,
        )
    )
    print(f"[soak] raw figures in {out}")


if __name__ == "__main__":
    main()
