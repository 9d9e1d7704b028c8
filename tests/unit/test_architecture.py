"""The import rules of docs/ARCHITECTURE.md, checked on the source (ast): each test fails when a
change breaks its rule."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SOURCES = {
    "sandbox_common": ROOT / "libs/common/src/sandbox_common",
    "ingest": ROOT / "services/ingest/src/ingest",
    "projector": ROOT / "services/projector/src/projector",
    "enforcer": ROOT / "services/enforcer/src/enforcer",
    "status_api": ROOT / "services/status-api/src/status_api",
    "sandboxctl": ROOT / "tools/sandboxctl/src/sandboxctl",
    "e2b_sim": ROOT / "tools/e2b-sim/src/e2b_sim",
}
SERVICES = ("ingest", "projector", "enforcer", "status_api")
# Libraries that talk to a broker, a database, a store or the network, or serve HTTP.
IO = ("faststream", "aiokafka", "asyncpg", "redis", "httpx", "litestar", "uvicorn")

# Pure: the rules themselves. They import no I/O library, not even through our own modules.
DOMAIN = (
    "sandbox_common.e2b",
    "sandbox_common.envelope",
    "sandbox_common.commands",
    "sandbox_common.facts",
    "sandbox_common.payloads",
    "sandbox_common.topics",
    "sandbox_common.dead_letters",
    "sandbox_common.readmodel",
    "sandbox_common.readmodel.document",
    "sandbox_common.readmodel.deadlines",
    "sandbox_common.e2b_api.listing",
    "sandbox_common.policies",
    "sandbox_common.policies.model",
    "sandbox_common.policies.effective",
    "sandbox_common.policies.quiet_hours",
    "sandbox_common.policies.book",
    "projector.domain",
    "projector.flaps",
    "projector.snapshots",
    "projector.history_retention",
    "enforcer.domain.idle",
    "enforcer.domain.outcomes",
    "enforcer.reconciler.rules",
)
# Use cases: they reach stores and brokers only through protocols (ports), so none imports an
# I/O library itself.
USE_CASES = (
    "ingest.handlers",
    "projector.handlers",
    "projector.pipeline",
    "projector.retries",
    "projector.read_model_rebuild",
    "projector.policy_apply",
    "enforcer.periodic",
    "enforcer.ticker.tick",
    "enforcer.ticker.repair",
    "enforcer.ticker.job",
    "enforcer.actuator.carry_out",
    "enforcer.actuator.retry",
    "enforcer.actuator.facts",
    "enforcer.reconciler.reconcile",
    "status_api.activity",
    "status_api.actions",
    "status_api.deadline_warnings",
    "status_api.policies",
)


@dataclass(frozen=True)
class Module:
    name: str
    path: Path

    @property
    def tree(self) -> ast.Module:
        return _parse(self.path)


@cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


@cache
def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = Module(".".join(parts), path)
    return found


def imported(module: Module) -> Iterator[str]:
    """Every name `module` imports (a module, or a module's attribute as module.attribute)."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def ours(name: str) -> str | None:
    """The module of ours `name` is or lies in, if any."""
    while name:
        if name in modules():
            return name
        name = name.rpartition(".")[0]
    return None


def io_library(name: str) -> str | None:
    top = name.split(".")[0]
    return top if top in IO else None


def reached(start: str) -> dict[str, str]:
    """Our modules `start` imports, directly or through others: module -> who imported it."""
    seen, todo = {start: start}, [start]
    while todo:
        current = todo.pop()
        for name in imported(modules()[current]):
            target = ours(name)
            if target is not None and target not in seen:
                seen[target] = current
                todo.append(target)
    return seen


def test_the_rule_lists_name_real_modules() -> None:
    assert set(DOMAIN) <= modules().keys()
    assert set(USE_CASES) <= modules().keys()


@pytest.mark.parametrize("name", DOMAIN)
def test_domain_modules_import_no_io_library_even_indirectly(name: str) -> None:
    found = [
        f"{library} (imported by {module})"
        for module in reached(name)
        for imported_name in imported(modules()[module])
        if (library := io_library(imported_name))
    ]
    assert not found, f"{name} reaches {found}"


@pytest.mark.parametrize("name", USE_CASES)
def test_use_cases_import_no_io_library(name: str) -> None:
    found = sorted({lib for i in imported(modules()[name]) if (lib := io_library(i))})
    assert not found, f"{name} imports {found}: reach it through a port instead"


def test_services_never_import_each_other_and_the_library_imports_none() -> None:
    crossing = []
    for name, module in modules().items():
        home = name.split(".")[0]
        if home not in (*SERVICES, "sandbox_common", "e2b_sim"):
            continue  # tools (sandboxctl) run parts of every service
        for target in filter(None, map(ours, imported(module))):
            other = target.split(".")[0]
            if other not in (home, "sandbox_common"):
                crossing.append(f"{name} -> {target}")
    assert not crossing


def test_the_live_projector_does_not_import_the_replay_tool() -> None:
    live = [n for n in modules() if n.startswith("projector") and ".replay" not in n]
    assert "projector.app" in live
    found = [
        f"{n} -> {t}"
        for n in live
        for t in filter(None, map(ours, imported(modules()[n])))
        if t.startswith("projector.replay")
    ]
    assert not found


def _strings(module: Module) -> Iterator[str]:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def test_only_the_read_model_spells_a_redis_key() -> None:
    spelled = [
        f"{name}: {text!r}"
        for name, module in modules().items()
        if name != "sandbox_common.readmodel.keys"
        for text in _strings(module)
        if text.startswith(("sbx:", "sbx-shadow:"))
    ]
    assert not spelled
    layout_users = {
        name
        for name, module in modules().items()
        if "sandbox_common.readmodel.keys" in map(ours, imported(module))
        and not name.startswith("sandbox_common.readmodel")
    }
    # ingest's dedupe batches its lookups itself, with the layout's key for an event.
    assert layout_users == {"ingest.adapters.dedupe"}


def test_only_the_e2b_client_calls_e2b_rest_routes() -> None:
    routes = ("/sandboxes", "/v2/sandboxes", "/events/webhooks")
    calling = sorted(
        name
        for name, module in modules().items()
        if not name.startswith(("e2b_sim", "sandbox_common.e2b_api"))
        for text in _strings(module)
        if text.startswith(routes)
    )
    assert not calling
    clients = [
        name
        for name, module in modules().items()
        for node in ast.walk(module.tree)
        if isinstance(node, ast.ClassDef) and re.fullmatch(r"E2B\w*(Api|Client)", node.name)
    ]
    assert clients == ["sandbox_common.e2b_api.client"]


def test_only_one_writer_publishes_dead_letters() -> None:
    writers = sorted(
        {
            name
            for name, module in modules().items()
            for node in ast.walk(module.tree)
            if isinstance(node, ast.keyword)
            and node.arg == "topic"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "LIFECYCLE_DLQ"
        }
    )
    assert writers == ["sandbox_common.broker"]
