"""Our facts are built one way: `new_fact`, with the typed payload of the fact's type, which
becomes the envelope's `data` (E2B's own facts come from `envelope.from_webhook`). And they are
read one way: `state_view` is what the projection takes from any fact's data, so no reader
spells a raw key.

A payload's fields are its keys on the wire (sandbox_common.payloads).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, NamedTuple, Protocol

import msgspec

from sandbox_common.commands import Command
from sandbox_common.e2b import parse_time
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.payloads import Payload, Subject
from sandbox_common.policies import Policy, PolicyError, decode_policy


class FactData(Payload, frozen=True, kw_only=True, omit_defaults=True):
    # The fact types this payload belongs to.
    TYPES: ClassVar[frozenset[FactType]]


class Lifecycle(FactData, frozen=True, kw_only=True, omit_defaults=True):
    """What we learned of E2B's lifecycle ourselves: the actuator's outcome of an E2B call, or
    the reconciler's correction from E2B's list."""

    TYPES = frozenset(
        {FactType.CREATED, FactType.PAUSED, FactType.RESUMED, FactType.UPDATED, FactType.KILLED}
    )
    reason: str | None = None
    template_id: str | None = None
    metadata: dict[str, str] | None = None
    # E2B's new end of the sandbox (an UPDATED fact).
    set_timeout: datetime | None = None
    kill_reason: str | None = None
    e2b_status: int | None = None
    command_id: str | None = None
    # E2B's own lifecycle of the sandbox, as read from E2B (the reconciler's GET of its
    # details): what E2B does at its timeout ("pause" or "kill"), and whether traffic wakes it.
    on_timeout: str | None = None
    auto_resume: bool | None = None


class Flapping(FactData, frozen=True, kw_only=True, omit_defaults=True):
    """Derived by the projector: our idle pause was undone by a resume within the flap window
    (health probes or other traffic waking an auto-resume sandbox). `flaps` counts such pauses
    among the sandbox's recent ones; `idle_backoff` is the factor its idle timeout now gets."""

    TYPES = frozenset({FactType.FLAPPING})
    paused_at: datetime
    resumed_at: datetime
    flaps: int
    idle_backoff: int


class PauseRequested(FactData, frozen=True, kw_only=True, omit_defaults=True):
    """The enforcer judged the sandbox idle (reason `idle`), or an operator asked (`operator`)."""

    TYPES = frozenset({FactType.PAUSE_REQUESTED})
    command_id: str
    reason: str
    idle_seconds: int | None = None
    idle_since: datetime | None = None
    deadline: datetime | None = None
    operator: str | None = None


class DeleteRequested(FactData, frozen=True, kw_only=True, omit_defaults=True):
    """A project's policy deletes the sandbox: paused since `paused_since`, due at `deadline`."""

    TYPES = frozenset({FactType.DELETE_REQUESTED})
    command_id: str
    reason: str
    paused_since: datetime | None = None
    deadline: datetime | None = None


class Undone(FactData, frozen=True, kw_only=True, omit_defaults=True):
    """A pause dropped (activity came after it was judged, E2B never accepted it, or it was
    stuck), or a wake that failed: back to the state before."""

    TYPES = frozenset({FactType.PAUSE_CANCELLED, FactType.WAKE_FAILED})
    reason: str
    stuck_since: datetime | None = None
    status: str | None = None
    command_id: str | None = None


class WakeRequested(FactData, frozen=True, kw_only=True, omit_defaults=True):
    TYPES = frozenset({FactType.WAKE_REQUESTED})
    command_id: str
    # Why, when it was not a user's wake: PREWARM (ahead of an expected return).
    reason: str | None = None


PREWARM = "prewarm"


class Activity(FactData, frozen=True, kw_only=True, omit_defaults=True):
    """A heartbeat: who it came from is the envelope's source. `busy_until`: an agent's task
    runs until then (holds the idle deadline at least that far)."""

    TYPES = frozenset({FactType.ACTIVITY})
    busy_until: datetime | None = None


class PolicySet(FactData, frozen=True, kw_only=True, omit_defaults=True):
    """A project's lifecycle policy (`scope` "project"), or the global default ("default"), as
    the API took it: every field it sets (policies.Policy's JSON). It replaces the one before,
    whole; an empty policy inherits everything."""

    TYPES = frozenset({FactType.POLICY_SET})
    scope: str
    policy: dict[str, Any]
    actor: str | None = None
    # The event id of the policy this one amends (the adaptive rule's learner adds what it
    # learned to the policy it read): applied only while that policy is still the one in force,
    # so an admin's change made meanwhile is never overwritten with the older policy.
    amends: str | None = None


POLICY_SCOPE_PROJECT, POLICY_SCOPE_DEFAULT = "project", "default"
# The subject (record key) of policy facts: never an E2B sandbox id, which has no ':'.
_POLICY_SUBJECT = "policy:"


def policy_subject(project_id: str | None) -> str:
    """A project's policy facts share one key, so they stay in order on one partition."""
    return (
        f"{_POLICY_SUBJECT}default"
        if project_id is None
        else f"{_POLICY_SUBJECT}project:{project_id}"
    )


def policy_owner(subject: str) -> str | None:
    """The project a policy subject is about (None: the default): policy_subject's inverse."""
    prefix = policy_subject("")
    return subject[len(prefix) :] if subject.startswith(prefix) else None


def is_policy(fact: Envelope) -> bool:
    return fact.type == FactType.POLICY_SET


def policy_fact(
    project_id: str | None,
    policy: Policy,
    origin: Origin,
    actor: str | None = None,
    amends: str | None = None,
) -> Envelope:
    """`project_id` None: the global default."""
    scope = POLICY_SCOPE_DEFAULT if project_id is None else POLICY_SCOPE_PROJECT
    payload = PolicySet(scope=scope, policy=msgspec.to_builtins(policy), actor=actor, amends=amends)
    return new_fact(
        FactType.POLICY_SET,
        payload,
        Subject(policy_subject(project_id), project_id),
        origin,
    )


class PolicyView(NamedTuple):
    project_id: str | None  # None: the global default
    policy: Policy
    amends: str | None = None


def policy_view(fact: Envelope) -> PolicyView:
    """Raises PolicyError when the fact's policy is not one (a poison record)."""
    scope = fact.data.get("scope")
    if scope not in (POLICY_SCOPE_PROJECT, POLICY_SCOPE_DEFAULT):
        raise PolicyError("scope", f"not a policy scope: {scope!r}")
    if scope == POLICY_SCOPE_PROJECT and not fact.project_id:
        raise PolicyError("projectId", "a project policy names no project")
    raw = fact.data.get("policy")
    policy = decode_policy(msgspec.json.encode(raw if isinstance(raw, dict) else None))
    amends = fact.data.get("amends")
    return PolicyView(
        fact.project_id if scope == POLICY_SCOPE_PROJECT else None,
        policy,
        amends if isinstance(amends, str) else None,
    )


class Origin(NamedTuple):
    """Where a fact comes from: its id (deterministic where a retry must repeat it), who
    observed or caused it, when it happened, and when it was received (by default then too: we
    are its source)."""

    event_id: str
    source: Source
    at: datetime
    received_at: datetime | None = None


def new_fact(fact_type: FactType, payload: FactData, subject: Subject, origin: Origin) -> Envelope:
    if fact_type not in payload.TYPES:
        raise TypeError(f"a {type(payload).__name__} payload is not one of a {fact_type}")
    return Envelope(
        event_id=origin.event_id,
        type=fact_type,
        source=origin.source,
        sandbox_id=subject.sandbox_id,
        project_id=subject.project_id,
        team_id=subject.team_id,
        occurred_at=origin.at,
        received_at=origin.received_at or origin.at,
        data=payload.to_data(),
    )


class FactSink(Protocol):
    """Where facts go (sandbox-lifecycle); returns once the broker acknowledged."""

    async def publish(self, fact: Envelope) -> None: ...


class Publisher(FactSink, Protocol):
    """Facts, and the commands (sandbox-commands) some of them announce."""

    async def publish_command(self, command: Command) -> None: ...


class StateView(NamedTuple):
    """What the projection takes from a fact's data, whoever wrote it (E2B or us); a value of
    the wrong shape is no value, as an unreadable field of a webhook always was."""

    set_timeout: datetime | None
    metadata: dict[str, str] | None
    template_id: str | None
    reason: str | None = None
    on_timeout: str | None = None
    auto_resume: bool | None = None
    busy_until: datetime | None = None


_NOTHING = StateView(None, None, None)


def state_view(fact: Envelope) -> StateView:
    data: Mapping[str, Any] = fact.data
    if not data:
        return _NOTHING
    metadata = data.get("metadata")
    template_id = data.get("template_id")
    set_timeout = data.get("set_timeout")
    view = StateView(
        set_timeout=parse_time(set_timeout) if set_timeout is not None else None,
        metadata=metadata if isinstance(metadata, dict) and metadata else None,
        template_id=template_id if isinstance(template_id, str) else None,
    )
    # Only our own facts carry these: E2B's webhooks (most facts) skip the reads.
    if not _OURS.intersection(data):
        return view
    reason, on_timeout = data.get("reason"), data.get("on_timeout")
    auto_resume, busy_until = data.get("auto_resume"), data.get("busy_until")
    return view._replace(
        reason=reason if isinstance(reason, str) else None,
        on_timeout=on_timeout if on_timeout in ("pause", "kill") else None,
        auto_resume=auto_resume if isinstance(auto_resume, bool) else None,
        busy_until=parse_time(busy_until) if isinstance(busy_until, str) else None,
    )


_OURS = frozenset({"reason", "on_timeout", "auto_resume", "busy_until"})
