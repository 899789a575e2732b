"""``alpaca-md doctor``: preflight checks, in the order a run would meet their failures.

Why a command of its own: a failed ``run`` names the first thing that broke, after it deployed
and connected; an operator (or a CI job's first step) wants every problem at once, each with
its fix, before anything is created. Doctor creates nothing and sends nothing to Alpaca.

The checks, in order (a check that needs an earlier one that failed is skipped, not failed):

1. ``gateway``: ``GET /health`` answers; its entries are shown. "Unhealthy because no keys are
   configured" is a warning (the gateway works, it just has auth off).
2. ``api key``: the gateway accepts ``VIRTUFIN_API_KEY`` (``list-services`` needs it).
3. ``services``: ``workmanager`` and ``websocketmanager`` are among the listed services.
4. ``bus``: the chosen bus is reachable (the sidecar's health, or the gateway's gRPC port).
5. ``controller``: when the state file names a worker, it answers a ``list`` round trip.
6. ``alpaca keys``: ``ALPACA_API_KEY`` and ``ALPACA_API_SECRET`` are set (never shown).
7. ``stream url``: ws/wss with a host, and the ``/v1beta3/crypto/{loc}`` location segment.
8. ``state``: the state file is readable, and the worker and connection it names still exist.

Each check yields a :class:`Check`; the exit code is that of the first failed one (3
unreachable, 4 credentials, 5 refused, 6 no reply, 2 a local problem).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from alpaca_cli.errors import AlpacaMdError
    from alpaca_cli.runtime import Runtime
    from alpaca_cli.state import State

__all__ = ["REQUIRED_SERVICES", "Check", "run_checks", "stream_url_problem"]

Status = Literal["ok", "warn", "fail", "skip"]

REQUIRED_SERVICES = ("workmanager", "websocketmanager")
"""Gateway services a run needs (matched case-insensitively, by the last dotted part)."""
NO_KEYS = "no keys are configured"
"""The health text of a gateway with API-key auth off: a warning, not a failure."""
CHECK_TIMEOUT = 5.0
"""Longest single gateway call of a check: doctor answers quickly even when a part hangs."""


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome.

    ``exit_code`` is the class of a failure (0 otherwise); ``fix`` says what to do about a
    failure or warning; ``seconds`` is how long the check took.
    """

    name: str
    status: Status
    detail: str
    seconds: float = 0.0
    fix: str | None = None
    exit_code: int = 0


class _Failed(Exception):
    """A check's failure with its exit class and fix (internal to this module)."""

    def __init__(self, detail: str, *, code: int, fix: str | None) -> None:
        super().__init__(detail)
        self.code = code
        self.fix = fix


def _timed(name: str, body: Callable[[], tuple[Status, str, str | None]]) -> Check:
    from alpaca_cli.errors import AlpacaMdError

    started = time.monotonic()
    try:
        status, detail, fix = body()
    except _Failed as exc:
        return Check(name, "fail", str(exc), time.monotonic() - started, exc.fix, exc.code)
    except AlpacaMdError as exc:
        return Check(
            name, "fail", exc.message, time.monotonic() - started, exc.hint, int(exc.exit_code)
        )
    return Check(name, status, detail, time.monotonic() - started, fix)


def stream_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable Alpaca stream URL (``None`` when it is)."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        return f"{url!r} is not a ws:// or wss:// URL"
    if not parts.hostname:
        return f"{url!r} names no host"
    segments = [s for s in parts.path.split("/") if s]
    if "crypto" in segments:
        index = segments.index("crypto")
        if index + 1 >= len(segments):
            return f"{url!r} lacks the location segment after /crypto/ (us, us-1 or eu-1)"
    return None


def run_checks(rt: Runtime) -> Iterator[Check]:
    """Yield each check's outcome as soon as it is known (the command prints them live)."""
    from alpaca_cli.steps.auth import missing_keys

    gateway = rt.gateway().with_timeout(CHECK_TIMEOUT)
    health = _timed("gateway", lambda: _health(rt))
    yield health
    reachable = health.status != "fail"
    services: list[str] = []

    def api_key() -> tuple[Status, str, str | None]:
        services.extend(gateway.list_services())
        key = "VIRTUFIN_API_KEY set" if rt.config.api_key else "no VIRTUFIN_API_KEY: auth off"
        return "ok", f"accepted ({key})", None

    key_check = (
        _skip("api key", "needs the gateway") if not reachable else _timed("api key", api_key)
    )
    yield key_check

    def listed() -> tuple[Status, str, str | None]:
        names = {s.rsplit(".", 1)[-1].lower() for s in services}
        missing = [s for s in REQUIRED_SERVICES if s not in names]
        if missing:
            raise _Failed(
                f"not listed: {', '.join(missing)} (listed: {', '.join(services) or 'none'})",
                code=5,
                fix="Deploy the virtufin platform's WorkManager and WebSocketManager services.",
            )
        return "ok", ", ".join(REQUIRED_SERVICES) + " listed", None

    yield (
        _timed("services", listed)
        if key_check.status == "ok"
        else _skip("services", "needs the api key check")
    )

    def bus() -> tuple[Status, str, str | None]:
        choice = rt.config.chosen_bus()
        rt.bus().connect()
        return "ok", f"{choice.kind} reachable ({choice.reason})", None

    yield _timed("bus", bus)
    state_check, state = _state(rt)

    def controller() -> tuple[Status, str, str | None]:
        assert state is not None and state.worker is not None
        connections = rt.controller().list()
        return (
            "ok",
            f"worker {state.worker.id} answered list ({len(connections)} connections)",
            None,
        )

    if state is None or state.worker is None:
        yield _skip("controller", "no worker deployed")
    else:
        yield _timed("controller", controller)

    def keys() -> tuple[Status, str, str | None]:
        missing = missing_keys(rt.config)
        if missing:
            raise _Failed(
                f"{' and '.join(missing)} not set",
                code=2,
                fix="Export them or put them in ./.env (never on the command line).",
            )
        return "ok", "ALPACA_API_KEY and ALPACA_API_SECRET set (not shown)", None

    yield _timed("alpaca keys", keys)

    def stream_url() -> tuple[Status, str, str | None]:
        problem = stream_url_problem(rt.config.stream_url)
        if problem:
            raise _Failed(
                problem,
                code=2,
                fix="Use e.g. wss://stream.data.alpaca.markets/v1beta3/crypto/us "
                "(ALPACA_STREAM_URL or the settings' url).",
            )
        return "ok", rt.config.stream_url, None

    yield _timed("stream url", stream_url)

    def present() -> tuple[Status, str, str | None]:
        if state_check is not None:
            raise state_check
        if state is None:
            return "ok", f"{rt.store.path}: none (nothing deployed)", None
        named = []
        if state.worker is not None:
            named.append(("worker", state.worker.id))
        if state.connection is not None:
            named.append(("connection", state.connection.id))
        if not named:
            return "ok", f"{rt.store.path}: names nothing", None
        if not reachable:
            return "warn", f"{rt.store.path} readable; cannot check it without the gateway", None
        workers = {w.id for w in gateway.list_workers()}
        conns = {c.id for c in gateway.list_connections()}
        gone = [
            f"{kind} {ident}"
            for kind, ident in named
            if ident not in (workers if kind == "worker" else conns)
        ]
        if gone:
            raise _Failed(
                f"{rt.store.path} names {', '.join(gone)}, gone from the platform",
                code=2,
                fix="Run `alpaca-md teardown` to forget them.",
            )
        return (
            "ok",
            f"{rt.store.path}: " + ", ".join(f"{k} {i}" for k, i in named) + " present",
            None,
        )

    yield _timed("state", present)


def _skip(name: str, why: str) -> Check:
    return Check(name, "skip", why)


def _state(rt: Runtime) -> tuple[AlpacaMdError | None, State | None]:
    from alpaca_cli.errors import AlpacaMdError

    try:
        return None, rt.store.read()
    except AlpacaMdError as exc:
        return exc, None


def _health(rt: Runtime) -> tuple[Status, str, str | None]:
    """``GET /health`` read leniently: a 503 body still names its entries."""
    import httpx

    from alpaca_cli.errors import GatewayUnreachable
    from alpaca_cli.platform.gateway import UP_HINT

    url = f"{rt.config.api_url.rstrip('/')}/health"
    try:
        response = httpx.get(url, timeout=CHECK_TIMEOUT)
    except httpx.HTTPError as exc:
        raise GatewayUnreachable(
            f"Cannot reach the gateway at {rt.config.api_url} ({type(exc).__name__}).",
            url=rt.config.api_url,
            hint=UP_HINT,
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _Failed(
            f"{url} answered HTTP {response.status_code} without a health report",
            code=3,
            fix="Check VIRTUFIN_API_URL: it should name the virtufin gateway.",
        )
    status = str(body.get("status", "unknown"))
    entries = body.get("entries") or {}
    shown = ", ".join(
        f"{name} {entry.get('status', '?')}"
        for name, entry in entries.items()
        if isinstance(entry, dict)
    )
    detail = f"{status}" + (f": {shown}" if shown else "")
    if status == "Healthy" and response.status_code < 400:
        return "ok", detail, None
    texts = " ".join(str(e.get("description", "")) for e in entries.values() if isinstance(e, dict))
    if NO_KEYS in texts.lower() or NO_KEYS in str(body).lower():
        return (
            "warn",
            detail + " (no API keys configured)",
            "Configure gateway API keys to turn auth on.",
        )
    unhealthy = [
        f"{name}: {entry.get('description') or entry.get('status')}"
        for name, entry in entries.items()
        if isinstance(entry, dict) and entry.get("status") != "Healthy"
    ]
    raise _Failed(
        f"{url} says {status}" + (f" ({'; '.join(unhealthy)})" if unhealthy else ""),
        code=3,
        fix="Fix the unhealthy parts (a Dapr sidecar down?) and try again.",
    )
