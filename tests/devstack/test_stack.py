"""The assembled platform end to end: gateway (httpx) + sidecar (dapr SDK) + WSM + the Alpaca feed.

These tests walk the seed flow exactly as the CLI will: workers through the gateway, controller
commands and replies through the Dapr sidecar with a ``correlationid``, Alpaca frames through a
streaming subscription.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dapr.clients import DaprClient

from alpaca_cli.devstack.stack import EmbeddedPlatform, StackConfig, start_in_thread

pytestmark = pytest.mark.timeout(60)

PUBSUB = "pubsub"
COMMANDS = "command.websocketmanagercontroller"
REPLIES = "response.websocketmanagercontroller"
WAIT = 15.0  # a guard against hangs, never an expectation about speed


class Stream:
    """A sync dapr streaming subscription read by a thread into a queue, acking every message."""

    def __init__(self, client: DaprClient, topic: str) -> None:
        self._sub: Any = client.subscribe(PUBSUB, topic)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                msg = self._sub.next_message()
            except Exception:
                return
            if msg is None:
                continue
            self._queue.put(msg)
            self._sub.respond_success(msg)

    def next(self, predicate: Callable[[Any], bool] = lambda m: True) -> Any:
        """The next message matching ``predicate`` (others are skipped)."""
        while True:
            msg = self._queue.get(timeout=WAIT)
            if predicate(msg):
                return msg

    def close(self) -> None:
        self._sub.close()


def alpaca_messages(msg: Any) -> list[dict[str, Any]]:
    data = json.loads(msg.raw_data())
    assert isinstance(data, list)
    return data


@pytest.fixture
def sdk_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[EmbeddedPlatform], None]:
    """Point the dapr SDK (it reads ``DAPR_*`` at each use) and this process at a platform."""

    def apply(platform: EmbeddedPlatform) -> None:
        for key, value in platform.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "5")

    return apply


@pytest.fixture
def platform(sdk_env: Callable[[EmbeddedPlatform], None]) -> Iterator[EmbeddedPlatform]:
    config = StackConfig.ephemeral(feed_options={"rate": 500.0, "seed": 7})
    with start_in_thread(config) as started:
        sdk_env(started)
        yield started


def invoke(gw: httpx.Client, service: str, method: str, request: dict[str, Any]) -> Any:
    body = {"service": service, "method": method, "request_data": json.dumps(request)}
    answer = gw.post("/v1/gateway/invoke-json", json=body).json()
    assert answer["success"] is True, answer
    return json.loads(answer["response_data"])


class Controller:
    """Controller commands as CloudEvents through the sidecar; replies matched by correlationid."""

    def __init__(self, client: DaprClient, replies: Stream) -> None:
        self.client = client
        self.replies = replies

    def __call__(self, command: str, **args: Any) -> dict[str, Any]:
        correlation = str(uuid.uuid4())
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "test_stack",
            "type": "com.virtufin.websocketmanagercontroller.command",
            "datacontenttype": "application/json",
            "correlationid": correlation,
            "data": {"command": command, **args},
        }
        self.client.publish_event(
            PUBSUB,
            COMMANDS,
            json.dumps(event),
            data_content_type="application/cloudevents+json",
        )
        reply = self.replies.next(lambda m: m.extensions().get("correlationid") == correlation)
        data: dict[str, Any] = json.loads(reply.raw_data())
        return data


def b64json(doc: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


def test_the_seed_flow_end_to_end(platform: EmbeddedPlatform) -> None:
    env = platform.env()
    with httpx.Client(base_url=env["VIRTUFIN_API_URL"], timeout=WAIT) as gw, DaprClient() as client:
        worker = invoke(
            gw,
            "workmanager",
            "CreateWorker",
            {
                "code_source": {"url": "embedded://websocketmanagercontroller"},
                "mime_type": "application/x-dotnet-dll",
                "topics": [COMMANDS],
                "tags": {"made-by": "alpaca-md"},
            },
        )["id"]
        invoke(gw, "workmanager", "StartWorker", {"id": worker})

        replies = Stream(client, REPLIES)  # before the first command: no replay
        ticks = Stream(client, "alpaca-ticks")
        ctl = Controller(client, replies)
        try:
            created = ctl("create", url=env["ALPACA_STREAM_URL"], auto_reconnect=True)
            assert created["success"] is True and created["message"] == "connected"
            conn = created["id"]

            published = ctl("publish", id=conn, topic="alpaca-ticks")
            assert published["success"] is True

            auth = {
                "action": "auth",
                "key": env["ALPACA_API_KEY"],
                "secret": env["ALPACA_API_SECRET"],
            }
            sent = ctl("send_raw", id=conn, message=b64json(auth), content_type="application/json")
            assert sent["success"] is True
            authenticated = ticks.next(
                lambda m: any(x.get("msg") == "authenticated" for x in alpaca_messages(m))
            )
            assert authenticated.extensions()["websocketId"] == conn

            subscribe = {"action": "subscribe", "trades": ["BTC/USD"], "orderbooks": ["BTC/USD"]}
            ctl("send_raw", id=conn, message=b64json(subscribe), content_type="application/json")
            confirmed = ticks.next(
                lambda m: any(x.get("T") == "subscription" for x in alpaca_messages(m))
            )
            [sub_msg] = [x for x in alpaca_messages(confirmed) if x["T"] == "subscription"]
            assert sub_msg["trades"] == ["BTC/USD"] and sub_msg["orderbooks"] == ["BTC/USD"]
            data = ticks.next(lambda m: any(x.get("T") in ("t", "o") for x in alpaca_messages(m)))
            assert data.data_content_type() == "application/json"
            assert {x["S"] for x in alpaca_messages(data) if x.get("T") in ("t", "o")} == {
                "BTC/USD"
            }

            listed = ctl("list")
            [record] = [c for c in listed["connections"] if c["id"] == conn]
            assert record["status"] == "CONNECTED" and record["topic"] == "alpaca-ticks"

            assert ctl("disconnect", id=conn)["success"] is True
            assert ctl("list")["connections"] == []
        finally:
            replies.close()
            ticks.close()
        invoke(gw, "workmanager", "StopWorker", {"id": worker})
        invoke(gw, "workmanager", "DeleteWorker", {"id": worker})
        assert invoke(gw, "workmanager", "ListWorkers", {}) == {}


def test_a_dropped_upstream_is_reconnected_without_a_handshake_replay(
    sdk_env: Callable[[EmbeddedPlatform], None],
) -> None:
    config = StackConfig.ephemeral(
        feed_options={"rate": 200.0, "drop_after": 3.0}, reconnect_base_delay=0.05
    )
    with start_in_thread(config) as platform:
        sdk_env(platform)
        env = platform.env()
        with (
            httpx.Client(base_url=env["VIRTUFIN_API_URL"], timeout=WAIT) as gw,
            DaprClient() as client,
        ):
            life = Stream(client, "websocketmanager.lifecycle")
            ticks = Stream(client, "ticks")
            try:
                conn = invoke(
                    gw,
                    "websocketmanager",
                    "Connect",
                    {"url": env["ALPACA_STREAM_URL"], "auto_reconnect": True},
                )["id"]
                invoke(gw, "websocketmanager", "StartPublish", {"id": conn, "topic": "ticks"})

                def send(doc: dict[str, Any]) -> None:
                    invoke(
                        gw,
                        "websocketmanager",
                        "SendRaw",
                        {"id": conn, "message": b64json(doc), "content_type": "application/json"},
                    )

                def kinds(m: Any) -> set[str]:
                    return {str(x.get("msg") or x.get("T")) for x in alpaca_messages(m)}

                auth = {
                    "action": "auth",
                    "key": env["ALPACA_API_KEY"],
                    "secret": env["ALPACA_API_SECRET"],
                }
                send(auth)
                ticks.next(lambda m: "authenticated" in kinds(m))
                send({"action": "subscribe", "trades": ["ETH/USD"]})
                ticks.next(lambda m: "t" in kinds(m))

                # The feed aborts the socket; the WSM reconnects (lifecycle shows it).
                def lifecycle(kind: str) -> Any:
                    return life.next(lambda m: m.type().endswith("." + kind))

                reconnecting = lifecycle("reconnecting")
                assert reconnecting.data()["connection_id"] == conn
                assert reconnecting.data()["attempt"] == 1
                assert lifecycle("connected").data()["connection_id"] == conn

                # Same id and topic: the new welcome arrives on the topic, and after it nothing
                # but what we send: no replayed auth, so the next reply is to our own auth.
                ticks.next(lambda m: "connected" in kinds(m))
                send(auth)
                after = ticks.next()
                assert kinds(after) == {"authenticated"}, alpaca_messages(after)
                send({"action": "subscribe", "trades": ["ETH/USD"]})
                assert "subscription" in kinds(ticks.next())
                ticks.next(lambda m: "t" in kinds(m))
                [record] = invoke(gw, "websocketmanager", "List", {})["connections"]
                assert (record["id"], record["topic"]) == (conn, "ticks")
            finally:
                life.close()
                ticks.close()


# -- alpaca-md dev up ----------------------------------------------------------------------------


@contextlib.contextmanager
def dev_up(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """``alpaca-md dev up`` on free ports as a subprocess; killed and reaped afterwards.

    ``PYTHONUNBUFFERED`` is removed so the test sees only what the command flushes itself.
    """
    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    child_env.update(env or {})
    ports = ["--gateway-port", "0", "--gateway-grpc-port", "0"]
    ports += ["--dapr-http-port", "0", "--dapr-grpc-port", "0"]
    with subprocess.Popen(
        [sys.executable, "-m", "alpaca_cli", "dev", "up", *ports, "--feed-port", "0", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def wait_ready(proc: subprocess.Popen[str]) -> tuple[list[str], list[str]]:
    """Read stderr up to the ready line; return (export lines so far, stderr lines)."""
    assert proc.stderr is not None and proc.stdout is not None
    errors = []
    for line in proc.stderr:
        errors.append(line)
        if "ready." in line:
            break
    else:
        raise AssertionError(f"dev up exited early: {''.join(errors)}")
    exports: list[str] = []
    while len(exports) < 8:
        line = proc.stdout.readline()
        assert line, "stdout closed before every export line"
        exports.append(line.rstrip("\n"))
    return exports, errors


def test_dev_up_serves_writes_its_env_and_exits_when_stdin_closes(tmp_path: Path) -> None:
    env_file = tmp_path / "dev.env"
    secret = "gw-" + uuid.uuid4().hex
    with dev_up(
        "--write-env",
        str(env_file),
        "--exit-with-stdin",
        "--api-key-env",
        "MY_GATEWAY_KEY",
        "--rate",
        "20",
        env={"MY_GATEWAY_KEY": secret},
    ) as proc:
        exports, _ = wait_ready(proc)
        written = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        assert written["VIRTUFIN_API_KEY"] == secret
        assert written["ALPACA_STREAM_URL"].endswith("/v1beta3/crypto/us")
        printed = {
            line.removeprefix("export ").split("=", 1)[0]: line.split("=", 1)[1]
            for line in exports
            if line.startswith("export ")
        }
        assert set(printed) == {
            "VIRTUFIN_API_URL",
            "DAPR_HTTP_PORT",
            "DAPR_GRPC_PORT",
            "VIRTUFIN_API_HOST",
            "VIRTUFIN_API_GRPC_PORT",
            "ALPACA_STREAM_URL",
            "ALPACA_API_KEY",
            "ALPACA_API_SECRET",
        }
        assert all(written[k] == v for k, v in printed.items())
        with httpx.Client(base_url=written["VIRTUFIN_API_URL"], timeout=WAIT) as gw:
            assert gw.get("/health").json()["status"] == "Healthy"
            assert gw.get("/v1/gateway/list-services").status_code == 401
            listed = gw.get("/v1/gateway/list-services", headers={"x-api-key": secret})
            assert listed.json()["services"] == ["workmanager", "websocketmanager"]
        from alpaca_cli.platform.gateway_bus import GatewayBus

        grpc_address = f"{written['VIRTUFIN_API_HOST']}:{written['VIRTUFIN_API_GRPC_PORT']}"
        with GatewayBus(grpc_address, api_key=secret) as bus:
            bus.connect()  # reflection lists virtufin.Pubsub, behind the same key
            assert bus.shape == "cncf"
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.close()
        assert proc.wait(timeout=WAIT) == 0
        out, err = proc.stdout.read(), proc.stderr.read()
    assert secret not in out + err + "\n".join(exports)
    assert "stopped." in err
    assert not env_file.exists()


def test_dev_up_stops_cleanly_on_sigterm() -> None:
    with dev_up("--rate", "20") as proc:
        wait_ready(proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT) == 0
        assert proc.stderr is not None
        assert "stopped." in proc.stderr.read()


def test_dev_up_reports_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "alpaca_cli", "dev", "up", "--gateway-port", str(port)),
                *("--gateway-grpc-port", "0", "--dapr-http-port", "0", "--dapr-grpc-port", "0"),
                *("--feed-port", "0"),
            ],
            capture_output=True,
            text=True,
            timeout=WAIT * 2,
            stdin=subprocess.DEVNULL,
        )
    assert proc.returncode == 2
    assert "port" in proc.stderr and "--gateway-port" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dev_up_refuses_an_unset_api_key_variable() -> None:
    from typer.testing import CliRunner

    from alpaca_cli.main import app

    result = CliRunner().invoke(app, ["dev", "up", "--api-key-env", "NOT_SET_ANYWHERE"])
    assert result.exit_code == 2
    assert "NOT_SET_ANYWHERE" in result.stderr


def test_dev_up_rejects_a_bad_alpaca_server_option() -> None:
    from typer.testing import CliRunner

    from alpaca_cli.main import app

    result = CliRunner().invoke(app, ["dev", "up", "--rate", "-1", "--gateway-port", "0"])
    assert result.exit_code == 2
    assert "rate" in result.stderr and "Traceback" not in result.stderr


# -- the feed in its own process ------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_gone(pid: int) -> bool:
    import time

    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_feed_process_serves_the_platform_and_stops_with_it() -> None:
    import asyncio

    import orjson
    from websockets.asyncio.client import connect

    from alpaca_cli.devstack.feed.process import FeedProcess

    config = StackConfig.ephemeral(feed_process=True, feed_options={"rate": 200.0})
    with start_in_thread(config) as platform:
        assert isinstance(platform.feed, FeedProcess)
        pid = platform.feed.pid
        assert pid is not None and pid in _children(os.getpid())
        env = platform.env()

        async def first_trade() -> dict[str, Any]:
            async with connect(env["ALPACA_STREAM_URL"]) as ws:
                await ws.recv()
                auth = {
                    "action": "auth",
                    "key": env["ALPACA_API_KEY"],
                    "secret": env["ALPACA_API_SECRET"],
                }
                await ws.send(orjson.dumps(auth).decode())
                assert orjson.loads(await ws.recv())[0]["msg"] == "authenticated"
                await ws.send(orjson.dumps({"action": "subscribe", "trades": ["*"]}).decode())
                await ws.recv()
                trade: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))[0]
                return trade

        assert asyncio.run(first_trade())["T"] == "t"
    assert not _alive(pid)


def test_dev_up_runs_its_feed_in_a_child_that_dies_with_it() -> None:
    with dev_up("--rate", "20") as proc:
        wait_ready(proc)
        children = _children(proc.pid)
        assert len(children) == 1, children
        [feed] = children
        cmdline = Path(f"/proc/{feed}/cmdline").read_bytes()
        assert b"alpaca_cli.devstack.feed.process" in cmdline
        proc.kill()  # no clean-up in dev up at all: the child must still go
        proc.wait()
    assert _wait_gone(feed), "the feed process outlived dev up"


def test_dev_up_resiliency_retries_reach_the_sidecar(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import alpaca_cli.commands.dev_up as dev_up
    from alpaca_cli.main import app

    seen: list[StackConfig] = []
    monkeypatch.setattr(dev_up, "serve", lambda config, **_: seen.append(config))
    result = CliRunner().invoke(app, ["dev", "up", "--resiliency-retries", "3"])
    assert result.exit_code == 0, result.stderr
    assert [c.resiliency_retries for c in seen] == [3]
    result = CliRunner().invoke(app, ["dev", "up"])
    assert [c.resiliency_retries for c in seen] == [3, 0], "daprd without a policy by default"
    result = CliRunner().invoke(app, ["dev", "up", "--resiliency-retries", "-1"])
    assert result.exit_code == 2 and "resiliency-retries" in result.stderr


def test_the_platforms_sidecar_gets_the_retry_policy() -> None:
    with start_in_thread(StackConfig.ephemeral(feed=False, resiliency_retries=2)) as platform:
        assert platform.sidecar.resiliency_retries == 2
