"""Fixtures for the devstack stand-ins: a loop thread, a broker and a started Dapr sidecar.

The servers run in their own event loop in a daemon thread (:class:`LoopThread`), so tests can
drive them with synchronous clients such as the ``dapr`` SDK's ``DaprClient``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from alpaca_cli.devstack.broker import Broker, BrokerSubscription, CloudEvent
from alpaca_cli.devstack.loopthread import LoopThread
from alpaca_cli.devstack.sidecar import DaprSidecar
from alpaca_cli.devstack.wsm import (
    LIFECYCLE_TOPIC,
    ConnectionRecord,
    ReconnectPolicy,
    WebSocketManager,
)

FAST = ReconnectPolicy(attempts=5, base_delay=0.05, cap=0.2)
"""A reconnect policy quick enough for tests."""


async def next_event(sub: BrokerSubscription) -> CloudEvent:
    """The next event on ``sub`` (acknowledged), or a timeout after 10 s."""
    delivery = await asyncio.wait_for(sub.get(), 10)
    sub.ack(delivery)
    return delivery.event


async def connected_then_dropped(
    broker: Broker, policy: ReconnectPolicy
) -> tuple[WebSocketManager, BrokerSubscription, ConnectionRecord]:
    """A WSM with ``policy`` whose auto-reconnecting connection's upstream is gone for good:
    connected to a loopback server that is then closed. Returns it with a subscription to the
    lifecycle topic (opened before the connect) and the connection's record."""
    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        await ws.wait_closed()

    server = await serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    wsm = WebSocketManager(broker, policy=policy)
    life = broker.subscribe(LIFECYCLE_TOPIC)
    record = await wsm.connect(f"ws://127.0.0.1:{port}/", auto_reconnect=True)
    server.close(close_connections=True)
    await server.wait_closed()
    return wsm, life, record


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    """A running event loop in a daemon thread, stopped (tasks cancelled) after the test."""
    with LoopThread(name="test-devstack-loop") as lt:
        yield lt


@pytest.fixture
def broker(loop_thread: LoopThread) -> Broker:
    """A broker bound to ``loop_thread``'s loop."""
    return Broker(loop=loop_thread.loop)


@dataclass
class RunningSidecar:
    """A started sidecar, its broker and loop, and the environment the SDK needs to reach it."""

    sidecar: DaprSidecar
    broker: Broker
    loop: LoopThread

    @property
    def env(self) -> dict[str, str]:
        return {
            "DAPR_RUNTIME_HOST": "127.0.0.1",
            "DAPR_HTTP_PORT": str(self.sidecar.http_port),
            "DAPR_GRPC_PORT": str(self.sidecar.grpc_port),
        }


@pytest.fixture
def start_sidecar(
    loop_thread: LoopThread, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., RunningSidecar]]:
    """Factory: start a :class:`DaprSidecar` (keyword arguments pass through) on ``broker``.

    It also points the ``dapr`` SDK at it through the environment (the SDK reads ``DAPR_*`` on
    every use) with a short ``DAPR_HEALTH_TIMEOUT``. Every sidecar started is stopped afterwards.
    """
    started: list[DaprSidecar] = []

    def start(**kwargs: Any) -> RunningSidecar:
        sidecar = DaprSidecar(broker, **kwargs)
        loop_thread.run(sidecar.start())
        started.append(sidecar)
        running = RunningSidecar(sidecar, broker, loop_thread)
        for name, value in running.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "5")
        return running

    yield start
    for sidecar in started:
        loop_thread.run(sidecar.stop())


@pytest.fixture
def dapr_sidecar(start_sidecar: Callable[..., RunningSidecar]) -> RunningSidecar:
    """A sidecar with default options (component ``pubsub``, no API token), SDK env set."""
    return start_sidecar()


# -- embedded platform fixtures (gateway / WorkManager / WSM / controller / stack tests) ---------


@dataclass
class ScriptedServer:
    """A loopback WebSocket server standing in for an upstream the WSM connects to.

    On every connection it sends ``welcome`` (when set), then echoes each message back with
    its frame type, and records what it received per connection. ``drop_all()`` aborts every
    open connection without a close frame, as a network failure would.
    """

    url: str
    welcome: str | None
    received: list[list[str | bytes]]
    connections: list[Any]
    opened: Any  # asyncio.Condition, notified on each new connection

    async def wait_connections(self, n: int) -> None:
        async with self.opened:
            await self.opened.wait_for(lambda: len(self.connections) >= n)

    def drop_all(self) -> None:
        for conn in self.connections:
            conn.transport.abort()


@pytest.fixture
def scripted_server(loop_thread: LoopThread) -> Iterator[ScriptedServer]:
    """A :class:`ScriptedServer` on ``ws://127.0.0.1:<port>/stream`` in ``loop_thread``."""
    import asyncio

    from websockets.asyncio.server import ServerConnection, serve

    holder: dict[str, Any] = {}

    async def start() -> ScriptedServer:
        state = ScriptedServer(
            "", '[{"T":"success","msg":"connected"}]', [], [], asyncio.Condition()
        )

        async def handler(ws: ServerConnection) -> None:
            got: list[str | bytes] = []
            state.received.append(got)
            async with state.opened:
                state.connections.append(ws)
                state.opened.notify_all()
            if state.welcome is not None:
                await ws.send(state.welcome)
            async for message in ws:
                got.append(message)
                await ws.send(message)

        server = await serve(handler, "127.0.0.1", 0)
        holder["server"] = server
        port = server.sockets[0].getsockname()[1]
        state.url = f"ws://127.0.0.1:{port}/stream"
        return state

    state = loop_thread.run(start())
    yield state

    async def stop() -> None:
        server = holder["server"]
        server.close()
        await server.wait_closed()

    loop_thread.run(stop(), timeout=10)
