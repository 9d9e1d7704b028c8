"""Writes docs/CAPACITY.md from bench/results.json through the model in bench/capacity_model.py.

    uv run python -m bench.capacity [--headroom 2.0] [--check]     (make capacity)

`make bench` runs it after bench/run_all.py, so the document follows each benchmark;
tests/unit/test_capacity.py fails when the committed document is not what the committed
results make. --check compares instead of writing (exit 1 when stale).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from bench.capacity_model import (
    PARTS,
    Assumptions,
    Ceiling,
    Measured,
    fleet_ceilings,
    history_bytes_per_fact,
    plan_fleet,
    plan_rate,
    webhook_ceilings,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "CAPACITY.md"


def measured(results: dict[str, Any]) -> Measured:
    """The model's inputs from a bench/results.json (KeyError when one is missing)."""
    cpu = results["cpu"]["us_per_webhook"]
    fp = results["footprint"]
    return Measured(
        cpu_us_per_webhook={p: float(cpu[p]) for p in PARTS},
        status_api_peak_reads_per_s=float(results["status_api_peak_reads_per_s"]),
        redis_bytes_per_sandbox=float(fp["redis_bytes_per_sandbox"]),
        redis_bytes_per_feed_entry=float(fp["redis_bytes_per_feed_entry"]),
        redis_bytes_per_dedupe_marker=float(fp["redis_bytes_per_dedupe_marker"]),
        postgres_bytes_per_sandbox=float(fp["postgres_bytes_per_sandbox"]),
        postgres_bytes_per_history_row=float(fp["postgres_bytes_per_history_row"]),
    )


def _n(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def _gib(x: float) -> str:
    return f"{x / 1024:,.1f} TiB" if x >= 1024 else f"{x:,.1f} GiB"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def _rates(m: Measured, a: Assumptions) -> str:
    plans = [plan_rate(r, m, a) for r in a.webhook_rates]
    rows = [
        [
            "ingest replicas (cores)",
            *(f"{p.ingest_replicas} ({p.cores['ingest']:.1f})" for p in plans),
        ],
        [
            "projector replicas (cores)",
            *(f"{p.projector_replicas} ({p.cores['projector']:.1f})" for p in plans),
        ],
        ["`sandbox-lifecycle` partitions", *(str(p.partitions) for p in plans)],
        [
            f"Kafka cores, all brokers (x{a.kafka_replication_factor} copies)",
            *(f"{p.cores['kafka']:.1f}" for p in plans),
        ],
        ["PostgreSQL cores (primary)", *(f"{p.cores['postgres']:.1f}" for p in plans)],
        [
            "Redis cores / instances (shards)",
            *(f"{p.cores['redis']:.1f} / {p.redis_shards}" for p in plans),
        ],
        ["Redis, dedupe markers", *(_gib(p.redis_markers_gib) for p in plans)],
        ["PostgreSQL history disk a day", *(_gib(p.history_gib_per_day) for p in plans)],
        [
            f"PostgreSQL history disk, {a.history_retention_days} days",
            *(_gib(p.history_gib_retained) for p in plans),
        ],
    ]
    return _table(["webhooks/s", *(f"{r:,}" for r in a.webhook_rates)], rows)


def _fleets(m: Measured, a: Assumptions) -> str:
    plans = [plan_fleet(s, m, a) for s in a.fleet_sizes]
    rows = [
        ["Redis, read model (+ change feed)", *(_gib(p.redis_read_model_gib) for p in plans)],
        [
            "PostgreSQL `sandboxes` (disk; keep it in memory)",
            *(_gib(p.postgres_state_gib) for p in plans),
        ],
        ["status reads/s (polling)", *(_n(p.status_reads_per_s) for p in plans)],
        ["status-api replicas", *(str(p.status_api_replicas) for p in plans)],
        ["E2B calls/s (pauses, wakes)", *(_n(p.e2b_calls_per_s) for p in plans)],
    ]
    return _table(["sandboxes", *(f"{s:,}" for s in a.fleet_sizes)], rows)


def _redis_grid(m: Measured, a: Assumptions) -> str:
    rows = []
    for s in a.fleet_sizes:
        fleet = plan_fleet(s, m, a).redis_read_model_gib
        cells = [_gib(fleet + plan_rate(r, m, a).redis_markers_gib) for r in a.webhook_rates]
        rows.append([f"{s:,} sandboxes", *cells])
    return _table(["Redis memory", *(f"{r:,} webhooks/s" for r in a.webhook_rates)], rows)


def _ceilings(found: list[Ceiling]) -> str:
    return "\n".join(
        f"{i}. {c.part}: {c.limit:,.0f} {c.unit} ({c.why})" for i, c in enumerate(found, 1)
    )


def _inputs(results: dict[str, Any], m: Measured, a: Assumptions) -> str:
    cpu = ", ".join(f"{p} {m.cpu_us_per_webhook[p]:g}" for p in PARTS)
    src = results.get("sources", {})
    rows = [
        [
            f"CPU per webhook, us ({results['cpu']['measurement']})",
            cpu,
            src.get("cpu", "bench/results.json"),
        ],
        [
            "status-api reads/s, one replica at its peak",
            _n(m.status_api_peak_reads_per_s),
            src.get("status_api_peak_reads_per_s", "bench/results.json"),
        ],
        [
            "Redis bytes per sandbox / feed entry / dedupe marker",
            " / ".join(
                f"{b:,.0f}"
                for b in (
                    m.redis_bytes_per_sandbox,
                    m.redis_bytes_per_feed_entry,
                    m.redis_bytes_per_dedupe_marker,
                )
            ),
            src.get("footprint", "bench/footprint.py"),
        ],
        [
            "PostgreSQL bytes per `sandboxes` row / history row",
            f"{m.postgres_bytes_per_sandbox:,.0f} / {m.postgres_bytes_per_history_row:,.0f}",
            src.get("footprint", "bench/footprint.py"),
        ],
    ]
    return _table(["measured", "figure", "source"], rows).replace("|---:", "|---")


_WHY = {
    "headroom": "capacity per unit of measured load: peaks, run-to-run noise, a replica lost",
    "replica_cores": "a replica is one Python process (one event loop): one core at most",
    "min_replicas": "one may be drained or restarted at any time (PodDisruptionBudget)",
    "redis_cores": "Redis runs commands on one thread; more means Redis Cluster (REDIS_CLUSTER)",
    "postgres_primary_cores": "a large primary; every write goes to it",
    "kafka_replication_factor": "the bench's one broker kept one copy; followers write each again",
    "dedupe_ttl_seconds": "INGEST_DEDUPE_TTL_SECONDS",
    "change_feed_entries": "CHANGE_FEED_MAX_LENGTH",
    "history_retention_days": "HISTORY_RETENTION_DAYS",
    "history_bytes_per_fact_soak": "the soak's growth (RELIABILITY.md), if above the measured",
    "redis_maxmemory_bytes": "REDIS_MAXMEMORY of make up and docker-compose (2gb)",
    "min_partitions": "the chart's kafka.topics.lifecyclePartitions",
    "partition_growth": "partitions are fixed at install: room to double the projector",
    "running_share": "assumed share of the fleet RUNNING (and so polled) at a time",
    "poll_seconds": "pollAfterMs while RUNNING (the contract)",
    "e2b_calls_per_sandbox_day": "assumed idle pauses and wakes per sandbox a day",
    "e2b_budget_per_s": "E2B_RATE_PER_SECOND's default",
    "e2b_team_limit_per_s": "E2B: 20,000 requests / 30 s per team",
}


def _assumptions(a: Assumptions) -> str:
    rows = [
        [f"`{f.name}`", f"{getattr(a, f.name):,.6g}", _WHY[f.name]]
        for f in dataclasses.fields(a)
        if f.name in _WHY
    ]
    return _table(["assumption", "value", "why"], rows).replace("|---:", "|---")


def render(results: dict[str, Any], a: Assumptions) -> str:
    m = measured(results)
    first_rate, first_fleet = webhook_ceilings(m, a)[0], fleet_ceilings(m, a)[0]
    return TEMPLATE.format(
        inputs=_inputs(results, m, a),
        assumptions=_assumptions(a),
        headroom=f"{a.headroom:g}",
        fact=f"{history_bytes_per_fact(m, a):,.0f}",
        rates=_rates(m, a),
        fleets=_fleets(m, a),
        grid=_redis_grid(m, a),
        rate_ceilings=_ceilings(webhook_ceilings(m, a)),
        fleet_ceilings=_ceilings(fleet_ceilings(m, a)),
        first_rate=f"{first_rate.part} at {first_rate.limit:,.0f} webhooks/s",
        first_fleet=f"{first_fleet.part} at {first_fleet.limit:,.0f} sandboxes",
        history=_gib(plan_rate(a.webhook_rates[0], m, a).history_gib_retained),
        days=a.history_retention_days,
        rate=a.webhook_rates[0],
    )


TEMPLATE = """# Capacity

Generated by `uv run python -m bench.capacity` (`make capacity`; `make bench` runs it after
bench/run_all.py) from bench/results.json through the model in bench/capacity_model.py. Do not
edit by hand: tests/unit/test_capacity.py fails when this file is not what the committed results
make. Every figure below is a measured input or an assumption listed here, times a headroom of
**{headroom}** (`--headroom`).

## Inputs

{inputs}

CPU per webhook is the whole system's work for one signed webhook at the bench's highest fixed
rate, where batching is closest to production's (per webhook it falls as the rate rises:
PERFORMANCE.md's CPU table). Each webhook becomes one fact; history costs {fact} bytes a fact.

{assumptions}

## By webhook rate

{rates}

Replicas are one core each; a consumer beyond the partitions idles, so partitions are fixed at
install for the largest projector foreseen (docs/OPERATIONS.md, Scaling).

## By fleet size

{fleets}

## Redis memory, read model and markers together

{grid}

Set Redis's `maxmemory` above the figure (times the headroom): at it Redis refuses writes and
status stops moving (OPERATIONS.md, Redis memory).

## What saturates first

By webhook rate, the parts that do not scale out by adding replicas, at 100% of their cores
(divide by the headroom to plan):

{rate_ceilings}

By fleet size:

{fleet_ceilings}

So, by webhook rate: **{first_rate}**; then shard Redis (`REDIS_CLUSTER=true`).
By fleet size: **{first_fleet}**; then raise `REDIS_MAXMEMORY`.
ingest, status-api and Kafka scale out by adding replicas and brokers. Before any CPU limit,
the disk: the history is the largest store at every rate ({history} for
{days} days at {rate:,} webhooks/s), so `HISTORY_RETENTION_DAYS` is chosen for the disk there is.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--headroom", type=float, default=Assumptions.headroom)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    text = render(json.loads(RESULTS.read_text()), Assumptions(headroom=args.headroom))
    if args.check:
        if DOC.read_text() != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run make capacity", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"[capacity] {DOC.relative_to(ROOT)} written from {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
