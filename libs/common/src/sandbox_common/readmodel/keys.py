"""The Redis key layout: every key the system writes, in one place."""

_PREFIX = "sbx"


def sandbox_doc(sandbox_id: str) -> str:
    """The status document of one sandbox (JSON, camelCase), or a KILLED tombstone."""
    return f"{_PREFIX}:sandbox:{sandbox_id}"


def project_sandbox(project_id: str) -> str:
    """Pointer project -> the sandbox id currently serving that project."""
    return f"{_PREFIX}:project:{project_id}:sandbox"


# Sorted set: member sandbox id, score the epoch second at which a RUNNING sandbox becomes idle
# enough to pause. The enforcer reads only the due part of it (cost grows with the number due,
# not with the fleet); the projector keeps it in step with the status documents.
IDLE_DEADLINES = f"{_PREFIX}:idle-deadlines"

# String: the E2B call budget every actuator and reconciler replica shares (a GCRA "theoretical
# arrival time" in microseconds of the Redis server's clock).
E2B_BUDGET = f"{_PREFIX}:e2b-budget"

# String: the id of the one ticker replica allowed to tick, with a TTL (ENFORCER_LEASE_SECONDS).
TICKER_LEASE = f"{IDLE_DEADLINES}:ticker-lease"


# Sorted set: member sandbox id, score the epoch second at which E2B ends a RUNNING sandbox's run
# whatever its activity (its maximum instance length). status-api warns frontends from it.
HARD_ENDS = f"{_PREFIX}:hard-ends"

# Sorted set: member sandbox id, score the epoch second it entered PAUSING or STARTING. The
# enforcer repairs members left there too long (a lost command, an actuator down).
TRANSITIONAL = f"{_PREFIX}:transitional"


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


# Fields of the sandbox_doc hash: the JSON document and the revision that guards its writes.
DOC_FIELD = "d"
REVISION_FIELD = "r"


# Redis stream of read-model changes (the projector's document writes and status-api's
# pause warnings), newest last; SSE clients follow it and resume from its entry ids.
CHANGES = f"{_PREFIX}:changes"


def pause_warned(sandbox_id: str, deadline: str) -> str:
    """Present once the warning (pauseImminent, lifetimeEnding) for this sandbox's deadline has
    gone out; `deadline` names the deadline and its kind."""
    return f"{_PREFIX}:pause-warned:{sandbox_id}:{deadline}"


# Present once the read model is complete (written by a replay or a rebuild from PostgreSQL).
# Missing means Redis lost it (flushed, a new instance): the projector rebuilds it from PostgreSQL.
READ_MODEL_MARKER = f"{_PREFIX}:read-model"
# Written by the projector's readiness check: a Redis that answers PING may still refuse
# writes (OOM at maxmemory, READONLY after a failover), and only a write shows it.
WRITE_PROBE = f"{_PREFIX}:write-probe"
# The reconciler's lease: one replica compares with E2B per period.
RECONCILER_LEASE = f"{_PREFIX}:reconciler-lease"

_SHADOW_PREFIX = "sbx-shadow:"


def shadow(live_key: str) -> str:
    """Where a rebuild writes the next version of a read-model key before swapping it in."""
    return _SHADOW_PREFIX + live_key


# Shadow-side sets the swap walks: the sandbox ids rebuilt, and live ids no longer in the model.
SHADOW_IDS = f"{_SHADOW_PREFIX}ids"
SHADOW_STALE = f"{_SHADOW_PREFIX}stale"
SHADOW_PATTERN = f"{_SHADOW_PREFIX}*"
SHADOW_PROJECTS = f"{_SHADOW_PREFIX}projects"
