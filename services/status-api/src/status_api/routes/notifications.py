"""A project's notification receiver (issue 17, item 5): `GET|PUT|DELETE
/api/projects/{projectId}/notifications`, for admins and the project's own token or API key.
What is sent, how it is signed and retried: docs/NOTIFICATIONS.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, delete, get, put
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.openapi.spec.media_type import OpenAPIMediaType
from litestar.status_codes import HTTP_204_NO_CONTENT, HTTP_422_UNPROCESSABLE_ENTITY

from sandbox_common.notifications import NoticeKind
from sandbox_common.notifications.target import MIN_SECRET_LENGTH
from status_api.access import AUTHENTICATE_FIRST
from status_api.adapters.notification_targets import StoredTarget
from status_api.deps import Deps
from status_api.policy_views import PolicyRefused
from status_api.receivers import Receivers
from status_api.routes.policies import RAISES, writable
from status_api.routes.sandboxes import SECURITY

PATH = "/api/projects/{project_id:str}/notifications"


class Receiver(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A project's receiver: where its notifications go and which; never its secret."""

    project_id: str
    url: str
    events: list[str]
    updated_at: datetime
    updated_by: str | None


def _answer(stored: StoredTarget) -> Receiver:
    return Receiver(**msgspec.structs.asdict(stored))


@dataclass
class ReceiverBody(Operation):
    """The PUT body is read by the route (a 422 naming the field, after the token check)."""

    def __post_init__(self) -> None:
        schema = Schema(
            type=OpenAPIType.OBJECT,
            required=["url", "secret"],
            properties={
                "url": Schema(type=OpenAPIType.STRING, format=None, max_length=2048),
                "events": Schema(
                    type=OpenAPIType.ARRAY,
                    items=Schema(type=OpenAPIType.STRING, enum=[k.value for k in NoticeKind]),
                    description="default: every event",
                ),
                "secret": Schema(
                    type=OpenAPIType.STRING, min_length=MIN_SECRET_LENGTH, max_length=256
                ),
            },
        )
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=schema)},
            description="Where to POST, which events, and the secret that signs them.",
            required=True,
        )


_REFUSED = {
    HTTP_422_UNPROCESSABLE_ENTITY: ResponseSpec(
        data_container=PolicyRefused,
        description="Not taken: `field` names the value refused (`url`: its form, or an address"
        " notifications may not reach), `reason` why",
        generate_examples=False,
    )
}


def _receivers(deps: Deps) -> Receivers:
    if deps.receivers is None:
        raise ServiceUnavailableException(detail="notifications are not set up here")
    return deps.receivers


@get(PATH, security=SECURITY, summary="A project's notification receiver", raises=RAISES)
async def receiver(request: Request[Any, Any, State], project_id: str, deps: Deps) -> Receiver:
    deps.gate.for_project(request, project_id)
    stored = await _receivers(deps).store.get(writable(project_id))
    if stored is None:
        raise NotFoundException(detail=f"project {project_id} has no notification receiver")
    return _answer(stored)


@put(
    PATH,
    security=SECURITY,
    summary="Register (or replace) a project's notification receiver",
    description=(
        "Signed POSTs (`Sandbox-Signature`, docs/NOTIFICATIONS.md) of `pauseImminent`, "
        "`paused`, `resumed`, `killed`, `deleteImminent` and `policyAction`, at least once. "
        "A URL whose host resolves inside our networks is refused (NOTIFY_REACH)."
    ),
    raises=[*RAISES, ServiceUnavailableException],
    responses=_REFUSED,
    operation_class=ReceiverBody,
    opt={AUTHENTICATE_FIRST: True},
)
async def set_receiver(request: Request[Any, Any, State], project_id: str, deps: Deps) -> Receiver:
    principal = deps.gate.for_project(request, project_id)
    receivers = _receivers(deps)
    stored = await receivers.register(writable(project_id), await request.body(), principal.subject)
    return _answer(stored)


@delete(
    PATH,
    security=SECURITY,
    summary="Stop a project's notifications (those still being retried are dropped)",
    status_code=HTTP_204_NO_CONTENT,
    raises=RAISES,
)
async def remove_receiver(request: Request[Any, Any, State], project_id: str, deps: Deps) -> None:
    deps.gate.for_project(request, project_id)
    if not await _receivers(deps).store.delete(writable(project_id)):
        raise NotFoundException(detail=f"project {project_id} has no notification receiver")


HANDLERS = [receiver, set_receiver, remove_receiver]
