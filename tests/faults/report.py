"""Each scenario's figures, printed and kept as a markdown table (docs/RELIABILITY.md "Faults")."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ScenarioFigures:
    killed: str
    rate: int
    seconds: float
    sent: int = 0  # HTTP attempts, retries included
    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    events: int = 0  # distinct webhooks of the load
    retried: int = 0  # webhooks that needed more than one attempt
    unacked: int = 0  # never answered 2xx before the load gave up
    duplicates: int = 0  # extra copies on the topic (only ever from retried deliveries)
    webhook_gap_s: float = 0.0  # longest stretch without a 2xx answer
    ack_p50_s: float = 0.0  # scheduled send -> 2xx, retries included
    ack_p99_s: float = 0.0
    ack_max_s: float = 0.0
    restarted: bool = True  # False: the victim stayed dead (others took its work over)
    down_s: float = 0.0  # from the kill until the restart command returned
    recover_s: float = 0.0  # from the restart until every service ready and the stream moving
    max_lag: int = 0  # projector lag, largest sample
    caught_up_s: float = 0.0  # from the restart until the lag was back under a second of load
    drain_s: float = 0.0  # from the end of the load until the projector had every record
    checked: list[str] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)  # a scenario's own figures

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": dict(self.failed)}  # asdict garbles a Counter

    def line(self) -> str:
        return (
            f"[faults] {self.killed}: {self.sent} sent, {self.ok} 2xx, "
            f"non-2xx {dict(self.failed) or '{}'}, {self.retried} retried, {self.unacked} unacked, "
            f"{self.duplicates} duplicates, longest 2xx gap {self.webhook_gap_s:.1f}s, "
            f"2xx after p50 {self.ack_p50_s:.3f}s p99 {self.ack_p99_s:.2f}s "
            f"max {self.ack_max_s:.1f}s, "
            f"down {self.down_s:.1f}s, recovered {self.recover_s:.1f}s after restart, "
            f"max lag {self.max_lag}, caught up {self.caught_up_s:.1f}s after restart, "
            f"drained {self.drain_s:.1f}s after the load"
            + "".join(f", {k} {v:.3f}" for k, v in self.extra.items())
        )


def render_table(rows: list[ScenarioFigures]) -> str:
    head = (
        "| killed (kill -9, then restart) | load | sent | 2xx | non-2xx | retried / dup. on topic"
        " | webhook to 2xx p50 / p99 / max | longest 2xx gap | down | recovered after restart"
        " | max lag | lag caught up after restart (after the kill if left dead) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r.killed} | {r.rate}/s x {r.seconds:.0f} s | {r.sent} | {r.ok} | "
        f"{', '.join(f'{k}: {v}' for k, v in sorted(r.failed.items())) or 'none'} | "
        f"{r.retried} / {r.duplicates} | {r.ack_p50_s * 1000:.0f} ms / {r.ack_p99_s:.2f} s / "
        f"{r.ack_max_s:.1f} s | {r.webhook_gap_s:.1f} s | "
        + (f"{r.down_s:.1f} s | {r.recover_s:.1f} s | " if r.restarted else "left dead | - | ")
        + f"{r.max_lag} | {r.caught_up_s:.1f} s |\n"
        for r in rows
    )
    return head + body
