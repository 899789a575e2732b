"""``alpaca-md connect`` end to end on the embedded platform (real gRPC, HTTP, WebSocket)."""

from __future__ import annotations

import json
from typing import Any

from alpaca_cli.state import StateStore
from tests.support import Cli, free_port
from tests.support_pubsub import ok


def test_connect_records_the_connection_and_warns_about_the_auth_deadline(
    deployed: Cli, embedded_with_feed: Any
) -> None:
    result = ok(deployed("connect"))
    connection_id = result.stdout.strip()
    state = StateStore(deployed.state_path).read()
    assert state is not None and state.connection is not None
    assert state.connection.id == connection_id
    assert state.connection.url == embedded_with_feed.env()["ALPACA_STREAM_URL"]
    assert "10 s" in result.stderr and "alpaca-md auth" in result.stderr
    records = {r.id: r for r in embedded_with_feed.wsm.list()}
    assert records[connection_id].status.value.upper() == "CONNECTED"
    assert records[connection_id].auto_reconnect is True


def test_url_option_wins_and_no_reconnect_is_passed_on(
    deployed: Cli, embedded_with_feed: Any
) -> None:
    url = embedded_with_feed.env()["ALPACA_STREAM_URL"].replace("/crypto/us", "/crypto/eu")
    result = ok(deployed("connect", "--url", url, "--no-reconnect", "--json"))
    doc = json.loads(result.stdout)
    assert doc["url"] == url and doc["auto_reconnect"] is False
    record = {r.id: r for r in embedded_with_feed.wsm.list()}[doc["connection_id"]]
    assert record.url == url
    assert record.auto_reconnect is False


def test_a_second_connect_replaces_and_closes_the_recorded_connection(
    deployed: Cli, embedded_with_feed: Any
) -> None:
    first = ok(deployed("connect")).stdout.strip()
    second = ok(deployed("connect"))
    assert f"Closed connection {first}" in second.stderr
    state = StateStore(deployed.state_path).read()
    assert state is not None and state.connection is not None
    assert state.connection.id == second.stdout.strip() != first
    ok(deployed("teardown"))
    # Nothing left behind: the state no longer knew the first, so only connect could close it.
    open_ids = {
        r.id for r in embedded_with_feed.wsm.list() if r.status.value.upper() == "CONNECTED"
    }
    assert first not in open_ids and second.stdout.strip() not in open_ids


def test_bad_url_is_a_usage_error(feed_cli: Cli) -> None:
    result = feed_cli("connect", "--url", "http://example.com/")
    assert result.exit_code == 2
    assert "ws://" in result.stderr


def test_no_worker_deployed_is_a_reply_timeout(feed_cli: Cli) -> None:
    result = feed_cli("connect", "--timeout", "1")
    assert result.exit_code == 6, result.stderr
    assert "no reply to 'create'" in result.stderr
    assert "alpaca-md deploy" in result.stderr
    assert StateStore(feed_cli.state_path).read() is None


def test_sidecar_down_is_unreachable_with_url_and_hint(cli: Cli) -> None:
    port = free_port()
    env = {
        "DAPR_HTTP_PORT": str(port),
        "DAPR_GRPC_PORT": str(free_port()),
        "DAPR_HEALTH_TIMEOUT": "0.5",
    }
    result = cli("connect", env=env)
    assert result.exit_code == 3, result.stderr
    assert f"http://127.0.0.1:{port}" in result.stderr
    assert "dapr run --app-id" in result.stderr
    assert result.stdout == ""


def test_sidecar_down_fails_fast_without_dapr_health_timeout(cli: Cli) -> None:
    """The SDK would wait 60 s; we wait a few seconds (pytest-timeout guards the bound)."""
    env = {"DAPR_HTTP_PORT": str(free_port()), "DAPR_GRPC_PORT": str(free_port())}
    result = cli("connect", env=env)
    assert result.exit_code == 3


def test_a_caller_that_authenticates_at_once_can_skip_the_deadline_warning(
    deployed: Cli, embedded_with_feed: Any
) -> None:
    import io

    from alpaca_cli.config import ConfigOptions, load_config
    from alpaca_cli.runtime import Runtime
    from alpaca_cli.steps.connect import connect_stream

    config = load_config(
        ConfigOptions(state=deployed.state_path), environ=embedded_with_feed.env(), cwd=deployed.cwd
    )
    stderr = io.StringIO()
    with Runtime(config, stderr=stderr) as rt:
        result = connect_stream(rt, warn_deadline=False)
        assert "Warning" not in stderr.getvalue()
        assert result.connection_id in {r.id for r in embedded_with_feed.wsm.list()}
        connect_stream(rt)  # the default still warns (and replaces the first connection)
    assert "10 s" in stderr.getvalue() and "alpaca-md auth" in stderr.getvalue()
    deployed("teardown")


def test_reply_topic_option_gets_the_reply_on_that_topic(
    deployed: Cli, embedded_with_feed: Any, bus: str
) -> None:
    result = ok(deployed("connect", "--reply-topic", "replies.alpaca-md-test", "-vv"))
    subscribed = {
        "dapr": "subscribed to pubsub/replies.alpaca-md-test",
        "gateway": "subscribed to replies.alpaca-md-test through the gateway",
    }
    assert subscribed[bus] in result.stderr
    assert "response.websocketmanagercontroller" not in result.stderr
    assert result.stdout.strip() in {r.id for r in embedded_with_feed.wsm.list()}
    ok(deployed("teardown"))


def test_old_url_spelling_still_works_and_alpaca_url_is_the_name(feed_cli: Cli) -> None:
    new = feed_cli("connect", "--alpaca-url", "http://example.com/")
    old = feed_cli("connect", "--url", "http://example.com/")
    assert new.exit_code == old.exit_code == 2
    assert new.stderr.startswith("Error: --alpaca-url: ")
    assert "ws://" in old.stderr
    assert "--url" not in feed_cli("connect", "--help").stdout.replace("--alpaca-url", "")
