from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest

from sandbox_common import e2b
from sandbox_common import envelope as env
from tests.unit.test_e2b_webhooks import V1, V2

NOW = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)


def test_webhook_becomes_an_envelope_with_project_from_metadata() -> None:
    event = e2b.parse_webhook(json.dumps(V2).encode())
    e = env.from_webhook(event, received_at=NOW, project_metadata_key="projectId")
    assert e.event_id == V2["id"]
    assert e.source == env.Source.E2B_WEBHOOK
    assert e.project_id == "proj-1"
    assert e.team_id == "team-1"
    assert e.data["metadata"] == {"projectId": "proj-1", "user": "u1"}
    assert e.data["template_id"] == "base"
    assert e.schema_version == env.SCHEMA_VERSION


def test_project_metadata_key_is_configurable() -> None:
    event = e2b.parse_webhook(json.dumps(V1).encode())
    assert env.from_webhook(event, received_at=NOW, project_metadata_key="user").project_id is None
    assert (
        env.from_webhook(event, received_at=NOW, project_metadata_key="projectId").project_id
        == "proj-2"
    )


def test_round_trip() -> None:
    event = e2b.parse_webhook(json.dumps(V2).encode())
    e = env.from_webhook(event, received_at=NOW, project_metadata_key="projectId")
    assert env.decode(env.encode(e)) == e


@pytest.mark.parametrize(
    "payload",
    [b"{", b"{}", b'{"event_id": 1}', json.dumps({"schema_version": 99}).encode()],
)
def test_unreadable_records_are_envelope_errors(payload: bytes) -> None:
    with pytest.raises(env.EnvelopeError):
        env.decode(payload)


def test_newer_schema_version_is_refused_with_reason() -> None:
    event = e2b.parse_webhook(json.dumps(V2).encode())
    raw = json.loads(
        env.encode(env.from_webhook(event, received_at=NOW, project_metadata_key="projectId"))
    )
    raw["schema_version"] = env.SCHEMA_VERSION + 1
    with pytest.raises(env.EnvelopeError, match="newer than this reader"):
        env.decode(json.dumps(raw).encode())


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sandbox_id": "a\x00b"}, "U\\+0000"),
        ({"data": {"metadata": {"k": "\x00"}}}, "U\\+0000"),
        ({"occurred_at": datetime(9999, 12, 31, 23, 59, tzinfo=UTC)}, "out of range"),
        ({"occurred_at": datetime(1, 1, 1, tzinfo=UTC)}, "out of range"),
    ],
)
def test_records_the_projector_could_never_store_are_poison(
    changes: dict[str, object], reason: str
) -> None:
    """Already on a topic (written before ingest refused them): dead-lettered, not retried."""
    event = e2b.parse_webhook(json.dumps(V2).encode())
    good = env.from_webhook(event, received_at=NOW, project_metadata_key="projectId")
    payload = env.encode(msgspec.structs.replace(good, **changes))
    with pytest.raises(env.EnvelopeError, match=reason):
        env.decode(payload)


def test_an_empty_project_id_in_metadata_names_no_project() -> None:
    event = e2b.parse_webhook(
        json.dumps({**V2, "event_data": {"sandbox_metadata": {"projectId": ""}}}).encode()
    )
    assert (
        env.from_webhook(event, received_at=NOW, project_metadata_key="projectId").project_id
        is None
    )
