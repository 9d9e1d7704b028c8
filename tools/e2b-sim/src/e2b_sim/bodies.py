"""Request bodies of the sandbox API, with E2B's field names, bounds and defaults (its OpenAPI
document and the request models of its SDK's generated client). Unknown fields are accepted
and ignored, as fields the simulator has no use for (envVars, network, mcp, ...)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# Timeouts in seconds (int32). Above the team's limit, create/connect/resume answer 400 and
# /timeout is capped: see keepalive.py. The v2 routes refuse 0.
Seconds = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
PositiveSeconds = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
DEFAULT_TIMEOUT = 15  # the older routes
DEFAULT_TIMEOUT_V2 = 300  # POST /v2/sandboxes and /v2/sandboxes/{id}/connect


class Lifecycle(msgspec.Struct, rename="camel"):
    """Accepted as before: `lifecycle.onTimeout` on create. The create bodies of E2B's SDK 2.63
    say `autoPause` instead."""

    on_timeout: Literal["kill", "pause"] = "kill"


class AutoResume(msgspec.Struct):
    enabled: bool


class NewSandbox(msgspec.Struct):
    """POST /sandboxes (the older create)."""

    template_id: str = msgspec.field(name="templateID")
    timeout: Seconds = DEFAULT_TIMEOUT
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    auto_pause: bool = msgspec.field(name="autoPause", default=False)
    auto_resume: AutoResume | None = msgspec.field(name="autoResume", default=None)
    lifecycle: Lifecycle | None = None


class NewSandboxV2(msgspec.Struct):
    """POST /v2/sandboxes: what E2B's SDK sends today (secure-only, timeout at least 1 s)."""

    template_id: str = msgspec.field(name="templateID")
    timeout: PositiveSeconds = DEFAULT_TIMEOUT_V2
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    auto_pause: bool = msgspec.field(name="autoPause", default=False)
    # false: an auto-pause keeps only the filesystem. Accepted; the simulator keeps no memory.
    auto_pause_memory: bool = msgspec.field(name="autoPauseMemory", default=True)
    auto_resume: AutoResume | None = msgspec.field(name="autoResume", default=None)


class Timeout(msgspec.Struct):
    timeout: Seconds  # required by /timeout and by the older connect


class ConnectV2(msgspec.Struct):
    """POST /v2/sandboxes/{id}/connect: the body and each field are optional."""

    timeout: PositiveSeconds = DEFAULT_TIMEOUT_V2
    # false: resume from the disk state only (a cold boot). Accepted; with no memory to
    # restore, a cold boot looks the same from outside.
    memory: bool = True


class OptionalTimeout(msgspec.Struct):
    timeout: Seconds = DEFAULT_TIMEOUT


class Refresh(msgspec.Struct):
    duration: Annotated[int, msgspec.Meta(ge=0, le=3600)] = DEFAULT_TIMEOUT


class Pause(msgspec.Struct):
    memory: bool = False  # accepted and ignored: the simulator keeps no memory
