"""A webhook body over INGEST_MAX_BODY_BYTES is answered 413 in a way the client can read.

Such a client is usually still sending when the 413 is written. Were the connection closed then,
the kernel would reset it over the unread bytes and the client would often see the reset, not the
413. Raw sockets against the real ingest (uvicorn as the services run it), so nothing in an HTTP
client hides a reset or retries.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator

import pytest

from ingest.fast_lane import DRAIN_MAX_BYTES, DRAIN_SECONDS
from sandbox_common import e2b
from tests.connected.conftest import Stack
from tests.connected.helpers import T0

pytestmark = pytest.mark.connected

LIMIT = 65536  # INGEST_MAX_BODY_BYTES of the test stack (conftest.py)
MIB = 1024 * 1024
PIECE = 64 * 1024


def _head(stack: Stack, headers: dict[str, str]) -> bytes:
    lines = ["POST /api/webhooks/e2b HTTP/1.1", f"host: 127.0.0.1:{stack.ingest.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _pieces(size: int) -> Iterator[bytes]:
    for start in range(0, size, PIECE):
        yield b"x" * min(PIECE, size - start)


def _chunked(size: int) -> Iterator[bytes]:
    for piece in _pieces(size):
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


class Exchange:
    """One request over a raw socket: sends the head and body, then reads until the server
    closes. Notes the first error of each side instead of raising, so a test can say which."""

    def __init__(self, stack: Stack) -> None:
        self.sock = socket.create_connection(("127.0.0.1", stack.ingest.port), timeout=15)
        self.sent = 0
        self.send_error: OSError | None = None
        self.received = b""
        self.read_error: OSError | None = None

    def send(self, head: bytes, body: Iterable[bytes]) -> None:
        try:
            self.sock.sendall(head)
            for piece in body:
                self.sock.sendall(piece)
                self.sent += len(piece)
        except OSError as exc:
            self.send_error = exc

    def read_to_end(self) -> None:
        try:
            while data := self.sock.recv(65536):
                self.received += data
        except OSError as exc:
            self.read_error = exc
        finally:
            self.sock.close()

    def read_response(self) -> tuple[int, dict[str, str], bytes]:
        """Reads just one complete response (by its Content-Length), leaving the socket open."""
        while b"\r\n\r\n" not in self.received:
            self.received += self.sock.recv(65536) or _closed()
        status, headers, body = _parse(self.received)
        while len(body) < int(headers["content-length"]):
            self.received += self.sock.recv(65536) or _closed()
            status, headers, body = _parse(self.received)
        return status, headers, body


def _closed() -> bytes:
    raise AssertionError("the server closed before the whole response")


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers, body


def _assert_readable_413(exchange: Exchange) -> None:
    assert exchange.send_error is None, f"reset while sending: {exchange.send_error!r}"
    assert exchange.read_error is None, f"reset while reading: {exchange.read_error!r}"
    assert exchange.received.startswith(b"HTTP/1.1 413 "), exchange.received[:200]
    _, headers, body = _parse(exchange.received)
    assert headers["connection"] == "close"
    assert len(body) == int(headers["content-length"])
    assert json.loads(body)["extra"] == {"reason": "too_large"}


@pytest.mark.parametrize("size", [3 * MIB, 6 * MIB])
def test_a_body_over_the_limit_with_content_length_gets_a_readable_413(
    stack: Stack, size: int
) -> None:
    assert size < DRAIN_MAX_BYTES
    exchange = Exchange(stack)
    head = _head(stack, {"content-type": "application/json", "content-length": str(size)})
    exchange.send(head, _pieces(size))
    exchange.read_to_end()
    _assert_readable_413(exchange)
    assert exchange.sent == size


@pytest.mark.parametrize("size", [3 * MIB, 6 * MIB])
def test_a_chunked_body_over_the_limit_gets_a_readable_413(stack: Stack, size: int) -> None:
    exchange = Exchange(stack)
    head = _head(stack, {"content-type": "application/json", "transfer-encoding": "chunked"})
    exchange.send(head, _chunked(size))
    exchange.read_to_end()
    _assert_readable_413(exchange)


def _signed_body(stack: Stack) -> tuple[bytes, dict[str, str]]:
    event = e2b.WebhookEvent(
        id=str(uuid.uuid4()),
        type="sandbox.lifecycle.created",
        sandbox_id=f"oversized-{uuid.uuid4().hex[:12]}",
        timestamp=T0,
        metadata={"projectId": f"oversized-{uuid.uuid4().hex[:8]}"},
    )
    body = json.dumps(e2b.build_webhook(event)).encode()
    return body, {**e2b.signed_headers(stack.webhook_secret, body), "connection": "close"}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_within_the_limit_is_still_accepted(stack: Stack, chunked: bool) -> None:
    body, headers = _signed_body(stack)
    exchange = Exchange(stack)
    if chunked:
        exchange.send(
            _head(stack, {**headers, "transfer-encoding": "chunked"}),
            [b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)],
        )
    else:
        exchange.send(_head(stack, {**headers, "content-length": str(len(body))}), [body])
    exchange.read_to_end()
    assert exchange.send_error is None
    assert exchange.read_error is None
    status, _, answer = _parse(exchange.received)
    assert (status, json.loads(answer)["status"]) == (200, "accepted"), exchange.received


def test_the_413_does_not_wait_for_a_client_that_sends_nothing_more(stack: Stack) -> None:
    exchange = Exchange(stack)
    started = time.monotonic()
    exchange.send(_head(stack, {"content-length": str(10 * MIB)}), [b"x" * 1000])
    status, headers, _ = exchange.read_response()
    answered = time.monotonic() - started
    assert (status, headers["connection"]) == (413, "close")
    assert answered < DRAIN_SECONDS / 2, answered
    exchange.read_to_end()  # the server gives up on the body within its bound, and closes
    assert time.monotonic() - started < DRAIN_SECONDS + 3
    assert exchange.read_error is None, exchange.read_error


def test_a_client_that_sends_for_ever_is_cut_off_after_the_bound(stack: Stack) -> None:
    size = 8 * DRAIN_MAX_BYTES
    exchange = Exchange(stack)
    head = _head(stack, {"content-length": str(size)})
    sender = threading.Thread(target=exchange.send, args=(head, _pieces(size)), daemon=True)
    sender.start()
    status, _, _ = exchange.read_response()  # written at once, while the body still comes in
    assert status == 413
    exchange.read_to_end()
    sender.join(timeout=DRAIN_SECONDS + 10)
    assert not sender.is_alive()
    assert exchange.send_error is not None  # the server stopped reading...
    assert exchange.sent < size  # ...long before the body's end
