"""The assembled platform end to end: gateway (httpx) + sidecar (dapr SDK) + WSM + the Alpaca feed.

These tests walk the seed flow exactly as the CLI will: workers through the gateway, controller
commands and replies through the Dapr sidecar with a ``correlationid``, Alpaca frames through a
streaming subscription.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
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
