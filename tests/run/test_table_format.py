"""The live table's formatting: fixed decimals per symbol, words, hidden columns, stable width."""

from __future__ import annotations

import io

from rich.console import Console

from alpaca_cli.alpaca.messages import Level, OrderBookUpdate, Quote, Trade
from alpaca_cli.live import format as fmt
from alpaca_cli.live.stats import RunInfo, StreamStats
from alpaca_cli.live.table import render

NS = 1_700_000_000_000_000_000


def text_of(stats: StreamStats, width: int = 200, height: int | None = None) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(render(stats, RunInfo(phase="streaming"), 2.0, width, height))
    return console.file.getvalue()  # type: ignore[attr-defined]


def line_of(text: str, symbol: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(symbol))


def test_numbers_never_take_exponent_form_and_shib_bid_and_ask_differ() -> None:
    assert fmt.decimals_of(87000.5) == 1 and fmt.decimals_of(1.234e-05) == 8
    assert fmt.size(1.2e-05) == "0.000012" and fmt.size(1200.0) == "1200"
    assert fmt.price(0.00001234, 8) == "0.00001234"
    stats = StreamStats(start=0.0)
    stats.channels = ("quotes",)
    stats.expect(["SHIB/USD"])
    stats.record([Quote("SHIB/USD", 0.00001234, 1e6, 0.00001236, 2e6, NS)], now=1, received_ns=NS)
    row = line_of(text_of(stats), "SHIB/USD")
    assert "0.00001234" in row and "0.00001236" in row and "0.00000002" in row
    assert "e-" not in row and "quote" in row.split()


def test_prices_of_one_symbol_share_their_decimals() -> None:
    stats = StreamStats(start=0.0)
    stats.channels = ("trades", "orderbooks")
    stats.expect(["BTC/USD"])
    book = OrderBookUpdate("BTC/USD", NS, [Level(87000.5, 1.0)], [Level(87001.0, 2.0)], reset=True)
    stats.books.apply(book)
    stats.record([book, Trade("BTC/USD", 87000.125, 0.00012, NS, 1, "B")], now=1, received_ns=NS)
    row = line_of(text_of(stats), "BTC/USD")
    assert "87,000.500" in row and "87,001.000" in row and "0.500" in row  # spread too
    assert "87,000.125 x 0.00012 buy" in row
    assert row.split()[4] == "trade"  # `last` in words


def test_columns_that_cannot_apply_are_hidden() -> None:
    stats = StreamStats(start=0.0)
    stats.channels = ("trades",)
    stats.expect(["BTC/USD"])
    header = next(line for line in text_of(stats).splitlines() if line.startswith("symbol"))
    assert "last trade" in header
    assert not {"bid", "ask", "spread", "levels"} & set(header.split())
    stats.channels = ("orderbooks",)
    header = next(line for line in text_of(stats).splitlines() if line.startswith("symbol"))
    assert "last trade" not in header and "levels" in header and "bid" in header


def test_the_width_stays_when_a_book_goes_stale() -> None:
    stats = StreamStats(start=0.0)
    stats.channels = ("orderbooks",)
    stats.expect(["BTC/USD"])
    book = OrderBookUpdate("BTC/USD", NS, [Level(100.0, 1.0)], [Level(101.0, 2.0)], reset=True)
    stats.books.apply(book)
    stats.record([book], now=1, received_ns=NS)
    before = line_of(text_of(stats), "symbol")
    stats.note_reconnect(1.5)
    after_text = text_of(stats)
    assert "(stale)" in line_of(after_text, "BTC/USD")
    assert line_of(after_text, "symbol") == before


def test_cropped_rows_say_how_many_more() -> None:
    stats = StreamStats(start=0.0)
    symbols = [f"C{i}/USD" for i in range(20)]
    stats.expect(symbols)
    text = text_of(stats, height=12)
    assert sum(line.startswith("C") for line in text.splitlines()) == 6
    assert "+14 more" in text
