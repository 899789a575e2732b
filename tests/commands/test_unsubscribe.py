"""``alpaca-md unsubscribe`` end to end: Alpaca's confirmed remaining set, printed and recorded."""

from __future__ import annotations

import json

from alpaca_cli.state import StateStore
from tests.support import Cli
from tests.support_pubsub import connect_and_publish, ok


def subscribed(cli: Cli) -> None:
    connect_and_publish(cli)
    ok(cli("auth"))
    ok(cli("subscribe", "--channel", "trades,quotes", "BTC/USD", "ETH/USD"))


def test_unsubscribe_prints_and_records_the_confirmed_remaining_set(deployed: Cli) -> None:
    subscribed(deployed)
    result = ok(deployed("unsubscribe", "--channel", "trades", "ETH/USD"))
    assert result.stdout == "trades\tBTC/USD\nquotes\tBTC/USD,ETH/USD\n"
    state = StateStore(deployed.state_path).read()
    assert state is not None
    assert state.subscriptions == {"trades": ["BTC/USD"], "quotes": ["BTC/USD", "ETH/USD"]}
    data = json.loads(
        ok(deployed("unsubscribe", "--channel", "quotes", "BTC/USD", "--json")).stdout
    )
    assert data["verified"] is True
    assert data["removed"] == {"quotes": ["BTC/USD"]}
    assert data["remaining"] == {"trades": ["BTC/USD"], "quotes": ["ETH/USD"]}


def test_without_symbols_it_removes_everything_recorded(deployed: Cli) -> None:
    subscribed(deployed)
    result = ok(deployed("unsubscribe"))
    assert result.stdout == ""
    assert result.stderr.strip().endswith("Nothing subscribed any more.")
    state = StateStore(deployed.state_path).read()
    assert state is not None and state.subscriptions == {}
    again = deployed("unsubscribe")
    assert again.exit_code == 2
    assert again.stderr.startswith("Error: Nothing to unsubscribe from")


def test_bad_symbols_fail_before_anything_is_sent(deployed: Cli) -> None:
    connect_and_publish(deployed)
    result = deployed("unsubscribe", "btc/usd")
    assert result.exit_code == 2
    assert "Not a crypto symbol: 'btc/usd'" in result.stderr
