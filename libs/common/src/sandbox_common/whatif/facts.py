"""Raw `sandbox-lifecycle` records read for what-if: each sandbox's demand (trace.Traces) and the
policies the topic last set. Only the fields what-if needs are decoded, so a million records
take seconds; a record that is not an envelope is counted, not fatal (the projector has already
dead-lettered it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from sandbox_common.envelope import FactType
from sandbox_common.facts import policy_owner
from sandbox_common.policies import Policy, PolicyError, decode_policy
from sandbox_common.whatif.trace import Traces


class _Fact(msgspec.Struct):
    type: str
    sandbox_id: str
    occurred_at: datetime
    project_id: str | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


_decoder = msgspec.json.Decoder(_Fact)
_encoder = msgspec.json.Encoder()


class TopicFacts:
    def __init__(self) -> None:
        self.traces = Traces()
        self.facts = 0  # every readable fact, policies too
        self.unreadable = 0
        self.first: float | None = None
        self.last: float | None = None
        # The newest policy of each project (None: the default), and when it was set.
        self.policies: dict[str | None, tuple[float, Policy]] = {}

    def add(self, value: bytes | None) -> None:
        try:
            fact = _decoder.decode(value or b"")
        except msgspec.DecodeError:
            self.unreadable += 1
            return
        self.facts += 1
        at = fact.occurred_at.timestamp()
        self.first = at if self.first is None else min(self.first, at)
        self.last = at if self.last is None else max(self.last, at)
        if fact.type == FactType.POLICY_SET:
            self._policy(fact, at)
            return
        self.traces.add(fact.type, fact.sandbox_id, fact.project_id, at, fact.data)

    def _policy(self, fact: _Fact, at: float) -> None:
        owner = policy_owner(fact.sandbox_id)
        try:
            policy = decode_policy(_encoder.encode(fact.data.get("policy") or {}))
        except PolicyError:
            self.unreadable += 1
            return
        held = self.policies.get(owner)
        if held is None or held[0] <= at:
            self.policies[owner] = (at, policy)

    def policy(self, project_id: str | None) -> Policy | None:
        held = self.policies.get(project_id)
        return held[1] if held else None
