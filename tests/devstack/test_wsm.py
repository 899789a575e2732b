"""WebSocketManager: outbound WebSockets, flat publishing, reconnect without handshake replay."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from alpaca_cli.devstack.broker import Broker, BrokerSubscription
from alpaca_cli.devstack.loopthread import LoopThread
from alpaca_cli.devstack.rpc import RpcError, Status
from alpaca_cli.devstack.wsm import (
    LIFECYCLE_TOPIC,
    ConnectionStatus,
    ReconnectPolicy,
    WebSocketManager,
    is_loopback_url,
)

from .conftest import (  # type: ignore[import-not-found]  # no package for mypy
    FAST,
    ScriptedServer,
    connected_then_dropped,
    next_event,
)

pytestmark = pytest.mark.timeout(30)


async def frames_read(wsm: WebSocketManager, cid: str, n: int) -> None:
    """Wait until the WSM's reader has taken ``n`` frames off the socket."""
    while wsm.frames_received(cid) < n:
        await asyncio.sleep(0.005)


async def lifecycle_until(sub: BrokerSubscription, kind: str) -> list[dict[str, Any]]:
    """Lifecycle events (type suffix + data) up to and including the first of ``kind``."""
    seen = []
    while True:
        event = await next_event(sub)
        suffix = event.type.rsplit(".", 1)[1]
        seen.append({"kind": suffix, **orjson.loads(event.data)})
        if suffix == kind:
            return seen


def test_connect_lists_a_connected_record(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker, instance_id="wsm-test")
        record = await wsm.connect(scripted_server.url, tags={"owner": "test"})
        assert record.status is ConnectionStatus.CONNECTED
        [listed] = wsm.list()
        assert listed.id == record.id
        shown = listed.to_json()
        assert shown["url"] == scripted_server.url
        assert shown["status"] == "CONNECTED"
        assert shown["instanceId"] == "wsm-test"
        assert shown["tags"] == {"owner": "test"}
        assert shown["createdAt"].endswith("Z")
        assert "topic" not in shown  # empty = default = omitted
        await wsm.close()

    loop_thread.run(scenario())


def test_received_frames_are_published_flat_only_while_publishing(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker)
        sub = broker.subscribe("frames")
        record = await wsm.connect(scripted_server.url)
        # Not publishing yet: the welcome and this echo are read and discarded.
        await wsm.send_raw(record.id, b'{"n":0}', "application/json")
        await frames_read(wsm, record.id, 2)
        wsm.start_publish(record.id, "frames")
        assert wsm.get(record.id).to_json()["topic"] == "frames"
        await wsm.send_raw(record.id, b'[{"T":"t","p":1}]', "application/json")
        await wsm.send_raw(record.id, b"\x81\xa1T\xa1q", "application/msgpack")
        text = await next_event(sub)
        assert text.data == b'[{"T":"t","p":1}]'
        assert text.datacontenttype == "application/json"
        assert text.topic == "frames"
        assert text.extensions["websocketId"] == record.id
        assert text.extensions["websocketUrl"] == scripted_server.url
        assert text.extensions["contentType"] == "application/json"
        assert text.extensions["timestamp"].endswith("Z")
        # Made by the sidecar's envelope rules, like any publish: time and trace context.
        assert text.extensions["time"].endswith("Z")
        assert text.extensions["traceparent"].startswith("00-")
        assert text.extensions["traceid"] == text.extensions["traceparent"]
        binary = await next_event(sub)
        assert binary.extensions["time"].endswith("Z")
        assert binary.data == b"\x81\xa1T\xa1q"
        assert binary.datacontenttype == "application/octet-stream"
        # The server saw a text frame for JSON and a binary one otherwise.
        assert scripted_server.received[0][1:] == ['[{"T":"t","p":1}]', b"\x81\xa1T\xa1q"]
        wsm.stop_publish(record.id)
        await wsm.send_raw(record.id, b'{"n":1}', "application/json")
        await wsm.send_raw(record.id, b'{"n":2}', "application/json")
        await frames_read(wsm, record.id, 6)
        wsm.start_publish(record.id, "frames")
        await wsm.send_raw(record.id, b'{"n":3}', "application/json")
        assert (await next_event(sub)).data == b'{"n":3}'
        await wsm.close()

    loop_thread.run(scenario())


def test_json_frames_are_re_marshalled_as_a_sidecar_does(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker)
        sub = broker.subscribe("frames")
        record = await wsm.connect(scripted_server.url)
        await frames_read(wsm, record.id, 1 if scripted_server.welcome is not None else 0)
        wsm.start_publish(record.id, "frames")
        await wsm.send_raw(record.id, b'[{"T": "t", "S": "A&B", "p": 1}]', "application/json")
        event = await next_event(sub)
        assert event.data == b'[{"S":"A\\u0026B","T":"t","p":1}]'
        assert orjson.loads(event.data) == [{"T": "t", "S": "A&B", "p": 1}]
        await wsm.close()

    loop_thread.run(scenario())


def test_errors_carry_the_platform_messages(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker)
        with pytest.raises(RpcError) as missing:
            wsm.start_publish("nope", "t")
        assert (missing.value.status, missing.value.message) == (
            Status.NOT_FOUND,
            "Connection not found",
        )
        with pytest.raises(RpcError) as bad_url:
            await wsm.connect("http://example.com/")
        assert bad_url.value.status is Status.INVALID_ARGUMENT
        with pytest.raises(RpcError) as refused:
            await wsm.connect("ws://127.0.0.1:9/none")
        assert refused.value.status is Status.UNAVAILABLE
        assert wsm.list() == []
        record = await wsm.connect(scripted_server.url)
        with pytest.raises(RpcError) as no_topic:
            wsm.start_publish(record.id, "")
        assert no_topic.value.message == "Topic is required"
        with pytest.raises(RpcError) as not_text:
            await wsm.send_raw(record.id, b"\xff\xfe", "application/json")
        assert not_text.value.status is Status.INVALID_ARGUMENT
        await wsm.disconnect(record.id)
        with pytest.raises(RpcError) as gone:
            await wsm.disconnect(record.id)
        assert gone.value.message == "Connection not found"

    loop_thread.run(scenario())


def test_a_dropped_connection_without_auto_reconnect_is_disconnected(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker, policy=FAST)
        life = broker.subscribe(LIFECYCLE_TOPIC)
        record = await wsm.connect(scripted_server.url, auto_reconnect=False)
        await scripted_server.wait_connections(1)
        scripted_server.drop_all()
        events = await lifecycle_until(life, "disconnected")
        assert [e["kind"] for e in events] == ["connecting", "connected", "disconnected"]
        assert events[-1]["connection_id"] == record.id
        assert "error_type" in events[-1]
        assert wsm.get(record.id).status is ConnectionStatus.DISCONNECTED
        with pytest.raises(RpcError) as exc:
            wsm.start_publish(record.id, "t")
        assert exc.value.message == "Websocket is not connected"
        with pytest.raises(RpcError) as send:
            await wsm.send_raw(record.id, b"{}", "application/json")
        assert send.value.message == "Websocket is not connected"
        await wsm.close()

    loop_thread.run(scenario())


def test_reconnect_keeps_id_url_topic_and_never_replays_the_handshake(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker, policy=FAST)
        life = broker.subscribe(LIFECYCLE_TOPIC)
        frames = broker.subscribe("frames")
        record = await wsm.connect(scripted_server.url, auto_reconnect=True)
        await frames_read(wsm, record.id, 1)  # the welcome, before publishing
        wsm.start_publish(record.id, "frames")
        await wsm.send_raw(record.id, b'{"action":"auth"}', "application/json")
        assert (await next_event(frames)).data == b'{"action":"auth"}'
        await lifecycle_until(life, "connected")
        scripted_server.drop_all()
        events = await lifecycle_until(life, "connected")
        assert [e["kind"] for e in events] == ["reconnecting", "connected"]
        assert events[0]["attempt"] == 1
        assert {e["connection_id"] for e in events} == {record.id}
        await scripted_server.wait_connections(2)
        # Same record, still publishing to the same topic: the new welcome arrives there.
        welcome = await next_event(frames)
        assert welcome.data == b'[{"T":"success","msg":"connected"}]'
        assert welcome.extensions["websocketId"] == record.id
        [again] = wsm.list()
        assert (again.id, again.url, again.topic) == (record.id, scripted_server.url, "frames")
        assert again.status is ConnectionStatus.CONNECTED
        # Nothing was resent on the new socket; a new send goes through it.
        await wsm.send_raw(record.id, b'{"n":1}', "application/json")
        assert (await next_event(frames)).data == b'{"n":1}'
        assert scripted_server.received[1] == ['{"n":1}']
        await wsm.close()

    loop_thread.run(scenario())


def test_reconnect_gives_up_after_the_policy_attempts(
    loop_thread: LoopThread, broker: Broker
) -> None:
    async def scenario() -> None:
        policy = ReconnectPolicy(attempts=3, base_delay=0.01, cap=0.02)
        wsm, life, record = await connected_then_dropped(broker, policy)
        events = await lifecycle_until(life, "error")
        kinds = [e["kind"] for e in events]
        assert kinds == ["connecting", "connected"] + ["reconnecting"] * 3 + ["error"]
        assert [e["attempt"] for e in events if e["kind"] == "reconnecting"] == [1, 2, 3]
        assert events[-1]["error_type"] and events[-1]["error_message"]
        assert wsm.get(record.id).status is ConnectionStatus.ERROR
        await wsm.close()

    loop_thread.run(scenario())


def test_policy_delays_double_up_to_the_cap() -> None:
    assert list(ReconnectPolicy().delays()) == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert list(ReconnectPolicy(attempts=7, base_delay=4.0).delays()) == [
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
        30.0,
        30.0,
    ]


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("ws://127.0.0.1:8765/v1beta3/crypto/us", True),
        ("ws://127.5.6.7/x", True),
        ("ws://localhost:1/x", True),
        ("ws://[::1]:9/x", True),
        ("wss://stream.data.alpaca.markets/v1beta3/crypto/us", False),
        ("ws://10.0.0.1/x", False),
        ("ws://[2001:db8::1]/x", False),
    ],
)
def test_loopback_urls_are_told_apart(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_a_loopback_upstream_is_not_offered_compression(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker)
        await wsm.connect(scripted_server.url)
        await scripted_server.wait_connections(1)
        [server_side] = scripted_server.connections
        # The scripted server would accept permessage-deflate: the WSM did not ask for it.
        assert "Sec-WebSocket-Extensions" not in server_side.request.headers
        await wsm.close()

    loop_thread.run(scenario())
