"""The codec on the spec's literal frames, on msgpack, on round trips, and on garbage."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgpack import Timestamp

from alpaca_cli.alpaca import codec
from alpaca_cli.alpaca.codec import (
    AuthRequest,
    DecodeError,
    SubscribeRequest,
    decode,
    decode_client_message,
    decode_json,
    decode_msgpack,
    encode_auth,
    encode_client_message,
    encode_frame,
    encode_subscribe,
    is_valid_symbol,
    to_wire,
)
from alpaca_cli.alpaca.messages import (
    Bar,
    Error,
    Level,
    Message,
    OrderBookUpdate,
    Quote,
    Subscription,
    Success,
    Trade,
    Unknown,
)
from alpaca_cli.alpaca.timestamps import parse_rfc3339

# The spec's examples, byte for byte.
SPEC_TRADE = b'{"T":"t","S":"AVAX/USD","p":47.299,"s":29.205707815,"t":"2024-03-12T10:27:48.858228144Z","i":3447222699101865076,"tks":"S"}'  # noqa: E501
SPEC_QUOTE = b'{"T":"q","S":"BAT/USD","bp":0.35718,"bs":13445.46,"ap":0.3581,"as":13561.902,"t":"2024-03-12T10:29:43.111588173Z"}'  # noqa: E501
SPEC_BAR = b'{"T":"b","S":"BTC/USD","o":26675.04,"h":26695.36,"l":26668.79,"c":26688.7,"v":3.227759152,"t":"2023-03-17T12:28:00Z","n":93,"vw":26679.5912436798}'  # noqa: E501
SPEC_BOOK_RESET = b'{"T":"o","S":"BTC/USD","t":"2024-03-12T10:38:50.79613221Z","b":[{"p":71859.53,"s":0.27994},{"p":71849.4,"s":0.553986}],"a":[{"p":71939.7,"s":0.83953}],"r":true}'  # noqa: E501
SPEC_BOOK_ASK = b'{"T":"o","S":"MKR/USD","t":"2024-03-12T10:39:39.445492807Z","b":[],"a":[{"p":2614.587,"s":12.5308}]}'  # noqa: E501
SPEC_BOOK_DELETE = (
    b'{"T":"o","S":"CRV/USD","t":"2024-03-12T10:39:40.501160019Z","b":[{"p":0.7904,"s":0}],"a":[]}'
)
SPEC_SUBSCRIPTION = b'[{"T":"subscription","trades":["BTC/USD"],"quotes":[],"orderbooks":["BTC/USD"],"bars":[],"updatedBars":[],"dailyBars":[]}]'  # noqa: E501


def frame(*objs: bytes) -> bytes:
    return b"[" + b",".join(objs) + b"]"


class TestSpecExamples:
    def test_trade_keeps_nanoseconds_the_64_bit_id_and_the_taker_side(self) -> None:
        [trade] = decode(frame(SPEC_TRADE))
        assert trade == Trade(
            symbol="AVAX/USD",
            price=47.299,
            size=29.205707815,
            t=1710239268_858228144,
            id=3447222699101865076,
            taker_side="S",
        )
        assert isinstance(trade, Trade)
        assert trade.id > 2**53 and trade.id == 3447222699101865076
        assert trade.extra is None

    def test_quote(self) -> None:
        assert decode(frame(SPEC_QUOTE)) == [
            Quote("BAT/USD", 0.35718, 13445.46, 0.3581, 13561.902, 1710239383_111588173)
        ]

    def test_bar(self) -> None:
        [bar] = decode(frame(SPEC_BAR))
        assert bar == Bar.of(
            "b", "BTC/USD", 26675.04, 26695.36, 26668.79, 26688.7, 3.227759152,
            1679056080_000000000, 93, 26679.5912436798,
        )  # fmt: skip
        assert bar.T == "b"

    @pytest.mark.parametrize("kind", ["d", "u"])
    def test_daily_and_updated_bars_share_the_bar_shape(self, kind: str) -> None:
        [bar] = decode(frame(SPEC_BAR.replace(b'"T":"b"', f'"T":"{kind}"'.encode())))
        assert isinstance(bar, Bar)
        assert bar.kind == kind and kind == bar.T and bar.trade_count == 93

    def test_orderbooks(self) -> None:
        assert decode(frame(SPEC_BOOK_RESET, SPEC_BOOK_ASK, SPEC_BOOK_DELETE)) == [
            OrderBookUpdate(
                "BTC/USD",
                1710239930_796132210,
                bids=[Level(71859.53, 0.27994), Level(71849.4, 0.553986)],
                asks=[Level(71939.7, 0.83953)],
                reset=True,
            ),
            OrderBookUpdate("MKR/USD", 1710239979_445492807, [], [Level(2614.587, 12.5308)]),
            OrderBookUpdate("CRV/USD", 1710239980_501160019, [Level(0.7904, 0)], []),
        ]

    def test_control_messages(self) -> None:
        assert decode(b'[{"T":"success","msg":"connected"}]') == [Success("connected")]
        assert decode(b'[{"T":"success","msg":"authenticated"}]') == [Success("authenticated")]
        assert decode(b'[{"T":"error","code":406,"msg":"connection limit exceeded"}]') == [
            Error(406, "connection limit exceeded")
        ]
        assert decode(SPEC_SUBSCRIPTION) == [
            Subscription(trades=("BTC/USD",), orderbooks=("BTC/USD",))
        ]

    def test_a_subscription_with_missing_keys_means_empty_channels(self) -> None:
        [sub] = decode(b'[{"T":"subscription","quotes":["ETH/USD"]}]')
        assert isinstance(sub, Subscription)
        assert sub.channels() == {
            "trades": (), "quotes": ("ETH/USD",), "orderbooks": (), "bars": (),
            "updatedBars": (), "dailyBars": (),
        }  # fmt: skip

    def test_mixed_batch_keeps_order(self) -> None:
        msgs = decode(frame(SPEC_TRADE, SPEC_QUOTE, SPEC_BAR, SPEC_BOOK_ASK))
        assert [m.T for m in msgs] == ["t", "q", "b", "o"]

    def test_orderbook_with_a_missing_side_is_accepted(self) -> None:
        [book] = decode(b'[{"T":"o","S":"X/Y","t":"2024-03-12T10:39:40Z","a":[{"p":1,"s":2}]}]')
        assert book == OrderBookUpdate(
            "X/Y", parse_rfc3339("2024-03-12T10:39:40Z"), [], [Level(1, 2)]
        )


class TestUnknowns:
    def test_unknown_type_is_kept_whole(self) -> None:
        raw = {"T": "lulds", "S": "BTC/USD", "x": [1, 2]}
        assert decode(orjson.dumps([raw])) == [Unknown("lulds", raw)]

    def test_unknown_keys_are_kept_in_extra(self) -> None:
        obj = orjson.loads(SPEC_TRADE)
        obj["z"] = "zed"
        obj["nested"] = {"a": 1}
        [trade] = decode(orjson.dumps([obj]))
        assert isinstance(trade, Trade)
        assert trade.extra == {"z": "zed", "nested": {"a": 1}}
        assert trade.price == 47.299

    @pytest.mark.parametrize(
        "raw",
        [SPEC_QUOTE, SPEC_BAR, SPEC_BOOK_RESET, b'{"T":"success","msg":"connected"}',
         b'{"T":"error","code":400,"msg":"invalid syntax"}', b'{"T":"subscription"}'],
        ids=["q", "b", "o", "success", "error", "subscription"],
    )  # fmt: skip
    def test_every_type_keeps_unknown_keys(self, raw: bytes) -> None:
        obj = orjson.loads(raw)
        [plain] = decode(frame(raw))
        assert plain.extra is None  # type: ignore[union-attr]
        obj["new"] = 1
        [msg] = decode(orjson.dumps([obj]))
        assert msg.extra == {"new": 1}  # type: ignore[union-attr]
        assert orjson.loads(encode_frame([msg]))[0]["new"] == 1

    def test_trade_without_taker_side_is_accepted(self) -> None:
        obj = orjson.loads(SPEC_TRADE)
        del obj["tks"]
        obj["q"] = 1
        [trade] = decode(orjson.dumps([obj]))
        assert isinstance(trade, Trade)
        assert trade.taker_side is None and trade.extra == {"q": 1}

    def test_empty_frame(self) -> None:
        assert decode(b"[]") == []


def _msgpack_frame(*objs: bytes) -> bytes:
    """A frame as Alpaca sends it in msgpack mode: ``T`` first, ``t`` a Timestamp ext."""
    out = []
    for raw in objs:
        obj: dict[str, Any] = orjson.loads(raw)
        if "t" in obj:
            ns = parse_rfc3339(obj["t"])
            obj["t"] = Timestamp.from_unix_nano(ns)
        out.append(obj)
    packed: bytes = msgpack.packb(out)
    return packed


def _frame_with_ext(code: int, data: bytes, after: bytes | None = None) -> bytes:
    """A msgpack frame of a trade whose ``t`` is the extension ``code`` holding ``data``
    (``msgpack.ExtType`` refuses the negative codes), after the JSON message ``after``."""
    placeholder = "\x00placeholder"
    trade = {"T": "t", "S": "BTC/USD", "p": 1.0, "s": 2.0, "t": placeholder, "i": 1}
    msgs = [orjson.loads(after), trade] if after is not None else [trade]
    head = {4: b"\xd6", 8: b"\xd7", 16: b"\xd8"}.get(len(data), b"\xc7" + bytes([len(data)]))
    ext = head + (code & 0xFF).to_bytes(1, "big") + data
    return msgpack.packb(msgs).replace(msgpack.packb(placeholder), ext)


class TestMsgpack:
    def test_spec_frames_decode_the_same_as_json(self) -> None:
        objs = (SPEC_TRADE, SPEC_QUOTE, SPEC_BAR, SPEC_BOOK_RESET, SPEC_BOOK_DELETE)
        payload = _msgpack_frame(*objs)
        assert payload[0] == 0x95  # a fixarray: auto-detection must pick msgpack
        assert decode(payload) == decode_msgpack(payload) == decode_json(frame(*objs))

    def test_timestamp_ext_keeps_nanoseconds(self) -> None:
        payload = _msgpack_frame(SPEC_TRADE)
        assert b"\xd7\xff" in payload or b"\xc7\x0c\xff" in payload  # ext type -1
        [trade] = decode(payload)
        assert trade.timestamp == 1710239268_858228144  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("code", "data", "ns"),
        [
            (-1, (5).to_bytes(4, "big"), 5_000_000_000),  # 4 bytes: seconds
            (-1, ((7 << 34) | 5).to_bytes(8, "big"), 5_000_000_007),  # 8: 30-bit ns, 34-bit s
            (-1, (7).to_bytes(4, "big") + (-5).to_bytes(8, "big", signed=True), -4_999_999_993),
        ],
    )
    def test_each_timestamp_form_becomes_nanoseconds(self, code: int, data: bytes, ns: int) -> None:
        [msg] = decode(_frame_with_ext(code, data))
        assert msg.timestamp == ns  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("code", "data"),
        [
            (-1, ((10**9) << 34).to_bytes(8, "big")),  # nanoseconds out of range, 8-byte form
            (-1, (10**9).to_bytes(4, "big") + bytes(8)),  # the same, 12-byte form
            (-1, bytes(6)),  # no such form
            (5, bytes(8)),  # another extension
        ],
    )
    def test_a_bad_timestamp_ext_is_a_decode_error_of_t(self, code: int, data: bytes) -> None:
        with pytest.raises(DecodeError) as info:
            decode(_frame_with_ext(code, data, after=SPEC_QUOTE))
        assert (info.value.index, info.value.field) == (1, "t")

    def test_control_frames(self) -> None:
        payload = msgpack.packb([{"T": "success", "msg": "connected"}])
        assert decode(payload) == [Success("connected")]

    def test_msgpack_string_timestamps_are_accepted_too(self) -> None:
        assert decode(msgpack.packb([orjson.loads(SPEC_QUOTE)])) == decode(frame(SPEC_QUOTE))

    def test_encode_frame_puts_T_first_and_uses_timestamp_ext(self) -> None:
        msgs = decode(frame(SPEC_TRADE, SPEC_BOOK_RESET))
        objs = msgpack.unpackb(encode_frame(msgs, "msgpack"), timestamp=0)
        assert all(next(iter(o)) == "T" for o in objs)
        assert objs[0]["t"] == Timestamp.from_unix_nano(1710239268_858228144)


class TestEncodeJson:
    def test_encode_frame_reproduces_the_spec_bytes(self) -> None:
        for raw in (SPEC_TRADE, SPEC_QUOTE, SPEC_BAR, SPEC_BOOK_RESET, SPEC_BOOK_ASK):
            assert encode_frame(decode(frame(raw))) == frame(raw)
        assert encode_frame(decode(SPEC_SUBSCRIPTION)) == SPEC_SUBSCRIPTION

    def test_unknown_raw_with_a_msgpack_timestamp_encodes_to_json(self) -> None:
        msg = Unknown("x", {"T": "x", "t": Timestamp(1, 5)})
        assert orjson.loads(encode_frame([msg])) == [
            {"T": "x", "t": "1970-01-01T00:00:01.000000005Z"}
        ]

    def test_unknown_format_is_refused(self) -> None:
        with pytest.raises(ValueError):
            encode_frame([Success("connected")], "xml")  # type: ignore[arg-type]

    def test_to_wire_omits_absent_optional_keys(self) -> None:
        assert "r" not in to_wire(OrderBookUpdate("A/B", 0))
        assert "tks" not in to_wire(Trade("A/B", 1.0, 1.0, 0, 1))


# ------------------------------------------------------------------ round trips (hypothesis)

finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
ns = st.integers(-62135596800 * 10**9, 253402300799 * 10**9 + 999_999_999)
text = st.text(max_size=10)
scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text
    | st.floats(allow_nan=False, allow_infinity=False)
)  # fmt: skip
extras = st.none() | st.dictionaries(text.map(lambda k: "x_" + k), scalars, min_size=1, max_size=3)
levels = st.lists(st.builds(Level, finite, finite), max_size=5)
symbols = st.lists(text, max_size=4).map(tuple)
KNOWN_T = {"t", "q", "b", "d", "u", "o", "success", "subscription", "error"}

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Trade, text, finite, finite, ns, st.integers(-(2**63), 2**64 - 1),
              st.none() | st.sampled_from(["B", "S"]) | text, extras),
    st.builds(Quote, text, finite, finite, finite, finite, ns, extras),
    st.builds(Bar.of, st.sampled_from(["b", "d", "u"]), text, finite, finite, finite, finite,
              finite, ns, st.integers(-(2**63), 2**63 - 1), finite, extras),
    st.builds(OrderBookUpdate, text, ns, levels, levels, st.booleans(), extras),
    st.builds(Success, text, extras),
    st.builds(Subscription, symbols, symbols, symbols, symbols, symbols, symbols, extras),
    st.builds(Error, st.integers(-(2**63), 2**63 - 1), text, extras),
    st.builds(
        lambda t, rest: Unknown(t, {"T": t, **rest}),
        text.filter(lambda t: t not in KNOWN_T),
        st.dictionaries(text.filter(lambda k: k != "T"), scalars, max_size=3),
    ),
)  # fmt: skip


@settings(max_examples=150)
@given(st.lists(messages, max_size=6), st.sampled_from(["json", "msgpack"]))
def test_decode_inverts_encode_frame(msgs: list[Message], fmt: codec.Format) -> None:
    payload = encode_frame(msgs, fmt)
    assert decode(payload) == msgs
    if fmt == "json":
        assert decode(payload.decode()) == msgs


# ------------------------------------------------------------------ malformed input (hypothesis)

json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)


def _decodes_or_raises_decode_error(payload: bytes | str) -> None:
    try:
        result = decode(payload)
    except DecodeError:
        return
    assert isinstance(result, list)


@given(st.binary(max_size=64))
def test_random_bytes_raise_only_decode_error(payload: bytes) -> None:
    _decodes_or_raises_decode_error(payload)
    _decodes_or_raises_decode_error(b"[" + payload)


@given(json_values, st.sampled_from(["json", "msgpack"]))
def test_random_values_raise_only_decode_error(value: Any, fmt: str) -> None:
    payload = orjson.dumps(value) if fmt == "json" else msgpack.packb(value)
    _decodes_or_raises_decode_error(payload)
    _decodes_or_raises_decode_error(
        orjson.dumps([value]) if fmt == "json" else msgpack.packb([value])
    )


SPEC_OBJECTS = [
    *(orjson.loads(raw) for raw in (SPEC_TRADE, SPEC_QUOTE, SPEC_BAR, SPEC_BOOK_RESET)),
    orjson.loads(SPEC_BOOK_DELETE),
    {"T": "success", "msg": "connected"},
    {"T": "error", "code": 402, "msg": "auth failed"},
    orjson.loads(SPEC_SUBSCRIPTION)[0],
]  # fmt: skip


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SPEC_OBJECTS),
    st.data(),
    st.sampled_from(["json", "msgpack"]),
)
def test_mutated_spec_messages_raise_only_decode_error(
    base: dict[str, Any], data: st.DataObject, fmt: str
) -> None:
    obj = dict(base)
    key = data.draw(st.sampled_from(sorted(obj)))
    if data.draw(st.booleans()):
        del obj[key]
    else:
        obj[key] = data.draw(json_values | st.just(Timestamp(1, 2)) | st.just([{"p": "x"}]))
    payload = orjson.dumps([obj], default=str) if fmt == "json" else msgpack.packb([obj])
    _decodes_or_raises_decode_error(payload)


@pytest.mark.parametrize(
    ("payload", "index", "field"),
    [
        (b'{"T":"t"}', None, None),
        (b"[1]", 0, "T"),
        (b'[{"T":"success","msg":"connected"},{"S":"X"}]', 1, "T"),
        (b'[{"T":7}]', 0, "T"),
        (b'[{"T":"t","S":"A/B","p":1,"s":1,"t":"2024-03-12T10:27:48Z"}]', 0, "i"),
        (b'[{"T":"t","S":"A/B","p":true,"s":1,"t":"2024-03-12T10:27:48Z","i":1}]', 0, "p"),
        (b'[{"T":"t","S":"A/B","p":1,"s":1,"t":"2024-03-12T10:27:48Z","i":1.5}]', 0, "i"),
        (b'[{"T":"t","S":"A/B","p":1,"s":1,"t":"yesterday","i":1}]', 0, "t"),
        (b'[{"T":"t","S":"A/B","p":1,"s":1,"t":5,"i":1}]', 0, "t"),
        (b'[{"T":"q","S":"A/B","bp":1,"bs":1,"ap":1,"as":"1","t":"2024-03-12T10:27:48Z"}]',
         0, "as"),
        (b'[{"T":"b","S":"A/B","o":1,"h":1,"l":1,"c":1,"v":1,"t":"2024-03-12T10:27:48Z",'
         b'"n":1.0,"vw":1}]', 0, "n"),
        (b'[{"T":"o","S":"A/B","t":"2024-03-12T10:27:48Z","b":[{"p":1,"s":null}]}]', 0, "b"),
        (b'[{"T":"o","S":"A/B","t":"2024-03-12T10:27:48Z","a":{"p":1}}]', 0, "a"),
        (b'[{"T":"o","S":"A/B","t":"2024-03-12T10:27:48Z","r":1}]', 0, "r"),
        (b'[{"T":"o","t":"2024-03-12T10:27:48Z"}]', 0, "S"),
        (b'[{"T":"error","code":"406","msg":"x"}]', 0, "code"),
        (b'[{"T":"error","code":true,"msg":"x"}]', 0, "code"),
        (b'[{"T":"success"}]', 0, "msg"),
        (b'[{"T":"subscription","trades":"BTC/USD"}]', 0, "trades"),
        (b'[{"T":"subscription","bars":[1]}]', 0, "bars"),
    ],
)  # fmt: skip
def test_malformed_frames_name_the_message_and_field(
    payload: bytes, index: int | None, field: str | None
) -> None:
    with pytest.raises(DecodeError) as info:
        decode(payload)
    assert info.value.index == index
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("payload", [b"", b"   ", b"[", b"\xc1", "[{]", b"\x91\x01"])
def test_unparseable_payloads(payload: bytes | str) -> None:
    with pytest.raises(DecodeError):
        decode(payload)


def test_json_detection_skips_leading_whitespace() -> None:
    assert decode(b' \n\t[{"T":"success","msg":"connected"}]') == [Success("connected")]
    assert decode(bytearray(b'[{"T":"success","msg":"connected"}]')) == [Success("connected")]
    assert decode(memoryview(b'[{"T":"success","msg":"connected"}]')) == [Success("connected")]


# ------------------------------------------------------------------ client messages


class TestClientMessages:
    @pytest.mark.parametrize("fmt", ["json", "msgpack"])
    def test_auth_round_trip(self, fmt: codec.Format) -> None:
        payload = encode_auth("AKEY", "s3cr3t", fmt)
        if fmt == "json":
            assert orjson.loads(payload) == {"action": "auth", "key": "AKEY", "secret": "s3cr3t"}
        else:
            assert msgpack.unpackb(payload) == {"action": "auth", "key": "AKEY", "secret": "s3cr3t"}
        msg = decode_client_message(payload)
        assert msg == AuthRequest("AKEY", "s3cr3t")
        assert encode_client_message(msg, fmt) == payload

    def test_the_secret_never_shows_in_a_repr_or_str(self) -> None:
        msg = decode_client_message(encode_auth("AKEY", "s3cr3t"))
        assert "s3cr3t" not in repr(msg) and "s3cr3t" not in str(msg)
        assert "AKEY" in repr(msg)

    def test_a_malformed_client_message_error_never_contains_the_secret(self) -> None:
        for payload in (
            b'{"action":"auth","key":1,"secret":"s3cr3t"}',
            b'{"action":"auht","key":"k","secret":"s3cr3t"}',
            b'{"action":"auth","key":"k","secret":"s3cr3t"',
            b'{"action":"auth","key":"k","secret":["s3cr3t"]}',
        ):
            with pytest.raises(DecodeError) as info:
                decode_client_message(payload)
            assert "s3cr3t" not in str(info.value) and "s3cr3t" not in repr(info.value)

    @pytest.mark.parametrize("fmt", ["json", "msgpack"])
    def test_subscribe_and_unsubscribe(self, fmt: codec.Format) -> None:
        [sub] = encode_subscribe(
            {"trades": ["BTC/USD"], "orderbooks": ["BTC/USD", "ETH/USD"]}, fmt=fmt
        )
        assert decode_client_message(sub) == SubscribeRequest(
            {"trades": ("BTC/USD",), "orderbooks": ("BTC/USD", "ETH/USD")}
        )
        [unsub] = encode_subscribe({"quotes": ["*"]}, unsubscribe=True, fmt=fmt)
        msg = decode_client_message(unsub)
        assert msg == SubscribeRequest({"quotes": ("*",)}, unsubscribe=True)
        assert isinstance(msg, SubscribeRequest) and msg.action == "unsubscribe"

    def test_subscribe_keeps_unknown_channels_for_the_server_to_refuse(self) -> None:
        msg = decode_client_message(b'{"action":"subscribe","lulds":["BTC/USD"]}')
        assert msg == SubscribeRequest({"lulds": ("BTC/USD",)})

    @pytest.mark.parametrize(
        "payload",
        [b"[]", b'"auth"', b"{}", b'{"action":"listen"}',
         b'{"action":"subscribe","trades":"BTC/USD"}',
         b'{"action":"subscribe","trades":[1]}', b'{"action":"auth","key":"k"}', b"\x81\x01\x02",
         msgpack.packb({"action": "subscribe", b"trades": ["X/Y"]}), b"", b"  "],
    )  # fmt: skip
    def test_malformed_client_messages(self, payload: bytes) -> None:
        with pytest.raises(DecodeError):
            decode_client_message(payload)

    @given(json_values | st.binary(max_size=40))
    def test_any_client_payload_parses_or_raises_decode_error(self, value: Any) -> None:
        payloads = (
            [value] if isinstance(value, bytes) else [orjson.dumps(value), msgpack.packb(value)]
        )
        for payload in payloads:
            with contextlib.suppress(DecodeError):
                decode_client_message(payload)

    def test_subscribe_rejects_a_bare_string_of_symbols(self) -> None:
        with pytest.raises(TypeError):
            encode_subscribe({"trades": "BTC/USD"})

    def test_nothing_to_subscribe_gives_no_message(self) -> None:
        assert encode_subscribe({"trades": [], "quotes": ()}) == []


@settings(max_examples=80)
@given(
    st.dictionaries(
        st.sampled_from(["trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars"]),
        st.lists(st.integers(0, 400).map(lambda i: f"S{i}/USD"), max_size=260),
        max_size=6,
    ),
    st.integers(1, 120),
)
def test_subscribe_splits_into_messages_of_at_most_the_limit(
    channels: dict[str, list[str]], limit: int
) -> None:
    payloads = encode_subscribe(channels, max_symbols=limit)
    wanted = {ch: list(dict.fromkeys(syms)) for ch, syms in channels.items() if syms}
    total = sum(len(v) for v in wanted.values())
    assert len(payloads) == math.ceil(total / limit)
    got: dict[str, list[str]] = {}
    for payload in payloads:
        msg = decode_client_message(payload)
        assert isinstance(msg, SubscribeRequest) and not msg.unsubscribe
        assert 0 < sum(len(v) for v in msg.channels.values()) <= limit
        for ch, syms in msg.channels.items():
            got.setdefault(ch, []).extend(syms)
    assert got == wanted


def test_default_split_is_100_symbols() -> None:
    payloads = encode_subscribe(
        {"trades": [f"S{i}/USD" for i in range(150)], "quotes": ["A/B"] * 3}
    )
    sizes = [sum(len(v) for k, v in orjson.loads(p).items() if k != "action") for p in payloads]
    assert sizes == [100, 51]


@pytest.mark.parametrize(
    ("symbol", "ok"),
    [("BTC/USD", True), ("*", True), ("1INCH/USD", True), ("btc/usd", False), ("BTCUSD", False),
     ("BTC/USD/X", False), ("", False), ("BTC/", False)],
)  # fmt: skip
def test_is_valid_symbol(symbol: str, ok: bool) -> None:
    assert is_valid_symbol(symbol) is ok


@pytest.mark.parametrize(
    "stamp",
    ["2024-03-12T10:27:48.１Z", "2024-03-12T10:27:48.1234567890Z", "2024-03-12T10:27:48.+1Z",
     "2024-03-12T10:27:48.1_0Z", "2024-03-12T10:27:48 1Z", "2024-03-12T10:27:48.1"],
)  # fmt: skip
def test_the_decoders_timestamp_fast_path_is_as_strict_as_parse_rfc3339(stamp: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(stamp)
    for obj in (SPEC_TRADE, SPEC_QUOTE, SPEC_BOOK_ASK, SPEC_BAR):
        msg = orjson.loads(obj)
        parse_rfc3339(msg["t"])  # warm the per-second cache, as a live stream would
        msg["t"] = msg["t"][:19] + stamp[19:]
        with pytest.raises(DecodeError) as info:
            decode(orjson.dumps([msg]))
        assert info.value.field == "t"


def test_a_t_longer_than_any_timestamp_is_a_bad_timestamp() -> None:
    """msgspec's length bound rejects it while decoding, and the error says what it is."""
    with pytest.raises(DecodeError) as info:
        decode(orjson.dumps([_trade("2024-03-12T10:27:48.5Z"), _trade("2" * 36)]))
    assert (info.value.reason, info.value.index, info.value.field) == ("bad timestamp", 1, "t")


def _trade(t: str) -> dict[str, Any]:
    return {"T": "t", "S": "BTC/USD", "p": 1.0, "s": 2.0, "t": t, "i": 1}


@given(
    st.lists(
        st.sampled_from(
            [
                "2024-03-12T10:27:48.5Z",
                "2024-03-12T10:27:48Z",
                "2024-03-12T10:27:49.123456789Z",
                "2024-03-12T10:27:50.1Z",
                "2024-03-12T10:27:48.5+01:00",
                "2024-03-12T10:27:48.5z",
                "2024-03-12t10:27:48.5Z",
                "2024-02-29T23:59:60.5Z",
                "2023-02-29T10:27:48.5Z",
                "2024-03-12T10:27:48.5Z\n2024-03-12T10:27:48.5Z",
                "2024-03-12T10:27:48.5Z\n",
                "2024-03-12T10:27:48.Z",
                "2024-03-12T10:27:48.1234567890Z",
                "2024-13-12T10:27:48Z",
                "2024-03-12T10:27:48.\u0661Z",
                "2024-04-31T00:00:00Z",
                "2024-03-12T24:00:00Z",
                "2024-03-12T10:27:48.123456789+01:00",  # the longest accepted: 35 characters
                "2024-03-12T10:27:48.1234567890+01:00",
            ]
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_a_frame_decodes_alike_whatever_the_timestamp_cache_holds(
    stamps: list[str], warm: bool
) -> None:
    """The frame-wide timestamp check (:func:`codec._times_known`) is only a shortcut.

    Whether it answers (every second cached, at most two of them) or the careful per-message
    path does, a frame is accepted exactly when every ``t`` is one ``parse_rfc3339`` accepts,
    the error names the first bad one, and each ``timestamp`` equals ``parse_rfc3339(t)``.
    """
    if warm:
        for s in stamps:
            with contextlib.suppress(ValueError, IndexError):
                parse_rfc3339(s)
    payload = orjson.dumps([_trade(s) for s in stamps])
    bad = []
    for i, s in enumerate(stamps):
        try:
            parse_rfc3339(s)
        except (ValueError, IndexError):
            bad.append(i)
    if bad:
        with pytest.raises(DecodeError) as info:
            decode(payload)
        assert (info.value.index, info.value.field) == (bad[0], "t")
        return
    msgs = decode(payload)
    assert [m.t for m in msgs] == stamps  # type: ignore[union-attr]
    assert [m.timestamp for m in msgs] == [parse_rfc3339(s) for s in stamps]  # type: ignore[union-attr]


def test_equality_is_by_instant_not_by_spelling() -> None:
    [a, b, c] = decode(
        orjson.dumps([_trade("2024-03-12T10:27:48.5Z"), _trade("2024-03-12T10:27:48.500Z"),
                      _trade("2024-03-12T11:27:48.5+01:00")])
    )  # fmt: skip
    assert a == b == c and a.t != b.t  # type: ignore[union-attr]
    ns = parse_rfc3339("2024-03-12T10:27:48.5Z")
    assert a == Trade("BTC/USD", 1.0, 2.0, ns, 1)
    assert a != Trade("BTC/USD", 1.0, 2.0, ns + 1, 1)
    packed = msgpack.packb([{**_trade(""), "t": Timestamp.from_unix_nano(ns)}])
    assert decode(packed) == [a]


def test_a_null_book_side_is_an_empty_one() -> None:
    book = {"T": "o", "S": "X/Y", "t": "2024-03-12T10:27:48.5Z", "b": None, "a": [{"p": 1, "s": 2}]}
    [msg] = decode(orjson.dumps([book]))
    assert isinstance(msg, OrderBookUpdate)
    assert msg.bids == [] and msg.asks == [Level(1.0, 2.0)] and msg.extra is None
