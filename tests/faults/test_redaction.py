"""A gateway error body that echoes the API key (issue 11, hole 9): every place an error becomes
text masks it, raw and base64 — the ``Error:`` line, ``run``'s final line, the report's
``exit_reason`` and ``--json``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.faultproxy import Fault, FaultProxy

pytestmark = pytest.mark.timeout(120)

KEY = "vf-live-0123456789abcdef"
ECHOES = [
    pytest.param('{"error": "unknown key {api_key}"}', id="raw"),
    pytest.param('{"error": "unknown key (b64 {api_key_b64})"}', id="base64"),
    pytest.param("bad request from key={api_key}\nat line 2", id="multiline-text"),
]


def leaks(text: str) -> bool:
    return KEY in text or base64.b64encode(KEY.encode()).decode().rstrip("=") in text


@pytest.mark.parametrize("body", ECHOES)
def test_an_echoed_key_never_reaches_the_error_line(
    spawn: Any, proxy: FaultProxy, proxied_env: dict[str, str], body: str
) -> None:
    proxy.add("workmanager.ListWorkers", Fault("status", status=400, body=body))
    proc = spawn(["list", "--json"], {**proxied_env, "VIRTUFIN_API_KEY": KEY})
    assert proc.wait() == 5, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert "HTTP 400" in proc.stderr
    assert not leaks(proc.stderr + proc.stdout), proc.stderr


@pytest.mark.parametrize("body", ECHOES)
def test_an_echoed_key_never_reaches_runs_final_line_report_or_json(
    spawn: Any, proxy: FaultProxy, proxied_env: dict[str, str], tmp_path: Path, body: str
) -> None:
    proxy.add("workmanager.CreateWorker", Fault("status", status=400, body=body))
    report = tmp_path / "report.json"
    proc = spawn(
        [
            "run",
            "--url",
            "embedded://websocketmanagercontroller",
            "--stall-limit",
            "0",
            "--duration",
            "5",
            "--report",
            str(report),
            "--json",
        ],
        {**proxied_env, "VIRTUFIN_API_KEY": KEY},
    )
    assert proc.wait() == 5, proc.stderr
    final = proc.stderr.splitlines()[-1]
    assert final.startswith("run: deploy failed: The gateway refused"), proc.stderr
    reason = json.loads(report.read_text())["exit_reason"]
    assert json.loads(proc.stdout)["exit_reason"] == reason
    assert "\n" not in reason
    assert not leaks(proc.stderr + proc.stdout + report.read_text()), proc.stderr
