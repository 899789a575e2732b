"""``alpaca-md subscribe`` end to end: validation first, then Alpaca's confirmation or refusal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from alpaca_cli.state import StateStore
from tests.support import Cli, free_port
from tests.support_pubsub import connect_and_publish, ok

SYMBOL_LIMIT = 3


@pytest.fixture(scope="module")
def embedded_with_feed() -> Iterator[Any]:
    """This module's platform: its Alpaca server allows only a few symbols per channel."""
    from tests.support import embedded_platform

    config = dict(feed_options={"symbol_limit": SYMBOL_LIMIT})
    with embedded_platform(**config) as platform:
        yield platform


def test_subscribe_records_the_confirmed_set(deployed: Cli) -> None:
    connection_id = connect_and_publish(deployed)
    ok(deployed("auth"))
    result = ok(deployed("subscribe", "--channel", "trades", "BTC/USD", "ETH/USD"))
    assert result.stdout == "trades\tBTC/USD,ETH/USD\n"
    more = json.loads(ok(deployed("subscribe", "--channel", "quotes", "SOL/USD", "--json")).stdout)
    assert more["connection_id"] == connection_id
    assert more["verified"] is True
    assert more["confirmed"] == {"trades": ["BTC/USD", "ETH/USD"], "quotes": ["SOL/USD"]}
    state = StateStore(deployed.state_path).read()
    assert state is not None
    assert state.subscriptions == {"trades": ["BTC/USD", "ETH/USD"], "quotes": ["SOL/USD"]}
    assert state.channel == "quotes"


def test_settings_symbols_are_the_default(deployed: Cli) -> None:
    settings = deployed.cwd / "s.json"
    settings.write_text(json.dumps({"channel": "orderbooks", "symbols": ["BTC/USD", "DOGE/USD"]}))
    connect_and_publish(deployed)
    ok(deployed("auth"))
    result = ok(deployed("subscribe", "--settings", str(settings)))
    assert result.stdout == "orderbooks\tBTC/USD,DOGE/USD\n"


def test_symbol_limit_is_refused_with_405(deployed: Cli) -> None:
    connect_and_publish(deployed)
    ok(deployed("auth"))
    symbols = ["BTC/USD", "ETH/USD", "SOL/USD", "DOGE/USD"][: SYMBOL_LIMIT + 1]
    result = deployed("subscribe", "--channel", "trades", *symbols)
    assert result.exit_code == 5, result.stderr
    assert "405" in result.stderr and "fewer" in result.stderr
    state = StateStore(deployed.state_path).read()
    assert state is not None and state.subscriptions == {}


def test_subscribe_before_auth_is_refused_with_401(deployed: Cli) -> None:
    connect_and_publish(deployed)
    result = deployed("subscribe", "BTC/USD")
    assert result.exit_code == 5, result.stderr
    assert "401" in result.stderr and "alpaca-md auth" in result.stderr


def test_without_publishing_it_sends_but_cannot_verify(deployed: Cli) -> None:
    ok(deployed("connect"))
    ok(deployed("auth"))
    result = ok(deployed("subscribe", "--json", "BTC/USD"))
    assert json.loads(result.stdout)["verified"] is False


@pytest.mark.parametrize("symbol", ["btc/usd", "BTCUSD", "BTC/USD/EUR", ""])
def test_bad_symbols_fail_before_anything_is_sent(cli: Cli, symbol: str) -> None:
    env = {"DAPR_HTTP_PORT": str(free_port()), "DAPR_GRPC_PORT": str(free_port())}
    result = cli("subscribe", "BTC/USD", symbol, env=env)
    assert result.exit_code == 2, result.stderr
    assert "symbol" in result.stderr.lower()


def test_unknown_channel_fails_before_anything_is_sent(cli: Cli) -> None:
    env = {"DAPR_HTTP_PORT": str(free_port()), "DAPR_GRPC_PORT": str(free_port())}
    result = cli("subscribe", "--channel", "news", "BTC/USD", env=env)
    assert result.exit_code == 2
    assert "news" in result.stderr and "orderbooks" in result.stderr
