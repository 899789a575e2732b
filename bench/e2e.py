"""End to end: Alpaca server -> WebSocketManager -> sidecar -> ``alpaca-md tail --output json``.

Workload: the connection reads :mod:`bench.wsfeed` paced at R messages/s (the same
pre-encoded mix of trades, quotes, order-book deltas and resets, and bars over 24 symbols that the
ceiling reads, in frames of what ``dev feed`` packs at R), through ``alpaca-md dev up``'s
platform, the pipeline set up with the real CLI (:meth:`bench.platform.DevUp.stream`,
``*`` on trades, quotes and order books), and ``tail --output json`` as the consumer. Its NDJSON
goes to a pipe the benchmark reads and stamps on arrival, instead of /dev/null, because that is
where loss and latency are counted. ``--source dev-feed`` reads ``dev up --rate R``'s own feed
instead; its market simulation costs about 5 us of its core per message, so at high rates it,
not the pipeline, is what the ladder measures.

- **Loss by sequence**: the source numbers trades 1, 2, 3 ... per connection (consecutive trade
  ids, from 2**53 + 1), so the ids between the first and last trade the consumer saw are exactly
  what the server sent in that span; any id missing at the consumer is a lost message (and a
  lost frame, since frames mix kinds). A rate counts as sustained when, over a 10 s window after
  warm-up, no id is missing, the consumer received at least 90% of R, and it was not falling
  behind (p99 latency under 1 s).
- **Latency**: consumer arrival time minus the message's own ``t``. The source stamps a frame
  when it is about to send it (the last timed message at the send time or just before, those
  before it 1 ns apart), on the same machine clock, so this is the whole path's added latency:
  the source's pacing (its 10 ms tick) is not counted in it.
- **Ceiling**: a plain ``websockets`` client reading pre-encoded frames (as many messages per
  frame as ``dev feed`` packs at the best sustained rate) from :mod:`bench.wsfeed`, a server that
  sends them in a tight loop, and ``orjson.loads``-ing each: what one Python process can take
  off one WebSocket when the feed is no limit. The same server read by a client that only counts
  frames gives ``offer_rate``, which must be at least 3x the pipeline's maximum (else the ceiling
  says more about the server than about the client). ``dev feed`` is not the ceiling's server:
  it generates its market as it goes, so a client reading it measured the feed's own speed.
  For the same reason ``dev feed`` is not the ladder's default source.

Rates: 1k first (the latency step), then 10k, 20k, 40k ... (x2) until a rung is not sustained,
then two bisections between the best sustained rung and the failed one to bracket the maximum.
``bus`` picks the transport between the WebSocketManager and ``tail``
(:data:`bench.platform.BUSES`; the Dapr sidecar by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
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
    bus_named,
    cpu_seconds,
    dev_up,
    profiled,
    reap,
)
from bench.platform import PeakRss as PeakRss

__all__ = [
    "DEFAULT_BUS",
    "DEFAULT_SOURCE",
    "SOURCES",
    "TailCapture",
    "analyze",
    "capture_tail",
    "ceiling",
    "frame_messages_at",
    "ladder_rates",
    "run",
    "run_step",
]

DEFAULT_BUS = "dapr"
"""The bus measured unless ``--bus`` says otherwise (:data:`bench.platform.BUSES`)."""
FIRST_RATE = 10_000
"""First rung after the 1k latency step: the target rate, and the second latency figure."""
CLIMB_FACTOR = 2.0
"""Each rung offers this many times the last, until one is not sustained."""
MAX_RATE = 2_000_000
"""A rung no pipeline of this machine reaches; the climb stops there even if all sustained."""
REFINE_STEPS = 2
"""Bisections between the best sustained rung and the failed one, to bracket the maximum."""
DATA_TYPES = frozenset({"t", "q", "o", "b", "d", "u"})
SOURCES = {
    "wsfeed": "bench.wsfeed (pre-encoded bench.frames mix, paced, t stamped at send)",
    "dev-feed": "dev up feed (its synthetic market, generated as it goes)",
}
"""What the ladder's connection can read (see :func:`run_step`), as results.json names it."""
DEFAULT_SOURCE = "wsfeed"


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
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds each process of the pipeline spent in the window (see :func:`cpu_seconds`)."""


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
    tail_args: Sequence[str] = (),
) -> TailCapture:
    """Run ``tail --output json`` until ``warmup + seconds`` after its first line, then stop it.

    Returns every line with its arrival time and the tail process's peak RSS.
    """
    stderr_path = up.workdir / "tail.stderr"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [*profiled("tail", rate), "tail", "--output", "json", *tail_args],
            env=up.cli_env,
            cwd=up.workdir,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    chunks: list[tuple[int, bytes]] = []
    first = threading.Event()
    cpu: dict[str, float] = {}

    def reader() -> None:
        # Whole reads, stamped as they arrive; cut into lines after the capture. A loop per
        # line costs this process more than tail spends writing them, and a reader that falls
        # behind makes tail drop lines, which would count here as losses of the pipeline.
        assert proc.stdout is not None
        now = time.time_ns
        append = chunks.append
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 1 << 20):
            append((now(), chunk))
            if not first.is_set():
                first.set()

    thread = threading.Thread(target=reader, name="bench-tail-reader", daemon=True)
    thread.start()
    peak = PeakRss(proc.pid)
    window = (0, 0)
    try:
        roots = [up.proc.pid, proc.pid, os.getpid()]
        if first.wait(first_timeout):
            time.sleep(warmup)
            start, cpu0 = time.time_ns(), cpu_seconds(roots)
            time.sleep(seconds)
            window = (start, time.time_ns())
            cpu1 = cpu_seconds(roots)
            cpu = {k: round(v - cpu0.get(k, 0.0), 2) for k, v in cpu1.items()}
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
        _lines_of(chunks),
        window,
        rss,
        stderr_path.read_text(errors="replace")[-800:],
        returncode=code,
        cpu=cpu,
    )


def _lines_of(chunks: Sequence[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Lines of stamped reads, each stamped with the read that brought its end."""
    lines: list[tuple[int, bytes]] = []
    rest = b""
    for arrived, chunk in chunks:
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        lines.extend((arrived, line) for line in parts)
    if rest:
        lines.append((chunks[-1][0], rest))
    return lines


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
        # Cores each process kept busy in the window: which one the machine's 2 cores go to.
        "cpu_cores": {
            name: round(secs / seconds, 2)
            for name, secs in sorted(capture.cpu.items(), key=lambda kv: -kv[1])
            if seconds > 0 and secs > 0
        },
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
    bus: str = DEFAULT_BUS,
    source: str = DEFAULT_SOURCE,
) -> dict[str, Any]:
    """One rate: a fresh ``dev up``, the pipeline over ``bus``, a tail capture, its analysis.

    ``source`` (:data:`SOURCES`) is what the connection reads: ``wsfeed`` (the default) is
    :mod:`bench.wsfeed` paced at ``rate``, ``dev-feed`` is ``dev up --rate``'s own feed, whose
    market simulation costs about 5 us of its core per message and so caps the ladder itself.
    ``while_up`` runs after the capture while the platform still streams (the start-up
    benchmark times ``--json list`` there).
    """
    chosen = bus_named(bus)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if source == "wsfeed":
            url = stack.enter_context(_frame_server(frame_messages_at(rate), rate))
            up = stack.enter_context(dev_up())
            up.env["ALPACA_STREAM_URL"] = url
        else:
            up = stack.enter_context(dev_up(rate=rate))
        up.stream_on(chosen, channels)
        capture = capture_tail(
            up, seconds=seconds, warmup=warmup, rate=rate, tail_args=chosen.tail_args
        )
        result = analyze(capture, rate)
        result["setup_seconds"] = {k: round(v, 2) for k, v in up.timings.items()}
        if not capture.lines:
            result["tail_stderr"] = capture.stderr
        if while_up is not None:
            while_up(up)
    result["step_seconds"] = round(time.perf_counter() - t0, 1)
    return result


async def _plain_client(url: str, seconds: float, *, parse: bool = True) -> dict[str, Any]:
    """Read ``url`` for ``seconds`` (after a 0.5 s warm-up) as a plain ``websockets`` client.

    ``parse``: ``orjson.loads`` each frame and count its data messages, the least any consumer
    does; otherwise count frames only (what the server offers, not what a consumer handles).
    """
    import websockets

    loads = orjson.loads
    async with websockets.connect(url, max_size=None, compression=None, close_timeout=1) as ws:
        await ws.recv()  # welcome
        await ws.send(orjson.dumps({"action": "auth", "key": "bench", "secret": "bench"}).decode())
        await ws.recv()
        sub = {"action": "subscribe", **{c: ["*"] for c in CHANNELS}}
        await ws.send(orjson.dumps(sub).decode())
        await ws.recv()  # the subscription
        counts = {"messages": 0, "frames": 0}

        async def count() -> None:
            while True:
                frame = await ws.recv(decode=False)
                counts["frames"] += 1
                if parse:
                    counts["messages"] += sum(1 for m in loads(frame) if m.get("T") in DATA_TYPES)

        task = asyncio.create_task(count())
        await asyncio.sleep(0.5)
        m0, f0, t0 = counts["messages"], counts["frames"], time.perf_counter()
        await asyncio.sleep(seconds)
        m, f = counts["messages"] - m0, counts["frames"] - f0
        elapsed = time.perf_counter() - t0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return {"messages": m, "frames": f, "seconds": round(elapsed, 2)}


@contextlib.contextmanager
def _frame_server(frame_messages: int, rate: float | None = None) -> Iterator[str]:
    """``python -m bench.wsfeed`` in a subprocess (paced at ``rate``); yields its URL."""
    paced = [f"--rate={rate}"] if rate is not None else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.wsfeed", f"--frame-messages={frame_messages}", *paced],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        if not url.startswith("ws"):
            raise CliError(f"bench.wsfeed printed {url!r} instead of its URL")
        yield url
    finally:
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        reap(proc, timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


MAX_FRAME_MESSAGES = 500
"""``dev feed``'s default ``max_frame_messages``: the biggest frame the pipeline carries."""
FEED_TICK = 0.01
"""``dev feed``'s default tick: at rate R a frame holds about R * tick messages."""


def frame_messages_at(rate: float | None) -> int:
    """How many messages ``dev feed`` packs into one frame at ``rate`` (its tick, its cap)."""
    return max(1, min(MAX_FRAME_MESSAGES, round((rate or 0) * FEED_TICK)))


CEILING_WINDOWS = 3
"""Read windows of the ceiling; it reports the best. One window read anywhere from 583k to 958k
msg/s across runs on the same kind of machine: as the denominator of the headline ratio, the
ceiling takes the least disturbed of several, as the decode benchmark takes its best round."""


def ceiling(
    *,
    seconds: float = 2.0,
    frame_messages: int = MAX_FRAME_MESSAGES,
    windows: int = CEILING_WINDOWS,
) -> dict[str, Any]:
    """The most a plain ``websockets`` client handles, in data messages/s, when the feed is free.

    The server (:mod:`bench.wsfeed`) sends pre-encoded frames of ``frame_messages`` messages in a
    tight loop, so the reader is the limit: ``rate`` is what one Python process receiving one
    WebSocket and parsing each frame with ``orjson`` reaches, the best of ``windows`` reads
    (each a new connection; all are in ``read_windows``). ``offer_rate`` is the same server
    read by a client that only counts frames, which shows how far the server is from being the
    limit (it should offer at least 3x what the pipeline sustains).
    """
    with _frame_server(frame_messages) as url:
        reads = [asyncio.run(_plain_client(url, seconds)) for _ in range(max(1, windows))]
        offer = asyncio.run(_plain_client(url, seconds, parse=False))
    rates = [r["messages"] / max(1e-9, r["seconds"]) for r in reads]
    rate = max(rates)
    got = reads[rates.index(rate)]
    offer_rate = offer["frames"] * frame_messages / max(1e-9, offer["seconds"])
    return {
        "rate": round(rate),
        "offer_rate": round(offer_rate),
        "frame_messages": frame_messages,
        "server": "bench.wsfeed: pre-encoded frames in a tight loop (JSON, bench.frames mix)",
        "client": "websockets + orjson.loads of every frame, data messages counted",
        "read": got,
        "read_windows": [round(r) for r in rates],
        "offer_read": offer,
    }


def latency_only(rate: int = 1_000, seconds: float = 10.0) -> dict[str, Any]:
    """The p50/p99 step on its own (used when the rate ladder is skipped)."""
    return run_step(rate, seconds=seconds)


def ladder_rates(first: int, factor: float, max_rate: int) -> list[int]:
    """The upward rungs: ``first``, then ``factor`` times the last, up to ``max_rate``."""
    rates: list[int] = []
    rate = float(first)
    while first > 0 and rate <= max_rate:
        rates.append(round(rate))
        rate *= factor
    return rates


def run(
    *,
    first_rate: int = FIRST_RATE,
    climb_factor: float = CLIMB_FACTOR,
    max_rate: int = MAX_RATE,
    refine_steps: int = REFINE_STEPS,
    seconds: float = 10.0,
    warmup: float = 2.0,
    latency_rate: int = 1_000,
    budget_seconds: float = 300.0,
    ceiling_seconds: float = 3.0,
    ceiling_frame_messages: int | None = None,
    while_up: Callable[[DevUp], None] | None = None,
    channels: Sequence[str] = CHANNELS,
    bus: str = DEFAULT_BUS,
    source: str = DEFAULT_SOURCE,
) -> dict[str, Any]:
    """The rate ladder over ``bus`` reading ``source`` (:func:`run_step`), then the ceiling.

    ``latency_rate`` runs first (its step gives p50/p99 and hosts ``while_up``); then rungs from
    ``first_rate`` up by ``climb_factor`` until one is not sustained (a trade id lost, under 90%
    of the offered rate received, or p99 at or above 1 s) or ``max_rate``; then ``refine_steps``
    bisections between the best sustained rung and the failed one. Steps stop when the time
    budget is used up (each costs a platform start, the CLI pipeline and the window). The
    ceiling's frames hold what ``dev feed`` packs into one frame at the best sustained rate
    (``ceiling_frame_messages`` overrides), so both read frames of the same size.
    """
    chosen = bus_named(bus)
    t0 = time.perf_counter()
    steps: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    best: int | None = None
    stopped: str | None = None

    def step(rate: int, hook: Callable[[DevUp], None] | None = None) -> bool | None:
        nonlocal best, stopped
        if time.perf_counter() - t0 > budget_seconds:
            errors[f"rate_{rate}"] = "skipped: benchmark time budget used up"
            stopped = stopped or "time budget used up"
            return None
        result: dict[str, Any] | None = None
        for attempt in range(2):  # a set-up step can time out on a loaded machine: once more
            try:
                result = run_step(
                    rate,
                    seconds=seconds,
                    warmup=warmup,
                    while_up=hook,
                    channels=channels,
                    bus=bus,
                    source=source,
                )
                break
            except (CliError, subprocess.TimeoutExpired, OSError) as exc:
                errors[f"rate_{rate}" + ("_retry" if attempt else "")] = str(exc)
        if result is None:
            if best is None:
                stopped = stopped or f"step {rate} could not be set up"
                return None
            # Above a sustained rung, a pipeline that cannot even be set up (the CLI's steps
            # time out against the loaded platform) does not sustain this rate.
            result = {"offered_rate": rate, "sustained": False, "setup_failed": True}
        steps[str(rate)] = result
        if result["sustained"] and (best is None or rate > best):
            best = rate
        if not result["sustained"] and stopped is None:
            stopped = f"{rate}/s not sustained: " + _why_not(result)
        return bool(result["sustained"])

    ok = step(latency_rate, while_up)
    failed: int | None = None if ok else latency_rate
    rungs = [r for r in ladder_rates(first_rate, climb_factor, max_rate) if r > latency_rate]
    if ok:
        for rate in rungs:
            ok = step(rate)
            if ok is None:
                break
            if not ok:
                failed = rate
                break
        else:
            stopped = stopped or (f"reached max_rate {max_rate}/s" if rungs else "no rungs")
    if failed is not None and best is not None:
        low, high = best, failed
        for _ in range(refine_steps):
            mid = int(round((low + high) / 2, -3)) or (low + high) // 2
            if not low < mid < high:
                break
            ok = step(mid)
            if ok is None:
                break
            low, high = (mid, high) if ok else (low, mid)
    frames = ceiling_frame_messages or frame_messages_at(best)
    try:
        ceil: dict[str, Any] | None = ceiling(seconds=ceiling_seconds, frame_messages=frames)
    except Exception as exc:  # CliError, OSError, websockets' own: report, do not abort
        ceil, errors["ceiling"] = None, f"{type(exc).__name__}: {exc}"
    lat1k = steps.get(str(latency_rate), {}).get("latency_ms", {})
    lat10k = steps.get("10000", {}).get("latency_ms", {})
    ceil_rate = ceil["rate"] if ceil else None
    failed_at_or_below_10k = any(
        not step["sustained"] for r, step in steps.items() if int(r) <= 10_000
    )
    zero_loss_10k = (
        True if best is not None and best >= 10_000 else False if failed_at_or_below_10k else None
    )
    offer = ceil["offer_rate"] if ceil else None
    return {
        "workload": {
            "bus": chosen.name,
            "source": source,
            "pipeline": f"{SOURCES[source]} -> {chosen.path}",
            "subscription": {c: ["*"] for c in channels},
            "rates_tried": [int(r) for r in steps],
            "ladder": f"{latency_rate}/s, then {first_rate}/s up x{climb_factor} until not "
            f"sustained, then {refine_steps} bisections",
            "stopped_because": stopped,
            "window_seconds": seconds,
            "warmup_seconds": warmup,
            "sustained_means": "no trade id missing, >= 90% of the offered rate received, "
            "p99 latency < 1 s",
            "latency": "consumer arrival minus the message's own t (the source stamps a frame "
            "when it sends it: the last timed message at the send time or just before, earlier "
            "ones 1 ns apart)",
        },
        "steps": steps,
        "max_sustained_rate": best,
        "latency_ms_at_1k": {"p50": lat1k.get("p50"), "p99": lat1k.get("p99")},
        "latency_ms_at_10k": {"p50": lat10k.get("p50"), "p99": lat10k.get("p99")},
        "ceiling": ceil,
        "ratios": {
            "max_sustained_vs_ceiling": round(best / ceil_rate, 3) if best and ceil_rate else None,
            "ceiling_offer_vs_max_sustained": round(offer / best, 1) if best and offer else None,
        },
        "targets": {
            "zero_loss_at_10k": zero_loss_10k,
            "sustained_at_least_50pct_of_ceiling": None
            if not ceil_rate
            else bool(best and best >= 0.5 * ceil_rate),
            "ceiling_server_offers_3x_max_sustained": None
            if not (best and offer)
            else offer >= 3 * best,
            "p99_under_10ms_at_1k": None if lat1k.get("p99") is None else lat1k["p99"] < 10.0,
            "p99_under_20ms_at_10k": None if lat10k.get("p99") is None else lat10k["p99"] < 20.0,
        },
        "errors": errors,
    }


def _why_not(result: dict[str, Any]) -> str:
    """Which of the sustained conditions a step missed, for ``stopped_because``."""
    reasons = []
    if result.get("setup_failed"):
        return "the pipeline could not be set up under that load (twice)"
    if result.get("lost"):
        reasons.append(f"{result['lost']} trades lost")
    if not result.get("trades_seen"):
        reasons.append("no trades seen")
    if result.get("received_rate", 0) < 0.9 * result.get("offered_rate", 0):
        reasons.append(f"received {result.get('received_rate')}/s")
    p99 = (result.get("latency_ms") or {}).get("p99")
    if p99 is None or p99 >= 1000.0:
        reasons.append(f"p99 {p99} ms")
    return ", ".join(reasons) or "unknown"
