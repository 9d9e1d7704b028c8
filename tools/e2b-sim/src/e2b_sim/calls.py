"""The call log tests read (GET /_sim/calls): every REST call with its sandbox, op and status.

Kept as an ASGI wrapper around the whole app so it sees every answer, including 401s,
injected faults and unknown routes.
"""

from __future__ import annotations

import re
from collections import deque
from datetime import UTC, datetime
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_SANDBOX_PATH = re.compile(
    r"^(?:/v2)?/sandboxes/(?P<id>[^/]+)(?:/(?P<op>pause|connect|resume|timeout|refreshes))?/?$"
)
_WHOLE_PATH_OPS = {
    ("POST", "/sandboxes"): "create",
    ("POST", "/v2/sandboxes"): "create",
    ("GET", "/v2/sandboxes"): "list",
}


def classify(method: str, path: str) -> tuple[str | None, str]:
    """(sandbox id, op) of a call: op is pause/connect/resume/timeout/refreshes/get/kill/..."""
    if (method, path.rstrip("/")) in _WHOLE_PATH_OPS:
        return None, _WHOLE_PATH_OPS[(method, path.rstrip("/"))]
    match = _SANDBOX_PATH.match(path)
    if match is None:
        return None, path.strip("/").split("/", 1)[0] or "root"  # e.g. "events"
    if match["op"]:
        return match["id"], match["op"]
    return match["id"], {"GET": "get", "DELETE": "kill"}.get(method, method.lower())


class CallLog:
    def __init__(self) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=100_000)

    def record(self, method: str, path: str, status: int) -> None:
        sandbox_id, op = classify(method, path)
        self.entries.append(
            {
                "method": method,
                "path": path,
                "sandboxId": sandbox_id,
                "op": op,
                "status": status,
                "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            }
        )

    def query(self, sandbox_id: str | None, op: str | None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.entries
            if sandbox_id in (None, e["sandboxId"]) and op in (None, e["op"])
        ]


def recording(app: ASGIApp, calls: CallLog) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:  # lifespan: no path, not a call
            await app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith("/_sim") or path == "/healthz":
            await app(scope, receive, send)
            return
        status = 500  # what the client sees if the app dies before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_and_note)
        finally:
            calls.record(scope["method"], path, status)

    return wrapped
