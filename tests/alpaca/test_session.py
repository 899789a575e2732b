"""The client session state machine: handshake, confirmations, re-handshake, errors, backoff."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alpaca_cli.alpaca.codec import AuthRequest, SubscribeRequest, decode, decode_client_message
from alpaca_cli.alpaca.errors import ErrorCode, Retry
from alpaca_cli.alpaca.messages import Error, OrderBookUpdate, Subscription, Success, Trade, Unknown
from alpaca_cli.alpaca.session import (
    AlpacaFailure,
    Authenticated,
    ClientSession,
    DataResumed,
    RehandshakeNeeded,
    SessionState,
    SubscriptionConfirmed,
    Welcome,
    backoff_delays,
)

WANTED = {"orderbooks": ["BTC/USD", "ETH/USD"], "trades": ["BTC/USD"]}
CONNECTED = Success("connected")
AUTHENTICATED = Success("authenticated")
TRADE = Trade("BTC/USD", 1.0, 1.0, 0, 1, "B")


def state_of(session: ClientSession) -> SessionState:
    """Read the state afresh (keeps mypy from narrowing the property across calls)."""
    return session.state


def handshake_requests(session: ClientSession) -> list[AuthRequest | SubscribeRequest]:
    return [decode_client_message(p) for p in session.handshake("AKEY", "s3cr3t")]


def test_the_happy_path() -> None:
    session = ClientSession(WANTED)
    assert state_of(session) is SessionState.CONNECTING
    assert session.receive(CONNECTED) == [Welcome(reconnect=False)]
    assert state_of(session) is SessionState.CONNECTED
    assert handshake_requests(session) == [
        AuthRequest("AKEY", "s3cr3t"),
        SubscribeRequest({"orderbooks": ("BTC/USD", "ETH/USD"), "trades": ("BTC/USD",)}),
    ]
    assert session.receive(AUTHENTICATED) == [Authenticated()]
    assert state_of(session) is SessionState.AUTHENTICATED
    sub = Subscription(trades=("BTC/USD",), orderbooks=("BTC/USD", "ETH/USD"))
    [event] = session.receive(sub)
    assert event == SubscriptionConfirmed(sub.channels(), missing={})
    assert state_of(session) is SessionState.SUBSCRIBED
    assert session.last_control == sub
    assert session.receive(TRADE) == [DataResumed()]
    assert session.receive(TRADE) == []
    assert session.reconnects == 0 and session.errors == 0


def test_the_handshake_comes_from_a_real_frame_stream() -> None:
    session = ClientSession(WANTED)
    frames = [
        b'[{"T":"success","msg":"connected"}]',
        b'[{"T":"success","msg":"authenticated"}]',
        b'[{"T":"subscription","trades":["BTC/USD"],"orderbooks":["BTC/USD"]}]',
    ]
    session.handshake("k", "s")
    events = [e for f in frames for e in session.receive_all(decode(f))]
    assert [type(e) for e in events] == [
        Welcome, RehandshakeNeeded, Authenticated, SubscriptionConfirmed,
    ]  # fmt: skip
    assert events[-1] == SubscriptionConfirmed(
        Subscription(trades=("BTC/USD",), orderbooks=("BTC/USD",)).channels(),
        missing={"orderbooks": ("ETH/USD",)},
    )


def test_a_welcome_after_a_handshake_means_the_socket_was_replaced() -> None:
    session = ClientSession(WANTED)
    session.receive(CONNECTED)
    session.handshake("AKEY", "s3cr3t")
    session.receive(AUTHENTICATED)
    session.receive(Subscription(trades=("BTC/USD",), orderbooks=("BTC/USD",)))
    session.receive(TRADE)
    assert session.receive(CONNECTED) == [Welcome(reconnect=True), RehandshakeNeeded(1)]
    assert state_of(session) is SessionState.CONNECTED
    # The re-handshake resends the confirmed set, the one known to be accepted.
    assert handshake_requests(session)[1:] == [
        SubscribeRequest({"trades": ("BTC/USD",), "orderbooks": ("BTC/USD",)})
    ]
    assert session.receive(TRADE) == [DataResumed()]
    assert session.receive(CONNECTED) == [Welcome(reconnect=True), RehandshakeNeeded(2)]
    assert session.reconnects == 2


def test_a_handshake_sent_elsewhere_arms_reconnect_detection() -> None:
    """``run`` sends the first handshake through its auth/subscribe steps, then only marks it."""
    session = ClientSession(WANTED)
    assert session.receive(CONNECTED) == [Welcome(reconnect=False)]
    session.mark_handshake_sent()
    assert session.receive(TRADE) == [DataResumed()]
    assert session.receive(CONNECTED) == [Welcome(reconnect=True), RehandshakeNeeded(1)]
    assert session.connection_reset() == [RehandshakeNeeded(2)]


def test_an_empty_confirmed_set_falls_back_to_the_wanted_one() -> None:
    session = ClientSession(WANTED)
    session.handshake("k", "s")
    session.receive(Subscription())
    assert session.subscriptions() == {
        "orderbooks": ("BTC/USD", "ETH/USD"),
        "trades": ("BTC/USD",),
    }


def test_a_wildcard_covers_every_wanted_symbol() -> None:
    session = ClientSession(WANTED)
    [event] = session.receive(Subscription(orderbooks=("*",), trades=("ETH/USD",)))
    assert isinstance(event, SubscriptionConfirmed)
    assert event.missing == {"trades": ("BTC/USD",)}


def test_connection_reset_from_a_lifecycle_event() -> None:
    session = ClientSession(WANTED)
    assert session.connection_reset() == []  # nothing sent yet: nothing to redo
    session.handshake("k", "s")
    assert session.connection_reset() == [RehandshakeNeeded(1)]
    assert state_of(session) is SessionState.CONNECTED


def test_the_secret_is_not_kept() -> None:
    session = ClientSession(WANTED)
    session.handshake("AKEY", "s3cr3t")
    assert "s3cr3t" not in repr(session) and "s3cr3t" not in repr(vars(session))


def test_msgpack_sessions_build_msgpack_messages() -> None:
    session = ClientSession(WANTED, fmt="msgpack")
    payloads = session.handshake("AKEY", "s3cr3t")
    assert all(p[:1] != b"{" for p in payloads)
    assert decode_client_message(payloads[0]) == AuthRequest("AKEY", "s3cr3t")


def test_large_wanted_sets_are_split() -> None:
    session = ClientSession({"trades": [f"S{i}/USD" for i in range(250)]})
    assert len(session.handshake("k", "s")) == 1 + 3


def test_bare_string_symbols_are_refused() -> None:
    with pytest.raises(TypeError):
        ClientSession({"trades": "BTC/USD"})


def test_other_messages_cause_no_events() -> None:
    session = ClientSession(WANTED)
    assert session.receive(Unknown("x", {"T": "x"})) == []
    assert session.receive(Success("something new")) == []
    assert session.receive(OrderBookUpdate("BTC/USD", 0)) == []  # no handshake yet


@pytest.mark.parametrize(
    ("code", "state", "fatal", "retry"),
    [
        (400, SessionState.SUBSCRIBED, False, Retry.NO),
        (402, SessionState.FAILED, True, Retry.NO),
        (403, SessionState.SUBSCRIBED, False, Retry.HARMLESS),
        (404, SessionState.FAILED, False, Retry.RECONNECT),
        (405, SessionState.SUBSCRIBED, False, Retry.NO),
        (406, SessionState.FAILED, False, Retry.BACKOFF),
        (407, SessionState.FAILED, False, Retry.RECONNECT),
        (409, SessionState.FAILED, True, Retry.NO),
        (410, SessionState.SUBSCRIBED, False, Retry.NO),
        (500, SessionState.SUBSCRIBED, False, Retry.BACKOFF),
        (999, SessionState.SUBSCRIBED, False, None),
    ],
)
def test_errors(code: int, state: SessionState, fatal: bool, retry: Retry | None) -> None:
    session = ClientSession(WANTED)
    session.handshake("k", "s")
    session.receive(AUTHENTICATED)
    session.receive(Subscription(trades=("BTC/USD",)))
    [failure] = session.receive(Error(code, "why"))
    assert isinstance(failure, AlpacaFailure)
    assert (failure.code, failure.msg, failure.fatal, failure.retry) == (code, "why", fatal, retry)
    assert str(failure) == f"Alpaca error {code}: why"
    assert state_of(session) is state
    assert session.last_failure == failure and session.errors == 1
    assert (
        session.confirmed == Subscription(trades=("BTC/USD",)).channels()
    )  # a 405 changes nothing
    if code in ErrorCode._value2member_map_:
        assert failure.info is not None and failure.info.code == code


def test_not_authenticated_after_a_handshake_asks_for_a_new_one() -> None:
    session = ClientSession(WANTED)
    session.handshake("k", "s")
    session.receive(AUTHENTICATED)
    events = session.receive(Error(401, "not authenticated"))
    assert [type(e) for e in events] == [AlpacaFailure, RehandshakeNeeded]


def test_406_then_a_new_welcome_asks_for_a_new_handshake() -> None:
    session = ClientSession(WANTED)
    session.receive(CONNECTED)
    session.handshake("k", "s")
    session.receive(Error(406, "connection limit exceeded"))
    assert state_of(session) is SessionState.FAILED
    assert session.receive(CONNECTED) == [Welcome(reconnect=True), RehandshakeNeeded(1)]
    session.handshake("k", "s")
    assert session.receive(AUTHENTICATED) == [Authenticated()]
    assert state_of(session) is SessionState.AUTHENTICATED


def test_a_subscription_after_a_fatal_error_keeps_the_failed_state() -> None:
    session = ClientSession(WANTED)
    session.receive(Error(402, "auth failed"))
    session.receive(Subscription())
    assert state_of(session) is SessionState.FAILED


# ------------------------------------------------------------------ backoff


@given(st.integers(0, 2**32))
def test_backoff_outlasts_the_90_second_slot_within_bounds(seed: int) -> None:
    delays = list(backoff_delays(random.Random(seed)))
    assert all(1.0 <= d <= 30.0 for d in delays)
    assert sum(delays) >= 150.0 > 90.0
    assert sum(delays[:-1]) < 150.0  # finite: it stops once the total is reached
    assert delays[0] <= 1.25
    assert max(delays) > 20.0  # it does grow
    assert delays == list(backoff_delays(random.Random(seed)))


def test_backoff_is_jittered() -> None:
    a = list(backoff_delays(random.Random(1)))
    b = list(backoff_delays(random.Random(2)))
    assert a != b


def test_backoff_without_jitter_is_plain_exponential() -> None:
    delays = list(backoff_delays(random.Random(0), jitter=0, total=100))
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


@pytest.mark.parametrize(
    "kwargs",
    [{"first": 0}, {"first": 40}, {"factor": 0.5}, {"jitter": 1}, {"total": 0}],
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        next(backoff_delays(random.Random(0), **kwargs))


def test_the_greeting_of_a_socket_we_opened_is_no_reconnect() -> None:
    """After a new connection is opened in place of a dead one, its own welcome is expected."""
    session = ClientSession(WANTED)
    session.handshake("k", "s")
    session.expect_greeting()
    assert session.receive(CONNECTED) == [Welcome(reconnect=False)]
    assert state_of(session) is SessionState.CONNECTED
    assert session.receive(CONNECTED) == [Welcome(reconnect=True), RehandshakeNeeded(1)]


@pytest.mark.parametrize(
    "first",
    [AUTHENTICATED, Subscription(trades=("BTC/USD",)), Error(400, "x"), TRADE],
    ids=["authenticated", "subscription", "error", "data"],
)
def test_any_other_message_ends_the_expected_greeting(first: object) -> None:
    session = ClientSession(WANTED)
    session.handshake("k", "s")
    session.expect_greeting()
    session.receive(first)  # type: ignore[arg-type]
    assert session.receive(CONNECTED) == [Welcome(reconnect=True), RehandshakeNeeded(1)]
