"""Helpers for the ``dev feed`` tests: a started server and a thin raw WebSocket client.

The client parses frames with orjson/msgpack directly (not with our codec), so these tests
check the wire itself, not just agreement between our encoder and our decoder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgpack
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from alpaca_cli.devstack.feed import FeedConfig, FeedServer

Wire = dict[str, Any]


class Client:
    """A raw client: sends dicts, returns the decoded wire objects of each frame."""

    def __init__(self, ws: ClientConnection, *, msgpack_mode: bool) -> None:
        self.ws = ws
        self.msgpack_mode = msgpack_mode

    async def frame(self, timeout: float = 10) -> list[Wire]:
        payload = await asyncio.wait_for(self.ws.recv(), timeout)
        if self.msgpack_mode:
            assert isinstance(payload, bytes), "msgpack frames are binary"
            data = msgpack.unpackb(payload, timestamp=0)
        else:
            assert isinstance(payload, str), "JSON frames are text"
            data = orjson.loads(payload)
        assert isinstance(data, list), "every server frame is an array"
        return data

    async def one(self) -> Wire:
        """The next frame, which must hold exactly one message (control messages come alone)."""
        frame = await self.frame()
        assert len(frame) == 1, frame
        return frame[0]

    async def send(self, obj: Any, *, binary: bool | None = None) -> None:
        if binary if binary is not None else self.msgpack_mode:
            await self.ws.send(msgpack.packb(obj))
        else:
            await self.ws.send(orjson.dumps(obj).decode())

    async def auth(self, key: str = "key", secret: str = "secret") -> Wire:
        await self.send({"action": "auth", "key": key, "secret": secret})
        return await self.one()

    async def subscribe(self, **channels: list[str]) -> Wire:
        await self.send({"action": "subscribe", **channels})
        return await self.one()

    async def data(self, count: int) -> list[Wire]:
        """At least ``count`` data messages (whole frames), failing on any control message."""
        out: list[Wire] = []
        while len(out) < count:
            frame = await self.frame()
            for message in frame:
                assert message["T"] not in ("success", "error", "subscription"), message
            out += frame
        return out


@pytest.fixture
def run() -> Callable[..., Any]:
    """``run(scenario, **config)``: start a feed, await ``scenario(server)``, stop the feed."""

    def runner(scenario: Callable[[FeedServer], Awaitable[Any]], **options: Any) -> Any:
        async def main() -> Any:
            async with FeedServer(FeedConfig(**options)) as server:
                return await scenario(server)

        return asyncio.run(main())

    return runner


def client(
    server: FeedServer,
    *,
    msgpack_mode: bool = False,
    headers: dict[str, str] | None = None,
    path: str | None = None,
) -> _ClientContext:
    """``async with client(server) as c``: connected, welcome not yet read."""
    return _ClientContext(server, msgpack_mode, headers or {}, path)


class _ClientContext:
    def __init__(
        self, server: FeedServer, msgpack_mode: bool, headers: dict[str, str], path: str | None
    ) -> None:
        url = server.url if path is None else f"ws://127.0.0.1:{server.port}{path}"
        if msgpack_mode:
            headers = {"Content-Type": "application/msgpack", **headers}
        self._connect = connect(url, additional_headers=headers, open_timeout=5, close_timeout=2)
        self._msgpack = msgpack_mode

    async def __aenter__(self) -> Client:
        ws = await self._connect.__aenter__()
        return Client(ws, msgpack_mode=self._msgpack)

    async def __aexit__(self, *exc: Any) -> None:
        await self._connect.__aexit__(*exc)


async def until(condition: Callable[[], bool], timeout: float = 5) -> None:
    """Wait for a server-side condition that has no event to await (bounded polling)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


@pytest.fixture
def feed_client() -> Iterator[Callable[..., _ClientContext]]:
    yield client


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    return until
