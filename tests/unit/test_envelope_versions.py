"""Schema evolution: recorded envelopes of every schema version up to the current one (as each
producer wrote them: ingest from v1 and v2 E2B payloads, the enforcer, the actuator, status-api,
the reconciler, and the sparsest early shape) are read by today's projector, live and in replay,
to the recorded outcome. A new schema version adds a folder; the old folders must keep passing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from projector.domain import fold
from projector.replay.fold import Rebuild
from sandbox_common import envelope as env

FIXTURES = Path(__file__).parents[1] / "fixtures" / "envelopes"
CASES = sorted(FIXTURES.glob("v*/*.json"))


def test_every_schema_version_up_to_the_current_one_has_fixtures() -> None:
    for version in range(1, env.SCHEMA_VERSION + 1):
        assert list((FIXTURES / f"v{version}").glob("*.json")), f"no fixtures for v{version}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recorded_envelopes_project_to_the_recorded_state(path: Path) -> None:
    case: dict[str, Any] = json.loads(path.read_text())
    version = int(path.parent.name.removeprefix("v"))
    raw = [json.dumps(r).encode() for r in case["records"]]
    facts = [env.decode(r) for r in raw]
    assert {f.schema_version for f in facts} == {version}
    state = fold(None, facts)
    assert state is not None
    expect = case["expect"]
    assert state.status is not None
    assert state.status.value == expect["status"]
    assert state.project_id == expect["project_id"]
    for name in ("timeout_at", "last_active_at"):
        value = getattr(state, name)
        assert (value.isoformat() if value else None) == expect[name], name
    # Replay's bulk fold reads them to the same state, in any order.
    rebuild = Rebuild()
    for offset, record in enumerate(reversed(raw)):
        rebuild.add(record, "sandbox-lifecycle", 0, offset)
    assert rebuild.states[state.sandbox_id] == state
    assert rebuild.poison == 0
