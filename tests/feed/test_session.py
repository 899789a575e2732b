"""The pure session state machine and the key registry, with plain values: no sockets, no clock."""

from __future__ import annotations

import msgpack
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alpaca_cli.alpaca.codec import AuthRequest, SubscribeRequest
from alpaca_cli.alpaca.errors import ErrorCode
from alpaca_cli.alpaca.messages import Error, Subscription, Success
from alpaca_cli.devstack.feed.registry import KeyRegistry
from alpaca_cli.devstack.feed.session import (
    Action,
    Close,
    Log,
    Malformed,
    Rules,
    Send,
    Session,
    SessionState,
    Subscribed,
    decode_request,
    error_message,
)

UNIVERSE = ("BTC/USD", "ETH/USD", "SOL/USD")


def make(
    *,
    registry: KeyRegistry | None = None,
    conn_id: int = 1,
    headers: tuple[str, str] | None = None,
    **rules: object,
) -> Session:
    options: dict[str, object] = {"universe": UNIVERSE, **rules}
    return Session(
        Rules(**options),  # type: ignore[arg-type]
        registry or KeyRegistry(1),
        conn_id=conn_id,
        now=100.0,
        header_credentials=headers,
    )


def sent(actions: list[Action]) -> list[object]:
    return [a.message for a in actions if isinstance(a, Send)]


def authed(**rules: object) -> Session:
    session = make(**rules)
    session.start()
    session.receive(AuthRequest("key", "secret"), 101.0)
    assert session.state is SessionState.AUTHENTICATED
    return session


def sub(**channels: list[str]) -> SubscribeRequest:
    return SubscribeRequest({k: tuple(v) for k, v in channels.items()})


def unsub(**channels: list[str]) -> SubscribeRequest:
    return SubscribeRequest({k: tuple(v) for k, v in channels.items()}, unsubscribe=True)


def err(code: int, msg: str) -> Error:
    return Error(code, msg)


class TestAuthentication:
    def test_start_sends_the_welcome_alone(self):
        session = make()
        assert sent(session.start()) == [Success("connected")]
        assert session.state is SessionState.CONNECTED

    def test_header_credentials_authenticate_right_after_the_welcome(self):
        session = make(headers=("key", "secret"))
        assert sent(session.start()) == [Success("connected"), Success("authenticated")]
        assert session.state is SessionState.AUTHENTICATED
        assert session.deadline is None

    def test_bad_header_credentials_get_402_and_keep_the_deadline(self):
        session = make(headers=("key", "bad"), key="key", secret="secret")
        assert sent(session.start())[1] == err(402, "auth failed")
        assert session.state is SessionState.CONNECTED
        assert session.deadline == 110.0

    @pytest.mark.parametrize(
        "key,secret,ok",
        [
            pytest.param("key", "secret", True, id="the-pair"),
            pytest.param("key", "other", False, id="wrong-secret"),
            pytest.param("other", "secret", False, id="wrong-key"),
            pytest.param("", "", False, id="empty"),
        ],
    )
    def test_only_the_configured_pair_authenticates(self, key, secret, ok):
        session = make(key="key", secret="secret")
        session.start()
        reply = sent(session.receive(AuthRequest(key, secret), 101.0))
        assert reply == [Success("authenticated") if ok else err(402, "auth failed")]

    def test_without_a_configured_pair_any_non_empty_pair_works(self):
        session = make()
        session.start()
        assert sent(session.receive(AuthRequest("k", ""), 101.0)) == [err(402, "auth failed")]
        assert sent(session.receive(AuthRequest("k", "s"), 101.0)) == [Success("authenticated")]

    def test_second_auth_is_403_and_changes_nothing(self):
        session = authed()
        assert sent(session.receive(AuthRequest("key", "secret"), 102.0)) == [
            err(403, "already authenticated")
        ]
        assert session.state is SessionState.AUTHENTICATED

    def test_auth_timeout_is_404_then_close_at_the_deadline_not_before(self):
        session = make(auth_timeout=10.0)
        session.start()
        assert session.poll(109.99) == []
        actions = session.poll(110.0)
        assert sent(actions) == [err(404, "auth timeout")]
        assert isinstance(actions[-1], Close)
        assert session.state is SessionState.CLOSED
        assert session.receive(AuthRequest("key", "secret"), 111.0) == []

    def test_a_message_arriving_after_the_deadline_times_out_instead(self):
        session = make(auth_timeout=10.0)
        session.start()
        assert sent(session.receive(AuthRequest("key", "secret"), 120.0)) == [
            err(404, "auth timeout")
        ]

    def test_an_authenticated_session_never_times_out(self):
        session = authed()
        assert session.poll(10_000.0) == []


class TestConnectionLimit:
    def test_406_when_the_key_holds_its_slots_then_close(self):
        registry = KeyRegistry(1)
        first = make(registry=registry, conn_id=1)
        second = make(registry=registry, conn_id=2)
        first.start()
        second.start()
        first.receive(AuthRequest("key", "s"), 101.0)
        actions = second.receive(AuthRequest("key", "s"), 101.0)
        assert sent(actions) == [err(406, "connection limit exceeded")]
        assert isinstance(actions[-1], Close)
        assert second.state is SessionState.CLOSED

    def test_closing_frees_the_slot(self):
        registry = KeyRegistry(1)
        first = make(registry=registry, conn_id=1)
        first.start()
        first.receive(AuthRequest("key", "s"), 101.0)
        first.close()
        first.close()  # idempotent
        assert registry.held("key") == 0
        third = make(registry=registry, conn_id=3)
        third.start()
        assert sent(third.receive(AuthRequest("key", "s"), 101.0)) == [Success("authenticated")]

    def test_a_refused_or_unauthenticated_session_holds_no_slot(self):
        registry = KeyRegistry(1)
        session = make(registry=registry, key="key", secret="secret")
        session.start()
        session.receive(AuthRequest("key", "wrong"), 101.0)
        assert registry.held("key") == 0

    def test_registry_counts_per_key(self):
        registry = KeyRegistry(2)
        assert registry.acquire("a", 1) and registry.acquire("a", 2)
        assert registry.acquire("a", 2), "re-acquiring a held slot is fine"
        assert not registry.acquire("a", 3)
        assert registry.acquire("b", 3)
        registry.release("a", 1)
        registry.release("zzz", 9)
        assert registry.acquire("a", 3)
        with pytest.raises(ValueError):
            KeyRegistry(0)


class TestSubscriptions:
    def test_subscribe_before_auth_is_401(self):
        session = make()
        session.start()
        assert sent(session.receive(sub(trades=["BTC/USD"]), 101.0)) == [
            err(401, "not authenticated")
        ]
        assert sent(session.receive(unsub(trades=["BTC/USD"]), 101.0)) == [
            err(401, "not authenticated")
        ]

    def test_additive_subscribe_and_unsubscribe_answer_the_whole_set(self):
        session = authed()
        assert sent(session.receive(sub(trades=["BTC/USD"], quotes=["ETH/USD"]), 102.0)) == [
            Subscription(trades=("BTC/USD",), quotes=("ETH/USD",))
        ]
        assert sent(session.receive(sub(trades=["ETH/USD", "BTC/USD"]), 102.0)) == [
            Subscription(trades=("BTC/USD", "ETH/USD"), quotes=("ETH/USD",))
        ]
        assert sent(session.receive(unsub(trades=["BTC/USD"], bars=["SOL/USD"]), 102.0)) == [
            Subscription(trades=("ETH/USD",), quotes=("ETH/USD",))
        ]

    def test_subscribed_names_books_that_need_a_snapshot_and_books_gone(self):
        session = authed()
        actions = session.receive(sub(orderbooks=["BTC/USD"]), 102.0)
        change = next(a for a in actions if isinstance(a, Subscribed))
        assert change.new_books == ("BTC/USD",)
        actions = session.receive(sub(orderbooks=["*"]), 102.0)
        change = next(a for a in actions if isinstance(a, Subscribed))
        assert change.new_books == ("ETH/USD", "SOL/USD"), "BTC/USD already flows"
        actions = session.receive(unsub(orderbooks=["*"]), 102.0)
        change = next(a for a in actions if isinstance(a, Subscribed))
        assert change.gone_books == ("ETH/USD", "SOL/USD")
        assert change.targets.symbols("orderbooks") == ("BTC/USD",)

    def test_wildcard_expands_to_the_universe_plus_named_extras(self):
        session = authed()
        session.receive(sub(trades=["*", "XRP/USD", "BTC/USD"]), 102.0)
        assert session.targets.symbols("trades") == (*UNIVERSE, "XRP/USD")
        assert session.subscriptions()["trades"] == ["*", "XRP/USD", "BTC/USD"]
        assert session.targets.wants("trades", "SOL/USD")
        assert not session.targets.wants("quotes", "SOL/USD")

    def test_405_rejects_the_whole_request_and_sends_no_subscription(self):
        session = authed(symbol_limit=2)
        session.receive(sub(trades=["BTC/USD"]), 102.0)
        actions = session.receive(sub(quotes=["BTC/USD"], trades=["ETH/USD", "SOL/USD"]), 102.0)
        assert sent(actions) == [err(405, "symbol limit exceeded")]
        assert not any(isinstance(a, Subscribed) for a in actions)
        assert session.subscriptions()["quotes"] == []
        assert session.subscriptions()["trades"] == ["BTC/USD"]

    def test_the_wildcard_counts_as_the_whole_universe_against_the_limit(self):
        session = authed(symbol_limit=2)
        assert sent(session.receive(sub(trades=["*"]), 102.0)) == [
            err(405, "symbol limit exceeded")
        ]
        session = authed(symbol_limit=3)
        assert sent(session.receive(sub(trades=["*"]), 102.0)) == [Subscription(trades=("*",))]

    def test_unsubscribe_is_never_limited(self):
        session = authed(symbol_limit=1)
        session.receive(sub(trades=["BTC/USD"]), 102.0)
        assert sent(session.receive(unsub(trades=["BTC/USD", "ETH/USD"]), 102.0)) == [
            Subscription()
        ]

    def test_410_for_a_channel_this_feed_lacks_and_nothing_changes(self):
        session = authed()
        actions = session.receive(sub(trades=["BTC/USD"], lulds=["BTC/USD"]), 102.0)
        assert sent(actions) == [err(410, "invalid subscribe action for this feed")]
        assert session.subscriptions()["trades"] == []

    def test_an_empty_list_on_a_channel_this_feed_lacks_is_no_request(self):
        session = authed()
        actions = session.receive(sub(trades=["BTC/USD"], statuses=[], news=[]), 102.0)
        assert sent(actions) == [Subscription(trades=("BTC/USD",))]

    @pytest.mark.parametrize("symbol", ["btc/usd", "BTCUSD", "BTC/", "/USD", "BTC/USD/X", ""])
    def test_400_for_a_badly_formed_symbol(self, symbol):
        session = authed()
        assert sent(session.receive(sub(trades=["BTC/USD", symbol]), 102.0)) == [
            err(400, "invalid syntax")
        ]
        assert session.subscriptions()["trades"] == []

    def test_400_for_a_frame_that_did_not_decode(self):
        session = make()
        session.start()
        assert sent(session.receive(Malformed("not valid JSON"), 101.0)) == [
            err(400, "invalid syntax")
        ]
        assert session.state is SessionState.CONNECTED


class TestSecrets:
    # Symbols only, so that a secret cannot be a word the actions legitimately contain.
    @given(secret=st.text(alphabet="#$%&*+;<=>?@^~!|", min_size=4))
    def test_no_action_or_repr_ever_carries_the_secret(self, secret):
        registry = KeyRegistry(1)
        holder = make(registry=registry, conn_id=1, key="AKSECRETKEY", secret=secret)
        other = make(registry=registry, conn_id=2, headers=("AKSECRETKEY", secret + "x"))
        actions = holder.start() + holder.receive(AuthRequest("AKSECRETKEY", secret), 101.0)
        actions += other.start() + other.receive(AuthRequest("AKSECRETKEY", secret), 101.0)
        actions += holder.receive(sub(trades=["BTC/USD"]), 102.0) + holder.poll(999.0)
        text = " ".join(repr(a) for a in actions) + repr(holder.rules)
        assert secret not in text
        logs = " ".join(a.text for a in actions if isinstance(a, Log))
        assert "AKSECRETKEY" not in logs, "key ids are shortened in logs"
        assert "AKSE…" in logs


GO_SDK_CHANNELS = (
    "trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "imbalances", "lulds",
    "orderbooks", "news", "pricing",
)  # fmt: skip
"""Every key Alpaca's Go SDK puts in a subscribe (``marketdata/stream/subscription.go``)."""


def go_sdk_subscribe(action: str = "subscribe", **used: list[str]) -> bytes:
    """The Go SDK's message: msgpack, every channel key, ``nil`` for the unused ones."""
    return msgpack.packb({"action": action, **{c: used.get(c) for c in GO_SDK_CHANNELS}})


class TestDecodeRequest:
    def test_the_go_sdks_null_channels_are_no_request(self):
        message = decode_request(go_sdk_subscribe(trades=["BTC/USD"], orderbooks=["ETH/USD"]))
        assert message == SubscribeRequest({"trades": ("BTC/USD",), "orderbooks": ("ETH/USD",)})

    def test_null_channels_in_json_and_in_an_unsubscribe_too(self):
        payload = orjson.dumps({"action": "unsubscribe", "quotes": ["BTC/USD"], "news": None})
        assert decode_request(payload) == SubscribeRequest(
            {"quotes": ("BTC/USD",)}, unsubscribe=True
        )
        assert decode_request(payload.decode()) == decode_request(payload)

    def test_a_strict_message_decodes_as_the_codec_does(self):
        assert decode_request(b'{"action":"auth","key":"k","secret":"s"}') == AuthRequest("k", "s")

    @pytest.mark.parametrize(
        "payload",
        [
            pytest.param(b'{"action":"subscribe","trades":"BTC","news":null}', id="str-channel"),
            pytest.param(b'{"action":"subscribe","trades":[1],"news":null}', id="int-symbol"),
            pytest.param(b'{"action":"dance","trades":null}', id="unknown-action"),
            pytest.param(b"{not json", id="not-json"),
            pytest.param(b"\xc1", id="not-msgpack"),
        ],
    )
    def test_anything_else_malformed_stays_malformed(self, payload):
        assert isinstance(decode_request(payload), Malformed)

    def test_the_go_sdks_subscribe_is_answered_with_the_whole_set(self):
        session = authed()
        message = decode_request(go_sdk_subscribe(trades=["BTC/USD"]))
        assert not isinstance(message, Malformed)
        assert sent(session.receive(message, 102.0)) == [Subscription(trades=("BTC/USD",))]

    def test_a_non_empty_list_on_a_channel_this_feed_lacks_is_still_410(self):
        session = authed()
        message = decode_request(go_sdk_subscribe(trades=["BTC/USD"], news=["*"]))
        assert not isinstance(message, Malformed)
        assert sent(session.receive(message, 102.0)) == [
            err(410, "invalid subscribe action for this feed")
        ]
        assert session.subscriptions()["trades"] == []


def test_411_insufficient_scope_has_the_tables_exact_text():
    assert error_message(ErrorCode.INSUFFICIENT_SCOPE) == Error(411, "insufficient scope")
    assert str(ErrorCode(411)) == "411 insufficient scope"
