"""The Python WebSocketManagerController: every command, its reply shape and its error messages."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
import pytest

from alpaca_cli.devstack.broker import Broker
from alpaca_cli.devstack.controller import WebSocketManagerController, is_controller_package
from alpaca_cli.devstack.loopthread import LoopThread
from alpaca_cli.devstack.wsm import WebSocketManager

from .conftest import ScriptedServer  # type: ignore[import-not-found]  # no package for mypy

pytestmark = pytest.mark.timeout(30)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def ask(controller: WebSocketManagerController, **command: Any) -> dict[str, Any]:
    return await controller.handle(orjson.dumps(command))


def test_the_whole_command_set_against_a_live_upstream(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker)
        ctl = WebSocketManagerController(wsm)
        frames = broker.subscribe("ticks")

        created = await ask(ctl, command="create", url=scripted_server.url, auto_reconnect=True)
        assert created == {
            "command": "create",
            "success": True,
            "id": created["id"],
            "message": "connected",
        }
        cid = created["id"]

        published = await ask(ctl, command="publish", id=cid, topic="ticks")
        assert published["success"] is True and published["topic"] == "ticks"

        auth = b'{"action":"auth","key":"k","secret":"s"}'
        sent = await ask(
            ctl, command="send_raw", id=cid, message=b64(auth), content_type="application/json"
        )
        assert sent == {"command": "send_raw", "success": True, "id": cid, "message": "sent"}

        sub = await ask(ctl, command="subscribe", id=cid, params=["btcusdt@trade"])
        unsub = await ask(ctl, command="unsubscribe", id=cid, params=["btcusdt@trade"])
        assert sub["success"] and unsub["success"]

        # Upstream got the raw bytes and the two JSON-RPC helpers, in order, as text frames.
        async def echoed(n: int) -> list[bytes]:
            out: list[bytes] = []
            while len(out) < n:
                d = await asyncio.wait_for(frames.get(), 10)
                frames.ack(d)
                if not d.event.data.startswith(b'[{"T":"success"'):
                    out.append(d.event.data)
            return out

        got = await echoed(3)
        assert got[0] == auth
        assert orjson.loads(got[1]) == {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}
        assert orjson.loads(got[2]) == {
            "method": "UNSUBSCRIBE",
            "params": ["btcusdt@trade"],
            "id": 2,
        }

        listed = await ask(ctl, command="list")
        assert listed["success"] is True
        [conn] = listed["connections"]
        assert conn["id"] == cid and conn["status"] == "CONNECTED" and conn["topic"] == "ticks"

        for spelling in ("stop_publish", "stop-publish"):
            stopped = await ask(ctl, command=spelling, id=cid)
            assert stopped["success"] is True and stopped["command"] == spelling
        assert "topic" not in (await ask(ctl, command="list"))["connections"][0]

        gone = await ask(ctl, command="disconnect", id=cid)
        assert gone == {
            "command": "disconnect",
            "success": True,
            "id": cid,
            "message": "disconnected",
        }
        assert (await ask(ctl, command="list"))["connections"] == []

        await ask(ctl, command="create", url=scripted_server.url, auto_reconnect=False)
        await ask(ctl, command="create", url=scripted_server.url, auto_reconnect=False)
        stop = await ask(ctl, command="stop")
        assert stop["success"] is True and stop["command"] == "stop"
        assert wsm.list() == []

    loop_thread.run(scenario())


@pytest.mark.parametrize(
    ("raw", "reply"),
    [
        pytest.param(
            b"not json",
            {"command": "error", "success": False, "message": "Failed to parse command JSON"},
            id="not-json",
        ),
        pytest.param(
            b"[1, 2]",
            {"command": "error", "success": False, "message": "Failed to parse command JSON"},
            id="not-an-object",
        ),
        pytest.param(
            b'{"id": "x"}',
            {"command": "error", "success": False, "message": "Missing 'command' field"},
            id="no-command",
        ),
        pytest.param(
            b'{"command": "explode"}',
            {"command": "explode", "success": False, "message": "Unknown command: explode"},
            id="unknown-command",
        ),
        pytest.param(
            b'{"command": "publish", "id": "nope", "topic": "t"}',
            {"command": "publish", "success": False, "message": "Connection not found"},
            id="unknown-connection",
        ),
        pytest.param(
            b'{"command": "send_raw", "id": "nope", "message": "e30="}',
            {"command": "send_raw", "success": False, "message": "Connection not found"},
            id="send-to-unknown",
        ),
        pytest.param(
            b'{"command": "disconnect"}',
            {"command": "disconnect", "success": False, "message": "Connection not found"},
            id="disconnect-without-id",
        ),
        pytest.param(
            b'{"command": "create", "url": "ftp://x"}',
            {
                "command": "create",
                "success": False,
                "message": "Invalid WebSocket URL: 'ftp://x' (ws:// or wss://)",
            },
            id="bad-url",
        ),
    ],
)
def test_bad_commands_get_the_platform_error_replies(
    loop_thread: LoopThread, broker: Broker, raw: bytes, reply: dict[str, Any]
) -> None:
    async def scenario() -> dict[str, Any]:
        return await WebSocketManagerController(WebSocketManager(broker)).handle(raw)

    assert loop_thread.run(scenario()) == reply


def test_connection_level_errors(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker)
        ctl = WebSocketManagerController(wsm)
        cid = (await ask(ctl, command="create", url=scripted_server.url))["id"]
        no_topic = await ask(ctl, command="publish", id=cid)
        assert no_topic == {"command": "publish", "success": False, "message": "Topic is required"}
        not_b64 = await ask(ctl, command="send_raw", id=cid, message="%%%")
        assert not_b64["success"] is False
        await scripted_server.wait_connections(1)
        scripted_server.drop_all()
        while wsm.get(cid).status.value == "CONNECTED":
            await asyncio.sleep(0.005)
        not_connected = await ask(ctl, command="publish", id=cid, topic="t")
        assert not_connected["message"] == "Websocket is not connected"
        refused = await ask(ctl, command="create", url="ws://127.0.0.1:9/")
        assert refused["success"] is False and refused["message"].startswith("Failed to connect")
        await wsm.close()

    loop_thread.run(scenario())


def test_a_command_sent_as_a_json_string_is_understood(
    loop_thread: LoopThread, broker: Broker
) -> None:
    async def scenario() -> dict[str, Any]:
        ctl = WebSocketManagerController(WebSocketManager(broker))
        return await ctl.handle(orjson.dumps(orjson.dumps({"command": "list"}).decode()))

    assert loop_thread.run(scenario())["success"] is True


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["Virtufin.Examples.WebSocketManagerController.dll", "Newtonsoft.Json.dll"], True),
        (["lib/net8.0/virtufin.examples.websocketmanagercontroller.dll"], True),
        (["WebSocketManagerController.pdb", "Other.dll"], False),
        (["Other.Worker.dll"], False),
        ([], False),
    ],
)
def test_controller_package_detection(names: list[str], expected: bool) -> None:
    assert is_controller_package(names) is expected
