"""A pure model of the stream ``run`` watches: per-symbol counts, rates, latency, books.

Why a model: the live table, the plain summary lines and the ``--report`` JSON are three views of
the same numbers, and the stream may deliver thousands of messages per second while the views
redraw a few times per second. Recording a frame is cheap (counters and one bucket add per
symbol); everything derived (rates, age, spread) is computed only when a view asks.

No clocks in here: callers pass ``now`` (monotonic seconds, for rates and ages) and
``received_ns`` (wall-clock nanoseconds, compared with the messages' own timestamps for latency).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from alpaca_cli.alpaca.book import Books, OrderBook
from alpaca_cli.alpaca.messages import (
    Bar,
    Error,
    Message,
    OrderBookUpdate,
    Quote,
    Subscription,
    Success,
    Trade,
)

__all__ = [
    "LONG_WINDOW",
    "SHORT_WINDOW",
    "LatencySamples",
    "RateWindow",
    "RunInfo",
    "StreamStats",
    "SymbolRow",
    "SymbolStats",
]

SHORT_WINDOW = 5.0
"""Seconds of the short message-rate window (what is happening now)."""
LONG_WINDOW = 60.0
"""Seconds of the long message-rate window (the trend)."""
BUCKET = 0.5
"""Width in seconds of one rate bucket: the rates' time resolution."""

CHANNEL_OF_KIND = {
    "t": "trades",
    "q": "quotes",
    "b": "bars",
    "d": "dailyBars",
    "u": "updatedBars",
    "o": "orderbooks",
}
"""Wire ``T`` -> the channel it is subscribed as (the report counts per channel)."""
LATENCY_SAMPLES = 10_000
"""Latencies kept per symbol for the percentiles: a uniform reservoir beyond this many, so a
day-long run costs the same memory as a minute-long one."""


@dataclass(slots=True)
class RunInfo:
    """The header of the views: where the stream runs. ``run`` updates it as steps complete."""

    gateway: str = ""
    worker_id: str | None = None
    worker_status: str | None = None
    connection_id: str | None = None
    connection_status: str | None = None
    topic: str | None = None
    phase: str = "starting"
    """What ``run`` is doing: a step name, ``streaming``, ``re-handshake``, ``stalled``..."""


class RateWindow:
    """Message counts in fixed-width time buckets on a ring, for rates over recent windows.

    ``add`` is O(1) (plus clearing the buckets skipped since the last call); ``rate`` sums at
    most ``span / width`` buckets. Times must not go backwards by more than one bucket.
    """

    __slots__ = ("_buckets", "_head", "_start", "_width")

    def __init__(self, span: float = LONG_WINDOW, width: float = BUCKET, *, start: float) -> None:
        self._width = width
        self._buckets = [0] * (math.ceil(span / width) + 1)
        self._head = math.floor(start / width)
        """Index (time // width) of the newest bucket."""
        self._start = start

    def _advance(self, now: float) -> int:
        index = math.floor(now / self._width)
        gap = index - self._head
        if gap > 0:
            size = len(self._buckets)
            if gap >= size:
                self._buckets = [0] * size
            else:
                for i in range(self._head + 1, index + 1):
                    self._buckets[i % size] = 0
            self._head = index
        return index

    def restart(self, now: float) -> None:
        """Forget everything and start measuring at ``now`` (the stream starts streaming).

        Without this, a window created when ``run`` started would count the deploy and connect
        steps as silent seconds and understate every rate for its first minute.
        """
        self._buckets = [0] * len(self._buckets)
        self._head = math.floor(now / self._width)
        self._start = now

    def add(self, now: float, count: int = 1) -> None:
        """Count ``count`` messages received at ``now``."""
        index = self._advance(now)
        if index < self._head - len(self._buckets) + 1:
            return  # older than the ring: forget it
        self._buckets[index % len(self._buckets)] += count

    def rate(self, now: float, window: float) -> float:
        """Messages per second over the last ``window`` seconds (or since start, if shorter)."""
        self._advance(now)
        size = len(self._buckets)
        n = min(size - 1, max(1, math.ceil(window / self._width)))
        total = sum(self._buckets[(self._head - i) % size] for i in range(n))
        # The newest bucket is partly elapsed: the covered time ends at ``now``.
        covered = (n - 1) * self._width + (now - self._head * self._width)
        covered = min(covered, now - self._start)
        if covered <= 0:
            return 0.0
        return total / covered


class LatencySamples:
    """Latencies for percentiles: every sample up to ``size``, then a uniform reservoir.

    Reservoir sampling (Vitter's algorithm R) with a seeded generator: bounded memory whatever
    the run's length, and the same samples for the same input (tests stay deterministic).
    """

    __slots__ = ("_rng", "_seen", "_size", "samples")

    def __init__(self, size: int = LATENCY_SAMPLES) -> None:
        self._size = size
        self._seen = 0
        self._rng = random.Random(0)
        self.samples: list[float] = []

    def add(self, value: float) -> None:
        self._seen += 1
        if len(self.samples) < self._size:
            self.samples.append(value)
            return
        slot = self._rng.randrange(self._seen)
        if slot < self._size:
            self.samples[slot] = value

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100, nearest rank), ``None`` without samples."""
        return percentile(self.samples, q)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of ``values`` (``None`` when empty): no interpolation, so the
    answer is always a latency that was really measured."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(slots=True)
class SymbolStats:
    """What arrived for one symbol. ``frames`` counts data messages (the smoke-check unit)."""

    symbol: str
    rates: RateWindow
    frames: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    last_kind: str | None = None
    last_trade: tuple[float, float, str | None] | None = None
    """(price, size, taker side) of the last trade."""
    last_quote: tuple[float, float] | None = None
    """(bid, ask) of the last quote, shown when there is no book."""
    last_close: float | None = None
    first_seen: float | None = None
    last_seen: float | None = None
    """``now`` of the last data message."""
    latency: float | None = None
    """Seconds between the last message's own timestamp and its receipt."""
    first_latency: float | None = None
    """Latency of the first data message: how long the stream took to deliver anything."""
    latencies: LatencySamples = field(default_factory=LatencySamples)
    decimals: int = 0
    """Most decimals seen in this symbol's prices: the table shows all its prices so."""
    longest_gap: float = 0.0
    """Longest silence between two data messages of this symbol (seconds)."""
    stale_since: float | None = None
    """``now`` at which its book went stale (a reconnect), until the next reset."""
    stale_seconds: float = 0.0
    """Seconds its book spent stale, closed periods only (see :meth:`StreamStats.stale_for`)."""


@dataclass(frozen=True, slots=True)
class SymbolRow:
    """One symbol as the views show it, computed at ``now``."""

    symbol: str
    frames: int
    counts: dict[str, int]
    rate_short: float
    rate_long: float
    last_kind: str | None
    last_trade: tuple[float, float, str | None] | None
    best_bid: float | None
    best_ask: float | None
    spread: float | None
    levels: tuple[int, int] | None
    book_valid: bool | None
    age: float | None
    latency: float | None
    first_latency: float | None
    decimals: int = 0
    """Decimals to show this symbol's prices with (the most seen for it)."""


class StreamStats:
    """The whole stream: per-symbol stats, L2 books, control messages, errors, reconnects.

    Example::

        stats = StreamStats(start=monotonic())   # books=..., apply_books=False to share them
        stats.expect(["BTC/USD", "ETH/USD"])        # rows for subscribed symbols, even at 0
        stats.record(decode(payload), now=monotonic(), received_ns=time_ns())
        rows = stats.rows(monotonic())
    """

    def __init__(
        self, *, start: float, books: Books | None = None, apply_books: bool = True
    ) -> None:
        self.start = start
        self.symbols: dict[str, SymbolStats] = {}
        self.books = books if books is not None else Books()
        """The L2 books the views read best bid/ask and levels from."""
        self._apply_books = apply_books
        """False when someone else (the topic consumer) already applies updates to ``books``."""
        self.channels: tuple[str, ...] = ()
        """The subscribed channels (``run`` sets them): the table hides what cannot apply."""
        self.expected: tuple[str, ...] = ()
        """The confirmed subscription's symbols: these must get data (``--min-frames``)."""
        self.frames_received = 0
        """Published frames (CloudEvents) seen on the topic."""
        self.data_messages = 0
        self.control_messages = 0
        self.decode_errors = 0
        self.errors = 0
        """Alpaca error messages plus decode errors plus anything :meth:`note_error` counted."""
        self.error_log: list[str] = []
        """The most recent error descriptions (bounded), newest last."""
        self.reconnects = 0
        self.stalls = 0
        """Times the stream went silent beyond the stall limit (``run --fail-on-stall``)."""
        self.resumed = 0
        """Reconnects after which data flowed again: proof that the re-handshake healed it."""
        self._awaiting_resume = False
        self.last_control: str | None = None
        self.last_data: float | None = None
        self.rates = RateWindow(start=start)
        self.streaming_start: float | None = None
        """``now`` at which the stream loop started (rates are per streaming second)."""
        self.streaming_end: float | None = None
        """``now`` at which it ended; ``None`` while it runs."""

    def begin_streaming(self, now: float) -> None:
        """The stream loop starts: rates, uptime and time-to-first-data count from here.

        ``run`` spends seconds deploying and connecting before any data can flow; dividing by
        the whole run time made a 20/s stream read 16.7/s in a 10 s run.
        """
        self.streaming_start = now
        self.streaming_end = None
        self.rates.restart(now)
        for stats in self.symbols.values():
            stats.rates.restart(now)

    def end_streaming(self, now: float) -> None:
        """The stream loop ended: the streaming time stops growing."""
        if self.streaming_start is not None and self.streaming_end is None:
            self.streaming_end = now

    def streaming_time(self, now: float) -> float:
        """Seconds spent streaming up to ``now`` (since ``start`` if streaming never began)."""
        begin = self.streaming_start if self.streaming_start is not None else self.start
        end = self.streaming_end if self.streaming_end is not None else now
        return max(0.0, min(end, now) - begin)

    def time_to_first_data(self, symbol: str | None = None) -> float | None:
        """Seconds from the start of streaming to the first data message (of ``symbol``)."""
        begin = self.streaming_start if self.streaming_start is not None else self.start
        if symbol is None:
            firsts = [s.first_seen for s in self.symbols.values() if s.first_seen is not None]
            first = min(firsts) if firsts else None
        else:
            first = self.symbols[symbol].first_seen if symbol in self.symbols else None
        return None if first is None else max(0.0, first - begin)

    def gap_of(self, symbol: str, now: float) -> float:
        """The longest silence of ``symbol`` so far: between two messages, before the first
        one, or since the last one (the silence still going on counts too)."""
        stats = self._symbol(symbol)
        begin = self.streaming_start if self.streaming_start is not None else self.start
        end = self.streaming_end if self.streaming_end is not None else now
        trailing = end - (stats.last_seen if stats.last_seen is not None else begin)
        return max(stats.longest_gap, trailing, 0.0)

    def stale_for(self, symbol: str, now: float) -> float:
        """Seconds the book of ``symbol`` was stale, the open period up to ``now`` included."""
        stats = self._symbol(symbol)
        end = self.streaming_end if self.streaming_end is not None else now
        open_period = 0.0 if stats.stale_since is None else max(0.0, end - stats.stale_since)
        return stats.stale_seconds + open_period

    def latency_percentile(self, q: float, symbol: str | None = None) -> float | None:
        """The ``q``-th latency percentile of one symbol, or of all of them together."""
        if symbol is not None:
            return self._symbol(symbol).latencies.percentile(q)
        return percentile([v for s in self.symbols.values() for v in s.latencies.samples], q)

    def channel_counts(self, symbol: str | None = None) -> dict[str, int]:
        """Data messages per channel (``trades``, ``orderbooks``...), of one symbol or all."""
        chosen = [self.symbols[symbol]] if symbol in self.symbols else []
        if symbol is None:
            chosen = list(self.symbols.values())
        totals: dict[str, int] = {}
        for stats in chosen:
            for kind, n in stats.counts.items():
                name = CHANNEL_OF_KIND.get(kind, kind)
                totals[name] = totals.get(name, 0) + n
        return dict(sorted(totals.items()))

    # -- recording ------------------------------------------------------------------------------

    def expect(self, symbols: Iterable[str]) -> None:
        """Show these symbols from now on (the confirmed subscription), data or not."""
        self.expected = tuple(dict.fromkeys(s for s in symbols if s != "*"))
        for symbol in self.expected:
            self._symbol(symbol)

    def _symbol(self, symbol: str) -> SymbolStats:
        stats = self.symbols.get(symbol)
        if stats is None:
            begin = self.streaming_start if self.streaming_start is not None else self.start
            stats = self.symbols[symbol] = SymbolStats(symbol, RateWindow(start=begin))
        return stats

    def record(self, messages: Sequence[Message], *, now: float, received_ns: int) -> None:
        """Account one published frame's decoded messages, received at ``now``/``received_ns``."""
        self.frames_received += 1
        data = 0
        for msg in messages:
            if isinstance(msg, (Trade, Quote, Bar, OrderBookUpdate)):
                data += 1
                self._data(msg, now, received_ns)
            elif isinstance(msg, (Success, Subscription, Error)):
                self.control_messages += 1
                self.last_control = describe_control(msg)
                if isinstance(msg, Error):
                    self.note_error(self.last_control)
        if data:
            self.data_messages += data
            if self._awaiting_resume:
                self._awaiting_resume = False
                self.resumed += 1
            self.last_data = now
            self.rates.add(now, data)

    def _data(
        self, msg: Trade | Quote | Bar | OrderBookUpdate, now: float, received_ns: int
    ) -> None:
        stats = self._symbol(msg.symbol)
        kind = msg.T
        stats.frames += 1
        stats.counts[kind] = stats.counts.get(kind, 0) + 1
        stats.last_kind = kind
        stats.rates.add(now)
        if stats.first_seen is None:
            stats.first_seen = now
        elif stats.last_seen is not None and now - stats.last_seen > stats.longest_gap:
            stats.longest_gap = now - stats.last_seen
        stats.last_seen = now
        latency = (received_ns - msg.timestamp) / 1e9
        if isinstance(msg, Bar):
            # A bar's timestamp is its start, not when it was sent: no latency from it.
            stats.last_close = msg.close
        else:
            stats.latency = latency
            stats.latencies.add(latency)
            if stats.first_latency is None:
                stats.first_latency = latency
        _note_decimals(stats, msg)
        if isinstance(msg, OrderBookUpdate):
            if msg.reset and stats.stale_since is not None:
                stats.stale_seconds += max(0.0, now - stats.stale_since)
                stats.stale_since = None
            if self._apply_books:
                self.books.apply(msg)
        elif isinstance(msg, Trade):
            stats.last_trade = (msg.price, msg.size, msg.taker_side)
        elif isinstance(msg, Quote):
            stats.last_quote = (msg.bid_price, msg.ask_price)

    def note_decode_error(self, reason: str) -> None:
        """A frame that could not be decoded: counted, never fatal."""
        self.decode_errors += 1
        self.note_error(f"undecodable frame: {reason}")

    def note_error(self, text: str) -> None:
        """Count an error and keep its description (the last 20)."""
        self.errors += 1
        self.error_log.append(text)
        del self.error_log[:-20]

    def note_reconnect(self, now: float | None = None) -> None:
        """The upstream connection came back: count it; books wait for their next reset.

        With ``now``, each symbol that has a book starts a stale period (the summary's stale
        seconds), closed by its next reset.
        """
        self.reconnects += 1
        if now is not None:
            for symbol, stats in self.symbols.items():
                if stats.stale_since is None and self.books.get(symbol) is not None:
                    stats.stale_since = now
        self._awaiting_resume = True
        self.books.invalidate()

    # -- reading --------------------------------------------------------------------------------

    def silent_for(self, now: float) -> float:
        """Seconds since the last data message (since start when none came yet)."""
        begin = self.streaming_start if self.streaming_start is not None else self.start
        return now - (self.last_data if self.last_data is not None else begin)

    def rows(self, now: float) -> list[SymbolRow]:
        """Every symbol seen or expected, expected ones first in subscription order."""
        order = list(self.expected) + sorted(s for s in self.symbols if s not in self.expected)
        return [self.row(symbol, now) for symbol in order]

    def row(self, symbol: str, now: float) -> SymbolRow:
        stats = self._symbol(symbol)
        book: OrderBook | None = self.books.get(symbol)
        bid = ask = spread = None
        levels = None
        valid = None
        if book is not None:
            best_bid, best_ask = book.best_bid, book.best_ask
            bid = best_bid[0] if best_bid else None
            ask = best_ask[0] if best_ask else None
            spread = book.spread
            levels = book.depth
            valid = book.valid
        elif stats.last_quote is not None:
            bid, ask = stats.last_quote
            spread = ask - bid
        return SymbolRow(
            symbol=symbol,
            frames=stats.frames,
            counts=dict(stats.counts),
            rate_short=stats.rates.rate(now, SHORT_WINDOW),
            rate_long=stats.rates.rate(now, LONG_WINDOW),
            last_kind=stats.last_kind,
            last_trade=stats.last_trade,
            best_bid=bid,
            best_ask=ask,
            spread=spread,
            levels=levels,
            book_valid=valid,
            age=None if stats.last_seen is None else now - stats.last_seen,
            latency=stats.latency,
            first_latency=stats.first_latency,
            decimals=stats.decimals,
        )

    def short_of(self, min_frames: int) -> dict[str, int]:
        """Expected symbols with fewer than ``min_frames`` data messages -> their count."""
        symbols = self.expected or tuple(self.symbols)
        counts = {s: self.symbols[s].frames if s in self.symbols else 0 for s in symbols}
        return {s: n for s, n in counts.items() if n < min_frames}


DECIMAL_LEVELS = 4
"""Levels a side of each book message looked at for decimals: enough to learn a symbol's tick
within a few messages, cheap on a 64 KB snapshot."""


def _note_decimals(stats: SymbolStats, msg: Trade | Quote | Bar | OrderBookUpdate) -> None:
    """Raise ``stats.decimals`` to the most any price of ``msg`` needs."""
    from alpaca_cli.live.format import decimals_of

    if isinstance(msg, Trade):
        prices: Iterable[float] = (msg.price,)
    elif isinstance(msg, Quote):
        prices = (msg.bid_price, msg.ask_price)
    elif isinstance(msg, OrderBookUpdate):
        prices = [lv.p for lv in msg.bids[:DECIMAL_LEVELS]] + [
            lv.p for lv in msg.asks[:DECIMAL_LEVELS]
        ]
    else:
        prices = (msg.close,)
    best = stats.decimals
    for value in prices:
        best = max(best, decimals_of(value))
    stats.decimals = best


def describe_control(msg: Success | Subscription | Error) -> str:
    """A control message as one short line: ``authenticated``, ``error 402 auth failed``..."""
    if isinstance(msg, Success):
        return msg.msg
    if isinstance(msg, Error):
        return f"error {msg.code} {msg.msg}"
    parts = [f"{name}={','.join(symbols)}" for name, symbols in msg.channels().items() if symbols]
    return "subscription " + (" ".join(parts) if parts else "(none)")
