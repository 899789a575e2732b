"""The one Alpaca wire codec, shared by the client and the stand-in stream server.

Server frames (spec: "Session", "Data messages", "Optional msgpack") are JSON or msgpack arrays
of objects. :func:`decode` turns one frame into typed messages and promises a single error type,
:class:`DecodeError`, for anything malformed. :func:`encode_frame` is its inverse (used by
``dev feed``). Client messages go the other way: :func:`encode_auth` / :func:`encode_subscribe`
build them and :func:`decode_client_message` parses them on the server side.

Decoding is the hot path of the whole tool, so it is one msgspec schema (Structs tagged on
``T``) that parses and type-checks a frame in C, and for the data kinds (trades, quotes, books,
bars) no Python code runs per message. A JSON ``t`` stays the string it was and becomes
nanoseconds only when someone reads ``timestamp`` (see :mod:`.messages`); a level stays the
:class:`~.messages.Level` msgspec built. What msgspec cannot check, that every ``t`` is a valid
RFC 3339 instant, is proved for the whole frame at once by :func:`_times_known` (one regex over
the joined ``t`` plus the per-second cache), so a malformed frame still fails here, with a
:class:`DecodeError`, and ``timestamp`` can never fail later. Frames it cannot vouch for (a new
second, an offset, control messages, msgpack Timestamp exts) take a short Python pass
(:func:`_finish`) that is just as strict. No pydantic, no ``datetime``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal, TypeAlias

import msgpack
import msgspec
import orjson
from msgpack import Timestamp
from msgspec.msgpack import Ext

from .messages import (
    NOT_ON_WIRE,
    Bar,
    DailyBar,
    Error,
    Message,
    MinuteBar,
    OrderBookUpdate,
    Quote,
    Subscription,
    Success,
    Trade,
    Unknown,
    UpdatedBar,
)
from .names import is_valid_symbol
from .timestamps import _prefix_cache as _SECONDS
from .timestamps import format_rfc3339, parse_rfc3339, to_msgpack_timestamp

__all__ = [
    "MAX_SYMBOLS_PER_MESSAGE",
    "AuthRequest",
    "ClientMessage",
    "DecodeError",
    "Format",
    "SubscribeRequest",
    "decode",
    "decode_client_message",
    "decode_json",
    "decode_msgpack",
    "encode_auth",
    "encode_client_message",
    "encode_frame",
    "encode_subscribe",
    "is_valid_symbol",
    "to_wire",
]

Format: TypeAlias = Literal["json", "msgpack"]

MAX_SYMBOLS_PER_MESSAGE = 100
"""Spec: "Keep messages under ~100 symbols each"."""


class DecodeError(ValueError):
    """A frame or client message is malformed: the only exception the decoders raise.

    The message names the position and field but never echoes values, because a client message
    carries the Alpaca secret.

    Attributes:
        index: position of the offending message in the frame, or None for the frame itself.
        field: the wire key at fault, or None.
    """

    def __init__(self, reason: str, *, index: int | None = None, field: str | None = None):
        where = []
        if index is not None:
            where.append(f"message {index}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{reason} ({', '.join(where)})" if where else reason)
        self.reason = reason
        self.index = index
        self.field = field


# --------------------------------------------------------------------------- server frames


class _Bad(Exception):
    """Internal: a field failed validation; turned into DecodeError with the message index."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason


_SPACE = b" \t\r\n"


def _looks_like_json(payload: bytes | bytearray | memoryview, openers: bytes) -> bool:
    """JSON when the first non-space byte is one of ``openers``.

    A msgpack array or map never starts so: ``[``, ``{`` and JSON whitespace are msgpack
    positive fixints, which are not valid frames or client messages.
    """
    if not len(payload):
        return False
    first = payload[0]
    if first in openers:
        return True
    if first not in _SPACE:
        return False
    stripped = bytes(payload).lstrip(_SPACE)
    return bool(stripped) and stripped[0] in openers


# --------------------------------------------------------------------------- the msgspec decoder
#
# One decoder for JSON and msgpack. msgspec decodes a whole frame in C into the tagged union below:
# the data kinds straight into their public Structs, control messages into private wire twins.
# That validates every field's type (``bool`` is not a number, ``1.0`` is not an int, a level is
# an object with numeric ``p`` and ``s``, ``t`` is text or an ext) and rejects unknown keys and
# unknown ``T``. A JSON frame whose every ``t`` :func:`_times_known` vouches for is then done.
# Otherwise :func:`_finish` works in place, message by message: text ``t`` through
# ``parse_rfc3339`` (which caches its second for the next frame), a msgpack Timestamp ext checked
# and turned into integer nanoseconds, twins into their public classes. A frame msgspec rejects
# goes to :func:`_careful`, message by message, which keeps unknown keys and unknown ``T``, reads
# a ``null`` book side as a missing one, and names the message and field of a real fault. All
# paths share the one schema, so they cannot disagree.


class _WireSuccess(msgspec.Struct, tag_field="T", tag="success", forbid_unknown_fields=True):
    msg: str


class _WireError(msgspec.Struct, tag_field="T", tag="error", forbid_unknown_fields=True):
    code: int
    msg: str = ""


class _WireSubscription(
    msgspec.Struct,
    tag_field="T",
    tag="subscription",
    forbid_unknown_fields=True,
    rename={"updated_bars": "updatedBars", "daily_bars": "dailyBars"},
):
    trades: tuple[str, ...] | None = None
    quotes: tuple[str, ...] | None = None
    orderbooks: tuple[str, ...] | None = None
    bars: tuple[str, ...] | None = None
    updated_bars: tuple[str, ...] | None = None
    daily_bars: tuple[str, ...] | None = None


_Wire: TypeAlias = (
    Trade | Quote | OrderBookUpdate | MinuteBar | DailyBar | UpdatedBar
    | _WireSuccess | _WireError | _WireSubscription
)  # fmt: skip
_KINDS: tuple[type[msgspec.Struct], ...] = (
    Trade, Quote, OrderBookUpdate, MinuteBar, DailyBar, UpdatedBar,
    _WireSuccess, _WireError, _WireSubscription,
)  # fmt: skip
_BY_TAG: dict[str, type[msgspec.Struct]] = {str(k.__struct_config__.tag): k for k in _KINDS}
_WIRE_KEYS: dict[type[msgspec.Struct], frozenset[str]] = {
    k: frozenset(k.__struct_encode_fields__) - {NOT_ON_WIRE} | {"T"} for k in _KINDS
}


class _Codec:
    """The decoders of one wire format (built once: a msgspec Decoder compiles its schema)."""

    __slots__ = ("any", "encode", "fmt", "frame", "message", "objects", "plain", "raws")

    def __init__(self, fmt: Format) -> None:
        mod: Any = msgspec.json if fmt == "json" else msgspec.msgpack
        self.fmt = fmt
        self.frame = mod.Decoder(list[_Wire])
        self.message = mod.Decoder(_Wire)
        self.raws = mod.Decoder(list[msgspec.Raw])
        self.objects = mod.Decoder(dict[str, msgspec.Raw])
        self.any = mod.Decoder()
        self.encode = mod.Encoder().encode
        # Values of unknown keys and unknown messages, as the user gets them: JSON values, or
        # msgpack values with Timestamps as msgpack.Timestamp (msgspec would make datetimes).
        self.plain: Callable[[msgspec.Raw], Any] = (
            self.any.decode
            if fmt == "json"
            else lambda raw: msgpack.unpackb(bytes(raw), timestamp=0, strict_map_key=True)
        )


_JSON = _Codec("json")
_JSON_FRAME = _JSON.frame.decode
_MSGPACK = _Codec("msgpack")
_HOT: frozenset[type] = frozenset({Trade, Quote, OrderBookUpdate, MinuteBar, DailyBar, UpdatedBar})
_TS_LOW34 = (1 << 34) - 1


def _ext_ns(ext: Ext) -> int:
    """Nanoseconds of a msgpack Timestamp ext other than the usual 8-byte form.

    :func:`_finish` converts the 8-byte form (30-bit nanoseconds over 34-bit seconds) inline;
    this takes the 4-byte (seconds) and 12-byte (nanoseconds, signed 64-bit seconds) forms and
    rejects anything else.
    """
    data: bytes = ext.data  # type: ignore[assignment]  # bytes at run time; the stubs say Buffer
    n = len(data)
    if ext.code != -1 or n not in (4, 12):
        raise _Bad("t", "timestamp is neither an RFC 3339 string nor a msgpack Timestamp")
    if n == 4:
        return int.from_bytes(data, "big") * 1_000_000_000
    nanos = int.from_bytes(data[:4], "big")
    if nanos >= 1_000_000_000:
        raise _Bad("t", "bad timestamp")
    return int.from_bytes(data[4:], "big", signed=True) * 1_000_000_000 + nanos


def _rare(m: Any) -> Message:
    """The public message of a decoded wire twin (control messages)."""
    cls = m.__class__
    if cls is _WireSuccess:
        return Success(m.msg)
    if cls is _WireError:
        return Error(m.code, m.msg)
    return Subscription(
        m.trades or (), m.quotes or (), m.orderbooks or (), m.bars or (),
        m.updated_bars or (), m.daily_bars or (),
    )  # fmt: skip


def _finish(msgs: list[Any], base: int = 0) -> list[Message]:
    """Finish a decoded frame in place; ``base``: index of ``msgs[0]`` in the frame.

    A hot message's text ``t`` is checked with :func:`~.timestamps.parse_rfc3339` (which also
    caches its second for :func:`_times_known`); a Timestamp ext is checked and becomes integer
    nanoseconds. Either way ``timestamp`` cannot fail later. A wire twin becomes its public
    message.
    """
    hot = _HOT
    i = 0
    m: Any
    try:
        for i, m in enumerate(msgs):
            cls = m.__class__
            if cls not in hot:
                msgs[i] = _rare(m)
                continue
            t = m.t
            if t.__class__ is str:
                _check_text(t)
                continue
            # The usual Timestamp (8 bytes: 30-bit ns over 34-bit seconds) is converted here
            # rather than in a call: this runs per message of every msgpack frame.
            data = t.data
            if t.code == -1 and len(data) == 8:
                v = int.from_bytes(data, "big")
                nanos = v >> 34
                if nanos >= 1_000_000_000:
                    raise _Bad("t", "bad timestamp")
                m.t = (v & _TS_LOW34) * 1_000_000_000 + nanos
            else:
                m.t = _ext_ns(t)
    except _Bad as exc:
        raise DecodeError(exc.reason, index=base + i, field=exc.field) from None
    return msgs


def _check_text(t: str) -> None:
    try:
        parse_rfc3339(t)
    except (ValueError, IndexError):
        raise _Bad("t", "bad timestamp") from None


_T = attrgetter("t")
# Possessive quantifiers (no backtracking state kept) and ``.{19}`` for a second: the shape of the
# second needs no checking here, because it must be a key of the per-second cache anyway.
_REST = "(?:[.][0-9]{1,9}+)?+Z"
_ONE_OR_TWO_SECONDS = re.compile(
    rf"(.{{19}}){_REST}(?:\n\1{_REST})*+(?:\n(.{{19}}){_REST}(?:\n(?:\1|\2){_REST})*+)?+"
).fullmatch


def _times_known(msgs: list[Any]) -> bool:
    """True when every ``t`` of the frame ``msgs`` is Alpaca text of one or two known seconds.

    What lets the usual frame skip :func:`_finish`: one regex over all of a frame's ``t`` joined
    by newlines instead of Python code per message. Each is 19 characters of a second followed
    by ``Z`` or ``.<1 to 9 ASCII digits>Z``, and the second repeats that of the first ``t`` or
    of the first that differs (backreferences; two, because a frame's bars carry their minute
    and its trades the current second); each second must then be a key of the per-second
    cache, which holds only ``YYYY-MM-DDTHH:MM:SS`` date-times :func:`~.timestamps.parse_rfc3339`
    has validated (real calendar day, hour, minute, second). No ``t`` can hold a newline of its
    own and still match: that takes two timestamps' worth of text, longer than msgspec lets a
    ``t`` be (:data:`~.messages.MAX_TIME_TEXT`). Anything else (a new second, a third one, an
    offset, a msgpack ext) answers False and takes the careful way, which is just as strict.
    """
    try:
        joined = "\n".join(map(_T, msgs))
    except (AttributeError, TypeError):  # a control message (no t), an ext
        return False
    m = _ONE_OR_TWO_SECONDS(joined)
    return m is not None and joined[:19] in _SECONDS and (m.lastindex == 1 or m[2] in _SECONDS)


def _fault(exc: msgspec.ValidationError, index: int | None) -> DecodeError:
    """A DecodeError naming the wire key msgspec's message points at (``$.b[0].p`` -> ``b``)."""
    text = str(exc)
    reason, _, path = text.partition(" - at `$")
    field = None
    m = _PATH_HEAD.match(path)
    if m is not None:
        field = m.group(1)
    else:
        missing = _MISSING.match(reason)
        if missing is not None:
            field = missing.group(1)
    if field == "t" and "of length" in reason:  # longer than any timestamp (MAX_TIME_TEXT)
        reason = "bad timestamp"
    return DecodeError(reason, index=index, field=field)


_PATH_HEAD = re.compile(r"\.([^`.\[]+)")
_MISSING = re.compile(r"Object missing required field `([^`]*)`")


def _careful(payload: Any, codec: _Codec) -> list[Message]:
    """A frame msgspec rejected as a whole: each message alone, unknown keys and ``T`` kept."""
    try:
        raws = codec.raws.decode(payload)
    except msgspec.ValidationError:
        raise DecodeError("frame is not an array") from None
    except msgspec.DecodeError:
        raise DecodeError(f"not valid {codec.fmt}") from None
    out: list[Message] = []
    for i, raw in enumerate(raws):
        out.append(_careful_one(raw, i, codec))
    return out


def _careful_one(raw: msgspec.Raw, i: int, codec: _Codec) -> Message:
    try:
        return _finish([codec.message.decode(raw)], i)[0]
    except msgspec.ValidationError as exc:
        first = exc
    try:
        obj = codec.objects.decode(raw)
    except msgspec.ValidationError:
        raise DecodeError("message is not an object", index=i, field="T") from None
    if "T" not in obj:
        raise DecodeError("missing field", index=i, field="T")
    kind = codec.any.decode(obj["T"])
    if kind.__class__ is not str:
        raise DecodeError("wrong type", index=i, field="T")
    cls = _BY_TAG.get(kind)
    if cls is None:
        return Unknown(kind, _plain(codec, raw, i))
    known = _WIRE_KEYS[cls]
    extra = {k: v for k, v in obj.items() if k not in known}
    if cls is OrderBookUpdate:  # the spec's leniency: a null side is a missing (empty) one
        nulls = {k for k in ("b", "a") if k in obj and codec.any.decode(obj[k]) is None}
    else:
        nulls = set()
    if not extra and not nulls:
        raise _fault(first, i) from None
    try:
        wire = codec.message.decode(
            codec.encode({k: v for k, v in obj.items() if k in known and k not in nulls})
        )
    except msgspec.ValidationError as exc:
        raise _fault(exc, i) from None
    msg: Any = _finish([wire], i)[0]
    if extra:
        msg.extra = {k: _plain(codec, v, i) for k, v in extra.items()}
    return msg  # type: ignore[no-any-return]


def _plain(codec: _Codec, raw: msgspec.Raw, i: int) -> Any:
    try:
        return codec.plain(raw)
    except Exception:  # msgpack's zoo, e.g. a map key that is not a string deep inside
        raise DecodeError(f"not valid {codec.fmt}", index=i) from None


def _decode_with(payload: Any, codec: _Codec) -> list[Message]:
    try:
        msgs = codec.frame.decode(payload)
    except msgspec.ValidationError:
        return _careful(payload, codec)
    except msgspec.DecodeError:
        raise DecodeError(f"not valid {codec.fmt}") from None
    if codec is _JSON and _times_known(msgs):
        return msgs  # type: ignore[no-any-return]  # the usual frame: nothing left to do
    return _finish(msgs)


def decode_json(payload: bytes | bytearray | memoryview | str) -> list[Message]:
    """Messages of one JSON frame.

    Raises:
        DecodeError: the payload is not a JSON array of well-formed Alpaca messages.
    """
    return _decode_with(payload, _JSON)


def decode_msgpack(payload: bytes | bytearray | memoryview) -> list[Message]:
    """Messages of one msgpack frame (``t`` as a Timestamp ext -1, or a string).

    Raises:
        DecodeError: the payload is not a msgpack array of well-formed Alpaca messages.
    """
    return _decode_with(payload, _MSGPACK)


def decode(payload: bytes | bytearray | memoryview | str) -> list[Message]:
    """Messages of one server frame, JSON or msgpack (a first non-space ``[`` means JSON).

    Raises:
        DecodeError: the frame is malformed in any way.
    """
    if payload.__class__ is bytes and payload[:1] == b"[":  # the usual JSON frame: fewer calls
        try:
            msgs = _JSON_FRAME(payload)
        except msgspec.ValidationError:
            return _careful(payload, _JSON)
        except msgspec.DecodeError:
            raise DecodeError("not valid json") from None
        if _times_known(msgs):
            return msgs  # type: ignore[no-any-return]
        return _finish(msgs)
    if isinstance(payload, str) or _looks_like_json(payload, b"[{"):
        return _decode_with(payload, _JSON)
    return _decode_with(payload, _MSGPACK)


# --------------------------------------------------------------------------- server encoders


def _wire_ts(ns: int, fmt: Format) -> str | Timestamp:
    return format_rfc3339(ns) if fmt == "json" else to_msgpack_timestamp(ns)


def to_wire(msg: Message, fmt: Format = "json") -> dict[str, Any]:
    """The wire object of ``msg`` (``T`` first, as the spec requires for msgpack).

    Keys in ``extra`` follow the known ones; ``t`` is a string for JSON and a Timestamp for
    msgpack.
    """
    d: dict[str, Any]
    if isinstance(msg, Trade):
        d = {"T": "t", "S": msg.symbol, "p": msg.price, "s": msg.size,
             "t": _wire_ts(msg.timestamp, fmt), "i": msg.id}  # fmt: skip
        if msg.taker_side is not None:
            d["tks"] = msg.taker_side
    elif isinstance(msg, Quote):
        d = {"T": "q", "S": msg.symbol, "bp": msg.bid_price, "bs": msg.bid_size,
             "ap": msg.ask_price, "as": msg.ask_size,
             "t": _wire_ts(msg.timestamp, fmt)}  # fmt: skip
    elif isinstance(msg, Bar):
        d = {"T": msg.kind, "S": msg.symbol, "o": msg.open, "h": msg.high, "l": msg.low,
             "c": msg.close, "v": msg.volume, "t": _wire_ts(msg.timestamp, fmt),
             "n": msg.trade_count, "vw": msg.vwap}  # fmt: skip
    elif isinstance(msg, OrderBookUpdate):
        d = {
            "T": "o",
            "S": msg.symbol,
            "t": _wire_ts(msg.timestamp, fmt),
            "b": [{"p": lv.p, "s": lv.s} for lv in msg.bids],
            "a": [{"p": lv.p, "s": lv.s} for lv in msg.asks],
        }
        if msg.reset:
            d["r"] = True
    elif isinstance(msg, Success):
        d = {"T": "success", "msg": msg.msg}
    elif isinstance(msg, Subscription):
        d = {"T": "subscription", **{k: list(v) for k, v in msg.channels().items()}}
    elif isinstance(msg, Error):
        d = {"T": "error", "code": msg.code, "msg": msg.msg}
    elif isinstance(msg, Unknown):
        return dict(msg.raw)
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"not an Alpaca message: {type(msg).__name__}")
    if msg.extra:
        for k, v in msg.extra.items():
            d.setdefault(k, v)
    return d


def _json_default(value: Any) -> Any:
    if isinstance(value, Timestamp):
        return format_rfc3339(value.to_unix_nano())
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_frame(messages: Sequence[Message], fmt: Format = "json") -> bytes:
    """One server frame (a JSON or msgpack array) of ``messages``: the inverse of :func:`decode`."""
    objs = [to_wire(m, fmt) for m in messages]
    return _dump(objs, fmt)


def _dump(obj: Any, fmt: Format) -> bytes:
    if fmt == "json":
        return orjson.dumps(obj, default=_json_default)
    if fmt == "msgpack":
        packed: bytes = msgpack.packb(obj, use_bin_type=True)
        return packed
    raise ValueError(f"unknown format {fmt!r}: use 'json' or 'msgpack'")


# --------------------------------------------------------------------------- client messages


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """``{"action":"auth","key":...,"secret":...}``; the secret never shows in a repr."""

    key: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    """``subscribe`` or ``unsubscribe``: channel -> symbols, as sent (unknown channels kept)."""

    channels: dict[str, tuple[str, ...]]
    unsubscribe: bool = False

    @property
    def action(self) -> str:
        return "unsubscribe" if self.unsubscribe else "subscribe"


ClientMessage: TypeAlias = AuthRequest | SubscribeRequest


def encode_auth(key: str, secret: str, fmt: Format = "json") -> bytes:
    """The ``auth`` message. The result holds the secret: send it, never log it."""
    return _dump({"action": "auth", "key": key, "secret": secret}, fmt)


def _chunks(channels: Mapping[str, Sequence[str]], limit: int) -> Iterator[dict[str, list[str]]]:
    chunk: dict[str, list[str]] = {}
    count = 0
    for channel, symbols in channels.items():
        if isinstance(symbols, str):
            raise TypeError(f"symbols of {channel!r} must be a sequence of str, not one str")
        for symbol in dict.fromkeys(symbols):
            chunk.setdefault(channel, []).append(symbol)
            count += 1
            if count == limit:
                yield chunk
                chunk, count = {}, 0
    if chunk:
        yield chunk


def encode_subscribe(
    channels: Mapping[str, Sequence[str]],
    *,
    unsubscribe: bool = False,
    fmt: Format = "json",
    max_symbols: int = MAX_SYMBOLS_PER_MESSAGE,
) -> list[bytes]:
    """``subscribe`` (or ``unsubscribe``) messages, each naming at most ``max_symbols`` symbols.

    Subscribing is additive on the server, so splitting changes nothing but message size.
    Duplicate symbols within a channel are sent once; empty channels are left out, and nothing
    to send gives an empty list. Channel names are not checked: the server answers 410 for one
    it lacks.
    """
    if max_symbols < 1:
        raise ValueError("max_symbols must be at least 1")
    action = "unsubscribe" if unsubscribe else "subscribe"
    return [_dump({"action": action, **chunk}, fmt) for chunk in _chunks(channels, max_symbols)]


def encode_client_message(msg: ClientMessage, fmt: Format = "json") -> bytes:
    """Inverse of :func:`decode_client_message` (no splitting)."""
    if isinstance(msg, AuthRequest):
        return encode_auth(msg.key, msg.secret, fmt)
    body = {k: list(v) for k, v in msg.channels.items()}
    return _dump({"action": msg.action, **body}, fmt)


def _unpack(payload: bytes | bytearray | memoryview) -> Any:
    try:
        return msgpack.unpackb(payload, raw=False, timestamp=0, strict_map_key=True)
    except Exception:
        # msgpack raises a zoo (ExtraData, FormatError, StackError, ValueError, TypeError...).
        raise DecodeError("not valid msgpack") from None


def decode_client_message(payload: bytes | bytearray | memoryview | str) -> ClientMessage:
    """Parse a client's ``auth``/``subscribe``/``unsubscribe`` (JSON or msgpack, auto-detected).

    Raises:
        DecodeError: not an object, unknown ``action``, or ill-typed fields; the server answers
            such a message with 400. The error never contains the secret.
    """
    if isinstance(payload, str) or _looks_like_json(payload, b"{["):
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise DecodeError("not valid JSON") from None
    else:
        obj = _unpack(payload)
    if obj.__class__ is not dict:
        raise DecodeError("client message is not an object")
    action = obj.get("action")
    if action == "auth":
        key, secret = obj.get("key"), obj.get("secret")
        if key.__class__ is not str:
            raise DecodeError("missing or ill-typed field", field="key")
        if secret.__class__ is not str:
            raise DecodeError("missing or ill-typed field", field="secret")
        return AuthRequest(key, secret)
    if action in ("subscribe", "unsubscribe"):
        channels: dict[str, tuple[str, ...]] = {}
        for k, v in obj.items():
            if k == "action":
                continue
            if k.__class__ is not str:
                raise DecodeError("channel name is not a string")
            if v.__class__ is not list or not all(s.__class__ is str for s in v):
                raise DecodeError("not an array of symbols", field=str(k))
            channels[k] = tuple(v)
        return SubscribeRequest(channels, unsubscribe=action == "unsubscribe")
    raise DecodeError("unknown or missing action", field="action")
