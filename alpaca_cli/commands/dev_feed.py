"""``alpaca-md dev feed``: an Alpaca-compatible crypto stream server, in the foreground.

The first line on stdout is the URL it serves (flushed at once, so a script can read it with
``--port 0``); one line per session event goes to stderr. Ctrl+C or SIGTERM closes every
connection with a close frame and exits 0; a second Ctrl+C exits at once with 130.

Heavy imports (websockets, the devstack) happen inside :func:`command`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.commands._common import reported_errors
from alpaca_cli.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from alpaca_cli.devstack.feed import FeedConfig


def command(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port; 0 = any free port (the URL says which).")
    ] = 8765,
    key: Annotated[
        str | None,
        typer.Option(help="Only this key id authenticates (with --secret); default: any."),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(help="The secret that goes with --key. Test values only: never logged."),
    ] = None,
    auth_timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a client has to authenticate (404 after).")
    ] = 10.0,
    symbol_limit: Annotated[
        int | None,
        typer.Option(min=1, help="Most symbols per channel, '*' counting as all (405 above)."),
    ] = None,
    max_connections_per_key: Annotated[
        int, typer.Option(min=1, help="Authenticated connections per key (406 above).")
    ] = 1,
    rate: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Data messages per second per connection, across its trade, quote and "
            "order book subscriptions (bars follow the clock).",
        ),
    ] = 100.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 0,
    replay: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Replay this NDJSON recording (one message or frame per line) instead.",
        ),
    ] = None,
    drop_after: Annotated[
        float | None,
        typer.Option(
            min=0.001, help="Abort each connection after this many seconds (no close frame)."
        ),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(help="Comma-separated universe that '*' expands to (default: 26 pairs)."),
    ] = None,
    bar_interval: Annotated[
        float, typer.Option(min=0.001, help="Seconds per bar (60: minute bars).")
    ] = 60.0,
    seq_field: Annotated[
        str | None,
        typer.Option(help="Also number every data message under this extra key (for benches)."),
    ] = None,
    slow_client_after: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="407 slow client, then close, when a frame waits this long for the client.",
        ),
    ] = None,
) -> None:
    """Serve an Alpaca-compatible crypto stream (v1beta3) on a local port.

    Any path /v1beta3/crypto/{loc} works; the session follows Alpaca's rules (auth in time,
    401-410 errors, additive subscriptions, msgpack with Content-Type: application/msgpack).
    The market is synthetic and seeded, or a replayed recording. Trade ids count up by one per
    connection, so gaps show lost trades. Exits 0 after Ctrl+C or SIGTERM.

    Example: alpaca-md dev feed --port 0 --rate 1000 --seed 7
    """
    with reported_errors():
        from alpaca_cli.devstack.feed import DEFAULT_SYMBOLS, FeedConfig

        universe = DEFAULT_SYMBOLS
        if symbols is not None:
            universe = tuple(s.strip() for s in symbols.split(",") if s.strip())
        try:
            config = FeedConfig(
                host=host,
                port=port,
                key=key,
                secret=secret,
                auth_timeout=auth_timeout,
                symbol_limit=symbol_limit,
                max_connections_per_key=max_connections_per_key,
                rate=rate,
                seed=seed,
                replay=replay,
                drop_after=drop_after,
                symbols=universe,
                bar_interval=bar_interval,
                seq_field=seq_field,
                slow_client_after=slow_client_after,
            )
        except ValueError as exc:
            raise UsageError(f"dev feed: {exc}.") from exc
        undo_logging = _configure_logging()
        import asyncio

        try:
            asyncio.run(_serve(config))
        finally:
            undo_logging()


def _configure_logging() -> Callable[[], None]:
    """Send the feed's session events to stderr, one line each; returns how to undo it."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s dev feed: %(message)s"))
    feed_log = logging.getLogger("alpaca_cli.devstack.feed")
    ws_log = logging.getLogger("websockets")
    saved = feed_log.level, feed_log.propagate, ws_log.level
    feed_log.addHandler(handler)
    feed_log.setLevel(logging.INFO)
    feed_log.propagate = False
    # websockets' own INFO lines duplicate ours; keep its warnings and errors. Its DEBUG frame
    # dumps would show clients' auth messages (secrets): pin every websockets.* logger too.
    ws_log.setLevel(logging.WARNING)
    from alpaca_cli.devstack.logs import pin_wire_loggers

    pin_wire_loggers()

    def undo() -> None:
        feed_log.removeHandler(handler)
        feed_log.setLevel(saved[0])
        feed_log.propagate = saved[1]
        ws_log.setLevel(saved[2])

    return undo


async def _serve(config: FeedConfig) -> None:
    import asyncio
    import signal

    from alpaca_cli.devstack.feed import FeedServer, ReplayError

    server = FeedServer(config)
    try:
        await server.start()
    except ReplayError as exc:
        # ReplayError texts have no full stop; the hint is a sentence of its own.
        raise UsageError(f"{str(exc).rstrip('.')}.", hint="Check the --replay file.") from exc
    except OSError as exc:
        raise UsageError(
            f"dev feed cannot listen on {config.host}:{config.port}: {exc.strerror}.",
            hint="Pick another --port (0 = any free port).",
        ) from exc
    sys.stdout.write(server.url + "\n")
    sys.stdout.flush()
    from alpaca_cli import startup

    startup.end()  # serving: collect as usual again

    stop = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            sys.stderr.write("dev feed: forced exit\n")
            os._exit(int(ExitCode.INTERRUPTED))
        sys.stderr.write("dev feed: stopping (press Ctrl+C again to force)\n")
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await asyncio.wait_for(server.stop(), timeout=5)
