"""Every project's policy and the global default, as one value the deadline rule asks: "what
idle timeout does this project's policy give, and may its sandboxes be paused at all?".

Asked once per status document written (the projector's hot path), so the answers are computed
when the book is made, not per question. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sandbox_common.policies.model import Policy, QuietHours


@dataclass(frozen=True, slots=True)
class Governs:
    """What the policies give a project's sandboxes before their own metadata: the idle
    timeout (None: the setting's), whether idleness never pauses them, and the pauses that
    come whatever the activity: after a maximum running time, at quiet hours' start; and when
    a paused one is deleted."""

    idle_seconds: int | None = None
    never_pause: bool = False
    max_running_seconds: int | None = None
    quiet_hours: QuietHours | None = None
    # A PAUSED sandbox is deleted (E2B kill) this long after it was paused.
    delete_after_paused_seconds: int | None = None
    # How long before a pause frontends are warned (None: STATUS_API_WARN_BEFORE_SECONDS; 0:
    # not at all).
    warn_before_seconds: int | None = None


_NOTHING = NO_GOVERNS = Governs()


@dataclass(frozen=True, slots=True)
class PolicyBook:
    default: Policy | None = None
    projects: Mapping[str, Policy] = field(default_factory=dict)
    _governs: dict[str, Governs] = field(init=False, repr=False, compare=False)
    _fallback: Governs = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fallback = _merge(None, self.default)
        governs = {
            project: _merge(policy, self.default) for project, policy in self.projects.items()
        }
        object.__setattr__(self, "_fallback", fallback)
        object.__setattr__(self, "_governs", governs)

    @classmethod
    def of(cls, entries: Iterable[tuple[str | None, Policy]]) -> PolicyBook:
        """From (project id, policy) pairs; project None is the default."""
        default: Policy | None = None
        projects: dict[str, Policy] = {}
        for project_id, policy in entries:
            if project_id is None:
                default = policy
            else:
                projects[project_id] = policy
        return cls(default, projects)

    def governs(self, project_id: str | None) -> Governs:
        if project_id is None:
            return self._fallback
        return self._governs.get(project_id, self._fallback)

    def longest_warn_before(self) -> int | None:
        """The longest pause warning lead time any policy gives (None: none sets one): how far
        ahead status-api must look for deadlines to warn about."""
        leads = [
            g.warn_before_seconds
            for g in (self._fallback, *self._governs.values())
            if g.warn_before_seconds is not None
        ]
        return max(leads, default=None)

    def project(self, project_id: str | None) -> Policy | None:
        return None if project_id is None else self.projects.get(project_id)

    def changed_scopes(self, before: PolicyBook) -> tuple[bool, frozenset[str]]:
        """(whether the default's answers changed, the projects whose answers changed) from
        `before` to this book: what must be re-indexed."""
        default_changed = _acts(self._fallback) != _acts(before._fallback)
        projects = {
            p
            for p in self._governs.keys() | before._governs.keys()
            if _acts(self.governs(p)) != _acts(before.governs(p))
        }
        return default_changed, frozenset(projects)


def _acts(governs: Governs) -> Governs:
    """What moves a document's deadlines: a warning's lead time is status-api's alone."""
    return replace(governs, warn_before_seconds=None)


def _merge(project: Policy | None, default: Policy | None) -> Governs:
    """Field by field, the project's value, else the default's."""
    levels = [level for level in (project, default) if level is not None]
    if not levels:
        return _NOTHING

    def first(name: str) -> Any:
        return next((v for level in levels if (v := getattr(level, name)) is not None), None)

    idle = next((v for level in levels if (v := level.idle_seconds()) is not None), None)
    governs = Governs(
        idle,
        bool(first("never_pause")),
        first("max_lifetime_seconds"),
        first("quiet_hours"),
        first("delete_after_paused_seconds"),
        first("warn_before_seconds"),
    )
    return _NOTHING if governs == _NOTHING else governs


NO_POLICIES = PolicyBook()


@dataclass(frozen=True, slots=True)
class Placed:
    """A policy in force: for whom (None: the default), and where the fact that set it is on
    the lifecycle topic (a later one replaces it, an earlier one never does)."""

    project_id: str | None
    partition: int
    offset: int
    policy: Policy
