"""``auth`` after Alpaca's 10 s deadline (issue 11, hole 20): reported as the 404 auth timeout it
is, with what to do, not as "Websocket is not connected"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Cli, embedded_platform
from tests.support_pubsub import CONTROLLER_URL, connect_and_publish, ok

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def slow_reconnects() -> Iterator[Any]:
    """A platform whose WSM waits 60 s before it reconnects a socket Alpaca closed."""
    with embedded_platform(reconnect_base_delay=60.0) as platform:
        yield platform


def test_auth_after_the_deadline_reports_the_404_auth_timeout(
    slow_reconnects: Any, tmp_path: Path
) -> None:
    cli = Cli(cwd=tmp_path, env=dict(slow_reconnects.env()))
    ok(cli("deploy", "--url", CONTROLLER_URL))
    try:
        connection_id = connect_and_publish(cli)
        # Await Alpaca's own 404 on the topic (10 s after connect): the deadline has passed.
        seen = ok(cli("tail", "--type", "error", "--count", "1"))
        assert "404" in seen.stdout
        result = cli("auth")
        assert result.exit_code == 5, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result.stderr
        assert f"Alpaca closed connection {connection_id}" in errors[0]
        assert "404 auth timeout" in errors[0]
        assert "alpaca-md connect && alpaca-md publish && alpaca-md auth" in errors[0]
        assert "Websocket is not connected" not in result.stderr
    finally:
        cli("teardown")
