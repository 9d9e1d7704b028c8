"""E2B webhook facts: the signature scheme and both payload versions (reference/e2b.md)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox_common import e2b

SECRET = "whsec-test-1234567890"

V2 = {
    "id": "6f1c7b2e-7a39-4c59-9d53-5b8f0e0c2a11",
    "version": "v2",
    "type": "sandbox.lifecycle.updated",
    "timestamp": "2026-11-27T12:00:01.123456Z",
    "event_category": "lifecycle",
    "event_label": "update",
    "event_data": {
        "sandbox_metadata": {"projectId": "proj-1", "user": "u1"},
        "set_timeout": "2026-11-27T12:10:00Z",
    },
    "sandbox_id": "isb7xq1",
    "sandbox_execution_id": "0b8e2a47-8f7c-4f0e-9a52-3a1e0f9c7d10",
    "sandbox_template_id": "base",
    "sandbox_build_id": "b1",
    "sandbox_team_id": "team-1",
}
V1 = {
    "id": "9d0e2c3a-1111-4c59-9d53-5b8f0e0c2a11",
    "version": "v1",
    "type": "sandbox.lifecycle.killed",
    "eventData": {"sandboxMetadata": {"projectId": "proj-2"}, "killReason": "timeout"},
    "sandboxId": "isb9",
    "sandboxExecutionId": "e1",
    "sandboxTemplateId": "py",
    "sandboxBuildId": "b2",
    "sandboxTeamId": "team-2",
    "timestamp": "2026-11-27T12:00:00Z",
}


def reference_signature(secret: str, body: bytes) -> str:
    """Written from the reference text, independently of the production code."""
    digest = hashlib.sha256((secret + body.decode("utf-8")).encode("utf-8")).digest()
    return base64.b64encode(digest).decode().replace("+", "-").replace("/", "_").rstrip("=")


@pytest.mark.parametrize("payload", [V2, V1], ids=["v2", "v1"])
def test_signature_matches_the_documented_algorithm(payload: dict[str, object]) -> None:
    body = json.dumps(payload).encode()
    signature = reference_signature(SECRET, body)
    assert e2b.compute_signature(SECRET, body) == signature
    assert e2b.verify_signature(SECRET, body, signature)
    assert not set("=+/") & set(signature)


def test_signature_is_over_raw_bytes_not_reserialised_json() -> None:
    body = json.dumps(V2, indent=2).encode()
    signature = reference_signature(SECRET, body)
    assert e2b.verify_signature(SECRET, body, signature)
    assert not e2b.verify_signature(SECRET, json.dumps(V2).encode(), signature)


@pytest.mark.parametrize(
    "signature", [None, "", "garbage", "ü-not-ascii", reference_signature("other", b"{}")]
)
def test_bad_or_missing_signature_is_refused(signature: str | None) -> None:
    assert not e2b.verify_signature(SECRET, b"{}", signature)


def _standard_alphabet(signature: str, padded: bool) -> str:
    """The same digest in base64's standard alphabet (`+`, `/`), as some senders write it."""
    digest = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    text = base64.b64encode(digest).decode()
    return text if padded else text.rstrip("=")


def _with_both_alphabets(secret: str) -> tuple[bytes, str]:
    """A body whose signature has a character that differs between the two alphabets."""
    for n in range(1000):
        body = json.dumps({**V2, "id": f"alphabet-{n}"}).encode()
        signature = reference_signature(secret, body)
        if "-" in signature or "_" in signature:
            return body, signature
    raise AssertionError("no signature with '-' or '_' in 1000 bodies")


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_the_standard_alphabet_is_accepted_with_or_without_padding(padded: bool) -> None:
    body, signature = _with_both_alphabets(SECRET)
    standard = _standard_alphabet(signature, padded)
    assert standard != signature
    assert e2b.verify_signature(SECRET, body, standard)
    assert e2b.verify_signature(SECRET, body, signature + "=")  # URL-safe, padded


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_a_wrong_signature_is_refused_in_either_alphabet(padded: bool) -> None:
    body, signature = _with_both_alphabets(SECRET)
    other = reference_signature("another-secret-1234567890", body)
    for wrong in (other, _standard_alphabet(other, padded)):
        assert not e2b.verify_signature(SECRET, body, wrong)
    # A good signature for another body stays wrong, whichever alphabet it is written in.
    tampered = body.replace(b"isb7xq1", b"isb7xq2")
    assert not e2b.verify_signature(SECRET, tampered, _standard_alphabet(signature, padded))
    # Padding alone is not a signature, and a character past the digest still breaks it.
    assert not e2b.verify_signature(SECRET, body, "=")
    assert not e2b.verify_signature(SECRET, body, _standard_alphabet(signature, padded) + "A")


def test_empty_secret_never_verifies() -> None:
    assert not e2b.verify_signature("", b"{}", reference_signature("", b"{}"))


def test_v2_payload_is_normalised() -> None:
    event = e2b.parse_webhook(json.dumps(V2).encode())
    assert event.id == V2["id"]
    assert event.type == e2b.LifecycleType.UPDATED
    assert event.sandbox_id == "isb7xq1"
    assert event.team_id == "team-1"
    assert event.template_id == "base"
    assert event.metadata == {"projectId": "proj-1", "user": "u1"}
    assert event.data == {"set_timeout": "2026-11-27T12:10:00Z"}
    assert event.timestamp == datetime(2026, 11, 27, 12, 0, 1, 123456, tzinfo=UTC)


def test_v1_camel_case_payload_is_normalised() -> None:
    event = e2b.parse_webhook(json.dumps(V1).encode())
    assert event.version == "v1"
    assert event.sandbox_id == "isb9"
    assert event.team_id == "team-2"
    assert event.metadata == {"projectId": "proj-2"}
    assert event.data == {"kill_reason": "timeout"}


def test_absent_event_data_is_allowed() -> None:
    payload = {k: v for k, v in V2.items() if k != "event_data"}
    event = e2b.parse_webhook(json.dumps(payload).encode())
    assert event.metadata == {}
    assert event.data == {}


def test_unknown_type_is_accepted() -> None:
    event = e2b.parse_webhook(json.dumps({**V2, "type": "sandbox.lifecycle.snapshotted"}).encode())
    assert not event.is_known_type


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (json.dumps({**V2, "id": None}).encode(), "'id'"),
        (json.dumps({k: v for k, v in V2.items() if k != "sandbox_id"}).encode(), "sandbox_id"),
        (json.dumps({**V2, "timestamp": "yesterday"}).encode(), "RFC 3339"),
        (json.dumps({**V2, "type": 7}).encode(), "'type'"),
        (json.dumps({**V2, "event_data": "x"}).encode(), "event_data"),
        (json.dumps({**V2, "id": "x" * 300}).encode(), "longer than"),
    ],
)
def test_malformed_payloads_give_a_clear_reason(body: bytes, reason: str) -> None:
    with pytest.raises(e2b.WebhookError, match=reason):
        e2b.parse_webhook(body)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_any_bytes_either_parse_or_give_a_webhook_error(body: bytes) -> None:
    with contextlib.suppress(e2b.WebhookError):
        e2b.parse_webhook(body)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from([*V2.keys(), *V1.keys(), "x"]), _json_values))
def test_any_json_object_either_parses_or_gives_a_webhook_error(payload: dict[str, object]) -> None:
    with contextlib.suppress(e2b.WebhookError):
        e2b.parse_webhook(json.dumps(payload).encode())


def test_deeply_nested_body_is_a_webhook_error_not_a_crash() -> None:
    body = b'{"id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(e2b.WebhookError):
        e2b.parse_webhook(body)


# Found by the hostile-input suite (tests/connected/test_hostile_webhooks.py): each was a 500
# from ingest, or a record the projector could never store (its partition stuck for good).
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (json.dumps(V2).encode().replace(b"isb7xq1", b"isb\xff\xfe"), "not valid UTF-8"),
        (json.dumps({**V2, "timestamp": "0001-01-01T00:00:00+14:00"}).encode(), "RFC 3339"),
        (json.dumps({**V2, "timestamp": "9999-12-31T23:59:59Z"}).encode(), "2000 to 9000"),
        (json.dumps({**V2, "sandbox_id": "a\x00b"}).encode(), "U\\+0000"),
        (json.dumps({**V2, "event_data": {"k": [{"\x00": 1}]}}).encode(), "U\\+0000"),
    ],
    ids=["invalid-utf8", "year-1-overflow", "year-9999", "nul-in-id", "nul-in-nested-key"],
)
def test_hostile_bodies_that_once_crashed_are_webhook_errors(body: bytes, reason: str) -> None:
    with pytest.raises(e2b.WebhookError, match=reason):
        e2b.parse_webhook(body)


def test_an_escaped_backslash_u0000_is_text_not_nul() -> None:
    body = json.dumps({**V2, "sandbox_id": "a\\u0000b"}).encode()
    assert e2b.parse_webhook(body).sandbox_id == "a\\u0000b"


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z", "1999-12-31T23:59:59Z", 7]
)
def test_times_out_of_range_or_unreadable_are_none(value: object) -> None:
    assert e2b.parse_time(value) is None
