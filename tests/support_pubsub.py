"""Helpers for the pub/sub-side tests (connect, publish, auth, subscribe, tail, the bus).

Registered for the whole suite beside :mod:`tests.support` (``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from alpaca_cli.config import DaprSettings
from tests.support import Cli

CONTROLLER_URL = "embedded://websocketmanagercontroller"


@dataclass
class Sidecar:
    """A bare sidecar over a broker, in a loop thread (no gateway, no WSM)."""

    loop: Any
    broker: Any
    sidecar: Any

    @property
    def settings(self) -> DaprSettings:
        return DaprSettings(http_port=self.sidecar.http_port, grpc_port=self.sidecar.grpc_port)


@pytest.fixture(scope="module", name="sidecar")
def sidecar_fixture() -> Iterator[Sidecar]:
    """The devstack sidecar on loopback (port 0), for client-level tests."""
    from alpaca_cli.devstack.broker import Broker
    from alpaca_cli.devstack.loopthread import LoopThread
    from alpaca_cli.devstack.sidecar import DaprSidecar

    with LoopThread() as loop:

        async def start() -> tuple[Any, Any]:
            broker = Broker()
            car = DaprSidecar(broker, api_token=None)
            await car.start()
            return broker, car

        broker, car = loop.run(start())
        try:
            yield Sidecar(loop, broker, car)
        finally:
            loop.run(car.stop())


def ok(result: Any) -> Any:
    """Assert a CLI result succeeded, showing its stderr otherwise."""
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


@pytest.fixture(name="deployed")
def deployed_fixture(feed_cli: Cli) -> Iterator[Cli]:
    """``feed_cli`` with the controller worker deployed; everything torn down afterwards."""
    ok(feed_cli("deploy", "--url", CONTROLLER_URL))
    try:
        yield feed_cli
    finally:
        feed_cli("teardown")


def connect_and_publish(cli: Cli) -> str:
    """connect + publish; returns the connection id."""
    connection_id = ok(cli("connect")).stdout.strip()
    ok(cli("publish"))
    return str(connection_id)


def streaming(cli: Cli, *symbols: str, channel: str = "trades") -> str:
    """connect + publish + auth + subscribe: data flows on the topic afterwards."""
    connection_id = connect_and_publish(cli)
    ok(cli("auth"))
    ok(cli("subscribe", "--channel", channel, *(symbols or ("BTC/USD", "ETH/USD"))))
    return connection_id
