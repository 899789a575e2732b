"""``run`` holds one streaming subscription per topic, as a real Dapr sidecar requires.

Beside a real sidecar, two subscriptions of one app id on one topic split its messages (Dapr
1.16+) or the second is refused (1.14/1.15). The embedded sidecar emulates both
(``dapr_streams``): a run that opened the publish topic or the reply topic twice would lose
Alpaca's answers, controller replies or data here, or fail outright.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from alpaca_cli.devstack.stack import EmbeddedPlatform
from tests.support import embedded_platform

pytestmark = pytest.mark.timeout(120)

EMBEDDED_WORKER_URL = "embedded://websocketmanagercontroller"
SYMBOLS = ["BTC/USD", "ETH/USD", "SOL/USD", "DOGE/USD", "AVAX/USD"]


@pytest.fixture(params=["single", "split"])
def strict_platform(request: pytest.FixtureRequest) -> Iterator[EmbeddedPlatform]:
    """A platform whose sidecar refuses (single) or splits (split) a second stream per topic."""
    config = dict(dapr_streams=request.param, reconnect_base_delay=0.2)
    with ExitStack() as stack:
        yield stack.enter_context(embedded_platform(**config))


def test_run_passes_the_smoke_check_beside_a_strict_sidecar(
    run_cli: Any, strict_platform: EmbeddedPlatform, nothing_left: Any, tmp_path: Path
) -> None:
    report_path = tmp_path / "r.json"
    args = ["run", "--url", EMBEDDED_WORKER_URL, "--stall-limit", "0", "--timeout", "5"]
    args += ["--duration", "2", "--min-frames", "1", "--report", str(report_path)]
    proc = run_cli(args, strict_platform.env())
    assert proc.wait() == 0, proc.stderr
    report = json.loads(report_path.read_text())
    assert report["subscribed"] == SYMBOLS
    for symbol in SYMBOLS:
        assert report["symbols"][symbol]["frames"] >= 1, report["symbols"][symbol]
    assert (report["reconnects"], report["errors"]) == (0, 0), report
    auth = next(line for line in proc.lines if line.startswith("✓ auth"))
    assert auth.endswith("authenticated"), auth
    subscribe = next(line for line in proc.lines if line.startswith("✓ subscribe"))
    assert subscribe.endswith("confirmed orderbooks: " + " ".join(SYMBOLS)), subscribe
    assert "✓ teardown" in proc.stderr
    nothing_left(strict_platform)
    assert strict_platform.sidecar.stream_count == 0
