"""Abuse from one client address, against services started with the default guard (the shared
stack turns it off: its hostile suites send thousands of refusals from 127.0.0.1).

Clients bind distinct loopback addresses (127.0.0.0/8 is all local on Linux), so "another
address" is a real other peer; a trusted proxy's X-Forwarded-For is believed, anyone else's not.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from sandbox_common import e2b
from status_api.auth import Claims, mint
from tests.connected.conftest import Stack
from tests.connected.e2b_sim_process import free_port
from tests.connected.helpers import unique, webhook
from tests.connected.services import ServiceProcess

pytestmark = pytest.mark.connected
PROXY = "127.0.0.77"
INVALID = "[E2B Webhook] Invalid signature"


def _address() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def _client(address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(local_address=address), timeout=15.0
    )


def _guarded_env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in stack.env.items() if not k.startswith("HTTP_AUTH_FAILURE")}
    return {**env, "HTTP_TRUSTED_PROXIES": PROXY, "STATUS_API_RATE_LIMIT_PER_SECOND": "1"}


@pytest.fixture(scope="module")
def guarded(stack: Stack) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    ingest_port, api_port = free_port(), free_port()
    env = {**_guarded_env(stack), "INGEST_PORT": str(ingest_port), "STATUS_API_PORT": str(api_port)}
    ingest = ServiceProcess("ingest", ingest_port, env, label=f"guarded-ingest-{ingest_port}")
    api = ServiceProcess("status-api", api_port, env, label=f"guarded-status-api-{api_port}")
    for service in (ingest, api):
        service.log_path.unlink(missing_ok=True)
        service.start()
    try:
        yield ingest, api
    finally:
        for service in (ingest, api):
            service.stop()


@pytest.fixture
async def attacker() -> AsyncIterator[httpx.AsyncClient]:
    async with _client(_address()) as c:
        yield c


async def _deliver(
    client: httpx.AsyncClient, ingest: ServiceProcess, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await client.post(f"{ingest.url}/api/webhooks/e2b", content=body, headers=headers)


async def test_a_flood_of_bad_signatures_is_throttled_per_address_and_barely_logged(
    stack: Stack, guarded: tuple[ServiceProcess, ServiceProcess], attacker: httpx.AsyncClient
) -> None:
    ingest, _ = guarded
    body = webhook("created", unique("sbx"), unique("proj"))
    forged = {**e2b.signed_headers(stack.webhook_secret, body), e2b.HEADER_SIGNATURE: "forged"}
    started = time.monotonic()
    codes = [(await _deliver(attacker, ingest, body, forged)).status_code for _ in range(200)]
    elapsed = time.monotonic() - started
    assert codes[:20] == [401] * 20  # the default burst (HTTP_AUTH_FAILURE_BURST)
    # The bucket refills 20 per 10 s (HTTP_AUTH_FAILURE_WINDOW_SECONDS): a slow machine earns
    # the attacker a refused 401 now and then, never more than the refill allows.
    refilled = codes[20:].count(401)
    assert refilled <= 1 + int(elapsed * 20 / 10), (refilled, elapsed)
    assert set(codes[20:]) <= {401, 429}
    throttled = await _deliver(attacker, ingest, body, forged)
    assert int(throttled.headers["retry-after"]) >= 1
    # A good sender at another address is served at once; a bad one there gets its own 401.
    good_address = _address()
    async with _client(good_address) as good:
        signed = e2b.signed_headers(stack.webhook_secret, body)
        assert (await _deliver(good, ingest, body, signed)).status_code == 200
        assert (await _deliver(good, ingest, body, forged)).status_code == 401
    lines = [
        json.loads(line)
        for line in ingest.log_path.read_text().splitlines()
        if line.startswith("{") and INVALID in line
    ]
    # 201 refusals from the attacker: one line per 10 s window, plus the other address's one.
    elapsed = time.monotonic() - started
    by_client = [line["client"] for line in lines]
    assert by_client.count(good_address) == 1, lines
    assert 1 <= len(by_client) - 1 <= 1 + int(elapsed / 10), lines
    assert {line["message"] for line in lines} == {INVALID}


async def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(
    stack: Stack, guarded: tuple[ServiceProcess, ServiceProcess]
) -> None:
    ingest, _ = guarded
    body = webhook("created", unique("sbx"), unique("proj"))
    forged = {**e2b.signed_headers(stack.webhook_secret, body), e2b.HEADER_SIGNATURE: "forged"}
    async with _client(PROXY) as proxy:
        flood = {**forged, "x-forwarded-for": "203.0.113.9"}
        codes = [(await _deliver(proxy, ingest, body, flood)).status_code for _ in range(21)]
        assert codes[-1] == 429
        other = {**forged, "x-forwarded-for": "203.0.113.10"}
        assert (await _deliver(proxy, ingest, body, other)).status_code == 401
    async with _client(_address()) as untrusted:
        # Not a trusted proxy: its X-Forwarded-For is ignored, so rotating it does not help.
        spoofed = [
            (
                await _deliver(
                    untrusted, ingest, body, {**forged, "x-forwarded-for": f"198.51.100.{i}"}
                )
            ).status_code
            for i in range(21)
        ]
        assert spoofed[-1] == 429


async def test_bad_tokens_are_throttled_per_address_and_spellings_share_a_bucket(
    stack: Stack, guarded: tuple[ServiceProcess, ServiceProcess], attacker: httpx.AsyncClient
) -> None:
    _, api = guarded
    url = f"{api.url}/api/projects/{unique('proj')}/sandbox"
    forged = mint(
        "f" * 40, Claims(projects=["p"], admin=True, ttl_seconds=600, now=int(time.time()))
    )
    codes = [
        (await attacker.get(url, headers={"Authorization": f"Bearer {forged}"})).status_code
        for _ in range(25)
    ]
    assert codes[:20] == [401] * 20
    assert set(codes[20:]) == {429}
    async with _client(_address()) as user:
        good = mint(
            stack.jwt_secret,
            Claims(projects=["p"], admin=False, ttl_seconds=600, now=int(time.time())),
        )
        # STATUS_API_RATE_LIMIT_PER_SECOND=1: a burst of 2 for the token, however it is spelled.
        spellings = [f"Bearer {good}", f"bearer  {good}", f"BEARER {good}", f"Bearer   {good}"]
        codes = [
            (
                await user.get(f"{api.url}/api/projects/p/sandbox", headers={"Authorization": s})
            ).status_code
            for s in spellings
        ]
        # Each spelling a bucket of its own would answer 404 four times.
        assert codes[0] == 404
        assert 429 in codes[1:], codes
