"""WorkManager knobs of the newer platform (issue 12): dropped commands, start on create, config
stamping, tag filters and the lifecycle families, through the broker and the controller worker."""

from __future__ import annotations

import asyncio
import uuid
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
    Worker,
    WorkerStatus,
    WorkManager,
)
from alpaca_cli.devstack.wsm import WebSocketManager

from .conftest import ScriptedServer  # type: ignore[import-not-found]  # no package for mypy

pytestmark = pytest.mark.timeout(30)

EMBEDDED = CodeSource(url=EMBEDDED_URL)
PREFIX = "com.virtufin.workmanager.lifecycle."


def command(data: dict[str, Any], **extensions: Any) -> CloudEvent:
    return CloudEvent(
        id=str(uuid.uuid4()),
        source="test",
        type="com.example.command",
        topic=COMMAND_TOPIC,
        data=orjson.dumps(data),
        extensions=extensions,
    )


async def take(sub: BrokerSubscription) -> CloudEvent:
    delivery = await asyncio.wait_for(sub.get(), 10)
    sub.ack(delivery)
    return delivery.event


def controller_worker(wm: WorkManager, **kwargs: Any) -> Worker:
    return wm.create_worker(code=EMBEDDED, mime_type=DOTNET_MIME, topics=[COMMAND_TOPIC], **kwargs)


def test_the_first_n_commands_are_acked_and_dropped_without_a_reply(
    loop_thread: LoopThread, broker: Broker, scripted_server: ScriptedServer
) -> None:
    async def scenario() -> None:
        wsm = WebSocketManager(broker)
        wm = WorkManager(broker, wsm, drop_commands=2)
        replies = broker.subscribe(REPLY_TOPIC)
        worker = controller_worker(wm)
        await wm.start_worker(worker.id)
        create = {"command": "create", "url": scripted_server.url}
        broker.publish(COMMAND_TOPIC, command(create, correlationid="c1"))
        broker.publish(COMMAND_TOPIC, command({"command": "list"}, correlationid="c2"))
        broker.publish(COMMAND_TOPIC, command({"command": "list"}, correlationid="c3"))
        # One worker handles the topic in order: had c1 or c2 been answered (or redelivered,
        # which a retry does at the front of the queue), that reply would come first.
        first = await take(replies)
        assert first.extensions["correlationid"] == "c3"
        assert orjson.loads(first.data)["connections"] == []  # the dropped create made nothing
        broker.publish(COMMAND_TOPIC, command(create, correlationid="c4"))
        created = await take(replies)
        assert created.extensions["correlationid"] == "c4"
        assert [r.id for r in wsm.list()] == [orjson.loads(created.data)["id"]]
        await wm.close()
        await wsm.close()

    loop_thread.run(scenario())


def test_start_on_create_leaves_a_new_worker_running_and_start_stays_idempotent(
    loop_thread: LoopThread, broker: Broker
) -> None:
    async def scenario() -> None:
        wm = WorkManager(broker, WebSocketManager(broker), start_on_create=True)
        replies = broker.subscribe(REPLY_TOPIC)
        worker = await wm.create(
            code=EMBEDDED, mime_type=DOTNET_MIME, topics=[COMMAND_TOPIC], tags={"a": "1"}
        )
        assert worker.status is WorkerStatus.RUNNING
        broker.publish(COMMAND_TOPIC, command({"command": "list"}, correlationid="c1"))
        assert (await take(replies)).extensions["correlationid"] == "c1"
        await wm.start_worker(worker.id)
        assert wm.get(worker.id).status is WorkerStatus.RUNNING
        # A package this process cannot run: created all the same, stopped; StartWorker says why.
        other = await wm.create(
            code=CodeSource(content=b"not a zip"), mime_type=DOTNET_MIME, topics=["t"]
        )
        assert other.status is WorkerStatus.STOPPED
        with pytest.raises(RpcError) as exc:
            await wm.start_worker(other.id)
        assert exc.value.status is Status.FAILED_PRECONDITION
        await wm.close()

    loop_thread.run(scenario())


def test_without_start_on_create_create_leaves_the_worker_stopped(
    loop_thread: LoopThread, broker: Broker
) -> None:
    async def scenario() -> None:
        wm = WorkManager(broker, WebSocketManager(broker))
        worker = await wm.create(code=EMBEDDED, mime_type=DOTNET_MIME, topics=[COMMAND_TOPIC])
        assert worker.status is WorkerStatus.STOPPED

    loop_thread.run(scenario())


class RecordingWorkManager(WorkManager):
    """Records every input event as the worker receives it, then handles it as usual."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[CloudEvent] = []

    async def _handle(self, worker: Worker, controller: Any, event: CloudEvent) -> dict[str, Any]:
        self.seen.append(event)
        return await super()._handle(worker, controller, event)


def test_config_is_stamped_on_every_input_event_without_overriding_its_own_attributes(
    loop_thread: LoopThread, broker: Broker
) -> None:
    async def scenario() -> None:
        wm = RecordingWorkManager(broker, WebSocketManager(broker))
        replies = broker.subscribe(REPLY_TOPIC)
        config = {"world": "crypto", "correlationid": "from-config"}
        worker = controller_worker(wm, config=config)
        await wm.start_worker(worker.id)
        broker.publish(COMMAND_TOPIC, command({"command": "list"}, correlationid="own"))
        broker.publish(COMMAND_TOPIC, command({"command": "list"}))
        first, second = await take(replies), await take(replies)
        assert first.extensions["correlationid"] == "own"
        assert second.extensions["correlationid"] == "from-config"  # stamped, so it travels
        assert [e.extensions["world"] for e in wm.seen] == ["crypto", "crypto"]
        assert "world" not in first.extensions  # stamped on input, not on replies
        await wm.close()

    loop_thread.run(scenario())


@pytest.mark.parametrize("key", ["api_host", "World", "id", "type", "a" * 21, ""])
def test_config_keys_must_be_cloudevent_attribute_names(
    loop_thread: LoopThread, broker: Broker, key: str
) -> None:
    wm = loop_thread.call(WorkManager, broker, WebSocketManager(broker))
    with pytest.raises(RpcError) as exc:
        controller_worker(wm, config={key: "v"})
    assert exc.value.status is Status.INVALID_ARGUMENT
    assert "Config key" in exc.value.message
    assert wm.list_workers() == []


def test_tag_filters_are_and_matched(loop_thread: LoopThread, broker: Broker) -> None:
    wm = loop_thread.call(WorkManager, broker, WebSocketManager(broker))
    mine = controller_worker(wm, tags={"owner": "me", "run": "1"})
    other_run = controller_worker(wm, tags={"owner": "me", "run": "2"})
    controller_worker(wm, tags={"owner": "you", "run": "1"})
    assert len(wm.list_workers()) == 3
    assert [w.id for w in wm.list_workers([("owner", "me")])] == [mine.id, other_run.id]
    assert [w.id for w in wm.list_workers([("owner", "me"), ("run", "1")])] == [mine.id]
    assert wm.list_workers([("owner", "me"), ("run", "3")]) == []
    assert wm.list_workers([("missing", "")]) == []
    with pytest.raises(RpcError) as exc:
        wm.list_workers([("", "me")])
    assert exc.value.status is Status.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("classic", ["registered", "starting", "online", "stopping", "stopped"]),
        ("reference", ["registered", "starting", "online", "stopping", "stopped"]),
        ("spec", ["worker.created", "worker.started", "worker.stopped"]),
    ],
)
def test_each_lifecycle_family_names_a_workers_life(
    loop_thread: LoopThread, broker: Broker, family: Any, expected: list[str]
) -> None:
    async def scenario() -> None:
        wm = WorkManager(
            broker, WebSocketManager(broker), lifecycle_names=family, replica_id="replica-1"
        )
        life = broker.subscribe(LIFECYCLE_TOPIC)
        worker = controller_worker(wm)
        await wm.start_worker(worker.id)
        await wm.stop_worker(worker.id)
        events = [await take(life) for _ in expected]
        assert [e.type.removeprefix(PREFIX) for e in events] == expected
        assert all(e.type.startswith(PREFIX) for e in events)
        data = [orjson.loads(e.data) for e in events]
        if family == "spec":
            assert data[0] == {
                "worker_id": worker.id,
                "replica_id": "replica-1",
                "topic": COMMAND_TOPIC,
            }
        else:
            assert data[0]["worker_id"] == worker.id and data[0]["topics"] == [COMMAND_TOPIC]
        broken = controller_worker(wm)
        broken.code = CodeSource(content=b"not a zip")
        with pytest.raises(RpcError):
            await wm.start_worker(broken.id)
        failed = [await take(life) for _ in range(2 if family == "spec" else 3)][-1]
        assert failed.type == PREFIX + ("worker.error" if family == "spec" else "failed")
        assert "Engine error" in orjson.loads(failed.data)["error_message"]

    loop_thread.run(scenario())
