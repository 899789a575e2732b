"""``alpaca-md list`` against the embedded platform: tables, plain lines, JSON, via which path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from alpaca_cli.state import ConnectionRecord, StateStore
from tests.support import Cli, free_port, gateway_call

EMBEDDED_URL = "embedded://websocketmanagercontroller"


@pytest.fixture
def deployed(feed_cli: Cli, embedded_with_feed: Any) -> Iterator[dict[str, str]]:
    """A deployed controller and an open connection, both named by the state file."""
    result = feed_cli("deploy", "--url", EMBEDDED_URL)
    assert result.exit_code == 0, result.stderr
    url = embedded_with_feed.stream_url
    conn = gateway_call(
        embedded_with_feed, "websocketmanager", "Connect", {"url": url, "auto_reconnect": False}
    )
    with StateStore(feed_cli.state_path).transaction() as state:
        state.connection = ConnectionRecord(id=conn["id"], url=url)
    yield {"worker": result.stdout.strip(), "connection": conn["id"]}
    feed_cli("teardown")


def test_json_lists_both_and_marks_what_the_state_names(
    feed_cli: Cli, deployed: dict[str, str]
) -> None:
    result = feed_cli("list", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["connections_via"] == "controller"
    (conn,) = [c for c in out["connections"] if c["id"] == deployed["connection"]]
    assert conn["in_state"] is True
    assert conn["status"] == "CONNECTED"
    (worker,) = [w for w in out["workers"] if w["id"] == deployed["worker"]]
    assert worker["in_state"] and worker["made_by_alpaca_md"]
    assert worker["status"] == "RUNNING"
    assert worker["topics"] == ["command.websocketmanagercontroller"]


def test_root_json_option_works_too(feed_cli: Cli, deployed: dict[str, str]) -> None:
    result = feed_cli("--json", "list", "--via", "gateway")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["connections_via"] == "gateway"


def test_plain_output_is_tab_separated_without_header(
    feed_cli: Cli, deployed: dict[str, str]
) -> None:
    result = feed_cli("list")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.split("\t")[0] in ("connections", "workers") for line in lines)
    conn_line = next(line for line in lines if deployed["connection"] in line)
    fields = conn_line.split("\t")
    assert fields[:3] == ["connections", deployed["connection"], "CONNECTED"]
    assert fields[-1] == "state"
    worker_line = next(line for line in lines if deployed["worker"] in line)
    assert worker_line.split("\t")[2] == "RUNNING"
    assert "\x1b[" not in result.stdout


def test_without_a_worker_in_the_state_the_gateway_lists_connections(feed_cli: Cli) -> None:
    result = feed_cli("list", "--connections", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["connections_via"] == "gateway"
    assert out["workers"] == []


def test_workers_only(feed_cli: Cli, deployed: dict[str, str]) -> None:
    out = json.loads(feed_cli("list", "--workers", "--json").stdout)
    assert out["connections"] == []
    assert deployed["worker"] in {w["id"] for w in out["workers"]}


def test_no_controller_answering_is_exit_6(feed_cli: Cli) -> None:
    result = feed_cli(
        "list", "--via", "controller", "--command-topic", "nobody.listens", "--timeout", "0.5"
    )
    assert result.exit_code == 6, result.stderr
    assert "no reply to 'list'" in result.stderr


def test_gateway_down_is_exit_3(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("list", env={"VIRTUFIN_API_URL": url})
    assert result.exit_code == 3
    assert url in result.stderr
    assert result.stdout == ""


def test_a_bad_via_is_exit_2(cli: Cli) -> None:
    result = cli("list", "--via", "carrier-pigeon")
    assert result.exit_code == 2
    assert "--via" in result.stderr


def test_a_corrupt_state_file_is_exit_2_and_left_alone(feed_cli: Cli) -> None:
    feed_cli.state_path.parent.mkdir(parents=True)
    feed_cli.state_path.write_text("{oops")
    result = feed_cli("list")
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr and str(feed_cli.state_path) in result.stderr
    assert feed_cli.state_path.read_text() == "{oops"
