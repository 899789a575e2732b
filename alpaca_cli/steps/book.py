"""``alpaca-md book``: watch one symbol's L2 book on the topic, as a ladder or NDJSON snapshots.

The step (:func:`watch_book`) reads the topic like ``tail`` (the invocation's one
:class:`~alpaca_cli.stream.TopicStream`, which keeps the L2 books) and every ``interval``
seconds hands a :func:`~alpaca_cli.live.ladder.snapshot` of the symbol's book to ``emit``. It
subscribes nothing: something else (``run``, or ``subscribe --channel orderbooks``) must have
the symbol's order book published on the topic.

A ``connected`` welcome on the topic means the upstream socket was reopened: the book is
marked stale (the spec: invalid until the next reset), and the snapshots say so until the next
``r:true`` arrives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alpaca_cli.runtime import Runtime

__all__ = ["BookResult", "watch_book"]


@dataclass(slots=True)
class BookResult:
    """How the watch ended."""

    topic: str
    symbol: str
    snapshots: int = 0
    updates: int = 0
    reconnects: int = 0
    reason: str = "end"
    """``count``, ``duration``, ``interrupted``, ``pipe-closed`` or ``end``."""


def watch_book(
    rt: Runtime,
    symbol: str,
    *,
    emit: Callable[[dict[str, Any]], None],
    depth: int,
    interval: float = 1.0,
    topic: str | None = None,
    count: int | None = None,
    duration: float | None = None,
    stop: threading.Event | None = None,
) -> BookResult:
    """Emit a snapshot of ``symbol``'s book every ``interval`` s until a limit or ``stop``.

    Raises:
        UsageError: a malformed symbol, or a non-positive depth, interval, count or duration.
        SidecarUnreachable, CredentialsRefused: from the bus.
    """
    from alpaca_cli.alpaca.messages import OrderBookUpdate, Success
    from alpaca_cli.config import validate_symbols
    from alpaca_cli.errors import UsageError
    from alpaca_cli.live.ladder import snapshot
    from alpaca_cli.steps.tail import resolve_topic
    from alpaca_cli.stream import POLL_INTERVAL

    validate_symbols([symbol], "SYMBOL", "symbol")
    if symbol == "*":
        raise UsageError("book shows one symbol's book: name it, e.g. BTC/USD (not *).")
    for name, value in (("--depth", depth), ("--interval", interval)):
        if not value > 0:
            raise UsageError(f"{name} {value:g}: give a positive number.")
    if count is not None and count < 1:
        raise UsageError(f"--count {count}: give a positive number of snapshots.")
    if duration is not None and not duration > 0:
        raise UsageError(f"--duration {duration:g}: give a positive number of seconds.")
    target = resolve_topic(rt, topic)
    stopping = stop if stop is not None else rt.stop
    stream = rt.stream(target)
    result = BookResult(topic=target, symbol=symbol)
    last_update: float | None = None
    try:
        stream.open()
        rt.progress(f"Watching the {symbol} book on topic {target} (Ctrl+C to stop)")
        started = time.monotonic()
        deadline = started + duration if duration is not None else None
        next_emit = started + interval
        while True:
            now = time.monotonic()
            if stopping.is_set():
                result.reason = "interrupted"
                break
            if deadline is not None and now >= deadline:
                result.reason = "duration"
                break
            if now >= next_emit:
                next_emit = now + interval
                age = None if last_update is None else now - last_update
                emit(
                    snapshot(
                        symbol,
                        stream.books.get(symbol),
                        depth=depth,
                        now_ns=time.time_ns(),
                        age=age,
                    )
                )
                result.snapshots += 1
                if count is not None and result.snapshots >= count:
                    result.reason = "count"
                    break
            wake = min(next_emit, deadline) if deadline is not None else next_emit
            try:
                item = stream.next(max(0.0, min(POLL_INTERVAL, wake - time.monotonic())))
            except EOFError:
                result.reason = "end"
                break
            if item is None:
                continue
            for msg in item.messages:
                if isinstance(msg, OrderBookUpdate) and msg.symbol == symbol:
                    result.updates += 1
                    last_update = time.monotonic()
                elif isinstance(msg, Success) and msg.msg == "connected":
                    # A new upstream socket: what we hold missed whatever came in between.
                    result.reconnects += 1
                    book = stream.books.get(symbol)
                    if book is not None:
                        book.invalidate()
    except KeyboardInterrupt:
        result.reason = "interrupted"
    except BrokenPipeError:
        result.reason = "pipe-closed"
    finally:
        stream.close()
    return result
