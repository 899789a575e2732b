"""The live table: a Rich view of :class:`~alpaca_cli.live.stats.StreamStats` on stderr.

Why it is driven from the stream loop instead of Rich's refresh thread: the model is mutated by
the loop, and rendering reads dicts that a second thread would see change mid-iteration. The loop
wakes at least every 100 ms (its queue poll timeout) and calls :meth:`LiveTable.tick`, which
redraws at a steady :data:`REFRESH_HZ` however fast or slow messages arrive.

Stdout stays untouched (``redirect_stdout=False``): ``--json`` data may go there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alpaca_cli.closing import Closing
from alpaca_cli.live import format as fmt
from alpaca_cli.live.stats import RunInfo, StreamStats, SymbolRow

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

__all__ = ["COLUMNS", "REFRESH_HZ", "LiveTable", "render"]

REFRESH_HZ = 4.0
"""Redraws per second (2-4 Hz keeps a terminal readable and costs nothing)."""

COLUMNS = (
    "symbol",
    "frames",
    "msg/s 5s",
    "msg/s 60s",
    "last",
    "last trade",
    "bid",
    "ask",
    "spread",
    "levels",
    "age",
    "latency",
)


COMPACT = (
    "symbol",
    "frames",
    "msg/s 5s",
    "last trade",
    "bid",
    "ask",
    "spread",
    "levels",
    "latency",
)
"""The columns kept on a terminal narrower than :data:`WIDE` (80 columns is common)."""
WIDE = 120


def _short_id(value: str | None) -> str:
    if not value:
        return "-"
    return value if len(value) <= 13 else value[:12] + "…"


def _status(value: str | None) -> str:
    return f" ({value})" if value else ""


def header_lines(stats: StreamStats, info: RunInfo, now: float) -> list[str]:
    """The header as two plain lines (also used by tests and the plain view)."""
    first = (
        f"gateway {info.gateway or '-'}  worker {_short_id(info.worker_id)}"
        f"{_status(info.worker_status)}  connection {_short_id(info.connection_id)}"
        f"{_status(info.connection_status)}  topic {info.topic or '-'}"
    )
    second = (
        f"uptime {fmt.duration(stats.streaming_time(now))}  {info.phase}  "
        f"reconnects {stats.reconnects}  errors {stats.errors}  "
        f"last control: {stats.last_control or '-'}"
    )
    return [first, second]


STALE = " (stale)"
"""Marker after a stale book's levels; the column always has room for it."""

TRADE_COLUMNS = frozenset({"last trade"})
BOOK_COLUMNS = frozenset({"bid", "ask", "spread"})
LEVEL_COLUMNS = frozenset({"levels"})


def row_cells(row: SymbolRow) -> list[str]:
    """One symbol's cells in :data:`COLUMNS` order; prices in the symbol's fixed decimals."""
    places = row.decimals
    trade = "-"
    if row.last_trade is not None:
        p, size, taker = row.last_trade
        trade = f"{fmt.price(p, places)} x {fmt.size(size)} {fmt.side(taker)}"
    levels = "-" if row.levels is None else f"{row.levels[0]}/{row.levels[1]}"
    if row.book_valid is False:
        levels += STALE
    return [
        row.symbol,
        fmt.count(row.frames),
        fmt.rate(row.rate_short),
        fmt.rate(row.rate_long),
        fmt.kind(row.last_kind),
        trade,
        fmt.price(row.best_bid, places),
        fmt.price(row.best_ask, places),
        fmt.price(row.spread, places),
        levels,
        fmt.seconds(row.age),
        fmt.seconds(row.latency),
    ]


def applicable(stats: StreamStats, rows: list[SymbolRow]) -> set[str]:
    """Columns that cannot apply to what is subscribed (or, before the subscription is known,
    to what arrived): no ``last trade`` without trades, no bid/ask without books or quotes,
    no ``levels`` without books."""
    channels = set(stats.channels)
    if not channels:
        kinds = {k for row in rows for k in row.counts}
        names = {"t": "trades", "q": "quotes", "o": "orderbooks"}
        channels = {names[k] for k in kinds if k in names}
        if not channels:
            return set()  # nothing known yet: hide nothing
    hidden: set[str] = set()
    if "trades" not in channels:
        hidden |= TRADE_COLUMNS
    if not channels & {"orderbooks", "quotes"}:
        hidden |= BOOK_COLUMNS
    if "orderbooks" not in channels:
        hidden |= LEVEL_COLUMNS
    return hidden


def render(
    stats: StreamStats, info: RunInfo, now: float, width: int = WIDE, height: int | None = None
) -> RenderableType:
    """The header and one row per symbol, as a Rich renderable.

    Below :data:`WIDE` columns only the :data:`COMPACT` columns are shown (and the last trade
    only once a trade arrived), so that no column is truncated into uselessness. Columns that
    cannot apply to the subscribed channels are hidden. With ``height`` (the terminal's), rows
    that do not fit are cropped and a ``+N more`` line says how many.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    rows = stats.rows(now)
    hidden = applicable(stats, rows)
    shown = [c for c in COLUMNS if c not in hidden]
    if width < WIDE:
        shown = [c for c in shown if c in COMPACT]
        if "last trade" in shown and all(row.last_trade is None for row in rows):
            shown.remove("last trade")
    cropped = 0
    if height is not None:
        room = max(1, height - 6)  # header lines, blank line, table header, "+N more"
        if len(rows) > room:
            cropped = len(rows) - room
            rows = rows[:room]
    keep = [COLUMNS.index(c) for c in shown]
    table = Table(box=None, pad_edge=False, header_style="bold")
    cells = [row_cells(row) for row in rows]
    books = any(row.levels is not None for row in rows)
    for n, name in zip(keep, shown, strict=True):
        # Every column but the last trade keeps its full width; the trade text gives way.
        widest = max([len(name), *(len(c[n]) for c in cells)])
        if name == "levels" and books:
            # Room for " (stale)" from the start: the table must not jump when it appears.
            widest = max(widest, max(len(c[n].removesuffix(STALE)) for c in cells) + len(STALE))
        table.add_column(
            name,
            justify="left" if name in ("symbol", "last", "last trade", "levels") else "right",
            no_wrap=True,
            min_width=None if name == "last trade" else widest,
            max_width=17 if name == "last trade" and width < WIDE else None,
            overflow="ellipsis",
        )
    for row, row_text in zip(rows, cells, strict=True):
        style = "yellow" if row.book_valid is False else None
        table.add_row(*(row_text[i] for i in keep), style=style)
    first, second = header_lines(stats, info, now)
    parts: list[RenderableType] = [Text(first, style="bold"), Text(second), Text(""), table]
    if cropped:
        parts.append(Text(f"+{cropped} more (a taller terminal shows them; --report has all)"))
    return Group(*parts)


class LiveTable(Closing):
    """A Rich ``Live`` on a stderr console, redrawn by :meth:`tick`.

    Example::

        with LiveTable(stats, info, console) as view:
            while streaming:
                ...                      # record frames
                view.tick(monotonic())   # redraws when 1/REFRESH_HZ has passed
    """

    def __init__(self, stats: StreamStats, info: RunInfo, console: Console) -> None:
        self._stats = stats
        self._info = info
        self._console = console
        self._live: Live | None = None
        self._next = 0.0

    def __enter__(self) -> LiveTable:
        from rich.live import Live

        self._live = Live(
            console=self._console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=True,
            transient=False,
        )
        self._live.start()
        return self

    def tick(self, now: float, *, force: bool = False) -> None:
        """Redraw if the refresh interval has passed since the last redraw (or ``force``)."""
        if self._live is None or (now < self._next and not force):
            return
        self._next = now + 1.0 / REFRESH_HZ
        view = render(self._stats, self._info, now, self._console.width, self._console.height)
        self._live.update(view, refresh=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
