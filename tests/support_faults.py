"""A small fault-injecting HTTP proxy in front of the embedded gateway (issue 11's ownership
tests): per invoke-json method or path prefix, answer 5xx before forwarding, forward and then
answer 5xx (a lost answer), or hold the request until released.

Real sockets on loopback, port 0: the CLI under test talks HTTP to it exactly as to a gateway.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import httpx

Action = Literal["fail", "lose", "hold"]
"""fail: HTTP 502 without forwarding; lose: forward, then answer 502; hold: wait for
``release`` (then forward)."""


@dataclass
class Faults:
    """What to do to which calls; ``times`` = how many calls each rule hits (None: all)."""

    rules: dict[str, tuple[Action, int | None]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> Action | None:
        with self.lock:
            self.seen.append(key)
            for name, (action, times) in list(self.rules.items()):
                if key == name or (name.endswith("*") and key.startswith(name[:-1])):
                    if times is not None:
                        if times <= 0:
                            continue
                        self.rules[name] = (action, times - 1)
                    return action
        return None


@contextmanager
def fault_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    """Serve the proxy; yields its base URL."""
    client = httpx.Client(timeout=60)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _key(self, body: bytes) -> str:
            if self.path.startswith("/v1/gateway/invoke-json"):
                try:
                    return str(json.loads(body).get("method", ""))
                except ValueError:
                    return ""
            return self.path

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            action = faults.take(self._key(body))
            if action == "fail":
                self._answer(502, b"bad gateway")
                return
            if action == "hold":
                faults.held.set()
                faults.release.wait(60)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() in ("content-type", "x-api-key")
            }
            try:
                response = client.request(
                    method, upstream + self.path, content=body, headers=headers
                )
            except httpx.HTTPError:
                self._answer(502, b"upstream failed")
                return
            if action == "lose":
                self._answer(502, b"answer lost")
                return
            self._answer(response.status_code, response.content)

        def _answer(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        faults.release.set()
        server.shutdown()
        server.server_close()
        client.close()
