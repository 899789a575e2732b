"""The live table, the plain summary lines and the step lines."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from alpaca_cli.alpaca.messages import Level, OrderBookUpdate, Trade
from alpaca_cli.errors import CommandRefused
from alpaca_cli.live.plain import PlainSummary
from alpaca_cli.live.stats import RunInfo, StreamStats
from alpaca_cli.live.steps import StepRunner
from alpaca_cli.live.table import COLUMNS, LiveTable, render

NS = 1_700_000_000_000_000_000


def sample() -> tuple[StreamStats, RunInfo]:
    stats = StreamStats(start=0.0)
    stats.expect(["BTC/USD", "ETH/USD"])
    stats.record(
        [
            OrderBookUpdate(
                "BTC/USD", NS, bids=[Level(87000.5, 1.0)], asks=[Level(87001.0, 2.0)], reset=True
            ),
            Trade("BTC/USD", 87000.75, 0.25, NS, 7, "S"),
        ],
        now=1.0,
        received_ns=NS + 3_000_000,
    )
    info = RunInfo(
        gateway="http://127.0.0.1:5001",
        worker_id="w-1234",
        worker_status="RUNNING",
        connection_id="c-5678",
        connection_status="CONNECTED",
        topic="alpaca-ticks",
        phase="streaming",
    )
    return stats, info


def test_the_table_shows_header_and_one_row_per_symbol() -> None:
    stats, info = sample()
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(render(stats, info, 2.0))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for expected in (
        "http://127.0.0.1:5001",
        "w-1234 (RUNNING)",
        "c-5678 (CONNECTED)",
        "alpaca-ticks",
    ):
        assert expected in text
    for column in COLUMNS:
        assert column in text
    btc = next(line for line in text.splitlines() if line.startswith("BTC/USD"))
    assert "87,000.50" in btc and "87,001.00" in btc and "1/1" in btc and "sell" in btc
    assert "3ms" in btc
    assert any(line.startswith("ETH/USD") for line in text.splitlines())


def test_live_table_redraws_at_a_steady_rate_not_per_call() -> None:
    stats, info = sample()
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=True, color_system=None)
    with LiveTable(stats, info, console) as view:
        view.tick(1.0)
        first = len(out.getvalue())
        view.tick(1.1)  # within 1/4 s: no redraw
        assert len(out.getvalue()) == first
        view.tick(1.3)
        assert len(out.getvalue()) > first


def test_plain_summary_writes_one_line_per_interval() -> None:
    stats, info = sample()
    out = io.StringIO()
    summary = PlainSummary(stats, info, out, interval=5.0)
    summary.tick(1.0)
    assert out.getvalue() == ""
    summary.tick(5.0)
    summary.tick(6.0)
    summary.tick(6.0, force=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "streaming: 2 messages" in lines[0]
    assert "BTC/USD=2 ETH/USD=0" in lines[0]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


def test_steps_print_start_success_failure_and_keep_timings() -> None:
    out = io.StringIO()
    steps = StepRunner(out, Clock(), redact=lambda s: s.replace("s3cret", "***"))
    with steps.step("deploy", "deploying") as step:
        step.detail = "worker w-1"
    with pytest.raises(CommandRefused), steps.step("connect", "connecting"):
        raise CommandRefused("refused s3cret", hint="Do this.")
    steps.skip("build", "--no-build")
    assert out.getvalue().splitlines() == [
        "… deploy: deploying",
        "✓ deploy (0.25s): worker w-1",
        "… connect: connecting",
        "✗ connect (0.25s): refused *** Do this.",
        "- build skipped (--no-build)",
    ]
    assert steps.timings == {"deploy": 0.25, "connect": 0.25}
    assert steps.failed == {"connect": "refused *** Do this."}
