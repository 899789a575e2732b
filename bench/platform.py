"""The embedded platform as a user runs it, for the end-to-end and memory benchmarks.

``alpaca-md dev up`` runs in its own process (all ports 0, ``--write-env``), and every step
of the pipeline is the real CLI in a subprocess against it: deploy, connect, publish, auth,
subscribe, then ``tail``. Nothing here reaches into the platform's objects, so what is measured
is what an operator gets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alpaca_cli.live.embedded import dev_up_command, read_env_file

__all__ = [
    "BUSES",
    "CONTROLLER_URL",
    "PROFILE_ENV",
    "Bus",
    "CliError",
    "DevUp",
    "PeakRss",
    "alpaca_md",
    "bus_named",
    "dev_up",
    "profiled",
    "reap",
    "vm_hwm_kb",
]

CONTROLLER_URL = "embedded://websocketmanagercontroller"
"""Code-source URL the embedded WorkManager runs as the built-in controller."""

CHANNELS: tuple[str, ...] = ("trades", "quotes", "orderbooks")
"""What the benchmark subscribes to, each with ``*``: the busy-feed case of issue 6."""


class CliError(RuntimeError):
    """An ``alpaca-md`` step failed; carries its exit code and the end of its stderr."""


PROFILE_ENV = "BENCH_PROFILE_DIR"
"""When set, ``dev up`` and ``tail`` run under cProfile and leave ``.prof`` files there."""


def profiled(name: str, rate: float | None) -> list[str]:
    """The command prefix that runs ``alpaca-md``, under cProfile when :data:`PROFILE_ENV` is set.

    Profiles are written when the process exits normally (``dev up`` on stdin EOF, ``tail``
    on SIGINT both do), e.g. ``dev-up-10000.prof``; read them with ``python -m pstats``.
    """
    directory = os.environ.get(PROFILE_ENV)
    if not directory:
        return [alpaca_md()]
    out = Path(directory) / f"{name}-{int(rate or 0)}.prof"
    return [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "alpaca_cli"]


def alpaca_md() -> str:
    """The console script of the venv running the benchmark."""
    return str(Path(sys.executable).parent / "alpaca-md")


@dataclass
class DevUp:
    """A running ``alpaca-md dev up``: its process, its environment, a scratch state file."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    workdir: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def cli_env(self) -> dict[str, str]:
        """os.environ + the platform's variables + a private state file."""
        return {
            **os.environ,
            **self.env,
            "ALPACA_MD_STATE": str(self.workdir / "state.json"),
            "NO_COLOR": "1",
        }

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run one ``alpaca-md`` step; raise :class:`CliError` when it fails."""
        t0 = time.perf_counter()
        proc = subprocess.run(
            [alpaca_md(), *args],
            env=self.cli_env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.timings[args[0] if args[0] != "--json" else args[1]] = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-4:])
            raise CliError(f"alpaca-md {' '.join(args)} exited {proc.returncode}: {tail}")
        return proc

    def stream(self, channels: Sequence[str] = CHANNELS) -> None:
        """deploy -> connect -> publish -> auth -> subscribe ``*`` on ``channels``."""
        self.cli("deploy", "--url", CONTROLLER_URL)
        self.cli("connect")
        self.cli("publish")
        self.cli("auth")
        for channel in channels:
            self.cli("subscribe", "--channel", channel, "*")

    def stream_on(self, bus: Bus, channels: Sequence[str] = CHANNELS) -> None:
        """Set the pipeline up for ``bus``: what :meth:`stream` does for the Dapr sidecar."""
        bus.setup(self, channels)

    def teardown(self) -> None:
        with contextlib.suppress(CliError, subprocess.TimeoutExpired):
            self.cli("teardown", timeout=20)


@dataclass(frozen=True)
class Bus:
    """One way from the WebSocketManager to ``tail``: how the end-to-end benchmark wires it.

    The e2e benchmark takes a bus by name (``--bus``), so a second transport can be measured
    with the same ladder, analysis and results shape; only its set-up and the ``tail`` options
    differ. Register it in :data:`BUSES` once the CLI speaks it.
    """

    name: str
    path: str
    """The pipeline from the WebSocketManager on, as results.json states it."""
    setup: Callable[[DevUp, Sequence[str]], None]
    """deploy ... subscribe on a fresh ``dev up``."""
    tail_args: tuple[str, ...] = ()
    """Extra ``tail`` options that select this bus."""


def _dapr_setup(up: DevUp, channels: Sequence[str]) -> None:
    up.stream(channels)


BUSES: dict[str, Bus] = {
    "dapr": Bus(
        "dapr",
        "WSM -> Dapr sidecar (gRPC streaming subscription) -> alpaca-md tail --output json (pipe)",
        _dapr_setup,
    ),
    "gateway": Bus(
        "gateway",
        "WSM -> broker -> gateway gRPC virtufin.Pubsub Subscribe (reflected "
        "CloudEvents) -> alpaca-md tail --bus gateway --output json (pipe)",
        _dapr_setup,
        tail_args=("--bus", "gateway"),
    ),
}
"""Buses the benchmark can measure: the set-up steps are the same, only ``tail``'s
subscription differs (a Dapr streaming subscription, or the gateway's gRPC broadcast)."""


def bus_named(name: str) -> Bus:
    """The registered bus ``name``.

    Raises:
        ValueError: no such bus (the message lists the known ones).
    """
    try:
        return BUSES[name]
    except KeyError:
        raise ValueError(f"unknown bus {name!r}; known: {', '.join(sorted(BUSES))}") from None


@contextlib.contextmanager
def dev_up(
    *, rate: float | None = None, extra: Sequence[str] = (), ready_timeout: float = 40.0
) -> Iterator[DevUp]:
    """Start ``alpaca-md dev up`` on free ports, yield it once ready, stop it on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-devup-") as tmp:
        workdir = Path(tmp)
        env_file = workdir / "devstack.env"
        argv = dev_up_command(
            env_file,
            [*(["--rate", str(rate)] if rate is not None else []), *extra],
            program=profiled("dev-up", rate),
        )
        log = (workdir / "dev-up.log").open("wb")
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
        try:
            deadline = time.monotonic() + ready_timeout
            while (env := read_env_file(env_file)) is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    text = (workdir / "dev-up.log").read_text(errors="replace")[-600:]
                    raise CliError(f"alpaca-md dev up did not become ready: {text}")
                time.sleep(0.05)
            up = DevUp(proc, env, workdir)
            try:
                yield up
            finally:
                up.teardown()
        finally:
            _stop(proc)
            log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def vm_hwm_kb(pid: int) -> int | None:
    """The process's own peak RSS (``VmHWM`` in /proc/<pid>/status), KiB; None once it is gone.

    Not ``ru_maxrss``: Linux folds the pre-``exec`` address space into it, and subprocess
    starts children with vfork, so every child would report at least the benchmark's own size.
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """``(parent pid, user+system CPU seconds)`` of a live process, from ``/proc/<pid>/stat``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _label(pid: int) -> str:
    """A short name for a process of the pipeline: ``tail``, ``dev up``, ``feed``..."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return str(pid)
    words = [Path(a).name for a in argv[1:] if not a.startswith("-")][:3]
    if not argv:
        return str(pid)
    return " ".join(words) or Path(argv[0]).name


def cpu_seconds(roots: Sequence[int]) -> dict[str, float]:
    """CPU seconds so far of ``roots`` and all their descendants, by :func:`_label`.

    Sampled at both ends of a measured window, the difference says which process of the
    pipeline spends the machine's cores (the profile behind a rate the ladder cannot pass).
    """
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _proc_stat(int(entry))) is not None:
            stats[int(entry)] = st
    wanted, frontier = set(roots), list(roots)
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in stats.items():
            if ppid == parent and pid not in wanted:
                wanted.add(pid)
                frontier.append(pid)
    out: dict[str, float] = {}
    for pid in sorted(wanted):
        if pid in stats:
            name = "bench (this process)" if pid == os.getpid() else _label(pid)
            out[name] = out.get(name, 0.0) + stats[pid][1]
    return out


class PeakRss:
    """Samples a process's ``VmHWM`` in a thread until stopped; :attr:`kb` is the last seen.

    ``VmHWM`` only grows, so the last sample before the process exits is its peak (give or
    take what it allocates in its final ``interval``).
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.kb: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(interval)

    def sample(self) -> int | None:
        kb = vm_hwm_kb(self.pid)
        if kb is not None and (self.kb is None or kb > self.kb):
            self.kb = kb
        return self.kb

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join(timeout=2)
        return self.kb


def reap(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Wait for ``proc`` (killing it after ``timeout``); returns its exit code."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def env_with(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """``base`` plus ``extra`` (helper for subprocess environments)."""
    return {**base, **extra}
