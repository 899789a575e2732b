"""``alpaca-md dev up``: the embedded platform plus a local Alpaca stream, in the foreground.

It prints the environment a second shell needs (``export KEY=value`` lines on stdout; status on
stderr), optionally writes the same ``KEY=value`` lines to a file once everything serves, and
runs until Ctrl+C, SIGTERM or (with the hidden ``--exit-with-stdin``) the end of its stdin, so a
parent that launched it and died never leaves it running. The Alpaca stream server runs in a
child process of its own (it dies with this one), so a busy synthetic market never slows the
WebSocketManager and the sidecar down.

Heavy imports (aiohttp, grpc, websockets, the devstack) happen inside :func:`command`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from alpaca_cli.commands._common import reported_errors
from alpaca_cli.commands._options import VerboseOption
from alpaca_cli.errors import UsageError

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator

    from alpaca_cli.devstack.gateway_proto import CloudEventShape
    from alpaca_cli.devstack.sidecar import StreamMode
    from alpaca_cli.devstack.stack import EmbeddedPlatform, StackConfig
    from alpaca_cli.devstack.wsm import ConnectIdKey, FrameFormat, LifecycleNames

SECRET_NAMES = frozenset({"VIRTUFIN_API_KEY", "DAPR_API_TOKEN"})
"""Variables the operator already holds: written to ``--write-env`` but never printed."""

C = TypeVar("C", bound=str)

_PORT_HELP = "0 = any free port."
_NEWER = "Newer platform behaviour (issue 12; all off by default)"
"""Help panel of the options that make the stand-ins behave like the 2026-09-10 platform."""


def command(
    host: Annotated[str, typer.Option(help="Interface every server binds to.")] = "127.0.0.1",
    gateway_port: Annotated[
        int, typer.Option(min=0, max=65535, help=f"Gateway HTTP port. {_PORT_HELP}")
    ] = 5001,
    gateway_grpc_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            show_default=False,
            help=f"Gateway gRPC port (pub/sub without a sidecar). {_PORT_HELP} "
            "[default: 5002, or 0 with --gateway-port 0]",
        ),
    ] = None,
    dapr_http_port: Annotated[
        int, typer.Option(min=0, max=65535, help=f"Dapr sidecar HTTP port. {_PORT_HELP}")
    ] = 3500,
    dapr_grpc_port: Annotated[
        int, typer.Option(min=0, max=65535, help=f"Dapr sidecar gRPC port. {_PORT_HELP}")
    ] = 50001,
    feed_port: Annotated[
        int, typer.Option(min=0, max=65535, help=f"Alpaca stream server port. {_PORT_HELP}")
    ] = 8765,
    drop_after: Annotated[
        float | None,
        typer.Option(help="Alpaca server: abort each connection after this many seconds."),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Alpaca server: data messages per second.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Alpaca server: market seed.")] = None,
    symbol_limit: Annotated[
        int | None, typer.Option(help="Alpaca server: most symbols per channel (405 above).")
    ] = None,
    auth_timeout: Annotated[
        float | None, typer.Option(help="Alpaca server: seconds to authenticate (10).")
    ] = None,
    max_connections_per_key: Annotated[
        int | None, typer.Option(help="Alpaca server: connections per key (406 above; 1).")
    ] = None,
    replay: Annotated[
        Path | None, typer.Option(help="Alpaca server: replay this NDJSON recording.")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            metavar="VAR",
            help="Require this API key on the gateway (x-api-key), read from environment "
            "variable VAR (e.g. VIRTUFIN_API_KEY). The key is never printed on stdout or "
            "stderr; --write-env writes it as VIRTUFIN_API_KEY into that file (mode 0600, "
            "owner only; removed on exit) so that clients can source it.",
        ),
    ] = None,
    dapr_api_token_env: Annotated[
        str | None,
        typer.Option(
            metavar="VAR",
            help="Require this Dapr API token on the sidecar, read from environment variable "
            "VAR (e.g. DAPR_API_TOKEN). Never printed.",
        ),
    ] = None,
    legacy: Annotated[
        bool,
        typer.Option(help="Behave like an older platform: CreateWorker takes 'topic'."),
    ] = False,
    dapr_streams: Annotated[
        str,
        typer.Option(
            metavar="copy|split|single",
            help="Several streaming subscriptions on one topic: each gets every message (copy), "
            "they share them as one app id (split, Dapr 1.16+), or the second is refused "
            "(single, Dapr 1.14/1.15).",
        ),
    ] = "copy",
    connection_record_ttl: Annotated[
        float | None,
        typer.Option(
            rich_help_panel=_NEWER,
            min=0.001,
            metavar="S",
            help="Newer platform: drop a WSM connection record S seconds after its last "
            "successful SendRaw or its creation (the socket keeps streaming); 300 is the "
            "platform default. Off when not given.",
        ),
    ] = None,
    drop_commands: Annotated[
        int,
        typer.Option(
            rich_help_panel=_NEWER,
            min=0,
            metavar="N",
            help="Newer platform: ack and drop the first N messages on each worker input "
            "topic, with no reply (a replica without the worker).",
        ),
    ] = 0,
    reconnect_attempts: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=_NEWER,
            min=0,
            metavar="N",
            help="Newer platform: the WSM gives up after N reconnect attempts and leaves the "
            "connection DISCONNECTED for good (0 = never reconnect). Default: 5, then ERROR.",
        ),
    ] = None,
    lifecycle_names: Annotated[
        str,
        typer.Option(
            rich_help_panel=_NEWER,
            metavar="classic|spec|reference",
            help="Lifecycle event types the WSM and WorkManager emit: classic "
            "(...lifecycle.connected), spec (...lifecycle.connection.connected, "
            "...lifecycle.worker.created) or reference (registered ... closed, failed).",
        ),
    ] = "classic",
    owned_elsewhere: Annotated[
        float,
        typer.Option(
            rich_help_panel=_NEWER,
            min=0,
            metavar="S",
            help="Newer platform: for S seconds after a connection is created, calls on it "
            "fail with 'Connection owned by different instance: <id>' (a rolling update).",
        ),
    ] = 0.0,
    duplicate_create: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_NEWER,
            help="Newer platform: the gateway runs every CreateWorker twice (a retried call) "
            "and answers with the second id.",
        ),
    ] = False,
    start_on_create: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_NEWER,
            help="Newest spec: a new worker is already running after CreateWorker.",
        ),
    ] = False,
    unhealthy_without_keys: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_NEWER,
            help="Newer platform: without --api-key-env, /health reports Unhealthy (503) "
            "while everything serves, as outside Development.",
        ),
    ] = False,
    replica_dies_after: Annotated[
        float | None,
        typer.Option(
            rich_help_panel=_NEWER,
            min=0.001,
            metavar="S",
            help="Newer platform: the WSM replica owning a connection dies S seconds after "
            "creating it (frames stop); the next call on it reclaims it: DISCONNECTED, then "
            "a fresh socket with auto-reconnect.",
        ),
    ] = None,
    frame_format: Annotated[
        str,
        typer.Option(
            rich_help_panel=_NEWER,
            metavar="flat|envelope|bare",
            help="How the WSM publishes frames: flat data with extensions (today), the older "
            "base64 envelope, or bare (Dapr's default type/source, no extensions).",
        ),
    ] = "flat",
    connect_id_key: Annotated[
        str,
        typer.Option(
            rich_help_panel=_NEWER,
            metavar="id|connection_id|connectionId",
            help="Key of the connection id in a WSM Connect result (newer builds drift).",
        ),
    ] = "id",
    subscription_idle_timeout: Annotated[
        float,
        typer.Option(
            min=0,
            help="Gateway gRPC: end a subscription without traffic after S seconds (0: never).",
        ),
    ] = 300.0,
    heartbeat_interval: Annotated[
        float,
        typer.Option(
            min=0,
            help="Gateway gRPC: send an empty-data heartbeat after S seconds without traffic "
            "(0: none, so idle subscriptions are reaped).",
        ),
    ] = 30.0,
    cloudevent_proto: Annotated[
        str,
        typer.Option(
            metavar="cncf|nested",
            help="Gateway gRPC: the CloudEvent message it speaks and reflects: the CNCF one "
            "(attributes, top-level text_data/binary_data) or the nested data message.",
        ),
    ] = "cncf",
    resiliency_retries: Annotated[
        int,
        typer.Option(
            min=0,
            help="Redeliver an event a subscriber answers RETRY up to N times, like daprd with "
            "a resiliency retry policy; 0 (default) is daprd without one: the event goes to the "
            "dead-letter topic if the subscription named one, else it is dropped.",
        ),
    ] = 0,
    write_env: Annotated[
        Path | None,
        typer.Option(
            help="Once ready, write KEY=value lines to this file (mode 0600; removed on exit)."
        ),
    ] = None,
    exit_with_stdin: Annotated[
        bool, typer.Option(hidden=True, help="Stop when stdin reaches end of file.")
    ] = False,
    verbose: VerboseOption = 0,
) -> None:
    """Run the embedded virtufin platform and an Alpaca stream server until Ctrl+C.

    Prints `export KEY=value` lines for a second shell (VIRTUFIN_API_URL, DAPR_HTTP_PORT,
    DAPR_GRPC_PORT, VIRTUFIN_API_HOST, VIRTUFIN_API_GRPC_PORT, ALPACA_STREAM_URL and the test
    credentials ALPACA_API_KEY / ALPACA_API_SECRET that the local Alpaca server accepts).
    Exits 0 after a clean stop.

    Example: alpaca-md dev up --gateway-port 0 --write-env .devstack.env
    """
    # First of all: the feed's child process boots (its interpreter and imports, the longest
    # part of the start) on the other core while this one imports the platform.
    with reported_errors(), _early_feed_child() as feed_child:
        from alpaca_cli.devstack.gateway_proto import CLOUDEVENT_SHAPES
        from alpaca_cli.devstack.sidecar import STREAM_MODES
        from alpaca_cli.devstack.wsm import CONNECT_ID_KEYS, FRAME_FORMATS, LIFECYCLE_FAMILIES

        streams: StreamMode = _choice("--dapr-streams", dapr_streams, STREAM_MODES)
        names: LifecycleNames = _choice("--lifecycle-names", lifecycle_names, LIFECYCLE_FAMILIES)
        id_key: ConnectIdKey = _choice("--connect-id-key", connect_id_key, CONNECT_ID_KEYS)
        frames: FrameFormat = _choice("--frame-format", frame_format, FRAME_FORMATS)
        shape: CloudEventShape = _choice("--cloudevent-proto", cloudevent_proto, CLOUDEVENT_SHAPES)
        feed: dict[str, Any] = {
            "drop_after": drop_after,
            "rate": rate,
            "seed": seed,
            "symbol_limit": symbol_limit,
            "auth_timeout": auth_timeout,
            "max_connections_per_key": max_connections_per_key,
            "replay": replay,
        }
        _configure_logging(verbose)
        from alpaca_cli.devstack.stack import StackConfig

        config = StackConfig(
            host=host,
            gateway_port=gateway_port,
            dapr_http_port=dapr_http_port,
            dapr_grpc_port=dapr_grpc_port,
            feed_port=feed_port,
            api_key=_secret_from_env(api_key_env, "--api-key-env"),
            dapr_api_token=_secret_from_env(dapr_api_token_env, "--dapr-api-token-env"),
            legacy=legacy,
            feed_options={k: v for k, v in feed.items() if v is not None},
            # Its own process: the market's generation must not share the relay's GIL.
            feed_process=True,
            dapr_streams=streams,
            connection_record_ttl=connection_record_ttl,
            drop_commands=drop_commands,
            reconnect_attempts=reconnect_attempts,
            lifecycle_names=names,
            owned_elsewhere=owned_elsewhere,
            duplicate_create=duplicate_create,
            start_on_create=start_on_create,
            connect_id_key=id_key,
            unhealthy_without_keys=unhealthy_without_keys,
            frame_format=frames,
            replica_dies_after=replica_dies_after,
            # Asking for any free HTTP port means a throwaway platform: never take 5002 then.
            gateway_grpc_port=(
                gateway_grpc_port
                if gateway_grpc_port is not None
                else (0 if gateway_port == 0 else 5002)
            ),
            subscription_idle_timeout=subscription_idle_timeout,
            heartbeat_interval=heartbeat_interval,
            cloudevent_proto=shape,
            resiliency_retries=resiliency_retries,
        )
        serve(config, write_env=write_env, exit_with_stdin=exit_with_stdin, feed_child=feed_child)


@contextlib.contextmanager
def _early_feed_child() -> Iterator[subprocess.Popen[bytes]]:
    """A feed child process started now (``spawn_child``), for the platform to configure.

    Why now: its interpreter start and imports are the longest part of the platform's start
    (``run --embedded``'s time to first data); begun before this process imports the
    platform, they run on the other core meanwhile. Whatever happens before the platform
    takes it over (a usage error, a failed start), the child is reaped on the way out.
    """
    from alpaca_cli.devstack.feed.process import spawn_child

    child = spawn_child()
    try:
        yield child
    finally:
        if child.poll() is None:  # never handed its configuration: it has nothing to lose
            child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _choice(option: str, value: str, choices: tuple[C, ...]) -> C:
    """``value`` as one of ``choices`` (typed as their ``Literal``), else a one-line usage
    error naming the option and what it takes."""
    for choice in choices:
        if value == choice:
            return choice
    raise UsageError(f"{option} {value}: give one of {', '.join(choices)}.")


def _secret_from_env(var: str | None, option: str) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var, "")
    if not value:
        raise UsageError(
            f"{option} {var}: environment variable {var} is not set or empty.",
            hint=f"Export {var} before starting, or drop {option}.",
        )
    return value


def _configure_logging(verbose: int) -> None:
    """Never frame dumps: ``websockets`` at DEBUG would log the auth message with the secret."""
    from alpaca_cli.devstack.logs import configure_logging

    configure_logging(verbose)


def export_lines(env: dict[str, str]) -> list[str]:
    """``export KEY=value`` lines for stdout; secrets the operator already has are left out."""
    import shlex

    lines = []
    for key, value in env.items():
        if key in SECRET_NAMES:
            lines.append(f"# {key} is required: use the value from your own environment")
        else:
            lines.append(f"export {key}={shlex.quote(value)}")
    return lines


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """Write ``KEY=value`` lines atomically, readable by the owner only (``mkstemp``'s 0600)."""
    from alpaca_cli.live.report import write_text

    write_text(path.resolve(), "".join(f"{k}={v}\n" for k, v in env.items()))


def serve(
    config: StackConfig,
    *,
    write_env: Path | None,
    exit_with_stdin: bool,
    feed_child: subprocess.Popen[bytes] | None = None,
) -> None:
    """Start the platform, announce it, wait for a stop request, stop it.

    ``feed_child``: a feed process started early (``spawn_child``) for the platform to use.

    Raises:
        UsageError: a port is taken or cannot be bound.
    """
    import asyncio

    asyncio.run(
        _serve(config, write_env=write_env, exit_with_stdin=exit_with_stdin, feed_child=feed_child)
    )


async def _serve(
    config: StackConfig,
    *,
    write_env: Path | None,
    exit_with_stdin: bool,
    feed_child: subprocess.Popen[bytes] | None = None,
) -> None:
    import asyncio
    import signal

    from alpaca_cli.devstack.parent import stop_on_stdin_eof
    from alpaca_cli.devstack.stack import EmbeddedPlatform

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if exit_with_stdin:
        stop_on_stdin_eof(loop, stop, name="dev-up-stdin")

    platform = EmbeddedPlatform(config, feed_child=feed_child)
    try:
        await platform.start()
    except ValueError as exc:  # FeedConfig's checks, an unusable --replay file
        raise UsageError(f"Invalid Alpaca server option: {exc}") from exc
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES, None):
            raise UsageError(f"Cannot start the embedded platform: {exc}") from exc
        raise UsageError(
            f"Cannot start the embedded platform on {config.host}: {exc.strerror or exc}.",
            hint="A port is probably in use: pick others (--gateway-port, --gateway-grpc-port, "
            "--dapr-http-port, --dapr-grpc-port, --feed-port) or 0 for any free port.",
        ) from exc
    wrote = False
    try:
        env = platform.env()
        # The file first: whoever waits for our stdout (run --embedded) may read it at once.
        if write_env is not None:
            write_env_file(write_env, env)
            wrote = True
        sys.stdout.write("".join(line + "\n" for line in export_lines(env)))
        sys.stdout.flush()
        from alpaca_cli import startup

        startup.end()  # serving: collect as usual again
        _announce(platform)
        await stop.wait()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # A second Ctrl+C / SIGTERM while stopping takes the default path: exit at once.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        sys.stderr.write("dev up: stopping (Ctrl+C again to force)...\n")
    finally:
        await platform.stop()
        if wrote and write_env is not None:
            with contextlib.suppress(OSError):
                write_env.unlink()
    sys.stderr.write("dev up: stopped.\n")


_KNOBS: tuple[tuple[str, object], ...] = (
    ("connection_record_ttl", None),
    ("drop_commands", 0),
    ("reconnect_attempts", None),
    ("lifecycle_names", "classic"),
    ("owned_elsewhere", 0),
    ("duplicate_create", False),
    ("start_on_create", False),
    ("unhealthy_without_keys", False),
    ("replica_dies_after", None),
    ("frame_format", "flat"),
    ("connect_id_key", "id"),
)
"""The newer-platform options (``StackConfig`` attribute = the flag's name) and their off value."""


def _knobs(config: StackConfig) -> str:
    """The newer-platform options in effect, as ``--option value`` text (empty: none)."""
    shown = []
    for name, off in _KNOBS:
        value = getattr(config, name)
        if value == off:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            shown.append(flag)
        else:
            shown.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(shown)


def _announce(platform: EmbeddedPlatform) -> None:
    lines = [
        f"dev up: gateway      {platform.gateway_url}"
        + (" (API key required)" if platform.config.api_key else "")
        + (" (legacy CreateWorker 'topic')" if platform.config.legacy else ""),
        f"dev up: gateway gRPC {platform.env()['VIRTUFIN_API_HOST']}:{platform.gateway_grpc.port}"
        f" (h2c, CloudEvent {platform.config.cloudevent_proto})",
        f"dev up: dapr sidecar http :{platform.sidecar.http_port}  "
        f"grpc :{platform.sidecar.grpc_port}",
    ]
    if platform.stream_url:
        lines.append(f"dev up: alpaca feed  {platform.stream_url}")
    knobs = _knobs(platform.config)
    if knobs:
        lines.append(f"dev up: newer-platform behaviour: {knobs}")
    lines.append("dev up: ready. Copy the export lines above into another shell; Ctrl+C stops.")
    sys.stderr.write("".join(line + "\n" for line in lines))
    sys.stderr.flush()
