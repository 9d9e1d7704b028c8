"""The small part of E2B's REST API that sandboxctl calls (shared/reference/e2b.md): webhook
registrations, and listing/creating sandboxes for the demo fleet. httpx with timeouts; every
failure becomes one `E2BApiError` with a one-line reason. Never logs or returns a secret."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx

WEBHOOKS = "/events/webhooks"


class E2BApiError(RuntimeError):
    """A call to E2B failed; the message is one line and names what to check."""


class E2BClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"X-API-Key": api_key, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
        )

    async def __aenter__(self) -> E2BClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        what = f"{method} {path}"
        try:
            response = await self._http.request(method, path, **kwargs)
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
        if response.status_code >= 400:
            hint = " (check E2B_API_KEY)" if response.status_code in (401, 403) else ""
            raise E2BApiError(
                f"E2B answered {response.status_code} to {what}: {_message(response)}{hint}"
            )
        return response

    # -- webhook registrations --------------------------------------------------------------

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

    # -- sandboxes ------------------------------------------------------------------------

    async def list_sandboxes(
        self, *, metadata: Mapping[str, str] | None = None, states: str = "running,paused"
    ) -> list[dict[str, Any]]:
        """Every page of GET /v2/sandboxes (the next page's token is in X-Next-Token)."""
        params: dict[str, str | int] = {"state": states, "limit": 100}
        if metadata:
            params["metadata"] = urlencode(metadata)
        out: list[dict[str, Any]] = []
        while True:
            response = await self._call("GET", "/v2/sandboxes", params=params)
            out.extend(response.json())
            token = response.headers.get("X-Next-Token")
            if not token:
                return out
            params["nextToken"] = token

    async def create_sandbox(
        self,
        *,
        template_id: str,
        timeout_seconds: int,
        metadata: Mapping[str, str],
        auto_pause: bool = False,
    ) -> dict[str, Any]:
        body = {
            "templateID": template_id,
            "timeout": timeout_seconds,
            "metadata": dict(metadata),
            "autoPause": auto_pause,
        }
        created: dict[str, Any] = (await self._call("POST", "/sandboxes", json=body)).json()
        return created


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
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
