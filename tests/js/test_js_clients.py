# mypy: disable-error-code="no-untyped-call"
"""Alpaca's and Dapr's JavaScript SDKs, unchanged, against ``dev feed`` and the sidecar.

Each test runs a small script (``alpaca_stream.cjs``, ``dapr_client.cjs``) under ``node`` as a
child process over loopback and checks what the real client saw. A stand-in that only pleases
our own Python clients fails here.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from alpaca_cli.devstack.feed import TRADE_ID_BASE, FeedConfig, FeedServer
from alpaca_cli.devstack.stack import StackConfig, start_in_thread

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).resolve().parent
GUARD = 90.0
"""Seconds a script may take before the test gives up on it (a hang guard, not a timing)."""


def _node_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "DAPR_"))}
    env.update(extra)
    return env


def test_alpacas_js_sdk_streams_trades_quotes_books_and_bars_from_dev_feed(node: str) -> None:
    want = 3

    async def scenario() -> tuple[int, str, str, int]:
        config = FeedConfig(
            key="pk", secret="ps", rate=300, bar_interval=0.2, symbols=("BTC/USD", "ETH/USD")
        )
        async with FeedServer(config) as server:
            process = await asyncio.create_subprocess_exec(
                node,
                str(HERE / "alpaca_stream.cjs"),
                env=_node_env(
                    ALPACA_STREAM_URL=server.url,
                    ALPACA_API_KEY="pk",
                    ALPACA_API_SECRET="ps",
                    SYMBOL="BTC/USD",
                    WANT=str(want),
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), GUARD)
            connections = len(server.stats)
            assert process.returncode is not None
            return process.returncode, out.decode(), err.decode(), connections

    code, out, err, connections = asyncio.run(scenario())
    assert code == 0, err
    got: dict[str, Any] = json.loads(out)
    assert got["errors"] == []
    assert connections == 1, "no reconnect: the SDK took every frame"
    for kind in ("trades", "quotes", "orderbooks", "bars"):
        assert len(got[kind]) >= want, kind
        assert {m["symbol"] for m in got[kind]} == {"BTC/USD"}
    trade = got["trades"][0]
    # The SDK keeps 64-bit ids exactly in idRaw; the feed's ids start past 2**53.
    assert int(trade["idRaw"]) > TRADE_ID_BASE
    assert trade["takerSide"] in ("B", "S")
    assert trade["timestampRaw"].endswith("Z") and len(trade["timestampRaw"]) > 25, "ns kept"
    first_book = got["orderbooks"][0]
    assert first_book["reset"] is True and first_book["bids"] and first_book["asks"]
    bar = got["bars"][0]
    assert bar["low"] <= min(bar["open"], bar["close"]) <= max(bar["open"], bar["close"])
    assert bar["close"] <= bar["high"]
    final = got["subscriptions"][-1]
    assert {final[c][0] for c in ("trades", "quotes", "orderbooks", "bars")} == {"BTC/USD"}


def test_daprs_js_sdk_starts_publishes_and_bulk_publishes_over_grpc_and_http(
    node: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dapr.clients import DaprClient

    with start_in_thread(StackConfig.ephemeral(feed=False)) as platform:
        env = platform.env()
        monkeypatch.setenv("DAPR_HTTP_PORT", env["DAPR_HTTP_PORT"])
        monkeypatch.setenv("DAPR_GRPC_PORT", env["DAPR_GRPC_PORT"])
        monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "5")
        with DaprClient() as client:
            sub = client.subscribe("pubsub", "js-events")
            try:
                result = subprocess.run(
                    [node, str(HERE / "dapr_client.cjs")],
                    env=_node_env(
                        DAPR_HOST="127.0.0.1",
                        DAPR_HTTP_PORT=env["DAPR_HTTP_PORT"],
                        DAPR_GRPC_PORT=env["DAPR_GRPC_PORT"],
                        TOPIC="js-events",
                    ),
                    capture_output=True,
                    text=True,
                    timeout=GUARD,
                    check=False,
                )
                assert result.returncode == 0, result.stderr
                events = []
                for _ in range(6):  # one publish and a bulk of two, per protocol
                    msg = next(sub)
                    sub.respond_success(msg)
                    events.append(msg)
                time.sleep(0.3)  # let the SDK flush its acks before closing (spec: ~0.2 s)
            finally:
                sub.close()
    reports = json.loads(result.stdout)
    assert [(r["protocol"], r["appId"], r["failed"]) for r in reports] == [
        ("grpc", "devstack", 0),
        ("http", "devstack", 0),
    ]
    received = sorted((m.data()["via"], m.data()["kind"], m.data().get("n", 0)) for m in events)
    assert received == [
        ("grpc", "bulk", 1),
        ("grpc", "bulk", 2),
        ("grpc", "single", 0),
        ("http", "bulk", 1),
        ("http", "bulk", 2),
        ("http", "single", 0),
    ]
    assert all(m.data_content_type() == "application/json" for m in events)
    assert all(m.source() == "devstack" for m in events)
