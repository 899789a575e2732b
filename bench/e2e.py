"""End to end: Alpaca server -> WebSocketManager -> sidecar -> ``alpaca-md tail --output json``.

Workload: ``alpaca-md dev up --rate R`` (its synthetic market, ``*`` on trades, quotes and order
books, so R data messages/s spread over every symbol), the pipeline set up with the real CLI
(:meth:`bench.platform.DevUp.stream`), and ``tail --output json`` as the consumer. Its NDJSON goes
to a pipe the benchmark reads and stamps on arrival, instead of /dev/null, because that is
where loss and latency are counted:

- **Loss by sequence**: the feed numbers trades 1, 2, 3 ... per connection (consecutive trade
  ids), so the ids between the first and last trade the consumer saw are exactly what the server
  sent in that span; any id missing at the consumer is a lost message (and a lost frame, since
  frames mix kinds). A rate counts as sustained when, over a 10 s window after warm-up, no id
  is missing, the consumer received at least 90% of R, and it was not falling behind (p99
  latency under 1 s).
- **Latency**: consumer arrival time minus the message's own ``t``. The feed stamps a batch
  when it is about to send it (the last message at the send time, those before it 1 ns apart),
  on the same machine clock, so this is the whole path's added latency: the feed's pacing
  (its 10 ms tick) is not counted in it.
- **Ceiling**: a plain ``websockets`` client reading the same Alpaca server (``dev feed``) at
  rising offered rates, counting messages; the best rate it received is what the server and one
  WebSocket can push at all on this machine.

Rates: 1k first (the latency step), then 10k, 20k, 40k up to the first not sustained, then
30k, 15k, 5k, 2k down (only between the best sustained rate and a failure) to bracket the
real maximum.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.platform import (
    CHANNELS,
    CliError,
    DevUp,
    PeakRss,
    alpaca_md,
    dev_up,
    profiled,
    reap,
)

__all__ = [
    "DEFAULT_RATES",
    "FALLBACK_RATES",
    "TailCapture",
    "analyze",
    "capture_tail",
    "ceiling",
    "run",
    "run_step",
]

DEFAULT_RATES: tuple[int, ...] = (10_000, 20_000, 40_000)
"""Upward steps after the 1k latency step; 10k is the target rate."""
FALLBACK_RATES: tuple[int, ...] = (30_000, 15_000, 5_000, 2_000)
"""Tried downwards when an upward step is not sustained, to find the real maximum."""
DATA_TYPES = frozenset({"t", "q", "o", "b", "d", "u"})


@dataclass
class TailCapture:
    """What ``tail --output json`` wrote, each line stamped (ns, wall clock) on arrival."""

    lines: list[tuple[int, bytes]]
    window: tuple[int, int]
    """Arrival-time bounds (ns) of the measured window, after warm-up."""
    peak_rss_kb: int | None
    """Peak RSS (``VmHWM``) of the tail process just before it was stopped, KiB."""
    stderr: str = ""
    returncode: int | None = None
    samples: dict[str, Any] = field(default_factory=dict)


def _message_of(obj: Any) -> dict[str, Any] | None:
    """The Alpaca message inside one NDJSON line, wherever tail puts the frame metadata."""
    if not isinstance(obj, dict):
        return None
    if "T" in obj:
        return obj
    for key in ("message", "msg", "data", "payload"):
        inner = obj.get(key)
        if isinstance(inner, dict) and "T" in inner:
            return inner
    return None


def _ns(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        from alpaca_cli.alpaca.timestamps import parse_rfc3339

        with contextlib.suppress(ValueError):
            return parse_rfc3339(value)
    return None


def capture_tail(
    up: DevUp,
    *,
    seconds: float,
    warmup: float = 2.0,
    first_timeout: float = 20.0,
    rate: float | None = None,
) -> TailCapture:
    """Run ``tail --output json`` until ``warmup + seconds`` after its first line, then stop it.

    Returns every line with its arrival time and the tail process's peak RSS.
    """
    stderr_path = up.workdir / "tail.stderr"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [*profiled("tail", rate), "tail", "--output", "json"],
            env=up.cli_env,
            cwd=up.workdir,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    lines: list[tuple[int, bytes]] = []
    first = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        now = time.time_ns
        append = lines.append
        for line in proc.stdout:
            append((now(), line))
            if not first.is_set():
                first.set()

    thread = threading.Thread(target=reader, name="bench-tail-reader", daemon=True)
    thread.start()
    peak = PeakRss(proc.pid)
    window = (0, 0)
    try:
        if first.wait(first_timeout):
            time.sleep(warmup)
            start = time.time_ns()
            time.sleep(seconds)
            window = (start, time.time_ns())
    finally:
        peak.sample()
        rss = peak.stop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        code = reap(proc, timeout=10)
        thread.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    return TailCapture(
        lines, window, rss, stderr_path.read_text(errors="replace")[-800:], returncode=code
    )


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def analyze(capture: TailCapture, offered_rate: float) -> dict[str, Any]:
    """Loss by trade-id sequence, received rate and latency over the capture's window."""
    start, end = capture.window
    ids: list[int] = []
    latencies_ms: list[float] = []
    data = 0
    control = 0
    unparsed = 0
    # Where the time goes, when tail's NDJSON carries the stamps: feed -> WSM (the frame's
    # ``timestamp``), WSM -> tail (tail's ``received_at``), tail -> its stdout (our arrival).
    legs: dict[str, list[float]] = {"feed_to_wsm": [], "wsm_to_tail": [], "tail_to_pipe": []}
    for arrived, line in capture.lines:
        if not start <= arrived <= end:
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        msg = _message_of(obj)
        if msg is None:
            unparsed += 1
            continue
        kind = msg.get("T")
        if kind not in DATA_TYPES:
            control += 1
            continue
        data += 1
        if kind == "t" and isinstance(msg.get("i"), int):
            ids.append(msg["i"])
        t = _ns(msg.get("t"))
        if t is not None and kind in ("t", "q", "o"):
            latencies_ms.append((arrived - t) / 1e6)
            frame = obj.get("frame") if isinstance(obj, dict) else None
            wsm = _ns(frame.get("timestamp")) if isinstance(frame, dict) else None
            got = _ns(obj.get("received_at")) if isinstance(obj, dict) else None
            if wsm is not None and got is not None:
                legs["feed_to_wsm"].append((wsm - t) / 1e6)
                legs["wsm_to_tail"].append((got - wsm) / 1e6)
                legs["tail_to_pipe"].append((arrived - got) / 1e6)
    seconds = max(1e-9, (end - start) / 1e9)
    distinct = len(set(ids))
    expected = (max(ids) - min(ids) + 1) if ids else 0
    lost = expected - distinct
    received_rate = data / seconds
    p99 = _pct(latencies_ms, 0.99)
    sustained = (
        bool(ids)
        and lost == 0
        and received_rate >= 0.9 * offered_rate
        and p99 is not None
        and p99 < 1000.0
    )
    return {
        "offered_rate": offered_rate,
        "window_seconds": round(seconds, 2),
        "received_data_messages": data,
        "received_rate": round(received_rate, 1),
        "control_messages": control,
        "unparsed_lines": unparsed,
        "trades_seen": len(ids),
        "trades_sent_in_span": expected,
        "trades_duplicated": len(ids) - distinct,
        "lost": lost,
        "latency_ms": {
            "p50": _round(_pct(latencies_ms, 0.50)),
            "p99": _round(p99),
            "max": _round(max(latencies_ms) if latencies_ms else None),
            "mean": _round(statistics.fmean(latencies_ms) if latencies_ms else None),
        },
        "latency_legs_ms": {
            leg: {"p50": _round(_pct(v, 0.5)), "p99": _round(_pct(v, 0.99))}
            for leg, v in legs.items()
            if v
        },
        "tail_peak_rss_mb": None
        if capture.peak_rss_kb is None
        else round(capture.peak_rss_kb / 1024, 1),
        "sustained": sustained,
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def run_step(
    rate: int,
    *,
    seconds: float = 10.0,
    warmup: float = 2.0,
    while_up: Callable[[DevUp], None] | None = None,
    channels: Sequence[str] = CHANNELS,
) -> dict[str, Any]:
    """One rate: a fresh ``dev up --rate``, the pipeline, a tail capture, its analysis.

    ``while_up`` runs after the capture while the platform still streams (the start-up
    benchmark times ``--json list`` there).
    """
    t0 = time.perf_counter()
    with dev_up(rate=rate) as up:
        up.stream(channels)
        capture = capture_tail(up, seconds=seconds, warmup=warmup, rate=rate)
        result = analyze(capture, rate)
        result["setup_seconds"] = {k: round(v, 2) for k, v in up.timings.items()}
        if not capture.lines:
            result["tail_stderr"] = capture.stderr
        if while_up is not None:
            while_up(up)
    result["step_seconds"] = round(time.perf_counter() - t0, 1)
    return result


async def _plain_client(url: str, key: str, secret: str, seconds: float) -> dict[str, Any]:
    import websockets

    loads = orjson.loads
    async with websockets.connect(url, max_size=None, compression=None, close_timeout=1) as ws:
        await ws.recv()  # welcome
        await ws.send(orjson.dumps({"action": "auth", "key": key, "secret": secret}).decode())
        await ws.recv()
        sub = {"action": "subscribe", **{c: ["*"] for c in CHANNELS}}
        await ws.send(orjson.dumps(sub).decode())
        counts = {"n": 0}
        ids: list[int] = []

        async def count() -> None:
            while True:
                for m in loads(await ws.recv()):
                    if m.get("T") in DATA_TYPES:
                        counts["n"] += 1
                        if m["T"] == "t":
                            ids.append(m["i"])

        task = asyncio.create_task(count())
        await asyncio.sleep(1.0)  # the subscription ack and the snapshot burst
        n0, t0 = counts["n"], time.perf_counter()
        ids.clear()
        await asyncio.sleep(seconds)
        n, elapsed = counts["n"] - n0, time.perf_counter() - t0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    lost = (max(ids) - min(ids) + 1 - len(set(ids))) if ids else None
    return {"messages": n, "seconds": round(elapsed, 2), "rate": round(n / elapsed), "lost": lost}


CEILING_RATES: tuple[int, ...] = (25_000, 50_000, 100_000, 200_000)
"""Offered rates for the plain client, upwards until the server stops keeping up."""


@contextlib.contextmanager
def _dev_feed(rate: int) -> Iterator[str]:
    """``alpaca-md dev feed --port 0 --rate R`` in a subprocess; yields the URL it prints."""
    proc = subprocess.Popen(
        [alpaca_md(), "dev", "feed", "--port", "0", "--rate", str(rate)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        if not url.startswith("ws"):
            raise CliError(f"alpaca-md dev feed printed {url!r} instead of its URL")
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        reap(proc, timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def ceiling(*, seconds: float = 2.0, rates: Sequence[int] = CEILING_RATES) -> dict[str, Any]:
    """The most a plain ``websockets`` client reads from the Alpaca server, in messages/s.

    The server paces itself to ``--rate``, so the client reads it at increasing offered rates
    and the ceiling is the best received rate; it stops once the server delivers under 80% of
    what was asked (saturated). Same server code as ``dev up`` runs, in its own process.
    """
    tries: dict[str, dict[str, Any]] = {}
    for rate in rates:
        with _dev_feed(rate) as url:
            got = asyncio.run(_plain_client(url, "bench-key", "bench-secret", seconds))
        tries[str(rate)] = got
        if got["rate"] < 0.8 * rate:
            break
    best = max(tries.values(), key=lambda r: int(r["rate"]))
    return {"rate": best["rate"], "lost": best["lost"], "tries": tries}


def latency_only(rate: int = 1_000, seconds: float = 10.0) -> dict[str, Any]:
    """The p50/p99 step on its own (used when the rate ladder is skipped)."""
    return run_step(rate, seconds=seconds)


def run(
    rates: Sequence[int] = DEFAULT_RATES,
    *,
    fallback_rates: Sequence[int] = FALLBACK_RATES,
    seconds: float = 10.0,
    warmup: float = 2.0,
    latency_rate: int = 1_000,
    budget_seconds: float = 170.0,
    ceiling_seconds: float = 2.0,
    ceiling_rates: Sequence[int] = CEILING_RATES,
    while_up: Callable[[DevUp], None] | None = None,
    channels: Sequence[str] = CHANNELS,
) -> dict[str, Any]:
    """The rate ladder, then the ceiling.

    ``latency_rate`` runs first (its step gives p50/p99 and hosts ``while_up``); then ``rates``
    upwards until one is not sustained; if that happens, ``fallback_rates`` between the best
    sustained rate and the failed one, downwards, until one is. Steps stop when the time
    budget is used up (each costs a platform start, the CLI pipeline and the window).
    """
    t0 = time.perf_counter()
    steps: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    best: int | None = None

    def step(rate: int, hook: Callable[[DevUp], None] | None = None) -> bool | None:
        nonlocal best
        if time.perf_counter() - t0 > budget_seconds:
            errors[f"rate_{rate}"] = "skipped: benchmark time budget used up"
            return None
        try:
            result = run_step(
                rate, seconds=seconds, warmup=warmup, while_up=hook, channels=channels
            )
        except (CliError, subprocess.TimeoutExpired, OSError) as exc:
            errors[f"rate_{rate}"] = str(exc)
            return None
        steps[str(rate)] = result
        if result["sustained"] and (best is None or rate > best):
            best = rate
        return bool(result["sustained"])

    ok = step(latency_rate, while_up)
    failed: int | None = None if ok else latency_rate
    if ok:
        for rate in sorted(r for r in rates if r > latency_rate):
            ok = step(rate)
            if ok is None:
                break
            if not ok:
                failed = rate
                break
    if failed is not None:
        floor = best or 0
        for rate in sorted((r for r in fallback_rates if floor < r < failed), reverse=True):
            if step(rate):
                break
    try:
        ceil: dict[str, Any] | None = ceiling(seconds=ceiling_seconds, rates=ceiling_rates)
    except Exception as exc:  # CliError, OSError, websockets' own: report, do not abort
        ceil, errors["ceiling"] = None, f"{type(exc).__name__}: {exc}"
    lat = steps.get(str(latency_rate), {}).get("latency_ms", {})
    ceil_rate = ceil["rate"] if ceil else None
    failed_at_or_below_10k = any(
        not step["sustained"] for r, step in steps.items() if int(r) <= 10_000
    )
    zero_loss_10k = (
        True if best is not None and best >= 10_000 else False if failed_at_or_below_10k else None
    )
    return {
        "workload": {
            "pipeline": "dev up feed -> WSM -> sidecar -> alpaca-md tail --output json (pipe)",
            "subscription": {c: ["*"] for c in channels},
            "rates_tried": [int(r) for r in steps],
            "window_seconds": seconds,
            "warmup_seconds": warmup,
            "sustained_means": "no trade id missing, >= 90% of the offered rate received, "
            "p99 latency < 1 s",
            "latency": "consumer arrival minus the message's own t (the feed stamps a batch when "
            "it sends it: last message = send time, earlier ones 1 ns apart)",
        },
        "steps": steps,
        "max_sustained_rate": best,
        "latency_ms_at_1k": {"p50": lat.get("p50"), "p99": lat.get("p99")},
        "ceiling": ceil,
        "ratios": {
            "max_sustained_vs_ceiling": round(best / ceil_rate, 3) if best and ceil_rate else None
        },
        "targets": {
            "zero_loss_at_10k": zero_loss_10k,
            "sustained_at_least_25pct_of_ceiling": None
            if not ceil_rate
            else bool(best and best >= 0.25 * ceil_rate),
            "p99_under_20ms_at_1k": None if lat.get("p99") is None else lat["p99"] < 20.0,
        },
        "errors": errors,
    }
