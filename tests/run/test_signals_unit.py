"""SignalGuard: first signal stops (and aborts only abortable sections), second forces."""

from __future__ import annotations

import io
import os
import signal

import pytest

from alpaca_cli.live.embedded import dev_up_command, parse_env
from alpaca_cli.signals import ForceQuit, SignalGuard, StopRequested


def test_first_signal_sets_stop_outside_an_abortable_section() -> None:
    out = io.StringIO()
    with SignalGuard(out) as guard:
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.stop.is_set()
        assert guard.reason == "interrupted (SIGTERM)"
    assert "press Ctrl+C again" in out.getvalue()


def test_first_signal_aborts_an_abortable_section() -> None:
    with SignalGuard(io.StringIO()) as guard:
        with pytest.raises(StopRequested), guard.abortable():
            os.kill(os.getpid(), signal.SIGINT)
        assert guard.reason == "interrupted (Ctrl+C)"
        with pytest.raises(StopRequested), guard.abortable():
            pass  # already stopping: refuses to start waiting


def test_second_signal_forces() -> None:
    with SignalGuard(io.StringIO()) as guard:
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(ForceQuit):
            os.kill(os.getpid(), signal.SIGINT)
        assert guard.signals == 2


def test_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGINT)
    with SignalGuard(io.StringIO()):
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before


def test_request_stop_keeps_the_first_reason() -> None:
    guard = SignalGuard(io.StringIO())
    guard.request_stop("duration reached")
    guard.request_stop("stalled")
    assert guard.reason == "duration reached"


def test_env_file_parsing() -> None:
    text = (
        "# platform\nVIRTUFIN_API_URL=http://127.0.0.1:5\nexport DAPR_GRPC_PORT='6'\n\nbad line\n"
    )
    assert parse_env(text) == {"VIRTUFIN_API_URL": "http://127.0.0.1:5", "DAPR_GRPC_PORT": "6"}


def test_dev_up_command_uses_free_ports_and_stdin_lifetime(tmp_path: object) -> None:
    from pathlib import Path

    cmd = dev_up_command(Path("/tmp/x.env"), ["--drop-after", "2"])
    assert cmd[-2:] == ["--drop-after", "2"]
    for flag in ("--gateway-port", "--dapr-http-port", "--dapr-grpc-port", "--feed-port"):
        assert cmd[cmd.index(flag) + 1] == "0"
    assert "--exit-with-stdin" in cmd and cmd[cmd.index("--write-env") + 1] == "/tmp/x.env"


def test_an_embedded_platform_that_cannot_start_is_reported_with_its_log() -> None:
    from alpaca_cli.errors import PlatformUnreachable
    from alpaca_cli.live.embedded import EmbeddedProcess

    with EmbeddedProcess(["--no-such-option"]) as platform:
        with pytest.raises(PlatformUnreachable) as info:
            platform.start(timeout=60)
        directory = platform.env_path.parent
    assert "exited with code 2" in str(info.value)
    assert "no-such-option" in str(info.value)  # the child's own error, from its log
    assert not directory.exists()  # the temporary directory is gone
