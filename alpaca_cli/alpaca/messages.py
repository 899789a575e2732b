"""Typed Alpaca stream messages, one class per ``T`` (spec: "Data messages").

The data kinds that make up nearly all of a busy stream (trades, quotes, order-book updates,
bars) are ``msgspec`` Structs tagged on ``T``: the codec decodes a frame straight into them in C
and hands them over as they come out, with no Python pass per message. That is what lets
decoding a frame cost about what ``orjson.loads`` of it does. Bars are one class per ``T``
(:class:`MinuteBar`, :class:`DailyBar`, :class:`UpdatedBar`, all :class:`Bar`) for that reason.
The control messages (success, error, subscription) stay slotted dataclasses, built by the codec
from private wire Structs.

So a data message keeps its wire forms, which are also its value forms:

- ``t`` is the wire time: the RFC 3339 string of a JSON frame, which the codec has proved valid
  (exactly the strings :func:`~.timestamps.parse_rfc3339` accepts), or integer nanoseconds (a
  msgpack Timestamp, which the codec checks and converts, or a message built by hand).
  ``timestamp`` is always integer nanoseconds since the Unix epoch, computed on each access
  with the per-second cache of :mod:`.timestamps`; it cannot fail for a decoded message.
- An order-book level is a :class:`Level` Struct (``p``, ``s``), the very object msgspec decoded
  from ``{"p":..,"s":..}``.

To build a message from values, pass integer nanoseconds as ``t``:
``Trade("BTC/USD", 67250.0, 0.5, t=1_710_238_068_858_228_144, id=1)`` and
``OrderBookUpdate("BTC/USD", ns, bids=[Level(67249.5, 1.2)])``, ``Bar.of("b", ...)``. (Structs do
not validate on ``__init__``; the decoder is what checks wire input.)

Equality is by value: ``t`` compares as :attr:`timestamp`, so a message decoded from JSON equals
the same message decoded from msgpack or built by hand, and ``10:27:48.5Z`` equals
``10:27:48.500Z`` and ``11:27:48.5+01:00``: how the wire spelled an instant is not part of the
message (``t`` still shows the spelling, for whoever wants it).

Every class keeps the keys it does not know in ``extra`` (``None`` when there are none, which is
the usual case and costs nothing), so a newer server never loses information on its way through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeAlias

import msgspec

from .names import CHANNELS
from .timestamps import parse_rfc3339

__all__ = [
    "BAR_CLASSES",
    "BAR_KINDS",
    "CHANNELS",
    "Bar",
    "BarKind",
    "DailyBar",
    "DataMessage",
    "Error",
    "Level",
    "Message",
    "MinuteBar",
    "OrderBookUpdate",
    "Quote",
    "Subscription",
    "Success",
    "Trade",
    "Unknown",
    "UpdatedBar",
]


BarKind: TypeAlias = Literal["b", "d", "u"]
BAR_KINDS: dict[str, BarKind] = {"b": "b", "d": "d", "u": "u"}
"""``T`` of the three bar messages: minute bar, daily bar, updated (corrected) minute bar."""

NOT_ON_WIRE = "__alpaca_md_extra__"
"""Wire name given to ``extra``: a key no server sends, so the decoder never fills it."""


class Level(msgspec.Struct, frozen=True, gc=False):
    """One L2 price level, ``{"p":..,"s":..}`` on the wire: price ``p``, total size ``s`` there.

    Size 0 deletes the level. Unknown keys inside a level are ignored (there is nowhere to keep
    them), as they always were. Frozen: a level is a value (and so hashable).
    """

    p: float
    s: float


MAX_TIME_TEXT = 35
"""The longest RFC 3339 timestamp :func:`~.timestamps.parse_rfc3339` accepts:
``YYYY-MM-DDTHH:MM:SS.fffffffff+HH:MM``. Longer text in ``t`` is rejected while decoding."""

if TYPE_CHECKING:
    WireTime: TypeAlias = int | str
    """``t`` of a data message: RFC 3339 text as a JSON frame had it, or integer nanoseconds."""
else:
    # What msgspec decodes: text (the codec then proves it RFC 3339) or an Ext, a msgpack
    # Timestamp, which the codec checks and turns into nanoseconds before the message leaves it.
    # The length bound is checked in C and is what lets the codec's frame-wide check skip
    # counting newlines: two timestamps joined by one need at least 41 characters.
    WireTime = Annotated[str, msgspec.Meta(max_length=MAX_TIME_TEXT)] | msgspec.msgpack.Ext


def time_ns(t: int | str) -> int:
    """Nanoseconds since the epoch of a wire time ``t`` (see :data:`WireTime`).

    Raises:
        ValueError: ``t`` is a string that is no RFC 3339 timestamp, which the decoder never
            lets through (only a message built by hand with a bad string can hold one).
    """
    return t if isinstance(t, int) else parse_rfc3339(t)


class _Hot(msgspec.Struct, tag_field="T", forbid_unknown_fields=True, gc=False):
    """Base of the Structs decoded straight off the wire.

    Unknown keys make msgspec fail the frame, and the codec then takes its careful path, which
    keeps them in ``extra``; ``gc=False`` because a message never refers back to itself.
    """

    @property
    def timestamp(self) -> int:
        """``t`` in integer nanoseconds since the Unix epoch (computed on each access)."""
        t: WireTime = self.t  # type: ignore[attr-defined]  # each subclass declares its t
        return t if isinstance(t, int) else parse_rfc3339(t)

    def _values(self) -> tuple[Any, ...]:
        return tuple(
            self.timestamp if name == "t" else getattr(self, name)
            for name in self.__struct_fields__
        )

    def __eq__(self, other: object) -> bool:
        """Equal when every field is, ``t`` compared as :attr:`timestamp` (see the module)."""
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable, like any non-frozen Struct


class Trade(
    _Hot,
    tag="t",
    rename={"symbol": "S", "price": "p", "size": "s", "id": "i", "taker_side": "tks",
            "extra": NOT_ON_WIRE},
):  # fmt: skip
    """``T:"t"``: one trade. ``id`` is a full 64-bit integer; ``taker_side`` is ``B`` or ``S``."""

    T: ClassVar[str] = "t"
    symbol: str
    price: float
    size: float
    t: WireTime
    id: int
    taker_side: str | None = None
    extra: dict[str, Any] | None = None


class Quote(
    _Hot,
    tag="q",
    rename={"symbol": "S", "bid_price": "bp", "bid_size": "bs", "ask_price": "ap",
            "ask_size": "as", "extra": NOT_ON_WIRE},
):  # fmt: skip
    """``T:"q"``: best bid and ask."""

    T: ClassVar[str] = "q"
    symbol: str
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float
    t: WireTime
    extra: dict[str, Any] | None = None


class Bar(
    _Hot,
    rename={"symbol": "S", "open": "o", "high": "h", "low": "l", "close": "c", "volume": "v",
            "trade_count": "n", "vwap": "vw", "extra": NOT_ON_WIRE},
):  # fmt: skip
    """A bar: ``T`` in ``b`` (minute), ``d`` (daily, running) or ``u`` (correction of a minute bar).

    One class per ``T`` so that msgspec decodes each straight off the wire: :class:`MinuteBar`,
    :class:`DailyBar`, :class:`UpdatedBar`; test ``isinstance(msg, Bar)`` and read ``kind``.
    Build one with :meth:`of`. ``timestamp`` is the bar's start.
    """

    T: ClassVar[str]
    kind: ClassVar[BarKind]
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    t: WireTime
    trade_count: int
    vwap: float
    extra: dict[str, Any] | None = None

    @staticmethod
    def of(
        kind: BarKind, symbol: str, open: float, high: float, low: float, close: float,
        volume: float, t: int | str, trade_count: int, vwap: float,
        extra: dict[str, Any] | None = None,
    ) -> Bar:  # fmt: skip
        """The bar of ``kind`` (``b``, ``d`` or ``u``) with these values (``t`` in ns)."""
        cls = BAR_CLASSES[kind]
        return cls(symbol, open, high, low, close, volume, t, trade_count, vwap, extra)


class MinuteBar(Bar, tag="b"):
    """``T:"b"``: a minute bar."""

    T: ClassVar[str] = "b"
    kind: ClassVar[BarKind] = "b"


class DailyBar(Bar, tag="d"):
    """``T:"d"``: the running daily bar."""

    T: ClassVar[str] = "d"
    kind: ClassVar[BarKind] = "d"


class UpdatedBar(Bar, tag="u"):
    """``T:"u"``: a correction of a minute bar (a late trade landed in its window)."""

    T: ClassVar[str] = "u"
    kind: ClassVar[BarKind] = "u"


BAR_CLASSES: dict[BarKind, type[Bar]] = {"b": MinuteBar, "d": DailyBar, "u": UpdatedBar}
"""The class of each bar ``T``."""


class OrderBookUpdate(
    _Hot,
    tag="o",
    rename={"symbol": "S", "bids": "b", "asks": "a", "reset": "r", "extra": NOT_ON_WIRE},
):  # fmt: skip
    """``T:"o"``: L2 levels; ``reset`` means the message is the whole book (``r:true``).

    A side the wire leaves out, or sends as ``null``, is an empty list.
    """

    T: ClassVar[str] = "o"
    symbol: str
    t: WireTime
    bids: list[Level] = []
    asks: list[Level] = []
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
