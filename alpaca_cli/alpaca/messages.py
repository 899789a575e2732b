"""Typed Alpaca stream messages, one slotted dataclass per ``T`` (spec: "Data messages").

They are plain mutable slotted dataclasses, not frozen ones and not pydantic models, because the
decoder builds tens of thousands of them per second and a frozen dataclass pays for
``object.__setattr__`` on every field. Treat them as values all the same.

Every class keeps the keys it does not know in ``extra`` (``None`` when there are none, which is
the usual case and costs nothing), so a newer server never loses information on its way through.
Timestamps are integer nanoseconds since the Unix epoch; see :mod:`.timestamps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias

__all__ = [
    "BAR_KINDS",
    "CHANNELS",
    "Bar",
    "BarKind",
    "DataMessage",
    "Error",
    "Level",
    "Message",
    "OrderBookUpdate",
    "Quote",
    "Subscription",
    "Success",
    "Trade",
    "Unknown",
]

CHANNELS: tuple[str, ...] = ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars")
"""Subscription channels in the order the server lists them."""

BarKind: TypeAlias = Literal["b", "d", "u"]
BAR_KINDS: dict[str, BarKind] = {"b": "b", "d": "d", "u": "u"}
"""``T`` of the three bar messages: minute bar, daily bar, updated (corrected) minute bar."""

Level: TypeAlias = tuple[float, float]
"""One L2 price level: (price, total size there). Size 0 deletes the level."""


@dataclass(slots=True)
class Trade:
    """``T:"t"``: one trade. ``id`` is a full 64-bit integer; ``taker_side`` is ``B`` or ``S``."""

    T: ClassVar[str] = "t"
    symbol: str
    price: float
    size: float
    timestamp: int
    id: int
    taker_side: str | None = None
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class Quote:
    """``T:"q"``: best bid and ask."""

    T: ClassVar[str] = "q"
    symbol: str
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float
    timestamp: int
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class Bar:
    """``T`` in ``b`` (minute), ``d`` (daily, running) or ``u`` (correction of a minute bar).

    ``timestamp`` is the bar's start.
    """

    kind: BarKind
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    timestamp: int
    trade_count: int
    vwap: float
    extra: dict[str, Any] | None = None

    @property
    def T(self) -> str:
        """The wire ``T``, like the class attribute of the other messages."""
        return self.kind


@dataclass(slots=True)
class OrderBookUpdate:
    """``T:"o"``: L2 levels; ``reset`` means the message is the whole book (``r:true``)."""

    T: ClassVar[str] = "o"
    symbol: str
    timestamp: int
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)
    reset: bool = False
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class Success:
    """``T:"success"``: ``msg`` is ``connected`` (welcome) or ``authenticated``."""

    T: ClassVar[str] = "success"
    msg: str
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class Subscription:
    """``T:"subscription"``: the server's whole current subscription set after any change."""

    T: ClassVar[str] = "subscription"
    trades: tuple[str, ...] = ()
    quotes: tuple[str, ...] = ()
    orderbooks: tuple[str, ...] = ()
    bars: tuple[str, ...] = ()
    updated_bars: tuple[str, ...] = ()
    daily_bars: tuple[str, ...] = ()
    extra: dict[str, Any] | None = None

    def channels(self) -> dict[str, tuple[str, ...]]:
        """The set keyed by wire channel name (``updatedBars``...), every channel present."""
        return {
            "trades": self.trades,
            "quotes": self.quotes,
            "orderbooks": self.orderbooks,
            "bars": self.bars,
            "updatedBars": self.updated_bars,
            "dailyBars": self.daily_bars,
        }


@dataclass(slots=True)
class Error:
    """``T:"error"``: see :func:`alpaca_cli.alpaca.errors.error_info` for what ``code`` means."""

    T: ClassVar[str] = "error"
    code: int
    msg: str
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class Unknown:
    """A message whose ``T`` this version does not know; ``raw`` is the whole wire object."""

    T: str
    raw: dict[str, Any]


DataMessage: TypeAlias = Trade | Quote | Bar | OrderBookUpdate
Message: TypeAlias = (
    Trade | Quote | Bar | OrderBookUpdate | Success | Subscription | Error | Unknown
)
