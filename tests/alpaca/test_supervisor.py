"""The supervised stream's session policy, driven with literal messages and a made-up ``now``."""

from __future__ import annotations

import random

import pytest

from alpaca_cli.alpaca.codec import AuthRequest, SubscribeRequest, decode_client_message
from alpaca_cli.alpaca.messages import Error, Level, Message, OrderBookUpdate, Subscription, Success
from alpaca_cli.alpaca.session import ClientSession
from alpaca_cli.alpaca.supervisor import (
    KEEPALIVE,
    LIFECYCLE_FALLBACK,
    TERMINAL_GRACE,
    Action,
    BooksStale,
    ConnectionStatus,
    Expect,
    Fail,
    Handshake,
    Keepalive,
    LifecycleEvent,
    LifecycleKind,
    NoteError,
    OpenConnection,
    Phase,
    Reconnected,
    Stalled,
    Supervisor,
    Warn,
    lifecycle_connection_id,
    lifecycle_kind,
)

CONN = "conn-1"
WELCOME: list[Message] = [Success("connected")]
AUTHED: list[Message] = [Success("authenticated")]
CONFIRMED: list[Message] = [Subscription(orderbooks=("BTC/USD",))]
DATA: list[Message] = [OrderBookUpdate("BTC/USD", 0, bids=[Level(1.0, 1.0)], asks=[], reset=True)]
CLASSIC = "com.virtufin.websocketmanager.lifecycle."


def started(**kwargs: object) -> Supervisor:
    """A supervisor at t=0, right after run's auth and subscribe steps."""
    kwargs.setdefault("rng", random.Random(1))
    policy = Supervisor(ClientSession({"orderbooks": ["BTC/USD"]}), CONN, **kwargs)  # type: ignore[arg-type]
    assert policy.start(0.0) == []
    return policy


def kinds(actions: list[Action]) -> list[type]:
    return [type(a) for a in actions]


def execute(policy: Supervisor, actions: list[Action], now: float) -> list[bytes]:
    """Do what an I/O layer would do with send actions; returns what went out."""
    out: list[bytes] = []
    for action in actions:
        if isinstance(action, Handshake):
            out += policy.handshake("AKEY", "s3cr3t")
            assert policy.sent(now) == []
        elif isinstance(action, Keepalive):
            out += action.payloads
            assert policy.sent(now) == []
    return out


def requests(payloads: list[bytes]) -> list[object]:
    return [decode_client_message(p) for p in payloads]


def phase_of(policy: Supervisor) -> Phase:
    """Read the phase afresh (keeps mypy from narrowing the property across calls)."""
    return policy.phase


# ------------------------------------------------------------------ re-handshake


class TestRehandshake:
    def test_a_welcome_asks_for_auth_and_the_confirmed_subscription(self) -> None:
        policy = started()
        assert policy.receive(CONFIRMED, 0.1) == [Expect(("BTC/USD",))]
        actions = policy.receive(WELCOME, 1.0)
        assert kinds(actions) == [Reconnected, Warn]
        assert actions[0] == Reconnected(1)
        assert "reconnect 1" in actions[1].text  # type: ignore[union-attr]
        assert phase_of(policy) is Phase.REHANDSHAKE
        assert policy.next_deadline() == 1.0
        tick = policy.tick(1.0)
        assert tick == [Handshake()]
        assert requests(execute(policy, tick, 1.0)) == [
            AuthRequest("AKEY", "s3cr3t"),
            SubscribeRequest({"orderbooks": ("BTC/USD",)}),
        ]
        assert policy.receive(AUTHED, 1.1) == []
        assert policy.receive(CONFIRMED, 1.2) == [Expect(("BTC/USD",))]
        assert phase_of(policy) is Phase.STREAMING
        assert policy.next_deadline() is None

    def test_the_secret_is_not_kept(self) -> None:
        policy = started()
        execute(policy, policy.receive(WELCOME, 1.0) + policy.tick(1.0), 1.0)
        assert "s3cr3t" not in repr(policy) and "s3cr3t" not in repr(vars(policy.session))

    def test_a_failed_send_is_retried_a_second_later_five_times(self) -> None:
        policy = started()
        policy.receive(WELCOME, 0.0)
        now = 0.0
        for attempt in range(1, 7):
            assert policy.tick(now) == [Handshake()]
            policy.handshake("k", "s")
            [note] = policy.send_failed("Websocket is not connected", now)
            assert note == NoteError("re-handshake failed: Websocket is not connected")
            now += 1.0
            if attempt <= 5:
                assert policy.next_deadline() == now
        assert policy.next_deadline() is None
        assert policy.tick(now + 100) == []

    def test_a_401_after_the_handshake_is_a_silent_reconnect(self) -> None:
        policy = started()
        assert kinds(policy.receive([Error(401, "not authenticated")], 1.0)) == [Reconnected, Warn]
        assert policy.tick(1.0) == [Handshake()]


class TestLifecycleFallback:
    def test_a_connected_event_handshakes_when_no_welcome_shows(self) -> None:
        policy = started()
        other = policy.lifecycle(CLASSIC + "reconnecting", "someone-else", 0.1, attempt=1)
        assert other == []
        actions = policy.lifecycle(CLASSIC + "connected", CONN, 0.1, attempt=1)
        assert actions == [ConnectionStatus("CONNECTED")]
        assert policy.next_deadline() == pytest.approx(0.1 + LIFECYCLE_FALLBACK)
        assert policy.tick(1.0) == []
        actions = policy.tick(2.2)
        assert kinds(actions) == [Reconnected, Warn, Handshake]
        assert policy.reconnects == 1

    def test_the_welcome_first_then_the_event_is_one_reconnect(self) -> None:
        policy = started()
        execute(policy, policy.receive(WELCOME, 0.0) + policy.tick(0.0), 0.0)
        assert policy.lifecycle(CLASSIC + "connected", CONN, 1.9, attempt=1) == [
            ConnectionStatus("CONNECTED")
        ]
        assert policy.tick(10.0) == []
        assert policy.reconnects == 1

    def test_the_event_first_then_the_welcome_is_one_reconnect(self) -> None:
        policy = started()
        policy.lifecycle(CLASSIC + "reconnecting", CONN, 0.0)
        policy.lifecycle(CLASSIC + "connected", CONN, 0.1)
        assert kinds(policy.receive(WELCOME, 1.9)) == [Reconnected, Warn]
        execute(policy, policy.tick(1.9), 1.9)
        assert policy.tick(10.0) == []
        assert policy.reconnects == 1

    @pytest.mark.parametrize(
        ("lost", "back"),
        [
            pytest.param(CLASSIC + "reconnecting", CLASSIC + "connected", id="classic"),
            pytest.param(
                "com.virtufin.websocketmanager.connection.reconnecting",
                "com.virtufin.websocketmanager.connection.connected",
                id="spec",
            ),
            pytest.param(
                "com.virtufin.websocketmanager.lifecycle.failed",
                "com.virtufin.websocketmanager.lifecycle.connected",
                id="reference-failed",
            ),
            pytest.param(
                "com.virtufin.websocketmanager.lifecycle.closed",
                "com.virtufin.websocketmanager.lifecycle.connected",
                id="reference-closed",
            ),
        ],
    )
    def test_a_lost_then_connected_transition_is_a_trigger_in_every_family(
        self, lost: str, back: str
    ) -> None:
        policy = started()
        actions = policy.lifecycle(lost, CONN, 1.0)
        assert kinds(actions) == [ConnectionStatus, BooksStale]
        assert policy.phase.value in ("reconnecting", "disconnected", "error")
        policy.lifecycle(back, CONN, 1.5)  # no attempt in the data
        assert kinds(policy.tick(1.5 + LIFECYCLE_FALLBACK)) == [Reconnected, Warn, Handshake]

    def test_the_first_connected_of_our_connection_is_no_trigger(self) -> None:
        """The connect step's own events sit in the lifecycle queue when the loop starts."""
        policy = started()
        for kind in ("registered", "connecting", "connected"):
            policy.lifecycle(CLASSIC + kind, CONN, 0.0)
        assert policy.next_deadline() is None
        assert policy.tick(100.0) == []

    def test_unknown_types_and_other_connections_do_nothing(self) -> None:
        policy = started()
        assert policy.lifecycle(CLASSIC + "exploded", CONN, 0.0) == []
        assert policy.lifecycle("com.virtufin.workmanager.lifecycle.error", CONN, 0.0) == []
        assert policy.lifecycle(CLASSIC + "error", None, 0.0) == []

    def test_degraded_shows_but_changes_nothing(self) -> None:
        policy = started()
        assert policy.lifecycle(CLASSIC + "degraded", CONN, 0.0) == [ConnectionStatus("DEGRADED")]
        assert phase_of(policy) is Phase.STREAMING


# ------------------------------------------------------------------ errors and backoff


class TestErrors:
    @pytest.mark.parametrize("code", [402, 409])
    def test_refused_credentials_fail_and_nothing_follows(self, code: int) -> None:
        policy = started()
        [fail] = policy.receive([Error(code, "no"), *DATA], 1.0)
        assert isinstance(fail, Fail) and fail.code == code
        assert "ALPACA_API_KEY" in fail.hint
        assert phase_of(policy) is Phase.FAILED
        assert policy.receive(WELCOME, 2.0) == []
        assert policy.tick(100.0) == [] and policy.next_deadline() is None

    @pytest.mark.parametrize("code", [400, 403, 404, 405, 407, 410, 500])
    def test_other_errors_change_nothing_here(self, code: int) -> None:
        policy = started()
        assert policy.receive([Error(code, "why")], 1.0) == []
        assert phase_of(policy) is Phase.STREAMING

    def test_406_delays_the_next_handshake(self) -> None:
        policy = started()
        execute(policy, policy.receive(WELCOME, 0.0) + policy.tick(0.0), 0.0)
        [warn] = policy.receive([Error(406, "connection limit exceeded")], 0.1)
        assert isinstance(warn, Warn) and warn.text.startswith("Alpaca 406")
        assert phase_of(policy) is Phase.BACKOFF
        wake = policy.next_deadline()
        assert wake is not None and wake - 0.1 >= 0.75
        assert policy.tick(wake - 0.01) == []
        # A welcome (Alpaca closed the socket, the WSM reopened it) waits for the backoff too.
        assert kinds(policy.receive(WELCOME, 0.2)) == [Reconnected, Warn]
        assert policy.next_deadline() == wake
        assert policy.tick(wake) == [Handshake()]

    def test_406_for_too_long_fails_after_the_whole_schedule(self) -> None:
        policy = started()
        now, waited = 0.0, 0.0
        for _ in range(100):
            actions = policy.receive([Error(406, "connection limit exceeded")], now)
            if any(isinstance(a, Fail) for a in actions):
                break
            wake = policy.next_deadline()
            assert wake is not None
            waited += wake - now
            now = wake
            execute(policy, policy.tick(now), now)
        else:
            pytest.fail("406 never ended the run")
        [fail] = actions
        assert isinstance(fail, Fail) and fail.code == 406
        assert waited >= 150.0

    def test_a_confirmed_subscription_resets_the_backoff(self) -> None:
        policy = started(rng=random.Random(7))
        policy.receive([Error(406, "x")], 0.0)
        first = policy.next_deadline()
        execute(policy, policy.tick(100.0), 100.0)
        policy.receive(CONFIRMED, 100.1)
        policy.receive([Error(406, "x")], 200.0)
        again = policy.next_deadline()
        assert first is not None and again is not None
        assert again - 200.0 <= 1.25  # the schedule started over


# ------------------------------------------------------------------ stalls


class TestStall:
    def test_a_silent_stream_is_reported_once_until_data_returns(self) -> None:
        policy = started(stall_limit=10.0)
        policy.receive(DATA, 1.0)
        assert policy.next_deadline() == 11.0
        assert policy.tick(10.9) == []
        [stall] = policy.tick(12.0)
        assert stall == Stalled(11.0, 10.0)
        assert str(stall) == "no data for 11 s (stall limit 10 s)"
        assert phase_of(policy) is Phase.STALLED
        assert policy.next_deadline() is None and policy.tick(50.0) == []
        # Control messages are no data: still stalled.
        policy.receive(CONFIRMED, 51.0)
        assert phase_of(policy) is Phase.STALLED
        policy.receive(DATA, 52.0)
        assert phase_of(policy) is Phase.STREAMING
        assert policy.next_deadline() == 62.0

    def test_zero_turns_it_off(self) -> None:
        policy = started(stall_limit=0.0)
        assert policy.next_deadline() is None and policy.tick(1e6) == []


# ------------------------------------------------------------------ keepalive


class TestKeepalive:
    def test_the_confirmed_subscription_is_resent_every_interval(self) -> None:
        policy = started(keepalive=KEEPALIVE)
        policy.receive(CONFIRMED, 0.1)
        assert policy.next_deadline() == KEEPALIVE
        assert policy.tick(KEEPALIVE - 0.1) == []
        [keepalive] = policy.tick(KEEPALIVE)
        assert isinstance(keepalive, Keepalive)
        assert requests(list(keepalive.payloads)) == [
            SubscribeRequest({"orderbooks": ("BTC/USD",)})
        ]
        assert policy.next_deadline() is None  # until the send is reported
        policy.sent(KEEPALIVE + 0.5)
        assert policy.next_deadline() == KEEPALIVE + 0.5 + KEEPALIVE
        assert policy.keepalives_sent == 1

    def test_the_answer_is_no_reconnect_no_error_and_no_data(self) -> None:
        policy = started(keepalive=10.0, stall_limit=30.0)
        policy.receive(CONFIRMED, 0.1)
        execute(policy, policy.tick(10.0), 10.0)
        stall_before = policy.next_deadline()
        assert policy.receive(CONFIRMED, 10.2) == []
        assert policy.keepalive_answers == 1
        assert policy.reconnects == 0
        assert policy.next_deadline() == stall_before
        # The next, unrequested subscription message is a confirmation again.
        assert policy.receive(CONFIRMED, 10.3) == [Expect(("BTC/USD",))]

    def test_the_answer_is_recognised_before_any_confirmation_too(self) -> None:
        """The keepalive then sent the wanted set; its answer is that set."""
        policy = started(keepalive=10.0)
        execute(policy, policy.tick(10.0), 10.0)
        assert policy.receive(CONFIRMED, 10.2) == []
        assert policy.keepalive_answers == 1

    def test_an_answer_with_another_set_is_a_confirmation(self) -> None:
        policy = started(keepalive=10.0)
        policy.receive(CONFIRMED, 0.1)
        execute(policy, policy.tick(10.0), 10.0)
        other = [Subscription(orderbooks=("BTC/USD", "ETH/USD"))]
        assert policy.receive(other, 10.2) == [Expect(("BTC/USD", "ETH/USD"))]

    def test_a_reconnect_forgets_unanswered_keepalives(self) -> None:
        policy = started(keepalive=10.0)
        policy.receive(CONFIRMED, 0.1)
        execute(policy, policy.tick(10.0), 10.0)
        execute(policy, policy.receive(WELCOME, 10.5) + policy.tick(10.5), 10.5)
        # This is the re-handshake's answer: it must confirm (back to streaming).
        assert policy.receive(CONFIRMED, 10.6) == [Expect(("BTC/USD",))]
        assert phase_of(policy) is Phase.STREAMING

    def test_any_successful_send_postpones_it(self) -> None:
        policy = started(keepalive=10.0)
        execute(policy, policy.receive(WELCOME, 8.0) + policy.tick(8.0), 8.0)
        assert policy.next_deadline() == 18.0

    def test_not_while_the_socket_is_down_or_backing_off(self) -> None:
        policy = started(keepalive=10.0)
        policy.lifecycle(CLASSIC + "reconnecting", CONN, 1.0)
        assert policy.tick(50.0) == []
        policy2 = started(keepalive=10.0)
        policy2.receive([Error(406, "x")], 1.0)
        actions = policy2.tick(50.0)
        assert actions == [Handshake()]  # the delayed handshake, not a keepalive

    def test_a_failed_keepalive_is_noted_and_tried_again_soon(self) -> None:
        policy = started(keepalive=60.0)
        assert kinds(policy.tick(60.0)) == [Keepalive]
        [note] = policy.send_failed("WebSocket is not connected", 60.0)
        assert note == NoteError("keepalive failed: WebSocket is not connected")
        assert policy.next_deadline() == 65.0
        # The failed one is not waiting for an answer: the next subscription confirms.
        assert policy.receive(CONFIRMED, 61.0) == [Expect(("BTC/USD",))]

    def test_off_by_default(self) -> None:
        policy = started()
        assert policy.tick(1e6) == []


# ------------------------------------------------------------------ terminal disconnect


class TestTerminalDisconnect:
    def test_a_disconnect_without_a_reconnect_opens_a_new_connection(self) -> None:
        policy = started(reopen=True)
        policy.lifecycle(CLASSIC + "disconnected", CONN, 1.0)
        assert policy.next_deadline() == 1.0 + TERMINAL_GRACE
        assert policy.tick(1.0 + TERMINAL_GRACE - 0.1) == []
        [action] = policy.tick(1.0 + TERMINAL_GRACE)
        assert action == OpenConnection(CONN, "its reconnects ran out")
        assert phase_of(policy) is Phase.NEW_CONNECTION
        actions = policy.connection_opened("conn-2", 7.0)
        assert kinds(actions) == [Reconnected, Warn]
        assert policy.connection_id == "conn-2" and policy.connections_opened == 1
        assert policy.tick(7.0) == [Handshake()]
        policy.handshake("k", "s")
        policy.sent(7.0)
        # The new socket's own welcome is no further reconnect; the old id is not ours now.
        assert policy.receive(WELCOME, 7.1) == []
        assert policy.receive(AUTHED, 7.2) == []
        assert policy.lifecycle(CLASSIC + "disconnected", CONN, 8.0) == []
        assert policy.lifecycle(CLASSIC + "connected", "conn-2", 8.0) == [
            ConnectionStatus("CONNECTED")
        ]
        assert policy.tick(100.0) == [] and policy.reconnects == 1

    def test_a_reconnect_after_the_disconnect_is_not_terminal(self) -> None:
        policy = started(reopen=True)
        policy.lifecycle("com.virtufin.websocketmanager.connection.disconnected", CONN, 1.0)
        policy.lifecycle("com.virtufin.websocketmanager.connection.reconnecting", CONN, 1.1)
        assert all(not isinstance(a, OpenConnection) for a in policy.tick(100.0))

    def test_frames_after_the_disconnect_are_a_sign_of_life(self) -> None:
        policy = started(reopen=True)
        policy.lifecycle(CLASSIC + "closed", CONN, 1.0)
        policy.receive(DATA, 2.0)
        assert policy.tick(100.0) == []

    def test_an_error_that_ends_the_reconnects_is_terminal(self) -> None:
        policy = started(reopen=True)
        policy.lifecycle(CLASSIC + "reconnecting", CONN, 1.0)
        policy.lifecycle(CLASSIC + "error", CONN, 9.0)
        assert kinds(policy.tick(9.0 + TERMINAL_GRACE)) == [OpenConnection]

    def test_an_error_alone_is_not_terminal(self) -> None:
        policy = started(reopen=True)
        policy.lifecycle(CLASSIC + "error", CONN, 1.0)
        assert policy.tick(100.0) == []

    def test_without_reopen_it_is_only_reported_once(self) -> None:
        policy = started()
        policy.lifecycle(CLASSIC + "disconnected", CONN, 1.0)
        [warn] = policy.tick(100.0)
        assert isinstance(warn, Warn) and "disconnected for good" in warn.text
        policy.lifecycle(CLASSIC + "disconnected", CONN, 101.0)
        assert policy.tick(200.0) == []
        assert phase_of(policy) is Phase.DISCONNECTED

    def test_a_failed_open_is_tried_again_then_given_up(self) -> None:
        policy = started(reopen=True)
        policy.lifecycle(CLASSIC + "disconnected", CONN, 0.0)
        now = TERMINAL_GRACE
        for _ in range(6):
            assert kinds(policy.tick(now)) == [OpenConnection]
            actions = policy.open_failed("create timed out", now)
            assert actions[0] == NoteError("opening a new connection failed: create timed out")
            now += 5.0
        assert isinstance(actions[-1], Warn) and "gave up" in actions[-1].text
        assert policy.next_deadline() is None and policy.tick(now + 100) == []

    def test_a_pending_handshake_is_dropped_with_the_old_connection(self) -> None:
        policy = started(reopen=True)
        policy.receive([Error(406, "x")], 0.0)
        policy.lifecycle(CLASSIC + "disconnected", CONN, 0.1)
        assert kinds(policy.tick(0.1 + TERMINAL_GRACE)) == [OpenConnection]
        policy.connection_opened("conn-2", 6.0)
        assert policy.tick(6.0) == [Handshake()]


# ------------------------------------------------------------------ misuse


def test_sends_must_be_asked_for() -> None:
    policy = started()
    with pytest.raises(RuntimeError):
        policy.sent(0.0)
    with pytest.raises(RuntimeError):
        policy.handshake("k", "s")
    with pytest.raises(RuntimeError):
        policy.connection_opened("x", 0.0)
    with pytest.raises(RuntimeError):
        policy.start(0.0)


def test_nothing_happens_before_start() -> None:
    policy = Supervisor(ClientSession({"trades": ["BTC/USD"]}), CONN, stall_limit=1.0)
    assert phase_of(policy) is Phase.STARTING
    assert policy.tick(100.0) == [] and policy.next_deadline() is None


def test_negative_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Supervisor(ClientSession({}), CONN, keepalive=-1)


# ------------------------------------------------------------------ lifecycle names and data


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        (CLASSIC + "connecting", LifecycleKind.CONNECTING),
        (CLASSIC + "connected", LifecycleKind.CONNECTED),
        (CLASSIC + "reconnecting", LifecycleKind.RECONNECTING),
        (CLASSIC + "disconnected", LifecycleKind.DISCONNECTED),
        (CLASSIC + "error", LifecycleKind.ERROR),
        ("com.virtufin.websocketmanager.connection.connected", LifecycleKind.CONNECTED),
        ("com.virtufin.websocketmanager.connection.disconnected", LifecycleKind.DISCONNECTED),
        ("com.virtufin.websocketmanager.connection.reconnecting", LifecycleKind.RECONNECTING),
        ("com.virtufin.websocketmanager.connection.error", LifecycleKind.ERROR),
        (CLASSIC + "connection.connected", LifecycleKind.CONNECTED),
        ("connection.connected", LifecycleKind.CONNECTED),
        (CLASSIC + "registered", LifecycleKind.CONNECTING),
        (CLASSIC + "degraded", LifecycleKind.DEGRADED),
        (CLASSIC + "closed", LifecycleKind.DISCONNECTED),
        (CLASSIC + "failed", LifecycleKind.ERROR),
        ("com.virtufin.websocketmanager.closed", LifecycleKind.DISCONNECTED),
        ("COM.VIRTUFIN.WEBSOCKETMANAGER.LIFECYCLE.CONNECTED", LifecycleKind.CONNECTED),
        (CLASSIC + "exploded", None),
        ("com.virtufin.workmanager.lifecycle.error", None),
        ("com.virtufin.workmanager.lifecycle.worker.started", None),
        ("com.dapr.event.sent", None),
        ("", None),
    ],
)
def test_lifecycle_types_are_classified_by_prefix_and_suffix(
    event_type: str, kind: LifecycleKind | None
) -> None:
    assert lifecycle_kind(event_type) is kind


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"connection_id": "a"}, "a"),
        ({"connectionId": "b"}, "b"),
        ({"id": "c"}, "c"),
        ({"connection_id": "", "connectionId": "b", "id": "c"}, "b"),
        ({"connection_id": None, "id": "c"}, "c"),
        ({"id": 42}, "42"),
        ({"id": True}, None),
        ({}, None),
    ],
)
def test_the_connection_id_is_read_from_any_documented_key(
    data: dict[str, object], expected: str | None
) -> None:
    assert lifecycle_connection_id(data) == expected


def test_lifecycle_events_are_parsed_leniently() -> None:
    event = LifecycleEvent.parse(CLASSIC + "connected", b'{"connectionId":"x","attempt":"2"}')
    assert event == LifecycleEvent(CLASSIC + "connected", LifecycleKind.CONNECTED, "x", 2)
    assert LifecycleEvent.parse(CLASSIC + "connected", b"[1]") is None
    assert LifecycleEvent.parse(CLASSIC + "connected", b"not json") is None
    no_attempt = LifecycleEvent.parse("x", b'{"id":"y","attempt":0}')
    assert no_attempt is not None and no_attempt.attempt is None and no_attempt.kind is None


def test_the_policy_imports_no_io_and_reads_no_clock() -> None:
    import inspect
    import subprocess
    import sys

    import alpaca_cli.alpaca.supervisor as module

    code = (
        "import sys, alpaca_cli.alpaca.supervisor; "
        "bad = {'asyncio', 'socket', 'pydantic', 'httpx', 'websockets', 'dapr', 'grpc'} "
        "& set(sys.modules); print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    source = inspect.getsource(module)
    assert "import time" not in source and "from time" not in source
