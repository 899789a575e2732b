"""The Alpaca feed in a child process, so its market does not share a GIL with the platform.

``dev up`` runs the WebSocketManager, the sidecar and the feed on one event loop; on a small
machine the feed's generation and encoding (most of that process's CPU at 10k msg/s) then
competes with the relay it feeds. :class:`FeedProcess` runs the same :class:`FeedServer` in a
Python child of its own instead and looks like the server to its owner (``url``, ``port``,
``start``/``stop``).

Protocol with the child (``python -m alpaca_cli.devstack.feed.process``):

* The child imports its server first, then waits for its configuration: so a child started
  early (:func:`spawn_child`, before the parent has imported its own heavy modules) boots on
  the other core meanwhile and only binds once its configuration comes.
* stdin, one JSON line: the :class:`FeedConfig` fields and the log level. The key and secret
  travel here rather than on the command line, where ``ps`` would show them.
* stdout, one JSON line once serving: ``{"url": ..., "port": ...}``, or ``{"error": ...,
  "type": "OSError" | "ValueError", "errno": ...}`` when it cannot start.
* after that, stdin staying open is the child's lifeline: end of file (the parent closed it, or
  died, which closes it too) stops the server cleanly and exits. On Linux the child also asks
  the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), in case a grandchild
  inherited the pipe. (That signal follows the parent *thread* that started the child: start
  it from a thread that outlives the feed, as the platform's loop thread does.) The child
  ignores SIGINT: Ctrl+C reaches the whole process group, and the parent decides when the
  feed stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from alpaca_cli.devstack.feed.config import FeedConfig
from alpaca_cli.devstack.logs import configure_level
from alpaca_cli.devstack.parent import stop_on_stdin_eof

__all__ = ["FeedProcess", "config_from_json", "config_to_json", "main", "spawn_child"]

log = logging.getLogger("alpaca_cli.devstack.feed")

START_TIMEOUT = 60.0
"""Seconds the child may take to import, bind and report (a loaded machine is slow)."""
STOP_TIMEOUT = 8.0
"""Seconds the child gets to close its connections after stdin closes, before SIGTERM."""


def config_to_json(config: FeedConfig, *, log_level: int = logging.WARNING) -> bytes:
    """One line for the child's stdin (contains the secret: never log it)."""
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        fields[f.name] = value
    return json.dumps({"config": fields, "log_level": log_level}).encode() + b"\n"


def config_from_json(line: bytes) -> tuple[FeedConfig, int]:
    """The inverse of :func:`config_to_json`.

    Raises:
        ValueError: not such a line, or a value :class:`FeedConfig` refuses.
    """
    doc = json.loads(line)
    fields = dict(doc["config"])
    if fields.get("replay") is not None:
        fields["replay"] = Path(fields["replay"])
    if "symbols" in fields:
        fields["symbols"] = tuple(fields["symbols"])
    return FeedConfig(**fields), int(doc.get("log_level", logging.WARNING))


class FeedProcess:
    """A :class:`~.server.FeedServer` in a child process; stands in for one.

    Example::

        feed = FeedProcess(FeedConfig(port=0, rate=10_000))
        await feed.start()
        ...  # connect to feed.url
        await feed.stop()

    Parameters:
        config: the server's configuration (validated here, before any child starts).
        log_level: the child's logging level (its records go to the inherited stderr).
    """

    def __init__(
        self,
        config: FeedConfig,
        *,
        log_level: int | None = None,
        child: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.config = config
        self.log_level = logging.getLogger().getEffectiveLevel() if log_level is None else log_level
        self._child = child
        """A child from :func:`spawn_child` not yet given its configuration (``start`` uses
        it instead of starting one)."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """``ws://host:port/v1beta3/crypto/us`` (after :meth:`start`)."""
        if self._url is None:
            raise RuntimeError("FeedProcess.url is known only after start()")
        return self._url

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("FeedProcess.port is known only after start()")
        return self._port

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Start the child (or take the one given) and wait until it serves.

        The child is a plain :class:`subprocess.Popen` whose two pipe operations (the config
        line out, the report line back) run in a worker thread: so a child started before
        the event loop existed (:func:`spawn_child`) is handled exactly like one started here.

        Raises:
            OSError: the address cannot be bound (errno as the child saw it), or the child
                died or did not report in :data:`START_TIMEOUT` seconds.
            ValueError: the configuration or the replay file is unusable.
        """
        proc, self._child = self._child or spawn_child(), None
        self._proc = proc
        try:
            line = await asyncio.wait_for(
                asyncio.to_thread(
                    _handshake, proc, config_to_json(self.config, log_level=self.log_level)
                ),
                START_TIMEOUT,
            )
            report = _parse_report(line)
        except BaseException:
            await self.stop()
            raise
        if "url" not in report:
            await self.stop()
            message = str(report.get("error", "the feed process failed to start"))
            if report.get("type") == "ValueError":
                raise ValueError(message)
            errno = report.get("errno")
            raise OSError(errno if isinstance(errno, int) else None, message)
        self._url, self._port = str(report["url"]), int(report["port"])
        log.info("feed process %d serving %s", proc.pid, self._url)

    async def stop(self) -> None:
        """Close the child's stdin (it closes every connection and exits); force it if slow.

        Idempotent; never leaves the child running (an unused pre-started one included).
        """
        proc, self._proc = self._proc or self._child, None
        self._child = None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        for action in (None, proc.terminate, proc.kill):
            if action is not None:
                with contextlib.suppress(ProcessLookupError):
                    action()
            try:
                await asyncio.to_thread(proc.wait, STOP_TIMEOUT if action is None else 3.0)
                break
            except subprocess.TimeoutExpired:
                continue
        if proc.stdout is not None:
            with contextlib.suppress(Exception):
                proc.stdout.close()
        log.info("feed process %d exited with %s", proc.pid, proc.returncode)

    async def __aenter__(self) -> FeedProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def spawn_child() -> subprocess.Popen[bytes]:
    """Start a feed child that imports its server and then waits for its configuration.

    ``dev up`` calls it first thing, so the child's interpreter start and imports (~0.15 s,
    the longest part of the platform's start) overlap the parent's own imports instead of
    following them; :class:`FeedProcess` then hands it its configuration. A child that never
    gets one exits when its stdin closes (the parent exited or stopped it).

    On Linux the child's death signal follows the *thread* that calls this: call it from one
    that outlives the feed (the main thread, or the platform's loop thread).
    """
    env = dict(os.environ)
    # The child must import this very alpaca_cli, whatever made it importable here.
    package_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "alpaca_cli.devstack.feed.process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )


def _handshake(proc: subprocess.Popen[bytes], config_line: bytes) -> bytes:
    """Give the child its configuration; its one-line report (``b""`` if it died first)."""
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(config_line)
        proc.stdin.flush()
    except (BrokenPipeError, ValueError):
        return b""
    return proc.stdout.readline()


def _parse_report(line: bytes) -> dict[str, Any]:
    if not line:
        raise OSError("the feed process exited before it served")
    try:
        report = json.loads(line)
    except ValueError:
        raise OSError(f"the feed process wrote {line[:80]!r} instead of its address") from None
    if not isinstance(report, dict):
        raise OSError("the feed process sent an unexpected start-up report")
    return report


# -- the child ----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies (stdin EOF is the main signal)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _report(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


async def _serve(config: FeedConfig, gc_threshold: tuple[int, int, int]) -> None:
    from alpaca_cli.devstack.feed.server import FeedServer  # loaded by main() already

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    server = FeedServer(config)
    try:
        await server.start()
    except OSError as exc:
        _report({"error": str(exc), "type": "OSError", "errno": exc.errno})
        return
    except ValueError as exc:  # ReplayError among them
        _report({"error": str(exc), "type": "ValueError"})
        return
    try:
        _report({"url": server.url, "port": server.port})
        gc.freeze()
        gc.set_threshold(*gc_threshold)
        stop_on_stdin_eof(loop, stop, name="feed-stdin")
        await stop.wait()
    finally:
        await server.stop()


def main() -> None:
    """Entry point of the child: read the config line, serve until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    # Collect rarely while the server's modules load (see alpaca_cli.startup, which this layer
    # may not import): ~15 % of the child's start; the usual threshold once it serves.
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 100_000), *threshold[1:])
    # Import the server before reading the configuration: a child started early
    # (spawn_child) does this while its parent is still busy.
    import alpaca_cli.devstack.feed.server  # noqa: F401

    line = sys.stdin.buffer.readline()
    if not line:
        return  # the parent closed stdin before configuring us: it no longer wants a feed
    try:
        config, level = config_from_json(line)
    except (ValueError, KeyError, TypeError) as exc:
        _report({"error": f"bad configuration: {exc}", "type": "ValueError"})
        return
    # Never frame dumps: this end receives the client's auth frame (key and secret).
    configure_level(level)
    asyncio.run(_serve(config, threshold))


if __name__ == "__main__":
    main()
