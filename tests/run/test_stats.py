"""The stream model: counts, rates, latency, books, smoke check, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alpaca_cli.alpaca import decode_json
from alpaca_cli.alpaca.messages import Level, OrderBookUpdate, Subscription, Success, Trade
from alpaca_cli.live.report import build_report, write_report
from alpaca_cli.live.stats import RateWindow, StreamStats

NS = 1_700_000_000_000_000_000


def trade(symbol: str, ts: int = NS, price: float = 100.0) -> Trade:
    return Trade(symbol=symbol, price=price, size=0.5, t=ts, id=1, taker_side="B")


def book(
    symbol: str, *, reset: bool, bids: list[tuple[float, float]], asks: list[tuple[float, float]]
) -> OrderBookUpdate:
    return OrderBookUpdate(
        symbol=symbol,
        t=NS,
        bids=[Level(*b) for b in bids],
        asks=[Level(*a) for a in asks],
        reset=reset,
    )


class TestRateWindow:
    def test_rate_over_a_full_window_is_count_over_seconds(self) -> None:
        window = RateWindow(span=60, width=0.5, start=0.0)
        for i in range(100):
            window.add(i * 0.1)  # 10 per second for 10 s
        assert window.rate(10.0, 5.0) == pytest.approx(10.0, rel=0.05)
        assert window.rate(10.0, 60.0) == pytest.approx(10.0, rel=0.05)

    def test_old_counts_leave_the_short_window(self) -> None:
        window = RateWindow(span=60, width=0.5, start=0.0)
        window.add(1.0, 50)
        assert window.rate(20.0, 5.0) == 0.0
        assert window.rate(20.0, 60.0) == pytest.approx(50 / 20.0)

    def test_a_gap_longer_than_the_ring_clears_it(self) -> None:
        window = RateWindow(span=10, width=0.5, start=0.0)
        window.add(1.0, 50)
        window.add(500.0, 1)
        assert window.rate(500.0, 10.0) == pytest.approx(1 / 10.0, rel=0.1)

    def test_no_time_elapsed_gives_zero(self) -> None:
        assert RateWindow(start=5.0).rate(5.0, 5.0) == 0.0


class TestStreamStats:
    def test_data_messages_are_counted_per_symbol_and_kind(self) -> None:
        stats = StreamStats(start=0.0)
        stats.expect(["BTC/USD", "ETH/USD"])
        stats.record([trade("BTC/USD"), trade("BTC/USD")], now=1.0, received_ns=NS + 50_000_000)
        stats.record(
            [book("BTC/USD", reset=True, bids=[(99.0, 1.0), (98.0, 2.0)], asks=[(101.0, 1.0)])],
            now=2.0,
            received_ns=NS + 10_000_000,
        )
        rows = {row.symbol: row for row in stats.rows(3.0)}
        btc = rows["BTC/USD"]
        assert btc.frames == 3
        assert btc.counts == {"t": 2, "o": 1}
        assert btc.last_kind == "o"
        assert btc.last_trade == (100.0, 0.5, "B")
        assert (btc.best_bid, btc.best_ask, btc.spread) == (99.0, 101.0, 2.0)
        assert btc.levels == (2, 1)
        assert btc.book_valid is True
        assert btc.age == pytest.approx(1.0)
        assert btc.first_latency == pytest.approx(0.05)
        assert btc.latency == pytest.approx(0.01)
        assert rows["ETH/USD"].frames == 0
        assert stats.data_messages == 3
        assert stats.frames_received == 2

    def test_control_messages_are_described_and_errors_counted(self) -> None:
        stats = StreamStats(start=0.0)
        stats.record(
            decode_json(b'[{"T":"error","code":402,"msg":"auth failed"}]'), now=1, received_ns=NS
        )
        assert stats.errors == 1
        assert stats.last_control == "error 402 auth failed"
        stats.record([Subscription(orderbooks=("BTC/USD",))], now=2, received_ns=NS)
        assert stats.last_control == "subscription orderbooks=BTC/USD"
        stats.record([Success("authenticated")], now=3, received_ns=NS)
        assert stats.last_control == "authenticated"
        assert stats.data_messages == 0

    def test_a_reconnect_marks_books_stale_until_the_next_reset(self) -> None:
        stats = StreamStats(start=0.0)
        stats.record(
            [book("BTC/USD", reset=True, bids=[(1.0, 1.0)], asks=[(2.0, 1.0)])],
            now=1,
            received_ns=NS,
        )
        stats.note_reconnect()
        assert stats.reconnects == 1
        assert stats.row("BTC/USD", 2).book_valid is False
        stats.record(
            [book("BTC/USD", reset=True, bids=[(1.0, 1.0)], asks=[(2.0, 1.0)])],
            now=3,
            received_ns=NS,
        )
        assert stats.row("BTC/USD", 3).book_valid is True

    def test_short_of_names_expected_symbols_below_the_minimum(self) -> None:
        stats = StreamStats(start=0.0)
        stats.expect(["BTC/USD", "ETH/USD", "*"])
        stats.record([trade("BTC/USD")] * 3, now=1, received_ns=NS)
        assert stats.short_of(3) == {"ETH/USD": 0}
        assert stats.short_of(4) == {"BTC/USD": 3, "ETH/USD": 0}

    def test_silence_is_measured_from_the_last_data_message(self) -> None:
        stats = StreamStats(start=10.0)
        assert stats.silent_for(15.0) == 5.0
        stats.record([trade("BTC/USD")], now=16.0, received_ns=NS)
        assert stats.silent_for(20.0) == 4.0


def test_report_has_the_documented_shape(tmp_path: Path) -> None:
    stats = StreamStats(start=0.0)
    stats.expect(["BTC/USD"])
    stats.record([trade("BTC/USD")], now=1.0, received_ns=NS + 2_000_000)
    report = build_report(stats, now=2.0, steps={"deploy": 0.1234}, exit_reason="ok", exit_code=0)
    path = tmp_path / "out" / "report.json"
    write_report(path, report)
    loaded = json.loads(path.read_text())
    assert loaded["symbols"]["BTC/USD"]["frames"] == 1
    assert loaded["symbols"]["BTC/USD"]["counts"] == {"t": 1}
    assert loaded["symbols"]["BTC/USD"]["first_message_latency"] == pytest.approx(0.002)
    assert loaded["symbols"]["BTC/USD"]["rate"] == pytest.approx(0.5)
    assert loaded["steps"] == {"deploy": 0.123}
    assert (loaded["reconnects"], loaded["errors"]) == (0, 0)
    assert (loaded["exit_reason"], loaded["exit_code"]) == ("ok", 0)
    assert list(tmp_path.joinpath("out").iterdir()) == [path]


def test_the_report_counts_the_connections_opened() -> None:
    from alpaca_cli.live.report import build_report
    from alpaca_cli.live.stats import StreamStats

    stats = StreamStats(start=0.0)
    common = dict(now=1.0, steps={}, exit_reason="duration reached", exit_code=0)
    assert build_report(stats, **common)["connections_opened"] == 0  # type: ignore[arg-type]
    report = build_report(stats, connections_opened=2, **common)  # type: ignore[arg-type]
    assert report["connections_opened"] == 2
