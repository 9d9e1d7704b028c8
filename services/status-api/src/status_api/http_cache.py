"""HTTP caching of status reads: a validator per document state, max-age from pollAfterMs."""

from __future__ import annotations

import zlib

from sandbox_common.readmodel import POLL_AFTER_MS, Status


def etag(sandbox_id: str, revision: int, pause_imminent: bool, lifetime_end: bool = False) -> str:
    """Strong: the body is a function of (sandbox, revision, the two warning flags) and nothing
    else."""
    flags = f"{int(pause_imminent)}{'L' if lifetime_end else ''}"
    return f'"{zlib.crc32(sandbox_id.encode()):08x}-{revision}-{flags}"'


def cache_control(status: Status) -> str:
    """Private (per-token data). A client caches as long as it would wait before polling; a
    PAUSED sandbox changes only when someone acts, so it is always revalidated (cheap: 304)."""
    poll_ms = POLL_AFTER_MS[status]
    if poll_ms is None:
        return "private, no-cache"
    return f"private, max-age={poll_ms // 1000}"


def matches(if_none_match: str | None, tag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored for If-None-Match.
    return any(t.strip().removeprefix("W/") == tag for t in if_none_match.split(","))
