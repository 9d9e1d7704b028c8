"""A notification receiver, standard library only (docs/NOTIFICATIONS.md).

    RECEIVER_SECRET=<the secret you registered> python3 notification_receiver.py 9000

then register `http://<this host>:9000/` for your project. It checks each delivery's signature
and freshness, handles a delivery id once (we deliver at least once), and answers 204 quickly:
do slow work after answering, or we time out and send it again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300


def verify_signature(secret: str, header: str | None, body: bytes, now: float) -> bool:
    """`Sandbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`."""
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        return False  # stale: a replayed delivery
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


SEEN: set[str] = set()  # use your database: survives restarts, shared by replicas


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        secret = os.environ["RECEIVER_SECRET"]
        if not verify_signature(secret, self.headers.get("Sandbox-Signature"), body, time.time()):
            self.send_response(401)
            self.end_headers()
            return
        notice = json.loads(body)
        if notice["deliveryId"] not in SEEN:
            SEEN.add(notice["deliveryId"])
            print(notice["event"], notice["projectId"], notice["sandboxId"], notice["data"])
        self.send_response(204)
        self.end_headers()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    ThreadingHTTPServer(("0.0.0.0", port), Receiver).serve_forever()  # noqa: S104
