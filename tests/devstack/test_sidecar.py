# mypy: disable-error-code="no-untyped-call"
# (the dapr SDK is untyped; these tests call it on purpose)
"""The Dapr sidecar stand-in, driven by the real ``dapr`` SDK (sync and async) over loopback."""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from dapr.aio.clients import DaprClient as AsyncDaprClient
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.proto.runtime.v1 import dapr_pb2_grpc, pubsub_pb2, state_pb2

from alpaca_cli.devstack.broker import Broker, CloudEvent
from alpaca_cli.devstack.loopthread import LoopThread
from alpaca_cli.devstack.sidecar import DaprSidecar

from .conftest import RunningSidecar  # type: ignore[import-not-found]  # no package for mypy

pytestmark = pytest.mark.timeout(30)

ACK_FLUSH = 0.3
"""The SDK sends acks from a queue: give it a moment before closing (spec: ~0.2 s)."""


@pytest.fixture
def client(dapr_sidecar: RunningSidecar) -> Iterator[DaprClient]:
    with DaprClient() as c:
        yield c


def json_event(payload: Any) -> str:
    return json.dumps(payload)


def test_health_endpoints_answer_204(dapr_sidecar: RunningSidecar) -> None:
    for path in ("/v1.0/healthz", "/v1.0/healthz/outbound"):
        url = f"http://127.0.0.1:{dapr_sidecar.sidecar.http_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 204


def test_publish_and_stream_roundtrip_with_json_data(client: DaprClient) -> None:
    sub = client.subscribe("pubsub", "prices")
    try:
        client.publish_event(
            "pubsub", "prices", json_event({"p": 1.5}), data_content_type="application/json"
        )
        msg = next(sub)
        sub.respond_success(msg)
        assert msg.data() == {"p": 1.5}
        assert (msg.topic(), msg.pubsub_name()) == ("prices", "pubsub")
        assert (msg.type(), msg.source(), msg.spec_version()) == (
            "com.dapr.event.sent",
            "devstack",
            "1.0",
        )
        assert msg.data_content_type() == "application/json"
        assert msg.id()
        ext = msg.extensions()
        assert ext["traceparent"].startswith("00-")
        assert ext["time"]
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()


def test_a_cloudevent_passes_through_with_its_correlationid(client: DaprClient) -> None:
    sub = client.subscribe("pubsub", "commands")
    try:
        command = {
            "id": "cmd-1",
            "source": "alpaca-md",
            "type": "com.virtufin.command",
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "correlationid": "corr-7",
            "data": {"command": "list"},
        }
        client.publish_event(
            "pubsub",
            "commands",
            json.dumps(command),
            data_content_type="application/cloudevents+json",
        )
        msg = next(sub)
        sub.respond_success(msg)
        assert (msg.id(), msg.source(), msg.type()) == (
            "cmd-1",
            "alpaca-md",
            "com.virtufin.command",
        )
        assert msg.data() == {"command": "list"}
        assert msg.extensions()["correlationid"] == "corr-7"
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()


def test_two_streams_each_get_every_message(client: DaprClient) -> None:
    first = client.subscribe("pubsub", "fanout")
    second = client.subscribe("pubsub", "fanout")
    try:
        for n in range(5):
            client.publish_event("pubsub", "fanout", json_event(n), data_content_type="text/plain")
        for sub in (first, second):
            got = []
            for _ in range(5):
                msg = next(sub)
                sub.respond_success(msg)
                got.append(msg.data())
            assert got == ["0", "1", "2", "3", "4"]
        time.sleep(ACK_FLUSH)
    finally:
        first.close()
        second.close()


def test_a_stream_opened_after_a_publish_does_not_see_it(client: DaprClient) -> None:
    client.publish_event("pubsub", "late", "before")
    sub = client.subscribe("pubsub", "late")
    try:
        client.publish_event("pubsub", "late", "after")
        msg = next(sub)
        sub.respond_success(msg)
        assert msg.data() == "after"
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()


def test_retry_redelivers_the_message_under_a_retry_policy(
    start_sidecar: Callable[..., RunningSidecar],
) -> None:
    start_sidecar(resiliency_retries=1)
    with DaprClient() as client:
        _retry_once_then_succeed(client)


def _retry_once_then_succeed(client: DaprClient) -> None:
    sub = client.subscribe("pubsub", "flaky")
    try:
        client.publish_event(
            "pubsub", "flaky", json_event({"n": 1}), data_content_type="application/json"
        )
        first = next(sub)
        sub.respond_retry(first)
        again = next(sub)
        sub.respond_success(again)
        assert again.id() == first.id()
        assert again.data() == {"n": 1}
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()


def test_drop_sends_the_message_to_the_dead_letter_topic(client: DaprClient) -> None:
    sub = client.subscribe("pubsub", "orders", dead_letter_topic="orders.dead")
    dead = client.subscribe("pubsub", "orders.dead")
    try:
        client.publish_event("pubsub", "orders", "poison")
        msg = next(sub)
        sub.respond_drop(msg)
        lost = next(dead)
        dead.respond_success(lost)
        assert (lost.id(), lost.topic(), lost.data()) == (msg.id(), "orders.dead", "poison")
        # The event itself is republished unchanged: its topic attribute names the origin.
        assert lost.extensions()["topic"] == "orders"
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()
        dead.close()


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        pytest.param("application/octet-stream", b"\x00\xff", id="octet-stream"),
        pytest.param("application/xml", b"\x00\xff", id="xml"),
        pytest.param("application/msgpack", b"", id="msgpack-arrives-empty"),
    ],
)
def test_only_surviving_content_types_keep_their_data(
    client: DaprClient, content_type: str, expected: bytes
) -> None:
    sub = client.subscribe("pubsub", "bin")
    try:
        client.publish_event("pubsub", "bin", b"\x00\xff", data_content_type=content_type)
        msg = next(sub)
        sub.respond_success(msg)
        assert (msg.data_content_type(), msg.raw_data()) == (content_type, expected)
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()


def test_an_unknown_pubsub_fails_with_invalid_argument(client: DaprClient) -> None:
    with pytest.raises(DaprGrpcError) as caught:
        client.publish_event("nosuch", "t", "x")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "pubsub nosuch is not found"
    with pytest.raises(Exception, match="pubsub nosuch is not found"):
        client.subscribe("nosuch", "t")


def test_other_pubsub_components_can_be_configured(
    start_sidecar: Callable[..., RunningSidecar],
) -> None:
    start_sidecar(pubsub_names=("pubsub", "nats"))
    with DaprClient() as c:
        sub = c.subscribe("nats", "t")
        try:
            c.publish_event("pubsub", "t", "other component")
            c.publish_event("nats", "t", "this component")
            msg = next(sub)
            sub.respond_success(msg)
            assert (msg.data(), msg.pubsub_name()) == ("this component", "nats")
            time.sleep(ACK_FLUSH)
        finally:
            sub.close()


def test_an_empty_topic_is_refused(client: DaprClient) -> None:
    with pytest.raises(DaprGrpcError) as caught:
        client.publish_event("pubsub", "", "x")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_malformed_cloudevent_is_refused(client: DaprClient) -> None:
    with pytest.raises(DaprGrpcError) as caught:
        client.publish_event("pubsub", "t", "{", data_content_type="application/cloudevents+json")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot create cloudevent" in caught.value.details()


def test_the_api_token_is_enforced(
    start_sidecar: Callable[..., RunningSidecar], monkeypatch: pytest.MonkeyPatch
) -> None:
    start_sidecar(api_token="s3cret")
    monkeypatch.setenv("DAPR_API_TOKEN", "wrong")
    with DaprClient() as c:  # the health check is exempt, as on the real sidecar
        with pytest.raises(DaprGrpcError) as caught:
            c.publish_event("pubsub", "t", "x")
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(Exception, match="UNAUTHENTICATED"):
            c.subscribe("pubsub", "t")
    monkeypatch.setenv("DAPR_API_TOKEN", "s3cret")
    with DaprClient() as c:
        sub = c.subscribe("pubsub", "t")
        try:
            c.publish_event("pubsub", "t", "authorised")
            msg = next(sub)
            sub.respond_success(msg)
            assert msg.data() == "authorised"
            time.sleep(ACK_FLUSH)
        finally:
            sub.close()


def test_methods_beyond_pubsub_are_unimplemented(dapr_sidecar: RunningSidecar) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{dapr_sidecar.sidecar.grpc_port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetState(state_pb2.GetStateRequest(store_name="s", key="k"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_stream_must_start_with_an_initial_request(dapr_sidecar: RunningSidecar) -> None:
    processed = pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
        event_processed=pubsub_pb2.SubscribeTopicEventsRequestProcessedAlpha1(id="x")
    )
    with grpc.insecure_channel(f"127.0.0.1:{dapr_sidecar.sidecar.grpc_port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.SubscribeTopicEventsAlpha1(iter([processed]), timeout=5))
    # daprd returns a plain error here, which reaches the client as UNKNOWN.
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    assert caught.value.details() == "initial request is required"


def test_http_publish_reaches_a_stream(client: DaprClient, dapr_sidecar: RunningSidecar) -> None:
    base = f"http://127.0.0.1:{dapr_sidecar.sidecar.http_port}/v1.0/publish"
    sub = client.subscribe("pubsub", "web")
    try:
        request = urllib.request.Request(
            f"{base}/pubsub/web?metadata.cloudevent.id=h1",
            data=b'{"via":"http"}',
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 204
        msg = next(sub)
        sub.respond_success(msg)
        assert (msg.id(), msg.data()) == ("h1", {"via": "http"})
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()
    unknown = urllib.request.Request(f"{base}/nosuch/web", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(unknown, timeout=5)
    with caught.value as error:
        assert error.code == 404
        assert json.loads(error.read())["errorCode"] == "ERR_PUBSUB_NOT_FOUND"


def test_events_published_on_the_broker_reach_sdk_streams(
    client: DaprClient, dapr_sidecar: RunningSidecar
) -> None:
    """Stand-ins such as the WSM publish straight to the broker; extensions must arrive."""
    sub = client.subscribe("pubsub", "frames")
    try:
        frame = CloudEvent(
            id="f1",
            source="websocketmanager",
            type="com.virtufin.websocket.message",
            topic="frames",
            data=b'[{"T":"success","msg":"connected"}]',
            extensions={"websocketId": "ws-1", "timestamp": 1700000000},
        )
        dapr_sidecar.broker.publish_threadsafe("frames", frame)
        msg = next(sub)
        sub.respond_success(msg)
        assert msg.data() == [{"T": "success", "msg": "connected"}]
        assert msg.extensions()["websocketId"] == "ws-1"
        assert msg.extensions()["timestamp"] == 1700000000
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()


def test_many_events_arrive_in_order_without_loss(
    client: DaprClient, dapr_sidecar: RunningSidecar
) -> None:
    sub = client.subscribe("pubsub", "burst")
    total = 2000
    try:
        for n in range(total):
            dapr_sidecar.broker.publish_threadsafe(
                "burst", CloudEvent(id=str(n), source="s", type="t", topic="burst")
            )
        got = []
        for _ in range(total):
            msg = next(sub)
            sub.respond_success(msg)
            got.append(int(msg.id()))
        assert got == list(range(total))
        assert dapr_sidecar.broker.dropped == 0
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()


def test_stopping_the_sidecar_ends_open_streams(dapr_sidecar: RunningSidecar) -> None:
    with DaprClient() as c:
        c.subscribe("pubsub", "t")
        assert dapr_sidecar.sidecar.stream_count == 1
        dapr_sidecar.loop.run(dapr_sidecar.sidecar.stop())
        assert dapr_sidecar.sidecar.stream_count == 0
        assert dapr_sidecar.broker.subscriber_count("t") == 0


def test_the_async_sdk_publishes_and_streams(dapr_sidecar: RunningSidecar) -> None:
    async def scenario() -> tuple[Any, dict[str, Any], Any]:
        async with AsyncDaprClient() as c:
            sub = await c.subscribe("pubsub", "async", dead_letter_topic="async.dead")
            dead = await c.subscribe("pubsub", "async.dead")
            try:
                await c.publish_event(
                    "pubsub",
                    "async",
                    # daprd delivers passthrough data only with a datacontenttype.
                    json.dumps(
                        {
                            "id": "a1",
                            "correlationid": "c1",
                            "datacontenttype": "application/json",
                            "data": {"k": "v"},
                        }
                    ),
                    data_content_type="application/cloudevents+json",
                )
                msg = await sub.next_message()
                await sub.respond_drop(msg)
                lost = await dead.next_message()
                await dead.respond_success(lost)
                await asyncio.sleep(ACK_FLUSH)
                return msg.data(), msg.extensions(), lost.id()
            finally:
                await sub.close()
                await dead.close()

    data, extensions, lost_id = asyncio.run(scenario())
    assert data == {"k": "v"}
    assert extensions["correlationid"] == "c1"
    assert lost_id == "a1"


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a condition that has no event to await (a server-side cancellation)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_closing_a_stream_releases_its_broker_subscription(
    client: DaprClient, dapr_sidecar: RunningSidecar
) -> None:
    sub = client.subscribe("pubsub", "short")
    assert dapr_sidecar.broker.subscriber_count("short") == 1
    sub.close()
    assert wait_until(lambda: dapr_sidecar.sidecar.stream_count == 0)
    assert dapr_sidecar.broker.subscriber_count("short") == 0


def test_http_publish_needs_the_api_token_but_health_does_not(
    start_sidecar: Callable[..., RunningSidecar],
) -> None:
    running = start_sidecar(api_token="s3cret")
    base = f"http://127.0.0.1:{running.sidecar.http_port}"
    with urllib.request.urlopen(f"{base}/v1.0/healthz", timeout=5) as response:
        assert response.status == 204
    publish = f"{base}/v1.0/publish/pubsub/t"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(urllib.request.Request(publish, data=b"x"), timeout=5)
    with caught.value as error:
        assert error.code == 401
    authorised = urllib.request.Request(publish, data=b"x", headers={"dapr-api-token": "s3cret"})
    with urllib.request.urlopen(authorised, timeout=5) as response:
        assert response.status == 204


@pytest.mark.parametrize("which", ["grpc_port", "http_port"])
def test_a_taken_port_fails_to_start_with_address_in_use(
    loop_thread: LoopThread, broker: Broker, which: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sidecar = DaprSidecar(broker, **{which: taken.getsockname()[1]})
        with pytest.raises(OSError) as caught:
            loop_thread.run(sidecar.start())
    assert caught.value.errno == errno.EADDRINUSE


# -- several streams on one topic: what a real sidecar does (streams_per_topic) -------------------


def publish_numbers(client: DaprClient, topic: str, count: int) -> None:
    for n in range(count):
        client.publish_event("pubsub", topic, json_event(n), data_content_type="text/plain")


def test_single_refuses_a_second_stream_on_the_topic_with_the_runtimes_error(
    start_sidecar: Callable[..., RunningSidecar],
) -> None:
    start_sidecar(streams_per_topic="single")
    with DaprClient() as c:
        first = c.subscribe("pubsub", "ticks")
        try:
            with pytest.raises(Exception) as caught:
                c.subscribe("pubsub", "ticks")
            cause = caught.value.__cause__
            assert isinstance(cause, grpc.RpcError)
            assert cause.code() == grpc.StatusCode.UNKNOWN
            assert cause.details() == 'streamer already subscribed to pubsub "pubsub" topic "ticks"'
            # The first stream is untouched and still gets every message.
            c.publish_event("pubsub", "ticks", "still mine")
            msg = next(first)
            first.respond_success(msg)
            assert msg.data() == "still mine"
            other = c.subscribe("pubsub", "other-topic")  # another topic is another streamer
            other.close()
            time.sleep(ACK_FLUSH)
        finally:
            first.close()


def test_single_accepts_a_new_stream_once_the_first_closed(
    start_sidecar: Callable[..., RunningSidecar],
) -> None:
    running = start_sidecar(streams_per_topic="single")
    with DaprClient() as c:
        c.subscribe("pubsub", "ticks").close()
        assert wait_until(lambda: running.sidecar.stream_count == 0)
        again = c.subscribe("pubsub", "ticks")
        try:
            c.publish_event("pubsub", "ticks", "after")
            msg = next(again)
            again.respond_success(msg)
            assert msg.data() == "after"
            time.sleep(ACK_FLUSH)
        finally:
            again.close()


def test_split_streams_share_the_messages_each_goes_to_one(
    start_sidecar: Callable[..., RunningSidecar],
) -> None:
    running = start_sidecar(streams_per_topic="split")
    with DaprClient() as c:
        first = c.subscribe("pubsub", "shared")
        second = c.subscribe("pubsub", "shared")
        got: dict[str, list[str]] = {"first": [], "second": []}
        readers = []
        try:
            import threading

            def read(name: str, sub: Any) -> None:
                try:
                    for msg in sub:
                        sub.respond_success(msg)
                        got[name].append(msg.data())
                except Exception:  # StreamInactiveError once closed: the end of this reader
                    return

            for name, sub in (("first", first), ("second", second)):
                thread = threading.Thread(target=read, args=(name, sub), daemon=True)
                thread.start()
                readers.append(thread)
            publish_numbers(c, "shared", 40)
            assert wait_until(lambda: len(got["first"]) + len(got["second"]) >= 40)
            time.sleep(ACK_FLUSH)
        finally:
            first.close()
            second.close()
            for thread in readers:
                thread.join(timeout=5)
        both = got["first"] + got["second"]
        assert sorted(both, key=int) == [str(n) for n in range(40)]  # none twice, none lost
        assert got["first"] and got["second"], got  # they competed: neither got everything
        assert running.sidecar.streams_per_topic == "split"


def test_split_groups_by_app_id_so_another_sidecars_stream_gets_every_message(
    start_sidecar: Callable[..., RunningSidecar], monkeypatch: pytest.MonkeyPatch
) -> None:
    tail_side = start_sidecar(streams_per_topic="split", app_id="alpaca-md-tail")
    tail_env = tail_side.env
    start_sidecar(streams_per_topic="split", app_id="alpaca-md")  # the SDK env points here now
    with DaprClient() as ours:
        mine = ours.subscribe("pubsub", "ticks")
        for name, value in tail_env.items():
            monkeypatch.setenv(name, value)
        with DaprClient() as other:
            tail = other.subscribe("pubsub", "ticks")
            try:
                publish_numbers(ours, "ticks", 5)
                for sub in (mine, tail):
                    got = []
                    for _ in range(5):
                        msg = next(sub)
                        sub.respond_success(msg)
                        got.append(msg.data())
                    assert got == ["0", "1", "2", "3", "4"]
                time.sleep(ACK_FLUSH)
            finally:
                tail.close()
                mine.close()


def test_copy_is_the_default_and_unknown_modes_are_refused(dapr_sidecar: RunningSidecar) -> None:
    assert dapr_sidecar.sidecar.streams_per_topic == "copy"
    with pytest.raises(ValueError, match="streams_per_topic"):
        DaprSidecar(dapr_sidecar.broker, streams_per_topic="both")  # type: ignore[arg-type]


# -- daprd's RETRY handling ------------------------------------------------------------------


def test_retry_without_a_policy_goes_to_the_dead_letter_topic(client: DaprClient) -> None:
    sub = client.subscribe("pubsub", "once", dead_letter_topic="once.dead")
    dead = client.subscribe("pubsub", "once.dead")
    try:
        client.publish_event("pubsub", "once", "try me", data_content_type="text/plain")
        first = next(sub)
        sub.respond_retry(first)
        lost = next(dead)
        dead.respond_success(lost)
        assert (lost.id(), lost.data(), lost.extensions()["topic"]) == (
            first.id(),
            "try me",
            "once",
        )
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()
        dead.close()


def test_retry_without_a_policy_or_dead_letter_topic_drops_and_logs(
    client: DaprClient, dapr_sidecar: RunningSidecar, caplog: pytest.LogCaptureFixture
) -> None:
    sub = client.subscribe("pubsub", "gone")
    try:
        client.publish_event("pubsub", "gone", "first", data_content_type="text/plain")
        first = next(sub)
        with caplog.at_level("WARNING", logger="alpaca_cli.devstack.sidecar"):
            sub.respond_retry(first)
            client.publish_event("pubsub", "gone", "second", data_content_type="text/plain")
            # No redelivery: the next message is the next one published.
            second = next(sub)
            # The SDK sends acks from a queue, so the RETRY may reach the sidecar after the
            # second message has: wait for the sidecar to have settled it, inside the capture.
            wait_until(lambda: dapr_sidecar.sidecar.retries_exhausted > 0)
        sub.respond_success(second)
        assert (first.data(), second.data()) == ("first", "second")
        assert dapr_sidecar.sidecar.retries_exhausted == 1
        assert any("dropped" in r.getMessage() for r in caplog.records)
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()


def test_retries_run_out_after_the_policys_count(
    start_sidecar: Callable[..., RunningSidecar],
) -> None:
    start_sidecar(resiliency_retries=2)
    with DaprClient() as client:
        sub = client.subscribe("pubsub", "stubborn", dead_letter_topic="stubborn.dead")
        dead = client.subscribe("pubsub", "stubborn.dead")
        try:
            client.publish_event("pubsub", "stubborn", "x", data_content_type="text/plain")
            seen = []
            for _ in range(3):  # the delivery and two retries
                msg = next(sub)
                seen.append(msg.id())
                sub.respond_retry(msg)
            lost = next(dead)
            dead.respond_success(lost)
            assert len(set(seen)) == 1 and lost.id() == seen[0]
            time.sleep(ACK_FLUSH)
        finally:
            sub.close()
            dead.close()


def test_negative_resiliency_retries_are_refused(broker: Broker) -> None:
    with pytest.raises(ValueError, match="resiliency_retries"):
        DaprSidecar(broker, resiliency_retries=-1)


# -- GetMetadata, as Dapr's JavaScript SDK probes it at start-up ---------------------------------


def test_grpc_get_metadata_reports_app_components_and_streams(
    client: DaprClient, dapr_sidecar: RunningSidecar
) -> None:
    from dapr.proto.runtime.v1 import metadata_pb2

    sub = client.subscribe("pubsub", "watched", dead_letter_topic="watched.dead")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{dapr_sidecar.sidecar.grpc_port}") as channel:
            answer = dapr_pb2_grpc.DaprStub(channel).GetMetadata(
                metadata_pb2.GetMetadataRequest(), timeout=5
            )
        assert answer.id == "devstack"
        assert answer.runtime_version == "1.16.0"
        assert [(c.name, c.type) for c in answer.registered_components] == [
            ("pubsub", "pubsub.in-memory")
        ]
        [stream] = answer.subscriptions
        assert (stream.pubsub_name, stream.topic, stream.dead_letter_topic) == (
            "pubsub",
            "watched",
            "watched.dead",
        )
        assert stream.type == metadata_pb2.PubsubSubscriptionType.STREAMING
    finally:
        sub.close()


def test_http_metadata_answers_with_daprds_json_shape(dapr_sidecar: RunningSidecar) -> None:
    url = f"http://127.0.0.1:{dapr_sidecar.sidecar.http_port}/v1.0/metadata"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        body = json.loads(response.read())
    assert body["id"] == "devstack"
    assert body["runtimeVersion"] == "1.16.0"
    assert body["components"] == [{"name": "pubsub", "type": "pubsub.in-memory", "version": "v1"}]
    assert "subscriptions" not in body, "daprd leaves an empty list out"


# -- bulk publish --------------------------------------------------------------------------------


def test_grpc_bulk_publish_publishes_each_entry_and_reports_failures(
    client: DaprClient, dapr_sidecar: RunningSidecar
) -> None:
    sub = client.subscribe("pubsub", "bulk")
    entries = [
        pubsub_pb2.BulkPublishRequestEntry(
            entry_id="1", event=b'{"n":1}', content_type="application/json"
        ),
        pubsub_pb2.BulkPublishRequestEntry(
            entry_id="2", event=b"{", content_type="application/cloudevents+json"
        ),
        pubsub_pb2.BulkPublishRequestEntry(
            entry_id="3",
            event=b"three",
            content_type="text/plain",
            metadata={"cloudevent.id": "e3"},
        ),
    ]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{dapr_sidecar.sidecar.grpc_port}") as channel:
            answer = dapr_pb2_grpc.DaprStub(channel).BulkPublishEventAlpha1(
                pubsub_pb2.BulkPublishRequest(pubsub_name="pubsub", topic="bulk", entries=entries),
                timeout=5,
            )
        assert [(f.entry_id, f.error.startswith("cannot create cloudevent")) for f in
                answer.failedEntries] == [("2", True)]  # fmt: skip
        one, three = next(sub), next(sub)
        sub.respond_success(one)
        sub.respond_success(three)
        assert (one.data(), three.data(), three.id()) == ({"n": 1}, "three", "e3")
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()


def test_grpc_bulk_publish_refuses_missing_or_repeated_entry_ids(
    dapr_sidecar: RunningSidecar,
) -> None:
    twice = [pubsub_pb2.BulkPublishRequestEntry(entry_id="1", event=b"x") for _ in range(2)]
    address = f"127.0.0.1:{dapr_sidecar.sidecar.grpc_port}"
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as caught:
        dapr_pb2_grpc.DaprStub(channel).BulkPublishEventAlpha1(
            pubsub_pb2.BulkPublishRequest(pubsub_name="pubsub", topic="t", entries=twice),
            timeout=5,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_http_bulk_publish_converts_each_event_by_its_content_type(
    client: DaprClient, dapr_sidecar: RunningSidecar
) -> None:
    base = f"http://127.0.0.1:{dapr_sidecar.sidecar.http_port}/v1.0-alpha1/publish/bulk"
    body = [
        {"entryId": "a", "event": {"k": "v"}, "contentType": "application/json"},
        {"entryId": "b", "event": "plain", "contentType": "text/plain"},
        {"entryId": "c", "event": "AAE=", "contentType": "application/octet-stream"},
    ]
    sub = client.subscribe("pubsub", "hbulk")
    try:
        request = urllib.request.Request(
            f"{base}/pubsub/hbulk",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 204
        got = [next(sub) for _ in body]
        for msg in got:
            sub.respond_success(msg)
        assert [m.raw_data() for m in got] == [b'{"k":"v"}', b"plain", b"\x00\x01"]
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()


# -- daprd's error codes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code"),
    [
        pytest.param("/v1.0/publish//t", "ERR_PUBSUB_EMPTY", id="empty-pubsub"),
        pytest.param("/v1.0/publish/pubsub/", "ERR_TOPIC_EMPTY", id="empty-topic"),
        pytest.param("/v1.0/publish/nosuch/t", "ERR_PUBSUB_NOT_FOUND", id="unknown-pubsub"),
        pytest.param("/v1.0-alpha1/publish/bulk//t", "ERR_PUBSUB_EMPTY", id="bulk-empty-pubsub"),
        pytest.param("/v1.0-alpha1/publish/bulk/pubsub/", "ERR_TOPIC_EMPTY", id="bulk-no-topic"),
    ],
)
def test_http_publish_with_a_missing_name_is_a_404_with_a_json_body(
    dapr_sidecar: RunningSidecar, path: str, code: str
) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{dapr_sidecar.sidecar.http_port}{path}", data=b"[]", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 404
    assert json.loads(caught.value.read())["errorCode"] == code


def test_http_publish_of_a_bad_cloudevent_is_a_500(dapr_sidecar: RunningSidecar) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{dapr_sidecar.sidecar.http_port}/v1.0/publish/pubsub/t",
        data=b"{",
        headers={"Content-Type": "application/cloudevents+json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 500
    body = json.loads(caught.value.read())
    assert body["errorCode"] == "ERR_PUBSUB_CLOUD_EVENTS_SER"
    assert body["message"].startswith("cannot create cloudevent")


def _initial(pubsub: str, topic: str) -> pubsub_pb2.SubscribeTopicEventsRequestAlpha1:
    return pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
        initial_request=pubsub_pb2.SubscribeTopicEventsRequestInitialAlpha1(
            pubsub_name=pubsub, topic=topic
        )
    )


@pytest.mark.parametrize(
    ("pubsub", "topic", "details"),
    [
        pytest.param("", "t", "pubsubName is required", id="no-pubsub"),
        pytest.param("pubsub", "", "topic is required", id="no-topic"),
    ],
)
def test_stream_setup_errors_are_unknown_with_daprds_text(
    dapr_sidecar: RunningSidecar, pubsub: str, topic: str, details: str
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{dapr_sidecar.sidecar.grpc_port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.SubscribeTopicEventsAlpha1(iter([_initial(pubsub, topic)]), timeout=5))
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.UNKNOWN, details)


def test_a_second_initial_request_ends_the_stream(dapr_sidecar: RunningSidecar) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{dapr_sidecar.sidecar.grpc_port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        requests = iter([_initial("pubsub", "t"), _initial("pubsub", "t")])
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.SubscribeTopicEventsAlpha1(requests, timeout=5))
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    assert caught.value.details() == "duplicate initial request received"


# -- the envelope rules end to end ----------------------------------------------------------------


def test_ttl_sets_expiration_and_expired_events_are_not_delivered(
    start_sidecar: Callable[..., RunningSidecar],
) -> None:
    from datetime import UTC, datetime, timedelta

    # Every reading of the sidecar's clock is ten seconds after the previous one, so a
    # one-second TTL has run out by the time the event is about to be delivered.
    start = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    readings = itertools.count()
    running = start_sidecar(clock=lambda: start + timedelta(seconds=10 * next(readings)))
    with DaprClient() as client:
        sub = client.subscribe("pubsub", "ttl")
        try:
            client.publish_event(
                "pubsub", "ttl", "stale", data_content_type="text/plain",
                publish_metadata={"ttlInSeconds": "1"},
            )  # fmt: skip
            client.publish_event(
                "pubsub", "ttl", "fresh", data_content_type="text/plain",
                publish_metadata={"ttlInSeconds": "3600"},
            )  # fmt: skip
            msg = next(sub)
            sub.respond_success(msg)
            assert msg.data() == "fresh"
            published = datetime.fromisoformat(msg.extensions()["time"].replace("Z", "+00:00"))
            expected = (published + timedelta(seconds=3600)).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert msg.extensions()["expiration"] == expected
            assert running.sidecar.expired == 1
            time.sleep(ACK_FLUSH)
        finally:
            sub.close()


def test_json_data_is_re_marshalled_like_daprd(client: DaprClient) -> None:
    sub = client.subscribe("pubsub", "marshal")
    try:
        client.publish_event(
            "pubsub", "marshal", b'{ "b": "<&>", "a": 1 }', data_content_type="application/json"
        )
        msg = next(sub)
        sub.respond_success(msg)
        assert msg.raw_data() == b'{"a":1,"b":"\\u003c\\u0026\\u003e"}'
        assert msg.data() == {"a": 1, "b": "<&>"}
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()


def test_a_passthrough_keeps_the_publishers_trace_and_gains_a_time(client: DaprClient) -> None:
    trace = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    doc = {
        "specversion": "1.0",
        "source": "me",
        "type": "t.x",
        "traceparent": trace,
        "tracestate": "k=v",
        "data": "no id, no datacontenttype",
    }
    sub = client.subscribe("pubsub", "pass")
    try:
        client.publish_event(
            "pubsub", "pass", json.dumps(doc), data_content_type="application/cloudevents+json"
        )
        msg = next(sub)
        sub.respond_success(msg)
        ext = msg.extensions()
        assert (ext["traceparent"], ext["traceid"], ext["tracestate"]) == (trace, trace, "k=v")
        assert ext["time"].endswith("Z")
        # No id or content type is invented, so (as from daprd) the data does not survive.
        assert (msg.id(), msg.data_content_type(), msg.raw_data()) == ("", "", b"")
        time.sleep(ACK_FLUSH)
    finally:
        sub.close()
