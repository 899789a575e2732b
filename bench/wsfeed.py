"""A bench-only Alpaca-shaped WebSocket server that sends pre-encoded frames in a tight loop.

The end-to-end ceiling must not be capped by the feed. ``dev feed`` generates its market in
Python as it goes, so what a plain client reads from it is the feed's own generation rate. This
server encodes its frames once, at start-up, answers the Alpaca handshake (``connected``, auth,
subscribe), then writes the same frames round and round as fast as the socket drains: its only
per-frame cost is WebSocket framing. Run it as ``python -m bench.wsfeed --frame-messages N``; it
prints its URL, serves until stdin closes or SIGINT/SIGTERM, and serves any number of clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

import orjson

from bench.frames import generate

__all__ = ["build_frames", "main"]


def build_frames(frame_messages: int, messages: int = 20_000) -> list[bytes]:
    """The generated stream of :mod:`bench.frames`, re-packed ``frame_messages`` to a frame."""
    w = generate(messages)
    flat: list[Any] = [m for f in w.json_frames for m in orjson.loads(f)]
    step = max(1, frame_messages)
    return [orjson.dumps(flat[i : i + step]) for i in range(0, len(flat), step)]


async def _serve(frames: list[bytes], port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        await ws.send(b'[{"T":"success","msg":"connected"}]', text=True)
        await ws.recv()  # auth: any key will do
        await ws.send(b'[{"T":"success","msg":"authenticated"}]', text=True)
        await ws.recv()  # subscribe: whatever it asks, it gets the whole stream
        await ws.send(b'[{"T":"subscription","trades":["*"],"quotes":["*"],"orderbooks":["*"]}]',
                      text=True)  # fmt: skip
        with contextlib.suppress(Exception):  # the client leaving ends the loop
            while True:
                for frame in frames:
                    await ws.send(frame, text=True)

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
    args = parser.parse_args(argv)
    asyncio.run(_serve(build_frames(args.frame_messages), args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
