"""The streaming loop's healing logic, driven by scripted frames and a fake clock (no I/O)."""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from alpaca_cli.alpaca.codec import decode_client_message
from alpaca_cli.alpaca.messages import Error, Level, OrderBookUpdate, Subscription, Success
from alpaca_cli.alpaca.session import ClientSession
from alpaca_cli.alpaca.supervisor import Supervisor
from alpaca_cli.errors import AlpacaAuthRefused, CommandRefused
from alpaca_cli.live.loop import Display, StreamLoop, Upstream
from alpaca_cli.live.stats import RunInfo, StreamStats
from alpaca_cli.platform.frames import FrameMeta
from alpaca_cli.stream import StreamItem

CONN = "conn-1"
NS = 1_700_000_000_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedStream:
    """Stands in for TopicStream: each ``next`` pops one scripted step.

    A step is a list of messages (one frame of ``CONN``), a ``(connection id, messages)`` pair
    (a frame of that connection), a number (advance the clock by that much and return nothing)
    or a callable (run it, return nothing).
    """

    def __init__(self, clock: Clock, script: list[Any], stop: threading.Event) -> None:
        self.clock = clock
        self.script = deque(script)
        self.stop = stop

    def pending(self) -> bool:
        return bool(self.script) and isinstance(self.script[0], (list, tuple))

    def next(self, timeout: float | None = None) -> StreamItem | None:
        if not self.script:
            self.stop.set()
            return None
        step = self.script.popleft()
        if isinstance(step, list):
            return StreamItem(NS, FrameMeta(websocket_id=CONN), b"", step)
        if isinstance(step, tuple):
            websocket_id, messages = step
            return StreamItem(NS, FrameMeta(websocket_id=websocket_id), b"", messages)
        if callable(step):
            step()
        else:
            self.clock.now += step
        return None


class Lifecycle:
    def __init__(self) -> None:
        self.events: deque[Any] = deque()

    def get(self, timeout: float | None = None) -> Any:
        return self.events.popleft() if self.events else None


class NoView:
    def tick(self, now: float, *, force: bool = False) -> None:
        pass


def book(reset: bool = False) -> OrderBookUpdate:
    return OrderBookUpdate(
        "BTC/USD", NS, bids=[Level(1.0, 1.0)], asks=[Level(2.0, 1.0)], reset=reset
    )


WELCOME = [Success("connected")]
AUTHED = [Success("authenticated")]
SUBSCRIBED = [Subscription(orderbooks=("BTC/USD",))]


def make_loop(
    script: list[Any],
    *,
    fail_sends: int = 0,
    lifecycle: Lifecycle | None = None,
    sent_at: list[float] | None = None,
    sent_to: list[str] | None = None,
    keepalive: float = 0.0,
    open_connection: Callable[[str], str] | None = None,
    replayed: list[Any] | None = None,
) -> tuple[StreamLoop, list[str], Clock]:
    """A loop over ``script``, after what run's steps consumed (``replayed``: by default
    Alpaca's answers to auth and subscribe), as the runtime's stream hands it out first."""
    script = [*(replayed if replayed is not None else [AUTHED, SUBSCRIBED]), *script]
    clock = Clock()
    stop = threading.Event()
    sent: list[str] = []
    failures = [fail_sends]

    def send(connection_id: str, payload: bytes) -> None:
        if sent_to is None:
            assert connection_id == CONN
        else:
            sent_to.append(connection_id)
        if failures[0] > 0:
            failures[0] -= 1
            raise CommandRefused("the controller refused 'send_raw': Websocket is not connected.")
        msg = decode_client_message(payload)
        sent.append(getattr(msg, "action", "auth"))
        if sent_at is not None:
            sent_at.append(clock.now)

    # Not armed here: the loop itself knows the first handshake went out through the auth step.
    session = ClientSession({"orderbooks": ["BTC/USD"]})
    stats = StreamStats(start=clock.now)
    stats.expect(["BTC/USD"])
    loop = StreamLoop(
        Supervisor(
            session,
            CONN,
            stall_limit=10.0,
            keepalive=keepalive,
            reopen=open_connection is not None,
            rng=random.Random(1),
        ),
        Upstream(
            stream=ScriptedStream(clock, script, stop),  # type: ignore[arg-type]
            send=send,
            credentials=lambda: ("key", "secret"),
            lifecycle=lifecycle,  # type: ignore[arg-type]
            open_connection=open_connection,
        ),
        Display(stats=stats, info=RunInfo(), view=NoView()),
        clock=clock,
        stop=stop,
    )
    return loop, sent, clock


def test_a_welcome_on_the_topic_triggers_auth_and_resubscribe() -> None:
    loop, sent, _ = make_loop([[book(True)], WELCOME, 0.1, AUTHED, SUBSCRIBED, [book(True)], 0.1])
    loop.run()
    assert sent == ["auth", "subscribe"]
    assert loop.stats.reconnects == 1
    assert loop.stats.resumed == 1
    assert loop.stats.books["BTC/USD"].valid


def test_books_are_stale_between_the_reconnect_and_the_next_reset() -> None:
    checked: list[bool] = []
    loop, _, _ = make_loop([])
    loop.stream.script.extend(  # type: ignore[attr-defined]
        [
            [book(True)],
            WELCOME,
            lambda: checked.append(loop.stats.books["BTC/USD"].valid),
            [book()],
            0.1,
        ]
    )
    loop.run()
    assert checked == [False]
    assert not loop.stats.books["BTC/USD"].valid  # a delta alone does not make it valid


def test_406_backs_off_before_the_next_handshake() -> None:
    times: list[float] = []
    script = [WELCOME, 0.1, [Error(406, "connection limit exceeded")], 0.1, 0.1, *[0.5] * 5]
    loop, sent, _ = make_loop(script, sent_at=times)
    loop.run()
    assert sent == ["auth", "subscribe", "auth", "subscribe"]
    # The second handshake waited at least the first backoff delay (>= 0.75 s with jitter).
    assert times[2] - times[1] >= 0.75


@pytest.mark.parametrize("code", [402, 409])
def test_refused_credentials_end_the_run(code: int) -> None:
    loop, _, _ = make_loop([WELCOME, 0.1, [Error(code, "no")]])
    with pytest.raises(AlpacaAuthRefused) as info:
        loop.run()
    assert info.value.code == code


def test_406_for_too_long_ends_the_run() -> None:
    loop, _, _ = make_loop([WELCOME, *([0.1, [Error(406, "connection limit exceeded")], 9.0] * 40)])
    with pytest.raises(AlpacaAuthRefused) as info:
        loop.run()
    assert info.value.code == 406


def test_a_failed_send_is_retried() -> None:
    loop, sent, _ = make_loop([WELCOME, 0.1, 1.1, 0.1], fail_sends=1)
    loop.run()
    assert sent == ["auth", "subscribe"]
    assert any("re-handshake failed" in e for e in loop.stats.error_log)


def test_the_lifecycle_event_is_the_fallback_when_no_welcome_shows() -> None:
    lifecycle = Lifecycle()

    class Event:
        type = "com.virtufin.websocketmanager.lifecycle.connected"
        data = orjson.dumps({"connection_id": CONN, "attempt": 1})

    class Other:
        type = "com.virtufin.websocketmanager.lifecycle.reconnecting"
        data = orjson.dumps({"connection_id": "someone-else", "attempt": 1})

    lifecycle.events.extend([Other(), Event()])
    loop, sent, _ = make_loop([0.1, 1.0, 1.5, 0.1], lifecycle=lifecycle)
    loop.run()
    assert sent == ["auth", "subscribe"]
    assert loop.stats.reconnects == 1
    assert loop.info.connection_status == "CONNECTED"


def test_a_lifecycle_event_after_the_welcome_does_not_handshake_twice() -> None:
    """The welcome and the WSM's ``connected`` event race; either order is one reconnect."""
    lifecycle = Lifecycle()

    class Event:
        type = "com.virtufin.websocketmanager.lifecycle.connected"
        data = orjson.dumps({"connection_id": CONN, "attempt": 1})

    lifecycle.events.append(Event())
    loop, sent, _ = make_loop(
        [WELCOME, 0.1, AUTHED, SUBSCRIBED, [book(True)], 1.0, 1.5, 0.1], lifecycle=lifecycle
    )
    loop.run()
    assert sent == ["auth", "subscribe"]
    assert loop.stats.reconnects == 1
    assert loop.stats.errors == 0


def test_a_silent_stream_is_reported_once_as_stalled() -> None:
    loop, _, _ = make_loop([[book(True)], 6.0, 6.0, 6.0, [book()], 0.1])
    loop.run()
    stalls = [e for e in loop.stats.error_log if e.startswith("stream stalled")]
    assert len(stalls) == 1
    assert loop.info.phase == "streaming"  # data came back


def test_frames_of_other_connections_are_ignored() -> None:
    loop, _, _ = make_loop([])
    loop.stream.script.append([book(True)])  # type: ignore[attr-defined]
    original = loop.stream.next

    def other(timeout: float | None = None) -> StreamItem | None:
        item = original(timeout)
        if item is not None:
            item.meta = FrameMeta(websocket_id="someone-else")
        return item

    loop.stream.next = other  # type: ignore[method-assign]
    loop.run()
    assert loop.stats.data_messages == 0


class LifecycleEvent:
    def __init__(self, type_: str, **data: Any) -> None:
        self.type = type_
        self.data = orjson.dumps(data)


def test_spec_named_lifecycle_events_with_camel_case_ids_trigger_the_fallback() -> None:
    lifecycle = Lifecycle()
    prefix = "com.virtufin.websocketmanager.connection."
    lifecycle.events.extend(
        [
            LifecycleEvent(prefix + "reconnecting", connectionId=CONN),
            LifecycleEvent(prefix + "connected", connectionId=CONN),
        ]
    )
    loop, sent, _ = make_loop([0.1, 1.0, 1.5, 0.1], lifecycle=lifecycle)
    loop.run()
    assert sent == ["auth", "subscribe"]
    assert loop.stats.reconnects == 1
    assert loop.info.connection_status == "CONNECTED"


def test_keepalives_resend_the_subscription_and_their_answers_are_no_data() -> None:
    loop, sent, _ = make_loop(
        [[book(True)], 5.0, [book()], 5.0, 0.1, SUBSCRIBED, 0.1], keepalive=10.0
    )
    loop.run()
    assert sent == ["subscribe"]
    assert loop.supervisor.keepalives_sent == 1 and loop.supervisor.keepalive_answers == 1
    assert loop.stats.data_messages == 2
    assert loop.stats.reconnects == 0 and loop.stats.errors == 0
    assert loop.info.phase == "streaming"


def test_a_connection_gone_for_good_is_replaced_and_handshaken() -> None:
    lifecycle = Lifecycle()
    lifecycle.events.append(
        LifecycleEvent("com.virtufin.websocketmanager.lifecycle.closed", id=CONN)
    )
    opened: list[str] = []

    def open_connection(old: str) -> str:
        opened.append(old)
        return "conn-2"

    sent_to: list[str] = []
    checked: list[bool] = []
    loop, sent, _ = make_loop(
        [], lifecycle=lifecycle, sent_to=sent_to, open_connection=open_connection
    )
    loop.stream.script.extend(  # type: ignore[attr-defined]
        [
            [book(True)],
            0.1,
            lambda: checked.append(loop.stats.books["BTC/USD"].valid),
            6.0,
            ("conn-2", WELCOME),
            ("conn-2", AUTHED),
            ("conn-2", SUBSCRIBED),
            ("conn-2", [book(True)]),
            (CONN, [book()]),  # the old connection is not ours any more
            0.1,
        ]
    )
    loop.run()
    assert checked == [False]  # stale from the disconnect on
    assert opened == [CONN]
    assert loop.info.connection_id == "conn-2" and loop.supervisor.connections_opened == 1
    assert sent == ["auth", "subscribe"] and sent_to == ["conn-2", "conn-2"]
    assert loop.stats.reconnects == 1 and loop.stats.resumed == 1
    assert loop.stats.data_messages == 2
    assert loop.stats.books["BTC/USD"].valid
    assert loop.info.phase == "streaming"


def test_the_first_sockets_welcome_replayed_before_its_answers_is_no_reconnect() -> None:
    """Under load the WSM publishes the new socket's welcome too (still unread when publishing
    started): the steps consumed welcome, answer and confirmation, the loop sees them again."""
    loop, sent, _ = make_loop(
        [[book(True)], 0.1, [book(False)], 0.1], replayed=[WELCOME, AUTHED, SUBSCRIBED]
    )
    loop.run()
    assert sent == []
    assert loop.stats.reconnects == 0


def test_a_welcome_after_the_replayed_answers_is_still_a_reconnect() -> None:
    replayed = [WELCOME, AUTHED, SUBSCRIBED]
    loop, sent, _ = make_loop(
        [WELCOME, 0.1, AUTHED, SUBSCRIBED, [book(True)], 0.1], replayed=replayed
    )
    loop.run()
    assert sent == ["auth", "subscribe"]
    assert loop.stats.reconnects == 1
