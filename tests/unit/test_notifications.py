"""Notifications' pure core (issue 17, item 5): signatures a receiver can check, destinations
that cannot reach our own networks, and which facts a project hears about."""

from __future__ import annotations

import importlib.util
import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from sandbox_common.envelope import FactType, Source
from sandbox_common.facts import (
    Activity,
    DeleteRequested,
    FactData,
    Lifecycle,
    Origin,
    PauseRequested,
    new_fact,
)
from sandbox_common.notifications import (
    DestinationError,
    Notice,
    NoticeKind,
    Reach,
    SignatureError,
    check_address,
    notice_of,
    parse_destination,
    sign,
    verify,
)
from sandbox_common.payloads import Subject

SECRET = "a-receivers-secret-of-32-bytes-or-more"
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
NOW = int(T0.timestamp())


def test_a_signed_body_verifies_and_any_change_does_not() -> None:
    body = b'{"event":"paused"}'
    header = sign(SECRET, NOW, body)
    assert header.startswith(f"t={NOW},v1=")
    assert verify(SECRET, header, body, now=NOW + 10) == NOW
    for bad_secret, bad_body in ((SECRET + "x", body), (SECRET, body + b" ")):
        with pytest.raises(SignatureError, match="does not match"):
            verify(bad_secret, header, bad_body, now=NOW)
    with pytest.raises(SignatureError, match="stale or replayed"):
        verify(SECRET, header, body, now=NOW + 301)
    # The time is signed: moving it forward to look fresh breaks the signature.
    moved = header.replace(f"t={NOW}", f"t={NOW + 600}")
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, moved, body, now=NOW + 600)
    for malformed in (None, "", "v1=abc", "t=soon,v1=abc"):
        with pytest.raises(SignatureError):
            verify(SECRET, malformed, body, now=NOW)


@pytest.mark.parametrize(
    ("url", "reach", "refused"),
    [
        ("https://hooks.example.com/sandboxes", Reach.PUBLIC, None),
        ("http://203.0.113.9:8080/x", Reach.PUBLIC, "private or reserved"),  # documentation
        ("http://8.8.8.8/x", Reach.PUBLIC, None),
        ("http://127.0.0.1:9000/x", Reach.PUBLIC, "loopback"),
        ("http://127.0.0.1:9000/x", Reach.LOOPBACK, None),
        ("http://localhost:9000/x", Reach.PUBLIC, "loopback"),
        ("http://[::1]/x", Reach.PUBLIC, "loopback"),
        ("http://[::ffff:127.0.0.1]/x", Reach.PUBLIC, "loopback"),
        ("http://10.1.2.3/x", Reach.LOOPBACK, "private or reserved"),
        ("http://10.1.2.3/x", Reach.PRIVATE, None),
        ("http://169.254.169.254/latest/meta-data", Reach.PRIVATE, "link-local"),
        ("http://0.0.0.0/x", Reach.PRIVATE, "unspecified"),
        ("ftp://hooks.example.com/x", Reach.PUBLIC, "http:// or https://"),
        ("https://user:pw@hooks.example.com/x", Reach.PUBLIC, "user or password"),
        ("https://hooks.example.com/x#f", Reach.PUBLIC, "fragment"),
        ("https:///x", Reach.PUBLIC, "no host"),
        ("https://hooks.example.com:99999/x", Reach.PUBLIC, "not a URL"),
    ],
)
def test_destinations_inside_our_networks_are_refused_unless_allowed(
    url: str, reach: Reach, refused: str | None
) -> None:
    if refused is None:
        assert parse_destination(url, reach).url == url
        return
    with pytest.raises(DestinationError, match=refused) as caught:
        parse_destination(url, reach)
    assert caught.value.field == "url"


def test_a_resolved_address_is_checked_like_a_literal_and_ports_default() -> None:
    assert parse_destination("https://hooks.example.com/x").port == 443
    assert parse_destination("http://hooks.example.com/x").port == 80
    check_address(ipaddress.ip_address("93.184.216.34"))
    with pytest.raises(DestinationError):
        check_address(ipaddress.ip_address("192.168.1.10"))
    with pytest.raises(DestinationError):
        check_address(ipaddress.ip_address("fd00::1"))


def noticed(kind: FactType, payload: FactData, event_id: str) -> Notice:
    source = Source.E2B_WEBHOOK if kind is FactType.PAUSED else Source.ENFORCER
    made = new_fact(kind, payload, Subject("sbx-1", "p1"), Origin(event_id, source, T0))
    notice = notice_of(made)
    assert notice is not None, kind
    return notice


def test_lifecycle_facts_and_policy_actions_become_notices() -> None:
    paused = noticed(FactType.PAUSED, Lifecycle(), "ev-1")
    assert paused.event is NoticeKind.PAUSED
    assert msgspec.json.decode(paused.body()) == {
        "deliveryId": "ev-1",
        "event": "paused",
        "projectId": "p1",
        "sandboxId": "sbx-1",
        "occurredAt": "2026-12-02T12:00:00Z",
        "data": {},
    }
    killed = noticed(FactType.KILLED, Lifecycle(kill_reason="deleteAfterPaused"), "ev-2")
    assert killed.data == {"killReason": "deleteAfterPaused"}
    deadline = T0 + timedelta(hours=1)
    forced = PauseRequested(command_id="c1", reason="quietHours", deadline=deadline)
    action = noticed(FactType.PAUSE_REQUESTED, forced, "ev-3")
    assert action.event is NoticeKind.POLICY_ACTION
    assert action.data["action"] == "pause"
    assert action.data["rule"] == "quietHours"
    assert action.data["deadline"].startswith("2026-12-02T13:00:00")
    delete = DeleteRequested(command_id="c2", reason="deleteAfterPaused", deadline=deadline)
    assert noticed(FactType.DELETE_REQUESTED, delete, "ev-4").data["action"] == "delete"


def test_idle_pauses_activity_and_facts_of_no_project_are_not_notices() -> None:
    idle = PauseRequested(command_id="c1", reason="idle")
    subject, origin = Subject("sbx-1", "p1"), Origin("ev-1", Source.ENFORCER, T0)
    # The idle pause's paused fact is the notice; its request is our own business.
    assert notice_of(new_fact(FactType.PAUSE_REQUESTED, idle, subject, origin)) is None
    assert notice_of(new_fact(FactType.ACTIVITY, Activity(), subject, origin)) is None
    orphan = new_fact(FactType.PAUSED, Lifecycle(), Subject("sbx-1", None), origin)
    assert notice_of(orphan) is None


def test_the_documented_receiver_accepts_our_signatures_and_nothing_else() -> None:
    """docs/examples/notification_receiver.py is what receivers copy: it must agree with us."""
    example = Path(__file__).parents[2] / "docs" / "examples" / "notification_receiver.py"
    spec = importlib.util.spec_from_file_location("notification_receiver", example)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    body = b'{"deliveryId": "d1"}'
    header = sign(SECRET, NOW, body)
    assert module.verify_signature(SECRET, header, body, NOW + 5)
    assert not module.verify_signature(SECRET, header, body + b" ", NOW + 5)
    assert not module.verify_signature(SECRET + "x", header, body, NOW + 5)
    assert not module.verify_signature(SECRET, header, body, NOW + 301)
    assert not module.verify_signature(SECRET, None, body, NOW)
