"""The standalone commands beside a sidecar that allows one stream per topic (Dapr 1.14/1.15).

Each invocation must hold at most one subscription per topic: ``auth``/``subscribe`` one on the
publish topic and one on the reply topic, ``tail`` one on its topic. A command that opened a
topic twice fails here with "streamer already subscribed" instead of only against a real
sidecar.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import Cli
from tests.support_pubsub import CONTROLLER_URL, connect_and_publish, ok

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def single() -> Iterator[Any]:
    """An embedded platform with a feed whose sidecar refuses a second stream per topic."""
    from tests.support import embedded_platform

    with embedded_platform(dapr_streams="single") as platform:
        yield platform


def test_the_commands_work_with_one_stream_per_topic(
    single: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cli = Cli(cwd=tmp_path_factory.mktemp("single"), env=dict(single.env()))
    ok(cli("deploy", "--url", CONTROLLER_URL))
    try:
        connection_id = connect_and_publish(cli)
        auth = json.loads(ok(cli("auth", "--json")).stdout)
        assert (auth["verified"], auth["message"]) == (True, "authenticated")
        sub = json.loads(ok(cli("subscribe", "--channel", "trades", "BTC/USD", "--json")).stdout)
        assert sub["verified"] is True and sub["confirmed"] == {"trades": ["BTC/USD"]}
        tail = ok(cli("tail", "--count", "5", "--output", "json"))
        docs = [json.loads(line) for line in tail.stdout.splitlines()]
        assert len(docs) == 5
        assert {doc["frame"]["websocketId"] for doc in docs} == {connection_id}, docs
        assert any(doc["message"]["T"] == "t" for doc in docs), docs
        listed = ok(cli("list", "--via", "controller", "--json"))
        assert connection_id in listed.stdout
    finally:
        ok(cli("teardown"))
    # The sidecar drops a stream when it sees the client's cancellation, which may land just
    # after the last command returned: wait for it (bounded) rather than race it.
    deadline = time.monotonic() + 10.0
    while single.sidecar.stream_count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert single.sidecar.stream_count == 0


def test_dev_up_dapr_streams_single_refuses_a_second_stream(cli: Cli) -> None:
    from alpaca_cli.config import DaprSettings
    from alpaca_cli.live.embedded import EmbeddedProcess
    from alpaca_cli.platform.pubsub import PubsubClient

    platform = EmbeddedProcess(["--dapr-streams", "single"])
    try:
        env = platform.start(timeout=60.0)
        settings = DaprSettings(
            http_port=int(env["DAPR_HTTP_PORT"]), grpc_port=int(env["DAPR_GRPC_PORT"])
        )
        with (
            PubsubClient(settings) as client,
            client.subscribe("alpaca-ticks"),
            pytest.raises(Exception, match="streamer already subscribed"),
        ):
            client.subscribe("alpaca-ticks")
    finally:
        platform.stop()
        platform.cleanup()


def test_dev_up_refuses_an_unknown_dapr_streams_mode(cli: Cli) -> None:
    result = cli("dev", "up", "--dapr-streams", "both", "--gateway-port", "0")
    assert result.exit_code == 2, result.stderr
    assert "--dapr-streams both: give one of copy, split, single." in result.stderr
