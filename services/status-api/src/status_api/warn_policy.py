"""How long before a pause each project's frontends are warned: a policy's `warnBeforeSeconds`
(the project's, else the default's) in place of STATUS_API_WARN_BEFORE_SECONDS; 0 sends none.

Status reads and streams ask for every document, so the policies are not read per request: a
follower copies the whole policy hash from Redis every few seconds (the projector writes it as
soon as PostgreSQL holds a change), and a change of lead time reaches the warnings that long
after it is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Protocol

from sandbox_common.policies import NO_POLICIES, PolicyBook
from status_api.views import WarnWindows

log = logging.getLogger(__name__)

# How often the follower copies the policies: the delay of a lead time change, at one HGETALL
# of a hash holding one entry per project with a policy.
REFRESH_SECONDS = 5.0


def _no_policies() -> PolicyBook:
    return NO_POLICIES


@dataclass(frozen=True, eq=False)
class WarnPolicy:
    settings: WarnWindows
    book: Callable[[], PolicyBook] = _no_policies
    # One WarnWindows per lead time: reads ask on every request.
    _made: dict[int, WarnWindows] = field(default_factory=dict, init=False, repr=False)

    def windows(self, project_id: str | None) -> WarnWindows:
        seconds = self.book().governs(project_id).warn_before_seconds
        return self.settings if seconds is None else self._with_pause(seconds)

    def widest(self) -> WarnWindows:
        """The settings' windows with the longest pause lead time of any policy: how far ahead
        the warner looks."""
        longest = self.book().longest_warn_before()
        if longest is None or timedelta(seconds=longest) <= self.settings.pause:
            return self.settings
        return self._with_pause(longest)

    def _with_pause(self, seconds: int) -> WarnWindows:
        made = self._made.get(seconds)
        if made is None:
            if len(self._made) > 4096:  # lead times are few; bounded all the same
                self._made.clear()
            made = self._made[seconds] = replace(self.settings, pause=timedelta(seconds=seconds))
        return made


class BookSource(Protocol):
    async def whole(self) -> PolicyBook: ...


@dataclass(eq=False)
class BookFollower:
    """The policies in force, copied from the read model every `interval_seconds`; the last copy
    is kept while Redis cannot be read (the settings' lead times until the first one)."""

    source: BookSource
    interval_seconds: float = REFRESH_SECONDS
    book: PolicyBook = field(default=NO_POLICIES, init=False)

    def current(self) -> PolicyBook:
        return self.book

    async def refresh(self) -> None:
        self.book = await self.source.whole()

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # Redis down or being rebuilt: the last copy stays
                log.warning("the policies' warning lead times were not refreshed: %s", exc)
            await asyncio.sleep(self.interval_seconds)
