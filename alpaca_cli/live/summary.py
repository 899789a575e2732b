"""What ``run`` leaves behind when it ends: a summary table, JUnit XML, a GitHub step summary.

All three are views of one thing, the ``--report`` dict (:func:`~alpaca_cli.live.report.
build_report`), so the numbers a CI job greps in the log, reads in its test tab and sees on the
workflow page are the same numbers. Pure functions: text in, text out; the caller writes files.

* :func:`summary_lines`: per symbol frames, rate, p50/p99 latency, longest gap, stale seconds,
  plus one totals line; printed on stderr at the end of every run, terminal or not.
* :func:`junit_xml`: one ``<testcase>`` per step (failed steps carry their message) and, with
  ``--min-frames``, one per symbol's smoke check, in the schema Jenkins, GitLab and the GitHub
  test-report actions read (``testsuites > testsuite > testcase > failure``).
* :func:`markdown`: the summary as GitHub-flavoured Markdown, appended to the file named by
  ``GITHUB_STEP_SUMMARY`` (GitHub Actions' convention for a job's summary page).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from alpaca_cli.live import format as fmt

__all__ = ["SUMMARY_COLUMNS", "junit_xml", "markdown", "summary_lines"]

SUMMARY_COLUMNS = ("symbol", "frames", "msg/s", "p50", "p99", "longest gap", "stale")
"""The per-symbol columns of the end-of-run summary (the Markdown table has the same)."""


def _cells(symbol: str, entry: Mapping[str, Any]) -> list[str]:
    return [
        symbol,
        fmt.count(int(entry["frames"])),
        fmt.rate(float(entry["rate"])),
        fmt.seconds(entry.get("latency_p50")),
        fmt.seconds(entry.get("latency_p99")),
        fmt.seconds(entry.get("longest_gap")),
        fmt.seconds(entry.get("stale_seconds")) if entry.get("stale_seconds") else "-",
    ]


def _totals(report: Mapping[str, Any]) -> str:
    channels = ", ".join(f"{name} {n}" for name, n in report.get("channels", {}).items())
    first = report.get("time_to_first_data")
    return (
        f"{report['data_messages']} messages in {report['streaming_time']:.1f}s streaming "
        f"({fmt.rate(float(report['rate']))}/s)"
        + (f" [{channels}]" if channels else "")
        + f", first data after {fmt.seconds(first)}, reconnects {report['reconnects']}, "
        f"errors {report['errors']}"
    )


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The end-of-run summary as aligned plain lines (no colour: it is also a CI log)."""
    rows = [list(SUMMARY_COLUMNS)] + [
        _cells(symbol, entry) for symbol, entry in report["symbols"].items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(SUMMARY_COLUMNS))]
    lines = ["summary: " + _totals(report)]
    for row in rows:
        cells = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def markdown(report: Mapping[str, Any], *, title: str = "alpaca-md run") -> str:
    """The summary for ``GITHUB_STEP_SUMMARY``: a heading, the outcome, steps and symbols."""
    ok = report["exit_code"] == 0
    out = [
        f"### {title}: {'✅ passed' if ok else '❌ failed'}",
        "",
        f"{_md(str(report['exit_reason']))} (exit {report['exit_code']}). {_md(_totals(report))}.",
        "",
    ]
    steps = report.get("steps", {})
    if steps:
        out += ["| step | seconds |", "|---|---:|"]
        out += [f"| {_md(name)} | {seconds:.2f} |" for name, seconds in steps.items()]
        out.append("")
    if report["symbols"]:
        out.append("| " + " | ".join(SUMMARY_COLUMNS) + " |")
        out.append("|---|" + "---:|" * (len(SUMMARY_COLUMNS) - 1))
        for symbol, entry in report["symbols"].items():
            out.append("| " + " | ".join(_md(c) for c in _cells(symbol, entry)) + " |")
        out.append("")
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    """Keep a cell a cell: pipes and newlines would break the table."""
    return text.replace("|", "\\|").replace("\n", " ")


def junit_xml(
    report: Mapping[str, Any],
    *,
    failed_steps: Mapping[str, str],
    min_frames: int,
    suite: str = "alpaca-md run",
) -> str:
    """JUnit XML for ``--junit``: one testcase per step, one per symbol's ``--min-frames``.

    Args:
        report: the run's report (its ``steps`` timings name the steps that ran).
        failed_steps: step name -> error text, for the steps that failed.
        min_frames: the smoke check's minimum; 0 = no smoke testcases.
    """
    cases: list[str] = []
    failures = 0
    for name, seconds in report.get("steps", {}).items():
        message = failed_steps.get(name)
        failures += message is not None
        cases.append(_case(f"step {name}", "run.steps", float(seconds), message))
    if min_frames > 0:
        subscribed = report.get("subscribed") or list(report["symbols"])
        for symbol in subscribed:
            frames = int(report["symbols"].get(symbol, {}).get("frames", 0))
            message = None
            if frames < min_frames:
                message = f"{symbol}: {frames} data messages, fewer than --min-frames {min_frames}"
                failures += 1
            cases.append(_case(f"min-frames {symbol}", "run.smoke", 0.0, message))
    total = float(report.get("duration", 0.0))
    head = (
        f'<testsuite name={quoteattr(suite)} tests="{len(cases)}" failures="{failures}" '
        f'errors="0" skipped="0" time="{total:.3f}">'
    )
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<testsuites tests="{len(cases)}" failures="{failures}" time="{total:.3f}">',
            head,
            *cases,
            "</testsuite>",
            "</testsuites>",
            "",
        ]
    )


def _case(name: str, classname: str, seconds: float, failure: str | None) -> str:
    attrs = f'name={quoteattr(name)} classname={quoteattr(classname)} time="{seconds:.3f}"'
    if failure is None:
        return f"  <testcase {attrs}/>"
    return (
        f"  <testcase {attrs}>\n"
        f"    <failure message={quoteattr(failure)}>{escape(failure)}</failure>\n"
        "  </testcase>"
    )
