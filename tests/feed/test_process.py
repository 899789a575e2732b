"""The feed in a child process: same server over a real socket, clean stops, never orphaned."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from alpaca_cli.devstack.feed import FeedConfig
from alpaca_cli.devstack.feed.process import FeedProcess, config_from_json, config_to_json

pytestmark = pytest.mark.timeout(90)

GUARD = 30.0  # a bound against hangs, never an expectation about speed


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_the_config_crosses_the_pipe_unchanged(tmp_path: Path) -> None:
    config = FeedConfig(
        key="k",
        secret="s",
        rate=1234.5,
        symbols=("BTC/USD", "ETH/USD"),
        replay=tmp_path / "r.ndjson",
        drop_after=3.0,
        seq_field="seq",
    )
    line = config_to_json(config, log_level=10)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert config_from_json(line) == (config, 10)


def test_a_bad_config_line_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        config_from_json(b'{"config": {"rate": -1}}')
    with pytest.raises(ValueError):
        config_from_json(b"")


def test_serves_the_stream_and_stops_cleanly() -> None:
    async def scenario() -> tuple[int, list[dict[str, Any]], int | None]:
        feed = FeedProcess(FeedConfig(key="pk", secret="ps", rate=2000, symbols=("BTC/USD",)))
        await feed.start()
        pid = feed.pid
        assert pid is not None and pid != os.getpid()
        assert feed.url == f"ws://127.0.0.1:{feed.port}/v1beta3/crypto/us"
        async with connect(feed.url, compression="deflate") as ws:
            # The child feed offers permessage-deflate as Alpaca does (FeedConfig.compression
            # crosses the process boundary with the rest of the config).
            assert ws.response is not None
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            assert orjson.loads(await ws.recv())[0]["msg"] == "connected"
            await ws.send(orjson.dumps({"action": "auth", "key": "pk", "secret": "ps"}).decode())
            assert orjson.loads(await ws.recv())[0]["msg"] == "authenticated"
            await ws.send(orjson.dumps({"action": "subscribe", "trades": ["*"]}).decode())
            assert orjson.loads(await ws.recv())[0]["T"] == "subscription"
            trades: list[dict[str, Any]] = []
            while len(trades) < 50:
                trades += orjson.loads(await asyncio.wait_for(ws.recv(), GUARD))
            await feed.stop()
            # The server closed our connection on its way out (1001), not a dropped socket.
            await asyncio.wait_for(ws.wait_closed(), GUARD)
            code = ws.close_code
        await feed.stop()  # idempotent
        return pid, trades, code

    pid, trades, code = asyncio.run(scenario())
    ids = [t["i"] for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert code == 1001
    assert not alive(pid)


def test_a_taken_port_is_an_os_error_with_its_errno() -> None:
    import errno

    async def scenario(port: int) -> None:
        await FeedProcess(FeedConfig(port=port)).start()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError) as info:
            asyncio.run(scenario(taken.getsockname()[1]))
    assert info.value.errno == errno.EADDRINUSE


def test_an_unusable_replay_is_a_value_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    bad.write_text("not json\n")
    with pytest.raises(ValueError):
        asyncio.run(FeedProcess(FeedConfig(replay=bad)).start())


def test_the_child_dies_with_its_parent_even_when_the_parent_is_killed() -> None:
    parent = textwrap.dedent(
        """
        import asyncio, sys
        from alpaca_cli.devstack.feed import FeedConfig
        from alpaca_cli.devstack.feed.process import FeedProcess

        async def main():
            feed = FeedProcess(FeedConfig(rate=100))
            await feed.start()
            print(feed.pid, flush=True)
            await asyncio.sleep(3600)

        asyncio.run(main())
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        assert alive(child)
        proc.kill()  # SIGKILL: the parent runs no clean-up at all
        proc.wait()
    assert wait_gone(child), "the feed child outlived its killed parent"
