"""What-if benchmark (issue 18): `sandboxctl simulate` over 1,000,000 facts of 100,000 sandboxes
(the replay benchmark's topic, published once and reused), as the real CLI in a subprocess: its
wall time covers reading the topic, folding the demand and replaying it under the policy in
force, the candidate and no enforcement. Target: at most 60 s on this machine.

Two candidates: a fixed 60 s timeout, and an adaptive rule (each of the 100,000 projects
learns its own timeout first).

    source .state/env.sh && uv run python -m bench.simulate [EVENTS] [SANDBOXES]
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.replay import ensure_topic

CANDIDATES: dict[str, dict[str, object]] = {
    "fixed 60 s": {"idleTimeoutSeconds": 60},
    "adaptive": {"idle": {"mode": "adaptive", "minSeconds": 30, "maxSeconds": 1800}},
}
TARGET_SECONDS = 60


@dataclass(frozen=True)
class SimulateResult:
    candidate: str
    events: int
    sandboxes: int
    seconds: float
    cpu_seconds: float
    max_rss_mb: float

    def line(self) -> str:
        verdict = "met" if self.seconds <= TARGET_SECONDS else "MISSED"
        return (
            f"simulate ({self.candidate}): {self.events:,} facts over {self.sandboxes:,}"
            f" sandboxes in {self.seconds:.1f} s = {self.events / self.seconds:,.0f} facts/s"
            f" (target <= {TARGET_SECONDS} s: {verdict}); CPU {self.cpu_seconds:.1f} s,"
            f" peak RSS {self.max_rss_mb:,.0f} MB"
        )


def _run(topic: str, policy: dict[str, object]) -> tuple[float, float, float, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(policy, f)
    argv = ["simulate", "--topic", topic, "--policy", f.name, "--limit", "5"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from sandboxctl.cli import main; main()", *argv],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(f.name).unlink()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, after.ru_maxrss / 1024, done.stdout


def measure(events: int = 1_000_000, sandboxes: int = 100_000) -> list[SimulateResult]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    topic = f"bench-replay-{events}"
    asyncio.run(ensure_topic(bootstrap, topic, events, sandboxes))
    results = []
    for name, policy in CANDIDATES.items():
        print(f"[bench] sandboxctl simulate --topic {topic} ({name})", flush=True)
        seconds, cpu, rss, out = _run(topic, policy)
        print(out.rstrip().splitlines()[-1], flush=True)  # the candidate's verdict line
        results.append(SimulateResult(name, events, sandboxes, seconds, cpu, rss))
    return results


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    for result in measure(n, m):
        print(result.line())
