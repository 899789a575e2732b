"""The objects one invocation shares: resolved config, state store, clients, diagnostics.

A command's Typer wrapper builds one :class:`Runtime` (through
:func:`alpaca_cli.commands._common.open_runtime`) and hands it to the plain step function; ``run``
builds one and passes it to every step. Clients are created on first use and closed with the
runtime, so a command that never talks to the gateway never imports httpx.

Stable API (other modules rely on it)::

    Runtime(config, *, json=False, verbose=0, http_client=None, stderr=None, stop=None)
        .config: Config            .json: bool            .verbose: int
        .stop: threading.Event     # set by Ctrl+C/SIGTERM (``run``): reply waits end early
        .check_stop()              # raises Interrupted once stop is set
        .store: StateStore         .redactor: Redactor
        .log(message, level=1)     # -v diagnostics on stderr, redacted
        .progress(message)         # one progress line on stderr (always, also with --json)
        .warn(message)             # "Warning: ..." on stderr
        .gateway() -> GatewayClient          # lazily built, cached, closed with the runtime
        .bound_waits(timeout, budget)        # from now on: short reply waits, gateway calls
                                             # within ``budget`` s in all (``run``'s teardown)
        .enter_context(cm) -> value          # tie any other client's lifetime to the runtime
        .close() / context manager
    open_runtime(options=None, *, json=False, verbose=0, environ=None, cwd=None,
                 http_client=None) -> Runtime
"""

from __future__ import annotations

import sys
import threading
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from alpaca_cli.closing import Closing
from alpaca_cli.config import Config, ConfigOptions, load_config
from alpaca_cli.redact import Redactor

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

    from alpaca_cli.platform.gateway import GatewayClient
    from alpaca_cli.state import StateStore

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
        self._stack = ExitStack()
        self.stop = stop if stop is not None else threading.Event()

    def check_stop(self) -> None:
        """Raise :class:`~alpaca_cli.errors.Interrupted` once :attr:`stop` is set."""
        if self.stop.is_set():
            from alpaca_cli.errors import Interrupted

            raise Interrupted("stopped while waiting (Ctrl+C or SIGTERM).")

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
            )
            self._stack.callback(self._gateway.close)
        return self._gateway

    def bound_waits(self, timeout: float, budget: float) -> None:
        """From now on replies are awaited at most ``timeout`` s, and gateway calls take at
        most ``timeout`` s each and ``budget`` s all together.

        Why: ``run``'s teardown has to finish inside the ~7 s a CI runner leaves between
        SIGINT and SIGKILL, however the platform (mis)behaves. Clients already handed out
        keep their own limits.
        """
        import dataclasses

        self.config = dataclasses.replace(self.config, timeout=min(self.config.timeout, timeout))
        self._gateway = self.gateway().with_timeout(min(timeout, budget), budget=budget)

    def enter_context(self, cm: AbstractContextManager[T]) -> T:
        """Enter ``cm`` now and exit it when the runtime closes (LIFO)."""
        return self._stack.enter_context(cm)

    def callback(self, fn: Any, *args: Any) -> None:
        """Call ``fn(*args)`` when the runtime closes."""
        self._stack.callback(fn, *args)

    def close(self) -> None:
        """Close every client this runtime created."""
        self._stack.close()


def open_runtime(
    options: ConfigOptions | None = None,
    *,
    json: bool = False,
    verbose: int = 0,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    http_client: httpx.Client | None = None,
) -> Runtime:
    """Resolve the configuration and build a :class:`Runtime`.

    Raises:
        SettingsError: see :func:`alpaca_cli.config.load_config`.
    """
    config = load_config(options, environ=environ, cwd=cwd)
    runtime = Runtime(config, json=json, verbose=verbose, http_client=http_client)
    runtime.log_sources()
    return runtime


__all__ = ["Runtime", "open_runtime"]
