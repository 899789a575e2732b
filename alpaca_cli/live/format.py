"""Number formatting shared by the live table and the plain summary lines."""

from __future__ import annotations

__all__ = [
    "MAX_DECIMALS",
    "count",
    "decimals_of",
    "duration",
    "kind",
    "price",
    "rate",
    "seconds",
    "side",
    "size",
]

MAX_DECIMALS = 10
"""Most decimals a price is shown with: SHIB/USD's 0.00001234 needs 8; more is noise."""

KIND_WORDS = {
    "t": "trade",
    "q": "quote",
    "o": "book",
    "b": "bar",
    "d": "daily bar",
    "u": "updated bar",
}
"""Wire ``T`` -> the word the table's ``last`` column shows."""


def decimals_of(value: float) -> int:
    """Decimals ``value`` needs to be shown exactly (at most :data:`MAX_DECIMALS`), never in
    exponent form: ``87000.5`` -> 1, ``1.234e-05`` -> 8."""
    text = f"{value:.{MAX_DECIMALS}f}".rstrip("0")
    return len(text) - text.index(".") - 1


def price(value: float | None, decimals: int | None = None) -> str:
    """A price. With ``decimals`` (the most seen for its symbol), fixed: every price of one
    symbol lines up and bid and ask of SHIB/USD differ. Without, about six significant digits
    (BTC 87250.5, DOGE 0.162874)."""
    if value is None:
        return "-"
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.2f}"
    if magnitude >= 1:
        return f"{value:.4f}"
    text = f"{value:.8f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def size(value: float) -> str:
    """A size without exponent form (``0.00012``, ``29.205707815``, ``1200``)."""
    text = f"{value:.{MAX_DECIMALS}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def kind(value: str | None) -> str:
    """The kind of a data message in words (``trade``, ``book``...)."""
    return "-" if value is None else KIND_WORDS.get(value, value)


def rate(value: float) -> str:
    """Messages per second: one decimal below 100."""
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def count(value: int) -> str:
    return f"{value:,}"


def seconds(value: float | None) -> str:
    """An age or latency: ms below one second, else seconds."""
    if value is None:
        return "-"
    if abs(value) < 1:
        return f"{value * 1000:.0f}ms"
    if abs(value) < 100:
        return f"{value:.1f}s"
    return f"{value:.0f}s"


def duration(value: float) -> str:
    """An uptime: ``42s``, ``3m05s``, ``1h02m``."""
    total = int(value)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def side(value: str | None) -> str:
    """Taker side: ``buy``/``sell``."""
    return {"B": "buy", "S": "sell"}.get(value or "", "-")
