"""Nothing left behind (issue 11) and create-side robustness (issue 12) of the step commands,
against embedded platforms over loopback, some behind a fault-injecting proxy.

Each test names the hole it closes; each failed before its fix.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alpaca_cli.errors import PlatformUnreachable, StateError
from alpaca_cli.state import PendingRecord, State, StateStore
from alpaca_cli.steps.tags import TAG_INTENT, is_ours, undo_unrecorded
from tests.faultproxy import Fault, FaultProxy
from tests.support import Cli, bus_env, child_env, embedded_platform, free_port

EMBEDDED_URL = "embedded://websocketmanagercontroller"


def ours(record: Any) -> bool:
    return is_ours(record.tags)


@pytest.fixture
def dropping() -> Iterator[Any]:
    """A platform whose WorkManager drops the first command on the controller's topic."""
    with embedded_platform(drop_commands=1) as running:
        yield running


@pytest.fixture(scope="module")
def duplicating() -> Iterator[Any]:
    """A platform whose gateway runs every CreateWorker twice (a retried call)."""
    with embedded_platform(feed=False, duplicate_create=True, start_on_create=True) as running:
        yield running


# -- hole 2: check before acting ------------------------------------------------------------------

CORRUPTIONS = {
    "not-json": b"{not json",
    "not-object": b"[1, 2]",
    "unknown-version": b'{"version": 99}',
    "bad-field": b'{"version": 1, "worker": {"id": 5}}',
    "unknown-field": b'{"version": 1, "surprise": true}',
    "empty": b"",
    "binary": b"\xff\xfe\x00",
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_connect_with_a_corrupt_state_file_opens_nothing(
    feed_cli: Cli, embedded_with_feed: Any, kind: str, tmp_path: Path
) -> None:
    """Hole 2: connect used to open the upstream connection, then fail reading the state."""
    assert feed_cli("deploy", "--url", EMBEDDED_URL).exit_code == 0
    bad = tmp_path / f"{kind}.json"
    bad.write_bytes(CORRUPTIONS[kind])
    before = {c.id for c in embedded_with_feed.wsm.list()}
    result = feed_cli("connect", "--state", str(bad), "--timeout", "5")
    assert result.exit_code == 2, result.stderr
    assert str(bad) in result.stderr and "Traceback" not in result.stderr
    assert {c.id for c in embedded_with_feed.wsm.list()} == before
    assert bad.read_bytes() == CORRUPTIONS[kind]  # left untouched
    assert feed_cli("teardown").exit_code == 0


# -- hole 1: orphaned connections are found by their tags -----------------------------------------


def test_orphans_yes_removes_connections_by_their_tags(
    feed_cli: Cli, embedded_with_feed: Any
) -> None:
    """Hole 1: a lost state file used to leave its connection streaming for good."""
    assert feed_cli("deploy", "--url", EMBEDDED_URL).exit_code == 0
    connected = feed_cli("connect", "--json")
    assert connected.exit_code == 0, connected.stderr
    [conn] = [c for c in embedded_with_feed.wsm.list() if ours(c)]
    feed_cli.state_path.unlink()  # the state file is lost
    listed = feed_cli("teardown", "--orphans")
    assert listed.exit_code == 0, listed.stderr
    assert f"{conn.id}\t" in listed.stdout and "orphaned connection" in listed.stderr
    removed = feed_cli("teardown", "--orphans", "--yes", "--json")
    assert removed.exit_code == 0, removed.stderr
    assert conn.id in json.loads(removed.stdout)["orphans_removed"]
    assert [c for c in embedded_with_feed.wsm.list() if ours(c)] == []
    assert [w for w in embedded_with_feed.workmanager.list_workers() if ours(w)] == []


def test_connections_carry_ownership_and_virtufin_tui_tags(
    feed_cli: Cli, embedded_with_feed: Any
) -> None:
    assert feed_cli("deploy", "--url", EMBEDDED_URL).exit_code == 0
    assert feed_cli("connect").exit_code == 0
    assert feed_cli("publish").exit_code == 0
    [conn] = [c for c in embedded_with_feed.wsm.list() if ours(c)]
    tags = dict(conn.tags)
    assert tags["world"] == "alpaca" and tags["universe"] == "crypto/us"
    assert tags["world_source"].startswith("ws://") and "?" not in tags["world_source"]
    assert tags["publishing"] == "alpaca-ticks"
    assert tags["alpaca-md-state"] == str(feed_cli.state_path)
    assert tags[TAG_INTENT]
    [worker] = [w for w in embedded_with_feed.workmanager.list_workers() if ours(w)]
    assert worker.tags["type"] == "websocketmanagercontroller"
    assert worker.tags["source"] == "alpaca-md"
    assert "ALPACA_API" not in json.dumps(tags) + json.dumps(dict(worker.tags))
    assert feed_cli("teardown").exit_code == 0


# -- teardown's new ways out ----------------------------------------------------------------------


def test_teardown_worker_and_connection_by_id(feed_cli: Cli, embedded_with_feed: Any) -> None:
    assert feed_cli("deploy", "--url", EMBEDDED_URL).exit_code == 0
    assert feed_cli("connect").exit_code == 0
    state = StateStore(feed_cli.state_path).read()
    assert state is not None and state.worker and state.connection
    feed_cli.state_path.unlink()
    result = feed_cli(
        "teardown", "--connection", state.connection.id, "--worker", state.worker.id, "--json"
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["disconnected"] == state.connection.id
    assert out["worker_removed"] == state.worker.id
    assert [c for c in embedded_with_feed.wsm.list() if ours(c)] == []


def test_forget_drops_the_ids_of_a_platform_that_is_gone(cli: Cli) -> None:
    """Hole 13 (the way out): a state file naming ids of a vanished platform."""
    gone = f"http://127.0.0.1:{free_port()}"
    store = StateStore(cli.state_path)
    with store.transaction() as state:
        state.gateway_url = gone
        state.pending.append(PendingRecord(kind="worker", intent="abc"))
    data = json.loads(cli.state_path.read_text())
    data["worker"] = {"id": "w-gone", "topics": ["t"]}
    data["connection"] = {"id": "c-gone", "url": "ws://x/"}
    cli.state_path.write_text(json.dumps(data))
    env = {"VIRTUFIN_API_URL": gone}
    assert cli("teardown", env=env).exit_code == 3  # without --forget: kept, exit 3
    # The gateway asked is the one the state file was written against, whatever is configured.
    result = cli("teardown", "--forget")
    assert result.exit_code == 0, result.stderr
    assert "worker w-gone" in result.stderr and "connection c-gone" in result.stderr
    assert "forgetting" in result.stderr
    assert not cli.state_path.exists()


# -- holes 14, 15, 16: a failing gateway ----------------------------------------------------------


def _proxied(platform: Any, url: str, bus: str) -> dict[str, str]:
    return {**bus_env(platform.env(), bus), "VIRTUFIN_API_URL": url}


@pytest.fixture
def gateway_only(embedded: Any) -> Iterator[Any]:
    yield embedded
    for worker in embedded.workmanager.list_workers():
        assert not ours(worker), f"left behind: {worker}"


def test_a_failing_stop_worker_does_not_prevent_delete(
    cli: Cli, gateway_only: Any, bus: str
) -> None:
    """Hole 14: StopWorker answering 5xx (twice: the retry too) used to skip DeleteWorker."""
    with FaultProxy(gateway_only.gateway_url) as proxy:
        proxy.add("workmanager.StopWorker", Fault("status", status=502))
        env = _proxied(gateway_only, proxy.url, bus)
        assert cli("deploy", "--url", EMBEDDED_URL, env=env).exit_code == 0
        result = cli("teardown", env=env)
    assert result.exit_code == 0, result.stderr
    assert proxy.hits["workmanager.StopWorker"] == 2  # tried once more on a transport error
    assert "workmanager.DeleteWorker" in proxy.hits
    assert not cli.state_path.exists()


def test_a_transport_error_on_delete_is_retried_once(cli: Cli, gateway_only: Any, bus: str) -> None:
    with FaultProxy(gateway_only.gateway_url) as proxy:
        proxy.add("workmanager.DeleteWorker", Fault("status", status=502, times=1))
        env = _proxied(gateway_only, proxy.url, bus)
        assert cli("deploy", "--url", EMBEDDED_URL, env=env).exit_code == 0
        result = cli("teardown", env=env)
    assert result.exit_code == 0, result.stderr
    assert proxy.hits["workmanager.DeleteWorker"] == 2


def test_a_5xx_from_schema_discovery_falls_back_to_the_default_form(
    cli: Cli, gateway_only: Any, bus: str
) -> None:
    """Hole 15: the optional schema endpoint answering 5xx used to abort deploy."""
    with FaultProxy(gateway_only.gateway_url) as proxy:
        proxy.add("/v1/grpc/*", Fault("status", status=502))
        env = _proxied(gateway_only, proxy.url, bus)
        result = cli("deploy", "--url", EMBEDDED_URL, env=env)
        assert result.exit_code == 0, result.stderr
        assert any(key.startswith("/v1/grpc/") for key in proxy.hits)
        assert cli("teardown", env=env).exit_code == 0


def test_a_lost_create_worker_answer_adopts_the_worker_by_its_tag(
    cli: Cli, gateway_only: Any, bus: str
) -> None:
    """Hole 16: CreateWorker ran but its answer was lost (502): the worker used to be left
    STOPPED and unrecorded. Now it is found by the intent tag, recorded and started."""
    with FaultProxy(gateway_only.gateway_url) as proxy:
        # The call takes effect; its answer is lost.
        proxy.add("workmanager.CreateWorker", Fault("status", when="after", status=502, times=1))
        env = _proxied(gateway_only, proxy.url, bus)
        result = cli("deploy", "--url", EMBEDDED_URL, env=env)
        assert result.exit_code == 0, result.stderr
        assert "had created worker" in result.stderr
        [worker] = [w for w in gateway_only.workmanager.list_workers() if ours(w)]
        assert worker.to_json()["status"] == "RUNNING"
        state = StateStore(cli.state_path).read()
        assert state is not None and state.worker is not None
        assert state.worker.id == worker.id and state.pending == []
        assert cli("teardown", env=env).exit_code == 0


def test_create_worker_failing_without_a_worker_leaves_no_pending_entry(
    cli: Cli, gateway_only: Any, bus: str
) -> None:
    with FaultProxy(gateway_only.gateway_url) as proxy:
        proxy.add("workmanager.CreateWorker", Fault("status", status=502))
        result = cli("deploy", "--url", EMBEDDED_URL, env=_proxied(gateway_only, proxy.url, bus))
    assert result.exit_code == 3, result.stderr
    assert not cli.state_path.exists()


# -- issue 12: duplicates from gateway retries, dropped commands ----------------------------------


def test_a_duplicated_create_worker_leaves_one_worker(
    workdir: Path, duplicating: Any, bus: str
) -> None:
    cli = Cli(cwd=workdir, env=bus_env(duplicating.env(), bus))
    result = cli("deploy", "--url", EMBEDDED_URL, "--json")
    assert result.exit_code == 0, result.stderr
    assert "duplicate worker" in result.stderr
    [worker] = [w for w in duplicating.workmanager.list_workers() if ours(w)]
    assert json.loads(result.stdout)["worker_id"] == worker.id
    assert cli("teardown").exit_code == 0
    assert [w for w in duplicating.workmanager.list_workers() if ours(w)] == []


def test_a_dropped_create_is_looked_for_then_sent_once_more(
    workdir: Path, dropping: Any, bus: str
) -> None:
    cli = Cli(cwd=workdir, env=bus_env(dropping.env(), bus))
    assert cli("deploy", "--url", EMBEDDED_URL).exit_code == 0
    result = cli("connect", "--timeout", "2", "--json")
    assert result.exit_code == 0, result.stderr
    conns = [c for c in dropping.wsm.list() if ours(c)]
    assert len(conns) == 1  # never two connections for one connect
    assert json.loads(result.stdout)["connection_id"] == conns[0].id
    assert cli("teardown").exit_code == 0
    assert [c for c in dropping.wsm.list() if ours(c)] == []


# -- hole 5: a full disk while recording ----------------------------------------------------------


def _deploy_with_file_limit(env: dict[str, str], cwd: Path, limit: int) -> Any:
    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = child_env(env)
    return subprocess.run(
        [sys.executable, "-m", "alpaca_cli", "deploy", "--url", EMBEDDED_URL],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        preexec_fn=limited,
        timeout=60,
    )


def test_an_unrecorded_object_is_undone_or_named_with_the_way_out() -> None:
    """The one message of holes 5/16 for workers and connections: undone, or tagged and
    found by ``teardown --orphans --yes``; the state error's hint survives either way."""
    failed = StateError("cannot write the state file X.", hint="free some space")
    undone: list[str] = []
    ok = undo_unrecorded(
        failed, "connection c1", lambda: undone.append("c1"), undone="closed", finds="closes"
    )
    assert undone == ["c1"] and ok.hint == "free some space"
    assert ok.message == (
        "cannot write the state file X. The new connection c1 was closed again, nothing is left."
    )

    def unreachable() -> None:
        raise PlatformUnreachable("gateway down", url="http://gw")

    kept = undo_unrecorded(failed, "worker w1", unreachable, undone="deleted", finds="removes")
    assert kept.message == (
        "cannot write the state file X. The new worker w1 could not be deleted either "
        "(gateway down); it is tagged: `alpaca-md teardown --orphans --yes` removes it."
    )
    assert kept.exit_code == failed.exit_code


def test_a_full_disk_before_create_creates_nothing(
    workdir: Path, gateway_only: Any, bus: str
) -> None:
    """Hole 5: the pending entry is written first, so a full disk fails before CreateWorker."""
    proc = _deploy_with_file_limit(bus_env(gateway_only.env(), bus), workdir, 0)
    assert proc.returncode == 2, proc.stderr
    assert "cannot write the state file" in proc.stderr and "Traceback" not in proc.stderr


def test_a_full_disk_while_recording_the_worker_deletes_it_again(
    workdir: Path, gateway_only: Any, bus: str
) -> None:
    """Hole 5: the worker exists but its record cannot be written: it is deleted again, and the
    error says so (it used to stay RUNNING and unrecorded)."""
    path = workdir / ".alpaca-md" / "state.json"
    pending = State(pending=[PendingRecord(kind="worker", intent="0" * 32)])
    pending.gateway_url = gateway_only.gateway_url
    limit = len(pending.model_dump_json(indent=2)) + 64  # fits the intent, not the record
    proc = _deploy_with_file_limit(bus_env(gateway_only.env(), bus), workdir, limit)
    assert proc.returncode == 2, proc.stderr
    assert "was deleted again" in proc.stderr and "Traceback" not in proc.stderr
    stale = StateStore(path).read()
    assert stale is not None and stale.worker is None and len(stale.pending) == 1
    # teardown resolves the pending entry: nothing carries its tag any more.
    assert Cli(cwd=workdir, env=bus_env(gateway_only.env(), bus))("teardown").exit_code == 0
    assert not path.exists()


def test_a_dropped_idempotent_command_is_sent_once_more(
    workdir: Path, dropping: Any, bus: str
) -> None:
    """Issue 12: ``publish`` dropped by a replica without a worker gets one more try."""
    from alpaca_cli.state import ConnectionRecord
    from tests.support import gateway_call

    cli = Cli(cwd=workdir, env=bus_env(dropping.env(), bus))
    assert cli("deploy", "--url", EMBEDDED_URL).exit_code == 0
    url = dropping.stream_url
    conn = gateway_call(dropping, "websocketmanager", "Connect", {"url": url})
    with StateStore(cli.state_path).transaction() as state:
        state.connection = ConnectionRecord(id=conn["id"], url=url)
    result = cli("publish", "--timeout", "2")
    assert result.exit_code == 0, result.stderr
    assert dropping.wsm.get(conn["id"]).topic == "alpaca-ticks"
    assert cli("teardown").exit_code == 0


def test_an_older_platform_rejecting_tag_filters_is_filtered_client_side(
    workdir: Path, bus: str
) -> None:
    """Issue 12: ListWorkers ``filters`` rejected (older platform): the duplicate check still
    finds exactly our workers, and deletes the extra one."""
    with embedded_platform(feed=False, legacy=True, duplicate_create=True) as platform:
        other = Cli(cwd=workdir / "other", env=bus_env(platform.env(), bus))
        (workdir / "other").mkdir()
        assert other("deploy", "--url", EMBEDDED_URL).exit_code == 0  # someone else's
        cli = Cli(cwd=workdir, env=bus_env(platform.env(), bus))
        result = cli("deploy", "--url", EMBEDDED_URL)
        assert result.exit_code == 0, result.stderr
        assert "duplicate worker" in result.stderr
        assert len([w for w in platform.workmanager.list_workers() if ours(w)]) == 2
        assert cli("teardown").exit_code == 0
        assert other("teardown").exit_code == 0
        assert platform.workmanager.list_workers() == []


def test_a_gateway_that_refuses_connections_leaves_no_pending_entry(cli: Cli) -> None:
    """Nothing can have been created when the gateway refused the connection itself: no
    pending entry stays behind for a later teardown to trip over."""
    gone = f"http://127.0.0.1:{free_port()}"
    result = cli("deploy", "--url", EMBEDDED_URL, env={"VIRTUFIN_API_URL": gone})
    assert result.exit_code == 3, result.stderr
    assert not cli.state_path.exists()
