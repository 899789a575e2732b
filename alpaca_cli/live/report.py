"""The ``run --report PATH`` JSON: what a CI job keeps and asserts on after a smoke run.

Shape (stable; documented in the README)::

    {"symbols": {"BTC/USD": {"frames": 812, "counts": {"o": 700, "t": 112},
                             "channels": {"orderbooks": 700, "trades": 112},
                             "rate": 27.1, "rate_5s": 26.0, "rate_60s": 27.1,
                             "first_message_latency": 0.012, "latency": 0.004,
                             "latency_p50": 0.004, "latency_p95": 0.009, "latency_p99": 0.02,
                             "longest_gap": 0.8, "time_to_first_data": 0.05,
                             "stale_seconds": 0.0,
                             "book_levels": [20, 20], "book_valid": true}, ...},
     "subscribed": ["BTC/USD", ...], "data_messages": 4100, "frames_received": 3900,
     "channels": {"orderbooks": 3500, "trades": 600}, "streaming_time": 29.96,
     "latency_p50": 0.004, "latency_p95": 0.01, "latency_p99": 0.03, "longest_gap": 1.2,
     "time_to_first_data": 0.05,
     "reconnects": 0, "connections_opened": 0, "bus": "gateway", "bus_gaps": 0,
     "resumed": 0, "errors": 0, "error_log": [],
     "decode_errors": 0,
     "steps": {"deploy": 0.12, ...}, "duration": 30.0,
     "exit_reason": "duration reached", "exit_code": 0}

Rates are frames divided by ``streaming_time`` (the seconds the stream loop ran), never by the
whole run: deploying and connecting take seconds in which no data can flow. ``duration`` is the
whole run. Latencies are the messages' own timestamps against their receipt (bars excluded: a
bar's time is its start); percentiles are nearest-rank over a bounded sample.

No secret can reach it: it is built only from the stream statistics and step timings.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alpaca_cli.live.stats import LONG_WINDOW, SHORT_WINDOW, StreamStats

__all__ = ["build_report", "per_second", "write_report", "write_text"]


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def build_report(
    stats: StreamStats,
    *,
    now: float,
    steps: Mapping[str, float],
    exit_reason: str,
    exit_code: int,
    connections_opened: int = 0,
    bus: str | None = None,
    bus_gaps: int = 0,
) -> dict[str, Any]:
    """The report as a JSON-ready dict, computed at ``now`` (monotonic, like the stats).

    ``connections_opened`` counts the new connections ``run`` opened in place of ones whose
    reconnects ran out (each is also one of ``reconnects``). ``bus`` is the pub/sub path
    (``gateway`` or ``dapr``) and ``bus_gaps`` how often the gateway's stream was down and
    re-opened: whatever was published meanwhile is lost for good.
    """
    elapsed = max(now - stats.start, 1e-9)
    streaming = stats.streaming_time(now)
    symbols: dict[str, Any] = {}
    gaps: list[float] = []
    for row in stats.rows(now):
        gap = stats.gap_of(row.symbol, now)
        gaps.append(gap)
        symbols[row.symbol] = {
            "frames": row.frames,
            "counts": dict(sorted(row.counts.items())),
            "channels": stats.channel_counts(row.symbol),
            "rate": per_second(row.frames, streaming),
            "rate_5s": round(row.rate_short, 3),
            "rate_60s": round(row.rate_long, 3),
            "first_message_latency": _round(row.first_latency),
            "latency": _round(row.latency),
            **_latencies(stats, row.symbol),
            "longest_gap": round(gap, 3),
            "time_to_first_data": _round(stats.time_to_first_data(row.symbol), 3),
            "stale_seconds": round(stats.stale_for(row.symbol, now), 3),
            "book_levels": list(row.levels) if row.levels is not None else None,
            "book_valid": row.book_valid,
        }
    return {
        "symbols": symbols,
        "subscribed": list(stats.expected),
        "data_messages": stats.data_messages,
        "frames_received": stats.frames_received,
        "channels": stats.channel_counts(),
        "rate": per_second(stats.data_messages, streaming),
        "streaming_time": round(streaming, 3),
        **_latencies(stats, None),
        "longest_gap": round(max(gaps), 3) if gaps else None,
        "time_to_first_data": _round(stats.time_to_first_data(), 3),
        "first_data_since_process_start": _since_process_start(stats),
        "reconnects": stats.reconnects,
        "connections_opened": connections_opened,
        "bus": bus,
        "bus_gaps": bus_gaps,
        "stalls": stats.stalls,
        "resumed": stats.resumed,
        "errors": stats.errors,
        "error_log": list(stats.error_log),
        "decode_errors": stats.decode_errors,
        "steps": {name: round(seconds, 3) for name, seconds in steps.items()},
        "duration": round(elapsed, 3),
        "windows": {"short": SHORT_WINDOW, "long": LONG_WINDOW},
        "exit_reason": exit_reason,
        "exit_code": exit_code,
    }


def per_second(count: int, seconds: float) -> float:
    """``count`` per streaming second (0 when nothing streamed), rounded for the report."""
    return round(count / seconds, 3) if seconds > 0 else 0.0


def _latencies(stats: StreamStats, symbol: str | None) -> dict[str, float | None]:
    return {f"latency_p{q}": _round(stats.latency_percentile(q, symbol)) for q in (50, 95, 99)}


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Write atomically (temp file + rename) so a CI step never reads half a report."""
    write_text(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (temp file, fsync, rename), mode 0600 (``mkstemp``'s): the
    report, ``--junit`` and ``dev up --write-env`` use it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _since_process_start(stats: StreamStats) -> float | None:
    """Seconds from this process's start (interpreter start-up included, as a user waits for
    it) to the first data message: what ``run --embedded`` makes an operator wait for.

    ``time.monotonic()`` is the system-wide CLOCK_MONOTONIC on Linux, and /proc says how long
    ago this process started; elsewhere ``None``.
    """
    firsts = [s.first_seen for s in stats.symbols.values() if s.first_seen is not None]
    if not firsts:
        return None
    try:
        import os
        import time

        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        started = time.monotonic() - age
    except (OSError, ValueError, IndexError):
        return None
    return round(max(0.0, min(firsts) - started), 3)
