"""The actuator's port to E2B (`SandboxControl`), carried out by the one E2B client: its
answers, classified by the domain (enforcer.domain.outcomes)."""

from __future__ import annotations

import dataclasses

from enforcer.domain.outcomes import (
    KillResult,
    OutcomeT,
    PauseResult,
    Result,
    ResumeResult,
    TimeoutResult,
    classify_connect,
    classify_kill,
    classify_pause,
    classify_refresh,
)
from sandbox_common.e2b_api.client import E2BApi, Reply


class E2BSandboxControl:
    def __init__(self, api: E2BApi) -> None:
        self._api = api

    async def pause(self, sandbox_id: str) -> PauseResult:
        reply = await self._api.pause(sandbox_id)
        return _waiting(classify_pause(reply.status, reply.message), reply)

    async def connect(self, sandbox_id: str, timeout_seconds: int) -> ResumeResult:
        reply = await self._api.connect(sandbox_id, timeout_seconds)
        return _waiting(classify_connect(reply.status, reply.message), reply)

    async def refresh(self, sandbox_id: str, duration_seconds: int) -> TimeoutResult:
        reply = await self._api.refresh(sandbox_id, duration_seconds)
        return _waiting(classify_refresh(reply.status, reply.message), reply)

    async def kill(self, sandbox_id: str) -> KillResult:
        reply = await self._api.kill(sandbox_id)
        return _waiting(classify_kill(reply.status, reply.message), reply)


def _waiting(result: Result[OutcomeT], reply: Reply) -> Result[OutcomeT]:
    """The result, with how long E2B asked us to wait before the next try (Retry-After)."""
    if reply.retry_after is None:
        return result
    return dataclasses.replace(result, retry_after=reply.retry_after)
