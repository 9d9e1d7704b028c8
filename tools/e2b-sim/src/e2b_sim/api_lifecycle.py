"""E2B's sandbox REST subset, lifecycle commands (reference/e2b.md): pause, connect (v2 and the
older route), resume, timeout, refreshes, kill. Decisions come from `domain`; this module only
speaks HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from litestar import Request, Response, delete, post

from e2b_sim import domain, views
from e2b_sim.bodies import ConnectV2, OptionalTimeout, Pause, Refresh, Timeout
from e2b_sim.errors import RATE_LIMITED, E2BError, decode, reply
from e2b_sim.sim import Sim

# connect and resume: a sandbox (maybe none), the timeout asked for, a new execution id, now.
BringUp = Callable[[domain.Sandbox | None, int, str, datetime], domain.Outcome]


@post("/sandboxes/{sandbox_id:str}/pause")
async def pause(sim: Sim, sandbox_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    decode(await request.body(), Pause)
    await asyncio.sleep(sim.faults.current.pause_latency_ms / 1000)
    injected = sim.faults.pause_injection()
    if injected is not None:
        wait = sim.faults.current.retry_after_seconds if injected == 429 else None
        raise E2BError(injected, _injected_message(injected), retry_after_seconds=wait)
    now = sim.store.now()
    return reply(sim.store.apply(domain.pause(sim.store.get(sandbox_id), now, _transition(sim))))


@post("/sandboxes/{sandbox_id:str}/connect")
async def connect(sim: Sim, sandbox_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode(await request.body(), Timeout)
    return _bring_up(sim, sandbox_id, body.timeout, domain.connect)


@post("/v2/sandboxes/{sandbox_id:str}/connect")
async def connect_v2(sim: Sim, sandbox_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode(await request.body(), ConnectV2)
    return _bring_up(sim, sandbox_id, body.timeout, domain.connect)


@post("/sandboxes/{sandbox_id:str}/resume")
async def resume(sim: Sim, sandbox_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode(await request.body(), OptionalTimeout)
    return _bring_up(sim, sandbox_id, body.timeout, domain.resume)


@post("/sandboxes/{sandbox_id:str}/timeout")
async def set_timeout(sim: Sim, sandbox_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode(await request.body(), Timeout)
    now = sim.store.now()
    outcome = domain.set_timeout(sim.store.get(sandbox_id), body.timeout, now)
    return reply(sim.store.apply(outcome))


@post("/sandboxes/{sandbox_id:str}/refreshes")
async def refresh(sim: Sim, sandbox_id: str, request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode(await request.body(), Refresh)
    now = sim.store.now()
    return reply(sim.store.apply(domain.refresh(sim.store.get(sandbox_id), body.duration, now)))


@delete("/sandboxes/{sandbox_id:str}", status_code=200)
async def kill(sim: Sim, sandbox_id: str) -> Response[Any]:
    now = sim.store.now()
    return reply(sim.store.apply(domain.kill(sim.store.get(sandbox_id), now, _transition(sim))))


ROUTES = [pause, connect, connect_v2, resume, set_timeout, refresh, kill]


def _transition(sim: Sim) -> timedelta:
    return timedelta(milliseconds=sim.faults.current.transition_ms)


def _bring_up(sim: Sim, sandbox_id: str, timeout: int, action: BringUp) -> Response[Any]:
    # The team's limit is checked before the sandbox is looked up, as E2B does.
    max_length = timedelta(seconds=sim.settings.max_instance_seconds)
    refused = domain.timeout_refusal(timeout, max_length)
    if refused is not None:
        return reply(refused)
    sandbox, now = sim.store.get(sandbox_id), sim.store.now()
    outcome = sim.store.apply(action(sandbox, timeout, str(uuid.uuid4()), now))
    if outcome.status < 300 and outcome.sandbox is not None:
        return Response(views.created(outcome.sandbox), status_code=outcome.status)
    return reply(outcome)


def _injected_message(status: int) -> str:
    if status == 409:
        return "Sandbox cannot be paused while in 'pausing' state"  # the transitional 409
    if status == 429:
        return RATE_LIMITED
    return "Failed to pause sandbox (injected fault)"
