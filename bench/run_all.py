"""Runs the benchmarks against the stack `make up` started and rewrites docs/PERFORMANCE.md.

    make up && make bench          (or: source .state/env.sh && uv run python -m bench.run_all)

Everything is co-located on this machine: Kafka, PostgreSQL, Redis, the services, the load
generator. Figures that are compared are measured in the same run, one after the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import cpu, enforcer_tick, footprint, freshness, pause_throughput, servers, sse_clients
from bench import replay as replay_bench
from bench.loadgen import Report, Target, attack
from bench.projector_throughput import ProjectorResult, live_projector_caught_up, measure
from bench.webhooks import signed_webhook
from sandbox_common.readmodel import IDLE_OVERRIDE_KEY
from sandbox_common.settings import load
from sandboxctl.settings import Settings
from status_api.auth import Claims, mint

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = Path(os.environ.get("STATE_DIR", ROOT / ".state")) / "run"
# measurement label -> CPU seconds per part of the system during it
CPU_SHARES: dict[str, dict[str, float]] = {}
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))


def webhook_targets(
    settings: Settings,
    url: str,
    count: int,
    run: str,
    sandbox_ids: list[str] | None = None,
    event_type: str = "sandbox.lifecycle.updated",
) -> list[Target]:
    """`count` signed webhooks over 5,000 sandboxes of this run (or over `sandbox_ids`)."""
    ids = sandbox_ids or [f"bench-{run}-{i}" for i in range(5000)]
    targets = []
    now = datetime.now(UTC)
    for i in range(count):
        sandbox = ids[i % len(ids)]
        body, headers = signed_webhook(
            settings,
            event_type,
            sandbox,
            f"{sandbox}-p",
            timestamp=now,
            extra_data={"set_timeout": now.isoformat()},
        )
        targets.append(Target("POST", url, headers, body))
    return targets


def retire(settings: Settings, sandbox_ids: list[str], rate: int = 2500) -> None:
    """Kills a measurement's made-up sandboxes once it is over. Left RUNNING, they reach their
    idle deadlines three minutes later, in the middle of another measurement, and the enforcer
    pauses them a thousand per tick: work the measured system does, but not the work measured."""
    url = f"http://127.0.0.1:{settings.ingest_port}/api/webhooks/e2b"
    targets = webhook_targets(
        settings, url, len(sandbox_ids), "", sandbox_ids, event_type="sandbox.lifecycle.killed"
    )
    attack(targets, rate=rate, seconds=len(targets) / rate)


def bench_ingest(settings: Settings) -> dict[str, Report]:
    url = f"http://127.0.0.1:{settings.ingest_port}/api/webhooks/e2b"
    run = uuid.uuid4().hex[:6]
    results: dict[str, Report] = {}
    attack(webhook_targets(settings, url, 2000, run + "w"), rate=500, seconds=3)  # warm-up
    retire(settings, [f"bench-{run}w-{i}" for i in range(5000)])
    for rate in (1000, 2000, 3000):
        targets = webhook_targets(settings, url, int(rate * SECONDS * 1.1), f"{run}{rate}")
        before = cpu.snapshot(RUN_DIR)
        results[f"ingest fixed {rate}/s"] = attack(targets, rate=rate, seconds=SECONDS)
        CPU_SHARES[f"ingest fixed {rate}/s"] = cpu.delta(before, cpu.snapshot(RUN_DIR))
        retire(settings, [f"bench-{run}{rate}-{i}" for i in range(5000)])
    targets = webhook_targets(settings, url, int(8000 * SECONDS), run + "peak")
    results["ingest peak (64 connections)"] = attack(
        targets, rate=0, seconds=SECONDS, connections=64
    )
    retire(settings, [f"bench-{run}peak-{i}" for i in range(5000)])
    return results


def seed_sandboxes(settings: Settings, count: int) -> list[str]:
    """Real path: signed webhooks through ingest and the projector into Redis."""
    run = uuid.uuid4().hex[:6]
    projects = [f"read-{run}-{i}" for i in range(count)]
    ingest = f"http://127.0.0.1:{settings.ingest_port}/api/webhooks/e2b"
    with httpx.Client(timeout=10) as client:
        for project in projects:
            # Idle for an hour before a pause: with the default three minutes, the enforcer
            # paused all of them in the middle of the status-api measurements, and status-api
            # warned about each first (work the system does, but not the work measured).
            body, headers = signed_webhook(
                settings,
                "sandbox.lifecycle.created",
                f"sbx-{project}",
                project,
                metadata={IDLE_OVERRIDE_KEY: "3600"},
            )
            client.post(ingest, content=body, headers=headers).raise_for_status()
        # Every one, not just the last: partitions progress independently, and a measurement
        # that starts while some are still on their way counts 404s.
        # One token per project: status-api rate-limits per token.
        now = int(time.time())
        tokens = {
            p: mint(
                settings.status_api_jwt_secret,
                Claims(projects=[p], admin=False, ttl_seconds=600, now=now),
            )
            for p in projects
        }
        base = f"http://127.0.0.1:{settings.status_api_port}/api/projects"
        waiting = list(projects)
        deadline = time.monotonic() + 120
        while waiting:
            waiting = [
                p
                for p in waiting
                if client.get(
                    f"{base}/{p}/sandbox", headers={"Authorization": f"Bearer {tokens[p]}"}
                ).status_code
                != 200
            ]
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"{len(waiting)} seeded sandboxes not visible after 120 s")
            if waiting:
                time.sleep(0.5)
    return projects


def bench_status_api(settings: Settings, projects: list[str]) -> dict[str, Report]:
    asyncio.run(live_projector_caught_up())  # ingest's measurements left a backlog
    now = int(time.time())
    api = [
        Target(
            "GET",
            f"http://127.0.0.1:{settings.status_api_port}/api/projects/{p}/sandbox",
            {
                "Authorization": "Bearer "
                + mint(
                    settings.status_api_jwt_secret,
                    Claims(projects=[p], admin=False, ttl_seconds=3600, now=now),
                )
            },
        )
        for p in projects
    ]
    port = int(os.environ.get("BASELINE_PORT", "8091"))
    bare = [Target("GET", f"http://127.0.0.1:{port}/bare/sbx-{p}", {}) for p in projects]
    baseline = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline_app"],
        cwd=ROOT,
        env={**os.environ, "BASELINE_PORT": str(port)},
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/bare/none")
        attack(api, rate=500, seconds=3)  # warm-up both
        attack(bare, rate=500, seconds=3)
        results: dict[str, Report] = {}
        for rate in (1000, 2000):
            results[f"status-api fixed {rate}/s"] = attack(api, rate=rate, seconds=SECONDS)
            results[f"bare Litestar + 1 Redis read, fixed {rate}/s"] = attack(
                bare, rate=rate, seconds=SECONDS
            )
        results["status-api peak (32 connections)"] = attack(
            api, rate=0, seconds=SECONDS, connections=32
        )
        results["bare Litestar + 1 Redis read, peak (32 connections)"] = attack(
            bare, rate=0, seconds=SECONDS, connections=32
        )
        return results
    finally:
        baseline.terminate()
        baseline.wait()


def _wait_http(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(
        next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    )
    return (
        f"{os.cpu_count()} vCPU ({cpu}), {mem_kb / 1024 / 1024:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


FLOORS = {
    # label prefix -> (minimum ok/s, maximum p99 ms) from issue 2
    "ingest fixed 2000/s": (2000 * 0.99, 50.0),
    "status-api fixed 1000/s": (1000 * 0.99, 10.0),
    "status-api fixed 2000/s": (2000 * 0.99, 10.0),
    # issue 7's goal for ingest
    "ingest fixed 3000/s": (3000 * 0.99, 25.0),
}


def write_markdown(
    results: dict[str, Report],
    projector: ProjectorResult,
    ticks: list[str],
    commands: list[str],
    sse: list[str],
    path: Path,
    replay: str = "not measured in this run",
    server_table: str = "not measured in this run",
) -> None:
    rows = [
        "| measurement | ok/s | p50 ms | p90 ms | p99 ms | max ms | success | floor |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, r in results.items():
        floor = FLOORS.get(label)
        verdict = ""
        if floor:
            met = r.throughput >= floor[0] and r.p99_ms <= floor[1]
            verdict = (
                f"{'met' if met else 'MISSED'} (>= {floor[0]:.0f}/s, p99 <= {floor[1]:.0f} ms)"
            )
        rows.append(
            f"| {label} | {r.throughput:.0f} | {r.p50_ms:.2f} | {r.p90_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.max_ms:.1f} | {r.success * 100:.1f}% | {verdict} |"
        )
    api = results.get("status-api peak (32 connections)")
    bare = results.get("bare Litestar + 1 Redis read, peak (32 connections)")
    ratio = f"{api.throughput / bare.throughput:.2f}" if api and bare else "n/a"
    text = TEMPLATE.format(
        machine=machine(),
        when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        seconds=f"{SECONDS:.0f}",
        table="\n".join(rows),
        ratio=ratio,
        projector=projector.line(),
        ticks="\n".join(f"- {t}" for t in ticks),
        commands="\n".join(f"- {line}" for line in commands),
        sse="\n".join(f"- {line}" for line in sse),
        replay=replay,
        generator=_generator_cost(results),
        cpu_table=_cpu_table(results),
        server_table=server_table,
        reconciler=_reconciler_note(),
    )
    path.write_text(text)


TEMPLATE = """# Performance

Written by `make bench` (bench/run_all.py); the figures below are from its last run.

- Machine: {machine}
- When: {when}; {seconds} s per measurement, after a warm-up.
- Everything co-located on this machine: Kafka (one KRaft node, JVM), PostgreSQL, Redis, the
  services started by `make up` (the projector consuming while ingest is measured), and
  the load generator (bench/loadgen, open loop: requests leave at the fixed rate whatever the
  answers do, and latency runs from each request's scheduled time, so queueing shows up in the
  latencies instead of hiding in a slower send rate).
- {reconciler}
- ingest: signed v2 webhooks, every one a new event id, each answered only after `acks=all`.
- status-api: `GET /api/projects/{{id}}/sandbox` with a per-project JWT, over 1,000 sandboxes
  seeded through the real path (webhooks -> Kafka -> projector -> Redis). The baseline is a
  bare Litestar handler doing one Redis read, under the same server settings, measured in the
  same run right after it.

{table}

status-api peak throughput / bare Litestar baseline, same run: **{ratio}** (target >= 1: hot
reads are answered by status-api's fast lane, see services/status-api/src/status_api/fast_lane.py).

Server-sent events (bench/sse_clients.py: on the same 1,000 seeded sandboxes, one stream each)
and end-to-end freshness (bench/freshness.py: signed `created` webhooks at a fixed 1,000/s, each
a new sandbox, timed from ingest's 2xx to the sandbox's event on status-api's fleet stream;
target p99 <= 100 ms):

{sse}

Projector, a backlog folded into PostgreSQL and Redis by a fresh consumer group, after the live
projector has folded it (bench/projector_throughput.py; steady state is from the group's first
offset commit to its last): {projector}.

Enforcer, one tick over 1,000,000 running sandboxes with 10,000 due, judged in batches of 1,000
until none is left (bench/enforcer_tick.py; the other tracked sandboxes are not in the deadline
index, so their number does not matter; target <= 1 s with the publish: the 10,000 commands
and 10,000 facts acknowledged by Kafka, acks=all, to topics of the benchmark's own):

{ticks}

The command path (bench/pause_throughput.py): those 10,000 due in one tick, published to
`sandbox-commands`, carried out by one actuator process against an E2B simulator that takes
1 s per pause (E2B_MAX_CONCURRENCY=256 and E2B_RATE_PER_SECOND=400 for that process; targets:
all paused within 60 s, at least 200 pauses/s):

{commands}

Replay, `sandboxctl replay` of 1,000,000 facts over 100,000 sandboxes from a topic of its own
into PostgreSQL and Redis (bench/replay.py: the real CLI in a subprocess, timed from start to
exit: reading the topic from offset 0, folding, COPY into shadow tables, indexes, shadow keys,
both swaps; target <= 60 s): {replay}.

Load generator cost in this run: {generator}.

Where the two cores went during the ingest measurements (CPU time of each process tree, in
microseconds per request; "cores" is the average share of the machine):

{cpu_table}

The HTTP server under ingest and status-api (bench/servers.py: an empty ASGI app under each, one
worker, uvloop, same load generator, alternated per rate; the services run under uvicorn):

{server_table}

## Reading the figures

- The floors of issue 2: ingest >= 2,000 signed webhooks/s with p99 <= 50 ms, status-api
  p99 <= 10 ms at 1,000 requests/s; of issue 4: status-api p99 <= 10 ms at 2,000 requests/s
  and peak throughput at least the bare baseline's; of issue 7: ingest >= 3,000 webhooks/s
  with p99 <= 25 ms. The table marks each as met or MISSED in this run.
- The machine has two cores and the whole system shares them. At 2,000 webhooks/s ingest
  alone spends roughly half a core's time per second (see the CPU table), most of it in the
  Python HTTP, asyncio, Kafka-client and Redis-client machinery around each request rather
  than in our code; the latency tail comes from each await step of a request queueing behind
  everything else that is ready on the event loop. Removing steps (dedupe lookups share one
  MGET out at a time, markers are written behind) moved the median more than any CPU saving
  did, and freezing the start-up heap (no full collections of it) moved the tail.
- Run-to-run noise on this shared machine is large: the same build measured 30 to 60 ms p99
  at 2,000 webhooks/s across runs. Compare figures from one run only.

## Pause overshoot (measured separately)

`bench/pause_overshoot.py` needs the stack restarted for each schedule
(`ENFORCER_SCHEDULE=5s make up`), so `make bench` does not run it; figures of its last run
(2026-11-27, same machine, 20 sandboxes each with a 10 s idle timeout, deadline -> E2B pause call):

| ENFORCER_SCHEDULE | median | p95 | max |
|---|---:|---:|---:|
| `5s` | 2.6 s | 4.8 s | 5.0 s |
| `*/2 * * * *` (default) | 97.1 s | 99.3 s | 99.5 s |

A pause lands within one tick of its deadline: the overshoot is where the deadline falls in the
tick interval, plus well under a second of pipeline (tick -> command -> actuator -> E2B). The
default schedule's 20 deadlines fell inside one 5-second span, so they share one phase
(~97 s); over many sandboxes the default's overshoot spreads evenly over 0-120 s. The seed's
Inngest cron had the same 0-2 min lag; `ENFORCER_SCHEDULE=5s` cuts it to seconds at the cost of
a tick every 5 s (about 30 ms each for 100,000 running sandboxes, see above).
"""


def _reconciler_note() -> str:
    if os.environ.get("RECONCILER_ENABLED", "true").lower() in ("0", "false", "no"):
        return (
            "The stack ran with `RECONCILER_ENABLED=false`: the reconciler would otherwise\n"
            "  ask the E2B simulator about every made-up benchmark sandbox (tens of thousands,\n"
            "  none of which the simulator knows) in the middle of the measurements. The\n"
            "  enforcer ran as usual."
        )
    return "The reconciler ran as usual (`RECONCILER_ENABLED` unset)."


def _cpu_table(results: dict[str, Report]) -> str:
    rows = [
        "| measurement | " + " | ".join(cpu.PARTS) + " | load generator | cores in all |",
        "|---|" + "---:|" * (len(cpu.PARTS) + 2),
    ]
    for label, shares in CPU_SHARES.items():
        r = results[label]
        per = [shares.get(p, 0.0) / max(r.requests, 1) * 1e6 for p in cpu.PARTS]
        total = sum(shares.values()) + r.generator_cpu_s
        rows.append(
            f"| {label} | "
            + " | ".join(f"{x:.0f}" for x in per)
            + f" | {r.generator_cpu_s / max(r.requests, 1) * 1e6:.0f}"
            + f" | {total / SECONDS:.2f} |"
        )
    return "\n".join(rows)


def _generator_cost(results: dict[str, Report]) -> str:
    cpu = sum(r.generator_cpu_s for r in results.values())
    sent = sum(r.requests for r in results.values())
    return f"{cpu:.1f} s of CPU for {sent:,} requests ({cpu / max(sent, 1) * 1e6:.0f} us each)"


def raw_results(
    results: dict[str, Report], shares: dict[str, dict[str, float]], measured: dict[str, Any]
) -> dict[str, Any]:
    """The run's figures for bench/results.json: the CPU per webhook of each part at the highest
    fixed ingest rate, status-api's peak, the stores' bytes per sandbox, marker and fact."""
    label = max(shares, key=lambda k: results[k].rate)
    sent = max(results[label].requests, 1)
    when = datetime.now(UTC).isoformat()
    return {
        "machine": machine(),
        "when": when,
        "seconds": SECONDS,
        "results": {k: v.__dict__ for k, v in results.items()},
        "cpu": {
            "measurement": label,
            "us_per_webhook": {p: s / sent * 1e6 for p, s in shares[label].items()},
        },
        "status_api_peak_reads_per_s": results["status-api peak (32 connections)"].throughput,
        "footprint": measured,
        "sources": dict.fromkeys(
            ("cpu", "footprint", "results", "status_api_peak_reads_per_s"), f"make bench of {when}"
        ),
    }


def main() -> None:
    settings = load(Settings)
    settings.require("e2b_webhook_secret", "status_api_jwt_secret")
    print(f"[bench] machine: {machine()}")
    print(f"[bench] {SECONDS:.0f} s per measurement; everything co-located on this machine")
    projects = seed_sandboxes(settings, 1000)
    results = {**bench_ingest(settings), **bench_status_api(settings, projects)}
    for label, report in results.items():
        print(report.line(label))
    sse = asyncio.run(
        sse_clients.measure(settings, projects, sse_clients.status_api_pid(RUN_DIR))
    ).lines()
    print("\n".join(sse))
    retire(settings, [f"sbx-{p}" for p in projects])
    asyncio.run(live_projector_caught_up())
    measured = asyncio.run(freshness.measure(settings, rate=1000, seconds=SECONDS))
    retire(settings, measured.sandbox_ids)
    fresh = measured.line()
    print(fresh)
    projector = asyncio.run(measure())
    print(projector.line())
    ticks = enforcer_tick.run_quietly()
    print("\n".join(ticks))
    paused = pause_throughput.run()
    print("\n".join(paused.lines()))
    retire(settings, paused.sandbox_ids)
    replay = replay_bench.measure().line()
    print(replay)
    server_table = servers.table(servers.measure())
    print(server_table)
    # bench/capacity.py (docs/CAPACITY.md) reads the CPU and store costs from here.
    raw = ROOT / "bench" / "results.json"
    costs = asyncio.run(footprint.measure(settings.database_url))
    raw.write_text(json.dumps(raw_results(results, CPU_SHARES, costs), indent=2) + "\n")
    doc = ROOT / "docs" / "PERFORMANCE.md"
    write_markdown(
        results, projector, ticks, paused.lines(), [*sse, fresh], doc, replay, server_table
    )
    print(f"[bench] {doc.relative_to(ROOT)} rewritten; raw figures in {raw}")


if __name__ == "__main__":
    main()
