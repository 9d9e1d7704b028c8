"""Drives vegeta (an open-loop HTTP load generator, built from the Go module proxy) and reads
its JSON report. Open loop matters: a fixed request rate exposes queueing that a closed loop hides.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.12.0"
CACHE = Path(os.environ.get("SANDBOX_CACHE_DIR", Path.home() / ".cache" / "e2b-lifecycle"))


def vegeta() -> str:
    """The vegeta binary, installed with `go install` into the project cache when missing."""
    found = shutil.which("vegeta")
    if found:
        return found
    gobin = CACHE / "bin"
    binary = gobin / "vegeta"
    if not binary.exists():
        print(f"[bench] installing vegeta ({VEGETA_MODULE}) with go install ...", flush=True)
        subprocess.run(
            ["go", "install", VEGETA_MODULE],
            check=True,
            env={**os.environ, "GOBIN": str(gobin), "GOFLAGS": "-mod=mod"},
        )
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

    def line(self, label: str) -> str:
        return (
            f"{label:<44} {self.throughput:>8.0f} ok/s  p50 {self.p50_ms:6.2f} ms  "
            f"p99 {self.p99_ms:7.2f} ms  max {self.max_ms:7.1f} ms  "
            f"success {self.success * 100:5.1f}%  codes {self.status_codes}"
        )


def attack(
    targets: list[Target], *, rate: int, seconds: float, workers: int = 32, max_workers: int = 0
) -> Report:
    """rate=0 means as fast as `max_workers` concurrent connections allow (peak throughput)."""
    target_file = CACHE / "bench-targets.jsonl"
    target_file.parent.mkdir(parents=True, exist_ok=True)
    target_file.write_text("\n".join(t.to_json() for t in targets) + "\n")
    args = [
        vegeta(),
        "attack",
        "-format=json",
        f"-targets={target_file}",
        f"-rate={rate}/s" if rate else "-rate=0",
        f"-duration={seconds}s",
        f"-workers={workers}",
        "-timeout=10s",
    ]
    if not rate:
        args.append(f"-max-workers={max_workers or workers}")
    attack_run = subprocess.run(args, check=True, capture_output=True)
    report_run = subprocess.run(
        [vegeta(), "report", "-type=json"],
        input=attack_run.stdout,
        check=True,
        capture_output=True,
    )
    raw = json.loads(report_run.stdout)
    lat = raw["latencies"]
    return Report(
        requests=raw["requests"],
        rate=raw["rate"],
        throughput=raw["throughput"],
        success=raw["success"],
        p50_ms=lat["50th"] / 1e6,
        p90_ms=lat["90th"] / 1e6,
        p99_ms=lat["99th"] / 1e6,
        max_ms=lat["max"] / 1e6,
        status_codes=raw["status_codes"],
        errors=raw.get("errors") or [],
    )
