"""The official SDK (alpaca-py) against the feed, unchanged but for its URL.

alpaca-py speaks msgpack, sends its subscribe message fragmented, reads ``t`` as a msgpack
Timestamp and parses every message into pydantic models: an outside check on our codec.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from alpaca_cli.devstack.feed import FeedConfig, FeedServer
from alpaca_cli.devstack.loopthread import LoopThread

pytestmark = [
    pytest.mark.timeout(60),
    # alpaca-py still uses websockets' legacy client, which warns on import.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

data_live = pytest.importorskip("alpaca.data.live")
models = pytest.importorskip("alpaca.data.models")


def test_crypto_data_stream_authenticates_subscribes_and_receives_data():
    symbols = ("BTC/USD", "ETH/USD")
    received: dict[str, list[Any]] = {"trades": [], "quotes": [], "orderbooks": []}
    enough = threading.Event()

    def handler(kind: str):
        async def on_message(message: Any) -> None:
            received[kind].append(message)
            if all(len(v) >= 5 for v in received.values()):
                enough.set()

        return on_message

    with LoopThread(name="feed-for-alpaca-py") as lt:
        server = FeedServer(FeedConfig(key="AKTEST", secret="s3cret", rate=300, seed=1))
        lt.run(server.start(), timeout=10)
        try:
            stream = data_live.CryptoDataStream("AKTEST", "s3cret", url_override=server.url)
            stream.subscribe_trades(handler("trades"), *symbols)
            stream.subscribe_quotes(handler("quotes"), *symbols)
            stream.subscribe_orderbooks(handler("orderbooks"), *symbols)
            runner = threading.Thread(target=stream.run, name="alpaca-py", daemon=True)
            runner.start()
            try:
                assert enough.wait(timeout=20), {k: len(v) for k, v in received.items()}
            finally:
                stream.stop()
                runner.join(timeout=10)
            assert not runner.is_alive(), "alpaca-py's loop stopped"
            # The client's close frame may still be on its way to the server (a loaded
            # machine): wait for the server to see the connection end, then stop it.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(not c.close_reason for c in server.stats):
                time.sleep(0.02)
        finally:
            lt.run(server.stop(), timeout=10)

    trades = received["trades"]
    assert all(isinstance(t, models.Trade) for t in trades)
    assert {t.symbol for t in trades} <= set(symbols)
    assert all(t.id is not None and t.id > 2**53 for t in trades), "int64 ids survive"
    assert all(t.timestamp.tzinfo is not None for t in trades)
    quotes = received["quotes"]
    assert all(isinstance(q, models.Quote) and q.bid_price < q.ask_price for q in quotes)
    books = received["orderbooks"]
    assert all(isinstance(b, models.Orderbook) for b in books)
    first_per_symbol = {}
    for book in books:
        first_per_symbol.setdefault(book.symbol, book)
    assert all(b.reset for b in first_per_symbol.values()), "each book starts with a snapshot"
    (conn,) = server.stats
    assert conn.format == "msgpack"
    assert conn.close_reason == "closed by client", "alpaca-py closed with a close frame"
