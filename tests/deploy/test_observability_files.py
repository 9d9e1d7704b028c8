"""The alert rules and the Grafana dashboard query only metrics that our services define (a
renamed metric would otherwise silence an alert without anyone noticing)."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

FILES = Path(__file__).parents[2] / "deploy" / "helm" / "e2b-lifecycle" / "files"
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
