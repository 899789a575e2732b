"""``run`` owns what it created (issue 11): real ``alpaca-md`` processes, real signals, an
embedded platform over loopback. Each test names the hole it closes; each failed before."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from alpaca_cli.state import State, StateStore, WorkerRecord
from tests.support import gateway_call

pytestmark = pytest.mark.timeout(180)

EMBEDDED_WORKER_URL = "embedded://websocketmanagercontroller"
DOTNET = "application/x-dotnet-dll"


def platform_args(*extra: str) -> list[str]:
    return ["run", "--url", EMBEDDED_WORKER_URL, "--stall-limit", "0", *extra]


def wait_for_text(proc: Any, text: str, timeout: float = 60.0) -> str:
    """The first stderr line containing ``text`` (fails if the process ends first)."""
    with proc._changed:
        proc._changed.wait_for(
            lambda: any(text in line for line in proc.lines) or not proc._reader.is_alive(),
            timeout=timeout,
        )
        found = next((line for line in proc.lines if text in line), None)
    assert found is not None, f"no line with {text!r} in:\n{proc.stderr}"
    return found


def test_a_lost_state_file_still_gets_its_objects_torn_down(
    nothing_left: Any, run_cli: Any, platform: Any, tmp_path: Path
) -> None:
    """Hole 6: the state file deleted while run streams used to mean no teardown at all."""
    proc = run_cli(platform_args("--duration", "120"), platform.env())
    proc.wait_for_line("… stream:")
    (tmp_path / ".alpaca-md" / "state.json").unlink()
    proc.send_signal(signal.SIGINT)
    assert proc.wait() == 130, proc.stderr
    assert "vanished during the run" in proc.stderr
    assert "✓ teardown" in proc.stderr
    nothing_left(platform)


def test_objects_torn_down_from_elsewhere_make_the_run_fail(
    nothing_left: Any, run_cli: Any, platform: Any
) -> None:
    """Hole 11: run used to go on and exit 0 after its worker and connection were removed."""
    proc = run_cli(platform_args("--duration", "10"), platform.env())
    proc.wait_for_line("… stream:")
    [conn] = platform.wsm.list()
    [worker] = platform.workmanager.list_workers()
    gateway_call(platform, "websocketmanager", "Disconnect", {"id": conn.id})
    gateway_call(platform, "workmanager", "DeleteWorker", {"id": worker.id})
    code = proc.wait()
    assert code not in (0, 130), proc.stderr
    line = wait_for_text(proc, "vanished while it ran")
    assert f"worker {worker.id}" in line
    nothing_left(platform)


def test_a_run_refused_at_deploy_never_touches_the_other_runs_worker(
    nothing_left: Any, run_cli: Any, platform: Any, tmp_path: Path
) -> None:
    """Hole 3: a run that read the state file before another invocation recorded its worker,
    then was refused at deploy, used to tear that worker down."""
    state_path = tmp_path / ".alpaca-md" / "state.json"
    state_path.parent.mkdir(parents=True)
    lock = os.open(f"{state_path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)  # "another invocation" holds the state file
    try:
        proc = run_cli(platform_args("--duration", "5"), platform.env())
        proc.wait_for_line("… deploy:")  # past its first look at the state; now waits on us
        other = gateway_call(
            platform,
            "workmanager",
            "CreateWorker",
            {"code_source": {"url": EMBEDDED_WORKER_URL}, "topics": ["t"], "mime_type": DOTNET},
        )["id"]
        gateway_call(platform, "workmanager", "StartWorker", {"id": other})
        state_path.write_text(State(worker=WorkerRecord(id=other, topics=["t"])).model_dump_json())
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    assert proc.wait() == 2, proc.stderr
    assert "already names worker" in proc.stderr
    assert [w.id for w in platform.workmanager.list_workers()] == [other]
    stored = StateStore(state_path).read()
    assert stored is not None and stored.worker is not None and stored.worker.id == other
    cleanup = run_cli(["teardown"], platform.env())
    assert cleanup.wait() == 0, cleanup.stderr
    nothing_left(platform)


def test_a_second_ctrl_c_during_a_slow_start_worker_names_the_worker(
    nothing_left: Any, run_cli: Any, platform: Any
) -> None:
    """Hole 4: it used to say "nothing had been created" and leave the worker unrecorded."""
    workmanager = platform.workmanager
    original = workmanager.start_worker
    started, release = threading.Event(), threading.Event()

    async def slow_start(worker_id: str) -> None:
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.05)
        await original(worker_id)

    workmanager.start_worker = slow_start
    try:
        proc = run_cli(platform_args("--duration", "30"), platform.env())
        assert started.wait(60), proc.stderr
        proc.send_signal(signal.SIGINT)
        wait_for_text(proc, "press Ctrl+C again")
        proc.send_signal(signal.SIGINT)
        assert proc.wait() == 130, proc.stderr
    finally:
        release.set()
        workmanager.start_worker = original
    left = proc.wait_for_line("Skipped cleanup.")
    [worker] = workmanager.list_workers()
    assert f"worker {worker.id}" in left and "nothing had been created" not in proc.stderr
    cleanup = run_cli(["teardown"], platform.env())
    assert cleanup.wait() == 0, cleanup.stderr
    nothing_left(platform)


def test_orphans_yes_closes_the_connection_of_a_killed_run(
    nothing_left: Any, run_cli: Any, platform: Any, tmp_path: Path
) -> None:
    """Hole 1: SIGKILL a streaming run, lose its state file: the connection streamed on."""
    proc = run_cli(platform_args("--duration", "120"), platform.env())
    proc.wait_for_line("… stream:")
    proc.kill()
    (tmp_path / ".alpaca-md" / "state.json").unlink()
    assert platform.wsm.list() != []
    cleanup = run_cli(["teardown", "--orphans", "--yes"], platform.env())
    assert cleanup.wait() == 0, cleanup.stderr
    nothing_left(platform)


def test_a_double_ctrl_c_on_an_embedded_run_leaves_no_dead_ids(
    run_cli: Any, tmp_path: Path
) -> None:
    """Hole 13: --state F kept naming ids of the embedded platform that was gone, and
    `teardown --state F` exited 3 forever."""
    state = tmp_path / "mine.json"
    proc = run_cli(["run", "--embedded", "--state", str(state), "--duration", "60"])
    proc.wait_for_line("… stream:")
    proc.send_signal(signal.SIGINT)
    wait_for_text(proc, "press Ctrl+C again")
    proc.send_signal(signal.SIGINT)
    assert proc.wait() == 130, proc.stderr
    cleanup = run_cli(["teardown", "--state", str(state)])
    assert cleanup.wait() == 0, cleanup.stderr


def test_a_killed_embedded_run_leaves_no_temp_directory_for_good(
    run_cli: Any, tmp_path: Path
) -> None:
    """Hole 21: a SIGKILLed run --embedded left its temp directory (with test credentials)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    proc = run_cli(["run", "--embedded", "--duration", "60"], env)
    proc.wait_for_line("… stream:")
    [stale] = [p for p in tmp.iterdir() if p.name.startswith("alpaca-md-embedded-")]
    proc.kill()
    assert stale.exists()
    again = run_cli(["run", "--embedded", "--duration", "1", "--json"], env)
    assert again.wait() == 0, again.stderr
    assert json.loads(again.stdout)["exit_code"] == 0
    assert not stale.exists()
    assert [p for p in tmp.iterdir() if p.name.startswith("alpaca-md-embedded-")] == []


def test_a_state_file_corrupted_during_the_run_does_not_stop_its_teardown(
    nothing_left: Any, run_cli: Any, platform: Any, tmp_path: Path
) -> None:
    """A run owns what it created: an unreadable state file at teardown used to mean
    "Teardown incomplete" and everything left on the platform."""
    proc = run_cli(platform_args("--duration", "120"), platform.env())
    proc.wait_for_line("… stream:")
    (tmp_path / ".alpaca-md" / "state.json").write_text("{not json")
    proc.send_signal(signal.SIGINT)
    assert proc.wait() == 130, proc.stderr
    assert "removing what this run created without it" in proc.stderr
    assert "✓ teardown" in proc.stderr and "Traceback" not in proc.stderr
    nothing_left(platform)
