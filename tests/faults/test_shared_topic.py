"""Two tails on one topic through one sidecar (issue 11, hole 17): refused (Dapr 1.14/1.15,
``single``) is a documented exit code with a one-line why-and-what; split between them (Dapr
1.16+, ``split``) is said as soon as the trade ids show it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Cli, embedded_platform
from tests.support_pubsub import CONTROLLER_URL, ok, streaming

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", params=["single", "split"])
def shared(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A platform whose sidecar refuses or splits a second stream; BTC/USD trades flowing."""
    with embedded_platform(dapr_streams=request.param) as platform:
        cli = Cli(cwd=tmp_path_factory.mktemp("shared"), env=dict(platform.env()))
        ok(cli("deploy", "--url", CONTROLLER_URL))
        try:
            streaming(cli, "BTC/USD", channel="trades")
            yield request.param, platform
        finally:
            cli("teardown")


def test_a_second_tail_on_one_sidecar_is_refused_or_warned_about(
    shared: tuple[str, Any], spawn: Any, tmp_path: Path
) -> None:
    mode, platform = shared
    env = {**platform.env()}
    first = spawn(["tail", "--bus", "dapr", "--type", "trade"], env)
    first.wait_for_line("Tailing topic")
    second = spawn(["tail", "--bus", "dapr", "--type", "trade"], env)
    if mode == "single":
        assert second.wait() == 5, second.stderr
        errors = [line for line in second.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, second.stderr
        assert "second subscription" in errors[0] and "app id of its own" in errors[0]
        assert "Traceback" not in second.stderr
    else:
        # Each gets about half of the frames: the trade ids each one sees skip.
        warning = first.wait_for_line("Warning: trade ids skip")
        assert "app id of its own" in warning
        second.wait_for_line("Warning: trade ids skip")
    for proc in (first, second):
        if proc.proc.poll() is None:
            proc.send_signal(2)
            assert proc.wait() == 130, proc.stderr


def test_a_single_tail_sees_no_gaps(shared: tuple[str, Any], spawn: Any) -> None:
    _, platform = shared
    tail = spawn(["tail", "--bus", "dapr", "--type", "trade", "--count", "200"], platform.env())
    assert tail.wait() == 0, tail.stderr
    assert "trade ids skip" not in tail.stderr
