"""The gateway bus against the embedded gateway's gRPC port, both message shapes, over loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from alpaca_cli.errors import (
    GRPC_STATUS_EXIT,
    AlpacaMdError,
    CommandRefused,
    CredentialsRefused,
    ExitCode,
    GatewayUnreachable,
    UsageError,
)
from alpaca_cli.platform.bus import Bus
from alpaca_cli.platform.controller import ControllerClient
from alpaca_cli.platform.gateway_bus import (
    RETRYABLE_STATUSES,
    Gap,
    GatewayBus,
    backoff,
    error_class,
    read_shapes,
)
from tests.support import embedded_platform, free_port, gateway_call

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0
SHAPES = [("cncf", "topics"), ("nested", "topic")]


@dataclass
class Gateway:
    """A bare gateway gRPC server over a broker, in a loop thread."""

    loop: Any
    broker: Any
    server: Any

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def bus(self, **kwargs: Any) -> GatewayBus:
        kwargs.setdefault("backoff_base", 0.01)
        return GatewayBus(self.address, **kwargs)


def _start(**options: Any) -> Iterator[Gateway]:
    from alpaca_cli.devstack.broker import Broker
    from alpaca_cli.devstack.gateway_grpc import GatewayGrpc
    from alpaca_cli.devstack.loopthread import LoopThread

    with LoopThread() as loop:

        async def start() -> tuple[Any, Any]:
            broker = Broker()
            server = GatewayGrpc(broker, **options)
            await server.start()
            return broker, server

        broker, server = loop.run(start())
        try:
            yield Gateway(loop, broker, server)
        finally:
            loop.run(server.stop())


@pytest.fixture(scope="module", params=SHAPES, ids=[f"{c}-{s}" for c, s in SHAPES])
def gateway(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    """The gateway's gRPC port speaking one CloudEvent and one subscribe-request shape, with
    heartbeats every 50 ms of silence, so every test also shows that they are ignored."""
    cloudevent, subscribe = request.param
    yield from _start(
        cloudevent_proto=cloudevent, subscribe_request=subscribe, heartbeat_interval=0.05
    )


@pytest.fixture(scope="module")
def keyed() -> Iterator[Gateway]:
    yield from _start(api_key="the-right-key")


class Gaps:
    """An ``on_gap`` callback that tests can wait on."""

    def __init__(self) -> None:
        self.seen: list[Gap] = []
        self.event = threading.Event()

    def __call__(self, gap: Gap) -> None:
        self.seen.append(gap)
        self.event.set()


# -- publishing and subscribing -------------------------------------------------------------------


def test_a_published_event_keeps_id_type_source_and_extensions(gateway: Gateway) -> None:
    with gateway.bus() as bus, bus.subscribe("t.roundtrip") as sub:
        event_id = bus.publish(
            "t.roundtrip",
            {"command": "list"},
            type="com.example.command",
            id="my-id",
            extensions={"correlationid": "c-1", "replytopic": "r.t"},
        )
        event = sub.get(timeout=WAIT)
        assert bus.shape == gateway.server.cloudevent_proto
    assert event is not None
    assert event_id == "my-id"
    assert (event.id, event.type, event.source) == ("my-id", "com.example.command", "alpaca-md")
    assert event.topic == "t.roundtrip"
    assert event.extensions == {"correlationid": "c-1", "replytopic": "r.t"}
    assert event.data_content_type == "application/json"
    assert orjson.loads(event.data) == {"command": "list"}
    assert event.received_ns > 0


def test_bytes_arrive_unchanged(gateway: Gateway) -> None:
    with gateway.bus() as bus, bus.subscribe("t.bytes") as sub:
        bus.publish("t.bytes", b"\x81\xa1T\xa1t", type="x", data_content_type="application/msgpack")
        event = sub.get(timeout=WAIT)
    assert event is not None
    assert (event.data, event.data_content_type) == (b"\x81\xa1T\xa1t", "application/msgpack")


def test_heartbeats_are_counted_and_never_returned(gateway: Gateway) -> None:
    with gateway.bus() as bus, bus.subscribe("t.quiet") as sub:
        while sub.heartbeats < 3:
            assert sub.get(timeout=0.05) is None
        assert sub.received == 0 and not sub.pending()


def test_events_arrive_in_order(gateway: Gateway) -> None:
    with gateway.bus() as bus, bus.subscribe("t.order") as sub:
        for n in range(50):
            bus.publish("t.order", {"n": n}, type="x")
        seen: list[int] = []
        while len(seen) < 50:
            event = sub.get(timeout=WAIT)
            assert event is not None
            seen.append(orjson.loads(event.data)["n"])
    assert seen == list(range(50))


def test_every_subscription_gets_every_event(gateway: Gateway) -> None:
    """A per-gateway broadcast: no app id, so two subscriptions do not share the events."""
    with gateway.bus() as bus, bus.subscribe("t.fan") as one, bus.subscribe("t.fan") as two:
        bus.publish("t.fan", {"n": 1}, type="x")
        for sub in (one, two):
            event = sub.get(timeout=WAIT)
            assert event is not None and orjson.loads(event.data) == {"n": 1}


def test_a_closed_subscription_raises_eof(gateway: Gateway) -> None:
    with gateway.bus() as bus:
        sub = bus.subscribe("t.closed")
        sub.close()
        sub.close()
        with pytest.raises(EOFError):
            sub.get(timeout=1)
        assert list(sub) == []


def test_a_refused_publish_is_exit_5(gateway: Gateway) -> None:
    with gateway.bus() as bus, pytest.raises(CommandRefused) as caught:
        bus.publish("", {"x": 1}, type="x")
    assert caught.value.exit_code == ExitCode.REFUSED
    assert "Topic is required" in str(caught.value)


# -- gaps -----------------------------------------------------------------------------------------


def test_a_stream_ended_by_the_gateway_is_reopened_and_the_gap_reported(gateway: Gateway) -> None:
    gaps = Gaps()
    lines: list[str] = []
    with gateway.bus(on_gap=gaps, log=lines.append) as bus, bus.subscribe("t.gap") as sub:
        bus.publish("t.gap", {"n": 1}, type="x")
        assert sub.get(timeout=WAIT) is not None
        assert gateway.loop.call(gateway.server.end_streams) >= 1
        assert gaps.event.wait(WAIT)
        bus.publish("t.gap", {"n": 2}, type="x")
        event = sub.get(timeout=WAIT)
        assert event is not None and orjson.loads(event.data) == {"n": 2}
        assert sub.gaps == 1 and bus.gaps == 1
    (gap,) = gaps.seen
    assert (gap.topic, gap.number) == ("t.gap", 1)
    assert "ended" in gap.reason and gap.seconds >= 0
    assert any("lost" in line for line in lines)


def test_the_idle_reaper_without_heartbeats_ends_a_stream_that_is_then_reopened() -> None:
    for gateway in _start(heartbeat_interval=0, subscription_idle_timeout=0.5):
        gaps = Gaps()
        with gateway.bus(on_gap=gaps) as bus, bus.subscribe("t.reaped") as sub:
            assert gaps.event.wait(WAIT)
            assert gateway.server.reaped >= 1
            # The re-opened stream can be reaped again before the publish lands: retry.
            event = None
            while event is None:
                bus.publish("t.reaped", {"n": 1}, type="x")
                event = sub.get(timeout=1.0)
            assert sub.gaps >= 1


def test_a_gateway_restart_is_survived_through_failed_reopens() -> None:
    from alpaca_cli.devstack.gateway_grpc import GatewayGrpc

    for gateway in _start():
        gaps = Gaps()
        lines: list[str] = []
        with gateway.bus(on_gap=gaps, log=lines.append) as bus, bus.subscribe("t.restart") as sub:
            port = gateway.server.port
            gateway.loop.run(gateway.server.stop())
            while not any("ended" in line for line in lines):
                assert sub.get(timeout=0.05) is None
            # Down for a while: re-opens fail (UNAVAILABLE) and are retried with backoff.
            replacement = GatewayGrpc(gateway.broker, port=port)
            gateway.loop.run(replacement.start())
            try:
                assert gaps.event.wait(WAIT)
                bus.publish("t.restart", {"back": True}, type="x")
                event = sub.get(timeout=WAIT)
                assert event is not None and orjson.loads(event.data) == {"back": True}
                assert sub.gaps == 1
                (gap,) = gaps.seen
                assert gap.reason == "the gateway ended the stream"  # the cause, not a retry's
            finally:
                gateway.loop.run(replacement.stop())


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "a-wrong-key"])
def test_a_wrong_or_missing_key_is_exit_4_without_the_key(keyed: Gateway, key: str | None) -> None:
    with keyed.bus(api_key=key) as bus, pytest.raises(CredentialsRefused) as caught:
        bus.connect()
    assert caught.value.exit_code == ExitCode.CREDENTIALS
    assert "UNAUTHENTICATED" in str(caught.value) and keyed.address in str(caught.value)
    assert "a-wrong-key" not in str(caught.value) and "the-right-key" not in str(caught.value)


def test_the_right_key_goes_on_every_call(keyed: Gateway) -> None:
    with keyed.bus(api_key="the-right-key") as bus, bus.subscribe("t.keyed") as sub:
        bus.publish("t.keyed", {"ok": True}, type="x", extensions={"correlationid": "c"})
        event = sub.get(timeout=WAIT)
    assert event is not None and event.extensions["correlationid"] == "c"


def test_nothing_listening_is_exit_3_naming_the_address() -> None:
    address = f"127.0.0.1:{free_port()}"
    with GatewayBus(address, connect_timeout=2) as bus, pytest.raises(GatewayUnreachable) as caught:
        bus.connect()
    assert caught.value.exit_code == ExitCode.UNREACHABLE
    assert address in str(caught.value) and caught.value.url == f"grpc://{address}"


def test_tls_against_a_plain_port_is_unreachable(gateway: Gateway) -> None:
    with gateway.bus(tls=True, connect_timeout=2) as bus, pytest.raises(GatewayUnreachable):
        bus.connect()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_with_the_gateways_certificate(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for gateway in _start(tls=(key.read_bytes(), cert.read_bytes()), api_key="k"):
        options = {"tls": True, "root_certificates": cert.read_bytes(), "api_key": "k"}
        with gateway.bus(**options) as bus, bus.subscribe("t.tls") as sub:
            bus.publish("t.tls", {"over": "tls"}, type="x")
            event = sub.get(timeout=WAIT)
        assert event is not None and orjson.loads(event.data) == {"over": "tls"}
        with gateway.bus(connect_timeout=2) as plain, pytest.raises(GatewayUnreachable):
            plain.connect()  # h2c against a TLS port


def test_a_server_without_reflection_is_a_usage_error() -> None:
    thread_pool = ThreadPoolExecutor(1)
    server = grpc.server(thread_pool)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with GatewayBus(f"127.0.0.1:{port}") as bus, pytest.raises(UsageError) as caught:
            bus.connect()
        assert "reflection" in str(caught.value)
    finally:
        server.stop(None)
        thread_pool.shutdown()


@pytest.mark.parametrize("address", ["localhost", "http://localhost:5002", "host:port", ":5002"])
def test_an_address_that_is_not_host_port_is_a_usage_error(address: str) -> None:
    with pytest.raises(UsageError) as caught:
        GatewayBus(address)
    assert repr(address) in str(caught.value)


def _pubsub_without(message: str, field: str) -> Any:
    """The embedded gateway's ``virtufin.Pubsub`` with one field removed from ``message``."""
    from alpaca_cli.devstack.gateway_proto import build_messages

    source = build_messages().pool
    pool = descriptor_pool.DescriptorPool()
    for name in (
        "google/protobuf/any.proto",
        "google/protobuf/timestamp.proto",
        "io/cloudevents/v1/cloudevents.proto",
        "virtufin/gateway.proto",
    ):
        proto = descriptor_pb2.FileDescriptorProto()
        source.FindFileByName(name).CopyToProto(proto)
        for m in proto.message_type:
            if f"{proto.package}.{m.name}" == message:
                kept = [f for f in m.field if f.name != field]
                del m.field[:]
                m.field.extend(kept)
        pool.Add(proto)
    return pool.FindServiceByName("virtufin.Pubsub")


@pytest.mark.parametrize(
    "message,field",
    [
        ("io.cloudevents.v1.CloudEvent", "attributes"),
        ("io.cloudevents.v1.CloudEvent", "id"),
        ("virtufin.SubscribeRequest", "topics"),
        ("virtufin.PublishRequest", "cloudevent"),
        ("virtufin.SubscribeResponse", "cloudevent"),
        ("virtufin.StatusResponse", "success"),
        ("io.cloudevents.v1.CloudEventAttributeValue", "ce_string"),
    ],
)
def test_an_unusable_shape_is_one_line_naming_message_and_field(message: str, field: str) -> None:
    service = _pubsub_without(message, field)
    with pytest.raises(UsageError) as caught:
        read_shapes(service, message_factory.GetMessageClass)
    text = str(caught.value)
    assert "\n" not in text and caught.value.exit_code == ExitCode.USAGE
    # No 'topics': it falls back to the older 'topic'; no success flag: it names the holder.
    expected = {"topics": ("topic", message), "success": ("status", "virtufin.PublishResponse")}
    name, where = expected.get(field, (field, message))
    assert where in text and f"'{name}'" in text


def test_every_grpc_status_maps_to_a_documented_exit_code() -> None:
    names = {code.name for code in grpc.StatusCode}
    assert set(GRPC_STATUS_EXIT) == names
    assert names >= RETRYABLE_STATUSES
    for name in names:
        assert error_class(name).exit_code == GRPC_STATUS_EXIT[name]
        assert issubclass(error_class(name), AlpacaMdError)
    assert error_class("UNAUTHENTICATED").exit_code == ExitCode.CREDENTIALS
    assert error_class("PERMISSION_DENIED").exit_code == ExitCode.CREDENTIALS
    assert error_class("UNAVAILABLE").exit_code == ExitCode.UNREACHABLE
    assert error_class("INVALID_ARGUMENT").exit_code == ExitCode.USAGE
    assert error_class("FAILED_PRECONDITION").exit_code == ExitCode.REFUSED
    assert "UNAUTHENTICATED" not in RETRYABLE_STATUSES and "UNAVAILABLE" in RETRYABLE_STATUSES


def test_the_gateway_bus_is_a_bus() -> None:
    """Checked by mypy: the assignment fails type checking if the protocol drifts."""
    bus: Bus = GatewayBus("127.0.0.1:5002")
    assert bus.name == "gateway"
    bus.close()  # never connected: nothing to close, and no error


def test_backoff_doubles_from_one_second_to_thirty() -> None:
    delays = backoff()
    assert [next(delays) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_importing_the_bus_loads_no_grpc() -> None:
    code = (
        "import sys, alpaca_cli.platform.gateway_bus; "
        "sys.exit(any(m.split('.')[0] in ('grpc', 'grpc_reflection') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# -- the controller RPC over the gateway bus -----------------------------------------------------


@pytest.mark.parametrize("cloudevent,subscribe", SHAPES)
def test_the_controller_rpc_works_over_the_gateway_bus(cloudevent: str, subscribe: str) -> None:
    from alpaca_cli.devstack.controller import COMMAND_TOPIC, EMBEDDED_URL, REPLY_TOPIC

    with embedded_platform(
        feed=False, cloudevent_proto=cloudevent, subscribe_request=subscribe
    ) as platform:
        created = gateway_call(
            platform,
            "workmanager",
            "CreateWorker",
            {
                "code_source": {"url": EMBEDDED_URL},
                "mime_type": "application/x-dotnet-dll",
                "topics": [COMMAND_TOPIC],
            },
        )
        gateway_call(platform, "workmanager", "StartWorker", {"id": created["id"]})
        env = platform.env()
        address = f"{env['VIRTUFIN_API_HOST']}:{env['VIRTUFIN_API_GRPC_PORT']}"
        with (
            GatewayBus(address) as bus,
            ControllerClient(
                bus,
                command_topic=COMMAND_TOPIC,
                reply_topic=REPLY_TOPIC,
                timeout=WAIT,
            ) as controller,
        ):
            assert controller.list() == []
            with pytest.raises(CommandRefused) as caught:
                controller.disconnect("no-such-connection")
            assert "not found" in str(caught.value).lower()
            assert controller.list() == []
