"""Helpers for ``run`` end-to-end tests: the CLI as a subprocess, an embedded platform in a thread.

``run`` installs signal handlers and starts child processes, so it is tested the way a user and
a CI runner drive it: as its own process, with real signals, against real loopback servers.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from alpaca_cli.devstack.stack import EmbeddedPlatform
from tests.support import bus_env, child_env, embedded_platform


class RunProcess:
    """``python -m alpaca_cli run ...`` whose stderr lines can be waited for."""

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alpaca_cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._out: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._out_reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._out_reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self._out.append(self.proc.stdout.read())

    @property
    def stdout(self) -> str:
        return b"".join(self._out).decode("utf-8", "replace")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, prefix: str, timeout: float = 60.0) -> str:
        """The first stderr line starting with ``prefix`` (fails if the process ends first)."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: (
                    any(line.startswith(prefix) for line in self.lines)
                    or not self._reader.is_alive()
                ),
                timeout=timeout,
            )
            found = next((line for line in self.lines if line.startswith(prefix)), None)
        assert ok and found is not None, f"no line {prefix!r} in:\n{self.stderr}"
        return found

    def send_signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self._out_reader.join(timeout=5)
        self._close_pipes()
        return code

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        self._out_reader.join(timeout=5)
        self._close_pipes()


@pytest.fixture
def run_cli(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Factory: start ``alpaca-md <args>`` in ``tmp_path`` with the given extra environment.

    A test that also takes the ``bus`` fixture (``tests/support.py``) runs once per bus: on the
    gateway bus the child gets no ``DAPR_*`` variable, as in an ops shell.
    """
    started: list[RunProcess] = []
    bus = request.getfixturevalue("bus") if "bus" in request.fixturenames else "dapr"

    def start(args: Sequence[str], env: Mapping[str, str] | None = None) -> RunProcess:
        full = bus_env(child_env(env or {}), bus)
        proc = RunProcess(args, env=full, cwd=tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def start_platform(stack: ExitStack, **feed_options: Any) -> EmbeddedPlatform:
    config = dict(feed_options=feed_options, reconnect_base_delay=0.2)
    return stack.enter_context(embedded_platform(**config))


@pytest.fixture(scope="module")
def platform() -> Iterator[EmbeddedPlatform]:
    """One embedded platform (with its Alpaca server) shared by a module's runs."""
    with ExitStack() as stack:
        yield start_platform(stack)


@pytest.fixture
def fresh_platform() -> Iterator[Any]:
    """Factory: a platform of its own, with Alpaca server options (``drop_after``...)."""
    with ExitStack() as stack:
        yield lambda **feed: start_platform(stack, **feed)


def _assert_nothing_left(platform: EmbeddedPlatform) -> None:
    assert [w.id for w in platform.workmanager.list_workers()] == []
    assert [c.id for c in platform.wsm.list()] == []


@pytest.fixture
def nothing_left() -> Any:
    """``nothing_left(platform)`` asserts no worker and no connection remain on the platform."""
    return _assert_nothing_left
