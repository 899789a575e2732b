"""The feed's JSON data-frame encoder writes exactly the codec's bytes, only faster."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alpaca_cli.alpaca.codec import encode_frame
from alpaca_cli.alpaca.messages import Bar, Message, Trade, Unknown
from alpaca_cli.alpaca.timestamps import format_rfc3339
from alpaca_cli.devstack.feed import DEFAULT_SYMBOLS, FeedConfig, Market
from alpaca_cli.devstack.feed.session import CHANNELS, Targets
from alpaca_cli.devstack.feed.wire import JsonFrameEncoder

T0 = 1_700_000_000 * 10**9
NS = 10**9
# Years 0000-9999, as format_rfc3339 allows.
MIN_NS = -62_167_219_200 * NS
MAX_NS = 253_402_300_799 * NS + NS - 1


@given(st.lists(st.integers(MIN_NS, MAX_NS), min_size=1, max_size=20))
def test_timestamps_match_the_shared_formatter_across_seconds(stamps: list[int]) -> None:
    encoder = JsonFrameEncoder()
    # Each stamp, its second's start (no fraction), and a neighbour in the same second.
    for ns in stamps:
        for t in (ns, ns - ns % NS, ns - ns % NS + 100):
            assert encoder.timestamp(t) == format_rfc3339(t)


def test_market_frames_are_byte_identical_to_the_codec() -> None:
    config = FeedConfig(seed=11, bar_interval=1.0)
    market = Market(config)
    symbols = DEFAULT_SYMBOLS
    targets = Targets({c: symbols for c in CHANNELS})
    encoder = JsonFrameEncoder()
    snapshots: list[Message] = [market.snapshot(s, T0) for s in symbols]
    batches: list[list[Message]] = [snapshots]
    for k in range(1, 40):
        now = T0 + k * 37_000_000  # crosses second (and bar) boundaries
        batch: list[Message] = [*market.bars(targets, now), *market.generate(200, targets, now)]
        if k % 3 == 0:
            for seq, message in enumerate(batch, start=1):
                assert not isinstance(message, Unknown)
                message.extra = {"seq": seq}
        batches.append(batch)
    kinds = {"Bar" if isinstance(m, Bar) else type(m).__name__ for batch in batches for m in batch}
    assert {"Trade", "Quote", "OrderBookUpdate", "Bar"} <= kinds
    for batch in batches:
        assert encoder.encode(batch) == encode_frame(batch, "json")


def test_a_trade_without_a_taker_side_and_an_empty_frame_match_too() -> None:
    encoder = JsonFrameEncoder()
    trade = Trade("BTC/USD", 1.5, 0.25, T0, 7, None)
    assert encoder.encode([trade]) == encode_frame([trade], "json")
    assert encoder.encode([]) == encode_frame([], "json")
