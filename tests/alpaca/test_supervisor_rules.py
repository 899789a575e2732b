"""Rules of the session policy that hold for any interleaving of inputs (hypothesis)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from alpaca_cli.alpaca.messages import Error, Level, Message, OrderBookUpdate, Subscription, Success
from alpaca_cli.alpaca.session import ClientSession
from alpaca_cli.alpaca.supervisor import (
    LIFECYCLE_FALLBACK,
    Action,
    Fail,
    Handshake,
    Keepalive,
    OpenConnection,
    Phase,
    Reconnected,
    Supervisor,
)

CONN = "conn-1"
WELCOME: list[Message] = [Success("connected")]
AUTHED: list[Message] = [Success("authenticated")]
CONFIRMED: list[Message] = [Subscription(orderbooks=("BTC/USD",))]
DATA: list[Message] = [OrderBookUpdate("BTC/USD", 0, bids=[Level(1.0, 1.0)], asks=[], reset=True)]
FAMILIES = {
    # (event type of "the socket was lost", event type of "it is back")
    "classic": (
        "com.virtufin.websocketmanager.lifecycle.reconnecting",
        "com.virtufin.websocketmanager.lifecycle.connected",
    ),
    "spec": (
        "com.virtufin.websocketmanager.connection.reconnecting",
        "com.virtufin.websocketmanager.connection.connected",
    ),
    "reference": (
        "com.virtufin.websocketmanager.lifecycle.reconnecting",
        "com.virtufin.websocketmanager.lifecycle.connected",
    ),
    "reference-closed": (
        "com.virtufin.websocketmanager.lifecycle.closed",
        "com.virtufin.websocketmanager.lifecycle.connected",
    ),
    "reference-failed": (
        "com.virtufin.websocketmanager.lifecycle.failed",
        "com.virtufin.websocketmanager.lifecycle.connected",
    ),
}


def policy_of(**kwargs: object) -> Supervisor:
    kwargs.setdefault("rng", random.Random(0))
    policy = Supervisor(ClientSession({"orderbooks": ["BTC/USD"]}), CONN, **kwargs)  # type: ignore[arg-type]
    policy.start(0.0)
    return policy


# ------------------------------------------------------------------ one handshake per new socket


@dataclass(frozen=True)
class NewSocket:
    gap: float
    """Seconds since the previous socket's start (> 2 fallbacks: the races do not overlap)."""
    welcome: float | None
    """Offset of its welcome on the topic, or None when the welcome went by unpublished."""
    lifecycle: float | None
    """Offset of the lifecycle "back" event, or None without a lifecycle topic."""
    family: str
    attempt: bool
    answers: bool
    """Whether Alpaca's answers (and data) follow the handshake."""


race = st.floats(0.0, 0.95 * LIFECYCLE_FALLBACK, allow_nan=False)
new_sockets = st.builds(
    NewSocket,
    gap=st.floats(2.5 * LIFECYCLE_FALLBACK, 120.0, allow_nan=False),
    welcome=st.none() | race,
    lifecycle=st.none() | race,
    family=st.sampled_from(sorted(FAMILIES)),
    attempt=st.booleans(),
    answers=st.booleans(),
).filter(lambda s: s.welcome is not None or s.lifecycle is not None)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(new_sockets, min_size=1, max_size=6),
    st.lists(st.floats(0.0, 800.0, allow_nan=False), max_size=40),
    st.booleans(),
)
def test_every_new_socket_gets_exactly_one_handshake(
    sockets: list[NewSocket], extra_ticks: list[float], keepalive: bool
) -> None:
    """Welcome and lifecycle event in either order, either alone, any ticks in between."""
    policy = policy_of(stall_limit=30.0, keepalive=60.0 if keepalive else 0.0, reopen=True)
    inputs: list[tuple[float, int, str, object]] = []
    start = 0.0
    starts = []
    for socket in sockets:
        start += socket.gap
        starts.append(start)
        lost, back = FAMILIES[socket.family]
        if socket.lifecycle is not None:
            inputs.append((start - 0.01, 0, "lifecycle", (lost, None)))
            attempt = 1 if socket.attempt else None
            inputs.append((start + socket.lifecycle, 1, "lifecycle", (back, attempt)))
        if socket.welcome is not None:
            inputs.append((start + socket.welcome, 1, "frame", WELCOME))
        if socket.answers:
            late = start + LIFECYCLE_FALLBACK + 0.1
            for i, frame in enumerate((AUTHED, CONFIRMED, DATA)):
                inputs.append((late + i * 0.01, 2, "frame", frame))
    inputs += [(t, 3, "tick", None) for t in extra_ticks]
    inputs.sort(key=lambda x: (x[0], x[1]))

    handshakes: list[float] = []

    def execute(actions: list[Action], now: float) -> None:
        for action in actions:
            assert not isinstance(action, (Fail, OpenConnection)), action
            if isinstance(action, Handshake):
                handshakes.append(now)
                policy.handshake("k", "s")
                policy.sent(now)
            elif isinstance(action, Keepalive):
                policy.sent(now)

    def until(now: float) -> None:
        """What the I/O loop does: tick at every deadline up to ``now``."""
        for _ in range(1000):
            wake = policy.next_deadline()
            if wake is None or wake > now:
                return
            execute(policy.tick(wake), wake)
        raise AssertionError("next_deadline() never moved past now")

    for now, _, kind, payload in inputs:
        until(now)
        if kind == "frame":
            assert isinstance(payload, list)
            execute(policy.receive(payload, now), now)
        elif kind == "lifecycle":
            event_type, attempt = payload  # type: ignore[misc]
            execute(policy.lifecycle(event_type, CONN, now, attempt=attempt), now)
        else:
            execute(policy.tick(now), now)
    until(starts[-1] + 1000.0)

    bounds = [*starts, float("inf")]
    per_socket = [
        sum(1 for t in handshakes if bounds[i] - 0.01 <= t < bounds[i + 1] - 0.01)
        for i in range(len(starts))
    ]
    assert per_socket == [1] * len(starts)
    assert policy.reconnects == len(starts)


# ------------------------------------------------------------------ the 406 schedule


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.lists(st.floats(0.0, 0.5), min_size=40, max_size=40))
def test_406_waits_jittered_growing_delays_and_gives_up_only_after_150_s(
    seed: int, answer_after: list[float]
) -> None:
    def schedule() -> tuple[list[float], Fail]:
        policy = policy_of(rng=random.Random(seed))
        now = 0.0
        delays: list[float] = []
        for answer in answer_after:
            actions = policy.receive([Error(406, "connection limit exceeded")], now)
            fails = [a for a in actions if isinstance(a, Fail)]
            if fails:
                return delays, fails[0]
            wake = policy.next_deadline()
            assert wake is not None
            assert policy.phase is Phase.BACKOFF
            if wake - 1e-6 > now:
                assert policy.tick(wake - 1e-6) == []  # not a moment early
            delays.append(wake - now)
            now = wake
            assert policy.tick(now) == [Handshake()]
            policy.handshake("k", "s")
            policy.sent(now)
            now += answer
        raise AssertionError("406 never gave up")

    delays, fail = schedule()
    assert fail.code == 406
    assert all(1.0 - 1e-9 <= d <= 8.0 + 1e-9 for d in delays)
    assert sum(delays) >= 150.0 - 1e-6 > 90.0  # outlasts the ~90 s slot of a dead socket
    assert sum(delays[:-1]) < 150.0 + 1e-6  # and stops once it has
    assert schedule()[0] == delays  # the injected rng decides the jitter


# ------------------------------------------------------------------ any interleaving


OTHER_SET: list[Message] = [Subscription(orderbooks=("BTC/USD", "ETH/USD"))]
LIFECYCLE_TYPES = [
    f"com.virtufin.websocketmanager.{middle}{suffix}"
    for middle in ("lifecycle.", "connection.")
    for suffix in (
        "registered",
        "connecting",
        "connected",
        "degraded",
        "reconnecting",
        "disconnected",
        "closed",
        "error",
        "failed",
    )
] + ["com.virtufin.workmanager.lifecycle.worker.started", "com.dapr.event.sent"]


class AnyInterleaving(RuleBasedStateMachine):
    """Random frames, lifecycle events, time and send outcomes; the invariants always hold."""

    def __init__(self) -> None:
        super().__init__()
        self.policy = policy_of(stall_limit=10.0, keepalive=15.0, reopen=True, rng=random.Random(3))
        self.now = 0.0
        self.handshakes = 0
        self.triggers = 0
        """Reconnects + 406 answers + failed handshakes: each may ask for one handshake."""
        self.reconnected: list[int] = []
        self.failed = False
        self.next_id = 2
        self.send_ok = True

    def execute(self, actions: list[Action]) -> None:
        assert not self.failed or actions == [], "nothing may follow a Fail"
        sends = [a for a in actions if isinstance(a, (Handshake, Keepalive, OpenConnection))]
        assert len(sends) <= 1, actions
        for action in actions:
            if isinstance(action, Reconnected):
                self.reconnected.append(action.count)
                self.triggers += 1
            elif isinstance(action, Fail):
                assert action.code in (402, 406, 409)
                self.failed = True
            elif isinstance(action, Handshake):
                assert self.policy.phase is not Phase.NEW_CONNECTION
                self.handshakes += 1
                self.policy.handshake("k", "s")
                if self.send_ok:
                    self.execute(self.policy.sent(self.now))
                else:
                    self.triggers += 1
                    self.execute(self.policy.send_failed("not connected", self.now))
            elif isinstance(action, Keepalive):
                if self.send_ok:
                    self.execute(self.policy.sent(self.now))
                else:
                    self.execute(self.policy.send_failed("not connected", self.now))
            elif isinstance(action, OpenConnection):
                assert action.connection_id == self.policy.connection_id
                if self.send_ok:
                    new_id = f"conn-{self.next_id}"
                    self.next_id += 1
                    self.execute(self.policy.connection_opened(new_id, self.now))
                else:
                    self.execute(self.policy.open_failed("timed out", self.now))

    @rule(dt=st.floats(0.0, 20.0, allow_nan=False), ok=st.booleans())
    def time_passes(self, dt: float, ok: bool) -> None:
        self.send_ok = ok
        self.now += dt
        for _ in range(10):
            self.execute(self.policy.tick(self.now))
            wake = self.policy.next_deadline()
            if wake is None or wake > self.now:
                return
        raise AssertionError("ticking at the same now never settles")

    @rule(
        frame=st.sampled_from([WELCOME, AUTHED, CONFIRMED, OTHER_SET, DATA, []])
        | st.builds(
            lambda code: [Error(code, "why")],
            st.sampled_from([400, 401, 403, 404, 405, 406, 406, 406, 407, 410, 500]),
        ),
    )
    def frame(self, frame: list[Message]) -> None:
        if any(isinstance(m, Error) and m.code == 406 for m in frame):
            self.triggers += 1
        stall = self.policy.next_deadline()
        checking_terminal = self.policy.terminal_deadline is not None
        answers = self.policy.keepalive_answers
        actions = self.policy.receive(frame, self.now)
        # Any frame of our connection is a sign of life: a pending "gone for good?" check ends.
        assert self.policy.terminal_deadline is None
        if self.policy.keepalive_answers != answers:
            # A keepalive's answer: no reconnect, no error, no data (the stall clock runs on).
            assert actions == []
            if not checking_terminal:
                assert self.policy.next_deadline() == stall
        self.execute(actions)

    @rule(
        event_type=st.sampled_from(LIFECYCLE_TYPES),
        ours=st.booleans(),
        attempt=st.none() | st.integers(1, 5),
    )
    def lifecycle(self, event_type: str, ours: bool, attempt: int | None) -> None:
        connection_id = self.policy.connection_id if ours else "someone-else"
        self.execute(self.policy.lifecycle(event_type, connection_id, self.now, attempt=attempt))

    @precondition(lambda self: not self.failed)
    @rule(code=st.sampled_from([402, 409]))
    def refused(self, code: int) -> None:
        self.execute(self.policy.receive([Error(code, "no")], self.now))
        assert self.failed and self.policy.phase is Phase.FAILED

    @invariant()
    def handshakes_are_asked_for(self) -> None:
        assert self.handshakes <= self.triggers

    @invariant()
    def reconnects_count_up_by_one(self) -> None:
        assert self.reconnected == list(range(1, len(self.reconnected) + 1))
        assert self.policy.reconnects == len(self.reconnected)

    @invariant()
    def failed_is_final(self) -> None:
        assert (self.policy.phase is Phase.FAILED) == self.failed
        if self.failed:
            assert self.policy.next_deadline() is None


AnyInterleaving.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None
)
TestAnyInterleaving = AnyInterleaving.TestCase
