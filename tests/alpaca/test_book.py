"""The L2 book against a naive reference model, plus the spec's own example sequence."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from alpaca_cli.alpaca.book import Books, OrderBook
from alpaca_cli.alpaca.codec import decode
from alpaca_cli.alpaca.messages import Level, Message, OrderBookUpdate, Success, Trade


class ReferenceBook:
    """The obvious, slow model: apply levels one by one, sort to answer every question."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.valid = False
        self.updates = 0
        self.resets = 0

    def apply(self, msg: OrderBookUpdate) -> None:
        if msg.reset:
            self.bids, self.asks = {}, {}
            self.valid = True
            self.resets += 1
        else:
            self.updates += 1
        for side, levels in ((self.bids, msg.bids), (self.asks, msg.asks)):
            for price, size in ((lv.p, lv.s) for lv in levels):
                if size > 0:
                    side[price] = size
                else:
                    side.pop(price, None)

    def best_bid(self) -> tuple[float, float] | None:
        return max(self.bids.items(), default=None)

    def best_ask(self) -> tuple[float, float] | None:
        return min(self.asks.items(), default=None)


# A small price grid, so that updates hit existing levels and delete the best one often.
prices = st.sampled_from([float(p) for p in range(90, 111)] + [100.5, 99.5])
sizes = st.sampled_from([0, 0, 0.0, 1, 0.25, 2.5, 10.0, -1.0])
levels = st.lists(st.tuples(prices, sizes), max_size=8)


def update(bids: list[tuple[float, float]], asks: list[tuple[float, float]], reset: bool = False,
           t: int = 0) -> OrderBookUpdate:  # fmt: skip
    return OrderBookUpdate(
        "BTC/USD", t, [Level(*b) for b in bids], [Level(*a) for a in asks], reset
    )


class BookMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook("BTC/USD")
        self.twin = Books()  # the same messages through apply_messages, one at a time
        self.ref = ReferenceBook()
        self.t = 0

    @rule(bids=levels, asks=levels)
    def apply_update(
        self, bids: list[tuple[float, float]], asks: list[tuple[float, float]]
    ) -> None:
        self.t += 1
        msg = update(bids, asks, t=self.t)
        self.book.apply(msg)
        assert self.twin.apply_messages([Success("x"), msg]) == 1
        self.ref.apply(msg)

    @rule(bids=levels, asks=levels)
    def apply_reset(self, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> None:
        self.t += 1
        msg = update(bids, asks, reset=True, t=self.t)
        self.book.apply(msg)
        assert self.twin.apply_messages([msg]) == 1
        self.ref.apply(msg)

    @rule()
    def invalidate(self) -> None:
        self.book.invalidate()
        self.twin.invalidate()
        self.ref.valid = False

    @rule()
    def query_best(self) -> None:
        # Queries in between updates exercise the lazily rescanned best price.
        assert self.book.best_bid == self.ref.best_bid()
        assert self.book.best_ask == self.ref.best_ask()

    @invariant()
    def apply_messages_matches_apply(self) -> None:
        if not self.t:
            return
        twin, book = self.twin["BTC/USD"], self.book
        assert (twin.bids, twin.asks, twin.best_bid, twin.best_ask) == (
            book.bids,
            book.asks,
            book.best_bid,
            book.best_ask,
        )
        assert (twin.valid, twin.updates, twin.resets, twin.timestamp) == (
            book.valid,
            book.updates,
            book.resets,
            book.timestamp,
        )

    @invariant()
    def matches_reference(self) -> None:
        book, ref = self.book, self.ref
        assert book.bids == ref.bids
        assert book.asks == ref.asks
        bid, ask = ref.best_bid(), ref.best_ask()
        assert book.best_bid == bid
        assert book.best_ask == ask
        assert book.depth == (len(ref.bids), len(ref.asks))
        if bid is None or ask is None:
            assert book.spread is None and book.mid is None and not book.crossed
        else:
            assert book.spread == ask[0] - bid[0]
            assert book.mid == (ask[0] + bid[0]) / 2
            assert book.crossed == (bid[0] >= ask[0])
        top_bids, top_asks = book.top(3)
        assert top_bids == sorted(ref.bids.items(), reverse=True)[:3]
        assert top_asks == sorted(ref.asks.items())[:3]
        assert book.valid == ref.valid
        assert (book.updates, book.resets) == (ref.updates, ref.resets)
        assert book.timestamp == (self.t or None)


TestBookMatchesReference = BookMachine.TestCase
TestBookMatchesReference.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)


def test_spec_example_sequence() -> None:
    books = Books()
    frames = [
        b'[{"T":"o","S":"BTC/USD","t":"2024-03-12T10:38:50.79613221Z","b":[{"p":71859.53,"s":0.27994},{"p":71849.4,"s":0.553986}],"a":[{"p":71939.7,"s":0.83953}],"r":true}]',
        b'[{"T":"o","S":"BTC/USD","t":"2024-03-12T10:38:51Z","b":[{"p":71859.53,"s":0}],"a":[{"p":71900.1,"s":1.5}]}]',
    ]
    for payload in frames:
        for msg in decode(payload):
            assert isinstance(msg, OrderBookUpdate)
            books.apply(msg)
    book = books["BTC/USD"]
    assert book.valid
    assert book.best_bid == (71849.4, 0.553986)
    assert book.best_ask == (71900.1, 1.5)
    assert book.spread == pytest.approx(50.7)
    assert book.mid == pytest.approx((71849.4 + 71900.1) / 2)
    assert book.depth == (1, 2)
    assert not book.crossed
    assert (book.resets, book.updates) == (1, 1)


def test_a_new_book_is_invalid_until_its_first_reset() -> None:
    book = OrderBook("ETH/USD")
    assert not book.valid and book.best_bid is None and book.best_ask is None
    book.apply(update([(1.0, 1.0)], [(2.0, 1.0)]))
    assert not book.valid  # deltas alone never make a book trustworthy
    assert book.best_bid == (1.0, 1.0)
    book.apply(update([(1.0, 1.0)], [(2.0, 1.0)], reset=True))
    assert book.valid


def test_invalidate_holds_until_the_next_reset_not_the_next_update() -> None:
    book = OrderBook("ETH/USD")
    book.apply(update([(1.0, 1.0)], [(2.0, 1.0)], reset=True))
    book.invalidate()
    book.apply(update([(1.5, 1.0)], []))
    assert not book.valid
    book.apply(update([(1.0, 3.0)], [(2.0, 1.0)], reset=True))
    assert book.valid and book.bids == {1.0: 3.0}


def test_crossed_and_locked_books_are_detected() -> None:
    book = OrderBook("X/Y")
    book.apply(update([(10.0, 1.0)], [(11.0, 1.0)], reset=True))
    assert not book.crossed
    book.apply(update([(11.0, 1.0)], []))
    assert book.crossed  # locked
    book.apply(update([(12.0, 1.0)], []))
    assert book.crossed and book.spread == -1.0


def test_reset_with_zero_sizes_and_duplicates_applies_in_order() -> None:
    book = OrderBook("X/Y")
    book.apply(update([(1.0, 1.0), (2.0, 0), (1.0, 3.0)], [(5.0, 2.0), (5.0, 0)], reset=True))
    assert book.bids == {1.0: 3.0} and book.asks == {}
    assert book.best_ask is None and book.spread is None and book.mid is None


def test_books_route_by_symbol_and_invalidate_together() -> None:
    books = Books()
    a = books.apply(OrderBookUpdate("A/USD", 1, [Level(1.0, 1.0)], [], reset=True))
    b = books.apply(OrderBookUpdate("B/USD", 2, [], [Level(9.0, 1.0)], reset=True))
    assert a is books["A/USD"] and b is books["B/USD"] and a is not b
    assert sorted(books) == ["A/USD", "B/USD"] and len(books) == 2
    assert books.get("C/USD") is None
    books.invalidate()
    assert not a.valid and not b.valid


def test_apply_messages_skips_other_messages() -> None:
    books = Books()
    msgs: list[Message] = [
        Success("connected"),
        Trade("A/USD", 1.0, 1.0, 0, 1, "B"),
        OrderBookUpdate("A/USD", 1, [Level(1.0, 1.0)], [], reset=True),
        OrderBookUpdate("A/USD", 2, [Level(1.5, 2.0)], []),
    ]
    assert books.apply_messages(msgs) == 2
    assert books["A/USD"].best_bid == (1.5, 2.0)
    assert "A/USD" in repr(books["A/USD"]) and "valid" in repr(books["A/USD"])


class _MyUpdate(OrderBookUpdate):
    """A caller's own subclass: still an order-book update to the books."""


def test_apply_messages_takes_subclasses_and_skips_others_every_time() -> None:
    books = Books()
    update = _MyUpdate("A/USD", 1, [Level(1.0, 1.0)], [], reset=True)
    for _ in range(2):  # the second pass answers from the memo of classes that are not books
        assert books.apply_messages([Success("connected"), update, Trade("A/USD", 1, 1, 0, 1)]) == 1
    assert books["A/USD"].resets == 2
