"""Signed E2B webhooks for the load generators, and a raw HTTP/1.1 keep-alive connection to send
them over: a fraction of httpx's CPU per request, which matters on two cores shared with the
system under test. Used by the benchmarks and by the fault suite's load (tests/faults/load.py).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sandbox_common import e2b
from sandboxctl.settings import Settings

WEBHOOK_PATH = "/api/webhooks/e2b"


def signed_webhook(
    settings: Settings,
    event_type: str,
    sandbox_id: str,
    project_id: str,
    timestamp: datetime | None = None,
    extra_data: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A v2 webhook body with a new event id, and the headers that sign it; `metadata` adds to
    the project id's key."""
    body = json.dumps(
        e2b.build_webhook(
            e2b.WebhookEvent(
                id=str(uuid.uuid4()),
                type=event_type,
                sandbox_id=sandbox_id,
                timestamp=timestamp or datetime.now(UTC),
                metadata={settings.project_metadata_key: project_id, **(metadata or {})},
                data=extra_data or {},
            )
        )
    ).encode()
    return body, e2b.signed_headers(settings.e2b_webhook_secret, body)


def build_request(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection, opened on first use and again after the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        """Sends one whole request and reads its answer; returns the status code."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        await self.writer.drain()
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head.split(" ", 2)[1])
        length, chunked = 0, "transfer-encoding: chunked" in head
        for line in head.split("\r\n"):
            if line.startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        if chunked:
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        else:
            await self.reader.readexactly(length)
        if "connection: close" in head:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
