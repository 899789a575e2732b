"""``alpaca-md run`` against the newer platform's long-run behaviour (issue 12, spec "Newer
platform behaviour"): the connection record TTL, reconnects that run out, the lifecycle name
families, and a rolling update. Real ``alpaca-md`` processes against an embedded platform in a
thread, started here with the knob each behaviour needs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import embedded_platform

pytestmark = pytest.mark.timeout(180)

EMBEDDED_WORKER_URL = "embedded://websocketmanagercontroller"


def run_args(*extra: str) -> list[str]:
    return ["run", "--url", EMBEDDED_WORKER_URL, "--stall-limit", "0", *extra]


@pytest.fixture
def knobbed() -> Iterator[Any]:
    """Factory: ``knobbed(feed={...}, **StackConfig knobs)`` starts a platform of its own."""
    from contextlib import ExitStack

    with ExitStack() as stack:

        def start(feed: dict[str, Any] | None = None, **knobs: Any) -> Any:
            config = dict(feed_options=feed or {}, reconnect_base_delay=0.2, **knobs)
            return stack.enter_context(embedded_platform(**config))

        yield start


def report_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_keepalive_keeps_the_connection_listed_past_the_record_ttl(
    nothing_left: Any, run_cli: Any, knobbed: Any, tmp_path: Path
) -> None:
    """The record lives 3 s after the last send; a 15 s run that only receives would lose it
    after 3 s. The keepalive (every second here) keeps it listed, and its answers are neither
    a re-handshake nor an error."""
    platform = knobbed(connection_record_ttl=3)
    report_path = tmp_path / "r.json"
    proc = run_cli(
        run_args("--keepalive", "1", "--duration", "15", "--report", str(report_path)),
        platform.env(),
    )
    proc.wait_for_line("… stream:")
    seen: list[list[str]] = []
    done = threading.Event()

    def watch() -> None:  # the WSM's own list, every second of the stream
        while not done.wait(1.0):
            seen.append([c.id for c in platform.wsm.list()])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    proc.wait_for_line("✓ stream", timeout=60)
    done.set()
    watcher.join()
    assert proc.wait() == 0, proc.stderr
    listed = proc.wait_for_line("✓ list")
    assert " CONNECTED (" in listed and "GONE" not in listed, listed
    assert len(seen) >= 8 and all(len(ids) == 1 for ids in seen), seen  # never dropped out
    report = report_of(report_path)
    assert report["reconnects"] == 0 and report["errors"] == 0, report
    assert report["connections_opened"] == 0
    assert report["data_messages"] > 0
    assert "re-established" not in proc.stderr
    nothing_left(platform)


def test_without_keepalive_the_record_expires(run_cli: Any, knobbed: Any, tmp_path: Path) -> None:
    """The control: with ``--keepalive 0`` the same platform forgets the connection, which is
    why the keepalive exists (the socket goes on streaming)."""
    platform = knobbed(connection_record_ttl=3)
    proc = run_cli(run_args("--keepalive", "0", "--duration", "6"), platform.env())
    assert proc.wait() in (0, 5), proc.stderr  # teardown may find it gone: either is honest
    listed = proc.wait_for_line("✓ list")
    assert "GONE" in listed, listed


def test_connections_whose_reconnects_run_out_are_replaced(
    nothing_left: Any, run_cli: Any, knobbed: Any, tmp_path: Path, bus: str
) -> None:
    """``--reconnect-attempts 0``: every drop leaves the connection DISCONNECTED for good; run
    opens new ones, data keeps flowing on them, and none of them outlives the teardown."""
    platform = knobbed(feed={"drop_after": 2.0}, reconnect_attempts=0)
    report_path = tmp_path / "r.json"
    proc = run_cli(run_args("--duration", "17", "--report", str(report_path)), platform.env())
    assert proc.wait() == 0, proc.stderr
    report = report_of(report_path)
    assert report["connections_opened"] >= 2, (report, proc.stderr)
    assert report["resumed"] >= report["connections_opened"], report  # data on each new one
    assert report["reconnects"] >= report["connections_opened"]
    assert "was closed for good; opened" in proc.stderr
    state_free = not (tmp_path / ".alpaca-md" / "state.json").exists()
    assert state_free, "teardown left the state file"
    nothing_left(platform)  # the old connections too, not only the newest


@pytest.mark.parametrize("family", ["classic", "spec", "reference"])
def test_every_lifecycle_family_triggers_the_rehandshake(
    nothing_left: Any, run_cli: Any, knobbed: Any, tmp_path: Path, family: str
) -> None:
    """The terminal ``disconnected`` is seen only on the lifecycle topic, under the family's
    name (``lifecycle.disconnected``, ``lifecycle.connection.disconnected``, ``closed``):
    recognising it is what opens the new connection and re-handshakes it."""
    platform = knobbed(feed={"drop_after": 3.0}, reconnect_attempts=0, lifecycle_names=family)
    report_path = tmp_path / "r.json"
    proc = run_cli(run_args("--duration", "11", "--report", str(report_path)), platform.env())
    assert proc.wait() == 0, proc.stderr
    report = report_of(report_path)
    assert report["connections_opened"] >= 1, (report, proc.stderr)
    assert report["resumed"] >= 1, report
    assert "sending auth and the subscriptions" in proc.stderr
    nothing_left(platform)


def test_a_rolling_update_is_ridden_out(
    nothing_left: Any, run_cli: Any, knobbed: Any, tmp_path: Path
) -> None:
    """For 5 s after create every call on the connection answers ``Connection owned by
    different instance``: publish (and what follows) waits it out instead of failing."""
    platform = knobbed(owned_elsewhere=5)
    report_path = tmp_path / "r.json"
    proc = run_cli(
        run_args("--duration", "2", "--min-frames", "1", "--report", str(report_path)),
        platform.env(),
    )
    assert proc.wait() == 0, proc.stderr
    assert report_of(report_path)["data_messages"] > 0
    nothing_left(platform)


def test_a_gateway_unhealthy_only_for_missing_keys_is_a_warning(
    nothing_left: Any, run_cli: Any, knobbed: Any
) -> None:
    platform = knobbed(unhealthy_without_keys=True)
    proc = run_cli(run_args("--duration", "1", "--min-frames", "1"), platform.env())
    assert proc.wait() == 0, proc.stderr
    assert "Warning: the gateway reports Unhealthy only because it has no API keys" in proc.stderr
    nothing_left(platform)


def test_the_knobs_need_embedded(cli: Any) -> None:
    result = cli("run", "--reconnect-attempts", "0", "--owned-elsewhere", "5")
    assert result.exit_code == 2, result.output
    assert "--reconnect-attempts, --owned-elsewhere configure the embedded platform" in (
        result.stderr
    )


def test_the_knobs_reach_the_dev_up_child() -> None:
    from alpaca_cli.steps.run import RunOptions, _embedded_args

    opts = RunOptions(
        platform_knobs={
            "--connection-record-ttl": 3.0,
            "--reconnect-attempts": 0,
            "--lifecycle-names": "spec",
            "--duplicate-create": True,
        }
    )
    assert _embedded_args(opts) == [
        *("--connection-record-ttl", "3", "--reconnect-attempts", "0"),
        *("--lifecycle-names", "spec", "--duplicate-create"),
    ]


def test_an_embedded_run_replaces_connections_whose_reconnects_run_out(
    run_cli: Any, tmp_path: Path
) -> None:
    """The knobs travel through ``run --embedded`` to its ``dev up`` child for real."""
    report_path = tmp_path / "r.json"
    proc = run_cli(
        [
            *("run", "--embedded", "--stall-limit", "0", "--duration", "11"),
            *("--drop-after", "3", "--reconnect-attempts", "0", "--lifecycle-names", "reference"),
            *("--report", str(report_path)),
        ]
    )
    assert proc.wait() == 0, proc.stderr
    report = report_of(report_path)
    assert report["connections_opened"] >= 1 and report["resumed"] >= 1, report
    assert "✓ teardown" in proc.stderr
