"""The capacity model (bench/capacity_model.py) and docs/CAPACITY.md, which must be what the
script makes of the committed bench/results.json (issue 16, item 7)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from bench import capacity, run_all
from bench.capacity_model import (
    GIB,
    Assumptions,
    Measured,
    fleet_ceilings,
    plan_fleet,
    plan_rate,
    webhook_ceilings,
)
from bench.loadgen import Report

ROOT = Path(__file__).parents[2]
M = Measured(
    cpu_us_per_webhook={"ingest": 250, "projector": 100, "kafka": 100, "postgres": 40, "redis": 20},
    status_api_peak_reads_per_s=5000,
    redis_bytes_per_sandbox=1000,
    redis_bytes_per_feed_entry=500,
    redis_bytes_per_dedupe_marker=100,
    postgres_bytes_per_sandbox=1000,
    postgres_bytes_per_history_row=500,
)
A = Assumptions()


def test_cores_and_replicas_follow_the_measured_cost_with_headroom() -> None:
    plan = plan_rate(10_000, M, A)
    # 10,000/s x 250 us = 2.5 cores, x2 headroom = 5 cores: five one-core replicas.
    assert plan.cores["ingest"] == pytest.approx(5.0)
    assert plan.ingest_replicas == 5
    assert plan.projector_replicas == 2  # 2 cores
    # Kafka: measured on one broker without replicas; three copies of each record.
    assert plan.cores["kafka"] == pytest.approx(10_000 * 100e-6 * 2 * 3)
    tighter = plan_rate(10_000, M, dataclasses.replace(A, headroom=1.0))
    assert tighter.ingest_replicas == 3  # 2.5 cores
    assert plan_rate(100, M, A).ingest_replicas == A.min_replicas


def test_partitions_leave_room_for_the_consumers_to_double() -> None:
    assert plan_rate(1_000, M, A).partitions == A.min_partitions
    big = plan_rate(100_000, M, A)  # projector: 20 cores -> 20 replicas
    assert big.projector_replicas == 20
    assert big.partitions == 40
    assert big.partitions >= big.projector_replicas


def test_redis_markers_and_history_grow_with_the_rate() -> None:
    plan = plan_rate(1_000, M, A)
    assert plan.redis_markers_gib == pytest.approx(1_000 * 3600 * 100 / GIB)
    # The soak's 780 bytes a fact is larger than the measured 500: the larger one is used.
    assert plan.history_gib_per_day == pytest.approx(1_000 * 86_400 * 780 / GIB)
    assert plan.history_gib_retained == pytest.approx(plan.history_gib_per_day * 90)
    assert plan_rate(100_000, M, A).redis_shards == 4  # 100,000 x 20 us x 2 = 4 cores


def test_a_fleet_needs_memory_per_sandbox_and_status_api_per_poll() -> None:
    fleet = plan_fleet(1_000_000, M, A)
    assert fleet.redis_read_model_gib == pytest.approx((1e9 + 50_000 * 500) / GIB)
    assert fleet.postgres_state_gib == pytest.approx(1e9 / GIB)
    # A fifth RUNNING, each polled every 30 s: 6,667 reads/s; x2 / 5,000 per replica.
    assert fleet.status_reads_per_s == pytest.approx(1_000_000 * 0.2 / 30)
    assert fleet.status_api_replicas == 3
    assert fleet.e2b_calls_per_s == pytest.approx(1_000_000 * 4 / 86_400)


def test_the_first_part_to_saturate_is_the_lowest_ceiling() -> None:
    (first, *_) = webhook_ceilings(M, A)
    assert first.part == "Redis (one instance)"
    assert first.limit == pytest.approx(50_000)  # one core / 20 us
    slow_pg = dataclasses.replace(M, cpu_us_per_webhook={**M.cpu_us_per_webhook, "postgres": 400})
    assert webhook_ceilings(slow_pg, A)[0].part == "PostgreSQL primary"
    (fleet_first, *_) = fleet_ceilings(M, A)
    assert fleet_first.part.startswith("Redis maxmemory")
    assert fleet_first.limit == pytest.approx((2e9 - 50_000 * 500) / 1000)


def test_measured_figures_are_read_from_the_bench_results() -> None:
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    measured = capacity.measured(results)
    assert set(measured.cpu_us_per_webhook) >= {"ingest", "projector", "kafka", "postgres", "redis"}
    assert measured.redis_bytes_per_sandbox == results["footprint"]["redis_bytes_per_sandbox"]
    broken = {**results, "footprint": {}}
    with pytest.raises(KeyError):
        capacity.measured(broken)


def test_what_make_bench_writes_is_what_the_capacity_script_reads() -> None:
    def report(rate: float, requests: int, throughput: float | None = None) -> Report:
        ok = rate if throughput is None else throughput
        return Report(requests, rate, ok, 1.0, 1, 2, 3, 4, {"200": requests}, [])

    results = {
        "ingest fixed 1000/s": report(1000, 15_000),
        "ingest fixed 3000/s": report(3000, 45_000),
        "status-api peak (32 connections)": report(0, 120_000, throughput=8000),
    }
    parts = {"ingest": 4.5, "projector": 0.9, "kafka": 1.8, "postgres": 0.45, "redis": 0.27}
    shares = {"ingest fixed 1000/s": dict.fromkeys(parts, 9.0), "ingest fixed 3000/s": parts}
    footprint = {
        "redis_bytes_per_sandbox": 1400.0,
        "redis_bytes_per_feed_entry": 700.0,
        "redis_bytes_per_dedupe_marker": 120.0,
        "postgres_bytes_per_sandbox": 1100.0,
        "postgres_bytes_per_history_row": 490.0,
    }
    written = json.loads(json.dumps(run_all.raw_results(results, shares, footprint)))
    got = capacity.measured(written)
    # The highest fixed rate's shares, per webhook: 4.5 s of ingest CPU / 45,000 = 100 us.
    assert got.cpu_us_per_webhook["ingest"] == pytest.approx(100)
    assert got.cpu_us_per_webhook["redis"] == pytest.approx(6)
    assert got.status_api_peak_reads_per_s == 8000
    assert got.redis_bytes_per_dedupe_marker == 120.0


def test_docs_capacity_is_what_the_committed_results_make() -> None:
    """docs/CAPACITY.md stays true: regenerated from bench/results.json it is unchanged
    (`make capacity` rewrites it; `make bench` does after each run)."""
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    expected = capacity.render(results, Assumptions())
    written = (ROOT / "docs" / "CAPACITY.md").read_text()
    assert written == expected, "docs/CAPACITY.md is stale: run `make capacity`"
