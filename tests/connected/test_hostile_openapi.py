"""schemathesis against the OpenAPI documents the running ingest and status-api serve.

Every documented operation gets positive cases (valid by the schema) and negative ones (each
violating it somewhere), sent with a mix of credentials: a signed or forged webhook; for
status-api no token, garbage, an expired token, another project's, the owner's or an admin's
(fresh tokens, so the per-token rate limit does not turn everything into 429s). Only 4xx may
answer bad input, never a 5xx; afterwards the topic holds only what 2xx answers account for and
the services still work.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case as AnyCase

from sandbox_common import e2b
from status_api.auth import Claims, mint
from tests.connected.conftest import Stack
from tests.connected.helpers import (
    end_offsets,
    live_sandbox,
    records_since,
    token,
    unique,
)
from tests.connected.hostile import (
    Tally,
    assert_healthy,
    assert_only_accepted_published,
    assert_stored,
    event_id_of,
)

pytestmark = pytest.mark.connected

EXAMPLES = {GenerationMode.POSITIVE: 150, GenerationMode.NEGATIVE: 150}
WEBHOOK_EXAMPLES = 500
CREDENTIALS = ["none", "garbage", "expired", "intruder", "owner", "admin"]
SIGNATURES = ["signed", "signed", "signed", "forged", "none"]
Case = AnyCase[Any]
Send = Callable[[Case, str], None]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as c:
        yield c


@pytest.fixture(scope="module")
async def victim(stack: Stack) -> tuple[str, str]:
    return await live_sandbox(stack, "fuzzed")


def fuzz(
    case_strategy: st.SearchStrategy[Case], examples: int, send: Send, credentials: list[str]
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=case_strategy, credential=st.sampled_from(credentials))
    def run(case: Case, credential: str) -> None:
        send(case, credential)

    run()


def body_of(kwargs: dict[str, Any]) -> bytes | None:
    """The bytes schemathesis meant to send (it builds requests-style keyword arguments)."""
    if "json" in kwargs:
        return json.dumps(kwargs.pop("json"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    data = kwargs.pop("data", None)
    if data is None or isinstance(data, bytes):
        return data
    return str(data).encode("utf-8", "surrogatepass")


def send_raw(
    http: httpx.Client, kwargs: dict[str, Any], content: bytes | None
) -> httpx.Response | None:
    """Sends without reading an endless SSE body; None when httpx itself cannot encode it."""
    try:
        request = http.build_request(
            kwargs["method"],
            kwargs["url"],
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            cookies=kwargs.get("cookies"),
            content=content,
        )
    except (UnicodeEncodeError, ValueError, TypeError):
        return None  # not a request any HTTP client could put on the wire
    try:
        response = http.send(request, stream=True)
    except httpx.LocalProtocolError:
        return None  # e.g. a header value h11 refuses to write
    try:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
    finally:
        response.close()
    return response


def operations(url: str) -> list[Any]:
    """Every operation of the document; one schemathesis cannot read fails the test."""
    schema = schemathesis.openapi.from_url(url)
    found = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        found.append(result.ok())
    return found


def modes(path: str) -> list[GenerationMode]:
    """Probes take no input to violate: positive cases only."""
    if path.startswith("/api/"):
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def mode_of(case: Case) -> str:
    return case.meta.generation.mode.value if case.meta else "?"


async def test_schemathesis_against_ingest(
    client: httpx.AsyncClient, stack: Stack, http: httpx.Client
) -> None:
    tally = Tally("ingest: schemathesis")
    before = await end_offsets(stack.infra.kafka)

    def send(case: Case, credential: str) -> None:
        kwargs = case.as_transport_kwargs(base_url=stack.ingest.url)
        content = body_of(kwargs)
        headers = dict(kwargs.get("headers") or {})
        if content is not None and credential != "none":
            secret = stack.webhook_secret if credential == "signed" else "forged"
            headers[e2b.HEADER_SIGNATURE] = e2b.compute_signature(secret, content)
        kwargs["headers"] = headers
        if content is not None and (event_id := event_id_of(content)) is not None:
            tally.sent_ids.add(event_id)
        r = send_raw(http, kwargs, content)
        if r is None:
            return
        tally.note(f"{case.method} {case.path} {mode_of(case)}", r.status_code, repr(content)[:300])
        if r.status_code == 200 and json.loads(r.content)["status"] == "accepted":
            tally.accepted_ids[json.loads(r.content)["eventId"]] += 1

    for op in operations(f"{stack.ingest.url}/schema/openapi.json"):
        for mode in modes(op.path):
            examples = WEBHOOK_EXAMPLES if op.path.startswith("/api/") else 20
            strategy = op.as_strategy(generation_mode=mode)
            await asyncio.to_thread(fuzz, strategy, examples, send, SIGNATURES)
    tally.write()
    await assert_only_accepted_published(stack, before, tally)
    await assert_stored(stack, set(tally.accepted_ids))  # no accepted event stopped a partition
    assert tally.total >= 1000
    await assert_healthy(client, stack)


def bearer(stack: Stack, credential: str, project: str) -> dict[str, str]:
    now = int(time.time())
    sub = uuid.uuid4().hex  # a fresh token each time: its own rate-limit bucket
    tokens = {
        "none": None,
        "garbage": "not.a.jwt",
        "expired": mint(
            stack.jwt_secret,
            Claims(projects=[project], admin=True, ttl_seconds=60, now=now - 3600, subject=sub),
        ),
        "intruder": mint(
            stack.jwt_secret,
            Claims(
                projects=[unique("intruder")], admin=False, ttl_seconds=60, now=now, subject=sub
            ),
        ),
        "owner": mint(
            stack.jwt_secret,
            Claims(projects=[project], admin=False, ttl_seconds=60, now=now, subject=sub),
        ),
        "admin": mint(
            stack.jwt_secret, Claims(projects=[], admin=True, ttl_seconds=60, now=now, subject=sub)
        ),
    }
    token = tokens[credential]
    return {"Authorization": f"Bearer {token}"} if token else {}


async def test_schemathesis_against_status_api(
    client: httpx.AsyncClient, stack: Stack, http: httpx.Client, victim: tuple[str, str]
) -> None:
    project, sandbox = victim
    tally = Tally("status-api: schemathesis")
    before = await end_offsets(stack.infra.kafka)
    writes = 0

    def send(case: Case, credential: str) -> None:
        nonlocal writes
        kwargs = case.as_transport_kwargs(base_url=stack.status_api.url)
        content = body_of(kwargs)
        kwargs["headers"] = {**(kwargs.get("headers") or {}), **bearer(stack, credential, project)}
        r = send_raw(http, kwargs, content)
        if r is None:
            return
        label = f"{case.method} {case.path} {mode_of(case)}"
        tally.note(label, r.status_code, f"{kwargs['url']} {credential} {content!r}"[:300])
        if case.method == "POST" and r.status_code == 202:
            writes += 1
        if credential in ("none", "garbage", "expired") and case.path.startswith("/api/"):
            # Never served without a valid token (a malformed body may be refused first: 400).
            assert 400 <= r.status_code < 500, (label, credential, r.status_code)

    victims = {"project_id": project, "sandbox_id": sandbox}
    for op in operations(f"{stack.status_api.url}/schema/openapi.json"):
        fixed = {k: v for k, v in victims.items() if "{" + k + "}" in op.path}
        for mode in modes(op.path):
            strategy = op.as_strategy(generation_mode=mode)
            if fixed:  # half the cases aim at the real sandbox, so they get past the 404
                strategy = strategy | op.as_strategy(generation_mode=mode, path_parameters=fixed)
            examples = EXAMPLES[mode] if op.path.startswith("/api/") else 20
            await asyncio.to_thread(fuzz, strategy, examples, send, CREDENTIALS)
    tally.write()
    # Admin cases may have set the global default policy to anything valid: back to nothing
    # set, so the suites after this one run under the settings alone.
    reset = await client.put(
        f"{stack.status_api.url}/api/policy/default",
        content=b"{}",
        headers=token(stack, admin=True),
    )
    assert reset.status_code == 202, reset.text
    # Only the accepted writes (activity, wake, pause on the victim) may have put facts there.
    ours = [
        r
        for r in await records_since(stack.infra.kafka, before)
        if r.value and json.loads(r.value).get("sandbox_id") == sandbox
    ]
    assert len(ours) <= writes, (len(ours), writes)
    assert tally.total >= 2500, tally.total
    await assert_healthy(client, stack)
