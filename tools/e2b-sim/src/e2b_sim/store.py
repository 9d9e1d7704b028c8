"""In-memory sandboxes and their event history; applies domain outcomes and publishes events."""

from __future__ import annotations

import base64
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from e2b_sim import domain
from e2b_sim.domain import Outcome, Sandbox


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    id: str  # the body `id`: one per event, kept across retries and duplicates
    timestamp: datetime
    emitted: domain.Emitted


class BadTokenError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The filters of GET /v2/sandboxes."""

    states: frozenset[str] = frozenset({"running", "paused"})
    metadata: Mapping[str, str] = field(default_factory=dict)
    template: str | None = None
    started_after: datetime | None = None
    ascending: bool = False

    def matches(self, sb: Sandbox) -> bool:
        return (
            domain.visible_state(sb) in self.states
            and all(sb.metadata.get(k) == v for k, v in self.metadata.items())
            and self.template in (None, sb.template_id)
            and (self.started_after is None or sb.started_at >= self.started_after)
        )


# Enough history for any test or demo; E2B keeps events for `events_ttl_days`.
_MAX_EVENTS = 100_000


class Store:
    def __init__(
        self, clock: Callable[[], datetime], publish: Callable[[RecordedEvent], None]
    ) -> None:
        self._clock = clock
        self._publish = publish
        self._sandboxes: dict[str, Sandbox] = {}
        self._events: deque[RecordedEvent] = deque(maxlen=_MAX_EVENTS)

    def now(self) -> datetime:
        return self._clock()

    def get(self, sandbox_id: str) -> Sandbox | None:
        return self._sandboxes.get(sandbox_id)

    def apply(self, outcome: Outcome) -> Outcome:
        """Store the new state, then record and publish its events (in decision order)."""
        if outcome.sandbox is not None:
            self._sandboxes[outcome.sandbox.sandbox_id] = outcome.sandbox
        for emitted in outcome.events:
            recorded = RecordedEvent(str(uuid.uuid4()), self._clock(), emitted)
            self._events.append(recorded)
            self._publish(recorded)
        return outcome

    def tick(self) -> int:
        """Run the clock over every live sandbox; returns how many changed."""
        now, changed = self._clock(), 0
        live = [sb for sb in self._sandboxes.values() if sb.state is not domain.State.KILLED]
        for sb in live:
            outcome = domain.settle(sb, now)
            if outcome is not None:
                self.apply(outcome)
                changed += 1
        return changed

    def page(
        self, query: ListQuery, limit: int, token: str | None
    ) -> tuple[list[Sandbox], str | None]:
        """Ordered by startedAt (newest first unless ascending), then id; the token is a
        cursor, robust to changes."""
        order = _ascending if query.ascending else _descending
        rows = sorted((sb for sb in self._sandboxes.values() if query.matches(sb)), key=order)
        if token is not None:
            cursor = _decode(token)
            rows = [sb for sb in rows if order(sb) > cursor]
        taken = rows[:limit]
        more = len(rows) > limit
        return taken, (_encode(order(taken[-1])) if more and taken else None)

    def events(
        self, sandbox_id: str | None, offset: int, limit: int, order_asc: bool
    ) -> list[RecordedEvent]:
        rows = [e for e in self._events if sandbox_id in (None, e.emitted.sandbox.sandbox_id)]
        if not order_asc:
            rows.reverse()
        return rows[offset : offset + limit]

    def reset(self) -> None:
        self._sandboxes.clear()
        self._events.clear()


def _descending(sb: Sandbox) -> tuple[float, str]:
    return (-sb.started_at.timestamp(), sb.sandbox_id)


def _ascending(sb: Sandbox) -> tuple[float, str]:
    return (sb.started_at.timestamp(), sb.sandbox_id)


def _encode(key: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(f"{key[0]!r}|{key[1]}".encode()).decode()


def _decode(token: str) -> tuple[float, str]:
    try:
        ts, sandbox_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return (float(ts), sandbox_id)
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise BadTokenError(f"invalid nextToken: {token!r}") from exc
