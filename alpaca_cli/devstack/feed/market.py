"""A deterministic synthetic crypto market: L2 books, trades, quotes and bars per symbol.

Each connection gets its own :class:`Market`, seeded from the server's seed, so two clients
that subscribe the same way see the same sequence of messages (only timestamps and frame
boundaries depend on the clock). The generator is pure: the caller passes the time in.

How the pieces hang together, so that every view a client gets is consistent:

* Each symbol has one L2 book of integer-tick prices. Every generated message first *steps*
  that book (a level improves inside the spread, a top level is taken, or a level is resized),
  with a bias that pulls the mid back towards the symbol's starting price.
* Quotes are the book's top level; a trade lifts the best ask (taker ``B``) or hits the best bid
  (taker ``S``) and shrinks that level.
* Book changes are remembered per symbol while a client holds that book, and an ``o`` message
  carries exactly the net changes since the previous one (absolute sizes, 0 deletes), so the
  client's copy equals the server's copy after every message and is never crossed.
* Minute bars aggregate the trades this market generated in the window; a symbol that had none
  gets a bar drawn around its mid from a separate random stream, so bar timing never changes
  the trade/quote/book sequence. Daily bars are the running day; ``u`` corrects the previous bar.

Counting losses: trade ids are consecutive per connection, starting at :data:`TRADE_ID_BASE`
(above 2**53 on purpose, to catch clients that squeeze int64 into a double).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from alpaca_cli.alpaca.messages import Bar, BarKind, Level, OrderBookUpdate, Quote, Trade
from alpaca_cli.devstack.feed.config import UNIVERSE, FeedConfig, SymbolSpec
from alpaca_cli.devstack.feed.session import Targets
from alpaca_cli.devstack.feed.source import Message

__all__ = ["QUOTE_BAR_SHARE", "TRADE_ID_BASE", "Book", "Market"]

TRADE_ID_BASE = 2**53
"""The first trade id of every connection is ``TRADE_ID_BASE + 1``; ids then count up by one."""

QUOTE_BAR_SHARE = 0.25
"""Share of trade-less bar windows drawn as quote mid-price bars (``n = 0``, ``v = 0``)."""

_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
_BAR_SEED_SALT = 0x5EED_BA25


def _decimals(tick: float) -> int:
    text = f"{tick:.12f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


class Book:
    """One L2 book in integer ticks, remembering changes while someone tracks it.

    Invariant kept by :class:`_Instrument`: both sides non-empty and best bid < best ask.
    """

    __slots__ = ("_ba", "_bb", "asks", "bids", "pending_asks", "pending_bids", "tracking")

    def __init__(self) -> None:
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.pending_bids: dict[int, float] = {}
        self.pending_asks: dict[int, float] = {}
        self.tracking = False
        # Cached best prices (None: rescan). Every message reads them, so no max()/min() each.
        self._bb: int | None = None
        self._ba: int | None = None

    def best_bid(self) -> int:
        if self._bb is None:
            self._bb = max(self.bids)
        return self._bb

    def best_ask(self) -> int:
        if self._ba is None:
            self._ba = min(self.asks)
        return self._ba

    def set_bid(self, price: int, size: float) -> None:
        self.bids[price] = size
        if self._bb is not None and price > self._bb:
            self._bb = price
        if self.tracking:
            self.pending_bids[price] = size

    def set_ask(self, price: int, size: float) -> None:
        self.asks[price] = size
        if self._ba is not None and price < self._ba:
            self._ba = price
        if self.tracking:
            self.pending_asks[price] = size

    def delete_bid(self, price: int) -> None:
        del self.bids[price]
        if price == self._bb:
            self._bb = None
        if self.tracking:
            self.pending_bids[price] = 0.0

    def delete_ask(self, price: int) -> None:
        del self.asks[price]
        if price == self._ba:
            self._ba = None
        if self.tracking:
            self.pending_asks[price] = 0.0

    def take_pending(self) -> tuple[dict[int, float], dict[int, float]]:
        bids, asks = self.pending_bids, self.pending_asks
        self.pending_bids, self.pending_asks = {}, {}
        return bids, asks


@dataclass(slots=True)
class _Bar:
    """A running OHLCV aggregate."""

    o: float
    h: float
    l: float  # noqa: E741 - the wire name
    c: float
    v: float = 0.0
    n: int = 0
    pv: float = 0.0

    def add(self, price: float, size: float, count: int = 1) -> None:
        self.h = max(self.h, price)
        self.l = min(self.l, price)
        self.c = price
        self.v += size
        self.n += count
        self.pv += price * size

    def fold(self, other: _Bar) -> None:
        self.h = max(self.h, other.h)
        self.l = min(self.l, other.l)
        self.c = other.c
        self.v += other.v
        self.n += other.n
        self.pv += other.pv


class _Instrument:
    """One symbol: its book, its pricing rules and its bar aggregates."""

    def __init__(self, spec: SymbolSpec, depth: int, rng: random.Random) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.depth = depth
        self.decimals = _decimals(spec.tick)
        self.tick = spec.tick
        self.center = max(2 * depth + 10, round(spec.price / spec.tick))
        # Levels about one basis point apart, as on a liquid venue.
        self.gap = max(1, round(self.center * 0.0001))
        self.book = Book()
        self._prices: dict[int, float] = {}
        self.minute: _Bar | None = None
        self.day: _Bar | None = None
        self.day_start = -1
        self.last_bar: Bar | None = None
        self.last_close: float | None = None
        half = max(1, self.gap // 2)
        bid, ask = self.center - half, self.center + half
        for _ in range(depth):
            self.book.bids[bid] = self.draw_size(rng)
            self.book.asks[ask] = self.draw_size(rng)
            bid -= rng.randint(1, 2 * self.gap)
            ask += rng.randint(1, 2 * self.gap)

    # -- prices and sizes ---------------------------------------------------------------------

    def price(self, ticks: int) -> float:
        # Memoised: rounding is the generator's single biggest cost, and prices repeat.
        cached = self._prices.get(ticks)
        if cached is None:
            if len(self._prices) > 50_000:
                self._prices.clear()
            cached = self._prices[ticks] = round(ticks * self.tick, self.decimals)
        return cached

    def draw_size(self, rng: random.Random) -> float:
        return round(self.spec.size * (0.05 + rng.expovariate(1.0)), 6)

    def mid(self) -> float:
        return (self.book.best_bid() + self.book.best_ask()) * self.tick / 2

    # -- the book's random walk ---------------------------------------------------------------

    def step(self, rng: random.Random) -> None:
        """Move the book one event on: improve, take or resize, then restore the depth."""
        book = self.book
        bb, ba = book.best_bid(), book.best_ask()
        drift = ((bb + ba) / 2 - self.center) / self.center
        up = 0.5 - max(-0.3, min(0.3, drift * 50))  # probability the next move is upwards
        r = rng.random()
        if r < 0.25 and ba - bb > 1:
            price = rng.randint(bb + 1, ba - 1)
            if rng.random() < up:
                book.set_bid(price, self.draw_size(rng))
            else:
                book.set_ask(price, self.draw_size(rng))
        elif r < 0.45:
            if rng.random() < up:
                if len(book.asks) > 2:
                    book.delete_ask(ba)
            elif len(book.bids) > 2:
                book.delete_bid(bb)
        else:
            self.resize(rng)
        self._restore_depth(rng)

    def resize(self, rng: random.Random) -> None:
        book = self.book
        if rng.random() < 0.5:
            book.set_bid(rng.choice(list(book.bids)), self.draw_size(rng))
        else:
            book.set_ask(rng.choice(list(book.asks)), self.draw_size(rng))

    def _restore_depth(self, rng: random.Random) -> None:
        book = self.book
        while len(book.bids) < self.depth:
            worst = min(book.bids)
            price = worst - rng.randint(1, 2 * self.gap)
            if price < 1:
                break
            book.set_bid(price, self.draw_size(rng))
        while len(book.asks) < self.depth:
            book.set_ask(max(book.asks) + rng.randint(1, 2 * self.gap), self.draw_size(rng))
        while len(book.bids) > self.depth + 4:
            book.delete_bid(min(book.bids))
        while len(book.asks) > self.depth + 4:
            book.delete_ask(max(book.asks))

    # -- messages -----------------------------------------------------------------------------

    def trade(self, rng: random.Random, t: int, trade_id: int) -> Trade:
        book = self.book
        taker = "B" if rng.random() < 0.5 else "S"
        if taker == "B":
            level = book.best_ask()
            available = book.asks[level]
        else:
            level = book.best_bid()
            available = book.bids[level]
        size = round(min(available, self.spec.size * 0.3 * (0.01 + rng.expovariate(1.0))), 8)
        size = max(size, 1e-8)
        rest = round(available - size, 6)
        levels = book.asks if taker == "B" else book.bids
        if rest <= available * 0.05 and len(levels) > 2:
            if taker == "B":
                book.delete_ask(level)
            else:
                book.delete_bid(level)
        elif rest > 0:
            if taker == "B":
                book.set_ask(level, rest)
            else:
                book.set_bid(level, rest)
        price = self.price(level)
        if self.minute is None:
            self.minute = _Bar(price, price, price, price)
        self.minute.add(price, size)
        return Trade(self.symbol, price, size, t, trade_id, taker)

    def quote(self, t: int) -> Quote:
        book = self.book
        bb, ba = book.best_bid(), book.best_ask()
        return Quote(self.symbol, self.price(bb), book.bids[bb], self.price(ba), book.asks[ba], t)

    def delta(self, rng: random.Random, t: int) -> OrderBookUpdate:
        if not self.book.tracking:
            # No snapshot went out yet (cannot happen through the server): start with one.
            return self.snapshot(t)
        if not (self.book.pending_bids or self.book.pending_asks):
            self.resize(rng)
        bids, asks = self.book.take_pending()
        price = self.price
        return OrderBookUpdate(
            self.symbol,
            t,
            [Level(price(p), s) for p, s in bids.items()],
            [Level(price(p), s) for p, s in asks.items()],
        )

    def snapshot(self, t: int) -> OrderBookUpdate:
        book = self.book
        book.tracking = True
        book.pending_bids, book.pending_asks = {}, {}
        price = self.price
        return OrderBookUpdate(
            self.symbol,
            t,
            [Level(price(p), book.bids[p]) for p in sorted(book.bids, reverse=True)],
            [Level(price(p), book.asks[p]) for p in sorted(book.asks)],
            reset=True,
        )

    def forget(self) -> None:
        self.book.tracking = False
        self.book.pending_bids, self.book.pending_asks = {}, {}

    # -- bars ---------------------------------------------------------------------------------

    def close_bar(self, rng: random.Random, start: int) -> Bar:
        """The bar of the window starting at ``start``: from its trades, or drawn at the mid.

        A drawn bar is a quote mid-price bar (``n = 0``, ``v = 0``) :data:`QUOTE_BAR_SHARE` of
        the time, as Alpaca's crypto bars are when a minute saw no trade.
        """
        bar = self.minute
        self.minute = None
        if bar is None:
            mid = round(self.mid(), self.decimals)
            o = self.last_close if self.last_close is not None else mid
            spread = abs(mid - o) + self.gap * self.tick * rng.random()
            h = round(max(o, mid) + spread * rng.random() / 2, self.decimals)
            low = round(max(self.tick, min(o, mid) - spread * rng.random() / 2), self.decimals)
            if rng.random() < QUOTE_BAR_SHARE:
                # Alpaca's crypto bars include quote mid-prices: a window without trades
                # still gets a bar, with n = 0 and v = 0. Clients must not divide by v.
                n, v = 0, 0.0
            else:
                n = rng.randint(1, 40)
                v = round(self.spec.size * 0.3 * n * (0.5 + rng.random()), 8)
            bar = _Bar(o, h, low, mid, v, n, v * (low + (h - low) * rng.random()))
        self.last_close = bar.c
        day = start - start % _DAY_NS
        if self.day is None or day != self.day_start:
            self.day, self.day_start = _Bar(bar.o, bar.h, bar.l, bar.c, bar.v, bar.n, bar.pv), day
        else:
            self.day.fold(bar)
        message = self._bar_message("b", bar, start)
        self.last_bar = message
        return message

    def daily(self) -> Bar:
        assert self.day is not None, "close_bar() first"
        return self._bar_message("d", self.day, self.day_start)

    def correction(self, rng: random.Random, previous: Bar) -> Bar:
        """A ``u`` for ``previous``: a late trade lands in that window."""
        size = round(self.spec.size * 0.3 * (0.01 + rng.expovariate(1.0)), 8)
        v = round(previous.volume + size, 8)
        vw = (previous.vwap * previous.volume + previous.close * size) / v
        return Bar.of("u", previous.symbol, previous.open, previous.high, previous.low,
                      previous.close, v, previous.t, previous.trade_count + 1,
                      round(vw, 10))  # fmt: skip

    def _bar_message(self, kind: BarKind, bar: _Bar, start: int) -> Bar:
        vw = bar.pv / bar.v if bar.v else bar.c
        return Bar.of(kind, self.symbol, bar.o, bar.h, bar.l, bar.c, round(bar.v, 8), start, bar.n,
                      round(vw, 10))  # fmt: skip


class Market:
    """The synthetic market one connection sees (a :class:`~.source.DataSource`).

    Parameters:
        config: symbols, depth, bar interval.
        seed: the random seed; the same seed gives the same message sequence.
    """

    def __init__(self, config: FeedConfig, seed: int | None = None) -> None:
        seed = config.seed if seed is None else seed
        self._rng = random.Random(seed)
        self._bar_rng = random.Random(seed ^ _BAR_SEED_SALT)
        self._instruments = {
            s: _Instrument(UNIVERSE[s], config.book_depth, self._rng) for s in config.symbols
        }
        self._bar_ns = max(1, round(config.bar_interval * _NS))
        self._bar_start: int | None = None
        self._last_ns = 0
        self._trade_id = TRADE_ID_BASE
        self._streams_for: Targets | None = None
        self._streams: list[tuple[str, _Instrument]] = []

    @property
    def symbols(self) -> tuple[str, ...]:
        """The universe this market trades."""
        return tuple(self._instruments)

    def book(self, symbol: str) -> Book:
        """The server-side book of ``symbol`` (tests compare a client's copy with it)."""
        return self._instruments[symbol].book

    def snapshot(self, symbol: str, now_ns: int) -> OrderBookUpdate:
        """The full book of ``symbol``; unknown symbols get an empty book."""
        instrument = self._instruments.get(symbol)
        t = self._stamp(now_ns)
        if instrument is None:
            return OrderBookUpdate(symbol, t, [], [], reset=True)
        return instrument.snapshot(t)

    def forget(self, symbol: str) -> None:
        instrument = self._instruments.get(symbol)
        if instrument is not None:
            instrument.forget()

    def generate(self, count: int, targets: Targets, now_ns: int) -> list[Message]:
        """``count`` messages spread evenly over the subscribed (channel, symbol) pairs.

        All are stamped at ``now_ns`` (the moment the caller is about to send them): the last
        one exactly, those before it one nanosecond apart each, so ``t`` still increases
        strictly per connection (later if the previous batch ran ahead). Spreading them
        over the time since the previous batch instead would date them up to one send
        interval in the past, and that pacing would show up as latency downstream.
        """
        streams = self._streams_of(targets)
        if not streams or count <= 0:
            self._last_ns = max(self._last_ns, now_ns)
            return []
        rng = self._rng
        n = len(streams)
        out: list[Message] = []
        append = out.append
        last = max(self._last_ns, now_ns - count)
        for _ in range(count):
            kind, instrument = streams[int(rng.random() * n)]
            instrument.step(rng)
            last += 1
            t = last
            if kind == "t":
                append(instrument.trade(rng, t, self.next_trade_id()))
            elif kind == "q":
                append(instrument.quote(t))
            else:
                append(instrument.delta(rng, t))
        self._last_ns = last
        return out

    def bars(self, targets: Targets, now_ns: int) -> list[Message]:
        """Bars of every window that closed by ``now_ns``, for the subscribed symbols."""
        window = now_ns - now_ns % self._bar_ns
        if self._bar_start is None:
            self._bar_start = window
            return []
        if window <= self._bar_start:
            return []
        start, self._bar_start = self._bar_start, window
        wanted_b = set(targets.symbols("bars"))
        wanted_d = set(targets.symbols("dailyBars"))
        wanted_u = set(targets.symbols("updatedBars"))
        out: list[Message] = []
        for symbol, instrument in self._instruments.items():
            if symbol not in wanted_b and symbol not in wanted_d and symbol not in wanted_u:
                instrument.minute = None
                continue
            previous = instrument.last_bar
            bar = instrument.close_bar(self._bar_rng, start)
            if symbol in wanted_u and previous is not None and self._bar_rng.random() < 0.3:
                out.append(instrument.correction(self._bar_rng, previous))
            if symbol in wanted_b:
                out.append(bar)
            if symbol in wanted_d:
                out.append(instrument.daily())
        return out

    # -- internals ----------------------------------------------------------------------------

    def next_trade_id(self) -> int:
        self._trade_id += 1
        return self._trade_id

    def _stamp(self, t: int) -> int:
        # Strictly increasing per connection, so the order of messages is visible in ``t``.
        t = max(t, self._last_ns + 1)
        self._last_ns = t
        return t

    def _streams_of(self, targets: Targets) -> list[tuple[str, _Instrument]]:
        if targets is not self._streams_for:
            self._streams_for = targets
            self._streams = []
            for channel, symbol in targets.streams:
                instrument = self._instruments.get(symbol)
                if instrument is not None:
                    self._streams.append((_KINDS[channel], instrument))
        return self._streams


_KINDS = {"trades": "t", "quotes": "q", "orderbooks": "o"}
