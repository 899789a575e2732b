"""``make bench``: run every benchmark, write bench/results.json, print a table.

Usage: ``python -m bench [--only decode,startup,e2e,memory,soak] [--skip soak] [--quick]
[--soak-seconds S] [--bus dapr] [--out PATH]``.
``--quick`` shrinks every workload (seconds instead of minutes) to check the suite runs; its
numbers are not the benchmark's. The full run takes about seven minutes plus the ten-minute
soak (``bench.soak``: one ``run`` past two connection-record TTLs; ``--skip soak`` leaves it
out): the end-to-end rate ladder has its own time budget and stops at the first rate it cannot
sustain. ``--bus``
picks the transport the end-to-end and memory benchmarks measure (``bench.platform.BUSES``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform as pyplatform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import decode, e2e, memory, soak, startup
from bench.platform import BUSES, DevUp
from bench.report import render

ALL = ("decode", "startup", "e2e", "memory", "soak")
DEFAULT_OUT = Path(__file__).with_name("results.json")


_MEASURED_PACKAGES = ("msgspec", "orjson", "websockets", "grpcio", "protobuf", "httpx", "msgpack")


def _versions() -> dict[str, str | None]:
    """Versions of the packages on the measured paths. Absolute rates differ between sessions
    (one window of the e2e ceiling read anywhere from 583k to 958k msg/s) and the dependencies
    are not pinned, so a run records what it measured with; compare ratios, not rates."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in _MEASURED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _git_commit() -> str | None:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() or None


def _guard(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one benchmark; a crash is recorded in the results instead of losing the others."""
    t0 = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:
        result = {
            "errors": {"crash": f"{type(exc).__name__}: {exc}"},
            "traceback": traceback.format_exc(limit=6),
        }
    result["bench_seconds"] = round(time.perf_counter() - t0, 1)
    sys.stderr.write(f"bench: {name} done in {result['bench_seconds']} s\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated subset")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument(
        "--soak-seconds",
        type=float,
        default=None,
        help=f"length of the soak run (default {soak.DEFAULT_SECONDS:g}; --quick: 20)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny workloads (smoke check)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON path")
    parser.add_argument(
        "--bus", default=e2e.DEFAULT_BUS, choices=sorted(BUSES), help="end-to-end transport"
    )
    parser.add_argument(
        "--source",
        default=e2e.DEFAULT_SOURCE,
        choices=list(e2e.SOURCES),
        help="what the end-to-end connection reads (bench.wsfeed paced, or dev up's own feed)",
    )
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    unknown = sorted((set(only) | skip) - set(ALL))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(ALL)}")
    quick: bool = args.quick
    only = [name for name in only if name not in skip]

    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "commit": _git_commit(),
            "python": sys.version.split()[0],
            "machine": pyplatform.machine(),
            "cpus": os.cpu_count(),
            "quick": quick,
            "packages": _versions(),
        }
    }
    if "decode" in only:
        results["decode"] = _guard(
            "decode",
            lambda: decode.run(messages=2_000, rounds=2) if quick else decode.run(),
        )
    if "startup" in only:
        results["startup"] = _guard("startup", lambda: startup.run(runs=3 if quick else 9))
    list_timing: dict[str, Any] = {}

    def time_list(up: DevUp) -> None:
        list_timing.update(startup.time_json_list(up.cli_env, runs=2 if quick else 3))

    if "e2e" in only or "memory" in only:
        hook = time_list if "startup" in only else None
        results["e2e"] = _guard(
            "e2e",
            lambda: (
                e2e.run(
                    first_rate=0,
                    seconds=2.0,
                    warmup=0.5,
                    budget_seconds=30,
                    ceiling_seconds=1.0,
                    while_up=hook,
                    bus=args.bus,
                    source=args.source,
                )
                if quick
                else e2e.run(while_up=hook, bus=args.bus, source=args.source)
            ),
        )
    if "startup" in only and "errors" in results["startup"]:
        if list_timing:
            startup.merge_json_list(results["startup"], list_timing)
        else:
            results["startup"]["errors"]["alpaca_md_json_list"] = "not measured (no platform)"
    if "memory" in only:
        results["memory"] = _guard(
            "memory", lambda: memory.run(results["e2e"], seconds=3.0 if quick else 10.0)
        )
    if "soak" in only:
        soak_seconds = args.soak_seconds or (20.0 if quick else soak.DEFAULT_SECONDS)
        results["soak"] = _guard("soak", lambda: soak.run(seconds=soak_seconds))
    results["meta"]["total_seconds"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(render(results))
    sys.stdout.write(f"\nwrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
