"""``dev up -vv`` / ``dev feed`` logging never dumps WebSocket frames (the auth message holds the
Alpaca secret). Each case runs in a fresh interpreter: logging is process-global, and pytest's
own root handlers would turn ``logging.basicConfig`` into a no-op here."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

SECRET = "s3cr3t-never-logged-0123456789"


def leaked(text: str) -> bool:
    """Frame dumps elide the middle of long frames: look for the key and the secret's tail."""
    return '"secret"' in text or SECRET[-16:] in text


SCENARIO = textwrap.dedent(
    """
    import asyncio, json, logging
    from websockets.asyncio.client import connect
    from alpaca_cli.devstack.feed import FeedConfig, FeedServer

    {configure}
    logging.getLogger("alpaca_cli.probe").debug("probe: debug is on")

    async def main() -> None:
        server = FeedServer(FeedConfig(key="AKEY", secret={secret!r}, rate=0))
        await server.start()
        try:
            async with connect(server.url) as ws:
                await ws.recv()  # the welcome
                await ws.send(json.dumps({{"action": "auth", "key": "AKEY", "secret": {secret!r}}}))
                print(await ws.recv(), flush=True)
        finally:
            await server.stop()

    asyncio.run(main())
    """
)


def run_scenario(configure: str) -> subprocess.CompletedProcess[str]:
    code = SCENARIO.format(configure=configure, secret=SECRET)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=50, check=False
    )


def test_dev_up_at_debug_logs_no_frames() -> None:
    proc = run_scenario(
        "from alpaca_cli.commands.dev_up import _configure_logging; _configure_logging(2)"
    )
    assert proc.returncode == 0, proc.stderr
    assert "authenticated" in proc.stdout  # the auth really went over the wire
    assert "probe: debug is on" in proc.stderr  # -vv really is DEBUG for everything else
    assert not leaked(proc.stderr + proc.stdout)


def test_a_websockets_logger_set_to_debug_explicitly_still_logs_no_frames() -> None:
    proc = run_scenario(
        "logging.getLogger('websockets.client').setLevel(logging.DEBUG)\n"
        "from alpaca_cli.devstack.logs import configure_logging; configure_logging(2)"
    )
    assert proc.returncode == 0, proc.stderr
    assert "probe: debug is on" in proc.stderr
    assert not leaked(proc.stderr)


def test_dev_feeds_logging_logs_no_frames() -> None:
    proc = run_scenario(
        "logging.basicConfig(level=logging.DEBUG)\n"
        "from alpaca_cli.commands.dev_feed import _configure_logging; _configure_logging()"
    )
    assert proc.returncode == 0, proc.stderr
    assert "probe: debug is on" in proc.stderr
    assert not leaked(proc.stderr)
