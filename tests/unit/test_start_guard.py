"""A consumer whose start fails says so on /healthz and /readyz instead of staying up as if
ready (found by hand: a projector started before its schema answered ready and folded nothing)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest

from sandbox_common.broker import StartGuard
from sandbox_common.probes import probe_routes


class Parts:
    def __init__(self, fails: bool) -> None:
        self.fails = fails

    async def problems(self) -> list[str]:
        return []

    async def start(self) -> None:
        if self.fails:
            raise RuntimeError('relation "project_policies" does not exist')

    async def close(self) -> None:
        return None


async def probe(routes: list[tuple[str, Any]], path: str) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    app = dict(routes)[path]
    await app({"type": "http", "path": path}, receive, send)
    return sent[0]["status"], msgspec.json.decode(sent[1]["body"])


async def test_a_failed_start_fails_both_probes_and_names_the_cause() -> None:
    guard = StartGuard(Parts(fails=True), logging.getLogger("test"))
    routes = probe_routes(guard.problems, guard.broken)
    with pytest.raises(RuntimeError):
        await guard.start()
    status, body = await probe(routes, "/healthz")
    assert status == 503
    assert "project_policies" in body["problem"]
    status, body = await probe(routes, "/readyz")
    assert status == 503
    assert body["problems"] == [guard.broken()]


async def test_a_started_process_is_alive_and_ready() -> None:
    guard = StartGuard(Parts(fails=False), logging.getLogger("test"))
    routes = probe_routes(guard.problems, guard.broken)
    await guard.start()
    assert await probe(routes, "/healthz") == (200, {"status": "ok"})
    assert await probe(routes, "/readyz") == (200, {"status": "ready"})
