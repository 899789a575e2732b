"""``run --connect-retry-for``: a 406 at the first auth waits for the slot instead of failing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(120)

EMBEDDED_WORKER_URL = "embedded://websocketmanagercontroller"


@contextmanager
def hold_slot(platform: Any) -> Iterator[Any]:
    """A client of the platform's Alpaca server authenticated with the run's key: it holds the
    key's one connection slot until closed (the previous CI job's socket)."""
    from websockets.sync.client import connect

    env = platform.env()
    with connect(env["ALPACA_STREAM_URL"]) as ws:
        ws.recv()  # connected
        key, secret = env["ALPACA_API_KEY"], env["ALPACA_API_SECRET"]
        ws.send(json.dumps({"action": "auth", "key": key, "secret": secret}))
        assert "authenticated" in str(ws.recv())
        yield ws


def test_a_406_at_the_first_auth_is_retried_until_the_slot_frees(
    run_cli: Any, fresh_platform: Any, nothing_left: Any
) -> None:
    platform = fresh_platform()
    args = ["run", "--url", EMBEDDED_WORKER_URL, "--stall-limit", "0", "--duration", "1"]
    with hold_slot(platform) as holder:
        proc = run_cli([*args, "--min-frames", "1"], platform.env())
        wait = proc.wait_for_line("… auth: Alpaca answered 406 connection limit exceeded; trying")
        assert "of --connect-retry-for used" in wait
        holder.close()
    assert proc.wait() == 0, proc.stderr
    assert "✓ auth" in proc.stderr
    nothing_left(platform)


def test_connect_retry_for_0_fails_at_once(
    run_cli: Any, fresh_platform: Any, nothing_left: Any
) -> None:
    platform = fresh_platform()
    args = ["run", "--url", EMBEDDED_WORKER_URL, "--stall-limit", "0", "--duration", "1"]
    with hold_slot(platform):
        proc = run_cli([*args, "--connect-retry-for", "0"], platform.env())
        assert proc.wait() == 4, proc.stderr
    assert "trying again" not in proc.stderr
    assert "406" in proc.lines[-1]
    nothing_left(platform)
