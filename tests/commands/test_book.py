"""``alpaca-md book``: the ladder model, and NDJSON snapshots from a real pipeline."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest
from rich.console import Console

from alpaca_cli.alpaca.book import OrderBook
from alpaca_cli.alpaca.messages import Level, OrderBookUpdate
from alpaca_cli.live.ladder import render, snapshot, state_of
from tests.support import Cli, bus_env, child_env
from tests.support_pubsub import CONTROLLER_URL, ok, streaming

NS = 1_700_000_000_000_000_000


def update(reset: bool, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> Any:
    return OrderBookUpdate(
        "SHIB/USD", NS, [Level(*b) for b in bids], [Level(*a) for a in asks], reset=reset
    )


def test_a_book_is_partial_until_a_snapshot_and_stale_after_a_reconnect() -> None:
    assert state_of(None) == "waiting"
    book = OrderBook("SHIB/USD")
    book.apply(update(False, [(0.00001234, 5.0)], []))
    assert state_of(book) == "partial"
    book.apply(update(True, [(0.00001234, 5.0), (0.00001233, 7.0)], [(0.00001236, 2.0)]))
    assert state_of(book) == "live"
    book.invalidate()
    assert state_of(book) == "stale"
    book.apply(update(True, [(0.00001234, 1.0)], [(0.00001236, 2.0)]))
    assert state_of(book) == "live"


def test_snapshot_has_cumulative_sizes_spread_and_mid() -> None:
    book = OrderBook("SHIB/USD")
    book.apply(update(True, [(0.00001234, 5.0), (0.00001233, 7.0)], [(0.00001236, 2.0)]))
    snap = snapshot("SHIB/USD", book, depth=1, now_ns=NS, age=0.25)
    assert snap["bids"] == [[0.00001234, 5.0, 5.0]]
    snap = snapshot("SHIB/USD", book, depth=5, now_ns=NS, age=0.25)
    assert snap["bids"] == [[0.00001234, 5.0, 5.0], [0.00001233, 7.0, 12.0]]
    assert snap["asks"] == [[0.00001236, 2.0, 2.0]]
    assert snap["spread"] == pytest.approx(0.00000002)
    assert (snap["state"], snap["stale"], snap["snapshot_seen"], snap["age"]) == (
        "live", False, True, 0.25,
    )  # fmt: skip
    assert snapshot("BTC/USD", None, depth=5, now_ns=NS, age=None)["state"] == "waiting"


def test_the_ladder_shows_enough_digits_that_bid_and_ask_differ() -> None:
    book = OrderBook("SHIB/USD")
    book.apply(update(True, [(0.00001234, 5.0)], [(0.00001236, 2.0)]))
    console = Console(width=100, record=True, color_system=None)
    console.print(render(snapshot("SHIB/USD", book, depth=5, now_ns=NS, age=0.1)))
    text = console.export_text()
    assert "0.00001234" in text and "0.00001236" in text
    assert "spread 0.00000002" in text and "e-" not in text
    book.invalidate()
    console = Console(width=100, record=True, color_system=None)
    console.print(render(snapshot("SHIB/USD", book, depth=5, now_ns=NS, age=0.1)))
    assert "stale: reconnected, waiting for the next snapshot" in console.export_text()


@pytest.mark.timeout(120)
def test_book_writes_ndjson_snapshots_of_a_live_pipeline(
    embedded_with_feed: Any, tmp_path: Any
) -> None:
    env = bus_env(embedded_with_feed.env(), "dapr")
    cli = Cli(cwd=tmp_path, env=env)
    ok(cli("deploy", "--url", CONTROLLER_URL))
    environment = child_env(env)
    args = ["book", "BTC/USD", "--interval", "0.2", "--depth", "3"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "alpaca_cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=tmp_path,
    )
    snaps: list[dict[str, Any]] = []
    seen_live = threading.Event()
    reader = threading.Thread(target=lambda: read_stdout(), daemon=True)

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            snaps.append(json.loads(line))
            if snaps[-1]["state"] == "live":
                seen_live.set()
        seen_live.set()

    try:
        assert proc.stderr is not None
        watching = proc.stderr.readline()
        assert watching.startswith("Watching the BTC/USD book"), watching
        reader.start()
        # Subscribed after book joined the topic: it sees the snapshot that follows.
        streaming(cli, "BTC/USD", channel="orderbooks")
        assert seen_live.wait(60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if reader.is_alive() or reader.ident is not None:
            reader.join(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        cli("teardown")
    assert all(s["symbol"] == "BTC/USD" for s in snaps)
    assert snaps[0]["state"] in ("waiting", "live")
    last = next(s for s in snaps if s["state"] == "live")
    assert last["snapshot_seen"] is True
    assert 0 < len(last["bids"]) <= 3 and 0 < len(last["asks"]) <= 3
    assert last["bids"][-1][2] == pytest.approx(sum(size for _, size, _ in last["bids"]))
    assert last["spread"] == pytest.approx(last["asks"][0][0] - last["bids"][0][0])


def test_book_refuses_a_bad_symbol(cli: Cli) -> None:
    result = cli("book", "btc/usd")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
