"""The actuator's port to E2B (`SandboxControl`), carried out by the one E2B client: its
answers, classified by the domain (enforcer.domain.outcomes)."""

from __future__ import annotations

from enforcer.domain.outcomes import (
    PauseResult,
    ResumeResult,
    TimeoutResult,
    classify_connect,
    classify_pause,
    classify_refresh,
)
from sandbox_common.e2b_api.client import E2BApi


class E2BSandboxControl:
    def __init__(self, api: E2BApi) -> None:
        self._api = api

    async def pause(self, sandbox_id: str) -> PauseResult:
        reply = await self._api.pause(sandbox_id)
        return classify_pause(reply.status, reply.message)

    async def connect(self, sandbox_id: str, timeout_seconds: int) -> ResumeResult:
        reply = await self._api.connect(sandbox_id, timeout_seconds)
        return classify_connect(reply.status, reply.message)

    async def refresh(self, sandbox_id: str, duration_seconds: int) -> TimeoutResult:
        reply = await self._api.refresh(sandbox_id, duration_seconds)
        return classify_refresh(reply.status, reply.message)
