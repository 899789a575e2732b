"""``alpaca-md dev feed`` as an operator runs it: a real process, a real client, Ctrl+C."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner
from websockets.asyncio.client import connect

from alpaca_cli.main import app

pytestmark = pytest.mark.timeout(60)

DEFAULT_SYMBOLS = ["BTC/USD", "ETH/USD", "SOL/USD", "DOGE/USD", "AVAX/USD"]
SECRET = "s3cret-never-printed"


def first_line(proc: subprocess.Popen[bytes], timeout: float = 20) -> str:
    """The first stdout line, without trusting the process to ever write one."""
    box: list[bytes] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    assert box and box[0], "dev feed printed no URL"
    return box[0].decode().strip()


async def session(url: str) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {"t": set(), "q": set(), "o": set()}
    async with connect(url, open_timeout=5) as ws:
        assert orjson.loads(await ws.recv()) == [{"T": "success", "msg": "connected"}]
        await ws.send(orjson.dumps({"action": "auth", "key": "AKTEST", "secret": SECRET}).decode())
        assert orjson.loads(await ws.recv()) == [{"T": "success", "msg": "authenticated"}]
        channels = {"trades": DEFAULT_SYMBOLS, "quotes": DEFAULT_SYMBOLS}
        await ws.send(
            orjson.dumps(
                {"action": "subscribe", **channels, "orderbooks": DEFAULT_SYMBOLS}
            ).decode()
        )
        (reply,) = orjson.loads(await ws.recv())
        assert reply["T"] == "subscription" and reply["orderbooks"] == DEFAULT_SYMBOLS
        while any(seen[k] != set(DEFAULT_SYMBOLS) for k in seen):
            for message in orjson.loads(await asyncio.wait_for(ws.recv(), 10)):
                seen[message["T"]].add(message["S"])
    return seen


def test_dev_feed_prints_its_url_serves_the_default_symbols_and_stops_on_ctrl_c():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alpaca_cli",
            "dev",
            "feed",
            "--port",
            "0",
            "--rate",
            "500",
            "--key",
            "AKTEST",
            "--secret",
            SECRET,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        url = first_line(proc)
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/v1beta3/crypto/us")
        seen = asyncio.run(session(url))
        assert all(symbols == set(DEFAULT_SYMBOLS) for symbols in seen.values())
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = stderr.decode()
    assert proc.returncode == 0, text
    assert stdout == b"", "the URL is the only stdout line"
    assert "Traceback" not in text
    for event in ("listening on", "connected", "authenticated", "subscribe", "closed", "stopped"):
        assert event in text, event
    assert SECRET not in text
    assert "AKTEST" not in text, "key ids are shortened in the log"


runner = CliRunner()


def test_key_without_secret_is_a_usage_error():
    result = runner.invoke(app, ["dev", "feed", "--port", "0", "--key", "AK"])
    assert result.exit_code == 2
    assert "key and secret go together" in result.stderr


def test_unknown_symbols_are_a_usage_error():
    result = runner.invoke(app, ["dev", "feed", "--port", "0", "--symbols", "BTC/USD,NOPE/USD"])
    assert result.exit_code == 2
    assert "NOPE/USD" in result.stderr


def test_a_bad_recording_is_a_usage_error_naming_the_line(tmp_path: Path):
    path = tmp_path / "bad.ndjson"
    path.write_text('{"T":"t","S":"BTC/USD"}\n')
    result = runner.invoke(app, ["dev", "feed", "--port", "0", "--replay", str(path)])
    assert result.exit_code == 2
    assert "bad.ndjson:1" in result.stderr
    # two sentences, not "...: missing field 'p' Check the --replay file."
    assert ". Check the --replay file." in result.stderr


def test_a_busy_port_is_a_usage_error_with_a_hint():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["dev", "feed", "--port", str(port)])
    assert result.exit_code == 2
    assert "--port" in result.stderr and str(port) in result.stderr
