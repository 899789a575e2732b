"""The non-TTY view: one summary line every few seconds instead of a live table.

CI logs keep every line, so a redrawing table would be noise; a line per interval says the same
with timestamps a reader can grep. Lines go to stderr: stdout is for data.
"""

from __future__ import annotations

from typing import TextIO

from alpaca_cli.closing import Closing
from alpaca_cli.live import format as fmt
from alpaca_cli.live.stats import SHORT_WINDOW, RunInfo, StreamStats

__all__ = ["INTERVAL", "PlainSummary", "summary_line"]

INTERVAL = 5.0
"""Seconds between summary lines."""


def summary_line(stats: StreamStats, info: RunInfo, now: float) -> str:
    """One line: uptime, totals, rate, reconnects, errors, then per-symbol frame counts."""
    rate = stats.rates.rate(now, SHORT_WINDOW)
    per_symbol = " ".join(f"{row.symbol}={row.frames}" for row in stats.rows(now))
    return (
        f"[{fmt.duration(stats.streaming_time(now))}] {info.phase}: {stats.data_messages} messages "
        f"({fmt.rate(rate)}/s) reconnects={stats.reconnects} errors={stats.errors}"
        + (f" {per_symbol}" if per_symbol else "")
    )


class PlainSummary(Closing):
    """Writes :func:`summary_line` to ``stream`` every ``interval`` seconds of ``tick`` time;
    ``with`` it as with the live table (there is nothing to close)."""

    def __init__(
        self, stats: StreamStats, info: RunInfo, stream: TextIO, *, interval: float = INTERVAL
    ) -> None:
        self._stats = stats
        self._info = info
        self._stream = stream
        self._interval = interval
        self._next = stats.start + interval

    def tick(self, now: float, *, force: bool = False) -> None:
        """Write a line when the interval has passed (or ``force``: the final line)."""
        if now < self._next and not force:
            return
        self._next = now + self._interval
        self._stream.write(summary_line(self._stats, self._info, now) + "\n")
        self._stream.flush()

    def close(self) -> None:
        pass
