"""Lifecycle policies (issue 17): a project's (`GET`: admin or the project's token; `PUT`:
admin) and the global default (admin), each answered with the policy in force and the source
of every value; the list of them (admin)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, get, put
from litestar.datastructures import State
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    ServiceUnavailableException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, Operation, Reference, RequestBody
from litestar.openapi.spec.media_type import OpenAPIMediaType
from litestar.params import Parameter
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_422_UNPROCESSABLE_ENTITY

from sandbox_common.policies import Policy, PolicyError, decode_policy
from status_api.deps import Deps
from status_api.policies import record
from status_api.policy_views import PolicyAccepted, PolicyAnswer, PolicyPage, PolicyRefused
from status_api.routes.operators import decode_cursor, encode_cursor, storable
from status_api.routes.sandboxes import SECURITY

# As long as an E2B id may be (e2b.py): the project's subject is a record key and is indexed
# in the history, where a key of kilobytes would fail the projector's insert for good.
MAX_PROJECT_ID_LENGTH = 256
# Litestar's name for the Policy schema (a part of every answer here).
POLICY_SCHEMA = "#/components/schemas/Policy"
# 401 no valid token, 403 not admin (or another project's token), 429 over the token's rate;
# a project without a policy is not a 404: it inherits every field.
RAISES = [NotAuthorizedException, PermissionDeniedException, TooManyRequestsException]
_REFUSED = {
    HTTP_422_UNPROCESSABLE_ENTITY: ResponseSpec(
        data_container=PolicyRefused,
        description="Not a valid policy: `field` names the value refused, `reason` why",
        generate_examples=False,
        examples=[
            Example(
                summary="an unknown time zone",
                value={
                    "status_code": 422,
                    "detail": "quietHours.timezone: unknown time zone 'Mars/Olympus'",
                    "field": "quietHours.timezone",
                    "reason": "unknown time zone 'Mars/Olympus'",
                },
            )
        ],
    )
}
_FIELDS = (
    "`idleTimeoutSeconds` (10 s to 7 days), `neverPause`, `maxLifetimeSeconds` (60 s to 30 "
    "days), `quietHours` {`start`, `end` (HH:MM), `timezone` (IANA), `days` (mon..sun)}, "
    "`deleteAfterPausedSeconds` (60 s to 365 days), `warnBeforeSeconds` (0 to 3600), `idle` "
    "{`mode`: adaptive, `minSeconds`, `maxSeconds`, `targetRegret` (0 to 1)} (a timeout learned "
    "from the project's history, in place of `idleTimeoutSeconds`; `idle.learned` is the "
    "learner's, read-only): each optional, a field left out is inherited (project > default > "
    "setting). "
)


def client_policy(body: bytes, *, default: bool = False) -> Policy:
    """A policy as a client may set it: what the adaptive rule learned is not the client's to
    say (a 422 naming `idle.learned`), and it learns per project, from that project's history
    (not for the default)."""
    policy = decode_policy(body)
    if policy.idle is not None and default:
        raise PolicyError("idle", "an adaptive timeout is learned per project: set it there")
    if policy.prewarm is not None and default:
        raise PolicyError("prewarm", "pre-warming follows a project's habits: set it there")
    if policy.idle is not None and policy.idle.learned is not None:
        raise PolicyError("idle.learned", "set by the adaptive rule's learner, not by a client")
    return policy


@dataclass
class PolicyBody(Operation):
    """The PUT body is read by the route itself (decode_policy: a 422 naming the field, after
    the admin check), so Litestar is not given a `data` parameter to document: this does."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=Reference(ref=POLICY_SCHEMA))},
            description="The policy: it replaces the level's policy whole ({} inherits all).",
            required=True,
        )


def _put(path: str, summary: str) -> put:
    return put(
        path,
        security=SECURITY,
        summary=summary,
        description=_FIELDS
        + "202 once the fact is on the topic; GET shows it once projected (its `eventId`).",
        status_code=HTTP_202_ACCEPTED,
        raises=[*RAISES, ServiceUnavailableException],
        responses=_REFUSED,
        operation_class=PolicyBody,
    )


def writable(project_id: str) -> str:
    """400 for a project id no fact should carry (U+0000, or longer than an id may be)."""
    if len(project_id) > MAX_PROJECT_ID_LENGTH:
        raise ValidationException(
            detail=f"projectId is longer than {MAX_PROJECT_ID_LENGTH} characters"
        )
    return storable(project_id, "projectId")


@get(
    "/api/projects/{project_id:str}/policy",
    security=SECURITY,
    summary="A project's lifecycle policy and the policy in force (admin or the project)",
    description=(
        "`policy`: the fields the project sets ({} and `setAt` null when it has none); "
        "`effective`: every field's value in force and its `source` (project, default, "
        "setting). A sandbox's own `idleTimeoutSeconds` metadata still overrides that field."
    ),
    raises=RAISES,
)
async def project_policy(
    request: Request[Any, Any, State], project_id: str, deps: Deps
) -> PolicyAnswer:
    deps.gate.for_project(request, project_id)
    return await deps.policies.read(storable(project_id, "projectId"))


@_put("/api/projects/{project_id:str}/policy", "Set a project's lifecycle policy (admin)")
async def set_project_policy(
    request: Request[Any, Any, State], project_id: str, deps: Deps
) -> PolicyAccepted:
    principal = deps.gate.admin(request)
    writable(project_id)
    policy = client_policy(await request.body())
    return await deps.policies.set(project_id, policy, principal.subject)


@get(
    "/api/policy/default",
    security=SECURITY,
    summary="The global default lifecycle policy and the policy in force (admin)",
    description="Under every project's own policy, over the settings.",
    raises=RAISES,
)
async def default_policy(request: Request[Any, Any, State], deps: Deps) -> PolicyAnswer:
    deps.gate.admin(request)
    return await deps.policies.read(None)


@_put("/api/policy/default", "Set the global default lifecycle policy (admin)")
async def set_default_policy(request: Request[Any, Any, State], deps: Deps) -> PolicyAccepted:
    principal = deps.gate.admin(request)
    policy = client_policy(await request.body(), default=True)
    return await deps.policies.set(None, policy, principal.subject)


@get(
    "/api/policies",
    security=SECURITY,
    summary="Every lifecycle policy set: the default, then projects by id (admin)",
    description="Pages with `cursor` = the previous page's `nextCursor`.",
    raises=RAISES,
)
async def policies(
    request: Request[Any, Any, State],
    deps: Deps,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> PolicyPage:
    deps.gate.admin(request)
    after = storable(decode_cursor(cursor, 1)[0], "cursor") if cursor else None
    rows = await deps.policies.reads.projects(after, limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    default = (await deps.policies.reads.levels(None)).default
    return PolicyPage(
        default=record(default, None) if default is not None else None,
        projects=[record(r, r.project_id) for r in rows],
        next_cursor=encode_cursor(str(rows[-1].project_id)) if more else None,
    )


HANDLERS = [project_policy, set_project_policy, default_policy, set_default_policy, policies]
