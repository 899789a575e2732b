"""The gateway's gRPC port, driven by plain grpc clients (and reflection) over loopback."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from alpaca_cli.devstack.broker import Broker, CloudEvent
from alpaca_cli.devstack.gateway_grpc import SUBSCRIPTION_ID_HEADER, GatewayGrpc
from alpaca_cli.devstack.gateway_proto import GatewayMessages
from alpaca_cli.devstack.loopthread import LoopThread
from alpaca_cli.devstack.stack import StackConfig, start_in_thread

pytestmark = pytest.mark.timeout(30)

WAIT = 10.0


class Client:
    """Calls on one server, with the server's own message classes (reflection is tested apart)."""

    def __init__(self, server: GatewayGrpc, key: str | None = None) -> None:
        self.server = server
        self.m: GatewayMessages = server.messages
        self.channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        self.metadata = (("x-api-key", key),) if key else ()

    def _call(self, service: str, method: str, streaming: bool = False) -> Any:
        _, response = self.m.method_types(service, method)
        factory = self.channel.unary_stream if streaming else self.channel.unary_unary
        return factory(
            f"/{service}/{method}",
            request_serializer=lambda r: r.SerializeToString(),
            response_deserializer=response.FromString,
        )

    def cloudevent(self, text: str | None = None, **attributes: str) -> Any:
        ce = self.m["io.cloudevents.v1.CloudEvent"](id="e-1", source="test", type="t.type")
        if text is not None:
            holder = ce if self.m.cloudevent_shape == "cncf" else ce.data
            holder.text_data = text
        for name, value in attributes.items():
            ce.attributes[name].ce_string = value
        return ce

    def publish(self, topic: str, ce: Any, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
        request = self.m["virtufin.PublishRequest"](topic=topic, cloudevent=ce)
        call = self._call("virtufin.Pubsub", "PublishEvent")
        return call(request, metadata=self.metadata + metadata, timeout=WAIT)

    def subscribe(self, *topics: str) -> Any:
        """An open stream: returns after the response headers (the server has subscribed)."""
        cls, _ = self.m.method_types("virtufin.Pubsub", "Subscribe")
        if self.m.subscribe_shape == "topics":
            request = cls(topics=list(topics))
        else:
            (topic,) = topics
            request = cls(topic=topic)
        stream = self._call("virtufin.Pubsub", "Subscribe", streaming=True)(
            request, metadata=self.metadata, timeout=WAIT * 2
        )
        stream.initial_metadata()
        return stream

    def close(self) -> None:
        self.channel.close()


@pytest.fixture
def start_server(loop_thread: LoopThread, broker: Broker) -> Iterator[Callable[..., GatewayGrpc]]:
    started: list[GatewayGrpc] = []

    def start(**kwargs: Any) -> GatewayGrpc:
        server = GatewayGrpc(broker, **kwargs)
        loop_thread.run(server.start())
        started.append(server)
        return server

    yield start
    for server in started:
        loop_thread.run(server.stop())


@pytest.fixture
def client(start_server: Callable[..., GatewayGrpc]) -> Iterator[Client]:
    c = Client(start_server())
    yield c
    c.close()


def data_of(message: Any, shape: str = "cncf") -> str:
    holder = message.cloudevent if shape == "cncf" else message.cloudevent.data
    return str(holder.text_data)


def test_reflection_lists_pubsub_and_serves_its_descriptors(client: Client) -> None:
    database = ProtoReflectionDescriptorDatabase(client.channel)
    services = set(database.get_services())
    assert {"virtufin.Pubsub", "virtufin.Gateway", "grpc.health.v1.Health"} <= services
    assert "grpc.reflection.v1alpha.ServerReflection" in services
    pool = descriptor_pool.DescriptorPool(database)
    subscribe = pool.FindServiceByName("virtufin.Pubsub").methods_by_name["Subscribe"]
    assert subscribe.server_streaming
    assert [f.name for f in subscribe.input_type.fields] == ["topics"]
    event = pool.FindMessageTypeByName("io.cloudevents.v1.CloudEvent")
    numbers = {f.name: f.number for f in event.fields}
    assert numbers == {
        "id": 1,
        "source": 2,
        "spec_version": 3,
        "type": 4,
        "attributes": 5,
        "binary_data": 6,
        "text_data": 7,
        "proto_data": 8,
    }


def test_every_subscriber_gets_every_message(client: Client) -> None:
    first, second = client.subscribe("t.fan"), client.subscribe("t.fan")
    for n in range(3):
        assert client.publish("t.fan", client.cloudevent(f'{{"n":{n}}}')).status.success
    for stream in (first, second):
        got = [orjson.loads(data_of(next(stream)))["n"] for _ in range(3)]
        assert got == [0, 1, 2]
        stream.cancel()


def test_nothing_published_before_the_stream_is_replayed(client: Client) -> None:
    client.publish("t.replay", client.cloudevent('"early"'))
    stream = client.subscribe("t.replay")
    client.publish("t.replay", client.cloudevent('"late"'))
    assert data_of(next(stream)) == '"late"'
    stream.cancel()


def test_one_stream_takes_several_topics(client: Client) -> None:
    stream = client.subscribe("t.a", "t.b")
    client.publish("t.b", client.cloudevent('"b"'))
    message = next(stream)
    assert (message.topic, data_of(message)) == ("t.b", '"b"')
    stream.cancel()


def test_heartbeats_keep_an_idle_stream_from_being_reaped(
    start_server: Callable[..., GatewayGrpc],
) -> None:
    # Heartbeats after 0.05 s of silence; the sweeper would act after 0.2 s of it. Eight
    # heartbeats in a row span more than the idle timeout, so the stream outlived it.
    server = start_server(heartbeat_interval=0.05, subscription_idle_timeout=0.2)
    client = Client(server)
    stream = client.subscribe("t.quiet")
    beats = [next(stream) for _ in range(8)]
    assert all(data_of(b) == "" and not b.cloudevent.binary_data for b in beats)
    assert all(b.topic == "t.quiet" for b in beats)
    client.publish("t.quiet", client.cloudevent('"still here"'))
    while data_of(message := next(stream)) == "":
        pass
    assert data_of(message) == '"still here"'
    assert server.reaped == 0
    stream.cancel()
    client.close()


def test_the_idle_reaper_ends_a_stream_without_heartbeats(
    start_server: Callable[..., GatewayGrpc],
) -> None:
    server = start_server(heartbeat_interval=0, subscription_idle_timeout=0.1)
    client = Client(server)
    stream = client.subscribe("t.reaped")
    assert list(stream) == []
    assert stream.code() is grpc.StatusCode.OK
    assert server.reaped == 1
    client.close()


def test_end_streams_completes_every_stream(client: Client, loop_thread: LoopThread) -> None:
    stream = client.subscribe("t.restart")
    assert client.server.stream_count == 1
    assert loop_thread.call(client.server.end_streams) == 1
    assert list(stream) == []
    assert stream.code() is grpc.StatusCode.OK


def test_unsubscribe_ends_the_stream_it_names(client: Client) -> None:
    stream = client.subscribe("t.unsub")
    ids = [v for k, v in stream.initial_metadata() if k == SUBSCRIPTION_ID_HEADER]
    assert len(ids) == 1
    unsubscribe = client._call("virtufin.Pubsub", "Unsubscribe")
    request = client.m["virtufin.UnsubscribeRequest"]
    assert unsubscribe(request(subscription_id=ids[0]), timeout=WAIT).status.success
    assert list(stream) == []
    answer = unsubscribe(request(subscription_id="nope"), timeout=WAIT)
    assert not answer.status.success and answer.status.status == "ERROR"


@pytest.mark.parametrize("shape", ["cncf", "nested"])
def test_both_cloudevent_shapes_carry_data_and_attributes_both_ways(
    start_server: Callable[..., GatewayGrpc], loop_thread: LoopThread, broker: Broker, shape: str
) -> None:
    client = Client(start_server(cloudevent_proto=shape))
    inbox = loop_thread.call(broker.subscribe, "t.shape.in")
    ce = client.cloudevent('{"command":"list"}', correlationid="attr", replytopic="r.t")
    ce.attributes["datacontenttype"].ce_string = "application/json"
    answer = client.publish("t.shape.in", ce, metadata=(("correlationid", "meta"),))
    assert answer.status.success and answer.status.status == "OK"

    async def received() -> CloudEvent:
        delivery = await inbox.get()
        inbox.ack(delivery)
        return delivery.event

    event = loop_thread.run(received(), timeout=WAIT)
    assert (event.id, event.source, event.type) == ("e-1", "test", "t.type")
    assert event.data == b'{"command":"list"}'
    assert event.datacontenttype == "application/json"
    # gRPC metadata is stamped on the event and wins over the attribute of the same name.
    assert event.extensions == {"correlationid": "meta", "replytopic": "r.t"}

    stream = client.subscribe("t.shape.out")
    out = CloudEvent(
        id="o-1",
        source="wsm",
        type="frame",
        topic="t.shape.out",
        data=b'[{"T":"t"}]',
        extensions={"websocketId": "ws-1", "n": 3},
    )
    loop_thread.call(broker.publish, "t.shape.out", out)
    message = next(stream)
    assert data_of(message, shape) == '[{"T":"t"}]'
    attributes = message.cloudevent.attributes
    assert attributes["websocketId"].ce_string == "ws-1"
    assert attributes["n"].ce_integer == 3
    assert attributes["datacontenttype"].ce_string == "application/json"
    stream.cancel()
    client.close()


def test_binary_data_stays_binary(client: Client) -> None:
    stream = client.subscribe("t.bin")
    ce = client.cloudevent()
    ce.binary_data = b"\x81\xa1T\xa1t"
    ce.attributes["datacontenttype"].ce_string = "application/msgpack"
    client.publish("t.bin", ce)
    message = next(stream)
    assert message.cloudevent.WhichOneof("data") == "binary_data"
    assert message.cloudevent.binary_data == b"\x81\xa1T\xa1t"
    stream.cancel()


def test_the_older_single_topic_subscribe_request(
    start_server: Callable[..., GatewayGrpc],
) -> None:
    client = Client(start_server(subscribe_request="topic"))
    stream = client.subscribe("t.old")
    client.publish("t.old", client.cloudevent('"old"'))
    assert data_of(next(stream)) == '"old"'
    stream.cancel()
    client.close()


def test_a_publish_without_topic_is_refused_in_band(client: Client) -> None:
    answer = client.publish("", client.cloudevent('"x"'))
    assert not answer.status.success
    assert answer.status.status == "ERROR" and "Topic" in answer.status.message


def test_a_subscribe_without_topics_is_invalid(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list(client.subscribe())
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_the_api_key_is_required_on_every_call_but_health(
    start_server: Callable[..., GatewayGrpc],
) -> None:
    server = start_server(api_key="right-key")
    for key in (None, "wrong-key"):
        client = Client(server, key)
        with pytest.raises(grpc.RpcError) as caught:
            client.publish("t.auth", client.cloudevent('"x"'))
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as caught:
            list(client.subscribe("t.auth"))
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as caught:
            ProtoReflectionDescriptorDatabase(client.channel).get_services()
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        check = client._call("grpc.health.v1.Health", "Check")
        health = check(client.m["grpc.health.v1.HealthCheckRequest"](), timeout=WAIT)
        assert health.status == 1  # SERVING
        client.close()
    client = Client(server, "right-key")
    assert client.publish("t.auth", client.cloudevent('"x"')).status.success
    client.close()


def test_health_knows_its_services(client: Client) -> None:
    check = client._call("grpc.health.v1.Health", "Check")
    request = client.m["grpc.health.v1.HealthCheckRequest"]
    assert check(request(service="virtufin.Pubsub"), timeout=WAIT).status == 1
    with pytest.raises(grpc.RpcError) as caught:
        check(request(service="nope.Service"), timeout=WAIT)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def test_a_taken_port_fails_loudly(start_server: Callable[..., GatewayGrpc]) -> None:
    server = start_server()
    with pytest.raises(OSError) as caught:
        start_server(port=server.port)
    assert caught.value.errno == errno.EADDRINUSE


def test_invoke_json_reaches_the_same_backends_as_the_http_gateway() -> None:
    with start_in_thread(StackConfig.ephemeral(feed=False)) as platform:
        env = platform.env()
        assert env["VIRTUFIN_API_GRPC_PORT"] == str(platform.gateway_grpc.port)
        assert env["VIRTUFIN_API_HOST"] == "127.0.0.1"
        client = Client(platform.gateway_grpc)
        invoke = client._call("virtufin.Gateway", "InvokeJson")
        request = client.m["virtufin.InvokeJsonRequest"]
        listed = invoke(request(service="workmanager", method="ListWorkers"), timeout=WAIT)
        assert listed.success and listed.status == "OK"
        assert orjson.loads(listed.response_data) == {}
        missing = invoke(request(service="nope", method="X", request_data="{}"), timeout=WAIT)
        assert (missing.success, missing.status) == (False, "NOT_FOUND")
        bad = invoke(
            request(service="workmanager", method="StartWorker", request_data="{"), timeout=WAIT
        )
        assert (bad.success, bad.status) == (False, "INVALID_ARGUMENT")
        services = client._call("virtufin.Gateway", "ListServices")(
            client.m["virtufin.ListServicesRequest"](), timeout=WAIT
        )
        assert list(services.services) == ["workmanager", "websocketmanager"]
        methods = client._call("virtufin.Gateway", "ListMethods")(
            client.m["virtufin.ListMethodsRequest"](service="workmanager"), timeout=WAIT
        )
        assert "CreateWorker" in methods.methods
        client.close()
