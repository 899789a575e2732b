"""The msgspec decoder is pinned to the hand-written one it replaces, on generated frames.

The reference is the decoder as it stood before msgspec (its inline fast path and careful
per-type decoders), kept frozen in :mod:`tests.alpaca.legacy_decoder`. Frames are the spec's
shapes, mutated the ways a server or a bug could: fields deleted or retyped, unknown keys, odd
timestamps (every RFC 3339 form, near misses, a msgpack Timestamp), extra levels. Both decoders
must give the same messages, or both refuse the frame at the same message.

Two differences are deliberate. First, the old decoder took *any* falsy value for a book side
(``false``, ``0``, ``""``, ``{}``) as an empty side, an accident of ``o.get("b") or ()``. The
spec asks for leniency with a missing side, and the new decoder accepts a missing, ``null`` or
empty one, but refuses a side that is not an array at all; the test expects that refusal.
Second, an old bug is fixed: an ``error`` without ``msg`` lost its unknown keys (a key count
stood in for "no unknown keys"); the test expects them kept.
"""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgpack import Timestamp

from alpaca_cli.alpaca import codec
from alpaca_cli.alpaca.codec import DecodeError
from alpaca_cli.alpaca.messages import Error, Level, Message, OrderBookUpdate
from alpaca_cli.alpaca.timestamps import parse_rfc3339
from tests.alpaca import legacy_decoder

reference_decode = legacy_decoder.decode
new_decode = codec.decode

BASE_OBJECTS: list[dict[str, Any]] = [
    {"T": "t", "S": "AVAX/USD", "p": 47.299, "s": 29.205707815,
     "t": "2024-03-12T10:27:48.858228144Z", "i": 3447222699101865076, "tks": "S"},
    {"T": "q", "S": "BAT/USD", "bp": 0.35718, "bs": 13445.46, "ap": 0.3581, "as": 13561.902,
     "t": "2024-03-12T10:29:43.111588173Z"},
    {"T": "b", "S": "BTC/USD", "o": 26675.04, "h": 26695.36, "l": 26668.79, "c": 26688.7,
     "v": 3.227759152, "t": "2023-03-17T12:28:00Z", "n": 93, "vw": 26679.5912436798},
    {"T": "d", "S": "BTC/USD", "o": 1, "h": 2, "l": 1, "c": 2, "v": 3.5,
     "t": "2023-03-17T12:28:00.5Z", "n": 1, "vw": 1.5},
    {"T": "u", "S": "BTC/USD", "o": 1, "h": 2, "l": 1, "c": 2, "v": 3.5,
     "t": "2023-03-17T12:29:00Z", "n": 1, "vw": 1.5},
    {"T": "o", "S": "BTC/USD", "t": "2024-03-12T10:38:50.79613221Z",
     "b": [{"p": 71859.53, "s": 0.27994}, {"p": 71849.4, "s": 0}],
     "a": [{"p": 71939.7, "s": 0.83953}], "r": True},
    {"T": "o", "S": "MKR/USD", "t": "2024-03-12T10:39:39.4Z", "b": [],
     "a": [{"p": 2614, "s": 12.5308}]},
    {"T": "success", "msg": "authenticated"},
    {"T": "error", "code": 406, "msg": "connection limit exceeded"},
    {"T": "subscription", "trades": ["BTC/USD"], "quotes": [], "orderbooks": ["*"]},
    {"T": "lulds", "S": "BTC/USD", "x": [1, 2]},
]  # fmt: skip

for _obj in BASE_OBJECTS:  # warm the per-second caches, as a live stream would
    if "t" in _obj:
        parse_rfc3339(_obj["t"])

scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False)
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from("psxT"), c, max_size=3),
    max_leaves=6,
)
stamps = st.sampled_from(
    ["2024-03-12T10:27:48Z", "2024-03-12T10:27:48.1Z", "2024-03-12T10:27:48.123456789Z",
     "2024-03-12T10:27:48.1234567890Z", "2024-03-12T10:27:48.+1Z", "2024-03-12T10:27:48.1_0Z",
     "2024-03-12T10:27:48.\uff11Z", "2024-03-12T10:27:48.\u00b2Z", "2024-03-12T10:27:48.5z",
     "2024-03-12t10:27:48.5Z", "2024-03-12 10:27:48.5Z", "2024-03-12T10:27:48.5+01:00",
     "2024-03-12T10:27:48.5-23:59", "2024-03-12T10:27:48.5+24:00", "2024-03-12T10:27:48.",
     "2024-03-12T10:27:48.5", "2024-02-30T10:27:48.5Z", "2024-02-29T23:59:60.5Z",
     "1970-01-01T00:00:00Z", "2024-03-12T10:27:4.5Z", "", "Z"]
) | st.sampled_from(
    [Timestamp(1_710_239_268, 858_228_144), Timestamp(1, 0), Timestamp(-1, 5),
     Timestamp(2**34, 1), msgpack.ExtType(5, b"\x00\x01")]
)  # fmt: skip
keys = st.sampled_from(["r", "tks", "x", "i", "n", "msg", "code", "trades", "bars", "T", "t"])


def mutate(obj: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    obj = dict(obj)
    for _ in range(data.draw(st.integers(0, 2))):
        action = data.draw(st.sampled_from(["del", "set", "stamp", "add", "level"]))
        if not obj:
            break
        key = data.draw(st.sampled_from(sorted(obj)))
        if action == "del":
            del obj[key]
        elif action == "set":
            obj[key] = data.draw(values | st.just(Timestamp(1, 2)))
        elif action == "stamp":
            obj["t"] = data.draw(stamps)
        elif action == "add":
            obj[data.draw(keys)] = data.draw(values)
        elif obj.get("T") == "o":
            side = data.draw(st.sampled_from("ab"))
            if isinstance(obj.get(side), list):
                obj[side] = [*obj[side], data.draw(values)]
    return obj


def _json_default(value: Any) -> Any:
    if isinstance(value, Timestamp):
        return value.to_unix_nano()
    if isinstance(value, msgpack.ExtType):
        return value.code
    raise TypeError


def encode(objs: Any, fmt: str) -> bytes:
    if fmt == "json":
        return orjson.dumps(objs, default=_json_default)
    packed: bytes = msgpack.packb(objs)
    return packed


Outcome = list[Message] | tuple[str, int | None]


def outcome(decoder: Any, payload: bytes) -> Outcome:
    try:
        result: list[Message] = decoder(payload)
    except DecodeError as exc:
        return ("DecodeError", exc.index)
    return result


def _falsy_side(obj: Any) -> bool:
    """True for a book message the old decoder read as empty although a side is no array."""
    if not isinstance(obj, dict) or obj.get("T") != "o":
        return False
    return any(side in obj and not obj[side] and not isinstance(obj[side], list | None)
               for side in ("b", "a"))  # fmt: skip


def expected(objs: list[Any], payload: bytes, fmt: str) -> Outcome:
    ref = outcome(reference_decode, payload)
    if isinstance(ref, list):
        plain = orjson.loads(payload) if fmt == "json" else msgpack.unpackb(payload, timestamp=0)
        for msg, obj in zip(ref, plain, strict=True):
            if isinstance(msg, OrderBookUpdate):  # the frozen decoder builds (p, s) tuples
                msg.bids = [Level(p, s) for p, s in msg.bids]
                msg.asks = [Level(p, s) for p, s in msg.asks]
            if isinstance(msg, Error) and "msg" not in obj:
                msg.extra = {k: v for k, v in obj.items() if k not in ("T", "code")} or None
    falsy = [i for i, o in enumerate(objs) if _falsy_side(o)]
    if falsy:
        first = falsy[0]
        if isinstance(ref, list) or (ref[1] is not None and ref[1] > first):
            return ("DecodeError", first)
    return ref


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(["json", "msgpack"]))
def test_the_msgspec_decoder_agrees_with_the_old_one(data: st.DataObject, fmt: str) -> None:
    n = data.draw(st.integers(1, 4))
    objs = [mutate(data.draw(st.sampled_from(BASE_OBJECTS)), data) for _ in range(n)]
    payload = encode(objs, fmt)
    assert outcome(new_decode, payload) == expected(objs, payload, fmt)


@given(st.data(), st.sampled_from(["json", "msgpack"]))
def test_frames_that_are_no_array_of_objects_fail_alike(data: st.DataObject, fmt: str) -> None:
    value = data.draw(values | st.lists(values, max_size=3))
    payload = encode(value, fmt)
    assert outcome(new_decode, payload) == outcome(reference_decode, payload)


def test_unmutated_messages_agree_in_both_formats() -> None:
    payload = orjson.dumps(BASE_OBJECTS)
    assert new_decode(payload) == expected(BASE_OBJECTS, payload, "json")
    packed = msgpack.packb(
        [{**o, "t": Timestamp.from_unix_nano(parse_rfc3339(o["t"]))} if "t" in o else o
         for o in BASE_OBJECTS]
    )  # fmt: skip
    assert new_decode(packed) == expected(BASE_OBJECTS, packed, "msgpack")
