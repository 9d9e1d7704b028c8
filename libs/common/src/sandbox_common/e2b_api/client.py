"""E2B's REST API (shared/reference/e2b.md): the one client of it, used by the actuator (pause,
connect, timeout), the reconciler (list, get), and sandboxctl (webhook registrations, the demo
fleet). httpx (small connection pools), every call paced (a token bucket under E2B's per-team
rate limit) and capped in flight.

Two kinds of call. A lifecycle command (pause, connect, timeout) returns E2B's answer whatever
it is, a `Reply` with the status code and E2B's message, or with no status when no answer came
(a timeout, a refused connection): the caller decides what each answer means (the actuator's
domain, enforcer/domain/outcomes.py). A read or a registration raises `E2BApiError` with a
one-line reason that names what to check; it never carries the API key.

Why not the generated client of E2B's official SDK (`e2b.api.client`, `e2b` 2.63.0): it would
not keep full control of status codes. Its `asyncio_detailed` calls do return E2B's documented
answers with the status, body and headers intact, but an answer outside its spec raises and
loses the status: a non-JSON error page (a proxy's HTML 502/503, an empty 429) raises
JSONDecodeError, an error body without `code`/`message` KeyError, a status outside Python's
HTTPStatus (520, 599) ValueError. Those are exactly the answers the actuator must retry, not
crash on. It has no webhook-registration routes (/events/webhooks) at all, always sends a body
with pause, and does not percent-encode ids in paths. Measured on this 2-core machine against
the simulator (409 "already paused", N=2,000, 5 rounds alternating): 611 us of client CPU per
pause call against 550 us for this client (550-1,003 us spread), 148 against 124 us with a mock
transport (no network); importing it loads the whole SDK (0.4-0.5 s, +37 MiB RSS, 656
modules, against 79 ms and +13 MiB for httpx). The CPU difference is within the noise; the
status codes decide. Its request models remain a reference for what E2B accepts.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx

from sandbox_common.e2b_api.listing import ListedSandbox
from sandbox_common.e2b_api.pacing import Pace, TokenBucket
from sandbox_common.settings import E2BApiSettings

WEBHOOKS = "/events/webhooks"
_PAGE_SIZE = 100  # E2B's maximum for GET /v2/sandboxes
_POOL_SIZE = 16  # connections per httpx pool (see E2BApi.__init__)
# (operation, status or "timeout"/"error", seconds): e.g. the actuator's latency histogram.
Observer = Callable[[str, str, float], None]


class E2BApiError(RuntimeError):
    """A read or registration failed; the message is one line and names what to check."""


@dataclass(frozen=True, slots=True)
class Reply:
    """E2B's answer to a lifecycle command; `status` None: no answer (the reason is in
    `message`). `retry_after`: the seconds E2B asked us to wait (a 429's or 503's Retry-After)."""

    status: int | None
    message: str = ""
    retry_after: float | None = None


# A 429 without a Retry-After still holds every caller back this long; one with an absurd
# value (a misconfigured proxy) holds them back at most this long, not for hours.
_DEFAULT_BACKOFF_SECONDS = 1.0
_MAX_RETRY_AFTER_SECONDS = 120.0


def retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After (RFC 9110 10.2.3): delay-seconds or an HTTP-date, bounded; None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            at = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if at.tzinfo is None:
            return None
        seconds = (at - now).total_seconds()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_SECONDS)


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Per-call timeout, calls in flight, and their pace (by default 100/s, well below E2B's
    ~666/s per team, which other clients share). `pace`: one shared with other replicas (at
    that rate); None, a bucket of this process's own."""

    timeout_seconds: float = 10.0
    max_concurrency: int = 32
    rate_per_second: float = 100.0
    burst: int = 100
    pace: Pace | None = None

    @classmethod
    def of(cls, settings: E2BApiSettings, pace: Pace | None = None) -> CallLimits:
        return cls(
            settings.e2b_timeout_seconds,
            settings.e2b_max_concurrency,
            settings.e2b_rate_per_second,
            settings.e2b_rate_burst,
            pace,
        )


class E2BApi:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        limits: CallLimits | None = None,
        *,
        observe: Observer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        limits = limits or CallLimits()
        self.base_url = base_url.rstrip("/")
        self._timeout = limits.timeout_seconds
        # Several small pools rather than one large one: httpcore's pool checks every one of
        # its connections (a socket poll each) for every request it places and every answer it
        # closes, so its cost per call grows with the square of its size. One pool of 256
        # took a whole core at 54 pauses/s (bench/pause_throughput.py); pools of 16 do not.
        shards = -(-limits.max_concurrency // _POOL_SIZE)
        per_pool = -(-limits.max_concurrency // shards)
        self._pools = [
            httpx.AsyncClient(
                base_url=self.base_url,
                headers={"X-API-Key": api_key, "Accept": "application/json"},
                timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 5.0)),
                # As many kept open as may be in use: none opened and closed per call.
                limits=httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool),
                transport=transport,
            )
            for _ in range(shards)
        ]
        self._next_pool = itertools.cycle(self._pools)
        self._slots = asyncio.Semaphore(limits.max_concurrency)
        # This process's own pace unless given one shared with other replicas.
        self._pace: Pace = limits.pace or TokenBucket(limits.rate_per_second, limits.burst)
        self._observe = observe

    @classmethod
    def of(
        cls, settings: E2BApiSettings, observe: Observer | None = None, pace: Pace | None = None
    ) -> E2BApi:
        """The client as a process's settings say (E2B_API_URL, E2B_API_KEY, E2B_*)."""
        return cls(
            settings.e2b_api_url,
            settings.e2b_api_key,
            CallLimits.of(settings, pace),
            observe=observe,
        )

    async def __aenter__(self) -> E2BApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()

    # -- lifecycle commands: every answer is returned ---------------------------------------

    async def pause(self, sandbox_id: str) -> Reply:
        return await self._command("pause", f"{_sandbox(sandbox_id)}/pause", None)

    async def connect(self, sandbox_id: str, timeout_seconds: int) -> Reply:
        """Resume (or keep running) with a fresh E2B timeout: the documented way to wake."""
        body = {"timeout": timeout_seconds}
        return await self._command("connect", f"{_sandbox(sandbox_id)}/connect", body)

    async def set_timeout(self, sandbox_id: str, timeout_seconds: int) -> Reply:
        """E2B's end becomes now + timeout: it can shorten a sandbox's life (see `refresh`)."""
        body = {"timeout": timeout_seconds}
        return await self._command("timeout", f"{_sandbox(sandbox_id)}/timeout", body)

    async def refresh(self, sandbox_id: str, duration_seconds: int) -> Reply:
        """E2B's end becomes at least now + duration (0-3600 s): extend only, never shorter
        than what the app itself set."""
        body = {"duration": duration_seconds}
        return await self._command("refresh", f"{_sandbox(sandbox_id)}/refreshes", body)

    async def kill(self, sandbox_id: str) -> Reply:
        return await self._command("kill", _sandbox(sandbox_id), None, method="DELETE")

    # -- reads and registrations: a failure raises E2BApiError ------------------------------

    async def list_sandboxes(
        self, *, metadata: Mapping[str, str] | None = None, states: str = "running,paused"
    ) -> list[ListedSandbox]:
        """Every page of GET /v2/sandboxes (the next page's token is in X-Next-Token)."""
        params: dict[str, str | int] = {"state": states, "limit": _PAGE_SIZE}
        if metadata:
            # E2B unescapes the value, then each key and value once more: its SDK quotes them
            # before urlencoding (e2b 2.63, sandbox_async/paginator.py), and so must we, or a
            # value holding `&` or `=` would be split.
            params["metadata"] = urlencode({quote(k): quote(v) for k, v in metadata.items()})
        found: list[ListedSandbox] = []
        while True:
            response = await self._call("GET", "/v2/sandboxes", params=params)
            items = response.json()
            if not isinstance(items, list):
                raise E2BApiError(f"GET /v2/sandboxes: expected a JSON list, got {items!r:.80}")
            found.extend(ListedSandbox.from_api(item) for item in items)
            token = response.headers.get("X-Next-Token")
            if not token or not items:
                return found
            params["nextToken"] = token

    async def sandbox_exists(self, sandbox_id: str) -> bool:
        return await self.sandbox(sandbox_id) is not None

    async def sandbox(self, sandbox_id: str) -> ListedSandbox | None:
        """GET /sandboxes/{id} (the API, never the sandbox's own URL: that would wake it);
        None when E2B does not know it (404, or 410 for a killed one)."""
        path = _sandbox(sandbox_id)
        response = await self._call("GET", path, allow=(404, 410))
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise E2BApiError(f"E2B answered {response.status_code} to GET {path}")
        return ListedSandbox.from_api(response.json())

    async def create_sandbox(
        self,
        *,
        template_id: str,
        timeout_seconds: int,
        metadata: Mapping[str, str],
        auto_pause: bool = False,
    ) -> str:
        """The new sandbox's id."""
        body = {
            "templateID": template_id,
            "timeout": timeout_seconds,
            "metadata": dict(metadata),
            "autoPause": auto_pause,
        }
        created = (await self._call("POST", "/sandboxes", json=body)).json()
        return str(created["sandboxID"])

    async def create_sandbox_v2(
        self,
        *,
        template_id: str,
        timeout_seconds: int,
        metadata: Mapping[str, str],
        on_timeout: Literal["kill", "pause"] = "kill",
        auto_resume: bool | None = None,
    ) -> str:
        """The new sandbox's id, created as E2B's SDK creates today (POST /v2/sandboxes).
        `on_timeout` "pause": E2B pauses it when its timeout runs out instead of killing it;
        `auto_resume`: traffic to it wakes it when paused (None leaves E2B's default)."""
        body: dict[str, Any] = {
            "templateID": template_id,
            "timeout": timeout_seconds,
            "metadata": dict(metadata),
            "autoPause": on_timeout == "pause",
        }
        if auto_resume is not None:
            body["autoResume"] = {"enabled": auto_resume}
        created = (await self._call("POST", "/v2/sandboxes", json=body)).json()
        return str(created["sandboxID"])

    async def list_webhooks(self) -> list[dict[str, Any]]:
        body = (await self._call("GET", WEBHOOKS)).json()
        if not isinstance(body, list):
            raise E2BApiError(f"GET {WEBHOOKS}: expected a JSON list, got {type(body).__name__}")
        return body

    async def create_webhook(
        self, *, name: str, url: str, events: Iterable[str], signature_secret: str
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "url": url,
            "events": list(events),
            "signatureSecret": signature_secret,
            "enabled": True,
        }
        created: dict[str, Any] = (await self._call("POST", WEBHOOKS, json=body)).json()
        return created

    async def update_webhook(self, webhook_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        path = f"{WEBHOOKS}/{webhook_id}"
        updated: dict[str, Any] = (await self._call("PATCH", path, json=dict(changes))).json()
        return updated

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._call("DELETE", f"{WEBHOOKS}/{webhook_id}")

    # -- the two ways of calling ------------------------------------------------------------

    async def _command(
        self, operation: str, path: str, body: dict[str, int] | None, method: str = "POST"
    ) -> Reply:
        try:
            response = await self._request(operation, method, path, json=body)
        except httpx.TimeoutException as exc:
            return Reply(None, f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return Reply(None, f"transport: {exc!r}"[:300])
        if response.is_success:
            return Reply(response.status_code)
        wait = retry_after(response.headers.get("retry-after"), datetime.now(UTC))
        return Reply(response.status_code, _message(response), wait)

    async def _call(
        self, method: str, path: str, *, allow: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        what = f"{method} {path}"
        try:
            response = await self._request(method.lower(), method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise E2BApiError(
                f"cannot connect to E2B at {self.base_url} ({_reason(exc)}); "
                "check E2B_API_URL (the local simulator is started by `make up`)"
            ) from exc
        except httpx.TimeoutException as exc:
            raise E2BApiError(
                f"E2B at {self.base_url} did not answer {what} within {self._timeout:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise E2BApiError(f"{what} to {self.base_url} failed: {_reason(exc)}") from exc
        if response.status_code >= 400 and response.status_code not in allow:
            hint = " (check E2B_API_KEY)" if response.status_code in (401, 403) else ""
            raise E2BApiError(
                f"E2B answered {response.status_code} to {what}: {_message(response)}{hint}"
            )
        return response

    async def _request(
        self, operation: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        """Paced, capped in flight, and observed (status, or timeout/error, and seconds)."""
        async with self._slots:
            await self._pace.acquire()
            started = time.perf_counter()
            outcome = "error"
            try:
                response = await next(self._next_pool).request(method, path, **kwargs)
                outcome = str(response.status_code)
                if response.status_code == 429:
                    # Over E2B's per-team limit: every caller sharing this pace holds back.
                    wait = retry_after(response.headers.get("retry-after"), datetime.now(UTC))
                    await self._pace.defer(_DEFAULT_BACKOFF_SECONDS if wait is None else wait)
                return response
            except httpx.TimeoutException:
                outcome = "timeout"
                raise
            finally:
                if self._observe is not None:
                    self._observe(operation, outcome, time.perf_counter() - started)


def _sandbox(sandbox_id: str) -> str:
    return f"/sandboxes/{quote(sandbox_id, safe='')}"


def _message(response: httpx.Response) -> str:
    """E2B errors are `{"code", "message"}`; anything else is kept as (short) text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        text = str(body["message"])
    else:
        text = response.text or response.reason_phrase
    return " ".join(text.split())[:300]


def _reason(exc: BaseException) -> str:
    """The root cause in a few words (httpx says "All connection attempts failed")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return "connection refused"
        seen = seen.__cause__ or seen.__context__
    return " ".join(str(exc).split()) or exc.__class__.__name__
