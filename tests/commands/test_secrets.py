"""No secret (Alpaca key/secret, VIRTUFIN_API_KEY, DAPR_API_TOKEN) reaches the state file, stdout,
stderr or logs, in any form we could leak it: raw, base64 (at every alignment, as inside the
``send_raw`` base64 of the auth message), URL-safe base64, or the whole auth message encoded."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alpaca_cli.alpaca.codec import encode_auth
from tests.support import Cli
from tests.support_pubsub import CONTROLLER_URL

ALPACA_KEY = "AKSECRETKEY7Q1"
ALPACA_SECRET = "s3cr3t-Alpaca-Value-9"
API_KEY = "vf-api-key-SECRET-42"
DAPR_TOKEN = "dapr-token-SECRET-77"
SECRETS = (ALPACA_KEY, ALPACA_SECRET, API_KEY, DAPR_TOKEN)


def leak_forms(secret: str) -> set[str]:
    """Texts that would reveal ``secret``: itself and its base64 at the three alignments."""
    forms = {secret}
    raw = secret.encode()
    for pad in (b"", b"x", b"xy"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(pad + raw).decode()
            # Drop the characters that depend on the neighbouring bytes.
            start = {0: 0, 1: 2, 2: 3}[len(pad)]
            core = text[start:].rstrip("=")
            forms.add(core[: len(core) - 2] if len(core) > 6 else core)
    return forms


FORBIDDEN = set().union(*(leak_forms(s) for s in SECRETS)) | {
    base64.b64encode(encode_auth(ALPACA_KEY, ALPACA_SECRET)).decode(),
    encode_auth(ALPACA_KEY, ALPACA_SECRET).decode(),
}


@pytest.fixture(scope="module")
def embedded_with_feed() -> Iterator[Any]:
    """A platform whose every credential is a known value."""
    from tests.support import embedded_platform

    config = dict(
        alpaca_key=ALPACA_KEY,
        alpaca_secret=ALPACA_SECRET,
        api_key=API_KEY,
        dapr_api_token=DAPR_TOKEN,
    )
    with embedded_platform(**config) as platform:
        yield platform


def assert_clean(where: str, text: str) -> None:
    for form in FORBIDDEN:
        assert form not in text, f"a secret leaked into {where} (form {form[:4]}...)"


def test_no_command_leaks_a_secret(
    feed_cli: Cli, caplog: pytest.LogCaptureFixture, tmp_path: Path, bus: str
) -> None:
    env = feed_cli.env
    assert env["ALPACA_API_SECRET"] == ALPACA_SECRET and env["VIRTUFIN_API_KEY"] == API_KEY
    # Over the gateway bus the API key also travels as gRPC metadata; there is no sidecar.
    assert env.get("DAPR_API_TOKEN") == (DAPR_TOKEN if bus == "dapr" else None)
    caplog.set_level(logging.DEBUG)
    steps: list[tuple[str, ...]] = [
        ("deploy", "--url", CONTROLLER_URL),
        ("connect",),
        ("publish",),
        ("auth",),
        ("auth", "--json"),
        ("subscribe", "--channel", "trades", "BTC/USD"),
        ("subscribe", "--json", "ETH/USD", "--channel", "quotes"),
        ("tail", "--count", "5"),
        ("tail", "--count", "5", "--output", "json"),
        ("list",),
        ("list", "--json"),
    ]
    seen = 0
    try:
        for args in steps:
            result = feed_cli(*args, "-vv")
            assert result.exit_code in (0, 4), (args, result.stderr)  # auth twice: 403 is fine
            assert_clean(f"stdout of {args}", result.stdout)
            assert_clean(f"stderr of {args}", result.stderr)
            assert_clean(f"the state file after {args}", feed_cli.state_path.read_text())
            seen += 1
        # Failure paths print errors: they must be clean too.
        bad = feed_cli("auth", "-vv", env={"ALPACA_API_SECRET": ALPACA_SECRET + "-wrong"})
        assert_clean("stderr of a refused auth", bad.stderr.replace(ALPACA_SECRET + "-wrong", ""))
    finally:
        down = feed_cli("teardown", "-vv")
        assert_clean("stderr of teardown", down.stderr)
    assert seen == len(steps)
    # The embedded platform runs in this process: its own loggers (the WSM's and the Alpaca
    # server's WebSocket libraries log frames at DEBUG) are the platform's, not the CLI's.
    platform_side = ("alpaca_cli.devstack", "websockets", "aiohttp")
    cli_records = [r for r in caplog.records if not r.name.startswith(platform_side)]
    assert cli_records  # httpx, the dapr SDK and grpc do log at DEBUG: the check has input
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in cli_records)
    assert_clean("the logs", logs)


def test_the_leak_forms_catch_a_real_leak() -> None:
    """The check above would fail if send_raw's base64 reached the output."""
    message = base64.b64encode(encode_auth(ALPACA_KEY, ALPACA_SECRET)).decode()
    with pytest.raises(AssertionError):
        assert_clean("a leaky line", f'{{"command":"send_raw","message":"{message}"}}')
    with pytest.raises(AssertionError):
        assert_clean(
            "a leaky line", "prefix " + base64.b64encode(b"{" + ALPACA_SECRET.encode()).decode()
        )
