"""The flow of ``alpaca-md run``: watched live, torn down at the end whatever happens.

build -> deploy -> connect -> publish -> auth -> subscribe -> stream -> list -> teardown, each
step being the plain function of its own subcommand (reused, not re-implemented). The topic is
subscribed to before ``publish`` and publishing starts before ``auth``/``subscribe``, so Alpaca's
answers to both are seen on the topic: 402/406/409 fail fast (exit 4), 405/410 too (exit 5).

Whatever ends the run (``--duration``, Ctrl+C, SIGTERM, a failed step) teardown runs exactly once,
with a short reply timeout so that it fits in the ~7 s a CI runner leaves between SIGINT and
SIGKILL. A second Ctrl+C skips it and prints what is left for ``alpaca-md teardown``.

It lives here rather than in :mod:`alpaca_cli.steps.run` so that the command stays a thin
Typer wrapper (options -> :class:`RunOptions` -> :func:`execute` -> exit code). Only the standard
library is imported at import time; the platform clients, Rich and the step functions load when
the flow runs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

T = TypeVar("T")

__all__ = ["Outcome", "RunOptions", "execute"]

if TYPE_CHECKING:
    from alpaca_cli.errors import AlpacaMdError
    from alpaca_cli.live.stats import RunInfo, StreamStats
    from alpaca_cli.live.steps import StepRunner
    from alpaca_cli.runtime import Invocation, Runtime
    from alpaca_cli.signals import SignalGuard
    from alpaca_cli.state import State

EMBEDDED_WORKER_URL = "embedded://websocketmanagercontroller"
"""Code source the embedded WorkManager runs as its built-in controller port."""
TEARDOWN_TIMEOUT = 3.0
"""Reply timeout (and longest gateway call) during teardown."""
TEARDOWN_BUDGET = 6.0
"""Seconds all of teardown's gateway calls get together: it must fit in the ~7 s a CI runner
leaves between SIGINT and SIGKILL, even when the gateway accepts and never answers."""
CONNECT_RETRY_FOR = 100.0
"""Default seconds ``run`` retries a 406 at its first auth: longer than the ~90 s Alpaca holds a
previous (CI) job's dead socket's slot, so back-to-back jobs wait instead of failing."""
RETRY_MAX_DELAY = 10.0
"""Longest single wait between two first-auth retries."""
STATUS_TIMEOUT = 2.0
"""Longest gateway call of the header's status refresh: the stream loop waits for it."""


@dataclass(slots=True)
class RunOptions:
    """Everything ``run`` was asked to do (``None`` = not given, resolved by the config).

    ``invocation`` holds the options every command shares (config options, ``--json``,
    ``-v``); the rest are ``run``'s own.
    """

    invocation: Invocation = field(default_factory=lambda: _invocation())
    symbols: list[str] = field(default_factory=list)
    embedded: bool = False
    alpaca_url: str | None = None
    duration: float = 0.0
    min_frames: int = 0
    report: Path | None = None
    stall_limit: float = 30.0
    no_build: bool = False
    package: Path | None = None
    url: str | None = None
    replace: bool = False
    drop_after: float | None = None
    rate: float | None = None
    symbol_limit: int | None = None
    junit: Path | None = None
    """``--junit``: write JUnit XML here (one testcase per step and per smoke check)."""
    fail_on_stall: bool = False
    """``--fail-on-stall``: a stall beyond ``stall_limit`` fails the run (exit 7)."""
    connect_retry_for: float = CONNECT_RETRY_FOR
    """``--connect-retry-for``: seconds to keep retrying a 406 at the first auth; 0 = never."""

    @property
    def json(self) -> bool:
        return self.invocation.json

    @property
    def verbose(self) -> int:
        return self.invocation.verbose


def _invocation() -> Invocation:
    from alpaca_cli.runtime import Invocation

    return Invocation()


@dataclass(slots=True)
class Outcome:
    """How the run ended."""

    exit_code: int
    exit_reason: str
    report: dict[str, Any] | None = None


def _interactive() -> bool:
    """A live table only when both streams are terminals (CI logs get plain lines)."""
    if os.environ.get("TERM") == "dumb":
        return False
    return sys.stderr.isatty() and sys.stdout.isatty()


def _embedded_args(opts: RunOptions) -> list[str]:
    args: list[str] = []
    if opts.drop_after is not None:
        args += ["--drop-after", f"{opts.drop_after:g}"]
    if opts.rate is not None:
        args += ["--rate", f"{opts.rate:g}"]
    if opts.symbol_limit is not None:
        args += ["--symbol-limit", str(opts.symbol_limit)]
    if opts.verbose:
        args += ["-v"]
    return args


class _Run:
    """One run's moving parts; :meth:`execute` is the flow."""

    def __init__(self, opts: RunOptions, guard: SignalGuard) -> None:
        from alpaca_cli.live.stats import RunInfo, StreamStats
        from alpaca_cli.live.steps import StepRunner

        self.opts = opts
        self.guard = guard
        self.clock = time.monotonic
        self.stats: StreamStats = StreamStats(start=self.clock(), apply_books=False)
        self.info: RunInfo = RunInfo()
        self.interactive = _interactive()
        console = None
        if self.interactive:
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console
        self.steps: StepRunner = StepRunner(sys.stderr, self.clock, console=console)
        self.rt: Runtime | None = None
        self.embedded: Any = None
        self.stream: Any = None
        self.lifecycle: Any = None
        self.confirmed: dict[str, tuple[str, ...]] = {}
        self.torn_down = False
        self.prior_ids: set[str] = set()
        """What the state file named before this run: never ours to remove."""

    # -- helpers ----------------------------------------------------------------------------------

    def _check_stop(self) -> None:
        from alpaca_cli.signals import StopRequested

        if self.guard.stop.is_set():
            raise StopRequested(self.guard.reason or "interrupted")

    def _say(self, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    # -- the flow ---------------------------------------------------------------------------------

    def execute(self) -> Outcome:
        from alpaca_cli.errors import AlpacaMdError, ExitCode
        from alpaca_cli.signals import ForceQuit, StopRequested

        error: AlpacaMdError | None = None
        reason = "finished"
        forced = False
        try:
            reason = self._flow()
        except StopRequested:
            reason = self.guard.reason or "interrupted"
        except AlpacaMdError as exc:
            error = exc
        except ForceQuit:
            forced = True  # a second signal: no teardown, see force_quit()
            raise
        finally:
            if not forced:
                teardown_error = self._teardown()
                self._close()

        if self.guard.interrupted:
            # Whatever failed after Ctrl+C/SIGTERM failed because of it.
            code, reason = int(ExitCode.INTERRUPTED), self.guard.reason or "interrupted"
        elif error is not None:
            failed = next(reversed(self.steps.failed), None) if self.steps.failed else None
            where = f"{failed} failed" if failed else "failed"
            code, reason = int(error.exit_code), f"{where}: {error}"
        else:
            code = int(ExitCode.OK)
        if teardown_error is not None and code == 0:
            code = int(teardown_error.exit_code)
            reason = f"teardown incomplete: {teardown_error}"
        if code == 0 and self.opts.min_frames > 0:
            short = self.stats.short_of(self.opts.min_frames)
            if short:
                listed = ", ".join(f"{s}={n}" for s, n in short.items())
                code = int(ExitCode.SMOKE)
                reason = f"smoke check failed: fewer than {self.opts.min_frames} messages: {listed}"
        if code == 0 and self.opts.fail_on_stall and self.stats.stalls:
            code = int(ExitCode.SMOKE)
            reason = (
                f"stall check failed: the stream went silent for more than "
                f"{self.opts.stall_limit:g} s ({self.stats.stalls} times; --fail-on-stall)"
            )
        return Outcome(code, reason)

    def _flow(self) -> str:
        opts = self.opts
        environ: dict[str, str] | None = None
        overrides: dict[str, Any] = {}
        if opts.alpaca_url is not None:
            overrides["stream_url"] = opts.alpaca_url
        if opts.symbols:
            overrides["symbols"] = opts.symbols
        if opts.embedded:
            self._preflight(overrides)
            environ = self._start_embedded()
        if self.embedded is not None and opts.invocation.options.state is None:
            overrides["state"] = self.embedded.state_path
        # The guard's event: the first signal ends the reply waits of connect/auth/subscribe.
        self.rt = rt = opts.invocation.open(
            environ=environ, stop=self.guard.stop, runtime_class=_runtime_class(), **overrides
        )
        self.steps = self._rebind_steps(rt)
        before = rt.store.read()
        self.prior_ids = set(_named(before))
        self.info.gateway = rt.config.api_url
        self.info.topic = rt.config.topic

        self._require_keys()
        self._build()
        self._check_stop()
        self._deploy()
        self._check_stop()
        self._connect()
        self._check_stop()
        self._publish()
        self._check_stop()
        self._auth()
        self._check_stop()
        self._subscribe()
        self._check_stop()
        reason = self._stream()
        if not self.guard.stop.is_set():
            self._list()
        return reason

    def _preflight(self, overrides: dict[str, Any]) -> None:
        """Settings, symbols and channels (and, with ``--alpaca-url``, the keys) are checked
        before the embedded platform starts: a typo must cost a second, not a platform's
        start-up and shutdown. The platform supplies the rest (URLs, the local test keys)."""
        import dataclasses

        from alpaca_cli.config import load_config
        from alpaca_cli.errors import UsageError
        from alpaca_cli.steps.auth import missing_keys

        options = dataclasses.replace(self.opts.invocation.options, **overrides)
        config = load_config(options)
        if self.opts.alpaca_url is not None and (missing := missing_keys(config)):
            raise UsageError(
                f"{' and '.join(missing)} not set; --alpaca-url needs your own keys. "
                "Nothing was started.",
                hint="Export them (or put them in ./.env).",
            )

    def _require_keys(self) -> None:
        """Missing Alpaca keys fail before anything is created (``auth`` would fail later)."""
        from alpaca_cli.errors import UsageError
        from alpaca_cli.steps.auth import missing_keys

        assert self.rt is not None
        missing = missing_keys(self.rt.config)
        if missing:
            raise UsageError(
                f"{' and '.join(missing)} not set; nothing was deployed.",
                hint="Export them (or put them in ./.env), or try `alpaca-md run --embedded`, "
                "which needs no keys.",
            )

    def _rebind_steps(self, rt: Runtime) -> StepRunner:
        from alpaca_cli.live.steps import StepRunner

        steps = StepRunner(sys.stderr, self.clock, console=self.console, redact=rt.redactor)
        steps.timings.update(self.steps.timings)
        steps.failed.update(self.steps.failed)
        return steps

    def _start_embedded(self) -> dict[str, str]:
        from alpaca_cli.live.embedded import EmbeddedProcess

        self.embedded = EmbeddedProcess(_embedded_args(self.opts))
        with self.steps.step("platform", "starting the embedded platform") as step:
            env = self.embedded.start(timeout=60.0, should_stop=self.guard.stop.is_set)
            step.detail = f"gateway {env.get('VIRTUFIN_API_URL')}"
        if self.opts.alpaca_url:
            # Another Alpaca endpoint: the user's own keys, not the local server's test pair.
            env = {k: v for k, v in env.items() if not k.startswith("ALPACA_")}
        return {**os.environ, **env}

    def _build(self) -> None:
        opts = self.opts
        skip = None
        if opts.package is not None:
            skip = "--package given"
        elif opts.url is not None:
            skip = "--url given"  # its old spelling: the message tests and logs grep for
        elif opts.no_build:
            skip = "--no-build"
        elif opts.embedded:
            skip = "the embedded platform runs its built-in controller"
        if skip:
            self.steps.skip("build", skip)
            return
        from alpaca_cli.steps.build import build_worker

        assert self.rt is not None
        with self.steps.step("build", "building the controller worker") as step:
            result = build_worker(self.rt, project=opts.invocation.options.project)
            step.detail = result.package_path

    def _deploy(self) -> None:
        from alpaca_cli.steps.deploy import deploy_worker

        assert self.rt is not None
        opts = self.opts
        url = opts.url
        if url is None and opts.package is None and opts.embedded:
            url = EMBEDDED_WORKER_URL
        with self.steps.step("deploy", "deploying the controller worker") as step:
            result = deploy_worker(self.rt, package=opts.package, url=url, replace=opts.replace)
            self.info.worker_id = result.worker_id
            self.info.worker_status = "RUNNING"
            step.detail = f"worker {result.worker_id}"

    def _connect(self) -> None:
        from alpaca_cli.live.loop import LIFECYCLE_TOPIC
        from alpaca_cli.steps.connect import connect_stream

        rt = self.rt
        assert rt is not None
        with self.steps.step("connect", f"connecting to {rt.config.stream_url}") as step:
            # Lifecycle events first, so no reconnect of the new connection goes unseen.
            self.lifecycle = rt.subscription(LIFECYCLE_TOPIC)
            # No "hurry with auth" warning: run authenticates right after publish.
            result = connect_stream(rt, auto_reconnect=True, warn_deadline=False)
            self.info.connection_id = result.connection_id
            self.info.connection_status = "CONNECTED"
            step.detail = f"connection {result.connection_id}"

    def _publish(self) -> None:
        from alpaca_cli.steps.publish import start_publishing

        rt = self.rt
        assert rt is not None
        with self.steps.step("publish", f"publishing to topic {rt.config.topic}") as step:
            # Subscribed before publishing: the answers to auth and subscribe are on the topic.
            # The invocation's one stream on it: auth and subscribe wait on this same stream
            # (a second subscription of one app id would split the topic's messages with it,
            # or be refused, beside a real sidecar), and it replays what they consumed, so the
            # welcome, their answers and any early data still reach the stream loop.
            self.stream = rt.stream(rt.config.topic)
            self.stats.books = self.stream.books
            result = start_publishing(rt)
            step.detail = f"topic {result.topic}"

    def _auth(self) -> None:
        from alpaca_cli.steps.auth import authenticate

        assert self.rt is not None
        with self.steps.step("auth", "authenticating with Alpaca") as step:
            result = self._retrying_406(lambda: authenticate(self._rt()))
            step.detail = result.message

    def _rt(self) -> Runtime:
        assert self.rt is not None
        return self.rt

    def _retrying_406(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, retried while Alpaca answers 406 for up to ``--connect-retry-for`` s.

        Back-to-back CI jobs share a key, and Alpaca keeps the previous job's socket's slot for
        about 90 s: the first auth of the next job gets 406. Waiting (jittered exponential
        backoff, each wait printed) turns that into a slow start instead of a failed job.
        Alpaca closes the socket after a 406; the WSM reopens it (``connect`` asked for
        auto-reconnect), and the next auth goes to the new socket. Once a 406 was seen, a
        failed send (the socket being reopened) or a missing answer is retried too.
        """
        import random

        from alpaca_cli.alpaca.session import backoff_delays
        from alpaca_cli.errors import AlpacaAuthRefused, AlpacaMdError

        budget = self.opts.connect_retry_for
        if budget <= 0:
            return attempt()
        delays = backoff_delays(random.Random(), maximum=RETRY_MAX_DELAY, total=budget)
        started = self.clock()
        seen_406 = False
        error: AlpacaMdError
        while True:
            try:
                return attempt()
            except AlpacaAuthRefused as exc:
                if exc.code != 406:
                    raise
                seen_406, error = True, exc
            except AlpacaMdError as exc:
                if not seen_406:
                    raise
                error = exc
            delay = next(delays, None)
            if delay is None:
                raise error
            waited = self.clock() - started
            what = (
                "Alpaca answered 406 connection limit exceeded"
                if isinstance(error, AlpacaAuthRefused)
                else f"{error} (after a 406)"
            )
            self._say(
                f"… auth: {what}; trying again in {delay:.1f} s "
                f"({waited:.0f} of {budget:g} s of --connect-retry-for used)"
            )
            if self.guard.stop.wait(delay):
                self._check_stop()

    def _subscribe(self) -> None:
        from alpaca_cli.steps.subscribe import subscribe_symbols

        rt = self.rt
        assert rt is not None
        channels = rt.config.channels
        with self.steps.step("subscribe", f"subscribing to {', '.join(channels)}") as step:
            result = subscribe_symbols(rt)
            # The session re-subscribes to our channels only (the server answers with all).
            self.confirmed = {
                ch: tuple(result.confirmed.get(ch) or result.symbols) for ch in channels
            }
            self.stats.expect(dict.fromkeys(s for syms in self.confirmed.values() for s in syms))
            self.stats.channels = tuple(channels)
            shown = ", ".join(f"{c}: {' '.join(s)}" for c, s in result.confirmed.items() if s)
            step.detail = f"confirmed {shown or ' '.join(result.symbols)}"

    def _stream(self) -> str:
        from alpaca_cli.alpaca.session import ClientSession
        from alpaca_cli.alpaca.supervisor import KEEPALIVE, Supervisor
        from alpaca_cli.live.loop import Display, StreamLoop, Upstream

        rt = self.rt
        assert rt is not None and self.info.connection_id is not None
        config = rt.config
        key, secret = config.alpaca_key, config.alpaca_secret
        assert key is not None and secret is not None  # auth checked them

        controller = rt.controller()
        connection_id = self.info.connection_id

        def credentials() -> tuple[str, str]:
            return key.get_secret_value(), secret.get_secret_value()

        start = self.clock()
        deadline = start + self.opts.duration if self.opts.duration > 0 else None
        view = self._view()
        # Its start() (the loop calls it) marks the handshake of the auth/subscribe steps as
        # sent (no messages built). TODO(issue 12): keepalive=self.opts.keepalive once run has
        # --keepalive.
        supervisor = Supervisor(
            ClientSession(self.confirmed),
            connection_id,
            stall_limit=self.opts.stall_limit,
            keepalive=KEEPALIVE,
        )
        loop = StreamLoop(
            supervisor,
            Upstream(
                stream=self.stream,
                send=controller.send_raw,
                credentials=credentials,
                lifecycle=self.lifecycle,
                refresh_status=self._refresh_status,
            ),
            Display(stats=self.stats, info=self.info, view=view, warn=rt.warn),
            clock=self.clock,
            stop=self.guard.stop,
            deadline=deadline,
        )
        if not self.interactive:
            self._say(
                f"… stream: {len(self.stats.expected)} symbols on topic {config.topic}"
                + (f" for {self.opts.duration:g} s" if deadline else " until Ctrl+C")
            )
        try:
            with view:
                try:
                    reason = loop.run()
                finally:
                    view.tick(self.clock(), force=True)
        except BaseException:
            self.steps.timings["stream"] = self.clock() - start
            raise
        self.steps.timings["stream"] = elapsed = self.clock() - start
        self.info.phase = "stopping"
        self._say(
            f"✓ stream ({elapsed:.2f}s): {self.stats.data_messages} messages, "
            f"{self.stats.reconnects} reconnects, {self.stats.errors} errors ({reason})"
        )
        return reason

    def _view(self) -> Any:
        from alpaca_cli.live.plain import PlainSummary
        from alpaca_cli.live.table import LiveTable

        if self.console is not None:
            return LiveTable(self.stats, self.info, self.console)
        return _Plain(PlainSummary(self.stats, self.info, sys.stderr))

    def _refresh_status(self) -> None:
        assert self.rt is not None
        # Short: a gateway that stopped answering must not freeze the view (or Ctrl+C) for 35 s.
        gateway = self.rt.gateway().with_timeout(STATUS_TIMEOUT)
        workers = {w.id: w for w in gateway.list_workers()}
        worker = workers.get(self.info.worker_id or "")
        self.info.worker_status = worker.status if worker else "GONE"
        conns = {c.id: c for c in gateway.list_connections()}
        conn = conns.get(self.info.connection_id or "")
        self.info.connection_status = conn.status if conn else "GONE"

    def _list(self) -> None:
        from alpaca_cli.steps.listing import list_platform

        assert self.rt is not None
        with self.steps.step("list", "listing workers and connections") as step:
            result = list_platform(self.rt, via="gateway")
            worker = next((w for w in result.workers if w.id == self.info.worker_id), None)
            conn = next((c for c in result.connections if c.id == self.info.connection_id), None)
            self.info.worker_status = worker.status if worker else "GONE"
            self.info.connection_status = conn.status if conn else "GONE"
            step.detail = (
                f"worker {self.info.worker_id} {self.info.worker_status}, "
                f"connection {self.info.connection_id} {self.info.connection_status} "
                f"({len(result.workers)} workers, {len(result.connections)} connections)"
            )

    # -- the end ----------------------------------------------------------------------------------

    def _teardown(self) -> AlpacaMdError | None:
        """Teardown exactly once, time-bounded; returns its first failure, if any."""

        from alpaca_cli.errors import AlpacaMdError

        if self.torn_down or self.rt is None:
            return None
        self.torn_down = True
        rt = self.rt
        if self.stream is not None:
            self.stream.close()
        try:
            state = rt.store.read()
        except AlpacaMdError as exc:
            self._say(f"Cannot read the state file for teardown: {exc}")
            return exc
        named = set(_named(state))
        if not named:
            return None
        if named <= self.prior_ids:
            # Only what was there before this run (e.g. deploy refused to replace it).
            self._say(
                f"- teardown skipped: this run created nothing; {', '.join(sorted(named))} "
                f"from before it stay (`alpaca-md teardown` removes them)"
            )
            return None
        from alpaca_cli.steps.teardown import teardown

        rt.bound_waits(TEARDOWN_TIMEOUT, TEARDOWN_BUDGET)
        # Teardown's own waits must not end at once because a signal started it: they are
        # bounded by the short timeout instead (a second signal still skips them).
        rt.rearm_stop()
        self.info.phase = "teardown"
        try:
            with self.steps.step("teardown", "removing the connection and the worker") as step:
                result = teardown(rt)
                removed = [
                    x
                    for x in (
                        f"connection {result.disconnected}" if result.disconnected else None,
                        f"worker {result.worker_removed}" if result.worker_removed else None,
                    )
                    if x
                ]
                step.detail = "removed " + (", ".join(removed) or "nothing")
                if result.already_gone:
                    step.detail += f"; already gone: {', '.join(result.already_gone)}"
                if not result.complete:
                    raise (
                        result.failures[0]
                        if result.failures
                        else AlpacaMdError(f"left: {', '.join(result.left)}")
                    )
        except AlpacaMdError as exc:
            self._say(
                f"Teardown incomplete; the state file {rt.store.path} keeps the ids: run "
                "`alpaca-md teardown` once the platform answers."
            )
            return exc
        return None

    def _close(self) -> None:
        rt, self.rt = self.rt, None
        if rt is not None:
            rt.close()
        embedded, self.embedded = self.embedded, None
        if embedded is not None:
            embedded.stop()
            embedded.cleanup()

    def force_quit(self) -> None:
        """Second Ctrl+C: no teardown; say what is left and how to remove it."""
        left: list[str] = []
        path: Path | None = None
        if self.rt is not None:
            path = self.rt.store.path
            try:
                state = self.rt.store.read()
            except Exception:
                state = None
            left = _named(state)
        if not left:
            left += [f"worker {self.info.worker_id}"] if self.info.worker_id else []
            left += [f"connection {self.info.connection_id}"] if self.info.connection_id else []
        self.torn_down = True
        embedded, self.embedded = self.embedded, None
        if embedded is not None:
            # The platform lives only as long as this run: it takes everything with it.
            what = ", ".join(left) if left else "nothing"
            self._say(f"Skipped cleanup; the embedded platform stops with run ({what} go with it).")
            embedded.stop(timeout=1.0)
            embedded.cleanup()
            return
        state_flag = f" --state {path}" if path is not None else ""
        if left:
            self._say(
                f"Skipped cleanup. Left on the platform: {', '.join(left)}. "
                f"Run `alpaca-md teardown{state_flag}` to remove them."
            )
        else:
            self._say("Skipped cleanup; nothing had been created on the platform.")


def _named(state: State | None) -> list[str]:
    """What a state file names (``worker <id>``, ``connection <id>``): the words of every
    message about what this run created, found, or left behind."""
    if state is None:
        return []
    named = [f"worker {state.worker.id}"] if state.worker else []
    return named + ([f"connection {state.connection.id}"] if state.connection else [])


def _runtime_class() -> type[Runtime]:
    """A Runtime whose step chatter is ``-v`` only: ``run`` shows one ✓/✗ line per step."""
    from alpaca_cli.runtime import Runtime

    class RunRuntime(Runtime):
        def progress(self, message: str) -> None:
            self.log(message)

    return RunRuntime


class _Plain:
    """:class:`PlainSummary` with the context-manager shape of the live table."""

    def __init__(self, summary: Any) -> None:
        self._summary = summary

    def __enter__(self) -> _Plain:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def tick(self, now: float, *, force: bool = False) -> None:
        self._summary.tick(now, force=force)


def _write_summaries(opts: RunOptions, run: _Run, report: dict[str, Any], outcome: Outcome) -> None:
    """The end-of-run summary on stderr, ``--junit`` and ``GITHUB_STEP_SUMMARY``.

    A file that cannot be written is one ``Error:`` line and exit 2 (when the run had passed):
    the CI job asked for it and would otherwise read a stale or missing file as a result.
    """
    from alpaca_cli.errors import ExitCode
    from alpaca_cli.live.summary import junit_xml, markdown, summary_lines

    if run.stats.streaming_start is not None or report["symbols"]:
        for line in summary_lines(report):
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
    writes: list[tuple[str, Path, str, str]] = []
    if opts.junit is not None:
        xml = junit_xml(report, failed_steps=run.steps.failed, min_frames=opts.min_frames)
        writes.append(("--junit", opts.junit, xml, "w"))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        writes.append(("GITHUB_STEP_SUMMARY", Path(step_summary), markdown(report), "a"))
    for what, path, text, mode in writes:
        try:
            if mode == "w":
                from alpaca_cli.live.report import write_text

                write_text(path, text)
            else:
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(text)
        except OSError as exc:
            sys.stderr.write(f"Error: cannot write {what} {path}: {exc.strerror}\n")
            if outcome.exit_code == 0:
                outcome.exit_code = int(ExitCode.USAGE)
                outcome.exit_reason = f"cannot write {what} {path}"


def execute(opts: RunOptions) -> Outcome:
    """Run the whole flow with signal handling; never raises our errors (see the outcome).

    Writes the ``--report`` file and, with ``--json``, the report to stdout.
    """
    from alpaca_cli.errors import ExitCode
    from alpaca_cli.live.report import build_report, write_report
    from alpaca_cli.signals import ForceQuit, SignalGuard

    with SignalGuard() as guard:
        run = _Run(opts, guard)
        try:
            outcome = run.execute()
        except ForceQuit:
            run.force_quit()
            outcome = Outcome(int(ExitCode.INTERRUPTED), "interrupted twice: cleanup skipped")
    report = build_report(
        run.stats,
        now=run.clock(),
        steps=run.steps.timings,
        exit_reason=outcome.exit_reason,
        exit_code=outcome.exit_code,
    )
    outcome.report = report
    _write_summaries(opts, run, report, outcome)
    if opts.report is not None:
        try:
            write_report(opts.report, report)
        except OSError as exc:
            sys.stderr.write(f"Error: cannot write the report {opts.report}: {exc.strerror}\n")
            if outcome.exit_code == 0:
                outcome.exit_code = int(ExitCode.USAGE)
    if opts.json:
        from alpaca_cli.output import write_json

        write_json(report)
    return outcome
