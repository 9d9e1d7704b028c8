"""What `sandboxctl simulate` prints: a table per project and the total (text), or one JSON
document (--json, every project). Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sandbox_common.whatif.ledger import Ledger
from sandbox_common.whatif.replay import Figures

IN_FORCE, CANDIDATE, NO_ENFORCEMENT = "in force", "candidate", "no enforcement"
_JSON_NAMES = {IN_FORCE: "inForce", CANDIDATE: "candidate", NO_ENFORCEMENT: "noEnforcement"}
HOUR = 3600.0


def figures_json(figures: Figures, unenforced: Figures) -> dict[str, Any]:
    return {
        "sandboxes": figures.sandboxes,
        "pauses": figures.pauses,
        "regrets": figures.regrets,
        "regretRate": round(figures.regret_rate, 4),
        "returnsToPaused": figures.returns_to_paused,
        "runningSeconds": round(figures.running_seconds, 1),
        "pausedSeconds": round(figures.paused_seconds, 1),
        # Running time the rule avoided against no enforcement at all: the idle time saved.
        "idleAvoidedSeconds": round(unenforced.running_seconds - figures.running_seconds, 1),
        "cost": round(figures.cost, 6),
    }


def _row(figures: dict[str, Figures]) -> dict[str, Any]:
    unenforced = figures[NO_ENFORCEMENT]
    return {_JSON_NAMES[name]: figures_json(f, unenforced) for name, f in figures.items()}


def as_json(ledger: Ledger, header: dict[str, Any]) -> dict[str, Any]:
    projects = sorted(ledger.projects.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    return {
        **header,
        "projects": [{"projectId": p, **_row(row)} for p, row in projects],
        "total": _row(ledger.total),
    }


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _change(before: float, after: float) -> str:
    if before == after:
        return "="
    if not before:
        return "+inf"
    return f"{(after - before) / before * 100:+.0f}%"


def as_lines(ledger: Ledger, header: dict[str, Any], limit: int) -> list[str]:
    lines = [
        f"simulate: {header['facts']:,} facts, {header['sandboxes']:,} sandboxes,"
        f" {_when(header['from'])} .. {_when(header['to'])}",
        f"candidate policy: {header['candidatePolicy']}",
    ]
    if header["notSimulated"]:
        lines.append(
            f"not simulated (no effect on these figures): {', '.join(header['notSimulated'])}"
        )
    if header["unreadable"]:
        lines.append(f"{header['unreadable']:,} unreadable record(s) skipped")
    head = (
        f"{'project':<24} {'policy':<10} {'sandboxes':>9} {'pauses':>8} {'regrets':>8}"
        f" {'returns':>8} {'running h':>10} {'idle avoided h':>14} {'cost':>12}"
    )
    lines.append(head)

    def rows(name: str, figures: dict[str, Figures]) -> list[str]:
        unenforced = figures[NO_ENFORCEMENT]
        out = []
        for policy in (IN_FORCE, CANDIDATE):
            f = figures[policy]
            out.append(
                f"{name[:24]:<24} {policy:<10} {f.sandboxes:>9,} {f.pauses:>8,} {f.regrets:>8,}"
                f" {f.returns_to_paused:>8,} {f.running_seconds / HOUR:>10,.1f}"
                f" {(unenforced.running_seconds - f.running_seconds) / HOUR:>14,.1f}"
                f" {f.cost:>12,.4f}"
            )
        return out

    # The projects the candidate changes most come first.
    ordered = sorted(
        ledger.projects.items(),
        key=lambda kv: -abs(kv[1][CANDIDATE].cost - kv[1][IN_FORCE].cost),
    )
    shown = ordered if limit <= 0 else ordered[:limit]
    for project, figures in shown:
        lines.extend(rows(project if project is not None else "(no project)", figures))
    if len(shown) < len(ordered):
        lines.append(f"... {len(ordered) - len(shown):,} more project(s) (--limit 0, or --json)")
    lines.extend(rows("TOTAL", ledger.total))
    now, then = ledger.total[IN_FORCE], ledger.total[CANDIDATE]
    lines.append(
        f"candidate against the policy in force: pauses {_change(now.pauses, then.pauses)},"
        f" regrets {_change(now.regrets, then.regrets)},"
        f" running time {_change(now.running_seconds, then.running_seconds)},"
        f" cost {_change(now.cost, then.cost)}"
    )
    return lines
