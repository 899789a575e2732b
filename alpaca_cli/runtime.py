"""The objects one invocation shares: resolved config, state store, every client, diagnostics.

Like an ``httpx.Client``, one :class:`Runtime` creates and owns every client of an invocation and
hands them to the steps (:mod:`alpaca_cli.steps`) that need them; nothing is looked up in a
module-level cache. Each client is built on first use and closed (LIFO) with the runtime, so a
command that never talks to the gateway never imports httpx, and one that needs no pub/sub never
opens a bus.

What it owns::

    rt.gateway()          GatewayClient (httpx) for config.api_url
    rt.bus()              the bus (platform/bus.py): the gateway's gRPC pub/sub or a Dapr sidecar
    rt.controller()       the controller RPC on that bus (one reply subscription)
    rt.stream(topic)      the one decoded consumer of a topic (TopicStream), opened on first use
    rt.subscription(t)    the one raw subscription of a topic (lifecycle events)

Why one consumer per topic: beside a real sidecar, two streaming subscriptions of one app id on
one topic split its messages (Dapr 1.16+) or the second is refused (1.14/1.15). ``run`` opens the
topic's stream before ``publish``; ``auth`` and ``subscribe`` then read Alpaca's answers from
that same stream, which replays what they consumed to the stream loop.

:class:`Invocation` is what a command was given (its config options and ``--json``/``-v``);
:meth:`Invocation.open` is the one place a runtime is built from options.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from alpaca_cli.closing import Closing
from alpaca_cli.config import Config, ConfigOptions, load_config
from alpaca_cli.redact import Redactor

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

    from alpaca_cli.platform.bus import Bus, BusSubscription
    from alpaca_cli.platform.controller import ControllerClient
    from alpaca_cli.platform.gateway import GatewayClient
    from alpaca_cli.platform.gateway_bus import Gap
    from alpaca_cli.state import StateStore
    from alpaca_cli.stream import TopicStream

T = TypeVar("T")


class Runtime(Closing):
    """Config + state + lazily built clients for one invocation.

    Parameters:
        config: the resolved configuration.
        json: the result goes to stdout as JSON (progress still goes to stderr).
        verbose: ``-v`` count; 1 shows where settings came from and each platform call.
        http_client: an ``httpx.Client`` to use for the gateway (tests inject a
            ``MockTransport``); by default one is created.
        stderr: where diagnostics go (default ``sys.stderr`` at call time).
        stop: an event that, once set, ends the invocation's waits for replies and answers
            (controller calls, Alpaca's answers on the topic) with
            :class:`~alpaca_cli.errors.Interrupted`. ``run`` passes its signal guard's event, so
            a Ctrl+C during ``auth`` does not sit out the reply ``--timeout`` first. The waits
            poll it between short queue reads: nothing is raised into library (gRPC) code.
    """

    def __init__(
        self,
        config: Config,
        *,
        json: bool = False,
        verbose: int = 0,
        http_client: httpx.Client | None = None,
        stderr: TextIO | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        from alpaca_cli.state import StateStore

        self.config = config
        self.json = json
        self.verbose = verbose
        self.redactor = Redactor(config.secret_values())
        self.store: StateStore = StateStore(config.state_path)
        self._http_client = http_client
        self._stderr = stderr
        self._gateway: GatewayClient | None = None
        self._bus: Bus | None = None
        self._controller: ControllerClient | None = None
        self._streams: dict[str, TopicStream] = {}
        self._subscriptions: dict[str, BusSubscription] = {}
        self.gaps: list[Gap] = []
        """Outages of the gateway bus's streams (``gateway_bus.Gap``); ``run`` reports them."""
        self._stack = ExitStack()
        self.stop = stop if stop is not None else threading.Event()

    # -- diagnostics ----------------------------------------------------------------------------

    @property
    def stderr(self) -> TextIO:
        return self._stderr if self._stderr is not None else sys.stderr

    def log(self, message: str, level: int = 1) -> None:
        """A ``-v`` diagnostic line (secrets redacted); silent below ``level``."""
        if self.verbose >= level:
            self.stderr.write(f"alpaca-md: {self.redactor(message)}\n")
            self.stderr.flush()

    def progress(self, message: str) -> None:
        """A progress line for the operator; stderr keeps stdout clean for data."""
        self.stderr.write(f"{self.redactor(message)}\n")
        self.stderr.flush()

    def warn(self, message: str) -> None:
        """A warning line on stderr."""
        self.stderr.write(f"Warning: {self.redactor(message)}\n")
        self.stderr.flush()

    def log_sources(self) -> None:
        """``-v``: where each setting came from (secrets shown only as set / not set)."""
        if self.verbose < 1:
            return
        for name, value, source in self.config.describe():
            self.log(f"setting {name} = {value or '(none)'}  [{source}]")

    # -- clients --------------------------------------------------------------------------------

    def gateway(self) -> GatewayClient:
        """The gateway client for ``config.api_url`` (created once, closed with the runtime)."""
        if self._gateway is None:
            from alpaca_cli.platform.gateway import GatewayClient

            key = self.config.api_key
            self._gateway = GatewayClient(
                self.config.api_url,
                api_key=key.get_secret_value() if key else None,
                # The gateway's backend deadline is 30 s: wait a little longer than that.
                timeout=max(self.config.timeout, 35.0),
                client=self._http_client,
                log=self.log if self.verbose >= 2 else None,
                # Read at each call: ``rearm_stop`` gives teardown a fresh event.
                stop=lambda: self.stop,
            )
            self._stack.callback(self._gateway.close)
        return self._gateway

    def bus(self) -> Bus:
        """The invocation's bus (created once, closed with the runtime; ``-vv`` shows its
        diagnostics, redacted): the gateway's gRPC pub/sub or a Dapr sidecar, as
        :meth:`~alpaca_cli.config.Config.chosen_bus` says (``-v`` says why)."""
        if self._bus is None:
            choice = self.config.chosen_bus()
            bus: Bus
            if choice.kind == "gateway":
                from alpaca_cli.platform.gateway_bus import GatewayBus

                key = self.config.api_key
                bus = GatewayBus(
                    self.config.api_grpc,
                    tls=self.config.api_grpc_tls,
                    api_key=key.get_secret_value() if key else None,
                    log=self._log_bus,
                    on_gap=self._gap,
                )
            else:
                from alpaca_cli.platform.pubsub import open_pubsub

                bus = open_pubsub(self.config, log=self._log_bus)
            self.log(f"bus: {choice.kind} ({choice.reason})")
            self._stack.callback(bus.close)
            self._bus = bus
        return self._bus

    def _log_bus(self, message: str) -> None:
        self.log(message, level=2)

    def _gap(self, gap: Gap) -> None:
        """The gateway's stream on a topic was down and is back: whatever was published in
        between is lost for good, so say so (and count it: ``run``'s report)."""
        self.gaps.append(gap)
        self.warn(
            f"the gateway's stream on {gap.topic!r} was down for {gap.seconds:.1f} s "
            f"({gap.reason}); messages published meanwhile are lost"
        )

    def controller(self) -> ControllerClient:
        """The controller RPC on :meth:`bus`: the config's topics and timeout, and :attr:`stop`
        as its interrupt (a Ctrl+C ends a reply wait without raising into gRPC code)."""
        if self._controller is None:
            from alpaca_cli.platform.controller import ControllerClient

            bus = self.bus()
            controller = ControllerClient(
                bus,
                command_topic=self.config.command_topic,
                reply_topic=self.config.reply_topic,
                timeout=self.config.timeout,
                interrupt=self.stop,
            )
            self._stack.callback(controller.close)
            self._controller = controller
        return self._controller

    def stream(self, topic: str) -> TopicStream:
        """The invocation's one decoded consumer of ``topic``, subscribed now on first use.

        It keeps what :meth:`~alpaca_cli.stream.TopicStream.wait_for` consumed and hands it out
        again from ``next()``, so the answers ``auth``/``subscribe`` waited for still reach
        ``run``'s statistics and session.
        """
        stream = self._streams.get(topic)
        if stream is None:
            from alpaca_cli import startup
            from alpaca_cli.stream import TopicStream

            startup.end()  # consuming a topic: start-up is over (see alpaca_cli.startup)

            # linger: the last acknowledgements must reach the sidecar before the stream closes,
            # or a real one redelivers them to the next consumer of this app id.
            stream = TopicStream(self.bus(), topic, stop=self.stop, linger=0.2, replay_waited=True)
            stream.open()
            self._streams[topic] = stream

            def forget() -> None:
                self._streams.pop(topic, None)
                stream.close()

            self._stack.callback(forget)
        return stream

    def subscription(self, topic: str) -> BusSubscription:
        """The invocation's one raw subscription to ``topic`` (lifecycle events: not decoded)."""
        sub = self._subscriptions.get(topic)
        if sub is None:
            from alpaca_cli import startup

            startup.end()  # consuming a topic: start-up is over (see alpaca_cli.startup)
            sub = self.bus().subscribe(topic)
            self._subscriptions[topic] = sub

            def forget() -> None:
                self._subscriptions.pop(topic, None)
                sub.close()

            self._stack.callback(forget)
        return sub

    def bound_waits(self, timeout: float, budget: float) -> None:
        """From now on replies are awaited at most ``timeout`` s, and gateway calls take at
        most ``timeout`` s each and ``budget`` s all together.

        Why: ``run``'s teardown has to finish inside the ~7 s a CI runner leaves between
        SIGINT and SIGKILL, however the platform (mis)behaves.
        """
        self.config = dataclasses.replace(self.config, timeout=min(self.config.timeout, timeout))
        self._gateway = self.gateway().with_timeout(min(timeout, budget), budget=budget)
        if self._controller is not None:
            self._controller.timeout = self.config.timeout
            # A rolling update is not ridden out inside a bounded teardown.
            self._controller.owned_elsewhere_wait = min(
                self._controller.owned_elsewhere_wait, budget
            )

    def rearm_stop(self) -> None:
        """A fresh :attr:`stop` event, for the controller too: ``run``'s teardown waits must
        not end at once because a signal started it (its short timeouts bound them instead)."""
        self.stop = threading.Event()
        if self._controller is not None:
            self._controller.interrupt = self.stop

    def enter_context(self, cm: AbstractContextManager[T]) -> T:
        """Enter ``cm`` now and exit it when the runtime closes (LIFO)."""
        return self._stack.enter_context(cm)

    def callback(self, fn: Any, *args: Any) -> None:
        """Call ``fn(*args)`` when the runtime closes."""
        self._stack.callback(fn, *args)

    def close(self) -> None:
        """Close every client this runtime created."""
        self._stack.close()


@dataclass(frozen=True, slots=True)
class Invocation:
    """What a command was given: its configuration options and the output flags.

    ``commands/`` gathers it once per command (``commands/_common.py``); ``run`` hands it down
    to its flow, which opens the runtime once the embedded platform (if any) is up.
    """

    options: ConfigOptions = field(default_factory=ConfigOptions)
    json: bool = False
    verbose: int = 0
    stop: threading.Event | None = field(default=None, compare=False)
    """The command's signal guard's event (``commands/_common.py``'s ``takes``): the default
    :attr:`Runtime.stop` of every runtime opened from this invocation, so a Ctrl+C/SIGTERM
    abandons a hung gateway call or reply wait in any step without per-command code."""
    redactor: Redactor = field(default_factory=Redactor, compare=False)
    """Learns the secrets of every runtime opened from this invocation, so the one error
    handler (``takes``) can redact an error text that echoes a key from ``.env`` too."""

    def open(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        http_client: httpx.Client | None = None,
        stop: threading.Event | None = None,
        runtime_class: type[Runtime] | None = None,
        **overrides: Any,
    ) -> Runtime:
        """Resolve the configuration (``overrides`` replace options) and build the runtime.

        Raises:
            SettingsError: see :func:`alpaca_cli.config.load_config`.
        """
        options = dataclasses.replace(self.options, **overrides) if overrides else self.options
        config = load_config(options, environ=environ, cwd=cwd)
        for secret in config.secret_values():
            self.redactor.add(secret)
        cls = runtime_class or Runtime
        runtime = cls(
            config,
            json=self.json,
            verbose=self.verbose,
            http_client=http_client,
            stop=stop if stop is not None else self.stop,
        )
        runtime.log_sources()
        return runtime


__all__ = ["Invocation", "Runtime"]
