"""The end of a run: streaming-time rates, percentiles, gaps, the summary, JUnit, Markdown."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from alpaca_cli.alpaca.messages import Level, OrderBookUpdate, Trade
from alpaca_cli.live.report import build_report
from alpaca_cli.live.stats import StreamStats, percentile
from alpaca_cli.live.summary import junit_xml, markdown, summary_lines

NS = 1_700_000_000_000_000_000


def trade(symbol: str, ts: int = NS) -> Trade:
    return Trade(symbol=symbol, price=100.0, size=1.0, t=ts, id=1, taker_side="B")


def book(symbol: str, *, reset: bool) -> OrderBookUpdate:
    return OrderBookUpdate(
        symbol=symbol, t=NS, bids=[Level(99.0, 1.0)], asks=[Level(101.0, 1.0)], reset=reset
    )


def streamed(start: float = 0.0, begin: float = 10.0) -> StreamStats:
    stats = StreamStats(start=start)
    stats.expect(["BTC/USD"])
    stats.begin_streaming(begin)
    return stats


def test_rates_are_frames_per_streaming_second_not_per_run_second() -> None:
    stats = streamed(start=0.0, begin=5.0)  # 5 s of deploy/connect before the stream
    for i in range(100):
        stats.record([trade("BTC/USD")], now=5.0 + i * 0.05, received_ns=NS)
    stats.end_streaming(10.0)
    report = build_report(stats, now=11.0, steps={}, exit_reason="ok", exit_code=0)
    assert report["streaming_time"] == 5.0
    assert report["symbols"]["BTC/USD"]["rate"] == pytest.approx(100 / 5.0)
    assert report["rate"] == pytest.approx(report["data_messages"] / report["streaming_time"])
    assert report["duration"] == 11.0  # the whole run stays in `duration`


def test_latency_percentiles_are_nearest_rank_of_real_samples() -> None:
    assert percentile([], 50) is None
    assert percentile([0.3, 0.1, 0.2], 50) == 0.2
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    stats = streamed()
    for ms in (1, 2, 3, 4, 100):
        stats.record([trade("BTC/USD")], now=11.0, received_ns=NS + ms * 1_000_000)
    report = build_report(stats, now=12.0, steps={}, exit_reason="ok", exit_code=0)
    entry = report["symbols"]["BTC/USD"]
    assert (entry["latency_p50"], entry["latency_p99"]) == (0.003, 0.1)
    assert report["latency_p95"] == 0.1


def test_longest_gap_time_to_first_data_and_channel_counts() -> None:
    stats = streamed(begin=10.0)
    stats.record([trade("BTC/USD")], now=10.5, received_ns=NS)
    stats.record([book("BTC/USD", reset=True)], now=11.0, received_ns=NS)
    stats.record([trade("BTC/USD")], now=14.0, received_ns=NS)
    stats.end_streaming(14.5)
    report = build_report(stats, now=15.0, steps={}, exit_reason="ok", exit_code=0)
    entry = report["symbols"]["BTC/USD"]
    assert entry["longest_gap"] == 3.0
    assert entry["time_to_first_data"] == 0.5 == report["time_to_first_data"]
    assert entry["channels"] == {"orderbooks": 1, "trades": 2} == report["channels"]


def test_stale_seconds_run_from_a_reconnect_to_the_next_reset() -> None:
    stats = streamed(begin=0.0)
    stats.books.apply(book("BTC/USD", reset=True))
    stats.record([book("BTC/USD", reset=True)], now=1.0, received_ns=NS)
    stats.note_reconnect(2.0)
    stats.record([book("BTC/USD", reset=False)], now=3.0, received_ns=NS)  # still stale
    stats.record([book("BTC/USD", reset=True)], now=4.5, received_ns=NS)
    assert stats.stale_for("BTC/USD", 9.0) == 2.5


def test_summary_lines_name_every_symbol_with_its_numbers() -> None:
    stats = streamed(begin=0.0)
    stats.expect(["BTC/USD", "ETH/USD"])
    stats.record([trade("BTC/USD")], now=1.0, received_ns=NS + 4_000_000)
    stats.end_streaming(2.0)
    report = build_report(stats, now=2.0, steps={}, exit_reason="ok", exit_code=0)
    lines = summary_lines(report)
    assert lines[0].startswith("summary: 1 messages in 2.0s streaming (0.5/s) [trades 1]")
    assert lines[1].split() == [
        "symbol",
        "frames",
        "msg/s",
        "p50",
        "p99",
        "longest",
        "gap",
        "stale",
    ]
    assert lines[2].split() == ["BTC/USD", "1", "0.5", "4ms", "4ms", "1.0s", "-"]
    assert lines[3].split()[:2] == ["ETH/USD", "0"]


def test_junit_has_a_testcase_per_step_and_per_smoke_check() -> None:
    stats = streamed(begin=0.0)
    stats.expect(["BTC/USD", "ETH/USD"])
    stats.record([trade("BTC/USD")], now=1.0, received_ns=NS)
    report = build_report(
        stats, now=2.0, steps={"deploy": 0.1, "auth": 0.2}, exit_reason="x", exit_code=7
    )
    xml = junit_xml(report, failed_steps={"auth": "Alpaca refused auth: 402 <bad>"}, min_frames=1)
    root = ET.fromstring(xml)
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("failures") == "2"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == ["step deploy", "step auth", "min-frames BTC/USD", "min-frames ETH/USD"]
    failure = cases["step auth"].find("failure")
    assert failure is not None and failure.get("message") == "Alpaca refused auth: 402 <bad>"
    assert cases["min-frames BTC/USD"].find("failure") is None
    smoke = cases["min-frames ETH/USD"].find("failure")
    assert smoke is not None and "fewer than --min-frames 1" in (smoke.text or "")


def test_markdown_summary_is_a_github_table() -> None:
    stats = streamed(begin=0.0)
    stats.record([trade("BTC/USD")], now=1.0, received_ns=NS)
    report = build_report(stats, now=2.0, steps={"deploy": 0.1}, exit_reason="a|b", exit_code=0)
    text = markdown(report)
    assert text.startswith("### alpaca-md run: ✅ passed\n")
    assert "a\\|b (exit 0)" in text
    assert "| deploy | 0.10 |" in text
    assert "| symbol | frames | msg/s | p50 | p99 | longest gap | stale |" in text
    assert "| BTC/USD | 1 |" in text


@pytest.mark.timeout(120)
def test_two_channel_embedded_run_writes_junit_step_summary_and_honest_rates(
    run_cli: object, tmp_path: object
) -> None:
    """The issue's acceptance run: both channels stream, JUnit and the step summary appear."""
    import json
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    junit, step_summary, report_path = (
        tmp_path / "j.xml",
        tmp_path / "summary.md",
        tmp_path / "report.json",
    )
    step_summary.write_text("earlier step\n")
    proc = run_cli(  # type: ignore[operator]
        [
            "run",
            "--embedded",
            "--channel",
            "trades",
            "--channel",
            "orderbooks",
            "--duration",
            "8",
            "--min-frames",
            "1",
            "--junit",
            str(junit),
            "--report",
            str(report_path),
        ],
        env={"GITHUB_STEP_SUMMARY": str(step_summary)},
    )
    assert proc.wait() == 0, proc.stderr
    report = json.loads(report_path.read_text())
    assert set(report["channels"]) == {"trades", "orderbooks"}
    for symbol, entry in report["symbols"].items():
        assert entry["channels"].get("orderbooks", 0) > 0, symbol
        assert entry["rate"] == pytest.approx(entry["frames"] / report["streaming_time"], rel=1e-3)
        assert entry["latency_p50"] is not None and entry["time_to_first_data"] is not None
    assert report["channels"]["trades"] > 0
    assert report["streaming_time"] < report["duration"]  # deploy/connect are not streaming
    assert report["rate"] == pytest.approx(
        report["data_messages"] / report["streaming_time"], rel=1e-3
    )
    root = ET.fromstring(junit.read_text())
    names = [c.get("name") for c in root.iter("testcase")]
    assert "step subscribe" in names and "step teardown" in names
    assert {f"min-frames {s}" for s in report["subscribed"]} <= set(names)
    assert root.find("testsuite").get("failures") == "0"  # type: ignore[union-attr]
    md = step_summary.read_text()
    assert md.startswith("earlier step\n### alpaca-md run: ✅ passed")
    summary = [line for line in proc.lines if line.startswith("summary: ")]
    assert len(summary) == 1 and "trades" in summary[0] and "orderbooks" in summary[0]


@pytest.mark.timeout(60)
def test_fail_on_stall_needs_a_stall_limit(run_cli: object) -> None:
    proc = run_cli(["run", "--embedded", "--fail-on-stall", "--stall-limit", "0"])  # type: ignore[operator]
    assert proc.wait() == 2
    assert proc.lines[-1] == (
        "Error: --fail-on-stall needs a --stall-limit above 0 (0 turns stalls off)."
    )
