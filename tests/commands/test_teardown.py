"""``alpaca-md teardown``: removes what the state names, idempotently; orphans; partial failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from alpaca_cli.state import ConnectionRecord, StateStore
from tests.support import Cli, free_port, gateway_call

EMBEDDED_URL = "embedded://websocketmanagercontroller"


def worker_ids(platform: Any) -> set[str]:
    data = gateway_call(platform, "workmanager", "ListWorkers", {})
    return {w["id"] for w in data.get("workers", [])}


def connection_ids(platform: Any) -> set[str]:
    data = gateway_call(platform, "websocketmanager", "List", {})
    return {c["id"] for c in data.get("connections", [])}


def deploy_and_connect(cli: Cli, platform: Any) -> tuple[str, str]:
    result = cli("deploy", "--url", EMBEDDED_URL)
    assert result.exit_code == 0, result.stderr
    url = platform.stream_url
    conn = gateway_call(
        platform, "websocketmanager", "Connect", {"url": url, "auto_reconnect": False}
    )
    with StateStore(cli.state_path).transaction() as state:
        state.connection = ConnectionRecord(id=conn["id"], url=url)
        state.publish_topic = "alpaca-ticks"
    return result.stdout.strip(), conn["id"]


def test_teardown_removes_everything_and_the_state_file(
    feed_cli: Cli, embedded_with_feed: Any
) -> None:
    worker, conn = deploy_and_connect(feed_cli, embedded_with_feed)
    result = feed_cli("teardown", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["disconnected"] == conn
    assert out["worker_removed"] == worker
    assert out["state_cleared"] is True and out["left"] == []
    assert worker not in worker_ids(embedded_with_feed)
    assert conn not in connection_ids(embedded_with_feed)
    assert not feed_cli.state_path.exists()
    assert f"Disconnected {conn}" in result.stderr


def test_teardown_twice_is_fine(feed_cli: Cli, embedded_with_feed: Any) -> None:
    deploy_and_connect(feed_cli, embedded_with_feed)
    assert feed_cli("teardown").exit_code == 0
    again = feed_cli("teardown")
    assert again.exit_code == 0, again.stderr
    assert "Nothing to tear down" in again.stderr


def test_things_already_gone_count_as_done(feed_cli: Cli, embedded_with_feed: Any) -> None:
    worker, conn = deploy_and_connect(feed_cli, embedded_with_feed)
    gateway_call(embedded_with_feed, "websocketmanager", "Disconnect", {"id": conn})
    gateway_call(embedded_with_feed, "workmanager", "DeleteWorker", {"id": worker})
    result = feed_cli("teardown", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert sorted(out["already_gone"]) == sorted([f"connection {conn}", f"worker {worker}"])
    assert not feed_cli.state_path.exists()


def test_gateway_down_keeps_the_state_and_says_what_is_left(
    feed_cli: Cli, embedded_with_feed: Any
) -> None:
    worker, conn = deploy_and_connect(feed_cli, embedded_with_feed)
    down = {"VIRTUFIN_API_URL": f"http://127.0.0.1:{free_port()}", "DAPR_GRPC_PORT": "1"}
    result = feed_cli("teardown", "--timeout", "1", env=down)
    assert result.exit_code == 3, result.stderr
    assert f"Left: connection {conn}, worker {worker}" in result.stderr
    assert f"written against the gateway {embedded_with_feed.gateway_url}" in result.stderr
    assert "Error: Cannot reach the gateway" in result.stderr
    state = StateStore(feed_cli.state_path).read()
    assert state is not None and state.worker is not None and state.worker.id == worker
    # Once the platform answers again, the same command finishes the job.
    finish = feed_cli("teardown")
    assert finish.exit_code == 0, finish.stderr
    assert not feed_cli.state_path.exists()
    assert worker not in worker_ids(embedded_with_feed)


def test_orphans_are_listed_then_removed_with_yes(
    feed_cli: Cli, embedded_with_feed: Any, tmp_path: Path
) -> None:
    lost = feed_cli("deploy", "--url", EMBEDDED_URL).stdout.strip()
    feed_cli.state_path.unlink()  # the state file is lost: the worker becomes an orphan
    kept_dir = tmp_path / "elsewhere"
    kept_dir.mkdir()
    kept_cli = Cli(cwd=kept_dir, env=feed_cli.env)
    kept = kept_cli("deploy", "--url", EMBEDDED_URL).stdout.strip()

    listed = feed_cli("teardown", "--orphans")
    assert listed.exit_code == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [lost, "RUNNING", "orphan"] in rows
    assert kept not in listed.stdout  # its state file still names it
    assert lost in worker_ids(embedded_with_feed)
    assert "--orphans --yes" in listed.stderr

    removed = feed_cli("teardown", "--orphans", "--yes", "--json")
    assert removed.exit_code == 0, removed.stderr
    assert lost in json.loads(removed.stdout)["orphans_removed"]
    ids = worker_ids(embedded_with_feed)
    assert lost not in ids and kept in ids
    assert kept_cli("teardown").exit_code == 0


def test_yes_without_orphans_is_a_usage_error(cli: Cli) -> None:
    result = cli("teardown", "--yes")
    assert result.exit_code == 2
    assert "--orphans" in result.stderr


def test_a_corrupt_state_file_is_exit_2_and_left_alone(feed_cli: Cli) -> None:
    feed_cli.state_path.parent.mkdir(parents=True)
    feed_cli.state_path.write_text('{"version": 7}')
    result = feed_cli("teardown")
    assert result.exit_code == 2
    assert "unknown state file version 7" in result.stderr
    assert feed_cli.state_path.read_text() == '{"version": 7}'


@pytest.mark.timeout(90)
def test_concurrent_deploys_create_exactly_one_worker(
    feed_cli: Cli, embedded_with_feed: Any
) -> None:
    """Two processes racing on one state file: the lock serialises them, the second refuses."""
    env = {**os.environ, **feed_cli.env}
    argv = [sys.executable, "-m", "alpaca_cli", "deploy", "--url", EMBEDDED_URL]
    before = worker_ids(embedded_with_feed)
    procs = [
        subprocess.Popen(
            argv, cwd=feed_cli.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = [(p.wait(60), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    created = worker_ids(embedded_with_feed) - before
    assert len(created) == 1
    state = StateStore(feed_cli.state_path).read()
    assert state is not None and state.worker is not None
    assert {state.worker.id} == created
    assert feed_cli("teardown").exit_code == 0
