"""The L2 depth ladder of ``alpaca-md book``: a pure snapshot of one book, and its two views.

:func:`snapshot` turns an :class:`~alpaca_cli.alpaca.book.OrderBook` into a JSON-ready dict at a
given time (top N levels a side with size and cumulative size, spread, mid, age, state);
:func:`render` draws that dict as a Rich ladder, asks above bids as an exchange shows them.
Piped, the command writes the dict as one NDJSON line per interval instead; both views read
the same dict, so what a script sees is what an operator sees.

The ``state`` of a book says how far to trust it:

* ``waiting``: no orderbook message for the symbol yet;
* ``partial``: updates, but no snapshot (``r:true``) since the command started; the levels
  are only those the updates touched;
* ``live``: a snapshot arrived and nothing invalidated it since;
* ``stale``: the upstream connection was reopened after a snapshot (the spec: the local
  book is invalid until the next reset); shown until the next snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from alpaca_cli.live import format as fmt

if TYPE_CHECKING:
    from rich.console import RenderableType

    from alpaca_cli.alpaca.book import OrderBook

__all__ = ["DEPTH", "BookState", "render", "snapshot", "state_of"]

DEPTH = 10
"""Levels shown a side by default."""

BookState = Literal["waiting", "partial", "live", "stale"]

STATE_TEXT: dict[str, str] = {
    "waiting": "waiting for the first orderbook message",
    "partial": "no snapshot seen since start: levels from updates only",
    "live": "live",
    "stale": "stale: reconnected, waiting for the next snapshot",
}
"""What each state means, in the words the ladder's header uses."""


def state_of(book: OrderBook | None) -> BookState:
    """How far ``book`` can be trusted (see the module docstring)."""
    if book is None:
        return "waiting"
    if book.valid:
        return "live"
    return "stale" if book.resets else "partial"


def snapshot(
    symbol: str, book: OrderBook | None, *, depth: int, now_ns: int, age: float | None
) -> dict[str, Any]:
    """The book of ``symbol`` as a JSON-ready dict (one NDJSON line of ``book``).

    Args:
        depth: levels a side.
        now_ns: wall-clock time of the snapshot (nanoseconds), written as RFC 3339.
        age: seconds since the last orderbook message of the symbol arrived, or ``None``.
    """
    from alpaca_cli.alpaca.timestamps import format_rfc3339

    state = state_of(book)
    bids: list[list[float]] = []
    asks: list[list[float]] = []
    spread = mid = None
    levels = [0, 0]
    book_time = None
    if book is not None:
        top_bids, top_asks = book.top(depth)
        bids = _cumulative(top_bids)
        asks = _cumulative(top_asks)
        spread, mid = book.spread, book.mid
        levels = list(book.depth)
        book_time = format_rfc3339(book.timestamp) if book.timestamp is not None else None
    return {
        "symbol": symbol,
        "time": format_rfc3339(now_ns),
        "state": state,
        "stale": state == "stale",
        "snapshot_seen": book is not None and book.resets > 0,
        "book_time": book_time,
        "age": None if age is None else round(age, 3),
        "spread": spread,
        "mid": mid,
        "levels": levels,
        "bids": bids,
        "asks": asks,
    }


def _cumulative(levels: list[tuple[float, float]]) -> list[list[float]]:
    total = 0.0
    out = []
    for price, size in levels:
        total += size
        out.append([price, size, round(total, 12)])
    return out


def _decimals(values: list[float]) -> int:
    """Decimals enough for every price shown (at most 10), so bid and ask never look equal."""
    best = 0
    for value in values:
        text = f"{value:.10f}".rstrip("0")
        best = max(best, len(text.split(".")[1]) if "." in text else 0)
    return best


def render(snap: dict[str, Any]) -> RenderableType:
    """The ladder: a header line, asks (highest first) above bids, fixed decimals per side."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    prices = [p for p, _, _ in snap["asks"] + snap["bids"]]
    places = _decimals(prices)
    sizes = [v for _, s, c in snap["asks"] + snap["bids"] for v in (s, c)]
    size_places = min(8, _decimals(sizes))
    state = snap["state"]
    spread, mid = snap["spread"], snap["mid"]
    spread_text = "-" if spread is None else f"{spread:.{places}f}"
    mid_text = "-" if mid is None else f"{mid:.{places + 1}f}"
    nb, na = snap["levels"]
    head = (
        f"{snap['symbol']}  {STATE_TEXT[state]}  spread {spread_text}  mid {mid_text}  "
        f"age {fmt.seconds(snap['age'])}  levels {nb}/{na}"
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("side", "price", "size", "cumulative"):
        table.add_column(name, justify="left" if name == "side" else "right", no_wrap=True)
    style = "yellow" if state in ("stale", "partial") else None
    for price, size, cum in reversed(snap["asks"]):
        table.add_row(
            "ask",
            f"{price:.{places}f}",
            f"{size:.{size_places}f}",
            f"{cum:.{size_places}f}",
            style=style or "red",
        )
    for price, size, cum in snap["bids"]:
        table.add_row(
            "bid",
            f"{price:.{places}f}",
            f"{size:.{size_places}f}",
            f"{cum:.{size_places}f}",
            style=style or "green",
        )
    return Group(Text(head, style="bold"), Text(""), table)
