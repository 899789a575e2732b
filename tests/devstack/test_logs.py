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


# -- a real `dev up -vv`: the feed child is the server end of the auth frame (issue 11, item 19) --


def b64_forms(secret: str) -> list[str]:
    """Substrings that any base64 text containing ``secret`` holds, at each of the 3 alignments.

    A logged ``SendRaw`` request or controller command carries the frame base64-encoded, where the
    secret starts at an arbitrary byte offset; the first and last quantum of each form may mix
    with neighbouring bytes, so they are cut off.
    """
    import base64

    forms = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + secret.encode()).decode()
        start = 4 if pad else 0
        forms.append(encoded[start:-4])
    return forms


def test_dev_up_at_debug_never_logs_the_alpaca_key_or_secret() -> None:
    """Auth reaches the feed child twice (a direct client, and SendRaw through the WSM) at -vv."""
    import asyncio
    import base64
    import json
    import os

    import httpx
    from websockets.asyncio.client import connect

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    ports = ["--gateway-port", "0", "--dapr-http-port", "0", "--dapr-grpc-port", "0"]
    args = [*ports, "--feed-port", "0", "--rate", "5", "--max-connections-per-key", "2"]
    with subprocess.Popen(
        [sys.executable, "-m", "alpaca_cli", "dev", "up", "-vv", "--exit-with-stdin", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            exported: dict[str, str] = {}
            while "ALPACA_API_SECRET" not in exported:
                line = proc.stdout.readline()
                assert line, "dev up exited before printing its environment"
                if line.startswith("export "):
                    key, value = line.removeprefix("export ").rstrip("\n").split("=", 1)
                    exported[key] = value.strip("'")
            key, secret = exported["ALPACA_API_KEY"], exported["ALPACA_API_SECRET"]
            auth = json.dumps({"action": "auth", "key": key, "secret": secret})

            def invoke(gw: httpx.Client, method: str, request: dict[str, object]) -> object:
                body = {"service": "websocketmanager", "method": method}
                answer = gw.post(
                    "/v1/gateway/invoke-json", json={**body, "request_data": json.dumps(request)}
                ).json()
                assert answer["success"] is True, answer
                return json.loads(answer["response_data"])

            with httpx.Client(base_url=exported["VIRTUFIN_API_URL"], timeout=30) as gw:
                conn = invoke(gw, "Connect", {"url": exported["ALPACA_STREAM_URL"]})
                assert isinstance(conn, dict)
                message = base64.b64encode(auth.encode()).decode()
                invoke(
                    gw,
                    "SendRaw",
                    {"id": conn["id"], "message": message, "content_type": "application/json"},
                )

            async def direct() -> str:
                async with connect(exported["ALPACA_STREAM_URL"], proxy=None) as ws:
                    await ws.recv()  # the welcome
                    await ws.send(auth)
                    return str(await ws.recv())

            assert "authenticated" in asyncio.run(direct())
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0
            err = proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "DEBUG" in err and "websockets" in err  # -vv really is DEBUG, the feed child included
    for needle in (key, secret, *b64_forms(key), *b64_forms(secret)):
        assert needle not in err
