"""``alpaca-md deploy`` against the embedded platform over loopback, and its failure paths."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from alpaca_cli.config import ConfigOptions, load_config
from alpaca_cli.errors import CommandRefused
from alpaca_cli.runtime import Runtime
from alpaca_cli.state import StateStore
from alpaca_cli.steps.deploy import deploy_worker
from tests.support import Cli, free_port

EMBEDDED_URL = "embedded://websocketmanagercontroller"


def controller_zip(path: Path) -> Path:
    """A package the embedded WorkManager recognises as the controller worker."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Virtufin.Examples.WebSocketManagerController.dll", b"MZ fake")
    path.write_bytes(buffer.getvalue())
    return path


def workers_of(embedded: Any) -> dict[str, Any]:
    with httpx.Client() as client:
        body = {"service": "workmanager", "method": "ListWorkers", "request_data": "{}"}
        answer = client.post(f"{embedded.gateway_url}/v1/gateway/invoke-json", json=body).json()
    data = json.loads(answer["response_data"] or "{}")
    return {w["id"]: w for w in data.get("workers", [])}


def test_deploy_by_url_creates_tags_and_starts_the_worker(platform_cli: Cli, embedded: Any) -> None:
    result = platform_cli("deploy", "--url", EMBEDDED_URL, "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    worker = workers_of(embedded)[out["worker_id"]]
    assert worker["status"] in ("RUNNING", "WORKER_STATUS_RUNNING", 2)
    assert worker["topics"] == ["command.websocketmanagercontroller"]
    assert worker["tags"]["created-by"] == "alpaca-md"
    state = json.loads(platform_cli.state_path.read_text())
    assert worker["tags"]["alpaca-md-run-id"] == state["run_id"] == out["run_id"]
    assert state["worker"]["id"] == out["worker_id"]
    assert state["worker"]["package_url"] == EMBEDDED_URL
    assert state["gateway_url"] == embedded.gateway_url
    assert "is running" in result.stderr


def test_deploy_sends_the_built_package_by_default(platform_cli: Cli, embedded: Any) -> None:
    package = controller_zip(platform_cli.cwd / "worker.zip")
    store = StateStore(platform_cli.state_path)
    from alpaca_cli.state import BuildRecord
    from alpaca_cli.steps.build import sha256_of

    with store.transaction() as state:
        state.build = BuildRecord(package_path=str(package), package_sha256=sha256_of(package))
    result = platform_cli("deploy")
    assert result.exit_code == 0, result.stderr
    worker_id = result.stdout.strip()
    assert worker_id in workers_of(embedded)
    saved = store.read()
    assert saved is not None and saved.worker is not None
    assert saved.worker.package_sha256 == sha256_of(package)


def test_a_second_deploy_is_refused_unless_replace(platform_cli: Cli, embedded: Any) -> None:
    first = platform_cli("deploy", "--url", EMBEDDED_URL).stdout.strip()
    again = platform_cli("deploy", "--url", EMBEDDED_URL)
    assert again.exit_code == 2
    assert f"already names worker {first}" in again.stderr
    assert "--replace" in again.stderr and "teardown" in again.stderr
    replaced = platform_cli("deploy", "--url", EMBEDDED_URL, "--replace", "--json")
    assert replaced.exit_code == 0, replaced.stderr
    out = json.loads(replaced.stdout)
    assert out["replaced_worker_id"] == first
    workers = workers_of(embedded)
    assert first not in workers and out["worker_id"] in workers


def test_a_stale_worker_in_the_state_does_not_block(platform_cli: Cli, embedded: Any) -> None:
    from alpaca_cli.state import WorkerRecord

    with StateStore(platform_cli.state_path).transaction() as state:
        state.worker = WorkerRecord(id="gone-long-ago")
    result = platform_cli("deploy", "--url", EMBEDDED_URL)
    assert result.exit_code == 0, result.stderr


def test_nothing_to_deploy(platform_cli: Cli) -> None:
    result = platform_cli("deploy")
    assert result.exit_code == 2
    assert "Nothing to deploy" in result.stderr and "alpaca-md build" in result.stderr


def test_an_unwritable_state_path_exits_2_before_any_worker_is_created(
    platform_cli: Cli, embedded: Any
) -> None:
    (platform_cli.cwd / "afile").write_text("not a directory")
    before = set(workers_of(embedded))
    result = platform_cli("deploy", "--url", EMBEDDED_URL, "--state", "afile/state.json")
    assert result.exit_code == 2, result.stderr
    assert "cannot create the state file's directory or lock" in result.stderr
    assert "--state" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert set(workers_of(embedded)) == before


def test_package_and_url_together_are_rejected(platform_cli: Cli) -> None:
    result = platform_cli("deploy", "--url", EMBEDDED_URL, "--package", "x.zip")
    assert result.exit_code == 2
    assert "either --package or --url" in result.stderr


def test_a_missing_package_file(platform_cli: Cli) -> None:
    result = platform_cli("deploy", "--package", "missing.zip")
    assert result.exit_code == 2
    assert "Cannot read the package missing.zip" in result.stderr


def test_an_unknown_package_is_refused_by_the_platform(platform_cli: Cli, embedded: Any) -> None:
    package = platform_cli.cwd / "other.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("SomethingElse.dll", b"MZ")
    before = set(workers_of(embedded))
    result = platform_cli("deploy", "--package", str(package))
    assert result.exit_code == 5, result.stderr
    assert "Error: The platform refused workmanager." in result.stderr
    assert "Engine error" in result.stderr
    # Whatever was created is not left behind, and the state names nothing.
    assert set(workers_of(embedded)) - before == set()
    assert (
        not platform_cli.state_path.exists()
        or json.loads(platform_cli.state_path.read_text()).get("worker") is None
    )


def test_gateway_down_exits_3_with_url_and_hint(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("deploy", "--url", EMBEDDED_URL, env={"VIRTUFIN_API_URL": url})
    assert result.exit_code == 3
    assert result.stdout == ""
    assert f"Cannot reach the gateway at {url}" in result.stderr
    assert "alpaca-md dev up" in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1


def test_older_platform_gets_topic_instead_of_topics(cli: Cli) -> None:
    from tests.support import embedded_platform

    with embedded_platform(feed=False, legacy=True) as legacy:
        result = cli("deploy", "--url", EMBEDDED_URL, "--json", env=legacy.env())
        assert result.exit_code == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["topic_field"] == "topic"
        worker = workers_of(legacy)[out["worker_id"]]
        assert "command.websocketmanagercontroller" in (
            worker.get("topics") or [worker.get("topic")]
        )
    state = json.loads(cli.state_path.read_text())
    assert state["worker"]["topic_field"] == "topic"


def test_wrong_api_key_exits_4_and_never_prints_the_key(cli: Cli) -> None:
    from tests.support import embedded_platform

    with embedded_platform(feed=False, api_key="right-key-123") as secured:
        env = {**secured.env(), "VIRTUFIN_API_KEY": "wrong-key-456"}
        result = cli("deploy", "--url", EMBEDDED_URL, "-vv", env=env)
        assert result.exit_code == 4
        assert "refused the API key (HTTP 401)" in result.stderr
        assert "wrong-key-456" not in result.stderr + result.stdout
        assert "api_key = set (hidden)" in result.stderr
        good = cli("deploy", "--url", EMBEDDED_URL, env=secured.env())
        assert good.exit_code == 0, good.stderr


def _runtime(tmp_path: Path, handler: Any) -> Runtime:
    config = load_config(ConfigOptions(state=tmp_path / "state.json"), environ={}, cwd=tmp_path)
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return Runtime(config, http_client=client, stderr=io.StringIO())


def _fake_workmanager(start_status: str, delete_status: str | None) -> tuple[Any, list[str]]:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "/schema/" in request.url.path:
            return httpx.Response(404)
        method = json.loads(request.content)["method"]
        calls.append(method)
        if method == "CreateWorker":
            data = {"success": True, "status": "OK", "response_data": '{"id": "w-new"}'}
        elif method == "StartWorker":
            data = {"success": False, "status": start_status, "message": "engine failed"}
        elif method == "DeleteWorker" and delete_status is not None:
            data = {"success": False, "status": delete_status, "message": "busy"}
        else:
            data = {"success": True, "status": "OK", "response_data": "{}"}
        return httpx.Response(200, json=data)

    return handler, calls


def test_a_worker_that_will_not_start_is_deleted_again(tmp_path: Path) -> None:
    handler, calls = _fake_workmanager("INTERNAL", None)
    with _runtime(tmp_path, handler) as rt, pytest.raises(CommandRefused, match="engine failed"):
        deploy_worker(rt, url="https://example.test/worker.zip")
    # ListWorkers: the duplicate check (workers carrying our intent tag, issue 12).
    assert calls == ["CreateWorker", "ListWorkers", "StartWorker", "DeleteWorker"]
    state = StateStore(tmp_path / "state.json").read()
    assert state is None or state.worker is None


def test_a_worker_that_will_not_start_nor_delete_is_recorded(tmp_path: Path) -> None:
    handler, calls = _fake_workmanager("INTERNAL", "UNAVAILABLE")
    with _runtime(tmp_path, handler) as rt, pytest.raises(CommandRefused, match="engine failed"):
        deploy_worker(rt, url="https://example.test/worker.zip")
    # ListWorkers: the duplicate check (workers carrying our intent tag, issue 12).
    assert calls == ["CreateWorker", "ListWorkers", "StartWorker", "DeleteWorker"]
    state = StateStore(tmp_path / "state.json").read()
    assert state is not None and state.worker is not None and state.worker.id == "w-new"


def test_an_interrupt_during_start_worker_still_records_the_created_worker(
    tmp_path: Path,
) -> None:
    handler, calls = _fake_workmanager("INTERNAL", None)

    def interrupted(request: httpx.Request) -> httpx.Response:
        if b"StartWorker" in request.content:
            calls.append("StartWorker")
            raise KeyboardInterrupt
        return handler(request)  # type: ignore[no-any-return]

    with _runtime(tmp_path, interrupted) as rt, pytest.raises(KeyboardInterrupt):
        deploy_worker(rt, url="https://example.test/worker.zip")
    assert calls == ["CreateWorker", "ListWorkers", "StartWorker"]
    state = StateStore(tmp_path / "state.json").read()
    assert state is not None and state.worker is not None and state.worker.id == "w-new"


def test_verbose_says_where_each_setting_came_from_without_secrets(
    platform_cli: Cli, embedded: Any
) -> None:
    (platform_cli.cwd / ".env").write_text("ALPACA_MD_COMMAND_TOPIC=cmd.from.dotenv\n")
    env = {"ALPACA_API_SECRET": "very-secret-value", "ALPACA_API_KEY": "AKVISIBLE0"}
    result = platform_cli("deploy", "--url", EMBEDDED_URL, "-v", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    assert "command_topic = cmd.from.dotenv  [.env file" in result.stderr
    assert (
        "api_url = http://127.0.0.1" in result.stderr and "[env VIRTUFIN_API_URL]" in result.stderr
    )
    assert "alpaca_secret = set (hidden)  [env ALPACA_API_SECRET]" in result.stderr
    assert "very-secret-value" not in result.stderr + result.stdout
    assert "AKVISIBLE0" not in result.stderr + result.stdout
    assert json.loads(result.stdout)["topics"] == ["cmd.from.dotenv"]
    assert platform_cli("teardown").exit_code == 0


def test_build_deploy_list_teardown_by_hand(
    platform_cli: Cli, embedded: Any, fake_dotnet: dict[str, str]
) -> None:
    """The operator's path: each step reads what the previous one left in the state file."""
    env = {**fake_dotnet, "FAKE_DOTNET_ZIP": str(controller_zip(platform_cli.cwd / "ctl.zip"))}
    built = platform_cli("build", "--project", "proj", "--json", env=env)
    assert built.exit_code == 0, built.stderr
    deployed = platform_cli("deploy", "--json")
    assert deployed.exit_code == 0, deployed.stderr
    out = json.loads(deployed.stdout)
    assert out["package_sha256"] == json.loads(built.stdout)["package_sha256"]
    listed = json.loads(platform_cli("list", "--workers", "--json").stdout)
    assert out["worker_id"] in {w["id"] for w in listed["workers"] if w["in_state"]}
    assert platform_cli("teardown").exit_code == 0
    assert out["worker_id"] not in workers_of(embedded)
    assert not platform_cli.state_path.exists()


def test_remove_worker_deletes_even_when_stop_fails(tmp_path: Path) -> None:
    from alpaca_cli.platform.gateway import GatewayClient
    from alpaca_cli.steps.deploy import remove_worker

    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        method = json.loads(request.content)["method"]
        calls.append(method)
        if method == "StopWorker":
            return httpx.Response(200, json={"success": False, "status": "INTERNAL"})
        return httpx.Response(200, json={"success": True, "status": "OK"})

    gateway = GatewayClient(
        "http://gw", client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    assert remove_worker(gateway, "w1") is True
    assert calls == ["StopWorker", "DeleteWorker"]
