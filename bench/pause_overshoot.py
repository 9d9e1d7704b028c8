"""Pause overshoot: from a sandbox's idle deadline to the pause call E2B receives.

Runs against the stack `make up` started, at whatever `ENFORCER_SCHEDULE` it was started with
(e.g. `ENFORCER_SCHEDULE=5s make up`): creates sandboxes in the local E2B simulator with a 10 s
idle timeout (`idleTimeoutSeconds` metadata), spread over a few seconds, waits until E2B has
paused them all, and prints how late each pause came after its deadline.

    source .state/env.sh && uv run python -m bench.pause_overshoot [count]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from datetime import datetime

import httpx

IDLE_SECONDS = 10


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def measure(count: int, api: httpx.Client, wait_seconds: float) -> list[float]:
    created: dict[str, datetime] = {}
    for i in range(count):
        project = f"overshoot-{uuid.uuid4().hex[:6]}-{i}"
        r = api.post(
            "/sandboxes",
            json={
                "templateID": "base",
                "timeout": 3600,
                "metadata": {"projectId": project, "idleTimeoutSeconds": str(IDLE_SECONDS)},
            },
        )
        r.raise_for_status()
        sandbox_id = r.json()["sandboxID"]
        # startedAt is the created event's time: our lastActiveAt, so deadline = it + idle.
        created[sandbox_id] = _time(api.get(f"/sandboxes/{sandbox_id}").json()["startedAt"])
        time.sleep(0.25)  # spread the deadlines over the schedule's phase
    deadline = time.monotonic() + wait_seconds
    late: dict[str, float] = {}
    while len(late) < count and time.monotonic() < deadline:
        for sandbox_id, started in created.items():
            if sandbox_id in late:
                continue
            calls = api.get("/_sim/calls", params={"sandboxId": sandbox_id, "op": "pause"}).json()
            done = [c for c in calls if c["status"] == 204]
            if done:
                paused_at = _time(done[0]["at"])
                late[sandbox_id] = (paused_at - started).total_seconds() - IDLE_SECONDS
        time.sleep(0.5)
    if len(late) < count:
        raise SystemExit(f"only {len(late)} of {count} sandboxes paused in {wait_seconds:.0f} s")
    return sorted(late.values())


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    schedule = os.environ.get("ENFORCER_SCHEDULE", "*/2 * * * *")
    url = os.environ.get("E2B_API_URL", "http://127.0.0.1:8090")
    key = os.environ.get("E2B_API_KEY", "")
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=10) as api:
        late = measure(count, api, wait_seconds=300)
    p95 = late[max(0, round(0.95 * len(late)) - 1)]
    print(
        f"pause overshoot at ENFORCER_SCHEDULE={schedule!r}, {count} sandboxes: "
        f"median {statistics.median(late):.1f} s, p95 {p95:.1f} s, max {late[-1]:.1f} s "
        f"(deadline -> E2B pause call)"
    )


if __name__ == "__main__":
    main()
