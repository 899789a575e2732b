"""The decoder as it stood before msgspec: the reference that test_codec_pin.py holds the new one to.

Frozen on purpose (moved here from ``alpaca_cli/alpaca/codec.py`` when msgspec replaced it, with
only its imports adapted): it is no longer shipped, and it should not be "fixed" here, because its
value is that it is the old behaviour. The deliberate differences are listed in the pin test.
"""

# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import orjson
from msgpack import Timestamp

from alpaca_cli.alpaca.codec import DecodeError, _looks_like_json
from alpaca_cli.alpaca.messages import (
    BAR_KINDS,
    CHANNELS,
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
from alpaca_cli.alpaca.messages import Bar as _Bar
from alpaca_cli.alpaca.timestamps import _SCALE, parse_rfc3339
from alpaca_cli.alpaca.timestamps import _dot_cache as _DOTS
from alpaca_cli.alpaca.timestamps import _whole_cache as _WHOLES

Bar = _Bar.of  # import adapted: a bar is one class per kind now, built by Bar.of(kind, ...)

# --------------------------------------------------------------------------- server frames

_NUM: frozenset[Any] = frozenset({int, float})
_TICK_KINDS: frozenset[str] = frozenset({"o", "t", "q"})
"""Message types whose ``t`` the hot loop parses before dispatching on the type."""


class _Bad(Exception):
    """Internal: a field failed validation; turned into DecodeError with the message index."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason


def _ts(value: Any) -> int:
    # The careful path only: the usual shapes have their timestamps parsed inline in _messages.
    if value.__class__ is str:
        try:
            return parse_rfc3339(value)
        except (ValueError, IndexError):
            raise _Bad("t", "bad timestamp") from None
    if value.__class__ is Timestamp:
        ts: Timestamp = value
        return ts.to_unix_nano()
    raise _Bad("t", "timestamp is neither an RFC 3339 string nor a msgpack Timestamp")


def _check(o: dict[str, Any], spec: Mapping[str, frozenset[type] | None]) -> None:
    """Slow path: find the first field that is missing or ill-typed, to report it precisely.

    Callers come here only after the fast path failed, and ``spec`` names every field the fast
    path reads (``None``: any type), so this always raises.
    """
    for key, types in spec.items():
        if key not in o:
            raise _Bad(key, "missing field")
        if types is not None and o[key].__class__ not in types:
            raise _Bad(key, "wrong type")
    raise _Bad("?", "invalid message")


def _extra(o: dict[str, Any], known: frozenset[str]) -> dict[str, Any] | None:
    return {k: v for k, v in o.items() if k not in known} or None


_STR = frozenset({str})
_INT = frozenset({int})
_TRADE_SPEC: dict[str, frozenset[type] | None] = {
    "S": _STR,
    "p": _NUM,
    "s": _NUM,
    "i": _INT,
    "t": None,
}
_TRADE_KEYS = frozenset({"T", "S", "p", "s", "t", "i", "tks"})


def _trade(o: dict[str, Any]) -> Trade:
    try:
        sym = o["S"]
        p = o["p"]
        s = o["s"]
        i = o["i"]
        t = o["t"]
    except KeyError:
        _check(o, _TRADE_SPEC)
        raise
    if (
        sym.__class__ is not str
        or p.__class__ not in _NUM
        or s.__class__ not in _NUM
        or i.__class__ is not int
    ):
        _check(o, _TRADE_SPEC)
    tks = o.get("tks")
    if tks is not None and tks.__class__ is not str:
        raise _Bad("tks", "wrong type")
    n = 6 if tks is None else 7
    extra = None if len(o) == n else _extra(o, _TRADE_KEYS)
    ns = _ts(t)
    return Trade(sym, p, s, ns, i, tks, extra)


_QUOTE_SPEC: dict[str, frozenset[type] | None] = {
    "S": _STR,
    "bp": _NUM,
    "bs": _NUM,
    "ap": _NUM,
    "as": _NUM,
    "t": None,
}
_QUOTE_KEYS = frozenset({"T", "S", "bp", "bs", "ap", "as", "t"})


def _quote(o: dict[str, Any]) -> Quote:
    try:
        sym = o["S"]
        bp = o["bp"]
        bs = o["bs"]
        ap = o["ap"]
        as_ = o["as"]
        t = o["t"]
    except KeyError:
        _check(o, _QUOTE_SPEC)
        raise
    if (
        sym.__class__ is not str
        or bp.__class__ not in _NUM
        or bs.__class__ not in _NUM
        or ap.__class__ not in _NUM
        or as_.__class__ not in _NUM
    ):
        _check(o, _QUOTE_SPEC)
    extra = None if len(o) == 7 else _extra(o, _QUOTE_KEYS)
    ns = _ts(t)
    return Quote(sym, bp, bs, ap, as_, ns, extra)


_BAR_SPEC: dict[str, frozenset[type] | None] = {
    "S": _STR,
    "o": _NUM,
    "h": _NUM,
    "l": _NUM,
    "c": _NUM,
    "v": _NUM,
    "n": _INT,
    "vw": _NUM,
    "t": None,
}
_BAR_KEYS = frozenset({"T", "S", "o", "h", "l", "c", "v", "t", "n", "vw"})


def _bar(o: dict[str, Any]) -> Bar:
    try:
        kind = BAR_KINDS[o["T"]]
        sym = o["S"]
        op = o["o"]
        hi = o["h"]
        lo = o["l"]
        cl = o["c"]
        v = o["v"]
        t = o["t"]
        n = o["n"]
        vw = o["vw"]
    except KeyError:
        _check(o, _BAR_SPEC)
        raise
    if (
        sym.__class__ is not str
        or op.__class__ not in _NUM
        or hi.__class__ not in _NUM
        or lo.__class__ not in _NUM
        or cl.__class__ not in _NUM
        or v.__class__ not in _NUM
        or n.__class__ is not int
        or vw.__class__ not in _NUM
    ):
        _check(o, _BAR_SPEC)
    extra = None if len(o) == 10 else _extra(o, _BAR_KEYS)
    return Bar(kind, sym, op, hi, lo, cl, v, _ts(t), n, vw, extra)


_BOOK_SPEC: dict[str, frozenset[type] | None] = {"S": _STR, "t": None}
_BOOK_KEYS = frozenset({"T", "S", "t", "b", "a", "r"})


def _levels(entries: Any, side: str) -> None:
    """Slow path of :func:`_book`: find what is wrong with one side's levels."""
    if not entries:  # missing, null or empty: lenient, as the spec asks
        return
    if entries.__class__ is not list:
        raise _Bad(side, "levels are not an array")
    for e in entries:
        if e.__class__ is not dict or "p" not in e or "s" not in e:
            raise _Bad(side, "a level is not an object with p and s")
        if e["p"].__class__ not in _NUM or e["s"].__class__ not in _NUM:
            raise _Bad(side, "a level's p or s is not a number")


def _book(o: dict[str, Any]) -> OrderBookUpdate:
    try:
        sym = o["S"]
        t = o["t"]
    except KeyError:
        _check(o, _BOOK_SPEC)
        raise
    if sym.__class__ is not str:
        raise _Bad("S", "wrong type")
    # Spec: both sides are normally present, possibly empty; be lenient if one is missing.
    b: Any = o.get("b") or ()
    a: Any = o.get("a") or ()
    r = o.get("r", False)
    if r.__class__ is not bool:
        raise _Bad("r", "wrong type")
    # A plain loop beats map(itemgetter) here: updates carry only a few levels. Anything but
    # a list of objects with numeric p and s fails inside it (iterating a string or a dict
    # yields strings, which cannot be indexed by "p"); _levels then names the culprit.
    bids: list[tuple[float, float]] = []
    asks: list[tuple[float, float]] = []
    try:
        for e in b:
            p = e["p"]
            s = e["s"]
            if p.__class__ not in _NUM or s.__class__ not in _NUM:
                raise TypeError
            bids.append((p, s))
        for e in a:
            p = e["p"]
            s = e["s"]
            if p.__class__ not in _NUM or s.__class__ not in _NUM:
                raise TypeError
            asks.append((p, s))
    except (KeyError, TypeError, IndexError):
        _levels(o.get("b"), "b")
        _levels(o.get("a"), "a")
        raise
    extra = None if _BOOK_KEYS.issuperset(o) else _extra(o, _BOOK_KEYS)
    ns = _ts(t)
    return OrderBookUpdate(sym, ns, bids, asks, r, extra)


_SUCCESS_KEYS = frozenset({"T", "msg"})


def _success(o: dict[str, Any]) -> Success:
    msg = o.get("msg")
    if msg.__class__ is not str:
        raise _Bad("msg", "missing field" if msg is None else "wrong type")
    return Success(msg, None if len(o) == 2 else _extra(o, _SUCCESS_KEYS))


_ERROR_KEYS = frozenset({"T", "code", "msg"})


def _error(o: dict[str, Any]) -> Error:
    code = o.get("code")
    if code.__class__ is not int:
        raise _Bad("code", "missing field" if code is None else "wrong type")
    msg = o.get("msg", "")
    if msg.__class__ is not str:
        raise _Bad("msg", "wrong type")
    return Error(code, msg, None if len(o) == 3 else _extra(o, _ERROR_KEYS))


_SUB_KEYS = frozenset({"T", *CHANNELS})


def _symbols(o: dict[str, Any], key: str) -> tuple[str, ...]:
    value = o.get(key)
    if value is None:
        return ()
    if value.__class__ is not list or not all(s.__class__ is str for s in value):
        raise _Bad(key, "not an array of symbols")
    return tuple(value)


def _subscription(o: dict[str, Any]) -> Subscription:
    return Subscription(
        _symbols(o, "trades"),
        _symbols(o, "quotes"),
        _symbols(o, "orderbooks"),
        _symbols(o, "bars"),
        _symbols(o, "updatedBars"),
        _symbols(o, "dailyBars"),
        None if _SUB_KEYS.issuperset(o) else _extra(o, _SUB_KEYS),
    )


_DECODERS: dict[Any, Callable[[dict[str, Any]], Message]] = {
    "t": _trade,
    "q": _quote,
    "b": _bar,
    "d": _bar,
    "u": _bar,
    "o": _book,
    "success": _success,
    "subscription": _subscription,
    "error": _error,
}


def _unknown(o: dict[str, Any]) -> Unknown:
    T = o["T"]
    if T.__class__ is not str:
        raise _Bad("T", "wrong type")
    return Unknown(T, o)


def _diagnose(data: list[Any], i: int, exc: Exception) -> DecodeError:
    """Slow path: say why message ``i`` failed when the fast loop hit a raw Python error."""
    o = data[i]
    if o.__class__ is not dict:
        return DecodeError("message is not an object", index=i, field="T")
    if "T" not in o:
        return DecodeError("missing field", index=i, field="T")
    # An unhashable T, or an oddity inside a message that the fast path does not name.
    return DecodeError(f"invalid message ({type(exc).__name__})", index=i)


def _slow(o: Any) -> Message:
    """One message through its careful decoder: exact errors, every accepted shape."""
    return _DECODERS.get(o["T"], _unknown)(o)


def _messages(data: Any) -> list[Message]:
    # The hot loop. Trades, quotes, bars and book updates of the usual shape (known keys only,
    # exact types, ``t`` a cached second plus a fraction) are decoded inline, without a call per
    # message; anything else, including every malformed message, falls back to _slow, which
    # accepts and rejects exactly what the per-type decoders do. The fast path only ever
    # accepts a subset of what _slow accepts, with the same result.
    if data.__class__ is not list:
        raise DecodeError("frame is not an array")
    out: list[Message] = []
    append = out.append
    dots = _DOTS
    wholes = _WHOLES
    scale = _SCALE
    num = _NUM
    try:
        for o in data:
            try:
                T = o["T"]
                if T in _TICK_KINDS:
                    # Books, trades and quotes share the timestamp rules: parse it once.
                    t = o["t"]
                    if t.__class__ is str:
                        f = t[20:-1]
                        if t[-1] != "Z" or not f.isdigit() or not f.isascii():
                            raise TypeError
                        # More than 9 digits: IndexError, so the careful path rejects it.
                        ns = dots[t[:20]] + int(f) * scale[len(f)]
                    elif t.__class__ is Timestamp:
                        # Timestamp.to_unix_nano inlined (a call less); the stubs omit its slots.
                        ns = t.seconds * 1_000_000_000 + t.nanoseconds  # type: ignore[attr-defined]
                    else:
                        raise TypeError
                if T == "o":
                    if (
                        o["S"].__class__ is str
                        and (b := o["b"]).__class__ is list
                        and (a := o["a"]).__class__ is list
                    ):
                        n = len(o)
                        if n == 5:
                            r = False
                        elif n == 6 and (r := o["r"]).__class__ is bool:
                            pass
                        else:
                            append(_slow(o))
                            continue
                        bids: list[Level] = []
                        asks: list[Level] = []
                        for e in b:
                            p = e["p"]
                            s = e["s"]
                            if p.__class__ not in num or s.__class__ not in num:
                                raise TypeError
                            bids.append((p, s))
                        for e in a:
                            p = e["p"]
                            s = e["s"]
                            if p.__class__ not in num or s.__class__ not in num:
                                raise TypeError
                            asks.append((p, s))
                        append(OrderBookUpdate(o["S"], ns, bids, asks, r))
                        continue
                elif T == "t":
                    sym = o["S"]
                    p = o["p"]
                    s = o["s"]
                    i = o["i"]
                    if (
                        len(o) == 7
                        and sym.__class__ is str
                        and p.__class__ in num
                        and s.__class__ in num
                        and i.__class__ is int
                        and (tks := o["tks"]).__class__ is str
                    ):
                        append(Trade(sym, p, s, ns, i, tks))
                        continue
                elif T == "q":
                    sym = o["S"]
                    bp = o["bp"]
                    bs = o["bs"]
                    ap = o["ap"]
                    as_ = o["as"]
                    if (
                        len(o) == 7
                        and sym.__class__ is str
                        and bp.__class__ in num
                        and bs.__class__ in num
                        and ap.__class__ in num
                        and as_.__class__ in num
                    ):
                        append(Quote(sym, bp, bs, ap, as_, ns))
                        continue
                elif T in BAR_KINDS:
                    t = o["t"]
                    sym = o["S"]
                    op = o["o"]
                    hi = o["h"]
                    lo = o["l"]
                    cl = o["c"]
                    v = o["v"]
                    nt = o["n"]
                    vw = o["vw"]
                    if (
                        len(o) == 10
                        and sym.__class__ is str
                        and op.__class__ in num
                        and hi.__class__ in num
                        and lo.__class__ in num
                        and cl.__class__ in num
                        and v.__class__ in num
                        and nt.__class__ is int
                        and vw.__class__ in num
                    ):
                        if t.__class__ is Timestamp:
                            ns = t.seconds * 1_000_000_000 + t.nanoseconds  # type: ignore[attr-defined]
                        elif len(t) == 20:
                            ns = wholes[t]
                        elif t[-1] == "Z" and (f := t[20:-1]).isdigit() and f.isascii():
                            ns = dots[t[:20]] + int(f) * scale[len(f)]
                        else:
                            raise TypeError
                        append(Bar(BAR_KINDS[T], sym, op, hi, lo, cl, v, ns, nt, vw, None))
                        continue
            except (KeyError, TypeError, IndexError, AttributeError, ValueError):
                # Not the usual shape (or not even an object): let the careful path judge it.
                pass
            append(_slow(o))
    except _Bad as exc:
        raise DecodeError(exc.reason, index=len(out), field=exc.field) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise _diagnose(data, len(out), exc) from None
    return out


def decode_json(payload: bytes | bytearray | memoryview | str) -> list[Message]:
    """Messages of one JSON frame.

    Raises:
        DecodeError: the payload is not a JSON array of well-formed Alpaca messages.
    """
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise DecodeError("not valid JSON") from None
    return _messages(data)


def _unpack(payload: bytes | bytearray | memoryview) -> Any:
    try:
        return msgpack.unpackb(payload, raw=False, timestamp=0, strict_map_key=True)
    except Exception:
        # msgpack raises a zoo (ExtraData, FormatError, StackError, ValueError, TypeError...).
        raise DecodeError("not valid msgpack") from None


def decode_msgpack(payload: bytes | bytearray | memoryview) -> list[Message]:
    """Messages of one msgpack frame (``t`` as a Timestamp ext -1, or a string).

    Raises:
        DecodeError: the payload is not a msgpack array of well-formed Alpaca messages.
    """
    return _messages(_unpack(payload))


def decode(payload: bytes | bytearray | memoryview | str) -> list[Message]:
    """Messages of one server frame, JSON or msgpack (a first non-space ``[`` means JSON).

    Raises:
        DecodeError: the frame is malformed in any way.
    """
    if payload.__class__ is bytes and payload[:1] == b"[":  # the usual JSON frame: fewer calls
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise DecodeError("not valid JSON") from None
        return _messages(data)
    if isinstance(payload, str) or _looks_like_json(payload, b"[{"):
        return decode_json(payload)
    return decode_msgpack(payload)
