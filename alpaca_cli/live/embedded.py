"""``run --embedded``: the embedded platform as a child process, for the length of the run.

Why a child process and not a thread: the platform then has its own interpreter (its event loop
never competes with the live table for the GIL), and ``run`` talks to it through exactly the same
environment variables and clients as to a real platform.

The child runs ``alpaca-md dev up`` with every port 0 and ``--write-env PATH``; it writes PATH
once everything serves, and we read the environment from there. It gets its own session
(``start_new_session=True``) so the terminal's Ctrl+C reaches only ``run``, which still needs the
platform for teardown. ``--exit-with-stdin`` makes it exit when our end of its stdin closes, so it
cannot outlive ``run`` even when ``run`` is killed, and its temporary directory is removed by
the next ``run --embedded`` (:func:`reclaim_stale_dirs`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from alpaca_cli.closing import Closing
from alpaca_cli.errors import PlatformUnreachable

__all__ = [
    "REQUIRED_KEYS",
    "EmbeddedProcess",
    "dev_up_command",
    "parse_env",
    "read_env_file",
    "reclaim_stale_dirs",
]

REQUIRED_KEYS = ("VIRTUFIN_API_URL", "VIRTUFIN_API_GRPC_PORT", "DAPR_GRPC_PORT", "DAPR_HTTP_PORT")
"""The env file is complete when these are in it."""


def parse_env(text: str) -> dict[str, str]:
    """``KEY=value`` lines (blank lines and ``#`` comments skipped, optional ``export``)."""
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def read_env_file(path: Path) -> dict[str, str] | None:
    """The environment ``dev up --write-env`` wrote, or ``None`` while it is missing or partial."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    env = parse_env(text)
    return env if all(key in env for key in REQUIRED_KEYS) else None


def dev_up_command(
    env_file: Path, extra: Sequence[str] = (), *, program: Sequence[str] = ()
) -> list[str]:
    """The child's command line: ``alpaca-md dev up`` on free ports, writing ``env_file``.

    ``program`` replaces the default ``python -m alpaca_cli`` (the benchmarks run it under
    cProfile).
    """
    return [
        *(program or (sys.executable, "-m", "alpaca_cli")),
        "dev",
        "up",
        "--gateway-port",
        "0",
        "--gateway-grpc-port",
        "0",
        "--dapr-http-port",
        "0",
        "--dapr-grpc-port",
        "0",
        "--feed-port",
        "0",
        "--write-env",
        str(env_file),
        "--exit-with-stdin",
        *extra,
    ]


STOP_CHECK = 0.1
"""Seconds between looks at ``should_stop`` while the platform starts (readiness itself wakes
the wait at once)."""

DIR_PREFIX = "alpaca-md-embedded-"
OWNER_LOCK = "owner.lock"
"""Held (``flock``) by the ``run`` that made the directory, for as long as it lives."""


def _hold(path: Path) -> int | None:
    """Open and lock ``path``; the kernel releases the lock when this process dies, however
    it dies (SIGKILL included). Not inherited by children (``O_CLOEXEC``)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def reclaim_stale_dirs(base: Path | None = None) -> list[Path]:
    """Remove the temporary directories of ``run --embedded`` processes that are gone.

    Why: a SIGKILLed ``run`` cannot clean up, and its directory (with the platform's test
    credentials) would stay for good (issue 11, hole 21). Each directory holds an owner lock
    its ``run`` keeps for its whole life; one whose lock can be taken has no owner, so the next
    ``run --embedded`` removes it. Directories without the lock file (older alpaca-md) are
    left alone. Returns what was removed.
    """
    root = base if base is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(DIR_PREFIX) and p.is_dir()]
    except OSError:
        return removed
    for directory in candidates:
        lock = directory / OWNER_LOCK
        if not lock.exists():
            continue
        fd = _hold(lock)
        if fd is None:
            continue  # its run is alive
        try:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
        finally:
            os.close(fd)
    return removed


class EmbeddedProcess(Closing):
    """Start, wait for, and stop ``alpaca-md dev up`` as a child process.

    Example::

        with EmbeddedProcess(["--drop-after", "3"]) as platform:
            env = platform.start(timeout=30)     # VIRTUFIN_API_URL, DAPR_GRPC_PORT, ...
            ...
        # the child is gone here

    ``log_path`` holds the child's stderr (shown in the error when it fails to start).
    """

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._extra = list(extra_args)
        self._sleep = sleep
        self._clock = clock
        reclaim_stale_dirs()
        self._dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        self._owner = _hold(self._dir / OWNER_LOCK)
        self.env_path = self._dir / "platform.env"
        self.log_path = self._dir / "platform.log"
        self.state_path = self._dir / "state.json"
        """A state file for runs against this platform: it dies with the platform, so a user's
        own state file (naming workers on a real platform) is never touched."""
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self._stdout_open = False

    def start(
        self, *, timeout: float = 30.0, should_stop: Callable[[], bool] = bool
    ) -> dict[str, str]:
        """:meth:`launch` the child and :meth:`wait_ready`."""
        self.launch()
        return self.wait_ready(timeout=timeout, should_stop=should_stop)

    def launch(self) -> None:
        """Start the child; it becomes ready in the background (see :meth:`wait_ready`).

        Why apart from the wait: ``run`` starts the child first and only then its own import
        prewarm, so the child's start is not queued behind that thread for the GIL.
        """
        command = dev_up_command(self.env_path, self._extra)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                # Its export lines, printed right after the env file is written: the readiness
                # event we wait on (EOF, should it exit first).
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._stdout_open = True

    def wait_ready(
        self, *, timeout: float = 30.0, should_stop: Callable[[], bool] = bool
    ) -> dict[str, str]:
        """Wait until the child's environment file is complete, and return it.

        The wait wakes when the child writes its first stdout line (``dev up`` writes the env
        file, then prints) or exits, not on a timer; ``should_stop`` (a Ctrl+C during start-up)
        is looked at every :data:`STOP_CHECK` seconds meanwhile.

        Raises:
            PlatformUnreachable: the child exited, or wrote nothing within ``timeout``.
        """
        if self.process is None:
            raise RuntimeError("EmbeddedProcess.wait_ready() before launch()")
        deadline = self._clock() + timeout
        while True:
            env = read_env_file(self.env_path)
            if env is not None:
                self.env = env
                return env
            code = self.process.poll()
            if code is not None:
                raise PlatformUnreachable(
                    f"the embedded platform exited with code {code} before it was ready"
                    f"{self._log_tail()}",
                    url="embedded",
                    hint="Run `alpaca-md dev up` by hand to see why.",
                )
            remaining = deadline - self._clock()
            if remaining < 0:
                raise PlatformUnreachable(
                    f"the embedded platform was not ready within {timeout:.0f} s{self._log_tail()}",
                    url="embedded",
                    hint="The machine may be overloaded; try again, or run `alpaca-md dev up`.",
                )
            if should_stop():
                raise PlatformUnreachable(
                    "interrupted while the embedded platform started", url="embedded"
                )
            self._await_child(min(STOP_CHECK, max(remaining, 0.0)))

    def _await_child(self, seconds: float) -> None:
        """Block until the child prints or closes its stdout, at most ``seconds``.

        What it printed is read and dropped (a few export lines). After EOF (the child is
        exiting) there is nothing left to wait on but its exit code: a short sleep.
        """
        stdout = self.process.stdout if self.process is not None else None
        if stdout is None or not self._stdout_open:
            self._sleep(min(seconds, 0.01))
            return
        readable, _, _ = select.select([stdout], [], [], seconds)
        if readable and not os.read(stdout.fileno(), 65536):
            self._stdout_open = False

    def _log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return ""
        tail = text.splitlines()[-lines:]
        return (":\n  " + "\n  ".join(tail)) if tail else ""

    def stop(self, timeout: float = 5.0) -> int | None:
        """Close the child's stdin (it exits), then SIGTERM, then SIGKILL; returns its code."""
        process, self.process = self.process, None
        if process is None:
            return None
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            try:
                return process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.terminate()
            try:
                return process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                return process.wait()
        finally:
            self._stdout_open = False
            with contextlib.suppress(OSError):
                if process.stdout is not None:
                    process.stdout.close()

    def cleanup(self) -> None:
        """Remove the temporary directory (the env file holds test credentials)."""
        shutil.rmtree(self._dir, ignore_errors=True)
        owner, self._owner = self._owner, None
        if owner is not None:
            with contextlib.suppress(OSError):
                os.close(owner)

    def close(self) -> None:
        """:meth:`stop`, then :meth:`cleanup` (what leaving ``with`` does)."""
        self.stop()
        self.cleanup()
