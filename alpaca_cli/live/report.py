"""The ``run --report PATH`` JSON: what a CI job keeps and asserts on after a smoke run.

Shape (stable; documented in the README)::

    {"symbols": {"BTC/USD": {"frames": 812, "counts": {"o": 700, "t": 112},
                             "rate": 27.1, "rate_5s": 26.0, "rate_60s": 27.1,
                             "first_message_latency": 0.012, "latency": 0.004,
                             "book_levels": [20, 20], "book_valid": true}, ...},
     "subscribed": ["BTC/USD", ...], "data_messages": 4100, "frames_received": 3900,
     "reconnects": 0, "connections_opened": 0, "resumed": 0, "errors": 0, "error_log": [],
     "decode_errors": 0,
     "steps": {"deploy": 0.12, ...}, "duration": 30.0,
     "exit_reason": "duration reached", "exit_code": 0}

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

__all__ = ["build_report", "write_report"]


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
) -> dict[str, Any]:
    """The report as a JSON-ready dict, computed at ``now`` (monotonic, like the stats).

    ``connections_opened`` counts the new connections ``run`` opened in place of ones whose
    reconnects ran out (each is also one of ``reconnects``).
    """
    elapsed = max(now - stats.start, 1e-9)
    symbols: dict[str, Any] = {}
    for row in stats.rows(now):
        symbols[row.symbol] = {
            "frames": row.frames,
            "counts": dict(sorted(row.counts.items())),
            "rate": round(row.frames / elapsed, 3),
            "rate_5s": round(row.rate_short, 3),
            "rate_60s": round(row.rate_long, 3),
            "first_message_latency": _round(row.first_latency),
            "latency": _round(row.latency),
            "book_levels": list(row.levels) if row.levels is not None else None,
            "book_valid": row.book_valid,
        }
    return {
        "symbols": symbols,
        "subscribed": list(stats.expected),
        "data_messages": stats.data_messages,
        "frames_received": stats.frames_received,
        "reconnects": stats.reconnects,
        "connections_opened": connections_opened,
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


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Write atomically (temp file + rename) so a CI step never reads half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
