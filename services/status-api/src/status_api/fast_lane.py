"""The hot reads without Litestar's per-request machinery.

Every frontend poll is `GET /api/projects/{id}/sandbox` or `GET /api/sandboxes/{id}`. This ASGI
wrapper answers those when the answer is a 200 or a 304 (a token already verified, the sandbox
visible to it), with the same `reads.render` the Litestar routes use. Anything else (errors,
CORS requests, every other route) goes to the Litestar app, which stays the documented
(OpenAPI) and complete implementation: the fast lane only ever declines or agrees with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeGuard

from redis.exceptions import RedisError

from sandbox_common.readmodel import Status, StatusDoc
from sandbox_common.request_timing import ROUTE_KEY
from status_api.auth import Principal
from status_api.deps import Deps
from status_api.reads import Answer, render

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
# Loose on purpose: Litestar types its __call__ with its own scope and event unions.
ASGIApp = Callable[..., Awaitable[None]]

_PROJECTS, _PROJECT_SUFFIX = "/api/projects/", "/sandbox"
_SANDBOXES = "/api/sandboxes/"
# The two routes' templates as Litestar names them, so both lanes share one latency series.
PROJECT_ROUTE, SANDBOX_ROUTE = "/api/projects/{project_id}/sandbox", "/api/sandboxes/{sandbox_id}"
_JSON = (b"content-type", b"application/json")


class FastLane:
    def __init__(self, app: ASGIApp, deps: Deps) -> None:
        self._app = app
        self._deps = deps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            try:
                served = await self._serve(scope, send)
            except (RedisError, OSError):
                # A store error is the Litestar route's to answer (503 with Retry-After): from
                # here it was a bare 500 (found by the fault suite, tests/faults).
                served = False
            if served:
                return
        await self._app(scope, receive, send)

    async def _serve(self, scope: Scope, send: Send) -> bool:
        path: str = scope["path"]
        project_id = _project_id(path)
        sandbox_id = _sandbox_id(path) if project_id is None else None
        if project_id is None and sandbox_id is None:
            return False
        # Read in one pass, not a dict: this runs for every frontend poll.
        authorization = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif name == b"origin":
                return False  # cross-origin: Litestar adds the CORS headers
        principal = self._deps.gate.known_principal(authorization)
        if principal is None or (project_id is not None and not principal.may_read(project_id)):
            return False
        try:
            if project_id is not None:
                doc = await self._deps.reader.by_project(project_id)
            else:
                assert sandbox_id is not None
                doc = await self._deps.reader.by_sandbox(sandbox_id)
        except Exception:
            # Redis down, the read model being rebuilt: the Litestar route answers (503).
            return False
        if not _servable(doc, principal):
            return False
        answer = render(
            doc,
            if_none_match,
            self._deps.clock(),
            self._deps.warn.windows(doc.project_id),
            "project" if project_id is not None else "sandbox",
        )
        scope[ROUTE_KEY] = PROJECT_ROUTE if project_id is not None else SANDBOX_ROUTE
        await send(_response_start(answer))
        await send({"type": "http.response.body", "body": answer.body})
        return True


def _project_id(path: str) -> str | None:
    """The id of `/api/projects/{id}/sandbox`; None for any other path."""
    if not (path.startswith(_PROJECTS) and path.endswith(_PROJECT_SUFFIX)):
        return None
    project_id = path[len(_PROJECTS) : -len(_PROJECT_SUFFIX)]
    return project_id if project_id and "/" not in project_id else None


def _sandbox_id(path: str) -> str | None:
    """The id of `/api/sandboxes/{id}` (not the fleet's stream); None for any other path."""
    if not path.startswith(_SANDBOXES):
        return None
    sandbox_id = path[len(_SANDBOXES) :]
    if not sandbox_id or "/" in sandbox_id or sandbox_id == "stream":
        return None
    return sandbox_id


def _servable(doc: StatusDoc | None, principal: Principal) -> TypeGuard[StatusDoc]:
    """A live sandbox the token may read: 404 and 403 are the Litestar route's to answer."""
    return (
        doc is not None and doc.status is not Status.KILLED and principal.may_read(doc.project_id)
    )


def _response_start(answer: Answer) -> MutableMapping[str, Any]:
    headers = [
        (b"etag", answer.etag.encode()),
        (b"cache-control", answer.cache_control.encode()),
    ]
    if answer.status_code == 200:
        headers += [_JSON, (b"content-length", str(len(answer.body)).encode())]
    return {"type": "http.response.start", "status": answer.status_code, "headers": headers}
