"""WorkManager: validation, lifecycle and idempotence, consumption, replies and correlation."""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from typing import Any

import orjson
import pytest

from alpaca_cli.devstack.broker import Broker, BrokerSubscription, CloudEvent
from alpaca_cli.devstack.controller import COMMAND_TOPIC, EMBEDDED_URL, REPLY_TOPIC
from alpaca_cli.devstack.loopthread import LoopThread
from alpaca_cli.devstack.rpc import RpcError, Status
from alpaca_cli.devstack.workmanager import (
    DOTNET_MIME,
    LIFECYCLE_TOPIC,
    CodeSource,
    WorkerStatus,
    WorkManager,
)
from alpaca_cli.devstack.wsm import WebSocketManager

pytestmark = pytest.mark.timeout(30)

EMBEDDED = CodeSource(url=EMBEDDED_URL)


def zip_of(*names: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name in names:
            archive.writestr(name, b"MZ")
    return buf.getvalue()


def command(data: dict[str, Any] | bytes, **extensions: Any) -> CloudEvent:
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    return CloudEvent(
        id=str(uuid.uuid4()),
        source="test",
        type="com.example.command",
        topic=COMMAND_TOPIC,
        data=body,
        extensions=extensions,
    )


async def take(sub: BrokerSubscription) -> CloudEvent:
    delivery = await asyncio.wait_for(sub.get(), 10)
    sub.ack(delivery)
    return delivery.event


def make(broker: Broker) -> WorkManager:
    return WorkManager(broker, WebSocketManager(broker))


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        pytest.param(
            {"mime_type": "text/x-python"}, Status.NOT_FOUND, "Engine not found", id="mime"
        ),
        pytest.param({"mime_type": ""}, Status.INVALID_ARGUMENT, "mime_type", id="no-mime"),
        pytest.param({"code": CodeSource()}, Status.INVALID_ARGUMENT, "Code source", id="empty"),
        pytest.param(
            {"code": CodeSource(url="ftp://host/w.zip")}, Status.INVALID_ARGUMENT, "http", id="ftp"
        ),
        pytest.param({"topics": []}, Status.INVALID_ARGUMENT, "topic", id="no-topics"),
        pytest.param({"topics": ["a b"]}, Status.INVALID_ARGUMENT, "topic", id="space-topic"),
        pytest.param(
            {"tags": {f"k{i}": "v" for i in range(51)}},
            Status.INVALID_ARGUMENT,
            "Too many",
            id="51",
        ),
        pytest.param({"tags": {"k" * 129: "v"}}, Status.INVALID_ARGUMENT, "key", id="long-key"),
        pytest.param({"tags": {"k": "v" * 1025}}, Status.INVALID_ARGUMENT, "value", id="long-val"),
    ],
)
def test_create_rejects_bad_requests(
    loop_thread: LoopThread, broker: Broker, kwargs: dict[str, Any], status: Status, fragment: str
) -> None:
    args: dict[str, Any] = {"code": EMBEDDED, "mime_type": DOTNET_MIME, "topics": ["t"]}
    args.update(kwargs)
    wm = loop_thread.call(make, broker)
    with pytest.raises(RpcError) as exc:
        wm.create_worker(**args)
    assert exc.value.status is status
    assert fragment in exc.value.message
    assert wm.list_workers() == []


def test_tags_at_the_limits_are_accepted(loop_thread: LoopThread, broker: Broker) -> None:
    wm = loop_thread.call(make, broker)
    tags = {f"{i:0128d}": "v" * 1024 for i in range(50)}
    worker = wm.create_worker(code=EMBEDDED, mime_type=DOTNET_MIME, topics=["t"], tags=tags)
    assert worker.to_json()["tags"] == tags


def test_lifecycle_start_stop_are_idempotent_and_delete_needs_no_stop(
    loop_thread: LoopThread, broker: Broker
) -> None:
    async def scenario() -> None:
        wm = make(broker)
        life = broker.subscribe(LIFECYCLE_TOPIC)
        worker = wm.create_worker(
            code=CodeSource(content=zip_of("bin/Virtufin.Examples.WebSocketManagerController.dll")),
            mime_type=DOTNET_MIME,
            topics=[COMMAND_TOPIC],
            tags={"made-by": "alpaca-md"},
        )
        shown = worker.to_json()
        assert shown["status"] == "STOPPED"
        assert shown["mimeType"] == DOTNET_MIME and shown["topics"] == [COMMAND_TOPIC]
        await wm.start_worker(worker.id)
        await wm.start_worker(worker.id)
        assert wm.get(worker.id).status is WorkerStatus.RUNNING
        await wm.stop_worker(worker.id)
        await wm.stop_worker(worker.id)
        assert wm.get(worker.id).status is WorkerStatus.STOPPED
        await wm.start_worker(worker.id)
        await wm.delete_worker(worker.id)
        assert wm.list_workers() == []
        for call in (wm.start_worker, wm.stop_worker, wm.delete_worker):
            with pytest.raises(RpcError) as exc:
                await call(worker.id)
            assert exc.value.status is Status.NOT_FOUND
        kinds = [
            (await take(life)).type.removeprefix("com.virtufin.workmanager.lifecycle.")
            for _ in range(9)
        ]
        assert life.get_nowait() is None
        assert kinds == [
            "registered",
            "starting",
            "online",
            "stopping",
            "stopped",
            "starting",
            "online",
            "stopping",
            "stopped",
        ]
        assert broker.subscriber_count(COMMAND_TOPIC) == 0

    loop_thread.run(scenario())


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(CodeSource(content=zip_of("Some.Other.Worker.dll")), id="other-dll"),
        pytest.param(CodeSource(content=b"not a zip at all"), id="not-a-zip"),
    ],
)
def test_a_dotnet_package_that_is_not_the_controller_fails_with_an_engine_error(
    loop_thread: LoopThread, broker: Broker, code: CodeSource
) -> None:
    async def scenario() -> None:
        wm = make(broker)
        life = broker.subscribe(LIFECYCLE_TOPIC)
        worker = wm.create_worker(code=code, mime_type=DOTNET_MIME, topics=["t"])
        with pytest.raises(RpcError) as exc:
            await wm.start_worker(worker.id)
        assert exc.value.status is Status.FAILED_PRECONDITION
        assert "Engine error" in exc.value.message
        assert wm.get(worker.id).status is WorkerStatus.STOPPED
        kinds = [(await take(life)).type.rsplit(".", 1)[1] for _ in range(3)]
        assert kinds == ["registered", "starting", "failed"]

    loop_thread.run(scenario())


def test_a_code_url_that_cannot_be_downloaded_is_unavailable(
    loop_thread: LoopThread, broker: Broker
) -> None:
    async def scenario() -> None:
        wm = make(broker)
        worker = wm.create_worker(
            code=CodeSource(url="http://127.0.0.1:9/worker.zip"),
            mime_type=DOTNET_MIME,
            topics=["t"],
        )
        with pytest.raises(RpcError) as exc:
            await wm.start_worker(worker.id)
        assert exc.value.status is Status.UNAVAILABLE

    loop_thread.run(scenario())


def test_replies_follow_replytopic_and_carry_the_correlationid(
    loop_thread: LoopThread, broker: Broker
) -> None:
    async def scenario() -> None:
        wm = make(broker)
        default = broker.subscribe(REPLY_TOPIC)
        custom = broker.subscribe("my.replies")
        worker = wm.create_worker(code=EMBEDDED, mime_type=DOTNET_MIME, topics=[COMMAND_TOPIC])
        await wm.start_worker(worker.id)

        broker.publish(COMMAND_TOPIC, command({"command": "list"}, correlationid="c-1"))
        reply = await take(default)
        assert reply.extensions["correlationid"] == "c-1"
        assert orjson.loads(reply.data)["command"] == "list"

        broker.publish(
            COMMAND_TOPIC,
            command({"command": "nope"}, correlationid="c-2", replytopic="my.replies"),
        )
        routed = await take(custom)
        assert routed.extensions["correlationid"] == "c-2"
        assert orjson.loads(routed.data) == {
            "command": "nope",
            "success": False,
            "message": "Unknown command: nope",
        }

        broker.publish(COMMAND_TOPIC, command(b"{oops"))
        uncorrelated = await take(default)
        assert "correlationid" not in uncorrelated.extensions
        assert orjson.loads(uncorrelated.data)["message"] == "Failed to parse command JSON"
        assert default.get_nowait() is None and custom.get_nowait() is None
        await wm.close()

    loop_thread.run(scenario())


def test_a_stopped_worker_consumes_nothing(loop_thread: LoopThread, broker: Broker) -> None:
    async def scenario() -> None:
        wm = make(broker)
        replies = broker.subscribe(REPLY_TOPIC)
        worker = wm.create_worker(code=EMBEDDED, mime_type=DOTNET_MIME, topics=[COMMAND_TOPIC])
        broker.publish(COMMAND_TOPIC, command({"command": "list"}, correlationid="before"))
        await wm.start_worker(worker.id)
        await wm.stop_worker(worker.id)
        broker.publish(COMMAND_TOPIC, command({"command": "list"}, correlationid="stopped"))
        await wm.start_worker(worker.id)
        broker.publish(COMMAND_TOPIC, command({"command": "list"}, correlationid="after"))
        assert (await take(replies)).extensions["correlationid"] == "after"
        await wm.close()
        assert replies.get_nowait() is None

    loop_thread.run(scenario())


def test_workers_on_one_topic_compete_for_commands(loop_thread: LoopThread, broker: Broker) -> None:
    async def scenario() -> None:
        wm = make(broker)
        replies = broker.subscribe(REPLY_TOPIC)
        ids = []
        for _ in range(2):
            worker = wm.create_worker(code=EMBEDDED, mime_type=DOTNET_MIME, topics=[COMMAND_TOPIC])
            await wm.start_worker(worker.id)
            ids.append(worker.id)
        for n in range(20):
            broker.publish(COMMAND_TOPIC, command({"command": "list"}, correlationid=str(n)))
        got = [await take(replies) for _ in range(20)]
        # Each command answered exactly once, and both workers took part.
        assert sorted(int(e.extensions["correlationid"]) for e in got) == list(range(20))
        assert {e.source.rsplit("/", 1)[1] for e in got} == set(ids)
        await asyncio.sleep(0)
        assert replies.get_nowait() is None
        await wm.close()

    loop_thread.run(scenario())
