"""``alpaca-md run ... 2>&1 | head`` (issue 11, hole 12): once the reader has gone, stderr is a
closed pipe; a progress line must never stop the teardown that follows it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import connections, workers
from tests.support import child_env

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_run_tears_down_after_its_stderr_reader_went_away(
    platform: Any, tmp_path: Path, json_output: bool
) -> None:
    before_w, before_c = set(workers(platform)), set(connections(platform))
    env = child_env(platform.env(), unbuffered=False)
    args = ["run", "--url", "embedded://websocketmanagercontroller", "--stall-limit", "0"]
    args += ["--duration", "2", *(["--json"] if json_output else [])]
    with subprocess.Popen(
        [sys.executable, "-m", "alpaca_cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # 2>&1
        env=env,
        cwd=tmp_path,
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # | head -1
        assert first
        proc.stdout.close()
        code = proc.wait(timeout=60)
    assert code == 0, code  # a reader that leaves is not an error
    # The teardown ran: this run's worker and connection are gone, and the state file with them.
    assert set(workers(platform)) == before_w
    assert set(connections(platform)) == before_c
    assert not (tmp_path / ".alpaca-md" / "state.json").exists()
