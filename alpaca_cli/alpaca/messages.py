"""Typed Alpaca stream messages, one class per ``T`` (spec: "Data messages").

The three kinds that make up nearly all of a busy stream (trades, quotes, order-book updates) are
``msgspec`` Structs tagged on ``T``: the codec decodes a frame straight into them in C, which is
what lets a frame cost less than parsing it into dicts. The rare kinds (bars, control messages)
stay slotted dataclasses; the codec builds them from private wire Structs. All are mutable and
not frozen, because the decoder finishes the hot kinds in place (see below); treat them as values
all the same.

A hot Struct's annotations describe its *wire* form at run time (``timestamp`` an RFC 3339 string
or a msgpack Timestamp ext, levels ``{"p","s"}`` objects) and its *value* form to a type checker
(``int`` nanoseconds, ``(price, size)`` tuples). The codec converts each decoded message before
anyone sees it, so user code only ever meets the value form; constructing one by hand takes the
value form too (Structs do not validate on ``__init__``).

Every class keeps the keys it does not know in ``extra`` (``None`` when there are none, which is
the usual case and costs nothing), so a newer server never loses information on its way through.
Timestamps are integer nanoseconds since the Unix epoch; see :mod:`.timestamps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

import msgspec

from .names import CHANNELS

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


BarKind: TypeAlias = Literal["b", "d", "u"]
BAR_KINDS: dict[str, BarKind] = {"b": "b", "d": "d", "u": "u"}
"""``T`` of the three bar messages: minute bar, daily bar, updated (corrected) minute bar."""

Level: TypeAlias = tuple[float, float]
"""One L2 price level: (price, total size there). Size 0 deletes the level."""

NOT_ON_WIRE = "__alpaca_md_extra__"
"""Wire name given to ``extra``: a key no server sends, so the decoder never fills it."""


class WireLevel(msgspec.Struct, gc=False):
    """A level as the wire has it, ``{"p":..,"s":..}``; the codec turns it into a :data:`Level`.

    Unknown keys inside a level are ignored (there is nowhere to keep them), as before.
    """

    p: float
    s: float


if TYPE_CHECKING:
    _Time: TypeAlias = int
    _Levels: TypeAlias = list[Level]
else:
    _Time = str | msgspec.msgpack.Ext
    _Levels = list[WireLevel] | None


class _Hot(msgspec.Struct, tag_field="T", forbid_unknown_fields=True, gc=False):
    """Base of the Structs decoded straight off the wire.

    Unknown keys make msgspec fail the frame, and the codec then takes its careful path, which
    keeps them in ``extra``; ``gc=False`` because a message never refers back to itself.
    """


class Trade(
    _Hot,
    tag="t",
    rename={"symbol": "S", "price": "p", "size": "s", "timestamp": "t", "id": "i",
            "taker_side": "tks", "extra": NOT_ON_WIRE},
):  # fmt: skip
    """``T:"t"``: one trade. ``id`` is a full 64-bit integer; ``taker_side`` is ``B`` or ``S``."""

    T: ClassVar[str] = "t"
    symbol: str
    price: float
    size: float
    timestamp: _Time
    id: int
    taker_side: str | None = None
    extra: dict[str, Any] | None = None


class Quote(
    _Hot,
    tag="q",
    rename={"symbol": "S", "bid_price": "bp", "bid_size": "bs", "ask_price": "ap",
            "ask_size": "as", "timestamp": "t", "extra": NOT_ON_WIRE},
):  # fmt: skip
    """``T:"q"``: best bid and ask."""

    T: ClassVar[str] = "q"
    symbol: str
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float
    timestamp: _Time
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


class OrderBookUpdate(
    _Hot,
    tag="o",
    rename={"symbol": "S", "timestamp": "t", "bids": "b", "asks": "a", "reset": "r",
            "extra": NOT_ON_WIRE},
):  # fmt: skip
    """``T:"o"``: L2 levels; ``reset`` means the message is the whole book (``r:true``)."""

    T: ClassVar[str] = "o"
    symbol: str
    timestamp: _Time
    bids: _Levels = []
    asks: _Levels = []
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
