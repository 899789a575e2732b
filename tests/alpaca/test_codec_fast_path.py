"""The decoder's inline fast path must agree with the careful per-type decoders on everything.

:func:`alpaca_cli.alpaca.codec.decode` decodes the usual shapes of trades, quotes, bars and book
updates inline and hands anything else to the per-type decoders. These tests decode the same
frames both ways, message by message through the careful decoders as the reference, and demand
the same messages or the same error (message index, field, reason).
"""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgpack import Timestamp

from alpaca_cli.alpaca import codec
from alpaca_cli.alpaca.codec import DecodeError, decode
from alpaca_cli.alpaca.messages import Message
from alpaca_cli.alpaca.timestamps import parse_rfc3339

BASE_OBJECTS: list[dict[str, Any]] = [
    {"T": "t", "S": "AVAX/USD", "p": 47.299, "s": 29.205707815,
     "t": "2024-03-12T10:27:48.858228144Z", "i": 3447222699101865076, "tks": "S"},
    {"T": "q", "S": "BAT/USD", "bp": 0.35718, "bs": 13445.46, "ap": 0.3581, "as": 13561.902,
     "t": "2024-03-12T10:29:43.111588173Z"},
    {"T": "b", "S": "BTC/USD", "o": 26675.04, "h": 26695.36, "l": 26668.79, "c": 26688.7,
     "v": 3.227759152, "t": "2023-03-17T12:28:00Z", "n": 93, "vw": 26679.5912436798},
    {"T": "u", "S": "BTC/USD", "o": 1, "h": 2, "l": 1, "c": 2, "v": 3.5,
     "t": "2023-03-17T12:28:00.5Z", "n": 1, "vw": 1.5},
    {"T": "o", "S": "BTC/USD", "t": "2024-03-12T10:38:50.79613221Z",
     "b": [{"p": 71859.53, "s": 0.27994}, {"p": 71849.4, "s": 0}],
     "a": [{"p": 71939.7, "s": 0.83953}], "r": True},
    {"T": "o", "S": "MKR/USD", "t": "2024-03-12T10:39:39.4Z", "b": [],
     "a": [{"p": 2614, "s": 12.5308}]},
]  # fmt: skip

for _obj in BASE_OBJECTS:  # warm the per-second caches, as a live stream would
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
     "2024-03-12T10:27:48.\uff11Z", "2024-03-12T10:27:48.5z", "2024-03-12t10:27:48.5Z",
     "2024-03-12T10:27:48.5+01:00", "2024-03-12T10:27:48.", "2024-03-12T10:27:48.5",
     "2024-02-30T10:27:48.5Z", "", "Z"]
) | st.just(Timestamp(1_710_239_268, 858_228_144))  # fmt: skip


def reference(data: list[Any]) -> list[Message] | tuple[int, str | None, str]:
    """Each message alone through the careful per-type decoder (the pre-fast-path loop)."""
    out: list[Message] = []
    for i, o in enumerate(data):
        try:
            out.append(codec._slow(o))
        except codec._Bad as exc:
            return (i, exc.field, exc.reason)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            err = codec._diagnose(data, i, exc)
            return (i, err.field, err.reason)
    return out


def mutate(obj: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    obj = dict(obj)
    for _ in range(data.draw(st.integers(0, 2))):
        action = data.draw(st.sampled_from(["del", "set", "stamp", "add", "level"]))
        key = data.draw(st.sampled_from(sorted(obj)))
        if action == "del":
            del obj[key]
        elif action == "set":
            obj[key] = data.draw(values | st.just(Timestamp(1, 2)))
        elif action == "stamp":
            obj["t"] = data.draw(stamps)
        elif action == "add":
            obj[data.draw(st.sampled_from(["r", "tks", "x", "i", "n"]))] = data.draw(values)
        elif obj.get("T") == "o" and isinstance(side := obj.get("b"), list):
            obj["b"] = [*side, data.draw(values)]
    return obj


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(["json", "msgpack"]))
def test_fast_path_agrees_with_the_careful_decoders(data: st.DataObject, fmt: str) -> None:
    objs = [mutate(data.draw(st.sampled_from(BASE_OBJECTS)), data) for _ in range(3)]
    payload = (
        orjson.dumps(objs, default=lambda ts: ts.to_unix_nano())
        if fmt == "json"
        else msgpack.packb(objs)
    )
    expected = reference(
        orjson.loads(payload) if fmt == "json" else msgpack.unpackb(payload, timestamp=0)
    )
    try:
        got: list[Message] | tuple[int, str | None, str] = decode(payload)
    except DecodeError as exc:
        got = (exc.index if exc.index is not None else -1, exc.field, exc.reason)
    assert got == expected


def test_unmutated_messages_take_the_fast_path_and_match() -> None:
    payload = orjson.dumps(BASE_OBJECTS)
    assert decode(payload) == reference(orjson.loads(payload))
    packed = msgpack.packb(
        [{**o, "t": Timestamp.from_unix_nano(parse_rfc3339(o["t"]))} for o in BASE_OBJECTS]
    )
    assert decode(packed) == reference(msgpack.unpackb(packed, timestamp=0))
