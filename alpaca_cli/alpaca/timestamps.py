"""RFC 3339 timestamps and msgpack Timestamps <-> integer nanoseconds since the Unix epoch.

Alpaca sends nanosecond timestamps (``2024-03-12T10:27:48.858228144Z``); ``datetime`` keeps only
microseconds and is slow to build, so the hot path works on integers. Parsing caches the epoch
second of the ``YYYY-MM-DDTHH:MM:SS`` prefix: a busy stream repeats the same second thousands of
times, so most timestamps cost one dict lookup plus one ``int()`` of the fraction.
"""

from __future__ import annotations

from msgpack import Timestamp

__all__ = [
    "format_rfc3339",
    "from_msgpack_timestamp",
    "parse_rfc3339",
    "to_msgpack_timestamp",
]

_NS_PER_S = 1_000_000_000
_SCALE: tuple[int, ...] = tuple(10 ** (9 - n) for n in range(10))
"""Multiplier that turns an ``n``-digit fraction into nanoseconds."""

_CACHE_MAX = 4096
_prefix_cache: dict[str, int] = {}
"""``YYYY-MM-DDTHH:MM:SS`` -> epoch nanoseconds of that second. Only ever holds seconds
:func:`_parse_prefix` validated: the codec's frame-wide timestamp check (:mod:`.codec`) relies
on that, and on the dict being cleared in place rather than replaced."""
_dot_cache: dict[str, int] = {}
"""``YYYY-MM-DDTHH:MM:SS.`` -> the same (a hit also proves the ``.``). Kept filled for the frozen
pre-msgspec decoder the tests pin the codec to, which reads this and :data:`_whole_cache`."""
_whole_cache: dict[str, int] = {}
"""``YYYY-MM-DDTHH:MM:SSZ`` -> the same: whole timestamps without a fraction (bars)."""


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """Inverse of :func:`_days_from_civil`."""
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _is_digits(s: str) -> bool:
    """ASCII digits only: ``str.isdigit`` alone accepts ``²`` and other scripts' digits."""
    return s.isdigit() and s.isascii()


def _parse_prefix(prefix: str) -> int:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` (``T`` may be ``t`` or a space, per RFC 3339)."""
    if (
        len(prefix) != 19
        or prefix[4] != "-"
        or prefix[7] != "-"
        or prefix[10] not in "Tt "
        or prefix[13] != ":"
        or prefix[16] != ":"
    ):
        raise ValueError("not an RFC 3339 date-time")
    parts = (prefix[0:4], prefix[5:7], prefix[8:10], prefix[11:13], prefix[14:16], prefix[17:19])
    if not all(_is_digits(p) for p in parts):
        raise ValueError("not an RFC 3339 date-time")
    y, mo, d, h, mi, s = (int(p) for p in parts)
    # A leap second (:60) is folded onto the next second, as POSIX time does.
    if not (1 <= mo <= 12 and 1 <= d <= _days_in_month(y, mo) and h <= 23 and mi <= 59 and s <= 60):
        raise ValueError("RFC 3339 date-time out of range")
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s


def parse_rfc3339(value: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp.

    Accepts 0 to 9 fractional digits and a ``Z`` or ``±HH:MM`` offset.

    Raises:
        ValueError: ``value`` is not such a timestamp (the message never echoes the value).
    """
    # Fast path, Alpaca's own shape: a cached second, then ".<1-9 ASCII digits>Z".
    base = _prefix_cache.get(value[:19])
    if base is not None and value[-1:] == "Z":
        frac = value[20:-1]
        n = len(frac)
        if 0 < n <= 9 and value[19] == "." and frac.isdigit() and frac.isascii():
            return base + int(frac) * _SCALE[n]
    return _parse_slow(value)


def _parse_slow(value: str) -> int:
    prefix = value[:19]
    base = _prefix_cache.get(prefix)
    if base is None:
        base = _parse_prefix(prefix) * _NS_PER_S
        if len(_prefix_cache) >= _CACHE_MAX:
            _prefix_cache.clear()
            _dot_cache.clear()
            _whole_cache.clear()
        _prefix_cache[prefix] = base
        _dot_cache[prefix + "."] = base
        _whole_cache[prefix + "Z"] = base
    rest = value[19:]
    if rest[-1:] in ("Z", "z"):
        offset = 0
        rest = rest[:-1]
    else:
        offset = _parse_offset(rest[-6:]) * _NS_PER_S
        rest = rest[:-6]
    if not rest:
        return base - offset
    frac = rest[1:]
    n = len(frac)
    if rest[0] != "." or not 0 < n <= 9 or not (frac.isdigit() and frac.isascii()):
        raise ValueError("bad RFC 3339 fractional seconds (0 to 9 digits allowed)")
    return base - offset + int(frac) * _SCALE[n]


def _parse_offset(tz: str) -> int:
    if len(tz) != 6 or tz[0] not in "+-" or tz[3] != ":":
        raise ValueError("RFC 3339 timestamp without a Z or ±HH:MM offset")
    hh, mm = tz[1:3], tz[4:6]
    if not (_is_digits(hh) and _is_digits(mm)) or int(hh) > 23 or int(mm) > 59:
        raise ValueError("bad RFC 3339 offset")
    seconds = int(hh) * 3600 + int(mm) * 60
    return seconds if tz[0] == "+" else -seconds


def format_rfc3339(ns: int) -> str:
    """The RFC 3339 UTC form of ``ns`` as Alpaca writes it: ``Z``, trailing zeros trimmed.

    Raises:
        ValueError: the year falls outside 0000-9999.
    """
    seconds, frac = divmod(ns, _NS_PER_S)
    days, sod = divmod(seconds, 86400)
    y, m, d = _civil_from_days(days)
    if not 0 <= y <= 9999:
        raise ValueError("timestamp outside the years 0000-9999")
    h, rem = divmod(sod, 3600)
    mi, s = divmod(rem, 60)
    head = f"{y:04d}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
    if frac:
        return f"{head}.{frac:09d}".rstrip("0") + "Z"
    return head + "Z"


def from_msgpack_timestamp(ts: Timestamp) -> int:
    """Nanoseconds since the epoch of a msgpack Timestamp (ext type -1)."""
    return ts.to_unix_nano()


def to_msgpack_timestamp(ns: int) -> Timestamp:
    """The msgpack Timestamp (ext type -1) of ``ns`` nanoseconds since the epoch."""
    seconds, nanoseconds = divmod(ns, _NS_PER_S)
    return Timestamp(seconds, nanoseconds)
