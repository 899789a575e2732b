"""Memory: peak RSS of ``tail`` and of ``run`` at the highest sustained rate.

Peak RSS is the process's own ``VmHWM`` (/proc/<pid>/status), sampled while it runs, free of
psutil; ``ru_maxrss`` would not do (see :func:`bench.platform.vm_hwm_kb`). ``tail``'s numbers
come from the end-to-end steps (:mod:`bench.e2e` samples each tail that way); ``run`` is
measured here as ``alpaca-md run --embedded`` for a few seconds, which holds the whole embedded
platform and the Alpaca server in the same process, so its figure is the platform's footprint
plus the consumer's.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.platform import PeakRss, alpaca_md, reap

__all__ = ["run", "run_peak_rss", "tail_peak_rss"]

TAIL_LIMIT_MB = 100.0


def tail_peak_rss(e2e: dict[str, Any]) -> dict[str, Any]:
    """Tail's peak RSS per measured rate, from an :func:`bench.e2e.run` result."""
    return {
        rate: step.get("tail_peak_rss_mb")
        for rate, step in e2e.get("steps", {}).items()
        if isinstance(step, dict)
    }


def _supports(option: str) -> bool:
    proc = subprocess.run(
        [alpaca_md(), "run", "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    return option in proc.stdout


def _streamed(report: Path) -> dict[str, Any] | None:
    """Data messages per symbol from run's ``--report``: proof the run really streamed."""
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return None
    symbols = data.get("symbols") or {}
    frames = {s: v.get("frames") for s, v in symbols.items() if isinstance(v, dict)}
    return {
        "data_messages": sum(v for v in frames.values() if isinstance(v, int)),
        "symbols": len(frames),
        "exit_reason": data.get("exit_reason"),
    }


def run_peak_rss(rate: int | None, seconds: float = 10.0) -> dict[str, Any]:
    """``alpaca-md run --embedded --duration seconds`` (at ``rate`` when run takes ``--rate``)."""
    argv = [alpaca_md(), "run", "--embedded", "--duration", str(seconds)]
    rate_applied = rate is not None and _supports("--rate")
    if rate_applied:
        argv += ["--rate", str(rate)]
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        report_path = Path(tmp) / "report.json"
        argv += ["--report", str(report_path)]
        env = {
            **os.environ,
            "ALPACA_MD_STATE": str(Path(tmp) / "state.json"),
            "NO_COLOR": "1",
        }
        t0 = time.perf_counter()
        with (Path(tmp) / "run.log").open("wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=tmp,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        peak = PeakRss(proc.pid)
        code = reap(proc, timeout=seconds + 60)
        rss_kb = peak.stop()
        log_tail = (Path(tmp) / "run.log").read_text(errors="replace")[-500:]
        streamed = _streamed(report_path)
    return {
        "argv": " ".join(argv[1:]),
        "rate_applied": rate_applied,
        "exit_code": code,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": None if rss_kb is None else round(rss_kb / 1024, 1),
        "streamed": streamed,
        **({"log_tail": log_tail} if code != 0 else {}),
    }


def run(e2e: dict[str, Any], seconds: float = 10.0) -> dict[str, Any]:
    """Both figures; ``e2e`` is the end-to-end result whose tails were measured."""
    tails = tail_peak_rss(e2e)
    best = e2e.get("max_sustained_rate")
    errors: dict[str, str] = {}
    try:
        run_result: dict[str, Any] | None = run_peak_rss(best, seconds)
    except (OSError, subprocess.SubprocessError) as exc:
        run_result, errors["run"] = None, f"{type(exc).__name__}: {exc}"
    at_10k = tails.get("10000")
    at_best = tails.get(str(best)) if best else None
    return {
        "workload": {
            "tail": "alpaca-md tail --output json in each end-to-end step (10 s + warm-up)",
            "run": f"alpaca-md run --embedded --duration {seconds} (platform in-process)",
            "statistic": "VmHWM of the process, sampled every 0.1 s until it exits",
            "highest_sustained_rate": best,
        },
        "tail_peak_rss_mb_by_rate": tails,
        "tail_peak_rss_mb_at_highest_sustained": at_best,
        "run": run_result,
        "targets": {
            "tail_under_100mb_at_10k": None if at_10k is None else at_10k < TAIL_LIMIT_MB,
            "tail_under_100mb_at_highest_sustained": None
            if at_best is None
            else at_best < TAIL_LIMIT_MB,
        },
        "errors": errors,
    }
