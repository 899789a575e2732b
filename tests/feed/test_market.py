"""The seeded synthetic market, driven with a fake clock."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from alpaca_cli.alpaca.book import OrderBook
from alpaca_cli.alpaca.messages import Bar, OrderBookUpdate, Quote, Trade
from alpaca_cli.devstack.feed import TRADE_ID_BASE, UNIVERSE, FeedConfig, Market
from alpaca_cli.devstack.feed.session import Targets

T0 = 1_700_000_000 * 10**9
TICK = 10_000_000  # 10 ms
SYMBOLS = ("BTC/USD", "DOGE/USD", "SHIB/USD")


def targets(**channels: tuple[str, ...]) -> Targets:
    return Targets(channels)


def run_market(market: Market, tg: Targets, ticks: int, per_tick: int) -> list[object]:
    out: list[object] = []
    for k in range(1, ticks + 1):
        out += market.generate(per_tick, tg, T0 + k * TICK)
    return out


def test_the_same_seed_gives_the_same_messages_and_another_seed_does_not():
    tg = targets(trades=SYMBOLS, quotes=SYMBOLS, orderbooks=SYMBOLS)

    def sample(seed: int) -> list[object]:
        market = Market(FeedConfig(seed=seed, symbols=SYMBOLS))
        snapshots = [market.snapshot(s, T0) for s in SYMBOLS]
        return [*snapshots, *run_market(market, tg, 50, 20)]

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_batch_sizes_do_not_change_the_sequence():
    tg = targets(trades=SYMBOLS, quotes=SYMBOLS)

    def content(per_tick: int, ticks: int) -> list[tuple[object, ...]]:
        market = Market(FeedConfig(seed=3, symbols=SYMBOLS))
        messages = run_market(market, tg, ticks, per_tick)
        return [(type(m).__name__, m.symbol, getattr(m, "price", None)) for m in messages]

    assert content(1, 600) == content(100, 6) == content(600, 1)


def test_timestamps_increase_strictly_within_a_connection():
    market = Market(FeedConfig(symbols=SYMBOLS))
    messages = run_market(market, targets(quotes=SYMBOLS), 20, 50)
    stamps = [m.timestamp for m in messages]
    assert stamps == sorted(set(stamps))
    assert stamps[0] > T0 and stamps[-1] <= T0 + 20 * TICK


def test_a_batch_is_dated_when_it_is_generated_not_spread_back_over_the_tick():
    market = Market(FeedConfig(symbols=SYMBOLS))
    tg = targets(quotes=SYMBOLS, trades=SYMBOLS)
    market.generate(10, tg, T0)
    batch = market.generate(50, tg, T0 + TICK)
    stamps = [m.timestamp for m in batch]
    # One nanosecond apart, ending at the generation time: no pacing delay is baked into t.
    assert stamps == list(range(T0 + TICK - 49, T0 + TICK + 1))
    # A batch asked for "earlier" than the last stamp still moves strictly forwards.
    again = market.generate(5, tg, T0)
    assert [m.timestamp for m in again] == list(range(T0 + TICK + 1, T0 + TICK + 6))


def test_trades_have_consecutive_int64_ids_a_taker_side_and_hit_the_touch():
    market = Market(FeedConfig(symbols=SYMBOLS))
    for s in SYMBOLS:
        market.snapshot(s, T0)
    messages = run_market(market, targets(trades=SYMBOLS), 10, 50)
    trades = [m for m in messages if isinstance(m, Trade)]
    assert [t.id for t in trades] == list(range(TRADE_ID_BASE + 1, TRADE_ID_BASE + 501))
    assert {t.taker_side for t in trades} == {"B", "S"}
    assert all(t.size > 0 for t in trades)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), depth=st.integers(2, 30))
def test_a_client_book_built_from_snapshot_and_deltas_matches_the_server_and_never_crosses(
    seed: int, depth: int
):
    market = Market(FeedConfig(seed=seed, symbols=SYMBOLS, book_depth=depth))
    tg = targets(trades=SYMBOLS, quotes=SYMBOLS, orderbooks=SYMBOLS)
    books = {s: OrderBook(s) for s in SYMBOLS}
    for s in SYMBOLS:
        books[s].apply(market.snapshot(s, T0))
    for k in range(1, 400):
        # One message per call, so the server's book is compared as of that message.
        for m in market.generate(1, tg, T0 + k * TICK):
            if isinstance(m, OrderBookUpdate):
                book = books[m.symbol]
                book.apply(m)
                assert not book.crossed
                assert book.valid
                server = market.book(m.symbol)
                spec = UNIVERSE[m.symbol]
                assert {round(p / spec.tick) for p in book.bids} == set(server.bids)
                assert {round(p / spec.tick) for p in book.asks} == set(server.asks)
            elif isinstance(m, Quote):
                assert m.bid_price < m.ask_price
                assert m.bid_size > 0 and m.ask_size > 0


def test_deltas_add_change_and_delete_levels():
    market = Market(FeedConfig(symbols=("ETH/USD",)))
    snapshot = market.snapshot("ETH/USD", T0)
    known = {lv.p for lv in snapshot.bids + snapshot.asks}
    adds = changes = deletes = 0
    for m in run_market(market, targets(orderbooks=("ETH/USD",)), 100, 5):
        assert isinstance(m, OrderBookUpdate) and not m.reset
        assert m.bids or m.asks, "every delta changes something"
        for p, s in ((lv.p, lv.s) for lv in m.bids + m.asks):
            if s == 0:
                deletes += 1
                known.discard(p)
            elif p in known:
                changes += 1
            else:
                adds += 1
                known.add(p)
    assert adds and changes and deletes


def test_prices_stay_near_realistic_levels():
    market = Market(FeedConfig(symbols=tuple(UNIVERSE)))
    names = tuple(UNIVERSE)
    messages = run_market(market, targets(quotes=names), 200, 50)
    for m in messages:
        assert isinstance(m, Quote)
        level = UNIVERSE[m.symbol].price
        assert 0.9 * level < m.bid_price < m.ask_price < 1.1 * level, m


def test_bars_close_each_window_with_daily_bars_and_corrections():
    interval = 60 * 10**9
    day = T0 - T0 % (86_400 * 10**9)
    market = Market(FeedConfig(symbols=SYMBOLS, bar_interval=60))
    tg = targets(trades=("BTC/USD",), bars=SYMBOLS, dailyBars=SYMBOLS, updatedBars=SYMBOLS)
    now = T0 - T0 % interval + 1
    assert market.bars(tg, now) == []  # the first call only starts the window
    bars: list[Bar] = []
    for minute in range(1, 30):
        market.generate(20, tg, now + minute * interval - 10)
        assert market.bars(tg, now + minute * interval - 5) == [], "window still open"
        out = market.bars(tg, now + minute * interval)
        assert all(isinstance(b, Bar) for b in out)
        bars += out  # type: ignore[arg-type]
    minute_bars = [b for b in bars if b.kind == "b"]
    assert len(minute_bars) == 29 * len(SYMBOLS)
    assert all(b.timestamp % interval == 0 for b in minute_bars)
    for b in bars:
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert b.low <= b.vwap <= b.high
        traded = b.trade_count >= 1 and b.volume > 0
        quote_only = b.trade_count == 0 and b.volume == 0
        assert traded or quote_only, b
    daily = [b for b in bars if b.kind == "d"]
    assert {b.timestamp for b in daily} == {day}, "T0 + 30 minutes stays within one UTC day"
    for symbol in SYMBOLS:
        running = [b for b in daily if b.symbol == symbol][-1]
        minutes = [b for b in minute_bars if b.symbol == symbol]
        assert running.trade_count == sum(b.trade_count for b in minutes)
        assert running.open == minutes[0].open and running.close == minutes[-1].close
        assert running.high == max(b.high for b in minutes)
    assert any(b.trade_count == 0 and b.volume == 0 for b in minute_bars), (
        "windows without trades sometimes give quote mid-price bars, n = 0 and v = 0"
    )
    assert any(b.trade_count >= 1 for b in minute_bars)
    corrections = [b for b in bars if b.kind == "u"]
    assert corrections, "about one bar in three gets a late correction"
    earlier = {(b.symbol, b.timestamp): b for b in minute_bars}
    for u in corrections:
        original = earlier[(u.symbol, u.timestamp)]
        assert u.volume > original.volume and u.trade_count == original.trade_count + 1


def test_bars_do_not_disturb_the_trade_sequence():
    tg_plain = targets(trades=SYMBOLS)
    tg_bars = targets(trades=SYMBOLS, bars=SYMBOLS, updatedBars=SYMBOLS)

    def trades(tg: Targets, with_bars: bool) -> list[tuple[float, float]]:
        market = Market(FeedConfig(symbols=SYMBOLS, bar_interval=0.001))
        out: list[tuple[float, float]] = []
        for k in range(1, 50):
            now = T0 + k * TICK
            if with_bars:
                market.bars(tg, now)
            out += [(m.price, m.size) for m in market.generate(5, tg, now)]  # type: ignore[union-attr]
        return out

    assert trades(tg_plain, False) == trades(tg_bars, True)


def test_unknown_symbols_get_an_empty_snapshot_and_no_data():
    market = Market(FeedConfig(symbols=SYMBOLS))
    snap = market.snapshot("XYZ/USD", T0)
    assert snap.reset and snap.bids == [] and snap.asks == []
    assert market.generate(10, targets(trades=("XYZ/USD",)), T0 + TICK) == []
