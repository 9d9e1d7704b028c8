"""CPU seconds used by each part of the running system (process trees of the pid files that
`make up` writes), so a benchmark can show where the two cores went during a measurement."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
PARTS = ("ingest", "projector", "status-api", "kafka", "postgres", "redis")


def _stat(pid: int) -> tuple[int, float] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # ppid, utime + stime + the same of its exited children (a backend that closed, a worker)
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / _TICK


def snapshot(run_dir: Path) -> dict[str, float]:
    """CPU seconds so far of each part, children (server workers, backends) included."""
    stats = {
        int(p.name): s
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        if (s := _stat(int(p.name))) is not None
    }
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, float] = {}
    for part in PARTS:
        pid_file = run_dir / f"{part}.pid"
        if not pid_file.exists():
            continue
        todo, total = [int(pid_file.read_text().split()[0])], 0.0
        while todo:
            pid = todo.pop()
            if pid in stats:
                total += stats[pid][1]
                todo.extend(children.get(pid, []))
        out[part] = total
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}
