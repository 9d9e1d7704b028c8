"""Which Redis errors are an outage of the store rather than a fault of the record being
written: the services retry, back off and report not ready on these, and never dead-letter a
record because of one.

A Redis at its `maxmemory` (noeviction) refuses writes with OOM, a replica (or a primary
demoted by a failover) with READONLY, a server loading its data set with LOADING, a cluster
mid-failover with TRYAGAIN/CLUSTERDOWN/MASTERDOWN. redis-py maps some of these to their own
classes, but inside a Lua script the same refusal comes back as a plain ResponseError whose
message names it ("Error running script ... -OOM command not allowed ..."), so the message is
read too.
"""

from __future__ import annotations

from redis import exceptions as rx

_OUTAGE_CLASSES: tuple[type[BaseException], ...] = (
    rx.ConnectionError,  # includes BusyLoadingError (LOADING) and MaxConnectionsError
    rx.TimeoutError,
    rx.OutOfMemoryError,
    rx.ReadOnlyError,
    rx.TryAgainError,
    rx.ClusterDownError,  # includes MasterDownError
    OSError,
)
_OUTAGE_CODES = ("OOM", "READONLY", "LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "BUSY")


def is_outage(exc: BaseException) -> bool:
    """True when `exc` (or what it was raised from) says Redis cannot take writes right now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _OUTAGE_CLASSES):
            return True
        if isinstance(current, rx.ResponseError) and _names_outage(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def _names_outage(message: str) -> bool:
    words = message.replace("-", " ").replace(":", " ").split()
    return any(code in words for code in _OUTAGE_CODES)
