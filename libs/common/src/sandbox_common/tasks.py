"""Background tasks ended one way, at shutdown."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None, grace_seconds: float = 5.0) -> None:
    """Cancels `task` and waits at most `grace_seconds` for it to end. Never for ever: on
    Python 3.11 a cancellation that lands while redis-py's `asyncio.wait_for` around a socket
    write completes can be swallowed, and the task goes on waiting (a ticker that never exited
    on SIGTERM). What the task raised is retrieved, so asyncio does not report it as lost."""
    if task is None:
        return
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=grace_seconds)
    if done and not task.cancelled():
        task.exception()
