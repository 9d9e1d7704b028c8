"""The alert rules and the Grafana dashboard query only metrics that our services define (a
renamed metric would otherwise silence an alert without anyone noticing)."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).parents[2]
FILES = ROOT / "deploy" / "helm" / "e2b-lifecycle" / "files"
METRIC_MODULES = [
    "ingest.metrics",
    "projector.metrics",
    "status_api.metrics",
    "enforcer.ticker.metrics",
    "enforcer.actuator.metrics",
    "sandbox_common.consumer_lag",
]
OUR_PREFIXES = ("ingest_", "projector_", "status_api_", "enforcer_", "actuator_", "kafka_consumer_")
SUFFIXES = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}


def defined() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, [""]))
    return names


def queried(expressions: list[str]) -> set[str]:
    words = {w for e in expressions for w in re.findall(r"\b[a-z][a-z0-9_]+\b", e)}
    return {w for w in words if w.startswith(OUR_PREFIXES)}


def alert_expressions() -> list[str]:
    groups = yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads((FILES / "dashboard.json").read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


@pytest.mark.parametrize("source", [alert_expressions, dashboard_expressions])
def test_every_queried_metric_exists(source: Callable[[], list[str]]) -> None:
    used = queried(source())
    assert used, "the file queries our metrics"
    assert used <= defined(), sorted(used - defined())


def test_the_alerts_cover_what_the_issue_names() -> None:
    names = {
        rule["alert"]
        for group in yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]
        for rule in group["rules"]
    }
    for needed in ("ConsumerLag", "WebhookSignature", "PauseFailures", "EnforcerNotTicking"):
        assert any(needed in n for n in names), needed


def test_the_dashboard_shows_every_metric_the_issue_names() -> None:
    used = queried(dashboard_expressions())
    for metric in (
        "ingest_webhooks_total",
        "ingest_webhooks_rejected_total",
        "ingest_publish_seconds_bucket",
        "kafka_consumer_lag_records",
        "projector_latency_seconds_bucket",
        "enforcer_ticks_total",
        "actuator_pause_commands_total",
        "actuator_e2b_request_seconds_bucket",
    ):
        assert metric in used, metric


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _slug(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _sections(markdown: str) -> dict[str, str]:
    """Each heading's anchor and the text under it, up to the next heading."""
    parts = re.split(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {_slug(h): body for h, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_every_alert_links_a_runbook_section_that_names_it() -> None:
    sections = _sections((ROOT / "docs" / "OPERATIONS.md").read_text())
    for rule in alert_rules():
        path, _, anchor = rule["annotations"].get("runbook_url", "").partition("#")
        assert path == "docs/OPERATIONS.md", rule["alert"]
        assert anchor in sections, (rule["alert"], anchor)
        # A reader arriving at the section sees which alert sent them there.
        assert rule["alert"] in sections[anchor], (rule["alert"], anchor)


def test_alerts_for_ingest_503_dead_letters_and_a_target_down() -> None:
    by_name = {rule["alert"]: rule for rule in alert_rules()}
    unavailable = by_name["E2BLifecycleIngestUnavailable"]["expr"]
    assert 'ingest_webhooks_total{outcome="unavailable"}' in unavailable
    dead_letters = by_name["E2BLifecycleDeadLettersGrowing"]["expr"]
    assert "projector_poison_total" in dead_letters
    assert "actuator_pause_commands_total" in dead_letters
    down = by_name["E2BLifecycleTargetDown"]["expr"]
    assert down.startswith("up{")
    assert down.endswith("== 0")
    # The job pattern matches the ServiceMonitor's job of each component (the Service's name).
    job = re.search(r'job=~"([^"]+)"', down)
    assert job is not None
    for component in ("ingest", "status-api", "projector", "enforcer", "actuator"):
        assert re.fullmatch(job.group(1), f"rel-e2b-lifecycle-{component}"), component
    assert not re.fullmatch(job.group(1), "rel-postgresql")


def _label_values(expr: str) -> set[str]:
    """Literal values an expression filters a label on: {outcome="x"}, {outcome=~"a|b"}."""
    values: set[str] = set()
    for op, raw in re.findall(r'\b(?!job\b)[a-z_]+(=~|=)"([^"]*)"', expr):
        for value in raw.split("|") if op == "=~" else [raw]:
            if re.fullmatch(r"[a-z_]+", value):  # a pattern such as signature_.* is not literal
                values.add(value)
    return values


def test_every_label_value_an_alert_filters_on_is_emitted_somewhere() -> None:
    sources = "\n".join(
        p.read_text() for p in (ROOT / "services").rglob("*.py") if "/tests/" not in str(p)
    )
    for rule in alert_rules():
        for value in _label_values(rule["expr"]):
            assert f'"{value}"' in sources, (rule["alert"], value)
