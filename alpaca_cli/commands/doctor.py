"""``alpaca-md doctor``: preflight checks, each a ✓/✗ line with its time and a fix.

Creates nothing, sends nothing to Alpaca: safe as the first step of a CI job. The lines are
the command's result, so they go to stdout (``--json``: one JSON array of the checks); the
exit code is the class of the first failed check.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

from alpaca_cli.commands._common import BUS, FILES, takes

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation
    from alpaca_cli.steps.doctor import Check

MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-"}
"""The mark of each status: the same ✓/✗ as ``run``'s step lines."""


@takes("api_url", "timeout", *BUS, "command_topic", "reply_topic", *FILES)
def command(invocation: Invocation) -> None:
    """Check the platform, the bus, the keys, the stream URL and the state file, in order.

    Each check prints one line: ✓ passed, ! warning, ✗ failed (with a fix), - skipped (it
    needs an earlier one). Checks: gateway /health, API key accepted, workmanager and
    websocketmanager listed, the bus reachable, the deployed controller answering, Alpaca keys
    set (never shown), stream URL well formed, the state file readable and what it names
    present. Exits with the code of the first failure: 3 unreachable, 4 credentials, 5 refused,
    6 no reply, 2 a local problem.

    Example: alpaca-md doctor --json
    """
    from alpaca_cli.steps.doctor import run_checks

    checks: list[Check] = []
    with invocation.open() as rt:
        for check in run_checks(rt):
            checks.append(check)
            if not invocation.json:
                sys.stdout.write(line(check) + "\n")
                sys.stdout.flush()
    if invocation.json:
        from alpaca_cli.output import write_json

        write_json([{**asdict(c), "seconds": round(c.seconds, 3)} for c in checks])
    failed = next((c for c in checks if c.status == "fail"), None)
    if failed is not None:
        sys.stderr.write(f"Error: doctor: {failed.name} failed: {failed.detail}\n")
        raise typer.Exit(failed.exit_code)


def line(check: Check) -> str:
    """``✓ gateway (0.01s): Healthy: dapr Healthy``, plus ``; fix: ...`` when there is one."""
    text = f"{MARKS[check.status]} {check.name}"
    if check.status != "skip":
        text += f" ({check.seconds:.2f}s)"
    text += f": {check.detail}"
    if check.fix and check.status in ("fail", "warn"):
        text += f"; fix: {check.fix}"
    return text
