"""``alpaca-md tail``: print the Alpaca messages arriving on a topic, one line each.

The step (:func:`tail_topic`) consumes the topic through :class:`~alpaca_cli.stream.TopicStream`
(which keeps an L2 book per symbol, so order-book lines show the true best bid/ask) and writes:

* text (default): tab-separated ``time kind symbol ...`` with price/size/side for trades,
  bid/ask for quotes, best bid/ask and level counts for books (``no snapshot since tail
  started: ...`` until the book's first snapshot arrived, ``reset`` on a snapshot), OHLCV for
  bars; control
  messages are marked ``[success]``, ``[subscription]``, errors ``[error]``, undecodable
  frames ``[decode-error]``. The time is the message's own timestamp (RFC 3339 UTC) when it
  has one, else the receive time.
* ``--output json``: NDJSON, one raw Alpaca message per line with the frame's metadata.

It ends on ``--count`` / ``--duration`` (exit 0), Ctrl+C or SIGTERM (exit 130; buffered lines
are flushed first). stdout is flushed whenever the inbound queue drains, so a pipe sees lines
promptly even when Python block-buffers it. A reader that closes the pipe (``| head -1``) ends
the tail quietly with exit 0.

**A slow reader never makes the tail grow without bound.** Lines go to stdout through an
:class:`Outbox` of at most ``--max-buffer`` bytes (default :data:`DEFAULT_BUFFER`), written by a
thread of its own so the subscription keeps being drained. The policy when it is full is
*drop and count*: new messages are dropped (never blocked: blocking would only move the growth
into the subscription's queue, or make the sidecar redeliver) until the reader has caught up to
half the budget; each such episode starts with a warning that shows the lag (how far behind the
oldest unwritten line is) and ends with one that counts what was dropped, and the totals are in
the exit summary. On Ctrl+C/SIGTERM the unwritten rest gets :data:`DRAIN_ON_STOP` s.

A streaming subscription joins its sidecar's app id as a consumer group: beside a real sidecar
give ``tail`` an app id of its own (``dapr run --app-id alpaca-md-tail -- alpaca-md tail``),
or it splits the topic's messages with the other consumers of that app id.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TextIO

if TYPE_CHECKING:
    from alpaca_cli.alpaca.book import Books
    from alpaca_cli.alpaca.messages import Message
    from alpaca_cli.runtime import Runtime
    from alpaca_cli.stream import StreamItem, TopicStream

TYPE_ALIASES: Final[dict[str, frozenset[str]]] = {
    "trade": frozenset({"t"}),
    "quote": frozenset({"q"}),
    "book": frozenset({"o"}),
    "bar": frozenset({"b"}),
    "dailybar": frozenset({"d"}),
    "updatedbar": frozenset({"u"}),
    "bars": frozenset({"b", "d", "u"}),
    "success": frozenset({"success"}),
    "subscription": frozenset({"subscription"}),
    "error": frozenset({"error", "decode-error"}),
    "control": frozenset({"success", "subscription", "error", "decode-error"}),
}
"""``--type`` names -> wire ``T`` values. Plurals, channel names and ``T`` codes also work."""
_SYNONYMS: Final = {
    "trades": "trade",
    "t": "trade",
    "quotes": "quote",
    "q": "quote",
    "orderbook": "book",
    "orderbooks": "book",
    "books": "book",
    "o": "book",
    "b": "bar",
    "minutebar": "bar",
    "dailybars": "dailybar",
    "d": "dailybar",
    "updatedbars": "updatedbar",
    "u": "updatedbar",
    "errors": "error",
}
KIND_NAMES: Final = {
    "t": "trade",
    "q": "quote",
    "o": "book",
    "b": "bar",
    "d": "dailyBar",
    "u": "updatedBar",
}


DEFAULT_BUFFER: Final = 16 * 1024 * 1024
"""Bytes of output ``tail`` holds for a slow stdout reader (``--max-buffer``)."""
DRAIN_ON_STOP: Final = 2.0
"""Seconds the unwritten lines get after Ctrl+C/SIGTERM: the interrupt stays bounded even when
the reader has stopped reading."""


class Outbox:
    """Lines on their way to ``sink``: at most ``budget`` bytes, written by a thread of its own.

    Call :meth:`put` from the tail loop; it never blocks. When the budget is full it drops the
    lines and returns False, and it keeps dropping until the backlog is under half the budget
    (hysteresis: one warning per episode, not one per message). :meth:`close` waits for the rest.

    A sink with a file descriptor (the real stdout) gets ``os.write`` of bytes: a writer thread
    blocked on a reader that stopped holds no Python lock, so the process can still exit
    (a blocked ``sys.stdout.write`` would hang the interpreter's own flush at exit).

    Attributes ``dropped`` (lines), ``episodes``, ``peak`` (bytes held at most) and ``broken``
    (the reader closed the pipe) are for the summary and for tests.
    """

    def __init__(self, sink: TextIO, budget: int = DEFAULT_BUFFER) -> None:
        import os
        from collections import deque

        self.budget = budget
        self._sink = sink
        fd: int | None
        try:
            sink.flush()
            fd = sink.fileno()
        except (OSError, ValueError, AttributeError):
            fd = None
        self._fd = fd
        self._os_write = os.write
        self._queue: deque[tuple[bytes, int]] = deque()
        self._size = 0
        self._cond = threading.Condition()
        self._closing = False
        self.dropping = False
        """True from a drop until the backlog fell under half the budget."""
        self.dropped = 0
        self.episode_dropped = 0
        self.episodes = 0
        self.peak = 0
        self.broken = False
        self._thread = threading.Thread(target=self._run, name="tail stdout", daemon=True)
        self._thread.start()

    @property
    def size(self) -> int:
        """Bytes accepted and not yet written."""
        return self._size

    def lag(self) -> float:
        """Seconds since the oldest unwritten line was received (0 when all is written)."""
        with self._cond:
            oldest = self._queue[0][1] if self._queue else None
        return max(0.0, (time.time_ns() - oldest) / 1e9) if oldest is not None else 0.0

    def put(self, data: bytes, received_ns: int, lines: int) -> bool:
        """Queue ``data`` (``lines`` lines); False when dropped (see the class docstring).

        Raises:
            BrokenPipeError: the reader closed the pipe.
        """
        with self._cond:
            if self.broken:
                raise BrokenPipeError("stdout closed")
            if self.dropping and self._size <= self.budget // 2:
                self.dropping = False
            if self.dropping or (self._size and self._size + len(data) > self.budget):
                if not self.dropping:
                    self.dropping = True
                    self.episodes += 1
                    self.episode_dropped = 0
                self.dropped += lines
                self.episode_dropped += lines
                return False
            self._queue.append((data, received_ns))
            self._size += len(data)
            self.peak = max(self.peak, self._size)
            self._cond.notify_all()
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._closing)
                if not self._queue:
                    return
                batch = list(self._queue)
                self._queue.clear()
            data = b"".join(chunk for chunk, _ in batch)
            try:
                self._write(data)
            except (OSError, ValueError):  # BrokenPipeError included: the reader left
                with self._cond:
                    self.broken = True
                    self._size = 0
                    self._cond.notify_all()
                return
            with self._cond:
                self._size -= len(data)
                self._cond.notify_all()

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self._sink.write(data.decode("utf-8", "surrogateescape"))
            self._sink.flush()
            return
        view = memoryview(data)
        while view:
            written = self._os_write(self._fd, view)
            view = view[written:]

    def close(self, stop: threading.Event | None = None, *, timeout: float | None = None) -> bool:
        """Write what is queued; True when all of it was written.

        Waits until done, the reader left, ``timeout`` s passed, or (after ``stop`` was set)
        :data:`DRAIN_ON_STOP` s: the interrupt stays bounded with a reader that stopped.

        Raises:
            BrokenPipeError: the reader closed the pipe (the caller ends quietly).
        """
        from alpaca_cli.stream import POLL_INTERVAL

        with self._cond:
            self._closing = True
            self._cond.notify_all()
        start = time.monotonic()
        while self._thread.is_alive():
            self._thread.join(POLL_INTERVAL)
            waited = time.monotonic() - start
            if timeout is not None and waited >= timeout:
                break
            if stop is not None and stop.is_set() and waited >= DRAIN_ON_STOP:
                break
        if self.broken:
            raise BrokenPipeError("stdout closed")
        return not self._thread.is_alive()


SPLIT_HINT: Final = (
    "Another consumer of this topic shares the sidecar's app id: give tail an app id of its "
    "own (dapr run --app-id alpaca-md-tail -- alpaca-md tail), or use --bus gateway."
)


class TradeGaps:
    """Notices trade ids that skip, the visible sign that this tail gets only part of a topic.

    Beside a Dapr 1.16+ sidecar, two streams of one app id on one topic split its messages:
    each tail silently loses about half. Nothing in a frame says so, but trade ids do: a
    connection that numbers its trades consecutively (the embedded feed, one symbol on Alpaca)
    and then skips, over and over, is being shared. Judged per connection: only a source that
    has shown consecutive ids (at least :attr:`EVIDENCE` steps of +1) can be said to skip, so
    interleaved symbols with unrelated id sequences never warn. Warns once.
    """

    EVIDENCE: Final = 10
    SKIPS: Final = 10

    def __init__(self) -> None:
        self._last: dict[str | None, int] = {}
        self._steps: dict[str | None, list[int]] = {}
        self.warned = False

    def see(self, item: StreamItem) -> str | None:
        """The warning, the first time skips show; otherwise ``None``."""
        from alpaca_cli.alpaca.messages import Trade

        if self.warned:
            return None
        source = item.meta.websocket_id
        last = self._last.get(source)
        counts = self._steps.setdefault(source, [0, 0, 0])  # consecutive, skips, skipped ids
        for msg in item.messages:
            if type(msg) is not Trade or not isinstance(msg.id, int):
                continue
            if last is not None:
                if msg.id == last + 1:
                    counts[0] += 1
                elif msg.id > last + 1:
                    counts[1] += 1
                    counts[2] += msg.id - last - 1
            last = msg.id
        if last is not None:
            self._last[source] = last
        consecutive, skips, missing = counts
        if consecutive >= self.EVIDENCE and skips >= self.SKIPS and skips * 5 >= consecutive:
            self.warned = True
            return (
                f"trade ids skip ({skips} gaps, {missing} trades missing so far): this tail "
                f"sees only part of the topic. {SPLIT_HINT}"
            )
        return None


@dataclass(slots=True)
class TailResult:
    """How a tail ended and what it saw."""

    topic: str
    lines: int = 0
    frames: int = 0
    messages: int = 0
    decode_errors: int = 0
    dropped: int = 0
    """Lines dropped because stdout did not keep up (see :class:`Outbox`)."""
    peak_buffer: int = 0
    """Most bytes of output held at once (at most ``--max-buffer``)."""
    unwritten: int = 0
    """Bytes still unwritten when the tail ended (a reader that stopped reading)."""
    reason: str = "end"
    """``count``, ``duration``, ``interrupted``, ``pipe-closed`` or ``end`` (stream closed)."""

    def saw(self, item: StreamItem) -> None:
        """Count one published frame off the topic (printed or filtered out)."""
        self.frames += 1
        self.messages += len(item.messages)
        if item.error is not None:
            self.decode_errors += 1


def parse_types(values: Sequence[str]) -> frozenset[str] | None:
    """``--type`` values -> the wire ``T`` values to keep (``None``: keep everything).

    Raises:
        UsageError: an unknown type name.
    """
    from alpaca_cli.errors import UsageError

    if not values:
        return None
    kept: set[str] = set()
    for raw in values:
        for part in raw.split(","):
            name = part.strip().lower().replace("_", "").replace("-", "")
            if not name:
                continue
            name = _SYNONYMS.get(name, name)
            if name not in TYPE_ALIASES:
                raise UsageError(
                    f"--type {part.strip()!r} is not a message type.",
                    hint=f"Use one of {', '.join(TYPE_ALIASES)} (or trades, quotes, orderbooks…).",
                )
            kept |= TYPE_ALIASES[name]
    return frozenset(kept) or None


def _num(value: float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def make_formatter(
    books: Books,
    *,
    json_lines: bool,
    symbols: frozenset[str] | None = None,
    types: frozenset[str] | None = None,
) -> Callable[[StreamItem], list[bytes]]:
    """A function turning one stream item into its output lines, UTF-8 (filters applied).

    Built once per tail so the per-message path is closures and local lookups only.
    """
    import msgspec
    import orjson

    from alpaca_cli.alpaca.codec import to_wire
    from alpaca_cli.alpaca.messages import (
        Bar,
        Error,
        OrderBookUpdate,
        Quote,
        Subscription,
        Success,
        Trade,
        Unknown,
    )
    from alpaca_cli.alpaca.timestamps import format_rfc3339

    # No filter, the usual tail: JSON lines skip the keep() call per message (about 0.1 us).
    keep_all = types is None and symbols is None

    def keep(msg: Message) -> bool:
        if types is not None and msg.T not in types:
            return False
        if symbols is not None:
            symbol = getattr(msg, "symbol", None)
            if symbol is not None and symbol not in symbols:
                return False
        return True

    def text_line(msg: Message, received: str) -> str:
        if isinstance(msg, Trade):
            side = {"B": "buy", "S": "sell"}.get(msg.taker_side or "", msg.taker_side or "-")
            return (
                f"{format_rfc3339(msg.timestamp)}\ttrade\t{msg.symbol}\t"
                f"{_num(msg.price)}\t{_num(msg.size)}\t{side}\n"
            )
        if isinstance(msg, Quote):
            return (
                f"{format_rfc3339(msg.timestamp)}\tquote\t{msg.symbol}\t"
                f"bid {_num(msg.bid_price)} x {_num(msg.bid_size)}\t"
                f"ask {_num(msg.ask_price)} x {_num(msg.ask_size)}\n"
            )
        if isinstance(msg, OrderBookUpdate):
            book = books.get(msg.symbol)
            bid = book.best_bid if book is not None else None
            ask = book.best_ask if book is not None else None
            nb, na = book.depth if book is not None else (0, 0)
            # Said plainly: a book seen only through deltas is not the book.
            if msg.reset:
                mark = "\treset"
            elif book is not None and book.valid:
                mark = ""
            elif book is not None and book.resets:
                mark = "\tstale: no snapshot since the reconnect"
            else:
                mark = "\tno snapshot since tail started: levels from updates only"
            return (
                f"{format_rfc3339(msg.timestamp)}\tbook\t{msg.symbol}\t"
                f"bid {_num(bid[0]) if bid else '-'}\task {_num(ask[0]) if ask else '-'}\t"
                f"{nb}/{na} levels{mark}\n"
            )
        if isinstance(msg, Bar):
            return (
                f"{format_rfc3339(msg.timestamp)}\t{KIND_NAMES.get(msg.kind, 'bar')}\t"
                f"{msg.symbol}\to {_num(msg.open)}\th {_num(msg.high)}\tl {_num(msg.low)}\t"
                f"c {_num(msg.close)}\tv {_num(msg.volume)}\n"
            )
        if isinstance(msg, Success):
            return f"{received}\t[success]\t{msg.msg}\n"
        if isinstance(msg, Subscription):
            channels = "\t".join(
                f"{ch}: {','.join(syms)}" for ch, syms in msg.channels().items() if syms
            )
            return f"{received}\t[subscription]\t{channels or '(none)'}\n"
        if isinstance(msg, Error):
            return f"{received}\t[error]\t{msg.code} {msg.msg}\n"
        assert isinstance(msg, Unknown)
        return f"{received}\t[unknown T={msg.T}]\t{orjson.dumps(msg.raw).decode()}\n"

    raws_of = msgspec.json.Decoder(list[msgspec.Raw]).decode

    def wire_messages(item: StreamItem) -> Sequence[bytes | msgspec.Raw]:
        """Each message of the frame as JSON bytes: its own wire bytes when it can be.

        A compact JSON frame (no line break anywhere: JSON never needs one inside a value) is
        cut into its messages as they arrived, which costs a scan instead of a parse and an
        encode. Anything else (msgpack, a pretty-printed frame) is written afresh.
        """
        payload = item.payload
        array = payload[:1] == b"["
        if array and b"\n" not in payload and b"\r" not in payload:
            try:
                raws = raws_of(payload)
            except msgspec.DecodeError:
                raws = None
            if raws is not None and len(raws) == len(item.messages):
                return raws
        try:
            objects = orjson.loads(payload) if array else None
        except orjson.JSONDecodeError:
            objects = None
        if not (isinstance(objects, list) and len(objects) == len(item.messages)):
            objects = [
                msg.raw if isinstance(msg, Unknown) else to_wire(msg, "json")
                for msg in item.messages
            ]
        return [orjson.dumps(obj) for obj in objects]

    def error_lines(item: StreamItem, received: str, error: str) -> list[bytes]:
        if types is not None and "decode-error" not in types:
            return []
        if json_lines:
            doc = {
                "received_at": received,
                "frame": item.meta.to_json(),
                "error": error,
                "payload": item.payload.decode("utf-8", errors="replace"),
            }
            return [orjson.dumps(doc) + b"\n"]
        return [f"{received}\t[decode-error]\t{error}\n".encode("utf-8", "surrogateescape")]

    def format_item(item: StreamItem) -> list[bytes]:
        received = format_rfc3339(item.received_ns)
        if item.error is not None:
            return error_lines(item, received, item.error)
        try:
            return message_lines(item, received)
        except (orjson.JSONEncodeError, RecursionError) as exc:
            # orjson decodes 1024 levels of nesting but encodes only 254: a hostile or broken
            # frame decodes, then cannot be written back. It is one bad frame, not a crash.
            return error_lines(item, received, f"cannot re-encode the frame as JSON ({exc})")

    def message_lines(item: StreamItem, received: str) -> list[bytes]:
        if json_lines:
            # '{"received_at":...,"frame":{...}' once per frame, then each message and '}'.
            head = orjson.dumps({"received_at": received, "frame": item.meta.to_json()})
            head = head[:-1] + b',"message":'
            wires = wire_messages(item)
            if keep_all:
                return [head + wire + b"}\n" for wire in wires]
            return [
                head + wire + b"}\n"
                for msg, wire in zip(item.messages, wires, strict=False)
                if keep(msg)
            ]
        return [
            text_line(msg, received).encode("utf-8", "surrogateescape")
            for msg in item.messages
            if keep(msg)
        ]

    return format_item


def resolve_topic(rt: Runtime, topic: str | None) -> str:
    """``--topic``/env when given, else the topic ``publish`` recorded, else the settings'."""
    if topic:
        return topic
    source = rt.config.sources.get("topic", "default")
    if source == "default" or source.startswith("settings "):
        state = rt.store.read()
        if state is not None and state.publish_topic:
            return state.publish_topic
    return rt.config.topic


def tail_topic(
    rt: Runtime,
    *,
    topic: str | None = None,
    count: int | None = None,
    duration: float | None = None,
    symbols: Sequence[str] = (),
    types: Sequence[str] = (),
    json_lines: bool = False,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
    max_buffer: int = DEFAULT_BUFFER,
    on_idle: Callable[[], None] | None = None,
) -> TailResult:
    """Stream a topic to ``out`` until a limit, ``stop``, Ctrl+C or the end of the stream.

    KeyboardInterrupt (Ctrl+C, or SIGTERM turned into it by the command) ends the tail with
    reason ``interrupted`` after flushing; the caller decides the exit code.

    Raises:
        UsageError: bad ``--type``, ``--count`` or ``--duration``.
        SidecarUnreachable, CredentialsRefused: from the pub/sub client.
    """
    from alpaca_cli.errors import UsageError
    from alpaca_cli.output import silence_stdout
    from alpaca_cli.stream import POLL_INTERVAL

    if count is not None and count < 1:
        raise UsageError(f"--count {count}: give a positive number of messages.")
    if duration is not None and not duration > 0:
        raise UsageError(f"--duration {duration:g}: give a positive number of seconds.")
    if max_buffer < 4096:
        raise UsageError(f"--max-buffer {max_buffer}: give at least 4096 bytes.")
    kept_types = parse_types(types)
    if symbols:
        # A typo would otherwise filter out everything and the tail would look dead.
        from alpaca_cli.config import validate_symbols

        validate_symbols(symbols, "--symbol", "symbol")
    kept_symbols = None if "*" in symbols else frozenset(symbols) or None
    target = resolve_topic(rt, topic)
    sink = out if out is not None else sys.stdout
    stopping = stop if stop is not None else rt.stop
    stream = _open(rt, target)
    formatter = make_formatter(
        stream.books, json_lines=json_lines, symbols=kept_symbols, types=kept_types
    )
    result = TailResult(topic=target)
    outbox: Outbox | None = None
    gaps = TradeGaps()
    try:
        stream.open()
        rt.progress(f"Tailing topic {target} (Ctrl+C to stop)")
        outbox = Outbox(sink, max_buffer)
        deadline = time.monotonic() + duration if duration is not None else None
        try:
            while True:
                if stopping.is_set():
                    result.reason = "interrupted"
                    break
                wait = POLL_INTERVAL
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        result.reason = "duration"
                        break
                    wait = min(wait, remaining)
                try:
                    item = stream.next(wait)
                except EOFError:
                    result.reason = "end"
                    break
                if item is None:
                    if on_idle is not None:
                        on_idle()
                    continue
                result.saw(item)
                if not gaps.warned:
                    warning = gaps.see(item)
                    if warning is not None:
                        rt.warn(warning)
                lines = formatter(item)
                if not lines:
                    continue
                done = count is not None and result.lines + len(lines) >= count
                if done:
                    assert count is not None
                    lines = lines[: count - result.lines]
                was_dropping = outbox.dropping
                if outbox.put(b"".join(lines), item.received_ns, len(lines)):
                    result.lines += len(lines)
                    if was_dropping:
                        rt.warn(
                            f"stdout caught up; dropped {outbox.episode_dropped} messages "
                            f"meanwhile ({outbox.dropped} in all)"
                        )
                elif not was_dropping:
                    rt.warn(
                        f"stdout is not keeping up: {outbox.size} bytes buffered "
                        f"(--max-buffer {max_buffer}), {outbox.lag():.1f} s behind; dropping "
                        "messages until it catches up"
                    )
                if done:
                    result.reason = "count"
                    break
        except KeyboardInterrupt:
            result.reason = "interrupted"
        finally:
            try:
                if not outbox.close(stopping if result.reason == "interrupted" else None):
                    result.unwritten = outbox.size
            except BrokenPipeError:
                result.reason = "pipe-closed"
                silence_stdout(sink)
    except BrokenPipeError:
        result.reason = "pipe-closed"
        silence_stdout(sink)
    finally:
        if outbox is not None:
            result.dropped, result.peak_buffer = outbox.dropped, outbox.peak
        stream.close()
    return result


def _open(rt: Runtime, topic: str) -> TopicStream:
    """Subscribe; a sidecar that allows one stream per topic (Dapr 1.14/1.15) refuses a second
    one: say why and what to do, on one line (exit 5, the platform refused)."""
    from alpaca_cli.errors import CommandRefused

    try:
        return rt.stream(topic)
    except CommandRefused as exc:
        if "already subscribed" not in exc.message:
            raise
        raise CommandRefused(
            f"The sidecar refused a second subscription to topic {topic!r}: another tail "
            "or run already streams it through this sidecar.",
            status=exc.status,
            hint=SPLIT_HINT,
        ) from exc
