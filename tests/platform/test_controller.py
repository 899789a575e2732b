"""The controller command/reply RPC, against the devstack sidecar and a scripted worker."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from alpaca_cli.errors import CommandRefused, ExitCode, Interrupted, ReplyTimeout
from alpaca_cli.platform.controller import (
    CONNECTION_NOT_FOUND,
    NOT_CONNECTED,
    OWNED_ELSEWHERE,
    ControllerClient,
    Reply,
    says,
)
from alpaca_cli.platform.pubsub import PubsubClient
from alpaca_cli.platform.records import ConnectionInfo, parse_connection
from alpaca_cli.platform.records import connection_status as normalize_status
from tests.support_pubsub import Sidecar

COMMANDS = "cmd.test"
REPLIES = "reply.test"


class ScriptedWorker:
    """Answers commands like the controller would; ``silent`` commands get no reply."""

    def __init__(self, client: PubsubClient) -> None:
        self.client = client
        self.received: list[dict[str, Any]] = []
        self.sub = client.subscribe(COMMANDS)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def reply(self, correlation_id: str, body: dict[str, Any]) -> None:
        self.client.publish(
            REPLIES, body, type="reply", extensions={"correlationid": correlation_id}
        )

    def serve(self) -> None:
        for event in self.sub:
            doc = orjson.loads(event.data)
            self.received.append({"doc": doc, "extensions": event.extensions})
            cid = event.extensions.get("correlationid", "")
            command = doc["command"]
            if command == "list" and doc.get("silent"):
                continue
            # A reply to somebody else's command comes first: it must be ignored.
            self.reply("someone-else", {"command": command, "success": True, "id": "WRONG"})
            if command == "create":
                self.reply(
                    cid,
                    {"command": "create", "success": True, "id": "conn-9", "message": "connected"},
                )
            elif command == "disconnect":
                self.reply(
                    cid,
                    {"command": "disconnect", "success": False, "message": "Connection not found"},
                )
            elif command == "list":
                self.reply(
                    cid,
                    {
                        "command": "list",
                        "success": True,
                        "connections": [
                            {"id": "a", "url": "ws://a", "status": "connected", "topic": "t"},
                            {
                                "Id": "b",
                                "Url": "ws://b",
                                "Status": "CONNECTION_STATUS_RECONNECTING",
                            },
                            {
                                "connectionId": "c",
                                "status": 4,
                                "instanceId": "i-1",
                                "createdAt": "2026-01-01T00:00:00Z",
                            },
                        ],
                    },
                )
            else:
                self.reply(
                    cid, {"command": command, "success": True, "id": doc.get("id"), "message": "ok"}
                )

    def close(self) -> None:
        self.sub.close()


@pytest.fixture
def controller(sidecar: Sidecar) -> Iterator[tuple[ControllerClient, ScriptedWorker]]:
    with PubsubClient(sidecar.settings) as worker_side, PubsubClient(sidecar.settings) as ours:
        worker = ScriptedWorker(worker_side)
        with ControllerClient(ours, command_topic=COMMANDS, reply_topic=REPLIES, timeout=10) as ctl:
            yield ctl, worker
        worker.close()


def test_create_returns_the_connection_id_of_our_reply_only(controller: Any) -> None:
    ctl, worker = controller
    assert ctl.create("wss://example/v1beta3/crypto/us") == "conn-9"
    sent = worker.received[-1]
    assert sent["doc"] == {
        "command": "create",
        "url": "wss://example/v1beta3/crypto/us",
        "auto_reconnect": True,
    }
    assert len(sent["extensions"]["correlationid"]) >= 16


def test_each_command_gets_a_fresh_correlation_id(controller: Any) -> None:
    ctl, worker = controller
    ctl.create("ws://x", auto_reconnect=False)
    ctl.publish("conn-9", "alpaca-ticks")
    ctl.stop_publish("conn-9")
    ids = [r["extensions"]["correlationid"] for r in worker.received]
    assert len(set(ids)) == len(ids) == 3
    assert worker.received[0]["doc"]["auto_reconnect"] is False
    assert worker.received[1]["doc"] == {
        "command": "publish",
        "id": "conn-9",
        "topic": "alpaca-ticks",
    }
    assert worker.received[2]["doc"] == {"command": "stop_publish", "id": "conn-9"}


def test_send_raw_sends_base64(controller: Any) -> None:
    ctl, worker = controller
    ctl.send_raw("conn-9", b'{"action":"subscribe"}')
    doc = worker.received[-1]["doc"]
    assert base64.b64decode(doc["message"]) == b'{"action":"subscribe"}'
    assert doc["content_type"] == "application/json"


def test_success_false_is_command_refused_with_the_controllers_message(controller: Any) -> None:
    ctl, _ = controller
    with pytest.raises(CommandRefused) as info:
        ctl.disconnect("nope")
    assert "Connection not found" in str(info.value)
    assert info.value.exit_code == ExitCode.REFUSED


def test_list_parses_records_leniently(controller: Any) -> None:
    ctl, _ = controller
    records = ctl.list()
    assert [(r.id, r.status) for r in records] == [
        ("a", "CONNECTED"),
        ("b", "RECONNECTING"),
        ("c", "DISCONNECTED"),
    ]
    assert records[0].topic == "t"
    assert records[2].instance_id == "i-1"
    assert records[2].created_at == "2026-01-01T00:00:00Z"


def test_no_reply_is_a_reply_timeout(sidecar: Sidecar) -> None:
    with PubsubClient(sidecar.settings) as ours:
        ctl = ControllerClient(
            ours, command_topic="cmd.nobody", reply_topic="reply.nobody", timeout=0.5
        )
        with pytest.raises(ReplyTimeout) as info:
            ctl.stop()
        ctl.close()
    assert info.value.exit_code == ExitCode.TIMEOUT
    assert "'stop'" in str(info.value) and "alpaca-md deploy" in str(info.value)


def test_a_late_reply_to_a_timed_out_command_does_not_answer_the_next(controller: Any) -> None:
    ctl, _ = controller
    ctl.timeout = 0.5
    with pytest.raises(ReplyTimeout):
        ctl.call("list", silent=True)
    ctl.timeout = 10
    assert ctl.create("ws://x") == "conn-9"


def test_an_interrupt_ends_the_wait_for_a_reply(controller: Any) -> None:
    """Ctrl+C during a reply wait: ``run`` must start teardown now, not after ``--timeout``."""
    ctl, worker = controller
    ctl.timeout = 600  # sitting the timeout out would blow the test's own timeout
    sent = len(worker.received)

    def interrupt_once_the_command_is_out() -> None:
        while len(worker.received) == sent:
            time.sleep(0.01)
        ctl.interrupt.set()

    threading.Thread(target=interrupt_once_the_command_is_out, daemon=True).start()
    with pytest.raises(Interrupted) as info:
        ctl.call("list", silent=True)
    assert info.value.exit_code == ExitCode.INTERRUPTED
    assert "'list'" in str(info.value)


def test_nothing_is_sent_once_interrupted(controller: Any) -> None:
    ctl, worker = controller
    ctl.interrupt.set()
    with pytest.raises(Interrupted):
        ctl.create("ws://never")
    ctl.interrupt.clear()
    assert ctl.create("ws://x") == "conn-9"  # replies in order: the refused one never went out
    assert [r["doc"].get("url") for r in worker.received] == ["ws://x"]


def test_a_reply_already_on_its_way_still_counts_after_an_interrupt(controller: Any) -> None:
    """A ``create`` whose reply is late must still return its id, or the connection would be
    left on the platform without the state file (and so teardown) knowing it."""
    ctl, worker = controller

    def interrupt_as_soon_as_the_worker_sees_it() -> None:
        while not worker.received:
            time.sleep(0.001)
        ctl.interrupt.set()

    threading.Thread(target=interrupt_as_soon_as_the_worker_sees_it, daemon=True).start()
    assert ctl.create("ws://x") == "conn-9"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CONNECTED", "CONNECTED"),
        ("connected", "CONNECTED"),
        ("Reconnecting", "RECONNECTING"),
        ("CONNECTION_STATUS_ERROR", "ERROR"),
        ("connection-status-disconnected", "DISCONNECTED"),
        (2, "CONNECTED"),
        ("1", "CONNECTING"),
        (99, "STATUS_99"),
        (None, "UNSPECIFIED"),
        ("weird", "WEIRD"),
    ],
)
def test_normalize_status(raw: Any, expected: str) -> None:
    assert normalize_status(raw) == expected


def test_parse_connection_defaults_missing_keys() -> None:
    assert parse_connection({"id": "x"}) == ConnectionInfo(
        id="x", url="", status="UNSPECIFIED", topic="", instance_id="", created_at=None, tags={}
    )


def _wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_one_controller_keeps_one_reply_subscription_for_every_command(sidecar: Sidecar) -> None:
    """One invocation (``run``) sends every step's commands through the runtime's one
    controller: beside a real sidecar a second subscription on the reply topic would split the
    replies or be refused."""
    with PubsubClient(sidecar.settings) as worker_side, PubsubClient(sidecar.settings) as ours:
        worker = ScriptedWorker(worker_side)
        ctl = ControllerClient(ours, command_topic=COMMANDS, reply_topic=REPLIES, timeout=10)
        try:
            assert ctl.create("ws://a") == "conn-9"
            assert ctl.create("ws://b") == "conn-9"
            assert sidecar.broker.subscriber_count(REPLIES) == 1
            assert ctl.create("ws://c") == "conn-9"
            assert sidecar.broker.subscriber_count(REPLIES) == 1
        finally:
            ctl.close()
            ctl.close()  # idempotent
        assert _wait_until(lambda: sidecar.broker.subscriber_count(REPLIES) == 0)
        worker.close()


def test_threads_sharing_one_controller_take_turns(sidecar: Sidecar) -> None:
    with PubsubClient(sidecar.settings) as worker_side, PubsubClient(sidecar.settings) as ours:
        worker = ScriptedWorker(worker_side)
        shared = ControllerClient(ours, command_topic=COMMANDS, reply_topic=REPLIES, timeout=10)
        clients = [shared] * 3
        answers: list[str] = []
        failures: list[BaseException] = []

        def use(ctl: ControllerClient) -> None:
            try:
                for n in range(4):
                    answers.append(ctl.create(f"ws://{id(ctl)}/{n}"))
            except BaseException as exc:  # reported by the assertion below
                failures.append(exc)

        threads = [threading.Thread(target=use, args=(ctl,)) for ctl in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        for ctl in clients:
            ctl.close()
        worker.close()
    assert failures == []
    assert answers == ["conn-9"] * 12


class ScriptedCalls(ControllerClient):
    """A controller whose :meth:`call` answers from a script (no bus): the retry policy of
    :meth:`call_on` on its own. Each script entry is a message to refuse with, or None for a
    success."""

    def __init__(self, script: list[str | None]) -> None:
        super().__init__(
            None,  # type: ignore[arg-type]  # never used: call is scripted
            command_topic=COMMANDS,
            reply_topic=REPLIES,
            timeout=1.0,
        )
        self.script = script
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(self, command: str, **arguments: Any) -> Any:
        self.calls.append((command, arguments))
        message = self.script.pop(0) if self.script else None
        if message is not None:
            raise CommandRefused(f"the controller refused '{command}': {message}.")
        return Reply(command=command, data={"success": True})


OWNED = "Connection owned by different instance: wsm-2"


def test_a_command_on_a_connection_rides_out_a_rolling_update() -> None:
    ctl = ScriptedCalls([OWNED, OWNED.upper(), None])
    ctl.publish("conn-1", "ticks")
    assert [c for c, _ in ctl.calls] == ["publish"] * 3
    assert all(args == {"id": "conn-1", "topic": "ticks"} for _, args in ctl.calls)


def test_owned_elsewhere_for_longer_than_the_wait_is_one_clear_error() -> None:
    ctl = ScriptedCalls([OWNED] * 100)
    ctl.owned_elsewhere_wait = 0.6
    with pytest.raises(CommandRefused) as info:
        ctl.send_raw("conn-1", b"{}")
    text = str(info.value)
    assert "'send_raw' on connection conn-1 kept failing for 0.6 s" in text
    assert "wsm-2" in text and "rolling update" in (info.value.hint or "")
    assert info.value.exit_code == ExitCode.REFUSED
    assert len(ctl.calls) >= 2


def test_other_refusals_are_not_retried() -> None:
    ctl = ScriptedCalls(["WebSocket is not connected"])
    with pytest.raises(CommandRefused):
        ctl.disconnect("conn-1")
    assert len(ctl.calls) == 1


def test_an_interrupt_ends_the_rolling_update_wait() -> None:
    ctl = ScriptedCalls([OWNED] * 100)
    ctl.interrupt.set()
    with pytest.raises(Interrupted):
        ctl.stop_publish("conn-1")
    assert len(ctl.calls) == 1


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ("Websocket is not connected", NOT_CONNECTED),
        ("WebSocket is not connected", NOT_CONNECTED),
        ("WEBSOCKET IS NOT CONNECTED", NOT_CONNECTED),
        ("Connection not found", CONNECTION_NOT_FOUND),
        ("connection NOT FOUND", CONNECTION_NOT_FOUND),
        ("Connection owned by different instance: x", OWNED_ELSEWHERE),
    ],
)
def test_error_texts_are_matched_case_insensitively(message: str, text: str) -> None:
    assert says(CommandRefused(f"the controller refused 'x': {message}."), text)
    assert not says(CommandRefused("the controller refused 'x': Topic is required."), text)
