"""Bounded interrupts in every command (issue 11, holes 7 and 10): the first Ctrl+C or SIGTERM
abandons a hung gateway call or reply wait, runs the step's short clean-up and exits 130.

Each test hangs a call through the fault proxy (or an upstream that never answers) and awaits
the proxy's hit before signalling: no sleeps. The command's gateway timeout is 35 s and the
process is given 25 s: a command that waits the call out fails the test.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.faultproxy import Fault, FaultProxy
from tests.faults.conftest import workers

pytestmark = pytest.mark.timeout(120)

WORKER_URL = "embedded://websocketmanagercontroller"
SIGNALS = [pytest.param(signal.SIGINT, id="ctrl-c"), pytest.param(signal.SIGTERM, id="sigterm")]
BOUND = 25.0
"""Longer than the bounded interrupt (~5 s), shorter than the 35 s HTTP timeout."""


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_signal_abandons_a_hung_start_worker_and_deploy_undoes_its_worker(
    spawn: Any, proxy: FaultProxy, proxied_env: dict[str, str], platform: Any, signum: int
) -> None:
    before = set(workers(platform))
    proxy.add("workmanager.StartWorker", Fault("hang"))
    proc = spawn(["deploy", "--url", WORKER_URL], proxied_env)
    assert proxy.wait_hit("workmanager.StartWorker")
    proc.send_signal(signum)
    assert proc.wait(timeout=BOUND) == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "StartWorker" in error[0], proc.stderr
    # The worker CreateWorker made was deleted by the short clean-up: nothing left behind.
    assert proxy.hits.get("workmanager.DeleteWorker", 0) == 1
    assert set(workers(platform)) == before


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_signal_abandons_a_hung_list_call(
    spawn: Any, proxy: FaultProxy, proxied_env: dict[str, str], signum: int
) -> None:
    proxy.add("workmanager.ListWorkers", Fault("hang"))
    proxy.add("websocketmanager.List", Fault("hang"))
    proc = spawn(["list"], proxied_env)
    assert proxy.wait_hit("workmanager.ListWorkers") or proxy.wait_hit("websocketmanager.List")
    proc.send_signal(signum)
    assert proc.wait(timeout=BOUND) == 130, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def silent_upstream() -> Iterator[tuple[str, list[socket.socket]]]:
    """A TCP server that accepts WebSocket clients and never answers their handshake."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{server.getsockname()[1]}/v1beta3/crypto/us", accepted
    done.set()
    server.close()
    for conn in accepted:
        conn.close()


@pytest.mark.parametrize("signum", SIGNALS)
def test_sigterm_or_ctrl_c_ends_connect_during_a_hung_upstream_handshake(
    spawn: Any,
    cli_env: dict[str, str],
    platform: Any,
    silent_upstream: tuple[str, list[socket.socket]],
    signum: int,
) -> None:
    url, _accepted = silent_upstream
    deploy = spawn(["deploy", "--url", WORKER_URL], cli_env)
    assert deploy.wait() == 0, deploy.stderr
    proc = spawn(["connect", "--url", url, "--timeout", "60"], cli_env)
    proc.wait_for_line("Connecting to")
    proc.send_signal(signum)
    assert proc.wait(timeout=BOUND) == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("Error:")], proc.stderr
    teardown = spawn(["teardown"], cli_env)
    assert teardown.wait() == 0, teardown.stderr


@pytest.fixture
def cli_env(platform: Any) -> dict[str, str]:
    return dict(platform.env())


@pytest.mark.parametrize("call", ["workmanager.StartWorker", "workmanager.CreateWorker"])
def test_the_first_ctrl_c_of_run_abandons_a_hung_gateway_call(
    spawn: Any, proxy: FaultProxy, proxied_env: dict[str, str], platform: Any, call: str
) -> None:
    before = set(workers(platform))
    proxy.add(call, Fault("hang"))
    proc = spawn(
        ["run", "--url", WORKER_URL, "--stall-limit", "0", "--duration", "30"], proxied_env
    )
    assert proxy.wait_hit(call)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=BOUND) == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    if call == "workmanager.StartWorker":  # CreateWorker never reached the gateway
        assert set(workers(platform)) == before
