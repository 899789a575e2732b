"""The WebSocket side of ``dev feed``: handshakes, frames and timers around the pure session.

Each connection runs two tasks. The *reader* decodes client frames, feeds them to the
:class:`~.session.Session` and queues what it answers. The *writer* is the only task that sends:
it drains that queue in order (control messages alone, each in its own frame, then the order
book snapshots a subscription asks for), then every ``tick`` sends the data that fell due at
``rate`` messages per second, batched into frames of up to ``max_frame_messages``. One writer
means a snapshot always precedes the deltas of its book and a ``subscription`` reply always
precedes the data it enables. The writer also owns every timer (auth timeout, ``drop_after``).

Backpressure: the writer awaits each send, so a client that reads slowly slows its own stream
down; the debt of unsent messages is capped at :data:`MAX_BURST_SECONDS` of ``rate`` and the
rest is never generated (so trade ids stay consecutive: nothing generated is ever skipped).
With ``slow_client_after`` set, a frame that waits that long instead ends the connection the
way Alpaca does when its outbound buffer overflows: ``407 slow client``, then a close.

Counting losses end to end: every connection numbers its data messages 1, 2, 3... in
:attr:`ConnectionStats.data_messages`, logged when it closes; with ``seq_field`` set each message
also carries its number under that key. Trade ids are consecutive per connection, so gaps in
``i`` count lost trades without any extra key.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

from alpaca_cli.alpaca.codec import Format, encode_frame
from alpaca_cli.alpaca.errors import ErrorCode
from alpaca_cli.alpaca.messages import DataMessage, Message, Trade
from alpaca_cli.devstack.feed.config import FeedConfig
from alpaca_cli.devstack.feed.market import Market
from alpaca_cli.devstack.feed.registry import KeyRegistry
from alpaca_cli.devstack.feed.replay import Recording, ReplaySource
from alpaca_cli.devstack.feed.session import (
    Action,
    Close,
    Log,
    Rules,
    Send,
    Session,
    Subscribed,
    Targets,
    decode_request,
    error_message,
)
from alpaca_cli.devstack.feed.source import DataSource
from alpaca_cli.devstack.feed.wire import JsonFrameEncoder

if TYPE_CHECKING:
    from websockets.asyncio.server import Server, ServerConnection
    from websockets.http11 import Request, Response

__all__ = ["MAX_BURST_SECONDS", "ConnectionStats", "FeedServer", "KeyRegistry"]

log = logging.getLogger("alpaca_cli.devstack.feed")

MAX_BURST_SECONDS = 0.5
"""Most data a connection may owe after a stall, in seconds of ``rate``."""

PATH = re.compile(r"/v1beta3/crypto/[A-Za-z0-9_-]+")
"""Paths served; anything else is refused with HTTP 404 at the handshake, as Alpaca does."""

_STATS_KEPT = 1000

_Item: TypeAlias = (
    tuple[Literal["send"], Message]
    | tuple[Literal["subscribed"], Subscribed]
    | tuple[Literal["close"], str]
)


@dataclass(slots=True)
class ConnectionStats:
    """What one connection got; readable while it runs and after it closed."""

    conn_id: int
    peer: str
    format: Format
    data_messages: int = 0
    """Data messages sent; also the sequence number of the last one."""
    frames: int = 0
    """Frames sent, control frames included."""
    trades: int = 0
    last_trade_id: int | None = None
    closed: bool = False
    close_reason: str = ""


class FeedServer:
    """An Alpaca-compatible crypto stream on a local port.

    Example::

        server = FeedServer(FeedConfig(port=0, seed=7))
        await server.start()
        ...  # connect to server.url with any Alpaca client
        await server.stop()

    Also an async context manager (``async with FeedServer(config) as server``).

    Parameters:
        config: see :class:`~.config.FeedConfig`.
    """

    def __init__(self, config: FeedConfig) -> None:
        self.config = config
        self.registry = KeyRegistry(config.max_connections_per_key)
        self.stats: deque[ConnectionStats] = deque(maxlen=_STATS_KEPT)
        """The most recent connections, oldest first."""
        self._server: Server | None = None
        self._recording: Recording | None = None
        self._rules = Rules(
            config.key, config.secret, config.auth_timeout, config.symbol_limit, config.symbols
        )
        self._ids = itertools.count(1)
        self._port: int | None = None
        self.stopping = False
        """True once :meth:`stop` began: connections closing now were closed by the server."""

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the replay file if any, bind and start serving.

        Raises:
            ReplayError: the replay file cannot be used.
            OSError: the address cannot be bound.
        """
        from websockets.asyncio.server import serve

        if self.config.replay is not None:
            self._recording = await asyncio.to_thread(Recording.load, self.config.replay)
            self._rules = Rules(
                self.config.key,
                self.config.secret,
                self.config.auth_timeout,
                self.config.symbol_limit,
                self._recording.symbols,
            )
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            close_timeout=2,
            # Alpaca offers permessage-deflate (RFC 7692) and the Go SDK asks for it, so a
            # client's inflate path is exercised here too. It costs CPU on loopback (about 4%
            # of the feed's time at 10k msg/s), which is why the WSM does not offer it there;
            # a client that does not offer it gets plain frames either way.
            compression="deflate" if self.config.compression else None,
        )
        sockets = list(self._server.sockets)
        self._port = int(sockets[0].getsockname()[1])
        log.info("listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection (1001 going away) and stop listening. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping = True
        server.close()
        await server.wait_closed()
        log.info("stopped")

    async def __aenter__(self) -> FeedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("FeedServer.port is known only after start()")
        return self._port

    @property
    def url(self) -> str:
        """``ws://host:port/v1beta3/crypto/us``: what a client connects to."""
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self.port}/v1beta3/crypto/us"

    # -- websockets callbacks -----------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if PATH.fullmatch(path):
            return None
        log.info("peer=%s path %s: HTTP 404", _peer(connection), path[:80])
        return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")

    async def _handle(self, ws: ServerConnection) -> None:
        conn = _Connection(self, ws, next(self._ids))
        self.stats.append(conn.stats)
        await conn.run()

    def _source(self) -> DataSource:
        if self._recording is not None:
            return ReplaySource(self._recording)
        return Market(self.config)


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


class _Connection:
    """The reader and writer of one client connection."""

    def __init__(self, server: FeedServer, ws: ServerConnection, conn_id: int) -> None:
        self.server = server
        self.config = server.config
        self.ws = ws
        self.loop = asyncio.get_running_loop()
        headers = ws.request.headers if ws.request is not None else None
        content_type = headers.get("Content-Type", "") if headers is not None else ""
        self.fmt: Format = "msgpack" if "msgpack" in content_type.lower() else "json"
        key = headers.get("APCA-API-KEY-ID") if headers is not None else None
        secret = headers.get("APCA-API-SECRET-KEY") if headers is not None else None
        self.opened = self.loop.time()
        self.session = Session(
            server._rules,
            server.registry,
            conn_id=conn_id,
            now=self.opened,
            header_credentials=(key, secret) if key is not None and secret is not None else None,
        )
        self.source = server._source()
        self.stats = ConnectionStats(conn_id, _peer(ws), self.fmt)
        # Data frames only: the same bytes as the codec's encode_frame, at less CPU.
        self.json_encoder = JsonFrameEncoder() if self.fmt == "json" else None
        self.targets = Targets({})
        self.pending: deque[_Item] = deque()
        self.wake = asyncio.Event()
        self.peer_gone = False
        self.prefix = f"conn={conn_id} peer={self.stats.peer}"

    async def run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        self._apply(self.session.start())
        reader = asyncio.create_task(self._read())
        reason = "closed by client"
        try:
            reason = await self._write_loop()
        except ConnectionClosed:
            reason = "connection lost"
        except _SlowClient:
            reason = await self._refuse_slow_client()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self.session.close()
            self.stats.closed = True
            self.stats.close_reason = reason
            log.info(
                "%s closed (%s) data_messages=%d frames=%d",
                self.prefix,
                reason,
                self.stats.data_messages,
                self.stats.frames,
            )

    # -- reader -------------------------------------------------------------------------------

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for payload in self.ws:
                self._apply(self.session.receive(decode_request(payload), self.loop.time()))
        except ConnectionClosed:
            pass
        finally:
            self.peer_gone = True
            self.wake.set()

    def _apply(self, actions: Sequence[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.pending.append(("send", action.message))
            elif isinstance(action, Subscribed):
                self.pending.append(("subscribed", action))
            elif isinstance(action, Close):
                self.pending.append(("close", action.reason))
            elif isinstance(action, Log):
                log.info("%s %s", self.prefix, action.text)
        if actions:
            self.wake.set()

    # -- writer -------------------------------------------------------------------------------

    async def _write_loop(self) -> str:
        """Send until the connection ends; returns why it ended."""
        config = self.config
        rate = config.rate
        max_debt = max(1.0, rate * MAX_BURST_SECONDS)
        # Generating a batch blocks the loop, so one pass makes at most this many messages;
        # any debt left over is worked off on the next pass without sleeping.
        max_batch = 4 * config.max_frame_messages
        drop_at = self.opened + config.drop_after if config.drop_after is not None else None
        debt = 0.0
        last = self.loop.time()
        while True:
            if self.peer_gone:
                return "server stopped" if self.server.stopping else "closed by client"
            while self.pending:
                closing = await self._send_pending(self.pending.popleft())
                if closing is not None:
                    return closing
            now = self.loop.time()
            if drop_at is not None and now >= drop_at:
                assert self.ws.transport is not None
                self.ws.transport.abort()
                log.info(
                    "%s dropped (drop-after %ss, no close frame)", self.prefix, config.drop_after
                )
                return "dropped"
            deadline = self.session.deadline
            if deadline is not None and now >= deadline:
                self._apply(self.session.poll(now))
                continue
            streaming = not self.targets.empty
            if streaming:
                debt = min(max_debt, debt + rate * (now - last))
                count = min(int(debt), max_batch)
                debt -= count
                now_ns = time.time_ns()
                batch = self.source.bars(self.targets, now_ns)
                batch += self.source.generate(count, self.targets, now_ns)
                if batch:
                    await self._send_data(batch)
            last = now
            timeouts = [t - self.loop.time() for t in (deadline, drop_at) if t is not None]
            if streaming:
                timeouts.append(config.tick if debt < 1 else 0.0)
            self.wake.clear()
            if self.pending or self.peer_gone:
                continue
            timeout = max(0.0, min(timeouts)) if timeouts else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)

    async def _send_pending(self, item: _Item) -> str | None:
        if item[0] == "send":
            await self._send_frame(encode_frame([item[1]], self.fmt))
        elif item[0] == "subscribed":
            change = item[1]
            now_ns = time.time_ns()
            for symbol in change.gone_books:
                self.source.forget(symbol)
            snapshots: list[DataMessage] = [
                self.source.snapshot(symbol, now_ns) for symbol in change.new_books
            ]
            self.targets = change.targets
            if snapshots:
                await self._send_data(snapshots)
        else:
            await self.ws.close(1000, item[1])
            return item[1]
        return None

    async def _send_data(self, batch: list[DataMessage]) -> None:
        stats = self.stats
        seq_field = self.config.seq_field
        size = self.config.max_frame_messages
        for start in range(0, len(batch), size):
            chunk = batch[start : start + size]
            if seq_field is not None:
                for seq, message in enumerate(chunk, start=stats.data_messages + 1):
                    message.extra = {seq_field: seq}
            if self.json_encoder is not None:
                payload = self.json_encoder.encode(chunk)
            else:
                payload = encode_frame(chunk, self.fmt)
            await self._send_frame(payload)
            # Counted once sent, so the totals are what the client should have received.
            stats.data_messages += len(chunk)
            for message in chunk:
                if isinstance(message, Trade):
                    stats.trades += 1
                    stats.last_trade_id = message.id

    async def _send_frame(self, payload: bytes) -> None:
        # JSON goes out in text frames and msgpack in binary ones, as Alpaca sends them.
        text = self.fmt == "json"
        limit = self.config.slow_client_after
        if limit is None:
            await self.ws.send(payload, text=text)
        else:
            # Cancelling the send is safe: the frame is already in the transport's buffer and
            # only the wait for the client to drain it is given up.
            try:
                await asyncio.wait_for(self.ws.send(payload, text=text), limit)
            except TimeoutError:
                raise _SlowClient from None
        self.stats.frames += 1

    async def _refuse_slow_client(self) -> str:
        """Spec: 407 when the outbound buffer overflows, then the server disconnects."""
        self.stats.close_reason = "slow client"  # visible before the close completes
        log.info("%s error 407 slow client: a frame waited %ss", self.prefix,
                 self.config.slow_client_after)  # fmt: skip
        frame = encode_frame([error_message(ErrorCode.SLOW_CLIENT)], self.fmt)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ws.send(frame, text=self.fmt == "json"), 0.1)
        await self.ws.close(1008, "slow client")
        return "slow client"


class _SlowClient(Exception):
    """A frame waited longer than ``slow_client_after`` for the client to read."""
