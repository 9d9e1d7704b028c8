"""A job on a schedule under a lease (the ticker's ticks, the reconciler's passes): stopping
lets a run in flight finish, and never waits for ever on one that will not end."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from enforcer.periodic import Job, Periodic
from enforcer.schedule import Schedule

EVERY_10MS = Schedule("10ms", timedelta(milliseconds=10))


class Held:
    def __init__(self) -> None:
        self.released = False

    async def hold(self) -> bool:
        return True

    async def release(self) -> None:
        self.released = True


async def test_a_run_in_flight_finishes_and_no_other_starts() -> None:
    started, finished, first = [], [], asyncio.Event()

    async def run() -> None:
        started.append(1)
        first.set()
        await asyncio.sleep(0.1)
        finished.append(1)

    lease = Held()
    periodic = Periodic(Job("slow", run, logging.getLogger("t")), EVERY_10MS, lease)
    await periodic.start()
    await first.wait()
    await periodic.stop(grace_seconds=2)
    assert (len(started), len(finished)) == (1, 1)  # not cancelled in the middle
    assert not periodic.running
    assert lease.released
    await asyncio.sleep(0.05)
    assert len(started) == 1


async def test_stop_returns_even_when_a_run_swallows_its_cancellation() -> None:
    # What a cancellation landing inside redis-py's wait_for did on Python 3.11: the task
    # went on waiting, and the process never stopped on SIGTERM.
    started, relent = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        while not relent.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    periodic = Periodic(Job("stubborn", stubborn, logging.getLogger("t")), EVERY_10MS, Held())
    await periodic.start()
    await started.wait()
    await asyncio.wait_for(periodic.stop(grace_seconds=0.05), timeout=2)
    assert periodic.running  # still stuck: reported by readiness, the process exits anyway
    relent.set()
    await periodic.stop(grace_seconds=1)  # cancelled again, it gives up this time
    assert not periodic.running
