"""Drives bench/loadgen (our Go open-loop load generator) and reads its JSON report.

Open loop matters: requests leave at the fixed rate whatever the answers do, and latency runs
from each request's scheduled time, so queueing shows up instead of hiding in a slower send
rate. Why our own and not vegeta (which speaks the same target format): on two cores shared
with the system under test, vegeta spent ~250 us of CPU per request, bench/loadgen ~40 us.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("SANDBOX_CACHE_DIR", Path.home() / ".cache" / "e2b-lifecycle"))


def loadgen() -> str:
    """Builds bench/loadgen with the Go toolchain (modules from the Go proxy) when stale."""
    binary = CACHE / "bin" / "loadgen"
    source = ROOT / "bench" / "loadgen"
    newest = max(p.stat().st_mtime for p in source.iterdir())
    if not binary.exists() or binary.stat().st_mtime < newest:
        print("[bench] building bench/loadgen (go build) ...", flush=True)
        binary.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=source, check=True)
    return str(binary)


@dataclass(frozen=True)
class Target:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""

    def to_json(self) -> str:
        entry: dict[str, object] = {
            "method": self.method,
            "url": self.url,
            "header": {k: [v] for k, v in self.headers.items()},
        }
        if self.body:
            entry["body"] = base64.b64encode(self.body).decode()
        return json.dumps(entry)


@dataclass(frozen=True)
class Report:
    requests: int
    rate: float  # requests sent per second
    throughput: float  # successful responses per second
    success: float  # share of 2xx answers
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    status_codes: dict[str, int]
    errors: list[str]
    generator_cpu_s: float = 0.0

    def line(self, label: str) -> str:
        return (
            f"{label:<44} {self.throughput:>8.0f} ok/s  p50 {self.p50_ms:6.2f} ms  "
            f"p99 {self.p99_ms:7.2f} ms  max {self.max_ms:7.1f} ms  "
            f"success {self.success * 100:5.1f}%  codes {self.status_codes}"
        )


def attack(targets: list[Target], *, rate: int, seconds: float, connections: int = 64) -> Report:
    """rate=0 means closed loop: `connections` workers back to back (peak throughput)."""
    target_file = CACHE / "bench-targets.jsonl"
    target_file.parent.mkdir(parents=True, exist_ok=True)
    target_file.write_text("\n".join(t.to_json() for t in targets) + "\n")
    run = subprocess.run(
        [
            loadgen(),
            f"-targets={target_file}",
            f"-rate={rate}",
            f"-duration={seconds}s",
            f"-connections={connections}",
            "-timeout=10s",
        ],
        check=True,
        capture_output=True,
    )
    raw = json.loads(run.stdout)
    lat = raw["latency_ms"]
    return Report(
        requests=raw["requests"],
        rate=raw["rate"],
        throughput=raw["throughput"],
        success=raw["success"],
        p50_ms=lat["p50"],
        p90_ms=lat["p90"],
        p99_ms=lat["p99"],
        max_ms=lat["max"],
        status_codes=raw["status_codes"],
        errors=[f"{k}: {v}" for k, v in (raw.get("errors") or {}).items()],
        generator_cpu_s=raw.get("cpu_seconds", 0.0),
    )
