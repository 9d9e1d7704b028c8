"""Open-loop load of signed webhooks, retried like E2B retries them, with every answer recorded.

Requests leave at a fixed rate whatever the answers do (a slow or dead ingest builds a queue, it
does not slow the sender). Each connection is a raw keep-alive stream (bench/webhooks.py) with
the request bytes built up front; with several ingest processes the connections are spread over
them, as a load balancer would. A delivery that is not answered 2xx (error code, reset,
timeout) goes back in the queue after `retry_delay`, with the same body and event id, until
`give_up_after` past the last send.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.webhooks import Connection


@dataclass
class Delivery:
    event_id: str
    raw: bytes  # the whole HTTP request
    attempts: int = 0
    due_at: float | None = None  # time.monotonic() it was scheduled to leave (first attempt)
    acked_at: float | None = None  # time.monotonic() of its 2xx

    @property
    def delay(self) -> float | None:
        """From its scheduled send to its 2xx, retries included (what E2B would wait)."""
        if self.acked_at is None or self.due_at is None:
            return None
        return self.acked_at - self.due_at


@dataclass
class Figures:
    sent: int = 0  # attempts, retries included
    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # non-2xx by code, or error kind
    ok_times: list[float] = field(default_factory=list)  # time.monotonic() of each 2xx
    failed_times: list[tuple[float, str]] = field(default_factory=list)  # (when, kind)

    def longest_gap(self) -> float:
        """The longest stretch without any 2xx answer while the load ran (the outage seen)."""
        times = sorted(self.ok_times)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


class Load:
    def __init__(
        self,
        host: str,
        ports: Sequence[int],
        deliveries: list[Delivery],
        *,
        rate: float,
        connections: int = 64,
        timeout: float = 15.0,
        retry_delay: float = 1.0,
        give_up_after: float = 90.0,
    ) -> None:
        self.host, self.ports, self.deliveries = host, ports, deliveries
        self.rate, self.connections, self.timeout = rate, connections, timeout
        self.retry_delay, self.give_up_after = retry_delay, give_up_after
        self.figures = Figures()
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._open = len(deliveries)
        self._settled = asyncio.Event()
        self._give_up_at = float("inf")

    @property
    def unacked(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.acked_at is None]

    async def run(self) -> Figures:
        """Sends everything at the rate, then waits until each delivery is acked or given up."""
        workers = [
            asyncio.create_task(self._worker(self.ports[i % len(self.ports)]))
            for i in range(self.connections)
        ]
        try:
            started = time.monotonic()
            for i, delivery in enumerate(self.deliveries):
                delivery.due_at = started + i / self.rate
                delay = delivery.due_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._queue.put_nowait(delivery)
            self._give_up_at = time.monotonic() + self.give_up_after
            if self._open:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), self.give_up_after + 30)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return self.figures

    async def _worker(self, port: int) -> None:
        conn = Connection(self.host, port)
        try:
            while True:
                delivery = await self._queue.get()
                await self._send(conn, delivery)
        finally:
            conn.close()

    async def _send(self, conn: Connection, delivery: Delivery) -> None:
        delivery.attempts += 1
        self.figures.sent += 1
        try:
            async with asyncio.timeout(self.timeout):
                status = await conn.request(delivery.raw)
        except TimeoutError:
            conn.close()
            self._failed(delivery, "timeout")
            return
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            conn.close()
            self._failed(
                delivery, "refused" if isinstance(exc, ConnectionRefusedError) else "reset"
            )
            await asyncio.sleep(0.05)  # a dead server: do not spin through the queue
            return
        if 200 <= status < 300:
            delivery.acked_at = time.monotonic()
            self.figures.ok += 1
            self.figures.ok_times.append(delivery.acked_at)
            self._close_one()
        else:
            self._failed(delivery, str(status))

    def _failed(self, delivery: Delivery, kind: str) -> None:
        self.figures.failed[kind] += 1
        self.figures.failed_times.append((time.monotonic(), kind))
        if time.monotonic() + self.retry_delay < self._give_up_at:
            asyncio.get_running_loop().call_later(
                self.retry_delay, self._queue.put_nowait, delivery
            )
        else:
            self._close_one()

    def _close_one(self) -> None:
        self._open -= 1
        if self._open == 0:
            self._settled.set()
