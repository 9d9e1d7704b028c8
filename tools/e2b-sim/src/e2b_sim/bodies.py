"""Request bodies of the sandbox API, with E2B's field names, bounds and defaults."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# E2B's bounds and defaults (openapi): timeouts in seconds, refresh at most an hour.
Seconds = Annotated[int, msgspec.Meta(ge=0, le=86_400)]
DEFAULT_TIMEOUT = 15


class Lifecycle(msgspec.Struct, rename="camel"):
    on_timeout: Literal["kill", "pause"] = "kill"


class NewSandbox(msgspec.Struct):
    template_id: str = msgspec.field(name="templateID")
    timeout: Seconds = DEFAULT_TIMEOUT
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    auto_pause: bool = msgspec.field(name="autoPause", default=False)
    lifecycle: Lifecycle | None = None


class Timeout(msgspec.Struct):
    timeout: Seconds  # required by connect and /timeout


class OptionalTimeout(msgspec.Struct):
    timeout: Seconds = DEFAULT_TIMEOUT


class Refresh(msgspec.Struct):
    duration: Annotated[int, msgspec.Meta(ge=0, le=3600)] = DEFAULT_TIMEOUT


class Pause(msgspec.Struct):
    memory: bool = False  # accepted and ignored: the simulator keeps no memory
