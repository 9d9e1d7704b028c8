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


def _processes() -> tuple[dict[int, float], dict[int, list[int]]]:
    """CPU seconds of every process, and the children of each."""
    stats = {
        int(p.name): s
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        if (s := _stat(int(p.name))) is not None
    }
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    return {pid: cpu for pid, (_, cpu) in stats.items()}, children


def _tree(root: int, cpu: dict[int, float], children: dict[int, list[int]]) -> float:
    todo, total = [root], 0.0
    while todo:
        pid = todo.pop()
        if pid in cpu:
            total += cpu[pid]
            todo.extend(children.get(pid, []))
    return total


def tree_seconds(root: int) -> float:
    """CPU seconds so far of a process and its descendants."""
    return _tree(root, *_processes())


def snapshot(run_dir: Path) -> dict[str, float]:
    """CPU seconds so far of each part, children (server workers, backends) included."""
    cpu, children = _processes()
    out: dict[str, float] = {}
    for part in PARTS:
        pid_file = run_dir / f"{part}.pid"
        if pid_file.exists():
            out[part] = _tree(int(pid_file.read_text().split()[0]), cpu, children)
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}
