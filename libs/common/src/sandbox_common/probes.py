"""/healthz, /readyz and /metrics as plain ASGI apps, for the services that are not Litestar apps
(the FastStream consumers: projector, enforcer ticker, actuator)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Problems = Callable[[], Awaitable[list[str]]]


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def probe_routes(
    problems: Problems, broken: Callable[[], str | None] = lambda: None
) -> list[tuple[str, ASGIApp]]:
    """`problems()` lists what keeps the service from doing its job (empty: ready); `broken()`
    says why the process can never do it as it is (its start failed): /healthz answers 503
    then, so an orchestrator restarts it instead of keeping a process that does nothing."""

    async def healthz(scope: Scope, receive: Receive, send: Send) -> None:
        why = broken()
        if why is not None:
            body = msgspec.json.encode({"status": "broken", "problem": why})
            await _respond(send, 503, body, "application/json")
            return
        await _respond(send, 200, b'{"status":"ok"}', "application/json")

    async def readyz(scope: Scope, receive: Receive, send: Send) -> None:
        found = await problems()
        body = {"status": "unready", "problems": found} if found else {"status": "ready"}
        await _respond(send, 503 if found else 200, msgspec.json.encode(body), "application/json")

    async def metrics(scope: Scope, receive: Receive, send: Send) -> None:
        await _respond(send, 200, generate_latest(), CONTENT_TYPE_LATEST)

    return [("/healthz", healthz), ("/readyz", readyz), ("/metrics", metrics)]


class Pingable(Protocol):
    async def ping(self, timeout: float | None) -> bool: ...  # noqa: ASYNC109 (the broker's own)

    @property
    def problem(self) -> str | None:
        """Why it could not connect, when known (broker.PatientKafkaBroker)."""


async def failing(
    broker: Pingable, stores: Mapping[str, Callable[[], Awaitable[object]]]
) -> list[str]:
    """What a consumer's /readyz reports: the broker unreachable (and why, when known: a refused
    password reads differently from a broker that is down), and each store whose check raised
    (any failure, whatever its type)."""
    reachable = await broker.ping(timeout=2.0)
    found = [] if reachable else [f"kafka: {broker.problem or 'broker not reachable'}"]
    for name, check in stores.items():
        try:
            await check()
        except Exception as exc:  # readiness reports any failure, whatever its type
            found.append(f"{name}: {exc.__class__.__name__}: {exc}")
    return found
