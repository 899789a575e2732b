"""A bench-only Alpaca-shaped WebSocket server that sends pre-encoded frames in a tight loop.

The end-to-end ceiling must not be capped by the feed. ``dev feed`` generates its market in
Python as it goes, so what a plain client reads from it is the feed's own generation rate. This
server encodes its frames once, at start-up, answers the Alpaca handshake (``connected``, auth,
subscribe), then writes the same frames round and round as fast as the socket drains: its only
per-frame cost is WebSocket framing. Run it as ``python -m bench.wsfeed --frame-messages N``; it
prints its URL, serves until stdin closes or SIGINT/SIGTERM, and serves any number of clients.

With ``--rate R`` it is the end-to-end ladder's source instead: the same messages, offered at
``R`` messages/s in frames of ``--frame-messages``, each ``t`` stamped when its frame is sent
(the last message at the send time, those before it 1 ns apart, as ``dev feed`` does) and
trades numbered ``2**53 + 1, 2, 3 ...`` per connection, so the consumer can measure latency
and count losses. The messages are encoded once, with holes where ``t`` and the trade id go:
a frame costs a join, not a market simulation and an encode, so the source is never what
limits the pipeline (``dev feed`` spends about 5 us of its own core on each message).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from typing import Any

import orjson

from alpaca_cli.alpaca.timestamps import format_rfc3339
from alpaca_cli.devstack.feed.market import TRADE_ID_BASE
from bench.frames import generate

__all__ = ["Templates", "build_frames", "main"]

_TICK = 0.01
"""Seconds between paced sends (``dev feed``'s default tick)."""


def build_frames(frame_messages: int, messages: int = 20_000) -> list[bytes]:
    """The generated stream of :mod:`bench.frames`, re-packed ``frame_messages`` to a frame."""
    flat = _messages(messages)
    step = max(1, frame_messages)
    return [orjson.dumps(flat[i : i + step]) for i in range(0, len(flat), step)]


def _messages(count: int) -> list[Any]:
    """The messages of :mod:`bench.frames`' generated stream, as JSON objects, in order."""
    return [m for frame in generate(count).json_frames for m in orjson.loads(frame)]


class Templates:
    """The generated messages as ``%``-format templates with holes for ``t`` and a trade's ``i``.

    Message ``k`` is ``(holes, template)``: 0 holes for a bar (it keeps its own minute: the
    ladder does not time bars), 2 for a quote or book (the second's text, the nanoseconds), 3
    for a trade (and its id). Filling one is a single ``bytes % tuple``.
    """

    def __init__(self, messages: int = 20_000) -> None:
        hole_t, hole_i = "@T@", 7_777_777_777_777_777_777
        self.parts: list[tuple[int, bytes]] = []
        for msg in _messages(messages):
            kind = msg.get("T")
            if kind not in ("t", "q", "o"):
                self.parts.append((0, orjson.dumps(msg)))
                continue
            msg["t"] = hole_t
            if kind == "t":
                msg["i"] = hole_i
            text = orjson.dumps(msg).replace(b"%", b"%%").replace(b"@T@", b"%s%09dZ")
            self.parts.append((3 if kind == "t" else 2, text.replace(b"%d" % hole_i, b"%d")))
        self.next = 0

    def frame(self, count: int, now_ns: int, trade_id: int) -> tuple[bytes, int]:
        """The next ``count`` messages as one frame, timed up to ``now_ns``; trade ids continue
        after ``trade_id``. Returns the frame and the last trade id used."""
        parts, n, k = self.parts, len(self.parts), self.next
        out: list[bytes] = []
        add = out.append
        second, frac = divmod(now_ns - count + 1, 1_000_000_000)
        head = _head(second)
        for _ in range(count):
            holes, template = parts[k]
            k = k + 1 if k + 1 < n else 0
            if not holes:
                add(template)
                continue
            if frac == 1_000_000_000:  # the frame straddles a second
                second, frac = second + 1, 0
                head = _head(second)
            if holes == 3:
                trade_id += 1
                add(template % (head, frac, trade_id))
            else:
                add(template % (head, frac))
            frac += 1
        self.next = k
        return b"[" + b",".join(out) + b"]", trade_id


def _head(second: int) -> bytes:
    """``YYYY-MM-DDTHH:MM:SS.`` of ``second``, the part of ``t`` a frame's messages share."""
    return format_rfc3339(second * 1_000_000_000)[:-1].encode() + b"."


async def _serve(
    frames: list[bytes], port: int, rate: float | None = None, frame_messages: int = 500
) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def answer(ws: ServerConnection, subscribed: asyncio.Event) -> None:
        authenticated = False
        async for _ in ws:  # auth first (any key will do), then any number of subscribes
            if not authenticated:
                authenticated = True
                await ws.send(b'[{"T":"success","msg":"authenticated"}]', text=True)
                continue
            # Whatever it asks, it gets the whole stream.
            await ws.send(b'[{"T":"subscription","trades":["*"],"quotes":["*"],'
                          b'"orderbooks":["*"]}]', text=True)  # fmt: skip
            subscribed.set()

    async def paced(ws: ServerConnection, rate: float) -> None:
        templates, trade_id = Templates(), TRADE_ID_BASE
        loop = asyncio.get_running_loop()
        debt, last = 0.0, loop.time()
        while True:
            now = loop.time()
            debt = min(rate, debt + rate * (now - last))  # at most one second behind
            last = now
            while debt >= 1:
                count = min(int(debt), frame_messages)
                frame, trade_id = templates.frame(count, time.time_ns(), trade_id)
                await ws.send(frame, text=True)
                debt -= count
            await asyncio.sleep(_TICK)

    async def handler(ws: ServerConnection) -> None:
        await ws.send(b'[{"T":"success","msg":"connected"}]', text=True)
        subscribed = asyncio.Event()
        reader = asyncio.create_task(answer(ws, subscribed))
        with contextlib.suppress(Exception):  # the client leaving ends the loop
            await subscribed.wait()
            if rate is not None:
                await paced(ws, rate)
            while True:
                for frame in frames:
                    await ws.send(frame, text=True)
        reader.cancel()

    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not stop.done():
            stop.set_result(None)

    def on_stdin() -> None:
        if not sys.stdin.read(1):  # EOF: whoever started us is done
            finish()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, finish)
    loop.add_reader(sys.stdin.fileno(), on_stdin)
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=None) as server:
        sock_port = next(iter(server.sockets)).getsockname()[1]
        sys.stdout.write(f"ws://127.0.0.1:{sock_port}\n")
        sys.stdout.flush()
        await stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wsfeed", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--frame-messages", type=int, default=500)
    parser.add_argument("--rate", type=float, default=None, help="paced messages/s (see above)")
    args = parser.parse_args(argv)
    asyncio.run(
        _serve(build_frames(args.frame_messages), args.port, args.rate, args.frame_messages)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
