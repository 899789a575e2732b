"""The whole embedded platform in one event loop: broker, sidecar, WSM, WorkManager, gateway, feed.

``alpaca-md dev up`` runs it in the foreground, with the Alpaca feed in a child process
(``StackConfig.feed_process``) so generating the market does not share the relay's GIL; tests
and ``run --embedded`` start it in a background thread with :func:`start_in_thread`, the feed
on the same loop unless asked otherwise. Everything shares one
:class:`~alpaca_cli.devstack.broker.Broker`, so a command published through the sidecar reaches
the controller worker, and the frames the WSM publishes reach the sidecar's streams.

:meth:`EmbeddedPlatform.env` is the contract with the CLI: the variables a second shell (or a
subprocess) needs to use this platform exactly as it would use a real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from alpaca_cli.devstack.broker import Broker
from alpaca_cli.devstack.gateway import Gateway
from alpaca_cli.devstack.gateway_grpc import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_IDLE_TIMEOUT,
    GatewayGrpc,
)
from alpaca_cli.devstack.gateway_proto import CloudEventShape, SubscribeShape
from alpaca_cli.devstack.sidecar import DaprSidecar, StreamMode
from alpaca_cli.devstack.workmanager import WorkManager
from alpaca_cli.devstack.wsm import (
    ConnectIdKey,
    ConnectionStatus,
    FrameFormat,
    LifecycleNames,
    ReconnectPolicy,
    WebSocketManager,
)

if TYPE_CHECKING:
    from alpaca_cli.devstack.loopthread import LoopThread

__all__ = ["STREAM_PATH", "EmbeddedPlatform", "StackConfig", "start_in_thread"]

logger = logging.getLogger(__name__)

STREAM_PATH = "/v1beta3/crypto/us"
"""Path of the local Alpaca stream in ``ALPACA_STREAM_URL`` (the feed serves any location)."""


@dataclass(slots=True)
class StackConfig:
    """How to start the embedded platform. Port 0 means any free port (read them back after).

    ``alpaca_key`` / ``alpaca_secret`` are the only pair the local feed accepts; left ``None``
    a fresh random pair is made per start. ``feed_options`` pass through to the feed's
    ``FeedConfig`` (``drop_after``, ``rate``, ``seed``, ``symbol_limit``, ``auth_timeout``,
    ``max_connections_per_key`` ...). ``feed=False`` starts no feed (the WSM can still reach
    any other Alpaca endpoint). ``reconnect_base_delay`` is the WSM's first reconnect delay.

    ``feed_process=True`` runs the feed in a child process of its own
    (:class:`~alpaca_cli.devstack.feed.process.FeedProcess`): ``dev up`` does, so generating
    the market never competes with the WSM and the sidecar for one GIL. The default keeps it
    on the platform's loop, where tests can reach the ``FeedServer`` (its ``stats``) directly.

    ``dapr_streams`` is the sidecar's ``streams_per_topic``: ``"split"`` / ``"single"`` make
    several streams of one client on one topic compete or fail, as beside a real sidecar.

    The newer platform's long-run behaviours (spec "Newer platform behaviour", issue 12), all
    off by default, so the platform stays the mid-August 2026 one unless asked:

    * ``connection_record_ttl`` - seconds a WSM connection record lives after its creation or
      last successful SendRaw; then it leaves ``List`` and calls on it answer
      ``Connection not found`` while the socket goes on publishing (``300`` plays today's
      platform default).
    * ``drop_commands`` - the WorkManager acks and drops the first N messages on each input
      topic, no reply.
    * ``reconnect_attempts`` - the WSM gives up after N attempts and leaves the connection
      ``DISCONNECTED`` for good (0: never reconnects); ``None`` keeps 5 attempts ending in
      ``ERROR``.
    * ``lifecycle_names`` - ``classic``, ``spec`` or ``reference`` event-type names (see
      :mod:`~alpaca_cli.devstack.wsm` and :mod:`~alpaca_cli.devstack.workmanager`).
    * ``owned_elsewhere`` - seconds after creation during which calls on a connection answer
      ``Connection owned by different instance: <id>``.
    * ``duplicate_create`` - the gateway runs every CreateWorker twice, answering the second id.
    * ``start_on_create`` - a new worker is already RUNNING when CreateWorker answers.
    * ``unhealthy_without_keys`` - with no ``api_key``, the gateway's ``/health`` says
      Unhealthy (503) while it serves, as a production gateway without API keys does.
    * ``replica_dies_after`` - seconds after which the WSM replica that opened a connection
      dies; the next call on the connection reclaims it (DISCONNECTED, then a reconnect with
      auto_reconnect, within ``reconnect_attempts``).
    * ``frame_format`` - published frames ``flat`` (today), ``envelope`` (older builds, this
      build's websocket-proxy spec) or ``bare`` (Dapr's default type/source, no extensions).
    * ``connect_id_key`` - the key of the id in a WSM Connect result: ``id``,
      ``connection_id`` or ``connectionId``.

    The gateway's gRPC port (``gateway_grpc_port``, :mod:`~alpaca_cli.devstack.gateway_grpc`)
    serves pub/sub without a sidecar on the same broker: ``subscription_idle_timeout`` (0: never
    reaped) and ``heartbeat_interval`` (0: no heartbeats) are its sweeper and keep-alive,
    ``cloudevent_proto`` (``"cncf"`` / ``"nested"``) and ``subscribe_request`` (``"topics"`` /
    the older ``"topic"``) the message shapes it speaks and reflects.
    ``resiliency_retries`` is the sidecar's: 0 (the default) behaves like daprd without a
    resiliency policy, where a ``RETRY`` dead-letters or drops the event; N redelivers it up
    to N times first, like daprd with a retry policy of N retries.
    """

    host: str = "127.0.0.1"
    gateway_port: int = 5001
    dapr_http_port: int = 3500
    dapr_grpc_port: int = 50001
    feed_port: int = 8765
    api_key: str | None = None
    dapr_api_token: str | None = None
    legacy: bool = False
    feed: bool = True
    feed_options: dict[str, Any] = field(default_factory=dict)
    alpaca_key: str | None = None
    alpaca_secret: str | None = None
    reconnect_base_delay: float = 1.0
    feed_process: bool = False
    dapr_streams: StreamMode = "copy"
    connection_record_ttl: float | None = None
    drop_commands: int = 0
    reconnect_attempts: int | None = None
    lifecycle_names: LifecycleNames = "classic"
    owned_elsewhere: float = 0.0
    duplicate_create: bool = False
    start_on_create: bool = False
    connect_id_key: ConnectIdKey = "id"
    unhealthy_without_keys: bool = False
    frame_format: FrameFormat = "flat"
    replica_dies_after: float | None = None
    gateway_grpc_port: int = 5002
    subscription_idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    cloudevent_proto: CloudEventShape = "cncf"
    subscribe_request: SubscribeShape = "topics"
    resiliency_retries: int = 0

    def reconnect_policy(self) -> ReconnectPolicy:
        """The WSM's policy: the platform's 5 attempts, or ``reconnect_attempts`` then terminal."""
        if self.reconnect_attempts is None:
            return ReconnectPolicy(base_delay=self.reconnect_base_delay)
        return ReconnectPolicy(
            attempts=self.reconnect_attempts,
            base_delay=self.reconnect_base_delay,
            exhausted=ConnectionStatus.DISCONNECTED,
        )

    @classmethod
    def ephemeral(cls, **overrides: Any) -> StackConfig:
        """Every port 0: what tests and ``run --embedded`` want."""
        base: dict[str, Any] = {
            "gateway_port": 0,
            "gateway_grpc_port": 0,
            "dapr_http_port": 0,
            "dapr_grpc_port": 0,
            "feed_port": 0,
        }
        base.update(overrides)
        return cls(**base)


def _connect_host(host: str) -> str:
    """The address a client on this machine uses for a server bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


class EmbeddedPlatform:
    """The started stand-ins; attributes are usable between :meth:`start` and :meth:`stop`.

    Example::

        platform = EmbeddedPlatform(StackConfig.ephemeral())
        await platform.start()
        os.environ.update(platform.env())
        ...
        await platform.stop()
    """

    def __init__(
        self,
        config: StackConfig | None = None,
        *,
        feed_child: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.config = config or StackConfig()
        self._feed_child = feed_child
        """With ``feed_process``: a feed child started early by ``dev up``
        (:func:`~alpaca_cli.devstack.feed.process.spawn_child`), configured in :meth:`start`."""
        self.alpaca_key = self.config.alpaca_key or f"DEVKEY{secrets.token_hex(6).upper()}"
        self.alpaca_secret = self.config.alpaca_secret or secrets.token_urlsafe(24)
        self.broker = Broker()
        self.wsm = WebSocketManager(
            self.broker,
            policy=self.config.reconnect_policy(),
            record_ttl=self.config.connection_record_ttl,
            owned_elsewhere=self.config.owned_elsewhere,
            lifecycle_names=self.config.lifecycle_names,
            connect_id_key=self.config.connect_id_key,
            frame_format=self.config.frame_format,
            replica_dies_after=self.config.replica_dies_after,
        )
        self.workmanager = WorkManager(
            self.broker,
            self.wsm,
            drop_commands=self.config.drop_commands,
            start_on_create=self.config.start_on_create,
            lifecycle_names=self.config.lifecycle_names,
        )
        self.sidecar = DaprSidecar(
            self.broker,
            host=self.config.host,
            http_port=self.config.dapr_http_port,
            grpc_port=self.config.dapr_grpc_port,
            api_token=self.config.dapr_api_token,
            streams_per_topic=self.config.dapr_streams,
            resiliency_retries=self.config.resiliency_retries,
        )
        self.gateway = Gateway(
            self.workmanager,
            self.wsm,
            host=self.config.host,
            port=self.config.gateway_port,
            api_key=self.config.api_key,
            legacy=self.config.legacy,
            dapr_healthy=lambda: self._sidecar_up,
            duplicate_create=self.config.duplicate_create,
            keys_required_ready=self.config.unhealthy_without_keys,
        )
        self.gateway_grpc = GatewayGrpc(
            self.broker,
            gateway=self.gateway,
            host=self.config.host,
            port=self.config.gateway_grpc_port,
            api_key=self.config.api_key,
            cloudevent_proto=self.config.cloudevent_proto,
            subscribe_request=self.config.subscribe_request,
            subscription_idle_timeout=self.config.subscription_idle_timeout,
            heartbeat_interval=self.config.heartbeat_interval,
        )
        self.feed: Any = None
        """The feed's ``FeedServer`` once started, or its ``FeedProcess`` with
        ``feed_process=True`` (``None`` with ``feed=False``)."""
        self.loop_thread: LoopThread | None = None
        """Set by :func:`start_in_thread`: run coroutines on the platform's loop with it."""
        self._sidecar_up = False
        self._started = False

    async def start(self) -> None:
        """Start the feed, the sidecar and the gateway's two ports, all at once; undo all on
        failure.

        Why at once: none needs another to bind, and the feed (a child process with an
        interpreter of its own to boot) takes longest; started one after the other they made
        ``run --embedded`` wait for the sum instead of the slowest (``make bench``:
        ``startup.seconds.run_embedded_time_to_first_data``).

        Raises:
            OSError: a port is taken (the message names it).
        """

        async def sidecar() -> None:
            await self.sidecar.start()
            self._sidecar_up = True

        try:
            async with asyncio.TaskGroup() as group:
                if self.config.feed:
                    group.create_task(self._start_feed())
                group.create_task(sidecar())
                group.create_task(self.gateway.start())
                group.create_task(self.gateway_grpc.start())
        except BaseExceptionGroup as group_error:
            await self.stop()
            # One line for the operator: the first failure (a taken port names itself).
            raise group_error.exceptions[0] from None
        except BaseException:
            await self.stop()
            raise
        self._started = True
        logger.info("devstack: platform ready at %s", self.gateway.url)

    async def _start_feed(self) -> None:
        # From its own module: the package's other layers load only for an in-process feed.
        from alpaca_cli.devstack.feed.config import FeedConfig

        options = dict(self.config.feed_options)
        options.setdefault("key", self.alpaca_key)
        options.setdefault("secret", self.alpaca_secret)
        config = FeedConfig(host=self.config.host, port=self.config.feed_port, **options)
        feed: Any
        if self.config.feed_process:
            from alpaca_cli.devstack.feed.process import FeedProcess

            feed = FeedProcess(config, child=self._feed_child)
            self._feed_child = None
        else:
            from alpaca_cli.devstack.feed.server import FeedServer

            feed = FeedServer(config)
        # Set before start(): a failed start is undone by stop(), which stops the feed too.
        self.feed = feed
        await feed.start()

    async def stop(self) -> None:
        """Stop everything, newest first; safe to call twice or after a failed start."""
        self._started = False
        with contextlib.suppress(Exception):
            await self.gateway_grpc.stop()
        with contextlib.suppress(Exception):
            await self.gateway.stop()
        with contextlib.suppress(Exception):
            await self.workmanager.close()
        with contextlib.suppress(Exception):
            await self.wsm.close()
        self._sidecar_up = False
        with contextlib.suppress(Exception):
            await self.sidecar.stop()
        feed, self.feed = self.feed, None
        if feed is None and self._feed_child is not None:
            # Started early but never configured (the start failed before the feed's turn).
            from alpaca_cli.devstack.feed.config import FeedConfig
            from alpaca_cli.devstack.feed.process import FeedProcess

            feed = FeedProcess(FeedConfig(), child=self._feed_child)
            self._feed_child = None
        if feed is not None:
            with contextlib.suppress(Exception):
                await feed.stop()
        self.broker.close()

    async def stop_sidecar(self) -> None:
        """Take only the sidecar down (its ports stay reserved in :meth:`env`).

        For "sidecar unreachable" tests; the gateway's ``/health`` turns Unhealthy (503).
        """
        self._sidecar_up = False
        await self.sidecar.stop()

    async def start_sidecar(self) -> None:
        """Bring the sidecar back on the same ports after :meth:`stop_sidecar`.

        Raises:
            OSError: a port was taken meanwhile.
        """
        if self._sidecar_up:
            return
        old = self.sidecar
        self.sidecar = DaprSidecar(
            self.broker,
            host=self.config.host,
            http_port=old.http_port,
            grpc_port=old.grpc_port,
            api_token=self.config.dapr_api_token,
            streams_per_topic=self.config.dapr_streams,
            resiliency_retries=self.config.resiliency_retries,
        )
        await self.sidecar.start()
        self._sidecar_up = True

    @property
    def gateway_url(self) -> str:
        return f"http://{_host_for_url(_connect_host(self.config.host))}:{self.gateway.port}"

    @property
    def stream_url(self) -> str | None:
        """The local Alpaca stream (crypto, ``us`` location), or ``None`` without a feed."""
        if self.feed is None:
            return None
        parts = urlsplit(str(self.feed.url))
        netloc = parts.netloc
        if parts.hostname in ("0.0.0.0", "::"):
            netloc = f"{_host_for_url(_connect_host(parts.hostname))}:{parts.port}"
        return urlunsplit(("ws", netloc, STREAM_PATH, "", ""))

    def env(self) -> dict[str, str]:
        """The environment a client needs to use this platform (contains test credentials)."""
        env = {
            "VIRTUFIN_API_URL": self.gateway_url,
            "DAPR_HTTP_PORT": str(self.sidecar.http_port),
            "DAPR_GRPC_PORT": str(self.sidecar.grpc_port),
        }
        runtime_host = _connect_host(self.config.host)
        if runtime_host != "127.0.0.1":
            env["DAPR_RUNTIME_HOST"] = runtime_host
        stream = self.stream_url
        if stream is not None:
            env["ALPACA_STREAM_URL"] = stream
            env["ALPACA_API_KEY"] = self.alpaca_key
            env["ALPACA_API_SECRET"] = self.alpaca_secret
        # The platform's own names for the gateway's gRPC port (pub/sub without a sidecar).
        env["VIRTUFIN_API_HOST"] = runtime_host
        env["VIRTUFIN_API_GRPC_PORT"] = str(self.gateway_grpc.port)
        if self.config.api_key:
            env["VIRTUFIN_API_KEY"] = self.config.api_key
        if self.config.dapr_api_token:
            env["DAPR_API_TOKEN"] = self.config.dapr_api_token
        return env


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@contextlib.contextmanager
def start_in_thread(config: StackConfig | None = None) -> Iterator[EmbeddedPlatform]:
    """Run an :class:`EmbeddedPlatform` in a background event loop for the ``with`` block.

    Yields the started platform (``platform.loop_thread.run(coro)`` runs code on its loop); on
    exit it stops the platform and the loop, even after an error in the block.
    """
    from alpaca_cli.devstack.loopthread import LoopThread

    thread = LoopThread(name="alpaca-md-devstack")
    thread.start()
    try:
        platform = thread.run(_build_and_start(config))
        platform.loop_thread = thread
        try:
            yield platform
        finally:
            thread.run(platform.stop(), timeout=15)
    finally:
        thread.stop()


async def _build_and_start(config: StackConfig | None) -> EmbeddedPlatform:
    # Built on the loop thread: the broker binds to the loop it is first used on.
    platform = EmbeddedPlatform(config)
    await platform.start()
    return platform
