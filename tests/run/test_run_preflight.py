"""``run --embedded`` checks its input before it starts the platform (a typo costs a second)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "args,expected",
    [
        pytest.param(["btc/usd"], "btc/usd", id="symbol"),
        pytest.param(["--channel", "trade"], "trade", id="channel"),
        pytest.param(["--alpaca-url", "wss://example.invalid/v1beta3/crypto/us"], "ALPACA_API_KEY",
                     id="keys-for-another-endpoint"),
    ],
)  # fmt: skip
def test_bad_input_fails_before_the_platform_starts(
    run_cli: Any, args: list[str], expected: str
) -> None:
    proc = run_cli(["run", "--embedded", "--duration", "1", *args])
    assert proc.wait() == 2, proc.stderr
    assert expected in proc.stderr
    assert "platform" not in proc.stderr.split("Error")[0]  # no "… platform: starting" line


def test_a_settings_file_with_an_unknown_key_exits_2_naming_it(
    run_cli: Any, tmp_path: Path
) -> None:
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"symbols": ["BTC/USD"], "chanels": ["trades"]}))
    proc = run_cli(["run", "--embedded", "--settings", str(settings), "--duration", "1"])
    assert proc.wait() == 2
    assert "chanels" in proc.stderr
    assert "starting the embedded platform" not in proc.stderr
