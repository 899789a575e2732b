"""A fault-injecting HTTP proxy between the CLI and a gateway, so gateway faults are tested
through the real client (httpx, its timeouts, our error mapping), not a MockTransport.

Why a proxy and not knobs on the embedded gateway: the faults an operator meets (a gateway that
accepts and never answers, a reset mid-call, a body cut short, a 5xx whose body echoes the
request's API key) live in the transport; a proxy injects them in front of any gateway, the
embedded one in tests and in ``make soak``.

Faults are keyed by what is called: ``"workmanager.StartWorker"`` (the ``service.method`` of an
``invoke-json`` body) or a path (``"/health"``), or ``"*"`` for every request. Each fault acts
``before`` forwarding (the gateway never sees the call) or ``after`` (the call took effect, its
answer is lost: the hard case for "nothing left behind").

Example::

    with FaultProxy(platform.gateway_url) as proxy:
        proxy.add("workmanager.StartWorker", Fault("hang"))
        env = {**platform.env(), "VIRTUFIN_API_URL": proxy.url}
        ...
        proxy.wait_hit("workmanager.StartWorker")   # an event, not a sleep
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx

Kind = Literal["status", "hang", "reset", "truncate"]
KINDS: tuple[Kind, ...] = ("status", "hang", "reset", "truncate")


@dataclass
class Fault:
    """One injected fault.

    Parameters:
        kind: ``status`` (answer ``status`` with ``body``), ``hang`` (never answer until the
            proxy closes or :meth:`FaultProxy.release` is called), ``reset`` (TCP RST),
            ``truncate`` (headers promise more body than is sent, then close).
        when: ``before`` forwarding, or ``after`` (the gateway handled the call).
        status: the HTTP status of a ``status`` fault.
        body: its body; ``{api_key}`` / ``{api_key_b64}`` are replaced by the request's
            ``x-api-key`` header, raw / base64 (a gateway that echoes the key in an error).
        times: how many requests it applies to (``None``: all).
    """

    kind: Kind
    when: Literal["before", "after"] = "before"
    status: int = 503
    body: str = '{"error": "injected"}'
    times: int | None = None


@dataclass
class _Rule:
    fault: Fault
    left: int | None = field(default=None)


class FaultProxy:
    """Threaded HTTP proxy on ``127.0.0.1:0`` forwarding to ``upstream``; see the module doc."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._rules: dict[str, list[_Rule]] = {}
        self._lock = threading.Condition()
        self.hits: dict[str, int] = {}
        """Requests seen per key (``service.method`` or path)."""
        self.injected: list[tuple[str, str, str]] = []
        """``(key, kind, when)`` of every fault applied, in order."""
        self._release = threading.Event()
        self._client = httpx.Client(timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self, "GET")

            def do_POST(self) -> None:
                proxy._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    # -- rules ------------------------------------------------------------------------------------

    def add(self, key: str, fault: Fault) -> None:
        """Apply ``fault`` to requests for ``key`` (later rules for one key queue up)."""
        with self._lock:
            self._rules.setdefault(key, []).append(_Rule(fault, fault.times))

    def clear(self) -> None:
        """Drop every rule and let hung requests go (they then get a reset)."""
        with self._lock:
            self._rules.clear()
        self._release.set()
        self._release = threading.Event()

    def release(self) -> None:
        """End every request hanging now (each gets a reset)."""
        self._release.set()
        self._release = threading.Event()

    def wait_hit(self, key: str, count: int = 1, timeout: float = 60.0) -> bool:
        """Wait until ``key`` was requested ``count`` times (an event, not a sleep)."""
        with self._lock:
            return self._lock.wait_for(lambda: self.hits.get(key, 0) >= count, timeout=timeout)

    def _take(self, keys: list[str]) -> Fault | None:
        with self._lock:
            for key in keys:
                rules = self._rules.get(key)
                while rules:
                    rule = rules[0]
                    if rule.left is not None and rule.left <= 0:
                        rules.pop(0)
                        continue
                    if rule.left is not None:
                        rule.left -= 1
                    return rule.fault
        return None

    # -- serving ----------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path.split("?", 1)[0]
        key = path
        if path.endswith("/invoke-json"):
            try:
                doc = json.loads(body)
                key = f"{doc['service']}.{doc['method']}"
            except (ValueError, KeyError, TypeError):
                pass
        fault = self._take([key, path, "*"])
        with self._lock:
            self.hits[key] = self.hits.get(key, 0) + 1
            if fault is not None:
                self.injected.append((key, fault.kind, fault.when))
            self._lock.notify_all()
        if fault is not None and fault.when == "before":
            self._inject(handler, fault)
            return
        headers = {
            k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length")
        }
        try:
            answer = self._client.request(
                method, f"{self.upstream}{handler.path}", content=body, headers=headers
            )
        except httpx.HTTPError:
            self._reset(handler)
            return
        if fault is not None:
            self._inject(handler, fault)
            return
        self._send(handler, answer.status_code, answer.content, answer.headers.get("content-type"))

    def _inject(self, handler: BaseHTTPRequestHandler, fault: Fault) -> None:
        if fault.kind == "status":
            key = handler.headers.get("x-api-key") or ""
            text = fault.body.replace("{api_key}", key).replace(
                "{api_key_b64}", base64.b64encode(key.encode()).decode()
            )
            self._send(handler, fault.status, text.encode(), "application/json")
        elif fault.kind == "hang":
            self._release.wait()
            self._reset(handler)
        elif fault.kind == "reset":
            self._reset(handler)
        else:  # truncate: promise 1000 bytes, send 10, close
            handler.send_response(200)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", "1000")
            handler.end_headers()
            handler.wfile.write(b'{"success"')
            handler.wfile.flush()
            handler.close_connection = True
            self._close(handler)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str | None
    ) -> None:
        handler.send_response(status)
        handler.send_header("content-type", content_type or "application/json")
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _reset(handler: BaseHTTPRequestHandler) -> None:
        """Close with RST (SO_LINGER 0): the client sees a reset, not a clean EOF."""
        sock: socket.socket = handler.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        FaultProxy._close(handler)

    @staticmethod
    def _close(handler: BaseHTTPRequestHandler) -> None:
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)
        handler.connection.close()
