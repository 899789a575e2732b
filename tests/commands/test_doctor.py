"""``alpaca-md doctor``: against ``dev up``, against nothing, and each check's failure class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alpaca_cli.state import ConnectionRecord, StateStore, WorkerRecord
from alpaca_cli.steps.doctor import stream_url_problem
from tests.devstack.test_stack import dev_up, wait_ready
from tests.support import Cli, free_port

pytestmark = pytest.mark.timeout(120)

NAMES = [
    "gateway", "api key", "services", "bus", "controller", "alpaca keys", "stream url", "state",
]  # fmt: skip


def test_doctor_passes_against_dev_up(tmp_path: Path, cli: Cli) -> None:
    env_file = tmp_path / "dev.env"
    with dev_up("--write-env", str(env_file), "--exit-with-stdin") as proc:
        wait_ready(proc)
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        result = cli("doctor", env=env)
        assert result.exit_code == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert [line.split(" (")[0].split(":")[0][2:] for line in lines] == NAMES
        assert lines[0].startswith("✓ gateway (") and "Healthy" in lines[0]
        assert lines[4] == "- controller: no worker deployed"
        assert env["ALPACA_API_SECRET"] not in result.stdout
        checks = json.loads(cli("doctor", "--json", env=env).stdout)
        assert [c["name"] for c in checks] == NAMES
        assert {c["status"] for c in checks} == {"ok", "skip"}
        assert proc.stdin is not None
        proc.stdin.close()


def test_doctor_exits_3_naming_the_gateway_when_it_is_down(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = {"VIRTUFIN_API_URL": url, "DAPR_HTTP_PORT": str(free_port())}
    result = cli("doctor", env=env)
    assert result.exit_code == 3
    first = result.stdout.splitlines()[0]
    assert first.startswith("✗ gateway (") and url in first and "fix:" in first
    assert "- api key: needs the gateway" in result.stdout
    assert result.stderr.splitlines()[-1].startswith(
        f"Error: doctor: gateway failed: Cannot reach the gateway at {url}"
    )


def test_a_state_file_naming_what_is_gone_is_a_local_problem(feed_cli: Cli) -> None:
    with StateStore(feed_cli.state_path).transaction() as state:
        state.worker = WorkerRecord(id="gone-worker")
        state.connection = ConnectionRecord(id="gone-connection", url="ws://x/v1beta3/crypto/us")
    result = feed_cli("doctor", "--json", "--timeout", "2")
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["state"]["status"] == "fail"
    assert "worker gone-worker, connection gone-connection" in checks["state"]["detail"]
    assert checks["state"]["fix"] == "Run `alpaca-md teardown` to forget them."
    # The controller check comes first and fails first: a worker that is not there cannot reply.
    assert checks["controller"]["status"] == "fail"
    assert result.exit_code == checks["controller"]["exit_code"] != 0


def test_missing_alpaca_keys_and_a_bad_stream_url_exit_2(feed_cli: Cli) -> None:
    env: dict[str, Any] = {"ALPACA_API_KEY": "", "ALPACA_STREAM_URL": "wss://h/v1beta3/crypto"}
    result = feed_cli("doctor", env=env)
    assert result.exit_code == 2
    assert "✗ alpaca keys (" in result.stdout and "ALPACA_API_KEY not set" in result.stdout
    assert "lacks the location segment" in result.stdout


@pytest.mark.parametrize(
    "url,problem",
    [
        ("wss://stream.data.alpaca.markets/v1beta3/crypto/us", None),
        ("wss://stream.data.alpaca.markets/v2/test", None),
        ("https://stream.data.alpaca.markets/v1beta3/crypto/us", "not a ws:// or wss:// URL"),
        ("wss://stream.data.alpaca.markets/v1beta3/crypto/", "lacks the location segment"),
        ("wss:///v1beta3/crypto/us", "names no host"),
    ],
)
def test_stream_url_problems(url: str, problem: str | None) -> None:
    found = stream_url_problem(url)
    assert (found is None) if problem is None else (problem in (found or ""))
