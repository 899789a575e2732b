"""Number formatting shared by the live table and the plain summary lines."""

from __future__ import annotations

__all__ = ["count", "duration", "price", "rate", "seconds", "side"]


def price(value: float | None) -> str:
    """A price with about six significant digits (BTC 87250.5, DOGE 0.162874)."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.2f}"
    if magnitude >= 1:
        return f"{value:.4f}"
    text = f"{value:.8f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


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
