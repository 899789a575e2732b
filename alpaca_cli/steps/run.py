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
PUBLISH_WAIT = 5.0
"""Seconds a new connection may take to show ``CONNECTED`` before ``publish`` is sent again."""


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
    platform_knobs: dict[str, float | int | str | bool] = field(default_factory=dict)
    """``dev up`` flags of the newer platform's behaviours (``--connection-record-ttl``...)
    passed to the embedded child as given; ``True`` is a bare flag."""
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
    given: dict[str, float | int | str | bool | None] = {"--drop-after": opts.drop_after}
    given |= {"--rate": opts.rate, "--symbol-limit": opts.symbol_limit, **opts.platform_knobs}
    for flag, value in given.items():
        if value is None:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, float):
            args += [flag, f"{value:g}"]
        else:
            args += [flag, str(value)]
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
        self.created_worker: str | None = None
        """The worker this run created, known in memory from the moment it exists: the run owns
        it whatever happens to the state file (lost, rewritten by another invocation)."""
        self.created_connection: str | None = None
        """The connection this run opened (see :attr:`created_worker`)."""
        self.vanished: list[str] = []
        """What this run created and found gone at teardown (removed from elsewhere)."""
        self.bus_name: str | None = None
        self.bus_gaps = 0
        """Outages of the gateway bus's streams (published meanwhile = lost): in the report."""
        self.connections_opened = 0
        """New connections opened in place of ones whose reconnects ran out."""
        self.retired: list[str] = []
        """Connections replaced during the stream that could not be closed then: teardown
        closes them (the state file names only the newest)."""

    # -- helpers ----------------------------------------------------------------------------------

    def _check_stop(self) -> None:
        from alpaca_cli.signals import StopRequested

        if self.guard.stop.is_set():
            raise StopRequested(self.guard.reason or "interrupted")

    def _say(self, text: str) -> None:
        """A line on stderr, secrets masked; a closed stderr never stops the teardown."""
        try:
            sys.stderr.write(self.opts.invocation.redactor(text) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def _text(self, error: BaseException) -> str:
        """An error as the final line and the report say it: one line, secrets masked (a
        gateway error body may echo the key)."""
        from alpaca_cli.redact import error_text

        return error_text(error, self.opts.invocation.redactor)

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
            code, reason = int(error.exit_code), f"{where}: {self._text(error)}"
        else:
            code = int(ExitCode.OK)
        if teardown_error is not None and code == 0:
            code = int(teardown_error.exit_code)
            reason = f"teardown incomplete: {self._text(teardown_error)}"
        if self.vanished and code == 0:
            # The run's own objects were removed under it: its data stopped, whatever the
            # duration said (issue 11, hole 11).
            code = int(ExitCode.REFUSED)
            reason = (
                f"{' and '.join(self.vanished)} vanished during the run (removed from elsewhere?)"
            )
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
        self.info.gateway = rt.config.api_url
        self.info.topic = rt.config.topic

        self._require_keys()
        self._check_health()
        for step in (
            self._build,
            self._deploy,
            self._connect,
            self._publish,
            self._auth,
            self._subscribe,
        ):
            step()
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

    def _check_health(self) -> None:
        """Warn (never fail) when the gateway's ``/health`` is Unhealthy only for lack of API
        keys: a production gateway's readiness says so while it serves every call.

        Any other answer is left to the steps: a gateway that does not serve fails ``deploy``
        with the precise error, and one that serves while a probe is flaky should not stop the
        run.
        """
        from alpaca_cli.errors import AlpacaMdError

        assert self.rt is not None
        try:
            health = self.rt.gateway().with_timeout(STATUS_TIMEOUT).check_health()
        except AlpacaMdError as exc:
            self.rt.log(f"gateway /health: {exc}")
            return
        if health.warning:
            self.rt.warn(health.warning)

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
            self.embedded.launch()
            # After the launch: the child's start must not queue behind this thread's imports.
            _prewarm()
            env = self.embedded.wait_ready(timeout=60.0, should_stop=self.guard.stop.is_set)
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
            skip = "--package-url given"
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
            result = deploy_worker(
                self.rt,
                package=opts.package,
                url=url,
                replace=opts.replace,
                on_created=self._owns_worker,
            )
            self.info.worker_id = result.worker_id
            self.info.worker_status = "RUNNING"
            step.detail = f"worker {result.worker_id}"

    def _owns_worker(self, worker_id: str) -> None:
        self.created_worker = worker_id
        self.info.worker_id = worker_id

    def _owns_connection(self, connection_id: str) -> None:
        self.created_connection = connection_id
        self.info.connection_id = connection_id

    def _connect(self) -> None:
        from alpaca_cli.live.loop import LIFECYCLE_TOPIC
        from alpaca_cli.steps.connect import connect_stream

        rt = self._rt()
        with self.steps.step("connect", f"connecting to {rt.config.stream_url}") as step:
            # Lifecycle events first, so no reconnect of the new connection goes unseen.
            self.lifecycle = rt.subscription(LIFECYCLE_TOPIC)
            # No "hurry with auth" warning: run authenticates right after publish.
            result = connect_stream(
                rt, auto_reconnect=True, warn_deadline=False, on_created=self._owns_connection
            )
            self.info.connection_id = result.connection_id
            self.info.connection_status = "CONNECTED"
            step.detail = f"connection {result.connection_id}"

    def _publish(self) -> None:
        from alpaca_cli.steps.publish import start_publishing

        rt = self._rt()
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

        rt = self._rt()
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
        from alpaca_cli.alpaca.supervisor import Supervisor
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
        # sent (no messages built). The keepalive (--keepalive, default 60 s) keeps the WSM's
        # connection record alive (its TTL is refreshed only by a send); reopen: a connection
        # whose reconnects ran out is replaced by a new one (_open_connection).
        supervisor = Supervisor(
            ClientSession(self.confirmed),
            connection_id,
            stall_limit=self.opts.stall_limit,
            keepalive=config.keepalive,
            reopen=True,
        )
        loop = StreamLoop(
            supervisor,
            Upstream(
                stream=self.stream,
                send=controller.send_raw,
                credentials=credentials,
                lifecycle=self.lifecycle,
                open_connection=self._open_connection,
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

    def _open_connection(self, old_id: str) -> str:
        """Replace ``old_id``, whose reconnects ran out (terminal ``DISCONNECTED``), with a new
        connection publishing to the same topic; returns its id.

        The same steps as the run's own ``connect`` and ``publish`` (so the state file names the
        new connection in place of the old one, with the same tags and create rules); the old
        one is closed first, and remembered for teardown if that fails, so that no connection of
        this run outlives it. The supervisor then handshakes the new socket (auth and the
        confirmed subscriptions) and marks the books stale.

        Raises:
            AlpacaMdError: the new connection could not be opened or published (the supervisor
                tries again a few seconds later).
        """
        from alpaca_cli.errors import CommandRefused
        from alpaca_cli.steps.connect import connect_stream

        rt = self._rt()
        worker = self.created_worker
        if worker is not None:
            # Without its controller worker a create can only time out (twice: the dropped-
            # command look-up), holding the loop past --duration; a worker removed from
            # elsewhere ends here at once (teardown then says what vanished).
            workers = rt.gateway().with_timeout(STATUS_TIMEOUT).list_workers()
            if not any(w.id == worker for w in workers):
                raise CommandRefused(
                    f"worker {worker} is gone: no controller to open a new connection with"
                )
        self._retire(old_id)
        result = connect_stream(rt, auto_reconnect=True, warn_deadline=False)
        self.info.connection_id = result.connection_id
        self._publish_new(result.connection_id)
        self.connections_opened += 1
        return result.connection_id

    def _retire(self, connection_id: str) -> None:
        """Close a connection this run is done with; one that cannot be closed now is kept in
        :attr:`retired` for teardown (already gone counts as closed)."""
        from alpaca_cli.errors import AlpacaMdError
        from alpaca_cli.platform.controller import CONNECTION_NOT_FOUND, says

        assert self.rt is not None
        try:
            self.rt.controller().disconnect(connection_id)
        except AlpacaMdError as exc:
            if not says(exc, CONNECTION_NOT_FOUND):
                self.rt.warn(f"closing connection {connection_id} failed ({exc}); teardown retries")
                self.retired.append(connection_id)

    def _publish_new(self, connection_id: str) -> None:
        """``publish`` for a just-created connection, once more after it shows ``CONNECTED``
        when the WSM answers ``Websocket is not connected`` (its socket is still opening)."""
        from alpaca_cli.errors import AlpacaMdError
        from alpaca_cli.platform.controller import NOT_CONNECTED, says
        from alpaca_cli.steps.publish import start_publishing

        rt = self._rt()
        try:
            start_publishing(rt)
            return
        except AlpacaMdError as exc:
            if not says(exc, NOT_CONNECTED):
                raise
        deadline = self.clock() + PUBLISH_WAIT
        while self.clock() < deadline and not self.guard.stop.wait(0.2):
            conns = {c.id: c for c in rt.gateway().with_timeout(STATUS_TIMEOUT).list_connections()}
            record = conns.get(connection_id)
            if record is not None and record.connected:  # UNKNOWN, CONNECTING...: not yet
                break
        start_publishing(rt)

    def _view(self) -> Any:
        from alpaca_cli.live.plain import PlainSummary
        from alpaca_cli.live.table import LiveTable

        if self.console is not None:
            return LiveTable(self.stats, self.info, self.console)
        return PlainSummary(self.stats, self.info, sys.stderr)

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
        """Teardown exactly once, time-bounded; returns its first failure, if any.

        It removes what this run created (known in memory: ownership, not a snapshot of the
        state file), so a state file that vanished or names another run's objects changes
        nothing: this run cleans up after itself and never touches what it did not create.
        """

        from alpaca_cli.errors import AlpacaMdError, StateError

        if self.torn_down or self.rt is None:
            return None
        self.torn_down = True
        rt = self.rt
        if self.stream is not None:
            self.stream.close()
        if self.retired:
            # Connections this run replaced and could not close then: they are ours whatever
            # the state file says (it names only the newest).
            rt.bound_waits(TEARDOWN_TIMEOUT, TEARDOWN_BUDGET)
            rt.rearm_stop()
            retired, self.retired = self.retired, []
            for connection_id in retired:
                self._retire(connection_id)
        worker = self.created_worker
        # The run owns its connection, including one that replaced the first during the run.
        connection = (
            (self.info.connection_id or self.created_connection)
            if (self.created_connection)
            else None
        )
        if worker is None and connection is None:
            try:
                named = _named(rt.store.read())
            except AlpacaMdError:
                named = []
            if named:
                self._say(
                    f"- teardown skipped: this run created nothing; {', '.join(named)} "
                    f"from before it stay (`alpaca-md teardown` removes them)"
                )
            return None
        if not rt.store.path.exists():
            self._say(
                f"Warning: the state file {rt.store.path} vanished during the run; removing "
                "what this run created all the same"
            )
        from alpaca_cli.steps.teardown import teardown

        rt.bound_waits(TEARDOWN_TIMEOUT, TEARDOWN_BUDGET)
        # Teardown's own waits must not end at once because a signal started it: they are
        # bounded by the short timeout instead (a second signal still skips them).
        rt.rearm_stop()
        self.info.phase = "teardown"
        try:
            with self.steps.step("teardown", "removing the connection and the worker") as step:
                # Ownership is in memory: an unreadable or busy state file must not keep this
                # run from removing what it created (it waits for the lock briefly).
                rt.store.lock_timeout = min(rt.store.lock_timeout, TEARDOWN_TIMEOUT)
                try:
                    result = teardown(rt, worker=worker, connection=connection)
                except StateError as exc:
                    self._say(f"Warning: {exc}; removing what this run created without it")
                    result = teardown(rt, worker=worker, connection=connection, use_state=False)
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
                    self.vanished = list(result.already_gone)
                if not result.complete:
                    raise (
                        result.failures[0]
                        if result.failures
                        else AlpacaMdError(f"left: {', '.join(result.left)}")
                    )
        except AlpacaMdError as exc:
            self._say(
                f"Teardown incomplete; the state file {rt.store.path} keeps the ids: run "
                "`alpaca-md teardown` once the platform answers (or `alpaca-md teardown "
                f"--worker/--connection ID` for {', '.join(self._owned()) or 'them'})."
            )
            return exc
        if self.vanished:
            self._say(
                f"Warning: {' and '.join(self.vanished)}, created by this run, vanished while it "
                "ran (removed from elsewhere?)"
            )
        return None

    def _owned(self) -> list[str]:
        owned = [f"worker {self.created_worker}"] if self.created_worker else []
        if self.created_connection:
            owned.append(f"connection {self.info.connection_id or self.created_connection}")
        return owned

    def _close(self) -> None:
        rt, self.rt = self.rt, None
        if rt is not None:
            # For the report: which bus, and how often its streams were down (gateway bus).
            self.bus_name = rt.config.chosen_bus().kind
            self.bus_gaps = len(rt.gaps)
            rt.close()
        embedded, self.embedded = self.embedded, None
        if embedded is not None:
            if rt is not None and rt.store.path != embedded.state_path:
                # A teardown that did not finish left ids in the user's --state file, of a
                # platform that stops now: teardown could never remove them (hole 13).
                self._forget_embedded(rt.store.path, rt.config.api_url)
            embedded.stop()
            embedded.cleanup()

    def force_quit(self) -> None:
        """Second Ctrl+C: no teardown; say what is left and how to remove it.

        What is left is what the state file names (pending creations included) plus what this
        run knows it created (a worker interrupted between CreateWorker and its record, hole 4).
        """
        left: list[str] = []
        path: Path | None = None
        if self.rt is not None:
            path = self.rt.store.path
            try:
                state = self.rt.store.read()
            except Exception:
                state = None
            left = _named(state)
        left += [x for x in self._owned() if x not in left]
        self.torn_down = True
        embedded, self.embedded = self.embedded, None
        if embedded is not None:
            # The platform lives only as long as this run: it takes everything with it.
            what = ", ".join(left) if left else "nothing"
            self._say(f"Skipped cleanup; the embedded platform stops with run ({what} go with it).")
            if path is not None and self.rt is not None and left:
                self._forget_embedded(path, self.rt.config.api_url)
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

    def _forget_embedded(self, path: Path, gateway_url: str) -> None:
        """A state file of the user's (``--state``) must not keep naming ids of an embedded
        platform that is about to vanish: ``teardown`` could never remove them (hole 13)."""
        from alpaca_cli.state import StateStore

        try:
            store = StateStore(path, lock_timeout=1.0)
            if store.read() is None:
                return
            with store.transaction() as state:
                if state.gateway_url not in (None, gateway_url):
                    return
                if state.worker or state.connection or state.pending:
                    self._say(f"{path} no longer names them: their platform is gone.")
                store.clear()  # removes the file when the block ends: no id of it is left
        except Exception as exc:  # a second Ctrl+C must still end the run
            self._say(f"Could not update {path} ({exc}): `alpaca-md teardown --forget` does.")


PREWARM: tuple[str, ...] = (
    "alpaca_cli.platform.gateway",  # httpx
    "alpaca_cli.platform.pubsub",
    "alpaca_cli.platform.dapr_grpc",
    "alpaca_cli.platform.gateway_bus",
    "grpc",
    "grpc_reflection.v1alpha.proto_reflection_descriptor_database",
    "alpaca_cli.stream",
    "alpaca_cli.live.loop",
    "alpaca_cli.state",
)
"""What every ``run`` imports before its first data message (httpx, the buses' SDKs, the
codec and the loop): ~1 s of CPU in all."""


def _prewarm() -> None:
    """Import :data:`PREWARM` in a background thread while the embedded platform boots.

    Why: ``run --embedded`` otherwise spends the platform's start-up (a child process, on the
    other core) waiting, then imports all this serially before its first platform call. An
    import that fails here is ignored: the step that needs it imports it again and reports.
    """
    import importlib
    import threading

    def load() -> None:
        for name in PREWARM:
            try:
                importlib.import_module(name)
            except Exception:  # the real import reports it
                continue

    threading.Thread(target=load, name="prewarm", daemon=True).start()


def _named(state: State | None) -> list[str]:
    """What a state file names (``worker <id>``, ``connection <id>``): the words of every
    message about what this run created, found, or left behind."""
    if state is None:
        return []
    named = [f"worker {state.worker.id}"] if state.worker else []
    named += [f"connection {state.connection.id}"] if state.connection else []
    return named + [f"a {p.kind} being created (intent {p.intent})" for p in state.pending]


def _runtime_class() -> type[Runtime]:
    """A Runtime whose step chatter is ``-v`` only: ``run`` shows one ✓/✗ line per step."""
    from alpaca_cli.runtime import Runtime

    class RunRuntime(Runtime):
        def progress(self, message: str) -> None:
            self.log(message)

    return RunRuntime


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
        connections_opened=run.connections_opened,
        bus=run.bus_name,
        bus_gaps=run.bus_gaps,
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

        try:
            write_json(report)
        except BrokenPipeError:  # the reader left (`| head`): the outcome stands
            from alpaca_cli.output import silence_stdout

            silence_stdout(sys.stdout)
    return outcome
