"""The frontend's routes: a sandbox's state (with HTTP caching), heartbeats, wake; and an
operator's pause (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_304_NOT_MODIFIED

from sandbox_common.envelope import Source
from sandbox_common.readmodel import POLL_AFTER_MS, Status, StatusDoc
from status_api import metrics
from status_api.access import AUTHENTICATE_FIRST
from status_api.actions import request_pause, request_wake
from status_api.activity import Heartbeat, record_activity
from status_api.deps import Deps
from status_api.reads import render
from status_api.views import (
    ActionAnswer,
    ActivityAnswer,
    Caller,
    SandboxStatus,
)

_encoder = msgspec.json.Encoder()
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyAuth": []}]
# Documented in OpenAPI: 401 no valid token, 403 another project's sandbox, 404 none or killed,
# 429 over the token's rate.
RAISES = [
    NotAuthorizedException,
    PermissionDeniedException,
    NotFoundException,
    TooManyRequestsException,
]
_EXAMPLE_STATUS = {
    "projectId": "proj-1",
    "sandboxId": "sbx-1",
    "status": "RUNNING",
    "lastActiveAt": "2026-11-27T10:00:00Z",
    "pollAfterMs": 30000,
    "statusChangedAt": "2026-11-27T09:58:00Z",
    "timeoutAt": "2026-11-27T10:10:00Z",
    "templateId": "base",
    "metadata": {"projectId": "proj-1"},
    "idleDeadlineAt": "2026-11-27T10:03:00Z",
    "pauseImminent": False,
    "maxLifetimeAt": "2026-11-28T09:58:00Z",
    "lifetimeEndImminent": False,
    "autoPause": True,
    "autoResume": True,
    "idleBackoff": 1,
}
# Documented responses of the two status reads: the body with examples, and the 304.
STATUS_RESPONSES = {
    HTTP_200_OK: ResponseSpec(
        data_container=SandboxStatus,
        description="The sandbox's status, with ETag and Cache-Control headers",
        generate_examples=False,
        examples=[
            Example(summary="running", value=_EXAMPLE_STATUS),
            Example(
                summary="paused (stop polling)",
                value={
                    **_EXAMPLE_STATUS,
                    "status": "PAUSED",
                    "pollAfterMs": None,
                    "idleDeadlineAt": None,
                    "maxLifetimeAt": None,
                },
            ),
            Example(
                summary="pausing soon unless used",
                value={**_EXAMPLE_STATUS, "pauseImminent": True},
            ),
            Example(
                summary="E2B ends the run soon whatever the activity (its maximum length)",
                value={
                    **_EXAMPLE_STATUS,
                    "maxLifetimeAt": "2026-11-27T10:04:00Z",
                    "lifetimeEndImminent": True,
                },
            ),
            Example(
                summary="flapping: its idle pauses keep being undone, idle timeout doubled",
                value={
                    **_EXAMPLE_STATUS,
                    "idleDeadlineAt": "2026-11-27T10:06:00Z",
                    "idleBackoff": 2,
                },
            ),
        ],
    ),
    HTTP_304_NOT_MODIFIED: ResponseSpec(
        data_container=None, description="Unchanged since the ETag sent in If-None-Match"
    ),
}


def visible(doc: StatusDoc | None, route: str, what: str) -> StatusDoc:
    if doc is None or doc.status is Status.KILLED:
        metrics.READS.labels(route=route, outcome="not_found").inc()
        raise NotFoundException(detail=f"no sandbox for {what}")
    return doc


def cached(
    deps: Deps, request: Request[Any, Any, State], doc: StatusDoc, route: str
) -> Response[SandboxStatus]:
    """The status with an ETag; 304 and no body when the client already has this one."""
    answer = render(
        doc,
        request.headers.get("if-none-match"),
        deps.clock(),
        deps.warn.windows(doc.project_id),
        route,
    )
    headers = {"ETag": answer.etag, "Cache-Control": answer.cache_control}
    # Already encoded (reads.render): Litestar sends the bytes as they are.
    response = Response(
        answer.body,
        status_code=answer.status_code,
        media_type=MediaType.JSON,
        headers=headers,
    )
    return cast("Response[SandboxStatus]", response)


@get(
    "/api/projects/{project_id:str}/sandbox",
    security=SECURITY,
    summary="Current sandbox of a project",
    description=(
        "404 when the project has no live sandbox (never created, or killed). Send the "
        "ETag back in If-None-Match for a 304; poll again after `pollAfterMs` (null: stop "
        "polling), or listen on the stream instead."
    ),
    raises=RAISES,
    responses=STATUS_RESPONSES,
)
async def project_sandbox(
    request: Request[Any, Any, State], project_id: str, deps: Deps
) -> Response[SandboxStatus]:
    deps.gate.for_project(request, project_id)
    doc = visible(await deps.reader.by_project(project_id), "project", f"project {project_id}")
    return cached(deps, request, doc, "project")


@get(
    "/api/sandboxes/{sandbox_id:str}",
    security=SECURITY,
    summary="One sandbox by id",
    description=(
        "404 when there is no live sandbox with this id, or it belongs to a project the token "
        "does not name (the same answer: ids of other projects are not revealed)."
    ),
    raises=RAISES,
    responses=STATUS_RESPONSES,
)
async def sandbox(
    request: Request[Any, Any, State], sandbox_id: str, deps: Deps
) -> Response[SandboxStatus]:
    principal = deps.gate.principal(request)
    doc = visible(await deps.reader.by_sandbox(sandbox_id), "sandbox", f"id {sandbox_id}")
    if not principal.may_read(doc.project_id):
        # The same answer as an unknown id: another project's sandbox ids are not revealed.
        metrics.REFUSED.labels(reason="forbidden").inc()
        raise NotFoundException(detail=f"no sandbox for id {sandbox_id}")
    return cached(deps, request, doc, "sandbox")


async def project_doc_to_act_on(
    deps: Deps, request: Request[Any, Any, State], project_id: str, route: str
) -> StatusDoc:
    deps.gate.for_project(request, project_id)
    return visible(await deps.reader.by_project(project_id), route, f"project {project_id}")


def action(path: str, summary: str) -> post:
    """A write: 202 once its fact is on Kafka (503 when the broker does not take it)."""
    return post(
        path,
        security=SECURITY,
        summary=summary,
        status_code=HTTP_202_ACCEPTED,
        raises=[*RAISES, ServiceUnavailableException],
        opt={AUTHENTICATE_FIRST: True},
    )


def caller_source(data: Caller | None) -> Source:
    return Source(data.source) if data else Source.UI


def busy_until(data: Caller | None, deps: Deps) -> datetime | None:
    """400 for a time without a zone, or more than STATUS_API_BUSY_MAX_SECONDS ahead: a hold
    that long is a bug in the agent, not a task (a time past is taken: the hold is over)."""
    if data is None or data.busy_until is None:
        return None
    at = data.busy_until
    if at.tzinfo is None:
        raise ValidationException(detail="busyUntil needs a time zone (e.g. ...Z)")
    if at - deps.clock() > deps.busy_max:
        hours = deps.busy_max.total_seconds() / 3600
        raise ValidationException(detail=f"busyUntil is more than {hours:g} h ahead")
    return at


def action_answer(doc: StatusDoc, status: Status) -> ActionAnswer:
    return ActionAnswer(
        sandbox_id=doc.sandbox_id, status=status, poll_after_ms=POLL_AFTER_MS[status]
    )


@action(
    "/api/projects/{project_id:str}/sandbox/activity",
    "Report user activity (a heartbeat) for a project's sandbox",
)
async def activity(
    request: Request[Any, Any, State], project_id: str, deps: Deps, data: Caller | None = None
) -> ActivityAnswer:
    """Moves the sandbox's last activity (and so its idle deadline). Heartbeats are
    throttled per sandbox: `recorded: false` means one of this window was already taken."""
    doc = await project_doc_to_act_on(deps, request, project_id, "activity")
    beat = Heartbeat(caller_source(data), busy_until(data, deps))
    result = await record_activity(doc, beat, deps.throttle, deps.publisher, deps.keep_alive)
    metrics.ACTIVITY.labels(recorded=str(result.recorded).lower()).inc()
    return ActivityAnswer(sandbox_id=doc.sandbox_id, recorded=result.recorded)


@action("/api/projects/{project_id:str}/sandbox/wake", "Wake (resume) a project's paused sandbox")
async def wake(
    request: Request[Any, Any, State], project_id: str, deps: Deps, data: Caller | None = None
) -> ActionAnswer:
    """202 with `status: STARTING` (poll or listen until RUNNING); a sandbox already
    RUNNING or STARTING is left as it is and its status returned."""
    doc = await project_doc_to_act_on(deps, request, project_id, "wake")
    status = await request_wake(doc, caller_source(data), deps.publisher)
    return action_answer(doc, status)


@action("/api/sandboxes/{sandbox_id:str}/pause", "Pause a running sandbox now (admin)")
async def pause(request: Request[Any, Any, State], sandbox_id: str, deps: Deps) -> ActionAnswer:
    """202 with `status: PAUSING`; any other state is returned as it is. Activity after
    this request makes the actuator drop the pause, as with the enforcer's."""
    principal = deps.gate.admin(request)
    doc = visible(await deps.reader.by_sandbox(sandbox_id), "pause", f"id {sandbox_id}")
    status = await request_pause(doc, principal.subject, deps.publisher)
    return action_answer(doc, status)


HANDLERS = [project_sandbox, sandbox, activity, wake, pause]
