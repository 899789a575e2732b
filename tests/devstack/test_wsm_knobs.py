"""WebSocketManager knobs of the newer platform (issue 12) and connection tags, over real sockets.

Time-dependent rules (record TTL, the rolling-update ownership window) run on a fake clock, so
the tests say exactly which instant expires what and never wait for wall time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from alpaca_cli.devstack.broker import Broker, BrokerSubscription, CloudEvent
from alpaca_cli.devstack.loopthread import LoopThread
from alpaca_cli.devstack.rpc import RpcError, Status
from alpaca_cli.devstack.wsm import (
    LIFECYCLE_TOPIC,
    ConnectionStatus,
    LifecycleNames,
    ReconnectPolicy,
    WebSocketManager,
)

from .conftest import (  # type: ignore[import-not-found]  # no package for mypy
    FAST,
    ScriptedServer,
    connected_then_dropped,
    next_event,
)

pytestmark = pytest.mark.timeout(30)

PREFIX = "com.virtufin.websocketmanager.lifecycle."


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def types_until(sub: BrokerSubscription, last: str) -> list[str]:
    """Lifecycle type suffixes (after the prefix) up to and including ``last``."""
    seen = []
    while True:
        event = await next_event(sub)
        assert event.type.startswith(PREFIX), event.type
        seen.append(event.type.removeprefix(PREFIX))
        if seen[-1] == last:
            return seen


async def expect_rpc_error(call: Any, status: Status, message: str) -> None:
    with pytest.raises(RpcError) as exc:
        result = call()
        if asyncio.iscoroutine(result):
            await result
    assert (exc.value.status, exc.value.message) == (status, message)


# -- connection record TTL -------------------------------------------------------------------


def test_a_record_expires_ttl_seconds_after_its_last_send_while_its_socket_keeps_publishing(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        wsm = WebSocketManager(broker, record_ttl=10.0, clock=clock)
        frames = broker.subscribe("frames")
        record = await wsm.connect(scripted_server.url, tags={"owner": "test"})
        await scripted_server.wait_connections(1)
        clock.advance(9.0)
        await wsm.send_raw(record.id, b'{"n":1}', "application/json")  # refreshes: t=9
        while wsm.frames_received(record.id) < 2:  # the welcome and the echo, unpublished
            await asyncio.sleep(0.005)
        clock.advance(9.0)
        wsm.start_publish(record.id, "frames")  # refreshes nothing
        wsm.set_tag(record.id, "k", "v")  # nor does this
        assert [r.id for r in wsm.list()] == [record.id]
        clock.advance(1.0)  # 10 s after the send
        assert wsm.list() == []
        for call in (
            lambda: wsm.send_raw(record.id, b"{}", "application/json"),
            lambda: wsm.start_publish(record.id, "frames"),
            lambda: wsm.get_tags(record.id),
            lambda: wsm.disconnect(record.id),
        ):
            await expect_rpc_error(call, Status.NOT_FOUND, "Connection not found")
        # The socket is still open and still publishing to the topic it had.
        [server_side] = scripted_server.connections
        await server_side.send('[{"T":"t","i":1}]')
        event = await next_event(frames)
        assert (event.data, event.extensions["websocketId"]) == (b'[{"T":"t","i":1}]', record.id)
        await wsm.close()
        await server_side.wait_closed()  # close() shuts expired sockets too

    loop_thread.run(scenario())


def test_a_failed_send_does_not_refresh_the_record(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        wsm = WebSocketManager(broker, record_ttl=10.0, clock=clock)
        record = await wsm.connect(scripted_server.url)
        clock.advance(5.0)
        await expect_rpc_error(
            lambda: wsm.send_raw(record.id, b"\xff", "application/json"),
            Status.INVALID_ARGUMENT,
            "Message is not UTF-8 text (application/json)",
        )
        clock.advance(5.0)
        assert wsm.list() == []
        await wsm.close()

    loop_thread.run(scenario())


def test_without_a_ttl_records_never_expire(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        wsm = WebSocketManager(broker, clock=clock)
        record = await wsm.connect(scripted_server.url)
        clock.advance(10_000.0)
        assert [r.id for r in wsm.list()] == [record.id]
        await wsm.close()

    loop_thread.run(scenario())


# -- terminal reconnects ---------------------------------------------------------------------


def test_zero_reconnect_attempts_leave_a_dropped_connection_disconnected_for_good(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        policy = ReconnectPolicy(attempts=0, exhausted=ConnectionStatus.DISCONNECTED)
        wsm = WebSocketManager(broker, policy=policy)
        life = broker.subscribe(LIFECYCLE_TOPIC)
        record = await wsm.connect(scripted_server.url, auto_reconnect=True)
        await scripted_server.wait_connections(1)
        scripted_server.drop_all()
        assert await types_until(life, "disconnected") == [
            "connecting",
            "connected",
            "disconnected",
        ]
        [listed] = wsm.list()  # still listed, so a client can see it ended
        assert (listed.id, listed.status) == (record.id, ConnectionStatus.DISCONNECTED)
        await expect_rpc_error(
            lambda: wsm.send_raw(record.id, b"{}", "application/json"),
            Status.FAILED_PRECONDITION,
            "Websocket is not connected",
        )
        await wsm.disconnect(record.id)
        assert wsm.list() == []
        assert len(scripted_server.connections) == 1  # never reopened
        await wsm.close()

    loop_thread.run(scenario())


def test_reconnects_that_run_out_end_disconnected_not_error(
    loop_thread: LoopThread, broker: Broker
) -> None:
    async def scenario() -> None:
        policy = ReconnectPolicy(
            attempts=2, base_delay=0.01, cap=0.02, exhausted=ConnectionStatus.DISCONNECTED
        )
        wsm, life, record = await connected_then_dropped(broker, policy)
        kinds = await types_until(life, "disconnected")
        assert kinds == ["connecting", "connected", "reconnecting", "reconnecting", "disconnected"]
        assert wsm.get(record.id).status is ConnectionStatus.DISCONNECTED
        await wsm.close()

    loop_thread.run(scenario())


# -- lifecycle name families -----------------------------------------------------------------

FAMILIES: dict[str, tuple[list[str], list[str]]] = {
    # (connect, drop + reconnect, disconnect), (a refused connect)
    "classic": (
        ["connecting", "connected", "reconnecting", "connected", "disconnected"],
        ["connecting", "error"],
    ),
    "spec": (
        [
            "connection.connected",
            "connection.reconnecting",
            "connection.connected",
            "connection.disconnected",
        ],
        ["connection.error"],
    ),
    "reference": (
        [
            "registered",
            "connecting",
            "connected",
            "degraded",
            "reconnecting",
            "connected",
            "closed",
        ],
        ["registered", "connecting", "failed"],
    ),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_lifecycle_family_names_the_same_story(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer, family: str
) -> None:
    names: LifecycleNames = family  # type: ignore[assignment]
    story, refused = FAMILIES[family]

    async def scenario() -> None:
        wsm = WebSocketManager(broker, policy=FAST, lifecycle_names=names)
        life = broker.subscribe(LIFECYCLE_TOPIC)
        record = await wsm.connect(scripted_server.url, auto_reconnect=True)
        await scripted_server.wait_connections(1)
        scripted_server.drop_all()
        await scripted_server.wait_connections(2)
        while wsm.get(record.id).status is not ConnectionStatus.CONNECTED:
            await asyncio.sleep(0.005)
        await wsm.disconnect(record.id)
        events: list[CloudEvent] = []
        while len(events) < len(story):
            events.append(await next_event(life))
        assert [e.type.removeprefix(PREFIX) for e in events] == story
        assert all(e.type.startswith(PREFIX) for e in events)
        for event in events:
            data = orjson.loads(event.data)
            assert (data["connection_id"], data["url"]) == (record.id, scripted_server.url)
        with pytest.raises(RpcError):
            await wsm.connect("ws://127.0.0.1:9/refused")
        assert [(await next_event(life)).type.removeprefix(PREFIX) for _ in refused] == refused
        await wsm.close()

    loop_thread.run(scenario())


# -- rolling-update ownership ----------------------------------------------------------------


def test_calls_on_a_new_connection_are_refused_while_another_instance_owns_it(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        wsm = WebSocketManager(broker, owned_elsewhere=5.0, clock=clock)
        record = await wsm.connect(scripted_server.url)
        refusal = f"Connection owned by different instance: {wsm.peer_instance_id}"
        assert wsm.peer_instance_id != wsm.instance_id
        assert [r.id for r in wsm.list()] == [record.id]  # List is no call on it
        clock.advance(4.9)
        for call in (
            lambda: wsm.send_raw(record.id, b"{}", "application/json"),
            lambda: wsm.start_publish(record.id, "t"),
            lambda: wsm.stop_publish(record.id),
            lambda: wsm.set_tag(record.id, "k", "v"),
            lambda: wsm.get_tags(record.id),
            lambda: wsm.disconnect(record.id),
        ):
            await expect_rpc_error(call, Status.UNAVAILABLE, refusal)
        clock.advance(0.1)
        await wsm.send_raw(record.id, b"{}", "application/json")
        await wsm.disconnect(record.id)
        await wsm.close()

    loop_thread.run(scenario())


# -- tags ------------------------------------------------------------------------------------


def test_tags_are_set_cleared_replaced_and_read(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker)
        record = await wsm.connect(scripted_server.url, tags={"owner": "me", "empty": ""})
        assert wsm.get_tags(record.id) == {"owner": "me"}  # an empty value is no tag
        wsm.set_tag(record.id, "world", "crypto")
        assert wsm.get_tag(record.id, "world") == "crypto"
        wsm.set_tag(record.id, "owner", "")
        assert wsm.get_tags(record.id) == {"world": "crypto"}
        assert wsm.get_tag(record.id, "owner") == ""
        wsm.set_tags(record.id, {"a": "1", "b": "2", "c": ""})
        assert wsm.get_tags(record.id) == {"a": "1", "b": "2"}
        assert wsm.list()[0].to_json()["tags"] == {"a": "1", "b": "2"}
        wsm.set_tags(record.id, {})
        assert "tags" not in wsm.list()[0].to_json()
        await wsm.close()

    loop_thread.run(scenario())


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        pytest.param({f"k{i}": "v" for i in range(51)}, "Too many tags", id="51"),
        pytest.param({"k" * 129: "v"}, "Tag key too long", id="long-key"),
        pytest.param({"k": "v" * 1025}, "too long: 1025", id="long-value"),
    ],
)
def test_tags_over_the_worker_limits_are_invalid_and_change_nothing(
    loop_thread: LoopThread,
    broker: Broker,
    scripted_server: ScriptedServer,
    tags: dict[str, str],
    fragment: str,
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker)
        with pytest.raises(RpcError) as on_connect:
            await wsm.connect(scripted_server.url, tags=tags)
        assert on_connect.value.status is Status.INVALID_ARGUMENT
        assert fragment in on_connect.value.message
        assert wsm.list() == []
        record = await wsm.connect(scripted_server.url, tags={"keep": "me"})
        with pytest.raises(RpcError) as replaced:
            wsm.set_tags(record.id, tags)
        assert replaced.value.status is Status.INVALID_ARGUMENT
        [(key, value)] = list(tags.items())[-1:]
        if len(tags) == 1:
            with pytest.raises(RpcError) as one:
                wsm.set_tag(record.id, key, value)
            assert fragment in one.value.message
        assert wsm.get_tags(record.id) == {"keep": "me"}
        await wsm.close()

    loop_thread.run(scenario())


def test_tags_at_the_limits_are_accepted(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker)
        tags = {f"{i:0128d}": "v" * 1024 for i in range(50)}
        record = await wsm.connect(scripted_server.url, tags=tags)
        assert wsm.get_tags(record.id) == tags
        with pytest.raises(RpcError) as fifty_first:
            wsm.set_tag(record.id, "one-more", "v")
        assert fifty_first.value.message == "Too many tags: 51 (at most 50)"
        await wsm.close()

    loop_thread.run(scenario())


def test_tags_survive_a_reconnect_and_never_go_upstream(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker, policy=FAST)
        record = await wsm.connect(scripted_server.url, auto_reconnect=True, tags={"a": "1"})
        wsm.set_tag(record.id, "world", "crypto")
        await wsm.send_raw(record.id, b'{"n":1}', "application/json")
        await scripted_server.wait_connections(1)
        while not scripted_server.received[0]:
            await asyncio.sleep(0.005)
        scripted_server.drop_all()
        await scripted_server.wait_connections(2)
        while wsm.get(record.id).status is not ConnectionStatus.CONNECTED:
            await asyncio.sleep(0.005)
        assert wsm.get_tags(record.id) == {"a": "1", "world": "crypto"}
        await wsm.send_raw(record.id, b'{"n":2}', "application/json")
        while not scripted_server.received[1]:
            await asyncio.sleep(0.005)
        assert scripted_server.received == [['{"n":1}'], ['{"n":2}']]
        for conn in scripted_server.connections:  # nor in the opening handshake
            assert "crypto" not in str(conn.request.path) + str(conn.request.headers)
        await wsm.close()

    loop_thread.run(scenario())


# -- frame formats ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["flat", "envelope", "bare"])
def test_every_frame_format_carries_the_raw_payload_the_client_decoder_recovers(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer, fmt: str
) -> None:
    from alpaca_cli.platform.frames import decode_frame

    async def scenario() -> None:
        wsm = WebSocketManager(broker, frame_format=fmt)  # type: ignore[arg-type]
        frames = broker.subscribe("frames")
        record = await wsm.connect(scripted_server.url)
        while wsm.frames_received(record.id) < 1:  # the welcome, before publishing
            await asyncio.sleep(0.005)
        wsm.start_publish(record.id, "frames")
        await wsm.send_raw(record.id, b'[{"T":"t","i":1}]', "application/json")
        await wsm.send_raw(record.id, b"\x81\xa1T\xa1q", "application/msgpack")
        text, binary = await next_event(frames), await next_event(frames)
        for event, payload in ((text, b'[{"T":"t","i":1}]'), (binary, b"\x81\xa1T\xa1q")):
            decoded = decode_frame(event.data, event.extensions)
            assert decoded.payload == payload
            if fmt == "bare":
                assert (event.type, event.source) == ("com.dapr.event.sent", "websocketmanager")
                assert event.extensions == {} and event.data == payload
            elif fmt == "envelope":
                assert event.extensions == {}
                assert decoded.meta.envelope and decoded.meta.websocket_id == record.id
                assert decoded.meta.websocket_url == scripted_server.url
            else:
                assert event.data == payload and decoded.meta.websocket_id == record.id
        if fmt == "envelope":
            assert orjson.loads(text.data)["ContentType"] == "text/plain"
            assert orjson.loads(binary.data)["ContentType"] == "application/octet-stream"
        await wsm.close()

    loop_thread.run(scenario())


# -- replica reclaim -------------------------------------------------------------------------


def test_a_dead_replicas_connection_is_reclaimed_by_the_next_call_and_reopened(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker, policy=FAST, replica_dies_after=1.0)
        life = broker.subscribe(LIFECYCLE_TOPIC)
        record = await wsm.connect(scripted_server.url, auto_reconnect=True, tags={"a": "1"})
        while wsm.frames_received(record.id) < 1:
            await asyncio.sleep(0.005)
        wsm.start_publish(record.id, "frames")
        await scripted_server.wait_connections(1)
        await scripted_server.connections[0].wait_closed()  # the owner died: no close frame
        [stale] = wsm.list()  # List touches no connection: the record is stale, not reclaimed
        assert (stale.status, stale.instance_id) == (ConnectionStatus.CONNECTED, wsm.instance_id)
        await expect_rpc_error(
            lambda: wsm.send_raw(record.id, b'{"n":0}', "application/json"),
            Status.FAILED_PRECONDITION,
            "Websocket is not connected",
        )
        assert wsm.get(record.id).instance_id != wsm.instance_id  # the survivor owns it now
        await scripted_server.wait_connections(2)
        while wsm.get(record.id).status is not ConnectionStatus.CONNECTED:
            await asyncio.sleep(0.005)
        again = wsm.get(record.id)
        assert (again.url, again.topic, again.tags) == (scripted_server.url, "frames", {"a": "1"})
        await wsm.send_raw(record.id, b'{"n":1}', "application/json")
        while not scripted_server.received[1]:
            await asyncio.sleep(0.005)
        assert scripted_server.received == [[], ['{"n":1}']]  # nothing resent on the new socket
        kinds = await types_until(life, "connected")
        kinds += await types_until(life, "connected")
        assert kinds == ["connecting", "connected", "disconnected", "reconnecting", "connected"]
        await wsm.close()

    loop_thread.run(scenario())


def test_a_reclaim_without_reconnect_attempts_is_final(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        policy = ReconnectPolicy(attempts=0, exhausted=ConnectionStatus.DISCONNECTED)
        wsm = WebSocketManager(broker, policy=policy, replica_dies_after=0.1)
        life = broker.subscribe(LIFECYCLE_TOPIC)
        record = await wsm.connect(scripted_server.url, auto_reconnect=True)
        await scripted_server.wait_connections(1)
        await scripted_server.connections[0].wait_closed()
        wsm.set_tag(record.id, "seen", "yes")  # any call reclaims
        assert wsm.get(record.id).status is ConnectionStatus.DISCONNECTED
        assert await types_until(life, "disconnected") == [
            "connecting",
            "connected",
            "disconnected",
        ]
        await wsm.disconnect(record.id)
        assert wsm.list() == [] and len(scripted_server.connections) == 1
        await wsm.close()

    loop_thread.run(scenario())
