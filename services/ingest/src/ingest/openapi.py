"""The webhook route's OpenAPI: its body and signature header, which the handler reads raw
(the signature is over the exact bytes), so Litestar cannot infer them from its signature.
Clients and property-based tests (schemathesis) generate requests from this document."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)

from sandbox_common import e2b

_STRING = Schema(type=OpenAPIType.STRING)
_ID = Schema(type=OpenAPIType.STRING, min_length=1, max_length=256)

# v2 (current, snake_case); v1 (camelCase) is accepted too but not described here.
WEBHOOK_BODY = Schema(
    type=OpenAPIType.OBJECT,
    required=["id", "type", "timestamp", "sandbox_id"],
    properties={
        "id": _ID,
        "version": Schema(type=OpenAPIType.STRING, enum=["v1", "v2"]),
        "type": Schema(type=OpenAPIType.STRING, enum=[t.value for t in e2b.LifecycleType]),
        "timestamp": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
        "sandbox_id": _ID,
        "sandbox_execution_id": _ID,
        "sandbox_template_id": _ID,
        "sandbox_build_id": _ID,
        "sandbox_team_id": _ID,
        "event_data": Schema(
            type=OpenAPIType.OBJECT,
            properties={
                "sandbox_metadata": Schema(type=OpenAPIType.OBJECT, additional_properties=_STRING),
                "set_timeout": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
            },
        ),
    },
)

_HEADERS = [
    (
        e2b.HEADER_SIGNATURE,
        "sha256(secret + raw body), URL-safe base64 without '=' (the standard alphabet and "
        "padding are accepted too; 401 if wrong)",
    ),
    (e2b.HEADER_SIGNATURE_VERSION, "always v1"),
    (e2b.HEADER_DELIVERY_ID, "new on every attempt (never used to dedupe)"),
    (e2b.HEADER_WEBHOOK_ID, "the registration's id"),
]


@dataclass
class WebhookOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=WEBHOOK_BODY)},
            required=True,
            description="An E2B lifecycle event, v2 (snake_case) or v1 (camelCase)",
        )
        self.parameters = [
            Parameter(
                name=name,
                param_in=ParamType.HEADER,
                required=False,  # missing: 401 from the handler, not a 400 from validation
                schema=_STRING,
                description=description,
            )
            for name, description in _HEADERS
        ]
