"""Soak: one long ``alpaca-md run`` on the platform's default record TTL (issue 12).

Why: the WebSocketManager forgets a connection record 300 s after its last successful send
(``CONNECTION_RECORD_TTL_SECONDS``), and an Alpaca stream only receives. A run longer than that
survives only through its keepalive (``--keepalive``, default 60 s: the confirmed subscription
resent). Ten minutes is two TTLs: a run that lost its record shows it at the end, when its
``list`` step reports the connection ``GONE``.

Set-up: the embedded platform exactly as ``run --embedded`` starts it (the same ``dev up``
child command line, :func:`alpaca_cli.live.embedded.dev_up_command`) with
``--connection-record-ttl 300``, the platform's default; ``alpaca-md run`` against it with the
default keepalive, subscribed to trades; ``alpaca-md tail --output json`` beside it on the same
topic. The platform is started here rather than by ``run --embedded`` because the trade ids
are counted on the topic, and only a consumer outside ``run`` can read it: the feed's trade
ids count up by one per connection from
:data:`~alpaca_cli.devstack.feed.market.TRADE_ID_BASE` + 1, so a missing id is a lost trade
(a new socket starts again at the base).

Passes when the run exits 0, its connection is still listed (``CONNECTED``) at the end, it
needed no re-handshake and no new connection, and no trade id is missing.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.platform import CONTROLLER_URL, alpaca_md, dev_up

__all__ = ["DEFAULT_SECONDS", "RECORD_TTL", "lost_trade_ids", "run"]

DEFAULT_SECONDS = 600.0
"""Ten minutes: two record TTLs."""
RECORD_TTL = 300.0
"""The platform's default ``CONNECTION_RECORD_TTL_SECONDS``."""


def lost_trade_ids(ids: Iterable[int]) -> tuple[int, int]:
    """``(lost, sockets)``: trade ids missing in each per-connection run of ids, and how many
    such runs (sockets) there were.

    A run of ids starts at the first id seen and ends where an id falls to or below the run's
    lowest (a new socket starts again at the feed's ``TRADE_ID_BASE`` + 1); within it every
    id from the lowest to the highest should be there.
    """
    lost = sockets = 0
    low: int | None = None
    high: int | None = None
    seen: set[int] = set()
    for trade_id in ids:
        if low is not None and high is not None and trade_id <= low and seen:
            lost += high - low + 1 - len(seen)
            low = high = None
            seen = set()
        if low is None or high is None:
            sockets += 1
            low = high = trade_id
        low, high = min(low, trade_id), max(high, trade_id)
        seen.add(trade_id)
    if low is not None and high is not None:
        lost += high - low + 1 - len(seen)
    return lost, sockets


def _trade_ids(line: bytes) -> list[int]:
    """The trade ids in one NDJSON line of ``tail --output json`` (a message or a frame)."""
    try:
        doc: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        return []
    found: list[int] = []
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            if item.get("T") == "t" and isinstance(item.get("i"), int):
                found.append(item["i"])
                continue
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
    return found


def run(
    *,
    seconds: float = DEFAULT_SECONDS,
    rate: float = 200.0,
    record_ttl: float = RECORD_TTL,
    run_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Soak for ``seconds``; returns the results.json section (``errors`` when it failed).

    ``record_ttl`` and ``run_args`` (extra ``run`` options, e.g. ``--keepalive 1``) let the
    bench's own test play the same soak in seconds.
    """
    with dev_up(rate=rate, extra=["--connection-record-ttl", f"{record_ttl:g}"]) as up:
        report_path = up.workdir / "soak-report.json"
        run_log = (up.workdir / "run.stderr").open("w+b")
        run_proc = subprocess.Popen(
            [
                *(alpaca_md(), "run", "--url", CONTROLLER_URL, "--channel", "trades"),
                *("--duration", f"{seconds:g}", "--report", str(report_path)),
                *run_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=run_log,
            env=up.cli_env,
            cwd=up.workdir,
        )
        ids: list[int] = []
        tail: subprocess.Popen[bytes] | None = None
        reader: threading.Thread | None = None
        try:
            if _wait_for(run_log, "✓ publish", run_proc, timeout=120):
                tail = subprocess.Popen(
                    [alpaca_md(), "tail", "--output", "json", "--type", "trade"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=up.cli_env,
                    cwd=up.workdir,
                )
                reader = threading.Thread(target=_read, args=(tail, ids), daemon=True)
                reader.start()
            code = run_proc.wait(timeout=seconds + 120)
        finally:
            if run_proc.poll() is None:
                run_proc.kill()
                run_proc.wait()
            if tail is not None:
                with contextlib.suppress(ProcessLookupError):
                    tail.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    tail.wait(timeout=10)
                if tail.poll() is None:
                    tail.kill()
                    tail.wait()
            if reader is not None:
                reader.join(timeout=10)
            if tail is not None and tail.stdout is not None:
                tail.stdout.close()
            run_log.seek(0)
            stderr = run_log.read().decode("utf-8", "replace")
            run_log.close()
        return _result(seconds, record_ttl, code, stderr, report_path, ids)


def _wait_for(log: Any, prefix: str, proc: subprocess.Popen[bytes], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    path = Path(log.name)
    while time.monotonic() < deadline:
        if any(line.startswith(prefix) for line in path.read_text(errors="replace").splitlines()):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def _read(proc: subprocess.Popen[bytes], ids: list[int]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        ids.extend(_trade_ids(line))


def _result(
    seconds: float, record_ttl: float, code: int, stderr: str, report_path: Path, ids: list[int]
) -> dict[str, Any]:
    listed = next((ln for ln in stderr.splitlines() if ln.startswith("✓ list")), "")
    connection_listed = " CONNECTED (" in listed
    try:
        report: dict[str, Any] = json.loads(report_path.read_text())
    except (OSError, ValueError):
        report = {}
    lost, sockets = lost_trade_ids(ids)
    result: dict[str, Any] = {
        "seconds": seconds,
        "record_ttl": record_ttl,
        "exit_code": code,
        "connection_listed_at_end": connection_listed,
        "list_line": listed,
        "trades_seen": len(ids),
        "trade_ids_lost": lost,
        "sockets_seen": sockets,
        "reconnects": report.get("reconnects"),
        "connections_opened": report.get("connections_opened"),
        "run_errors": report.get("errors"),
        "data_messages": report.get("data_messages"),
        "exit_reason": report.get("exit_reason"),
    }
    result["targets"] = {
        "run_exits_0": code == 0,
        "connection_listed_at_end": connection_listed,
        "no_reconnect_and_no_new_connection": report.get("reconnects") == 0
        and report.get("connections_opened") == 0,
        "zero_trade_ids_lost": bool(ids) and lost == 0,
    }
    errors = {name: "missed" for name, ok in result["targets"].items() if not ok}
    if errors:
        result["errors"] = errors
        result["run_stderr"] = "\n".join(stderr.splitlines()[-20:])
    return result
