"""L2 order books built from ``T:"o"`` messages (spec: "The order book is L2").

Each side is a dict price -> size, so an update costs one dict operation per level. The best
price of each side is cached and kept up to date incrementally: a better price replaces it, and
only deleting the best level forces a rescan (``max``/``min`` over the side), done lazily on the
next query. Nothing is sorted unless a caller asks for the top levels.

There are no sequence numbers on the wire, so after a reconnect or resubscribe a book cannot be
trusted until the next ``r:true`` snapshot: :meth:`OrderBook.invalidate` records that, and
:attr:`OrderBook.valid` turns true again only with a reset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypeAlias, cast

from .messages import Level, Message, OrderBookUpdate, WireTime, time_ns

__all__ = ["Books", "OrderBook", "PriceSize"]

PriceSize: TypeAlias = tuple[float, float]
"""(price, size) of one level, as the book's queries return it (:class:`Level` is the wire's)."""


class OrderBook:
    """The L2 book of one symbol.

    Example::

        book = OrderBook("BTC/USD")
        book.apply(update)          # an OrderBookUpdate for BTC/USD
        if book.valid and not book.crossed:
            print(book.best_bid, book.best_ask, book.spread)

    A new book is invalid until its first reset. Updates received while invalid are still
    applied (the picture is better than nothing) but do not make the book valid.
    """

    __slots__ = (
        "_ask_ok",
        "_best_ask",
        "_best_bid",
        "_bid_ok",
        "_t",
        "_valid",
        "asks",
        "bids",
        "resets",
        "symbol",
        "updates",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[float, float] = {}
        """Price -> size of every bid level. Read freely; change only through :meth:`apply`."""
        self.asks: dict[float, float] = {}
        """Price -> size of every ask level."""
        self.updates = 0
        """Messages applied that were not resets."""
        self.resets = 0
        """Snapshots (``r:true``) applied."""
        self._t: WireTime | None = None  # the last message's t, converted only when asked
        self._valid = False
        self._best_bid: float | None = None
        self._best_ask: float | None = None
        self._bid_ok = True  # False: the cached best was deleted; rescan on the next query
        self._ask_ok = True

    def __repr__(self) -> str:
        state = "valid" if self._valid else "invalid"
        return (
            f"<OrderBook {self.symbol} {state} bid={self.best_bid} ask={self.best_ask} "
            f"levels={len(self.bids)}/{len(self.asks)}>"
        )

    def apply(self, msg: OrderBookUpdate) -> None:
        """Apply one update: ``reset`` replaces the book, size 0 deletes, size > 0 sets.

        Levels are applied in message order, so a price listed twice ends with its last size.
        A non-positive size deletes the level (only 0 is expected on the wire).
        """
        _apply_updates({msg.symbol: self}, (msg,))

    def _reset(self, msg: OrderBookUpdate) -> None:
        self._t = msg.t
        self.resets += 1
        self._valid = True
        self.bids = _snapshot(msg.bids)
        self.asks = _snapshot(msg.asks)
        self._best_bid = self._best_ask = None
        self._bid_ok = self._ask_ok = False

    @property
    def timestamp(self) -> int | None:
        """``t`` (ns) of the last message applied, or None before the first."""
        t = self._t
        return None if t is None else time_ns(t)

    def invalidate(self) -> None:
        """Mark the book untrustworthy (after a reconnect) until the next reset arrives."""
        self._valid = False

    @property
    def valid(self) -> bool:
        """True once a reset arrived and no :meth:`invalidate` came after it."""
        return self._valid

    @property
    def best_bid(self) -> PriceSize | None:
        """(price, size) of the highest bid, or None for an empty side."""
        if not self._bid_ok:
            self._best_bid = max(self.bids) if self.bids else None
            self._bid_ok = True
        best = self._best_bid
        return None if best is None else (best, self.bids[best])

    @property
    def best_ask(self) -> PriceSize | None:
        """(price, size) of the lowest ask, or None for an empty side."""
        if not self._ask_ok:
            self._best_ask = min(self.asks) if self.asks else None
            self._ask_ok = True
        best = self._best_ask
        return None if best is None else (best, self.asks[best])

    @property
    def spread(self) -> float | None:
        """Best ask minus best bid, or None when a side is empty (negative when crossed)."""
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else ask[0] - bid[0]

    @property
    def mid(self) -> float | None:
        """Midpoint of the best bid and ask, or None when a side is empty."""
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else (ask[0] + bid[0]) / 2

    @property
    def depth(self) -> tuple[int, int]:
        """Number of (bid, ask) levels."""
        return len(self.bids), len(self.asks)

    @property
    def crossed(self) -> bool:
        """True when the best bid is at or above the best ask: a book no venue would show.

        A locked book (bid == ask) counts too; either means missed updates, so resubscribe.
        """
        bid, ask = self.best_bid, self.best_ask
        return bid is not None and ask is not None and bid[0] >= ask[0]

    def top(self, n: int) -> tuple[list[PriceSize], list[PriceSize]]:
        """The best ``n`` levels of each side, best first (sorts: for display, not per update)."""
        bids = sorted(self.bids.items(), reverse=True)[:n]
        asks = sorted(self.asks.items())[:n]
        return bids, asks


def _snapshot(levels: list[Level]) -> dict[float, float]:
    side = {lv.p: lv.s for lv in levels}
    if side and min(side.values()) <= 0:
        side = {p: s for p, s in side.items() if s > 0}
    return side


class Books(Mapping[str, OrderBook]):
    """Symbol -> :class:`OrderBook`, created on the first update for a symbol."""

    __slots__ = ("_books",)

    def __init__(self) -> None:
        self._books: dict[str, OrderBook] = {}

    def __getitem__(self, symbol: str) -> OrderBook:
        return self._books[symbol]

    def __iter__(self) -> Iterator[str]:
        return iter(self._books)

    def __len__(self) -> int:
        return len(self._books)

    def __repr__(self) -> str:
        return f"<Books {len(self._books)} symbols>"

    def apply(self, msg: OrderBookUpdate) -> OrderBook:
        """Apply ``msg`` to its symbol's book (created if new) and return that book."""
        _apply_updates(self._books, (msg,))
        return self._books[msg.symbol]

    def apply_messages(self, messages: Iterable[Message]) -> int:
        """Apply the order-book messages among ``messages``; returns how many there were."""
        return _apply_updates(self._books, messages)

    def invalidate(self) -> None:
        """Invalidate every book (after a reconnect): each waits for its next reset."""
        for book in self._books.values():
            book.invalidate()


_NOT_BOOKS: set[type] = set()
"""Message classes seen that are not :class:`OrderBookUpdate`s. ``isinstance`` against a msgspec
Struct class goes through its metaclass's ``__instancecheck__`` (a slot lookup and a call) and
cost a sixth of applying a frame's updates; a class identity test plus this set is a pointer
compare and a hash lookup, and still honours subclasses."""


def _is_book_class(cls: type) -> bool:
    if issubclass(cls, OrderBookUpdate):
        return True
    _NOT_BOOKS.add(cls)
    return False


def _apply_updates(books: dict[str, OrderBook], messages: Iterable[Message]) -> int:
    """Apply the order-book messages among ``messages`` to ``books`` (symbol -> book, filled in).

    The one implementation of an update, written as a single loop with the delta inlined:
    per message it is the hot path of ``tail``/``run``, and a method call per update plus the
    attribute traffic of a general routine cost as much as the update itself.
    """
    n = 0
    others = _NOT_BOOKS
    for msg in messages:
        cls = msg.__class__
        if cls is not OrderBookUpdate and (cls in others or not _is_book_class(cls)):
            continue
        msg = cast(OrderBookUpdate, msg)  # checked just above, by class (mypy cannot see it)
        n += 1
        book = books.get(msg.symbol)
        if book is None:
            book = books[msg.symbol] = OrderBook(msg.symbol)
        if msg.reset:
            book._reset(msg)
            continue
        book._t = msg.t
        book.updates += 1
        levels = msg.bids
        if levels:
            side = book.bids
            best = book._best_bid
            ok = book._bid_ok
            for lv in levels:
                p = lv.p
                s = lv.s
                if s > 0:
                    side[p] = s
                    if ok and (best is None or p > best):
                        best = p
                elif side.pop(p, None) is not None and p == best:
                    ok = False  # the best level went: rescan on the next query
            book._best_bid = best
            book._bid_ok = ok
        levels = msg.asks
        if levels:
            side = book.asks
            best = book._best_ask
            ok = book._ask_ok
            for lv in levels:
                p = lv.p
                s = lv.s
                if s > 0:
                    side[p] = s
                    if ok and (best is None or p < best):
                        best = p
                elif side.pop(p, None) is not None and p == best:
                    ok = False
            book._best_ask = best
            book._ask_ok = ok
    return n
