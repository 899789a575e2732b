"""The newer-platform knobs on the assembled platform: ``StackConfig`` fields, reached over HTTP
invoke-json (and the broker/controller path), and the ``dev up`` options that set them.

Waits here poll the platform until a state shows (a 1 s TTL running out, an ownership window
closing): the test timeout is the only clock, and no duration is asserted.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from alpaca_cli.devstack.broker import BrokerSubscription, CloudEvent
from alpaca_cli.devstack.controller import COMMAND_TOPIC, EMBEDDED_URL, REPLY_TOPIC
from alpaca_cli.devstack.loopthread import LoopThread
from alpaca_cli.devstack.stack import EmbeddedPlatform, StackConfig, start_in_thread

from .conftest import ScriptedServer  # type: ignore[import-not-found]  # no package for mypy

pytestmark = pytest.mark.timeout(60)

DOTNET = "application/x-dotnet-dll"
WSM = "websocketmanager"
WM = "workmanager"


@contextlib.contextmanager
def platform_with(**knobs: Any) -> Iterator[tuple[EmbeddedPlatform, httpx.Client]]:
    """A started platform without a feed (scripted upstreams instead) and a gateway client."""
    config = StackConfig.ephemeral(feed=False, reconnect_base_delay=0.05, **knobs)
    with (
        start_in_thread(config) as platform,
        httpx.Client(base_url=platform.gateway_url, timeout=15) as client,
    ):
        yield platform, client


def call(client: httpx.Client, service: str, method: str, request: Any = None) -> dict[str, Any]:
    """One invoke-json call: the answer, with ``data`` decoded on success."""
    body = {"service": service, "method": method, "request_data": json.dumps(request or {})}
    response = client.post("/v1/gateway/invoke-json", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    if answer["success"]:
        answer["data"] = json.loads(answer["response_data"])
    return answer


def ok(client: httpx.Client, service: str, method: str, request: Any = None) -> dict[str, Any]:
    answer = call(client, service, method, request)
    assert answer["success"] is True, answer
    data: dict[str, Any] = answer["data"]
    return data


def connections(client: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(client, WSM, "List").get("connections", [])
    return found


def until(check: Callable[[], bool]) -> None:
    """Poll ``check`` until it holds (the test's timeout guards against forever)."""
    while not check():
        time.sleep(0.05)


def create_worker(client: httpx.Client, **extra: Any) -> dict[str, Any]:
    request = {
        "code_source": {"url": EMBEDDED_URL},
        "mime_type": DOTNET,
        "topics": [COMMAND_TOPIC],
        **extra,
    }
    return call(client, WM, "CreateWorker", request)


def workers(client: httpx.Client, filters: list[dict[str, str]] | None = None) -> list[Any]:
    request = {"filters": filters} if filters is not None else {}
    found: list[Any] = ok(client, WM, "ListWorkers", request).get("workers", [])
    return found


def b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


# -- connection record TTL -------------------------------------------------------------------


def test_a_record_left_without_sends_drops_out_of_list_and_calls(
    scripted_server: ScriptedServer,
) -> None:
    with platform_with(connection_record_ttl=1.0) as (_, client):
        conn = ok(client, WSM, "Connect", {"url": scripted_server.url})["id"]
        send = {"id": conn, "message": b64("{}"), "content_type": "application/json"}
        ok(client, WSM, "SendRaw", send)
        until(lambda: not connections(client))
        for method, request in (
            ("SendRaw", send),
            ("StartPublish", {"id": conn, "topic": "t"}),
            ("GetTags", {"id": conn}),
            ("Disconnect", {"id": conn}),
        ):
            answer = call(client, WSM, method, request)
            assert (answer["success"], answer["status"], answer["message"]) == (
                False,
                "NOT_FOUND",
                "Connection not found",
            )
        assert len(scripted_server.connections) == 1
        assert not scripted_server.connections[0].close_code  # the socket itself stays open


# -- dropped commands, through the broker and the controller worker ----------------------------


def test_a_dropped_create_gets_no_reply_and_makes_no_connection(
    scripted_server: ScriptedServer,
) -> None:
    with platform_with(drop_commands=1) as (platform, client):
        worker = create_worker(client)["data"]["id"]
        ok(client, WM, "StartWorker", {"id": worker})
        assert platform.loop_thread is not None
        run = platform.loop_thread.run

        async def subscribe() -> BrokerSubscription:
            return platform.broker.subscribe(REPLY_TOPIC)

        replies = run(subscribe())

        async def ask(doc: dict[str, Any], correlation: str) -> dict[str, Any]:
            event = CloudEvent(
                id=str(uuid.uuid4()),
                source="test",
                type="com.example.command",
                topic=COMMAND_TOPIC,
                data=orjson.dumps(doc),
                extensions={"correlationid": correlation},
            )
            platform.broker.publish(COMMAND_TOPIC, event)
            delivery = await replies.get()
            replies.ack(delivery)
            assert delivery.event.extensions["correlationid"] == correlation
            reply: dict[str, Any] = orjson.loads(delivery.event.data)
            return reply

        create = {"command": "create", "url": scripted_server.url}
        platform.broker.publish_threadsafe(
            COMMAND_TOPIC,
            CloudEvent(
                id="dropped",
                source="test",
                type="com.example.command",
                topic=COMMAND_TOPIC,
                data=orjson.dumps(create),
                extensions={"correlationid": "first"},
            ),
        )
        # The next reply answers the next command: the first was acked and dropped.
        assert run(ask({"command": "list"}, "second"))["connections"] == []
        created = run(ask(create, "third"))
        assert [c["id"] for c in connections(client)] == [created["id"]]


# -- terminal reconnects ---------------------------------------------------------------------


def test_with_zero_reconnect_attempts_a_drop_is_final_and_disconnect_removes_it(
    loop_thread: LoopThread, scripted_server: ScriptedServer
) -> None:
    with platform_with(reconnect_attempts=0) as (_, client):
        conn = ok(client, WSM, "Connect", {"url": scripted_server.url, "auto_reconnect": True})
        loop_thread.call(scripted_server.drop_all)  # on the server's own loop
        until(lambda: connections(client)[0]["status"] == "DISCONNECTED")
        send = {"id": conn["id"], "message": b64("{}"), "content_type": "application/json"}
        refused = call(client, WSM, "SendRaw", send)
        assert (refused["status"], refused["message"]) == (
            "FAILED_PRECONDITION",
            "Websocket is not connected",
        )
        ok(client, WSM, "Disconnect", {"id": conn["id"]})
        assert connections(client) == []
        assert len(scripted_server.connections) == 1


def test_the_stack_turns_reconnect_attempts_into_a_terminal_policy() -> None:
    default = StackConfig().reconnect_policy()
    assert (default.attempts, default.exhausted.value) == (5, "ERROR")
    counted = StackConfig(reconnect_attempts=3, reconnect_base_delay=0.5).reconnect_policy()
    assert (counted.attempts, counted.base_delay, counted.exhausted.value) == (
        3,
        0.5,
        "DISCONNECTED",
    )


def test_a_dead_replica_is_reclaimed_through_the_gateway(
    loop_thread: LoopThread, scripted_server: ScriptedServer
) -> None:
    with platform_with(replica_dies_after=0.5) as (platform, client):
        conn = ok(client, WSM, "Connect", {"url": scripted_server.url, "auto_reconnect": True})
        loop_thread.run(scripted_server.wait_connections(1))
        loop_thread.run(scripted_server.connections[0].wait_closed())
        send = {"id": conn["id"], "message": b64("{}"), "content_type": "application/json"}
        refused = call(client, WSM, "SendRaw", send)
        assert refused["message"] == "Websocket is not connected"
        until(lambda: connections(client)[0]["status"] == "CONNECTED")
        [record] = connections(client)
        assert record["id"] == conn["id"] and record["instanceId"] != platform.wsm.instance_id
        ok(client, WSM, "SendRaw", send)


# -- disconnect ------------------------------------------------------------------------------


def test_disconnect_removes_the_record_even_with_auto_reconnect(
    scripted_server: ScriptedServer,
) -> None:
    with platform_with() as (_, client):
        conn = ok(client, WSM, "Connect", {"url": scripted_server.url, "auto_reconnect": True})
        ok(client, WSM, "Disconnect", {"id": conn["id"]})
        assert connections(client) == []
        again = call(client, WSM, "Disconnect", {"id": conn["id"]})
        assert (again["status"], again["message"]) == ("NOT_FOUND", "Connection not found")


# -- lifecycle names -------------------------------------------------------------------------


def test_spec_lifecycle_names_reach_both_services(scripted_server: ScriptedServer) -> None:
    with platform_with(lifecycle_names="spec") as (platform, client):
        assert platform.loop_thread is not None
        run = platform.loop_thread.run

        async def subscribe(topic: str) -> BrokerSubscription:
            return platform.broker.subscribe(topic)

        wsm_life = run(subscribe("websocketmanager.lifecycle"))
        wm_life = run(subscribe("workmanager.lifecycle"))
        worker = create_worker(client)["data"]["id"]
        conn = ok(client, WSM, "Connect", {"url": scripted_server.url})["id"]

        async def take(sub: BrokerSubscription) -> CloudEvent:
            delivery = await sub.get()
            sub.ack(delivery)
            return delivery.event

        created = run(take(wm_life))
        assert created.type == "com.virtufin.workmanager.lifecycle.worker.created"
        assert orjson.loads(created.data) == {
            "worker_id": worker,
            "replica_id": platform.workmanager.replica_id,
            "topic": COMMAND_TOPIC,
        }
        connected = run(take(wsm_life))
        assert connected.type == "com.virtufin.websocketmanager.lifecycle.connection.connected"
        assert orjson.loads(connected.data)["connection_id"] == conn


# -- rolling-update ownership ----------------------------------------------------------------


def test_calls_are_refused_while_owned_elsewhere_and_succeed_once_it_passes(
    scripted_server: ScriptedServer,
) -> None:
    with platform_with(owned_elsewhere=1.0) as (platform, client):
        conn = ok(client, WSM, "Connect", {"url": scripted_server.url})["id"]
        assert [c["id"] for c in connections(client)] == [conn]
        request = {"id": conn, "topic": "ticks"}
        answers = [call(client, WSM, "StartPublish", request)]
        refused = answers[0]
        assert (refused["success"], refused["status"]) == (False, "UNAVAILABLE")
        assert refused["message"] == (
            f"Connection owned by different instance: {platform.wsm.peer_instance_id}"
        )
        while not answers[-1]["success"]:  # ride it out, as a client retrying with backoff
            time.sleep(0.1)
            answers.append(call(client, WSM, "StartPublish", request))
        assert connections(client)[0]["topic"] == "ticks"


# -- CreateWorker: duplicates, start on create, config, filters ------------------------------


def test_a_duplicated_create_answers_the_second_id_and_leaves_an_extra_worker() -> None:
    with platform_with(duplicate_create=True) as (_, client):
        tags = {"owner": "alpaca-md", "run": "r1"}
        answered = create_worker(client, tags=tags)["data"]["id"]
        first, second = workers(client)
        assert second["id"] == answered and first["id"] != answered
        assert first["tags"] == second["tags"] == tags
        assert [w["id"] for w in workers(client, [{"key": "run", "value": "r1"}])] == [
            first["id"],
            answered,
        ]
        ok(client, WM, "DeleteWorker", {"id": first["id"]})
        assert [w["id"] for w in workers(client)] == [answered]


def test_start_on_create_answers_with_a_running_worker() -> None:
    with platform_with(start_on_create=True) as (_, client):
        worker = create_worker(client)["data"]["id"]
        [listed] = workers(client)
        assert (listed["id"], listed["status"]) == (worker, "RUNNING")
        ok(client, WM, "StartWorker", {"id": worker})  # still idempotent


def test_list_workers_filters_and_create_config_over_http() -> None:
    with platform_with() as (_, client):
        mine = create_worker(client, tags={"owner": "me", "run": "1"}, config={"world": "w"})
        assert mine["success"] is True, mine
        create_worker(client, tags={"owner": "me", "run": "2"})
        create_worker(client, tags={"owner": "you"})
        both = [{"key": "owner", "value": "me"}, {"key": "run", "value": "1"}]
        assert [w["id"] for w in workers(client, both)] == [mine["data"]["id"]]
        assert len(workers(client, [{"key": "owner", "value": "me"}])) == 2
        assert len(workers(client)) == 3
        bad = create_worker(client, config={"api_host": "x"})
        assert (bad["success"], bad["status"]) == (False, "INVALID_ARGUMENT")
        assert "api_host" in bad["message"]


def test_a_legacy_platform_rejects_filters_and_config() -> None:
    with platform_with(legacy=True) as (_, client):
        rejected = call(client, WM, "ListWorkers", {"filters": [{"key": "a", "value": "b"}]})
        assert (rejected["success"], rejected["status"]) == (False, "INVALID_ARGUMENT")
        assert "filters" in rejected["message"]
        request = {
            "code_source": {"url": EMBEDDED_URL},
            "mime_type": DOTNET,
            "topic": COMMAND_TOPIC,
            "config": {"a": "b"},
        }
        no_config = call(client, WM, "CreateWorker", request)
        assert (no_config["success"], no_config["status"]) == (False, "INVALID_ARGUMENT")
        assert "config" in no_config["message"]


# -- connection tags over invoke-json --------------------------------------------------------


def test_connection_tags_over_invoke_json(scripted_server: ScriptedServer) -> None:
    with platform_with() as (_, client):
        conn = ok(client, WSM, "Connect", {"url": scripted_server.url, "tags": {"owner": "me"}})
        cid = conn["id"]
        assert connections(client)[0]["tags"] == {"owner": "me"}
        assert ok(client, WSM, "SetTag", {"id": cid, "key": "world", "value": "crypto"}) == {}
        assert ok(client, WSM, "GetTag", {"id": cid, "key": "world"}) == {"value": "crypto"}
        assert ok(client, WSM, "GetTag", {"id": cid, "key": "nope"}) == {}
        ok(client, WSM, "SetTag", {"id": cid, "key": "owner", "value": ""})
        assert ok(client, WSM, "GetTags", {"id": cid}) == {"tags": {"world": "crypto"}}
        ok(client, WSM, "SetTags", {"id": cid, "tags": {"publishing": "ticks"}})
        assert connections(client)[0]["tags"] == {"publishing": "ticks"}
        ok(client, WSM, "SetTags", {"id": cid, "tags": {}})
        assert ok(client, WSM, "GetTags", {"id": cid}) == {}
        too_many = call(
            client, WSM, "SetTags", {"id": cid, "tags": {str(i): "v" for i in range(51)}}
        )
        assert (too_many["status"], too_many["message"]) == (
            "INVALID_ARGUMENT",
            "Too many tags: 51 (at most 50)",
        )
        long_value = call(client, WSM, "SetTag", {"id": cid, "key": "k", "value": "v" * 1025})
        assert long_value["status"] == "INVALID_ARGUMENT"
        unknown = call(client, WSM, "SetTag", {"id": "nope", "key": "k", "value": "v"})
        assert (unknown["status"], unknown["message"]) == ("NOT_FOUND", "Connection not found")


# -- readiness without API keys ------------------------------------------------------------


def test_a_gateway_without_keys_can_be_unready_yet_serve() -> None:
    with platform_with(unhealthy_without_keys=True) as (_, client):
        health = client.get("/health")
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "Unhealthy"
        assert body["entries"]["api-keys"]["status"] == "Unhealthy"
        assert body["entries"]["dapr"]["status"] == "Healthy"
        assert workers(client) == []  # still serving
    with platform_with(unhealthy_without_keys=True, api_key="k") as (_, client):
        assert client.get("/health").status_code == 200  # keys configured: ready


# -- Connect result spellings ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["id", "connection_id", "connectionId"])
def test_connect_answers_the_id_under_the_chosen_key(
    scripted_server: ScriptedServer, key: str
) -> None:
    with platform_with(connect_id_key=key) as (_, client):
        answer = ok(client, WSM, "Connect", {"url": scripted_server.url})
        assert set(answer) == {key, "status"} and answer["status"] == "CONNECTED"
        assert [c["id"] for c in connections(client)] == [answer[key]]  # List keeps "id"


# -- dev up options --------------------------------------------------------------------------


def test_dev_up_refuses_unknown_choices() -> None:
    from typer.testing import CliRunner

    from alpaca_cli.main import app

    result = CliRunner().invoke(app, ["dev", "up", "--lifecycle-names", "newest"])
    assert result.exit_code == 2
    assert "--lifecycle-names newest: give one of classic, spec, reference." in result.stderr
    result = CliRunner().invoke(app, ["dev", "up", "--connect-id-key", "uuid"])
    assert result.exit_code == 2
    assert "--connect-id-key uuid: give one of id, connection_id, connectionId." in result.stderr
    result = CliRunner().invoke(app, ["dev", "up", "--frame-format", "raw"])
    assert result.exit_code == 2
    assert "--frame-format raw: give one of flat, envelope, bare." in result.stderr


def test_dev_up_options_reach_the_platform() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    ports = ["--gateway-port", "0", "--dapr-http-port", "0", "--dapr-grpc-port", "0"]
    ports += ["--feed-port", "0", "--rate", "5"]
    knobs = [
        *("--connection-record-ttl", "1", "--drop-commands", "2", "--reconnect-attempts", "0"),
        *("--lifecycle-names", "reference", "--owned-elsewhere", "0.5"),
        *("--duplicate-create", "--start-on-create", "--unhealthy-without-keys"),
        *("--replica-dies-after", "60", "--frame-format", "bare"),
        *("--connect-id-key", "connectionId"),
    ]
    with subprocess.Popen(
        [sys.executable, "-m", "alpaca_cli", "dev", "up", "--exit-with-stdin", *ports, *knobs],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            announced = []
            for line in proc.stderr:
                announced.append(line)
                if "ready." in line:
                    break
            [knob_line] = [line for line in announced if "newer-platform" in line]
            assert knob_line.split(": ", 2)[2].split() == knobs
            exported: dict[str, str] = {}
            while "VIRTUFIN_API_URL" not in exported:
                key, _, value = proc.stdout.readline().removeprefix("export ").partition("=")
                exported[key] = value.strip()
            with httpx.Client(base_url=exported["VIRTUFIN_API_URL"], timeout=15) as client:
                answered = create_worker(client)["data"]["id"]
                listed = workers(client)
                assert [w["status"] for w in listed] == ["RUNNING", "RUNNING"]
                assert listed[1]["id"] == answered
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
