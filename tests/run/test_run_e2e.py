"""``alpaca-md run`` end to end: embedded runs, failures, signals at every step, second Ctrl+C."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(120)

EMBEDDED_WORKER_URL = "embedded://websocketmanagercontroller"
STEPS = ["deploy", "connect", "publish", "auth", "subscribe", "stream"]
SYMBOLS = ["BTC/USD", "ETH/USD", "SOL/USD", "DOGE/USD", "AVAX/USD"]


def platform_args(*extra: str) -> list[str]:
    return ["run", "--url", EMBEDDED_WORKER_URL, "--stall-limit", "0", *extra]


def test_embedded_run_passes_the_smoke_check_and_reports(
    run_cli: Any, tmp_path: Path, bus: str
) -> None:
    report_path = tmp_path / "report.json"
    proc = run_cli(
        [
            "run",
            "--embedded",
            "--bus",
            bus,
            "--duration",
            "3",
            "--min-frames",
            "1",
            "--report",
            str(report_path),
            "--json",
        ]
    )
    assert proc.wait() == 0, proc.stderr
    report = json.loads(report_path.read_text())
    assert json.loads(proc.stdout) == report  # --json: the report is the data on stdout
    assert sorted(report["symbols"]) == sorted(SYMBOLS)
    for symbol in SYMBOLS:
        entry = report["symbols"][symbol]
        assert entry["frames"] >= 1
        assert entry["counts"]["o"] == entry["frames"]  # default channel: order books
        assert entry["first_message_latency"] is not None
        assert entry["book_levels"][0] > 0 and entry["book_levels"][1] > 0
    for step in (
        "platform",
        "deploy",
        "connect",
        "publish",
        "auth",
        "subscribe",
        "stream",
        "list",
        "teardown",
    ):
        assert step in report["steps"], report["steps"]
    assert "build" not in report["steps"]
    assert (report["exit_code"], report["exit_reason"]) == (0, "duration reached")
    assert report["reconnects"] == 0
    assert (report["bus"], report["bus_gaps"]) == (bus, 0)
    assert "✓ teardown" in proc.stderr
    assert not (tmp_path / ".alpaca-md" / "state.json").exists()


def test_sigterm_ends_an_embedded_run_and_its_platform(run_cli: Any) -> None:
    import httpx

    proc = run_cli(["run", "--embedded", "--duration", "30"])
    ready = proc.wait_for_line("✓ platform")
    gateway = ready.rsplit("gateway ", 1)[1].strip()
    proc.wait_for_line("… stream:")
    assert httpx.get(f"{gateway}/health", timeout=5).status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 130, proc.stderr
    assert "✓ teardown" in proc.stderr
    with pytest.raises(httpx.TransportError):  # the embedded platform is gone with the run
        httpx.get(f"{gateway}/health", timeout=5)


def test_run_against_a_platform_leaves_nothing_behind(
    nothing_left: Any, run_cli: Any, platform: Any, tmp_path: Path, bus: str
) -> None:
    report_path = tmp_path / "r.json"
    proc = run_cli(
        platform_args("--duration", "1.5", "--min-frames", "1", "--report", str(report_path)),
        platform.env(),
    )
    assert proc.wait() == 0, proc.stderr
    assert json.loads(report_path.read_text())["subscribed"] == SYMBOLS
    assert "- build skipped (--package-url given)" in proc.stderr
    assert "does not authenticate within 10 s" not in proc.stderr  # run authenticates at once
    nothing_left(platform)
    assert platform.alpaca_secret not in proc.stderr + proc.stdout + report_path.read_text()


def test_too_few_frames_fail_the_smoke_check(
    nothing_left: Any, run_cli: Any, platform: Any, tmp_path: Path
) -> None:
    report_path = tmp_path / "r.json"
    proc = run_cli(
        platform_args("--duration", "0.5", "--min-frames", "1000000", "--report", str(report_path)),
        platform.env(),
    )
    assert proc.wait() == 7, proc.stderr
    report = json.loads(report_path.read_text())
    assert report["exit_code"] == 7
    assert report["exit_reason"].startswith("smoke check failed")
    nothing_left(platform)


def test_a_dropped_connection_is_healed(
    nothing_left: Any, run_cli: Any, fresh_platform: Any, tmp_path: Path, bus: str
) -> None:
    platform = fresh_platform(drop_after=2.0)
    report_path = tmp_path / "r.json"
    proc = run_cli(platform_args("--duration", "4.5", "--report", str(report_path)), platform.env())
    assert proc.wait() == 0, proc.stderr
    report = json.loads(report_path.read_text())
    assert report["reconnects"] >= 1, report
    assert report["resumed"] >= 1, (report, proc.stderr)  # data flowed again after a re-handshake
    assert "sending auth and the subscriptions again" in proc.stderr
    nothing_left(platform)


def test_bad_alpaca_credentials_exit_4(nothing_left: Any, run_cli: Any, platform: Any) -> None:
    env = {**platform.env(), "ALPACA_API_SECRET": "wrong-secret"}
    proc = run_cli(platform_args("--duration", "5"), env)
    assert proc.wait() == 4, proc.stderr
    assert "✗ auth" in proc.stderr and "402" in proc.stderr
    assert "✓ teardown" in proc.stderr
    nothing_left(platform)


def test_symbol_limit_exits_5(nothing_left: Any, run_cli: Any, fresh_platform: Any) -> None:
    platform = fresh_platform(symbol_limit=2)
    proc = run_cli(platform_args("--duration", "5"), platform.env())
    assert proc.wait() == 5, proc.stderr
    assert "✗ subscribe" in proc.stderr and "405" in proc.stderr
    nothing_left(platform)


def test_platform_down_exits_3(run_cli: Any) -> None:
    env = {
        "VIRTUFIN_API_URL": "http://127.0.0.1:9",
        "DAPR_HTTP_PORT": "9",
        "DAPR_GRPC_PORT": "9",
        "ALPACA_API_KEY": "k",
        "ALPACA_API_SECRET": "s",
    }
    proc = run_cli(platform_args("--duration", "1"), env)
    assert proc.wait() == 3, proc.stderr
    assert "✗ deploy" in proc.stderr and "127.0.0.1:9" in proc.stderr


SIGNAL_CASES = [
    *(pytest.param(step, signal.SIGINT, id=f"ctrl-c-at-{step}") for step in STEPS),
    # SIGTERM takes the same handler: once at a step that finishes first (connect), once in an
    # abortable wait (auth), once while streaming.
    *(
        pytest.param(step, signal.SIGTERM, id=f"sigterm-at-{step}")
        for step in ("connect", "auth", "stream")
    ),
]


def test_missing_alpaca_keys_fail_before_anything_is_created(run_cli: Any) -> None:
    env = {"VIRTUFIN_API_URL": "http://127.0.0.1:9", "DAPR_GRPC_PORT": "9", "DAPR_HTTP_PORT": "9"}
    proc = run_cli(platform_args("--duration", "1"), env)
    assert proc.wait() == 2, proc.stderr
    assert "ALPACA_API_KEY and ALPACA_API_SECRET not set" in proc.stderr
    assert "… deploy" not in proc.stderr


@pytest.mark.parametrize(("step", "signum"), SIGNAL_CASES)
def test_a_signal_at_any_step_tears_down(
    nothing_left: Any, run_cli: Any, platform: Any, step: str, signum: int
) -> None:
    proc = run_cli(platform_args("--duration", "30"), platform.env())
    proc.wait_for_line(f"… {step}:")
    proc.send_signal(signum)
    assert proc.wait() == 130, proc.stderr
    assert "interrupted" in proc.stderr
    nothing_left(platform)


def test_second_ctrl_c_skips_teardown_and_names_what_is_left(
    nothing_left: Any, run_cli: Any, platform: Any
) -> None:
    workmanager = platform.workmanager
    original = workmanager.stop_worker

    async def slow_stop(worker_id: str) -> None:
        await asyncio.sleep(2)
        await original(worker_id)

    workmanager.stop_worker = slow_stop  # teardown now takes long enough to interrupt
    try:
        proc = run_cli(platform_args("--duration", "30"), platform.env())
        proc.wait_for_line("… stream:")
        proc.send_signal(signal.SIGINT)
        proc.wait_for_line("… teardown:")
        proc.send_signal(signal.SIGINT)
        assert proc.wait() == 130, proc.stderr
    finally:
        workmanager.stop_worker = original
    left = proc.wait_for_line("Skipped cleanup.")
    [worker] = workmanager.list_workers()
    assert f"worker {worker.id}" in left
    assert "alpaca-md teardown" in left
    # The state file kept the ids: `alpaca-md teardown` finishes the job later.
    cleanup = run_cli(["teardown"], platform.env())
    assert cleanup.wait() == 0, cleanup.stderr
    nothing_left(platform)


def test_run_never_removes_what_it_did_not_create(
    nothing_left: Any, run_cli: Any, platform: Any
) -> None:
    earlier = run_cli(["deploy", "--url", EMBEDDED_WORKER_URL], platform.env())
    assert earlier.wait() == 0, earlier.stderr
    [worker] = platform.workmanager.list_workers()
    proc = run_cli(platform_args("--duration", "1"), platform.env())
    assert proc.wait() == 2, proc.stderr  # deploy refuses: the state names a live worker
    assert "--replace" in proc.stderr
    assert "teardown skipped" in proc.stderr
    assert [w.id for w in platform.workmanager.list_workers()] == [worker.id]
    cleanup = run_cli(["teardown"], platform.env())
    assert cleanup.wait() == 0, cleanup.stderr
    nothing_left(platform)


def _hold_upstream(platform: Any, action: bytes, *, reply: bool) -> threading.Event:
    """Make the WSM swallow the ``action`` message (``reply=True``: the controller still says
    "sent", so Alpaca's answer never comes; ``False``: the controller never replies at all).

    Returns an event set once the message reached the WSM, i.e. ``run`` is waiting.
    """
    wsm = platform.wsm
    original = wsm.send_raw
    reached = threading.Event()

    async def held(connection_id: str, message: bytes, content_type: str) -> None:
        if b'"action":"' + action + b'"' not in message:
            await original(connection_id, message, content_type)
            return
        reached.set()
        if not reply:
            await asyncio.sleep(3600)  # cancelled when the platform stops

    wsm.send_raw = held
    return reached


@pytest.mark.parametrize(
    ("action", "reply", "step"),
    [
        pytest.param(b"auth", False, "auth", id="auth-controller-silent"),
        pytest.param(b"auth", True, "auth", id="auth-alpaca-silent"),
        pytest.param(b"subscribe", True, "subscribe", id="subscribe-alpaca-silent"),
    ],
)
def test_ctrl_c_during_a_reply_wait_tears_down_at_once(
    nothing_left: Any, run_cli: Any, fresh_platform: Any, action: bytes, reply: bool, step: str
) -> None:
    """CI sends SIGKILL ~7.5 s after SIGINT: teardown cannot wait for the reply ``--timeout``.

    With ``--timeout 600`` a wait that sat its timeout out would blow this test's own timeout.
    """
    platform = fresh_platform(auth_timeout=600)  # Alpaca itself never ends the wait either
    waiting = _hold_upstream(platform, action, reply=reply)
    proc = run_cli(platform_args("--duration", "30", "--timeout", "600"), platform.env())
    assert waiting.wait(60), proc.stderr
    proc.send_signal(signal.SIGINT)
    assert proc.wait() == 130, proc.stderr
    assert f"✗ {step}" in proc.stderr
    assert proc.stderr.index(f"✗ {step}") < proc.stderr.index("… teardown:")
    assert "✓ teardown" in proc.stderr
    assert "… stream" not in proc.stderr
    nothing_left(platform)


class GatewayProxy:
    """A loopback TCP proxy in front of the gateway that can turn into a black hole: once
    :attr:`hang` is set it keeps accepting and reading requests but never forwards them, so
    nothing is ever answered (a gateway that hangs, not one that is down)."""

    def __init__(self, upstream_url: str) -> None:
        host, port = upstream_url.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.hang = threading.Event()
        self.held = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self.socks += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if requests and self.hang.is_set():
                    self.held += 1
                    continue
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for sock in self.socks:
            sock.close()


def test_teardown_against_a_hanging_gateway_is_bounded(
    run_cli: Any, fresh_platform: Any, tmp_path: Path
) -> None:
    """The gateway client normally waits 35 s per call (its backend's 30 s deadline): three
    hanging teardown calls would outlast CI's SIGKILL by far. Teardown gives them ~6 s in all,
    then says what is left; `alpaca-md teardown` finishes the job once the gateway answers."""
    platform = fresh_platform()
    proxy = GatewayProxy(platform.env()["VIRTUFIN_API_URL"])
    try:
        env = {**platform.env(), "VIRTUFIN_API_URL": proxy.url}
        proc = run_cli(platform_args("--duration", "600", "--timeout", "600"), env)
        proc.wait_for_line("… stream:")
        proxy.hang.set()
        proc.send_signal(signal.SIGINT)
        # A teardown waiting 35 s per gateway call would outlast this wait (and the test).
        assert proc.wait() == 130, proc.stderr
        assert proxy.held >= 1  # teardown did reach the hanging gateway
        assert "✗ teardown" in proc.stderr and "Teardown incomplete" in proc.stderr
        state = json.loads((tmp_path / ".alpaca-md" / "state.json").read_text())
        assert state["worker"]["id"]  # kept for a later `alpaca-md teardown`
    finally:
        proxy.close()
    cleanup = run_cli(["teardown"], platform.env())
    assert cleanup.wait() == 0, cleanup.stderr
    assert platform.workmanager.list_workers() == []


def test_a_gateway_stream_that_ends_mid_run_is_reopened_reported_and_counted(
    nothing_left: Any, run_cli: Any, platform: Any, tmp_path: Path
) -> None:
    """The gateway's broadcast has no replay: an outage is said on stderr and counted in the
    report (``bus_gaps``), and the stream flows again on the re-opened subscription."""
    report_path = tmp_path / "report.json"
    env = {k: v for k, v in platform.env().items() if not k.startswith("DAPR_")}
    proc = run_cli(platform_args("--duration", "6", "--report", str(report_path)), env)
    proc.wait_for_line("… stream:")
    assert platform.loop_thread.call(platform.gateway_grpc.end_streams) >= 1
    assert proc.wait() == 0, proc.stderr
    assert "messages published meanwhile are lost" in proc.stderr
    report = json.loads(report_path.read_text())
    assert report["bus"] == "gateway" and report["bus_gaps"] >= 1
    nothing_left(platform)
