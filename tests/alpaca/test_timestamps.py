"""RFC 3339 and msgpack Timestamp conversions keep every nanosecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgpack import Timestamp

from alpaca_cli.alpaca.timestamps import (
    format_rfc3339,
    from_msgpack_timestamp,
    parse_rfc3339,
    to_msgpack_timestamp,
)

MIN_NS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp()) * 10**9
MAX_NS = (int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()) + 1) * 10**9 - 1


def _ns(dt: datetime, frac_ns: int = 0) -> int:
    """Reference: epoch ns via datetime arithmetic (independent of the module under test)."""
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 10**9 + frac_ns


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2024-03-12T10:27:48.858228144Z",
            _ns(datetime(2024, 3, 12, 10, 27, 48, tzinfo=UTC), 858228144),
        ),
        (
            "2024-03-12T10:38:50.79613221Z",
            _ns(datetime(2024, 3, 12, 10, 38, 50, tzinfo=UTC), 796132210),
        ),
        ("2023-03-17T12:28:00Z", _ns(datetime(2023, 3, 17, 12, 28, tzinfo=UTC))),
        ("1970-01-01T00:00:00.000000001Z", 1),
        ("1969-12-31T23:59:59.999999999Z", -1),
        ("2024-02-29T00:00:00.5Z", _ns(datetime(2024, 2, 29, tzinfo=UTC), 500_000_000)),
        (
            "2024-03-12T11:27:48.1+01:00",
            _ns(datetime(2024, 3, 12, 10, 27, 48, tzinfo=UTC), 100_000_000),
        ),
        ("2024-03-12T09:57:48-00:30", _ns(datetime(2024, 3, 12, 10, 27, 48, tzinfo=UTC))),
        ("2024-03-12t10:27:48z", _ns(datetime(2024, 3, 12, 10, 27, 48, tzinfo=UTC))),
    ],
    ids=[
        "spec-trade",
        "spec-book-8-digits",
        "spec-bar-no-fraction",
        "one-ns",
        "before-epoch",
        "leap-day",
        "plus-offset",
        "minus-offset",
        "lower-case",
    ],
)
def test_parse_known_values(text: str, expected: int) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-03-12",
        "2024-03-12T10:27:48",  # no offset
        "2024-03-12T10:27:48.Z",  # empty fraction
        "2024-03-12T10:27:48.1234567890Z",  # 10 digits
        "2024-03-12T10:27:48.12a4Z",
        "2024-13-12T10:27:48Z",
        "2023-02-29T10:27:48Z",
        "2024-03-12T24:00:00Z",
        "2024-03-12T10:60:00Z",
        "2024-03-12X10:27:48Z",
        "2024-03-12T10:27:48+0100",
        "2024-03-12T10:27:48+25:00",
        "２０２４-03-12T10:27:48Z",  # non-ASCII digits
        "2024-03-12T10:27:48.１Z",
        "2024-03-12T10:27:48Zjunk",
    ],
)
def test_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_error_message_never_echoes_the_value() -> None:
    with pytest.raises(ValueError) as info:
        parse_rfc3339("2024-03-12T10:27:48.secretZ")
    assert "secret" not in str(info.value)


def test_format_trims_trailing_zeros_like_alpaca() -> None:
    assert format_rfc3339(parse_rfc3339("2024-03-12T10:38:50.79613221Z")) == (
        "2024-03-12T10:38:50.79613221Z"
    )
    assert format_rfc3339(parse_rfc3339("2023-03-17T12:28:00Z")) == "2023-03-17T12:28:00Z"
    assert format_rfc3339(1_500_000_000) == "1970-01-01T00:00:01.5Z"
    assert format_rfc3339(-1) == "1969-12-31T23:59:59.999999999Z"


def test_format_rejects_years_beyond_four_digits() -> None:
    with pytest.raises(ValueError):
        format_rfc3339(MAX_NS + 1)


@given(st.integers(MIN_NS, MAX_NS))
def test_format_then_parse_is_identity(ns: int) -> None:
    text = format_rfc3339(ns)
    assert parse_rfc3339(text) == ns
    assert text.endswith("Z")
    assert not text[:-1].endswith("0") or "." not in text


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(0, 9),
    st.integers(0, 999_999_999),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
)
def test_parse_matches_datetime_reference(
    dt: datetime, digits: int, frac: int, offset_min: int
) -> None:
    frac = frac // 10 ** (9 - digits) * 10 ** (9 - digits)
    whole = dt.replace(microsecond=0, tzinfo=UTC)
    local = whole + timedelta(minutes=offset_min)
    sign = "+" if offset_min >= 0 else "-"
    hh, mm = divmod(abs(offset_min), 60)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    text = f"{text:0>19}"  # strftime drops leading zeros of years < 1000 on some platforms
    if digits:
        text += "." + f"{frac:09d}"[:digits]
    text += "Z" if offset_min == 0 and digits % 2 else f"{sign}{hh:02d}:{mm:02d}"
    assert local.tzinfo is not None
    assert datetime.fromisoformat(text[:19]).replace(tzinfo=UTC) == local
    assert parse_rfc3339(text) == _ns(whole, frac)


@given(st.text(max_size=40))
def test_parse_of_any_text_is_an_int_or_a_value_error(text: str) -> None:
    try:
        result = parse_rfc3339(text)
    except ValueError:
        return
    assert isinstance(result, int)


@given(st.integers(-(2**62), 2**62))
def test_msgpack_timestamp_round_trip(ns: int) -> None:
    ts = to_msgpack_timestamp(ns)
    assert isinstance(ts, Timestamp)
    assert ts.to_unix_nano() == ns
    assert from_msgpack_timestamp(ts) == ns
