"""The Redis key layout: every key the system writes, in one place.

The read model is sharded (`Layout`, READ_MODEL_SHARDS shards, by a stable hash of the sandbox
id), and every key of one shard carries the shard's hash tag (`{s3/16}`): a sandbox's document,
its shard's idle-deadline, transitional and hard-end indexes and its shard's change stream sit in
one Redis Cluster slot, so the script that writes them together touches one slot, and no single
key takes every write of the fleet. The shard count is in the tag: a deployment that changes it
gets a disjoint set of keys (the projector rebuilds the model, and drops the old keys).

A project's pointer (which sandbox serves it) is tagged by the project id instead, in its own
slot: it is written after its sandbox's document (see writer.py for why that is safe).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

_PREFIX = "sbx"
# Bumped when the read model's keys change shape: a marker of another layout means "rebuild".
LAYOUT_VERSION = 2
DEFAULT_SHARDS = 16


@dataclass(frozen=True, slots=True)
class Layout:
    """The read model's sharded keys, for a fixed number of shards (READ_MODEL_SHARDS)."""

    shards: int = DEFAULT_SHARDS

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError("a layout needs at least one shard")

    @property
    def all(self) -> range:
        return range(self.shards)

    def shard(self, sandbox_id: str) -> int:
        """Stable across processes and versions (CRC-32, not Python's salted hash)."""
        return zlib.crc32(sandbox_id.encode()) % self.shards

    def tag(self, shard: int) -> str:
        return f"{{s{shard}/{self.shards}}}"

    def _key(self, shard: int, name: str) -> str:
        return f"{_PREFIX}:{self.tag(shard)}:{name}"

    def doc(self, sandbox_id: str) -> str:
        """The status document of one sandbox (a hash: DOC_FIELD JSON, REVISION_FIELD)."""
        return self._key(self.shard(sandbox_id), f"sandbox:{sandbox_id}")

    def doc_pattern(self) -> str:
        """SCAN pattern of every document of this layout (the id follows the last ':')."""
        return f"{_PREFIX}:{{s*/{self.shards}}}:sandbox:*"

    def idle_deadlines(self, shard: int) -> str:
        """Sorted set: member sandbox id, score the epoch second at which a RUNNING sandbox
        becomes idle enough to pause. The enforcer reads only the due part of each shard's
        (cost grows with the number due, not with the fleet)."""
        return self._key(shard, "idle-deadlines")

    def hard_ends(self, shard: int) -> str:
        """Sorted set: member sandbox id, score the epoch second at which E2B ends a RUNNING
        sandbox's run whatever its activity. status-api warns frontends from it."""
        return self._key(shard, "hard-ends")

    def transitional(self, shard: int) -> str:
        """Sorted set: member sandbox id, score the epoch second it entered PAUSING or STARTING.
        The enforcer repairs members left there too long."""
        return self._key(shard, "transitional")

    def deletes(self, shard: int) -> str:
        """Sorted set: member sandbox id, score the epoch second at which a PAUSED sandbox is
        deleted by its project's policy (deleteAfterPausedSeconds). The enforcer reads the due
        part; status-api warns frontends from it."""
        return self._key(shard, "deletes")

    def indexes(self, shard: int) -> tuple[str, str, str, str]:
        """The shard's four indexes, in the order the scripts take them."""
        return (
            self.idle_deadlines(shard),
            self.transitional(shard),
            self.hard_ends(shard),
            self.deletes(shard),
        )

    def changes(self, shard: int) -> str:
        """Redis stream of the shard's read-model changes (document writes, pause warnings),
        newest last; status-api follows every shard's and merges them for SSE clients."""
        return self._key(shard, "changes")

    def stream_length(self, feed_length: int) -> int:
        """Each shard's stream keeps its share of CHANGE_FEED_MAX_LENGTH: the feed as a whole
        holds as many changes (and as much memory) as the one stream before sharding."""
        return max(1, -(-feed_length // self.shards))

    def pause_warned(self, sandbox_id: str, deadline: str) -> str:
        """Present once the warning (pauseImminent, lifetimeEnding) for this sandbox's deadline
        has gone out; in the sandbox's shard, beside the change stream the warning goes to."""
        return self._key(self.shard(sandbox_id), f"pause-warned:{sandbox_id}:{deadline}")

    def shadow_ids(self, shard: int) -> str:
        """Shadow-side set the swap walks: the shard's sandbox ids a rebuild wrote."""
        return _SHADOW_PREFIX + self._key(shard, "ids")

    def shadow_stale(self, shard: int) -> str:
        """Shadow-side set: live ids of the shard no longer in the model."""
        return _SHADOW_PREFIX + self._key(shard, "stale")

    def foreign(self, key: str) -> bool:
        """A read-model key another layout wrote (the single-key layout before sharding, or
        another shard count): never read by this one, dropped when the model is rebuilt."""
        if key in _UNSHARDED or key.startswith(_UNSHARDED_PREFIXES):
            return True
        match = _TAGGED.match(key)
        return match is not None and int(match.group(1)) != self.shards


# Keys of layout 1 (one global index, feed and pointer family for the whole fleet).
_UNSHARDED = frozenset(
    f"{_PREFIX}:{name}" for name in ("idle-deadlines", "hard-ends", "transitional", "changes")
)
_UNSHARDED_PREFIXES = (f"{_PREFIX}:sandbox:", f"{_PREFIX}:project:", f"{_PREFIX}:pause-warned:")
_TAGGED = re.compile(rf"^{_PREFIX}:\{{s\d+/(\d+)\}}:")


def project_sandbox(project_id: str) -> str:
    """Pointer project -> the sandbox id currently serving that project. Tagged by the project
    id, so its shadow (a rebuild's) is in the same slot and can be renamed over it. The tag is
    the id without braces behind a fixed letter (never empty, never cut short by the app's own
    `}`); the whole id follows it, so distinct projects keep distinct keys."""
    tag = "p" + project_id.replace("{", "").replace("}", "")
    return f"{_PREFIX}:project-sandbox:{{{tag}}}:{project_id}"


# String: the E2B call budget every actuator and reconciler replica shares (a GCRA "theoretical
# arrival time" in microseconds of the Redis server's clock).
E2B_BUDGET = f"{_PREFIX}:e2b-budget"

# String: the id of the one ticker replica allowed to tick, with a TTL (ENFORCER_LEASE_SECONDS).
TICKER_LEASE = f"{_PREFIX}:idle-deadlines:ticker-lease"


def activity_throttle(sandbox_id: str) -> str:
    """Present while a recent heartbeat of this sandbox already became an activity fact."""
    return f"{_PREFIX}:activity-throttle:{sandbox_id}"


# Pause commands the ticker published (not asked again meanwhile): a sorted set, command id ->
# until when (epoch seconds), so that a tick's thousands are written and read in one command.
PAUSES_REQUESTED = f"{_PREFIX}:pauses-requested"


def command_done(command_id: str) -> str:
    """Present once the actuator carried out this command (E2B answered for good)."""
    return f"{_PREFIX}:command-done:{command_id}"


def seen_event(event_id: str) -> str:
    """Ingest's dedupe marker: this webhook event id is already on the topic."""
    return f"{_PREFIX}:seen:{event_id}"


def stream_ticket(ticket: str) -> str:
    """A stream ticket (status-api, `POST /api/stream-tickets`): who it lets in, until it is
    used once or expires."""
    return f"{_PREFIX}:stream-ticket:{ticket}"


# Hash: policy subject (facts.policy_subject: 'policy:default', 'policy:project:<id>') -> that
# subject's policy in force and the lifecycle position it came from (readmodel/policies.py). One
# key (one slot): the actuator reads a project's and the default's in one HMGET.
POLICIES = f"{_PREFIX}:policies"


# Fields of the sandbox_doc hash: the JSON document and the revision that guards its writes.
DOC_FIELD = "d"
REVISION_FIELD = "r"


# Present once the read model is complete (written by a replay or a rebuild from PostgreSQL).
# Missing means Redis lost it (flushed, a new instance): the projector rebuilds it from PostgreSQL.
READ_MODEL_MARKER = f"{_PREFIX}:read-model"
# Written by the projector's readiness check: a Redis that answers PING may still refuse
# writes (OOM at maxmemory, READONLY after a failover), and only a write shows it.
WRITE_PROBE = f"{_PREFIX}:write-probe"
# The reconciler's lease: one replica compares with E2B per period.
RECONCILER_LEASE = f"{_PREFIX}:reconciler-lease"
# The adaptive idle learner's lease: one replica recomputes the learned timeouts per run.
LEARNER_LEASE = f"{_PREFIX}:learner-lease"
# Pre-warming (enforcer/prewarm): its lease, when it last ran (ISO time: the next run looks for
# returns due since), and each project's sandbox-seconds spent per local day (two days' TTL).
PREWARM_LEASE = f"{_PREFIX}:prewarm-lease"
PREWARM_LAST_RUN = f"{_PREFIX}:prewarm:last-run"


def prewarm_spent(project_id: str, day: str) -> str:
    return f"{_PREFIX}:prewarm:spent:{project_id}:{day}"


_SHADOW_PREFIX = "sbx-shadow:"


def shadow(live_key: str) -> str:
    """Where a rebuild writes the next version of a read-model key before swapping it in."""
    return _SHADOW_PREFIX + live_key


SHADOW_PATTERN = f"{_SHADOW_PREFIX}*"
# Every live key (SCANned for keys of another layout when the model is rebuilt for that).
LIVE_PATTERN = f"{_PREFIX}:*"
# Shadow-side set: the projects whose pointers a rebuild wrote.
SHADOW_PROJECTS = f"{_SHADOW_PREFIX}projects"
