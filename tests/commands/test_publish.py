"""``alpaca-md publish`` end to end on the embedded platform."""

from __future__ import annotations

import json
from typing import Any

from alpaca_cli.state import StateStore
from tests.support import Cli, gateway_call
from tests.support_pubsub import ok


def test_publish_records_the_topic_and_the_wsm_publishes_there(
    deployed: Cli, embedded_with_feed: Any
) -> None:
    connection_id = ok(deployed("connect")).stdout.strip()
    result = ok(deployed("publish"))
    assert result.stdout.strip() == "alpaca-ticks"
    state = StateStore(deployed.state_path).read()
    assert state is not None and state.publish_topic == "alpaca-ticks"
    record = {r.id: r for r in embedded_with_feed.wsm.list()}[connection_id]
    assert record.topic == "alpaca-ticks"


def test_topic_option_wins(deployed: Cli, embedded_with_feed: Any) -> None:
    connection_id = ok(deployed("connect")).stdout.strip()
    doc = json.loads(ok(deployed("publish", "--topic", "my.topic", "--json")).stdout)
    assert doc == {"connection_id": connection_id, "topic": "my.topic"}
    assert {r.id: r for r in embedded_with_feed.wsm.list()}[connection_id].topic == "my.topic"


def test_publish_without_a_connection_is_a_usage_error(feed_cli: Cli) -> None:
    result = feed_cli("publish")
    assert result.exit_code == 2
    assert "alpaca-md connect" in result.stderr


def test_publish_on_a_closed_connection_is_refused(deployed: Cli, embedded_with_feed: Any) -> None:
    connection_id = ok(deployed("connect", "--no-reconnect")).stdout.strip()
    gateway_call(embedded_with_feed, "websocketmanager", "Disconnect", {"id": connection_id})
    result = deployed("publish")
    assert result.exit_code == 5, result.stderr
    assert "refused 'publish'" in result.stderr
