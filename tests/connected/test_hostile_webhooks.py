"""Hostile webhooks against the real ingest: hypothesis writes the raw requests.

Bad and truncated signatures, signed bodies of the wrong shape, truncated and random bytes, odd
unicode, huge and deeply nested bodies, replays. Every answer must be a 4xx (or a 2xx for a body
that is a valid event after all), never a 5xx; afterwards only the events answered `accepted`
are on the topic, each once, and the services still serve a normal webhook end to end.
The tests run in file order: the last one checks the topic and the services.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox_common import e2b
from tests.connected.conftest import Stack
from tests.connected.helpers import T0, end_offsets
from tests.connected.hostile import (
    Tally,
    assert_healthy,
    assert_only_accepted_published,
    assert_stored,
    event_id_of,
)

pytestmark = pytest.mark.connected

LIMIT = 65536  # INGEST_MAX_BODY_BYTES of the test stack (conftest.py)


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


TALLY = Tally("ingest: hypothesis raw requests")
BEFORE: dict[TopicPartition, int] = {}

# Characters that break naive code: NUL, bidi overrides, BOM, zero-width joiners, combining
# marks, line separators, emoji, a lone backslash and quotes.
TRICKY = ["\x00", "\u202e", "\ufeff", "\u200d", "e\u0301", "\u2028", "\U0001f4a9", "\\", '"', ""]
odd_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(TRICKY), max_size=6).map("".join),
    st.text(st.characters(min_codepoint=0x80), min_size=1, max_size=300),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | odd_text,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(odd_text, kids, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15.0) as c:
        yield c


@pytest.fixture(scope="module", autouse=True)
async def topic_before(stack: Stack) -> None:
    BEFORE.update(await end_offsets(stack.infra.kafka))


def valid_body(version: str = "v2", **over: Any) -> dict[str, Any]:
    body = e2b.build_webhook(
        e2b.WebhookEvent(
            id=str(uuid.uuid4()),
            type="sandbox.lifecycle.created",
            sandbox_id=f"hostile-{uuid.uuid4().hex[:12]}",
            timestamp=T0,
            metadata={"projectId": f"hostile-{uuid.uuid4().hex[:8]}"},
            version=version,
        )
    )
    return {**body, **over}


def post(
    http: httpx.Client, stack: Stack, kind: str, body: bytes, signature: str | None, **kw: str
) -> httpx.Response:
    """Sends `body` with `signature` ("sign": the right one), notes the answer in the tally."""
    headers = {"content-type": "application/json", e2b.HEADER_DELIVERY_ID: str(uuid.uuid4())}
    if signature == "sign":
        signature = e2b.compute_signature(stack.webhook_secret, body)
    if signature is not None:
        headers[e2b.HEADER_SIGNATURE] = signature
    if (event_id := event_id_of(body)) is not None:
        TALLY.sent_ids.add(event_id)
    r = http.post(f"{stack.ingest.url}/api/webhooks/e2b", content=body, headers={**headers, **kw})
    TALLY.note(kind, r.status_code, f"{body[:200]!r} sig={signature!r}")
    if r.status_code == 200 and r.json()["status"] == "accepted":
        TALLY.accepted_ids[r.json()["eventId"]] += 1
    return r


def _b64(digest: bytes, urlsafe: bool = True) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(digest).decode().rstrip("=")


def forged(secret: str, body: bytes, how: str, cut: int) -> str | None:
    good = e2b.compute_signature(secret, body)
    digest = hashlib.sha256(secret.encode() + body).digest()
    flipped = good[:cut] + ("A" if good[cut] != "A" else "B") + good[cut + 1 :]
    other = hashlib.sha256(secret.encode() + b"x" + body).digest()
    # The good digest padded or in the standard alphabet is a valid signature (issue 14): the
    # forgeries are wrong digests written those ways.
    return {
        "missing": None,
        "empty": "",
        "truncated": good[:cut],
        "flipped": flipped,
        "extended": good + "A",
        "padded": flipped + "=",
        "standard-alphabet": base64.b64encode(other).decode(),
        "standard-alphabet-flipped": flipped.replace("-", "+").replace("_", "/"),
        "hex": digest.hex(),
        "hmac": _b64(hmac.new(secret.encode(), body, hashlib.sha256).digest()),
        "other-secret": e2b.compute_signature(secret + "x", body),
        "empty-secret": e2b.compute_signature("", body),
        "body-only": _b64(hashlib.sha256(body).digest()),
        "prefixed": f"v1,{good}",
        "upper": good.upper() if good.upper() != good else None,
    }[how]


SIGNATURE_ATTACKS = [
    *("missing", "empty", "truncated", "flipped", "extended", "padded", "standard-alphabet"),
    "standard-alphabet-flipped",
    *("hex", "hmac", "other-secret", "empty-secret", "body-only", "prefixed", "upper"),
]


@fuzz(1500)
@given(
    how=st.sampled_from(SIGNATURE_ATTACKS),
    cut=st.integers(0, 42),
    version=st.sampled_from(["v1", "v2"]),
    tamper=st.booleans(),
)
def test_bad_signatures_are_401(
    http: httpx.Client, stack: Stack, how: str, cut: int, version: str, tamper: bool
) -> None:
    body = json.dumps(valid_body(version)).encode()
    signature = forged(stack.webhook_secret, body, how, cut)
    if signature is None and how != "missing":
        return  # this digest has no such variant
    if tamper:  # a good signature for the body before one byte of it changed
        signature = e2b.compute_signature(stack.webhook_secret, body)
        body = body.replace(b"created", b"killed\x20", 1)
    r = post(http, stack, f"signature: {'tampered body' if tamper else how}", body, signature)
    assert r.status_code == 401, (how, r.status_code, r.text)


def _mutate(body: dict[str, Any], key: str, action: str, value: Any) -> dict[str, Any]:
    out = dict(body)
    if action == "drop":
        out.pop(key, None)
    elif action == "nest":
        out["event_data"] = {**out.get("event_data", {}), key: value}
    else:
        out[key] = value
    return out


@fuzz(2000)
@given(
    key=st.sampled_from([*valid_body().keys(), "event_data", "sandbox_metadata", "extra"]),
    action=st.sampled_from(["drop", "replace", "nest"]),
    value=json_values,
    version=st.sampled_from(["v1", "v2"]),
)
def test_signed_bodies_of_the_wrong_shape_are_400_or_accepted(
    http: httpx.Client, stack: Stack, key: str, action: str, value: Any, version: str
) -> None:
    body = _mutate(valid_body(version), key, action, value)
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    r = post(http, stack, f"signed wrong shape: {action}", raw, "sign")
    assert r.status_code in (200, 400), (r.status_code, r.text, raw[:300])


TIMES = st.one_of(
    odd_text,
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "2026-02-30T00:00:00Z",
            "2026-11-27T25:00:00Z",
            "2026-11-27",
            "1e999",
            "",
        ]
    ),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
)


@fuzz(600)
@given(
    timestamp=TIMES,
    set_timeout=TIMES,
    kind=st.sampled_from(["created", "updated", "paused", "killed", "snapshotted", ""]),
)
def test_odd_times_and_types_are_400_or_accepted(
    http: httpx.Client, stack: Stack, timestamp: str, set_timeout: str, kind: str
) -> None:
    body = valid_body(timestamp=timestamp, type=f"sandbox.lifecycle.{kind}" if kind else "")
    body["event_data"] = {**body.get("event_data", {}), "set_timeout": set_timeout}
    raw = json.dumps(body).encode()
    r = post(http, stack, "signed odd times and types", raw, "sign")
    assert r.status_code in (200, 400), (r.status_code, r.text, raw[:300])


@fuzz(1500)
@given(
    sandbox_id=odd_text,
    project=odd_text,
    meta_key=odd_text,
    event_id=odd_text,
    ascii_only=st.booleans(),
)
def test_odd_unicode_is_400_or_accepted(
    http: httpx.Client,
    stack: Stack,
    sandbox_id: str,
    project: str,
    meta_key: str,
    event_id: str,
    ascii_only: bool,
) -> None:
    body = valid_body(sandbox_id=sandbox_id, id=f"{event_id}{uuid.uuid4().hex[:6]}")
    body["event_data"] = {"sandbox_metadata": {"projectId": project, meta_key: project}}
    raw = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    r = post(http, stack, "signed odd unicode", raw, "sign")
    assert r.status_code in (200, 400), (r.status_code, r.text, raw[:300])


@fuzz(1200)
@given(
    cut=st.floats(0, 1, exclude_max=True),
    noise=st.binary(max_size=400),
    how=st.sampled_from(["truncated", "random", "invalid-utf8", "lone-surrogate", "bom"]),
)
def test_truncated_and_broken_bytes_are_400(
    http: httpx.Client, stack: Stack, cut: float, noise: bytes, how: str
) -> None:
    full = json.dumps(valid_body()).encode()
    body = {
        "truncated": full[: int(len(full) * cut)],
        "random": noise,
        "invalid-utf8": full.replace(b"hostile-", b"hostile-\xff\xfe", 1),
        "lone-surrogate": full.replace(b"hostile-", b"hostile-\\ud800", 1),
        "bom": b"\xef\xbb\xbf" + full + noise[:0],
    }[how]
    r = post(http, stack, f"signed {how} bytes", body, "sign")
    if how == "bom":  # RFC 8259 lets a parser refuse or ignore it; it must not crash
        assert r.status_code in (200, 400), r.text
    else:
        assert r.status_code == 400, (how, r.status_code, r.text, body[:200])


@fuzz(300)
@given(
    depth=st.integers(1, LIMIT // 2 - 200),
    opener=st.sampled_from(["[", '{"a":']),
    where=st.sampled_from(["event_data", "metadata", "id"]),
)
def test_deeply_nested_bodies_are_400_or_accepted(
    http: httpx.Client, stack: Stack, depth: int, opener: str, where: str
) -> None:
    closer = "]" if opener == "[" else "}"
    depth = min(depth, (LIMIT - 600) // (len(opener) + 1))
    nested = opener * depth + "1" + closer * depth
    anchor, replacement = {
        "event_data": ('"event_category"', f'"x": {nested}, "ec"'),
        "metadata": ('"projectId":', f'"deep": {nested}, "projectId":'),
        "id": ('"id": "', f'"id": {nested}, "old": "'),
    }[where]
    body = json.dumps(valid_body()).replace(anchor, replacement, 1)
    r = post(http, stack, "signed deeply nested", body.encode(), "sign")
    assert r.status_code in (200, 400), (depth, r.status_code, r.text)


def _chunks(size: int) -> Iterator[bytes]:
    yield b'{"id": "'
    for _ in range(size // 8192):
        yield b"x" * 8192
    yield b'"}'


@fuzz(150)
@given(
    size=st.integers(LIMIT + 1, 8 * LIMIT),
    signed=st.booleans(),
    chunked=st.booleans(),
)
def test_huge_bodies_are_413(
    http: httpx.Client, stack: Stack, size: int, signed: bool, chunked: bool
) -> None:
    url = f"{stack.ingest.url}/api/webhooks/e2b"
    if chunked:  # no Content-Length: the limit has to hold while the body streams in
        r = http.post(url, content=_chunks(size), headers={"content-type": "application/json"})
        TALLY.note("huge body, chunked", r.status_code)
    else:
        body = json.dumps(valid_body(padding="x" * size)).encode()
        r = post(http, stack, "huge body", body, "sign" if signed else "forged")
    assert r.status_code == 413, (size, chunked, r.status_code)
    # The unread rest of the body makes the connection unusable: the client must be told.
    assert r.headers.get("connection") == "close"


@fuzz(200)
@given(
    times=st.integers(2, 5),
    version=st.sampled_from(["v1", "v2"]),
    note=st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=30),
)
def test_a_replayed_event_is_accepted_once_then_duplicate(
    http: httpx.Client, stack: Stack, times: int, version: str, note: str
) -> None:
    body = json.dumps(valid_body(version, note=note), ensure_ascii=False).encode()
    statuses = [post(http, stack, "replay", body, "sign").json()["status"] for _ in range(times)]
    assert statuses == ["accepted"] + ["duplicate"] * (times - 1)


async def test_concurrent_replays_are_published_once(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=15.0) as client:
        for _ in range(50):
            body = json.dumps(valid_body()).encode()
            TALLY.sent_ids.add(json.loads(body)["id"])
            headers = e2b.signed_headers(stack.webhook_secret, body)
            answers = await asyncio.gather(
                *(
                    client.post(f"{stack.ingest.url}/api/webhooks/e2b", content=body, headers=h)
                    for h in [{**headers, e2b.HEADER_DELIVERY_ID: str(i)} for i in range(4)]
                )
            )
            for a in answers:
                TALLY.note("concurrent replay", a.status_code)
            outcomes = sorted(a.json()["status"] for a in answers)
            assert outcomes == ["accepted", "duplicate", "duplicate", "duplicate"], outcomes
            TALLY.accepted_ids[json.loads(body)["id"]] += 1


def test_other_methods_and_paths_are_4xx(http: httpx.Client, stack: Stack) -> None:
    body = json.dumps(valid_body()).encode()
    signed = e2b.signed_headers(stack.webhook_secret, body)
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        r = http.request(method, f"{stack.ingest.url}/api/webhooks/e2b", content=body)
        TALLY.note("wrong method", r.status_code)
        assert r.status_code == 405
    for path in ("/api/webhooks/E2B", "/api/webhooks/e2b/..%2f..%2fx", "/api/webhooks"):
        r = http.post(f"{stack.ingest.url}{path}", content=body, headers=signed)
        TALLY.note("wrong path", r.status_code)
        assert 400 <= r.status_code < 500


async def test_only_accepted_events_reached_the_topic_and_the_services_are_healthy(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    TALLY.write()
    published = await assert_only_accepted_published(stack, BEFORE, TALLY)
    print(f"[hostile] accepted and published once: {published}")
    await assert_stored(stack, set(TALLY.accepted_ids))
    assert TALLY.total >= 7000, TALLY.total
    await assert_healthy(client, stack)
